//! From detector signals to delivered alert state changes.
//!
//! * [`lifecycle`]: pure and event-time driven (the detector's watermark is
//!   the clock): signal → `firing`, dedup by fingerprint (rule + key), repeats
//!   after `alert.repeat_interval`, `resolved` when the detector reports the
//!   condition cleared (one-shot kinds after `alert.resolve_after`), grouping
//!   by `alert.group_by`, silences. The same stream gives the same sequence of
//!   [`AlertOut`]s, with the same idempotency keys, in a live run and a replay.
//! * [`outbox`]: every state change that is to be delivered is written to a
//!   redb file before the source offset is stored; inserting a key that is
//!   already there is a no-op, so re-processing after a crash adds nothing.
//! * [`deliver`]: one tokio task per configured endpoint sends pending
//!   entries (Alertmanager v2 API, Alertmanager webhook v4, Slack, PagerDuty
//!   Events v2, generic Standard-Webhooks-signed JSON) with retries, and marks
//!   them done per endpoint. Delivery is at least once; receivers dedupe on
//!   the idempotency key (`webhook-id`, `Idempotency-Key`, payload field).
//! * [`service`]: starts the outbox and workers and answers [`api::AlertApi`].

pub mod api;
pub mod config;
pub mod deliver;
pub mod format;
pub mod incident;
pub mod lifecycle;
pub mod outbox;
pub mod service;
pub mod silence;

use earshot_core::types::{EventTime, Signal, SignalKey, SignalKind};

/// Errors of the alert stage.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("outbox {path}: {source}")]
    Outbox {
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
}

/// `firing` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// An alert state change ready for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertOut {
    /// Stable identity of the alert (rule + key); the Kafka message key.
    pub fingerprint: String,
    pub status: Status,
    /// Deterministic from content: the same change re-derived after a crash
    /// has the same key.
    pub idempotency_key: String,
    /// Label values of `alert.group_by` (`brand=Voltra`); related alerts share it.
    pub group_key: String,
    /// 0 info, 1 warning, 2 critical.
    pub severity: u8,
    /// Event time of the change.
    pub at: EventTime,
    /// 0 for the first `firing`, n for the n-th repeat.
    pub repeat: u32,
    /// Matched a silence: recorded on the alerts topic, not sent to endpoints.
    pub silenced: bool,
    pub payload: serde_json::Value,
    /// One line for people (stdout, logs).
    pub summary: String,
}

/// FNV-1a 64, hex.
pub fn fnv_hex(parts: &[&str]) -> String {
    format!("{:016x}", earshot_core::hash::fnv1a_joined(parts))
}

/// Fingerprint of rule and key: stable across runs, machines and versions.
pub fn fingerprint_of(kind: SignalKind, key: &SignalKey) -> String {
    fnv_hex(&[kind.as_str(), &key.to_string()])
}

/// FNV-1a 64 of rule and key, hex.
pub fn fingerprint(signal: &Signal) -> String {
    fingerprint_of(signal.kind, &signal.key)
}

pub use earshot_core::time::rfc3339;

/// Severity from the strength of the statistic.
pub fn severity(signal: &Signal) -> &'static str {
    if !signal.kind.is_crisis() {
        "info"
    } else if signal.p_value < 1e-6 {
        "critical"
    } else {
        "warning"
    }
}

/// One line: what, where, how much vs expected, since when, top terms.
pub fn summary(signal: &Signal) -> String {
    let terms: Vec<&str> = signal
        .explanation
        .top_terms
        .iter()
        .take(4)
        .map(|(t, _)| t.as_str())
        .collect();
    let quote = signal
        .explanation
        .quotes
        .first()
        .map(|q| format!(" — \"{}\"", clip(&q.text, 80)))
        .unwrap_or_default();
    format!(
        "[{}] {} on {}: {} vs {:.1} expected since {} (terms: {}){}",
        severity(signal),
        signal.kind.as_str(),
        signal.key,
        signal.observed,
        signal.expected,
        rfc3339(signal.window_start),
        if terms.is_empty() {
            "-".to_string()
        } else {
            terms.join(", ")
        },
        quote
    )
}

fn clip(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// What a URL query value keeps unencoded: RFC 3986 unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encoding of a URL query value (RFC 3986 unreserved kept).
pub fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// The Grafana dashboard (`earshot-brand`) filtered to the key, over the
/// alert's time range.
pub fn dashboard_url(grafana_url: &str, key: &SignalKey, from: EventTime, to: Option<EventTime>) -> String {
    let mut u = format!("{grafana_url}/d/earshot-brand/earshot-brand?orgId=1");
    for (d, v) in &key.0 {
        u.push_str(&format!("&var-{}={}", d.as_str(), url_encode(v)));
    }
    u.push_str(&format!("&from={}", from - 3_600_000));
    match to {
        Some(t) => u.push_str(&format!("&to={}", t + 3_600_000)),
        None => u.push_str("&to=now"),
    }
    u
}

/// The multi-line text for a phone: what, where, how much vs expected, since
/// when, three quotes, top terms, the dashboard link.
pub fn phone_text(signal: &Signal, status: Status, ends_at: Option<EventTime>, repeat: u32, url: &str) -> String {
    let what = signal.kind.as_str().replace('_', " ");
    let where_ = if signal.key.0.is_empty() {
        "all".to_string()
    } else {
        signal
            .key
            .0
            .iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let sev = severity(signal).to_uppercase();
    let mut t = match status {
        Status::Firing if repeat > 0 => format!("{sev} (still firing, reminder {repeat}): {what} — {where_}\n"),
        Status::Firing => format!("{sev}: {what} — {where_}\n"),
        Status::Resolved => format!("RESOLVED: {what} — {where_}\n"),
    };
    let ratio = if signal.expected > 0.0 {
        format!(" ({:.1}×)", signal.observed as f64 / signal.expected)
    } else {
        String::new()
    };
    t.push_str(&format!(
        "{} observed vs {:.1} expected{ratio}, since {}",
        signal.observed,
        signal.expected,
        rfc3339(signal.window_start)
    ));
    if let Some(e) = ends_at {
        t.push_str(&format!(", cleared {}", rfc3339(e)));
    }
    t.push('\n');
    let terms: Vec<&str> = signal
        .explanation
        .top_terms
        .iter()
        .take(5)
        .map(|(t, _)| t.as_str())
        .collect();
    if !terms.is_empty() {
        t.push_str(&format!("Top terms: {}\n", terms.join(", ")));
    }
    for q in signal.explanation.quotes.iter().take(3) {
        t.push_str(&format!("“{}” ({})\n", clip(&q.text, 140), q.lang));
    }
    t.push_str(&format!("Dashboard: {url}"));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_keep_only_unreserved_characters() {
        assert_eq!(url_encode("Voltra X2/ü-_.~&=#"), "Voltra%20X2%2F%C3%BC-_.~%26%3D%23");
    }

    #[test]
    fn dates_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_868_800_000), "2000-03-01T00:00:00Z");
        assert_eq!(
            earshot_core::time::parse_rfc3339(&rfc3339(1_795_000_123_000)),
            Some(1_795_000_123_000)
        );
    }

    #[test]
    fn dashboard_link_filters_to_the_key() {
        let key = SignalKey(vec![
            (earshot_core::types::Dim::Brand, "Voltra".into()),
            (earshot_core::types::Dim::Product, "X2 Power Bank".into()),
        ]);
        let u = dashboard_url("http://g:3000", &key, 7_200_000, None);
        assert_eq!(
            u,
            "http://g:3000/d/earshot-brand/earshot-brand?orgId=1&var-brand=Voltra&var-product=X2%20Power%20Bank&from=3600000&to=now"
        );
    }
}
