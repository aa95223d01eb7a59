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
///
/// Every piece of text that Slack parses as mrkdwn (the top-level `text`,
/// section and context texts) is escaped with [`slack_escape`]: quotes, top
/// terms, key values and product names come from customers, and `<!channel>`
/// or `<https://x|Reset password>` in a review must stay text, not a ping or
/// a link. Sections with customer text are also `verbatim`, so Slack does not
/// turn bare URLs or names into links. The header is `plain_text`, which Slack
/// does not parse, and is sent as is.
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
            "text": {
                "type": "mrkdwn",
                "text": format!("{icon} {}", slack_escape_clipped(s(&e.payload, "text"), 2900)),
                "verbatim": true,
            },
        }));
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!(
                "<{}|Dashboard> · fingerprint `{}` · id `{}`",
                slack_escape(s(&e.payload, "dashboard_url")),
                slack_escape(&e.fingerprint),
                slack_escape(&e.key),
            )}],
        }));
    }
    json!({"text": slack_escape(&head), "blocks": blocks})
}

/// Escapes text for Slack mrkdwn: `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`
/// (Slack's control characters: links, mentions, dates). Nothing else is
/// changed; Slack decodes exactly these three.
pub fn slack_escape(s: &str) -> String {
    slack_escape_clipped(s, usize::MAX)
}

/// [`slack_escape`], at most `max` characters of output, never cutting an
/// entity in two.
fn slack_escape_clipped(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut n = 0;
    for c in s.chars() {
        let piece = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            _ => {
                if n + 1 > max {
                    break;
                }
                out.push(c);
                n += 1;
                continue;
            }
        };
        if n + piece.len() > max {
            break;
        }
        out.push_str(piece);
        n += piece.len();
    }
    out
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

#[cfg(test)]
mod tests {
    use earshot_core::types::{Dim, Explanation, Quote, Signal, SignalKey, SignalKind};

    use super::*;
    use crate::lifecycle::{Lifecycle, LifecycleConfig};
    use crate::silence::Silences;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_795_000_000_000;
    const PING: &str = "<!channel> refund now";
    const LINK: &str = "<https://x|Reset password>";

    /// Alert changes whose quotes, top terms, brand and product are hostile mrkdwn.
    fn hostile() -> Vec<Entry> {
        let cfg = LifecycleConfig {
            grafana_url: "http://grafana:3000".into(),
            resolve_after: 60 * MIN,
            repeat_interval: 30 * MIN,
            group_by: vec![Dim::Brand],
            correlate: crate::incident::CorrelateConfig::default(),
        };
        let mut lc = Lifecycle::new(cfg, Silences::default());
        let signal = |product: &str| Signal {
            kind: SignalKind::VolumeSpike,
            key: SignalKey(vec![
                (Dim::Brand, "<!here> & Co".into()),
                (Dim::Product, product.into()),
            ]),
            window_start: T0 - 15 * MIN,
            window_end: T0,
            observed: 42,
            expected: 6.0,
            population: 100,
            baseline_share: 0.1,
            p_value: 1e-9,
            cluster: None,
            reason: None,
            explanation: Explanation {
                quotes: [PING, LINK, "fine & <b>dandy</b>"]
                    .iter()
                    .enumerate()
                    .map(|(i, t)| Quote {
                        id: format!("q{i}"),
                        text: t.to_string(),
                        lang: "en".into(),
                        event_time: T0,
                    })
                    .collect(),
                top_terms: vec![("<@U024BE7LH>".into(), 9), ("<#C024BE7LR>".into(), 7)],
                ..Default::default()
            },
        };
        let out = lc.step(&[signal("<!everyone>"), signal(LINK)], &[], Some(T0));
        assert_eq!(out.len(), 2);
        out.iter().map(Entry::from).collect()
    }

    /// Every text Slack parses as mrkdwn: the top-level `text` and the
    /// `mrkdwn` objects of the blocks.
    fn mrkdwn_texts(msg: &Value) -> Vec<String> {
        let mut out = vec![msg["text"].as_str().unwrap().to_string()];
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(o) => {
                    if o.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                        out.push(o["text"].as_str().unwrap().to_string());
                    }
                    o.values().for_each(|x| walk(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        walk(&msg["blocks"], &mut out);
        out
    }

    #[test]
    fn slack_escapes_the_three_control_characters_only() {
        assert_eq!(
            slack_escape("<!channel> & <https://x|Reset password> *bold*"),
            "&lt;!channel&gt; &amp; &lt;https://x|Reset password&gt; *bold*"
        );
        assert_eq!(slack_escape("ümlaut “quote”"), "ümlaut “quote”");
        // Clipping never leaves half an entity.
        assert_eq!(slack_escape_clipped("ab<cd", 5), "ab");
        assert_eq!(slack_escape_clipped("ab<cd", 6), "ab&lt;");
        assert_eq!(slack_escape_clipped("ab<cd", 7), "ab&lt;c");
    }

    #[test]
    fn customer_text_in_slack_messages_cannot_ping_or_link() {
        let entries = hostile();
        let refs: Vec<&Entry> = entries.iter().collect();
        for batch in [&refs[..1], &refs[..]] {
            let msg = slack(batch);
            let texts = mrkdwn_texts(&msg);
            assert!(texts.len() >= 3, "{msg:#}");
            let all = texts.join("\n");
            for hostile in [
                "&lt;!channel&gt;",
                "&lt;https://x|Reset password&gt;",
                "&lt;@U024BE7LH&gt;",
            ] {
                assert!(all.contains(hostile), "{hostile} escaped in {all}");
            }
            assert!(all.contains("&lt;!here&gt; &amp; Co"), "key values escaped: {all}");
            for t in &texts {
                // The only markup left is our own dashboard link.
                let own = t
                    .find("<http://grafana:3000/")
                    .map(|i| i + t[i..].find("|Dashboard>").unwrap() + "|Dashboard>".len());
                let rest = match own {
                    Some(end) => format!("{}{}", &t[..t.find("<http://grafana:3000/").unwrap()], &t[end..]),
                    None => t.clone(),
                };
                assert!(!rest.contains('<') && !rest.contains('>'), "unescaped markup in {t}");
                let dashboard = own.map(|end| &t[..end]).unwrap_or("");
                assert!(
                    own.is_none() || dashboard.contains("?orgId=1&amp;var-brand="),
                    "{dashboard}"
                );
            }
            // Customer text sections are verbatim: no automatic links.
            let sections: Vec<&Value> = msg["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| b["type"] == "section")
                .collect();
            assert!(sections.iter().all(|b| b["text"]["verbatim"] == true));
            // The header is plain_text, which Slack does not parse.
            assert_eq!(msg["blocks"][0]["text"]["type"], "plain_text");
        }
    }

    #[test]
    fn json_formats_carry_customer_text_unchanged() {
        let entries = hostile();
        let e = &entries[0];
        let quotes = e.payload["quotes"].to_string();
        assert!(quotes.contains(PING), "{quotes}");
        // JSON fields, not markup: PagerDuty, Alertmanager and generic keep the text as written.
        let pd = pagerduty("rk", e);
        assert!(pd["payload"]["custom_details"]["text"].as_str().unwrap().contains(PING));
        let am = alertmanager_alerts(&[e], T0, 60_000);
        assert!(am[0]["annotations"]["description"].as_str().unwrap().contains(LINK));
        assert_eq!(generic(e)["data"]["quotes"][0], PING);
    }
}
