//! The validated `[alert]` section and its delivery endpoints (the binary's
//! configuration loader builds these from TOML).

use std::path::PathBuf;

/// A secret read at start-up; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// An endpoint's URL. Slack and PagerDuty-style webhook URLs carry their
/// credential in the path or query, so `Debug` and `Display` print only the
/// scheme and host (`https://hooks.slack.com/***`); [`SinkUrl::expose`] gives
/// the whole URL to the HTTP client and nothing else.
#[derive(Clone, PartialEq, Eq)]
pub struct SinkUrl(String);

impl SinkUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The whole URL, secret parts included: for the request only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `scheme://host[:port]` without user info, path, query or fragment,
    /// followed by `/***` when anything was left out.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

/// `scheme://host[:port]/***` of any URL-like text (user info, path, query
/// and fragment dropped); text without `://` becomes `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let hidden = end < rest.len() || host.len() < authority.len();
    let scheme: String = scheme.chars().filter(char::is_ascii_alphanumeric).take(10).collect();
    format!("{scheme}://{host}{}", if hidden { "/***" } else { "" })
}

impl std::fmt::Debug for SinkUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SinkUrl({})", self.redacted())
    }
}

impl std::fmt::Display for SinkUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The delivery protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    Alertmanager,
    AlertmanagerWebhook,
    Slack,
    PagerDuty,
    Generic,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Alertmanager => "alertmanager",
            SinkKind::AlertmanagerWebhook => "alertmanager_webhook",
            SinkKind::Slack => "slack",
            SinkKind::PagerDuty => "pagerduty",
            SinkKind::Generic => "generic",
        }
    }
}

/// A validated delivery endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSpec {
    pub name: String,
    pub kind: SinkKind,
    /// Secret-bearing: printed as scheme and host only.
    pub url: SinkUrl,
    /// Standard Webhooks signing key (generic; `whsec_` prefix decoded).
    pub secret: Option<Secret>,
    /// PagerDuty routing key.
    pub routing_key: Option<Secret>,
    pub timeout: std::time::Duration,
    pub max_concurrency: usize,
    pub max_attempts: u32,
    pub max_retry: std::time::Duration,
    pub backoff_initial: std::time::Duration,
    pub backoff_max: std::time::Duration,
    /// 0 info, 1 warning, 2 critical.
    pub min_severity: u8,
    /// Event-time milliseconds; None: every repeat.
    pub repeat_interval: Option<i64>,
    pub resend_interval: std::time::Duration,
}

/// The validated `[alert]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    pub grafana_url: String,
    /// Event-time milliseconds.
    pub resolve_after: i64,
    /// Event-time milliseconds; 0: no repeats.
    pub repeat_interval: i64,
    pub group_by: Vec<earshot_core::types::Dim>,
    /// How alerts are correlated into incidents (one page per incident).
    pub correlate: crate::incident::CorrelateConfig,
    pub outbox_path: PathBuf,
    /// Delivered outbox entries older than this (wall clock) are deleted.
    pub outbox_retention: std::time::Duration,
    pub silences: Vec<crate::api::Silence>,
    pub sinks: Vec<SinkSpec>,
}

/// Severity rank: `info` 0, `warning` 1, `critical` 2.
pub fn severity_rank(s: &str) -> Option<u8> {
    match s {
        "info" => Some(0),
        "warning" => Some(1),
        "critical" => Some(2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_print_scheme_and_host_only() {
        for (url, shown) in [
            (
                "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
                "https://hooks.slack.com/***",
            ),
            (
                "https://user:pa55@events.example:8443?token=XXXXSECRET",
                "https://events.example:8443/***",
            ),
            ("http://127.0.0.1:9093", "http://127.0.0.1:9093"),
            ("https://h#XXXXSECRET", "https://h/***"),
            ("XXXXSECRET", "***"),
        ] {
            let u = SinkUrl::new(url);
            assert_eq!(u.redacted(), shown);
            assert_eq!(format!("{u:?}"), format!("SinkUrl({shown})"));
            assert_eq!(u.to_string(), shown);
            assert!(!format!("{u:?}").contains("SECRET") && !format!("{u:?}").contains("pa55"));
            assert_eq!(u.expose(), url);
        }
    }
}
