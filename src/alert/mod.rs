//! From detector signals to alert messages: a stable fingerprint (rule +
//! key), a JSON payload with the explanation, and a one-line summary that
//! reads well on a phone.
//!
//! This release emits one `firing` message per signal onset (the detector
//! already suppresses repeats until the condition clears). Resolution,
//! grouping, silences and webhook delivery come with the alert-delivery work.

pub mod api;

use crate::types::{EventTime, Signal};

/// An alert state change ready for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertOut {
    /// Stable identity of the alert (rule + key); the Kafka message key.
    pub fingerprint: String,
    pub payload: serde_json::Value,
    /// One line for people (stdout, logs).
    pub summary: String,
}

/// FNV-1a 64 of rule and key, hex: stable across runs, machines and versions.
pub fn fingerprint(signal: &Signal) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{}|{}", signal.kind.as_str(), signal.key).bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn rfc3339(t: EventTime) -> String {
    let secs = t.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

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
        .map(|q| {
            let mut s: String = q.text.chars().take(80).collect();
            if s.len() < q.text.len() {
                s.push('…');
            }
            format!(" — \"{s}\"")
        })
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

/// The alert message for a signal onset.
pub fn from_signal(signal: &Signal) -> AlertOut {
    let fp = fingerprint(signal);
    let labels: serde_json::Map<String, serde_json::Value> = signal
        .key
        .0
        .iter()
        .map(|(d, v)| (d.as_str().to_string(), serde_json::Value::from(v.clone())))
        .collect();
    let payload = serde_json::json!({
        "fingerprint": fp,
        "status": "firing",
        "rule": signal.kind.as_str(),
        "severity": severity(signal),
        "key": signal.key.to_string(),
        "labels": labels,
        "starts_at": rfc3339(signal.window_start),
        "window_end": rfc3339(signal.window_end),
        "summary": summary(signal),
        "signal": signal,
    });
    AlertOut {
        fingerprint: fp,
        payload,
        summary: summary(signal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_868_800_000), "2000-03-01T00:00:00Z");
        assert_eq!(
            crate::ingest::mapping::parse_rfc3339(&rfc3339(1_795_000_123_000)),
            Some(1_795_000_123_000)
        );
    }
}
