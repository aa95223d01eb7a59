//! Wire formats of the endpoints, from outbox entries: Alertmanager v2 API
//! (`POST /api/v2/alerts`), Alertmanager webhook v4, Slack incoming webhook,
//! PagerDuty Events v2 and a generic JSON body signed per Standard Webhooks.
//! Pure functions of the entries (and, for Alertmanager, the wall clock that
//! sets `endsAt` of firing alerts).

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::outbox::Entry;
use super::{fnv_hex, rfc3339, Status};
use crate::config::{SinkKind, SinkSpec};

/// One HTTP request's worth of entries.
#[derive(Debug, Clone)]
pub struct Message {
    /// Outbox sequence numbers it carries.
    pub seqs: Vec<u64>,
    /// The idempotency key (single entry: the entry's key; several: a hash of theirs).
    pub id: String,
    pub body: Vec<u8>,
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn labels(e: &Entry) -> serde_json::Map<String, Value> {
    let mut l: serde_json::Map<String, Value> = e.payload["labels"].as_object().cloned().unwrap_or_default();
    l.insert("alertname".into(), json!(s(&e.payload, "rule")));
    l.remove("rule");
    l.insert("fingerprint".into(), json!(e.fingerprint));
    l
}

fn annotations(e: &Entry) -> Value {
    json!({
        "summary": s(&e.payload, "summary"),
        "description": s(&e.payload, "text"),
        "dashboard": s(&e.payload, "dashboard_url"),
        "idempotency_key": e.key,
    })
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Alertmanager v2 API alerts: firing alerts end `firing_ttl_ms` after `now`
/// (re-sent before that), resolved ones at their event time (never after
/// `now`, never before `startsAt`).
pub fn alertmanager_alerts(entries: &[&Entry], now_ms: i64, firing_ttl_ms: i64) -> Value {
    let alerts: Vec<Value> = entries
        .iter()
        .map(|e| {
            let starts = earshot_core::time::parse_rfc3339(s(&e.payload, "starts_at")).unwrap_or(e.at);
            let ends = match e.status {
                Status::Firing => now_ms + firing_ttl_ms,
                Status::Resolved => e.at.min(now_ms).max(starts + 1000),
            };
            json!({
                "labels": labels(e),
                "annotations": annotations(e),
                "startsAt": rfc3339(starts),
                "endsAt": rfc3339(ends),
                "generatorURL": s(&e.payload, "dashboard_url"),
            })
        })
        .collect();
    Value::Array(alerts)
}

fn group_id(entries: &[&Entry]) -> String {
    if entries.len() == 1 {
        return entries[0].key.clone();
    }
    let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    fnv_hex(&keys)
}

/// Alertmanager webhook payload (version 4) for one group.
pub fn am_webhook(receiver: &str, external_url: &str, entries: &[&Entry]) -> Value {
    let group = entries.first().map_or("", |e| e.group_key.as_str());
    let group_labels: serde_json::Map<String, Value> = group
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let alerts: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "status": e.status.as_str(),
                "labels": labels(e),
                "annotations": annotations(e),
                "startsAt": s(&e.payload, "starts_at"),
                "endsAt": match e.status { Status::Firing => ZERO_TIME.to_string(), Status::Resolved => s(&e.payload, "ends_at").to_string() },
                "generatorURL": s(&e.payload, "dashboard_url"),
                "fingerprint": e.fingerprint,
            })
        })
        .collect();
    // Labels and annotations every alert shares.
    let mut common = labels(entries[0]);
    for e in &entries[1..] {
        let l = labels(e);
        common.retain(|k, v| l.get(k) == Some(v));
    }
    let firing = entries.iter().any(|e| e.status == Status::Firing);
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{{group}}}"),
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": external_url,
        "alerts": alerts,
    })
}

/// Slack incoming webhook: `text` (fallback, notifications) and `blocks`.
pub fn slack(entries: &[&Entry]) -> Value {
    let group = entries.first().map_or("", |e| e.group_key.as_str());
    let firing = entries.iter().filter(|e| e.status == Status::Firing).count();
    let head = if entries.len() == 1 {
        s(&entries[0].payload, "summary").to_string()
    } else {
        format!("{} alert changes for {group} ({firing} firing)", entries.len())
    };
    let mut blocks = vec![json!({"type": "header", "text": {"type": "plain_text", "text": clip(&head, 150)}})];
    for e in entries {
        let icon = match (e.status, s(&e.payload, "severity")) {
            (Status::Resolved, _) => ":white_check_mark:",
            (_, "critical") => ":red_circle:",
            (_, "warning") => ":large_orange_circle:",
            _ => ":large_blue_circle:",
        };
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(&format!("{icon} {}", s(&e.payload, "text")), 3000)},
        }));
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("<{}|Dashboard> · fingerprint `{}` · id `{}`", s(&e.payload, "dashboard_url"), e.fingerprint, e.key)}],
        }));
    }
    json!({"text": head, "blocks": blocks})
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// PagerDuty Events v2 event for one entry.
pub fn pagerduty(routing_key: &str, e: &Entry) -> Value {
    let action = match e.status {
        Status::Firing => "trigger",
        Status::Resolved => "resolve",
    };
    let mut ev = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": e.fingerprint,
    });
    if e.status == Status::Firing {
        ev["payload"] = json!({
            "summary": clip(s(&e.payload, "summary"), 1024),
            "source": "earshot",
            "severity": s(&e.payload, "severity"),
            "timestamp": s(&e.payload, "at"),
            "component": s(&e.payload, "key"),
            "group": e.group_key,
            "class": s(&e.payload, "rule"),
            "custom_details": {
                "text": s(&e.payload, "text"),
                "idempotency_key": e.key,
                "observed": e.payload["observed"],
                "expected": e.payload["expected"],
            },
        });
        ev["links"] = json!([{"href": s(&e.payload, "dashboard_url"), "text": "Grafana"}]);
    }
    ev
}

/// Generic webhook body (Standard Webhooks shape).
pub fn generic(e: &Entry) -> Value {
    json!({
        "type": format!("alert.{}", e.status.as_str()),
        "timestamp": s(&e.payload, "at"),
        "data": e.payload,
    })
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The requests for a batch of entries (each entry at most once): one per
/// group for Alertmanager webhook and Slack, one for all of them for the
/// Alertmanager API, one per entry for PagerDuty and generic.
pub fn messages(spec: &SinkSpec, external_url: &str, batch: &[(u64, Entry)], now_ms: i64) -> Vec<Message> {
    let by_group = || {
        let mut groups: Vec<(String, Vec<&(u64, Entry)>)> = Vec::new();
        for item in batch {
            match groups.iter_mut().find(|(g, _)| *g == item.1.group_key) {
                Some((_, v)) => v.push(item),
                None => groups.push((item.1.group_key.clone(), vec![item])),
            }
        }
        groups
    };
    let one = |items: &[&(u64, Entry)], body: Value| {
        let entries: Vec<&Entry> = items.iter().map(|(_, e)| e).collect();
        Message {
            seqs: items.iter().map(|(s, _)| *s).collect(),
            id: group_id(&entries),
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    };
    match spec.kind {
        SinkKind::Alertmanager => {
            if batch.is_empty() {
                return Vec::new();
            }
            let items: Vec<&(u64, Entry)> = batch.iter().collect();
            let entries: Vec<&Entry> = items.iter().map(|(_, e)| e).collect();
            let ttl = 4 * spec.resend_interval.as_millis() as i64;
            vec![one(&items, alertmanager_alerts(&entries, now_ms, ttl))]
        }
        SinkKind::AlertmanagerWebhook => by_group()
            .into_iter()
            .map(|(_, items)| {
                let entries: Vec<&Entry> = items.iter().map(|(_, e)| e).collect();
                one(&items, am_webhook(&spec.name, external_url, &entries))
            })
            .collect(),
        SinkKind::Slack => by_group()
            .into_iter()
            .map(|(_, items)| {
                let entries: Vec<&Entry> = items.iter().map(|(_, e)| e).collect();
                one(&items, slack(&entries))
            })
            .collect(),
        SinkKind::PagerDuty => {
            let rk = spec
                .routing_key
                .as_ref()
                .map(|k| String::from_utf8_lossy(&k.0).to_string())
                .unwrap_or_default();
            batch.iter().map(|item| one(&[item], pagerduty(&rk, &item.1))).collect()
        }
        SinkKind::Generic => batch.iter().map(|item| one(&[item], generic(&item.1))).collect(),
    }
}
