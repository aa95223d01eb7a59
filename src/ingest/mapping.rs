//! Decoding source messages into [`Event`]s with configurable field paths.
//!
//! A path is dot-separated keys, with numeric segments indexing arrays
//! (`review.body`, `items.0.text`). Every failure is a [`DeadLetter`] with a
//! stable reason code and a message naming the field and the fix; nothing is
//! dropped silently.

use earshot_core::time::parse_rfc3339;
use serde::Deserialize;
use serde_json::Value;

use crate::types::{Event, EventTime, KeyDims, SourcePos};

/// Why a message could not become an event. `code()` is stable: it is the
/// dead-letter header value and a metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadLetter {
    #[error("message is not valid UTF-8 (byte {0}); producers must send UTF-8 JSON")]
    InvalidUtf8(usize),
    #[error("message is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("message is JSON but not an object; send one JSON object per message")]
    NotAnObject,
    #[error("field `{0}` is missing; set `mapping.{1}` to the path that holds it")]
    MissingField(String, &'static str),
    #[error("field `{path}` must be {expected}, found {found}")]
    WrongType {
        path: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field `{0}` is empty; a review needs non-whitespace text")]
    EmptyText(String),
    #[error("text is {size} bytes, over the {limit}-byte limit (`mapping.max_text_bytes`)")]
    Oversize { size: usize, limit: usize },
    #[error("field `{path}` is not a time: {message}; use RFC 3339 or epoch seconds/milliseconds")]
    BadTime { path: String, message: String },
    #[error("message has no payload")]
    NoPayload,
}

impl DeadLetter {
    pub fn code(&self) -> &'static str {
        match self {
            DeadLetter::InvalidUtf8(_) => "invalid_utf8",
            DeadLetter::InvalidJson(_) => "invalid_json",
            DeadLetter::NotAnObject => "not_an_object",
            DeadLetter::MissingField(..) => "missing_field",
            DeadLetter::WrongType { .. } => "wrong_type",
            DeadLetter::EmptyText(_) => "empty_text",
            DeadLetter::Oversize { .. } => "oversize",
            DeadLetter::BadTime { .. } => "bad_time",
            DeadLetter::NoPayload => "no_payload",
        }
    }

    /// Every reason code, for metrics initialisation and docs.
    pub const CODES: [&'static str; 9] = [
        "invalid_utf8",
        "invalid_json",
        "not_an_object",
        "missing_field",
        "wrong_type",
        "empty_text",
        "oversize",
        "bad_time",
        "no_payload",
    ];
}

/// `[mapping]`: where each field lives in a message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Event id; when absent the source position (`topic/partition/offset`) is used.
    #[serde(default = "d_id")]
    pub id: String,
    #[serde(default = "d_text")]
    pub text: String,
    #[serde(default = "d_brand")]
    pub brand: String,
    #[serde(default = "d_product")]
    pub product: String,
    #[serde(default = "d_sku")]
    pub sku: String,
    #[serde(default = "d_region")]
    pub region: String,
    #[serde(default = "d_channel")]
    pub channel: String,
    #[serde(default = "d_rating")]
    pub rating: String,
    #[serde(default = "d_lang")]
    pub lang: String,
    #[serde(default = "d_author")]
    pub author: String,
    /// Event time; when absent the message timestamp is used.
    #[serde(default = "d_event_time")]
    pub event_time: String,
    #[serde(default = "d_replied_at")]
    pub replied_at: String,
    /// A message with this field is a reply to the review it names (no
    /// text needed); its time is `replied_at`, else the event time.
    #[serde(default = "d_reply_to")]
    pub reply_to: String,
    /// Larger texts are dead-lettered as `oversize` (the model reads 512
    /// tokens; a limit keeps a runaway producer from stalling the pipeline).
    #[serde(default = "d_max_text_bytes")]
    pub max_text_bytes: usize,
}

fn d_id() -> String {
    "id".into()
}
fn d_text() -> String {
    "text".into()
}
fn d_brand() -> String {
    "brand".into()
}
fn d_product() -> String {
    "product".into()
}
fn d_sku() -> String {
    "sku".into()
}
fn d_region() -> String {
    "region".into()
}
fn d_channel() -> String {
    "channel".into()
}
fn d_rating() -> String {
    "rating".into()
}
fn d_lang() -> String {
    "lang".into()
}
fn d_author() -> String {
    "author".into()
}
fn d_event_time() -> String {
    "event_time".into()
}
fn d_replied_at() -> String {
    "replied_at".into()
}
fn d_reply_to() -> String {
    "reply_to".into()
}
fn d_max_text_bytes() -> usize {
    64 * 1024
}

impl Default for Mapping {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    let mut cur = root;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!cur.is_null()).then_some(cur)
}

/// How a JSON value is named in error messages (`a string`, `null`, ...).
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses RFC 3339 or epoch seconds / milliseconds (numbers above 10^11 are
/// taken as milliseconds).
pub fn parse_time(v: &Value) -> Result<EventTime, String> {
    match v {
        Value::Number(n) => {
            let f = n.as_f64().ok_or("not a finite number")?;
            if !f.is_finite() || f < 0.0 {
                return Err(format!("{f} is not a valid epoch time"));
            }
            Ok(if f > 1e11 { f as i64 } else { (f * 1000.0) as i64 })
        }
        Value::String(s) => {
            if let Ok(n) = s.trim().parse::<f64>() {
                return parse_time(&Value::from(n));
            }
            parse_rfc3339(s).ok_or_else(|| format!("`{s}` is not RFC 3339 (e.g. 2026-11-23T18:00:00Z)"))
        }
        other => Err(format!("found {}", kind(other))),
    }
}

impl Mapping {
    fn opt_string(&self, root: &Value, path: &str) -> Result<Option<String>, DeadLetter> {
        match lookup(root, path) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(DeadLetter::WrongType {
                path: path.to_string(),
                expected: "a string",
                found: kind(other),
            }),
        }
    }

    /// Decodes one message payload. `fallback_time` is the message timestamp
    /// (used when the event-time field is absent); `pos` names the message.
    pub fn decode(
        &self,
        payload: Option<&[u8]>,
        fallback_time: Option<EventTime>,
        pos: SourcePos,
    ) -> Result<Event, DeadLetter> {
        let bytes = payload.ok_or(DeadLetter::NoPayload)?;
        let text = std::str::from_utf8(bytes).map_err(|e| DeadLetter::InvalidUtf8(e.valid_up_to()))?;
        let root: Value = serde_json::from_str(text).map_err(|e| DeadLetter::InvalidJson(e.to_string()))?;
        if !root.is_object() {
            return Err(DeadLetter::NotAnObject);
        }
        let time_of = |path: &str| -> Result<Option<EventTime>, DeadLetter> {
            lookup(&root, path)
                .map(|v| {
                    parse_time(v).map_err(|message| DeadLetter::BadTime {
                        path: path.to_string(),
                        message,
                    })
                })
                .transpose()
        };
        let id_of = |root: &Value| -> Result<String, DeadLetter> {
            Ok(self
                .opt_string(root, &self.id)?
                .unwrap_or_else(|| format!("{}/{}/{}", pos.source, pos.partition, pos.offset)))
        };
        if let Some(target) = self.opt_string(&root, &self.reply_to)? {
            let at = match time_of(&self.replied_at)?
                .or(time_of(&self.event_time)?)
                .or(fallback_time)
            {
                Some(t) => t,
                None => return Err(DeadLetter::MissingField(self.replied_at.clone(), "replied_at")),
            };
            return Ok(Event {
                id: id_of(&root)?,
                key: KeyDims::default(),
                text: String::new(),
                lang: None,
                rating: None,
                author: None,
                event_time: at,
                replied_at: Some(at),
                reply_to: Some(target),
                pos: Some(pos),
            });
        }
        let body = match lookup(&root, &self.text) {
            None => return Err(DeadLetter::MissingField(self.text.clone(), "text")),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(DeadLetter::WrongType {
                    path: self.text.clone(),
                    expected: "a string",
                    found: kind(other),
                })
            }
        };
        if body.trim().is_empty() {
            return Err(DeadLetter::EmptyText(self.text.clone()));
        }
        if body.len() > self.max_text_bytes {
            return Err(DeadLetter::Oversize {
                size: body.len(),
                limit: self.max_text_bytes,
            });
        }
        let rating = match lookup(&root, &self.rating) {
            None => None,
            Some(Value::Number(n)) => n.as_f64().map(|f| f as f32),
            Some(Value::String(s)) if s.trim().parse::<f32>().is_ok() => s.trim().parse().ok(),
            Some(other) => {
                return Err(DeadLetter::WrongType {
                    path: self.rating.clone(),
                    expected: "a number",
                    found: kind(other),
                })
            }
        };
        let event_time = match time_of(&self.event_time)?.or(fallback_time) {
            Some(t) => t,
            None => return Err(DeadLetter::MissingField(self.event_time.clone(), "event_time")),
        };
        let id = id_of(&root)?;
        Ok(Event {
            id,
            key: KeyDims {
                brand: self.opt_string(&root, &self.brand)?,
                product: self.opt_string(&root, &self.product)?,
                sku: self.opt_string(&root, &self.sku)?,
                region: self.opt_string(&root, &self.region)?,
                channel: self.opt_string(&root, &self.channel)?,
            },
            text: body,
            lang: self.opt_string(&root, &self.lang)?,
            rating,
            author: self.opt_string(&root, &self.author)?,
            event_time,
            replied_at: time_of(&self.replied_at)?,
            reply_to: None,
            pos: Some(pos),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos() -> SourcePos {
        SourcePos {
            source: "reviews".into(),
            partition: 3,
            offset: 42,
        }
    }

    #[test]
    fn decodes_nested_paths_and_falls_back() {
        let m = Mapping {
            text: "review.body".into(),
            brand: "meta.brand".into(),
            event_time: "ts".into(),
            ..Mapping::default()
        };
        let msg = br#"{"review": {"body": "Akku kaputt"}, "meta": {"brand": "Voltra"}, "rating": "1", "ts": "2026-11-23T18:00:00.250+01:00"}"#;
        let e = m.decode(Some(msg), Some(5), pos()).unwrap();
        assert_eq!(e.text, "Akku kaputt");
        assert_eq!(e.key.brand.as_deref(), Some("Voltra"));
        assert_eq!(e.rating, Some(1.0));
        assert_eq!(e.id, "reviews/3/42");
        assert_eq!(e.event_time, parse_rfc3339("2026-11-23T17:00:00.250Z").unwrap());
        // No time field: message timestamp.
        let e = m
            .decode(Some(br#"{"review": {"body": "ok"}}"#), Some(1234), pos())
            .unwrap();
        assert_eq!(e.event_time, 1234);
    }

    #[test]
    fn a_reply_needs_no_text_and_takes_its_time_from_replied_at() {
        let m = Mapping::default();
        let msg = br#"{"id": "a1", "reply_to": "r9", "replied_at": "2026-11-23T18:00:00Z", "event_time": 5}"#;
        let e = m.decode(Some(msg), Some(1), pos()).unwrap();
        assert_eq!(e.reply_to.as_deref(), Some("r9"));
        assert_eq!(e.id, "a1");
        assert!(e.text.is_empty());
        let at = parse_rfc3339("2026-11-23T18:00:00Z").unwrap();
        assert_eq!((e.event_time, e.replied_at), (at, Some(at)));
        // Without `replied_at`: the event time, then the message timestamp.
        let e = m
            .decode(Some(br#"{"reply_to": "r9", "event_time": 5}"#), Some(1), pos())
            .unwrap();
        let five = parse_time(&serde_json::json!(5)).unwrap();
        assert_eq!((e.event_time, e.replied_at), (five, Some(five)));
        let e = m.decode(Some(br#"{"reply_to": "r9"}"#), Some(1), pos()).unwrap();
        assert_eq!(e.replied_at, Some(1));
        let err = m.decode(Some(br#"{"reply_to": "r9"}"#), None, pos()).unwrap_err();
        assert_eq!(err.code(), "missing_field");
        assert!(err.to_string().contains("replied_at"), "{err}");
        let err = m.decode(Some(br#"{"reply_to": ["r9"]}"#), Some(1), pos()).unwrap_err();
        assert!(err.to_string().contains("reply_to"), "{err}");
        // A review is still a review.
        let e = m
            .decode(Some(br#"{"text": "ok", "event_time": 5}"#), None, pos())
            .unwrap();
        assert_eq!(e.reply_to, None);
    }

    #[test]
    fn every_bad_message_has_a_reason() {
        let m = Mapping::default();
        let cases: Vec<(&[u8], &str)> = vec![
            (b"\xff{}", "invalid_utf8"),
            (b"{nope", "invalid_json"),
            (b"[1,2]", "not_an_object"),
            (br#"{"id": "x"}"#, "missing_field"),
            (br#"{"text": 5}"#, "wrong_type"),
            (br#"{"text": "  "}"#, "empty_text"),
            (br#"{"text": "ok", "event_time": "yesterday"}"#, "bad_time"),
            (br#"{"text": "ok", "rating": "five"}"#, "wrong_type"),
        ];
        for (msg, code) in cases {
            let err = m.decode(Some(msg), Some(0), pos()).unwrap_err();
            assert_eq!(err.code(), code, "{}", String::from_utf8_lossy(msg));
            assert!(!err.to_string().is_empty());
        }
        let big = format!(r#"{{"text": "{}"}}"#, "a".repeat(70_000));
        assert_eq!(
            m.decode(Some(big.as_bytes()), Some(0), pos()).unwrap_err().code(),
            "oversize"
        );
        assert_eq!(m.decode(None, Some(0), pos()).unwrap_err().code(), "no_payload");
        // No time anywhere.
        assert_eq!(
            m.decode(Some(br#"{"text": "ok"}"#), None, pos()).unwrap_err().code(),
            "missing_field"
        );
    }

    #[test]
    fn times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        assert_eq!(parse_time(&Value::from(1_700_000_000)), Ok(1_700_000_000_000));
        assert_eq!(parse_time(&Value::from(1_700_000_000_123i64)), Ok(1_700_000_000_123));
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_none());
    }
}
