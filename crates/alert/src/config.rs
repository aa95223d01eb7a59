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
    pub url: String,
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
    pub outbox_path: PathBuf,
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
