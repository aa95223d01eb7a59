//! Decoding source messages into [`Event`]s with configurable field paths.
//!
//! A path is dot-separated keys, with numeric segments indexing arrays
//! (`review.body`, `items.0.text`). Every failure is a [`DeadLetter`] with a
//! stable reason code and a message naming the field and the fix; nothing is
//! dropped silently.
//!
//! Event-time sanity: every time read from a message (the event time, a reply
//! time, or the message timestamp standing in for a missing event time) must
//! lie in [`Mapping::time_range`], else the message is a `bad_time` dead
//! letter. One absurd time would otherwise move the detector's watermark to it
//! and make every later event of the partition "too late". Numeric epochs are
//! seconds (below 10^11) or milliseconds (below 10^14); larger numbers look
//! like microseconds or nanoseconds and are rejected with the unit named.

use earshot_core::time::{parse_rfc3339, rfc3339};
use serde::{Deserialize, Deserializer};
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
    /// A readable time outside [`Mapping::time_range`] (code `bad_time` too).
    #[error("{what} = {given} is outside the accepted range {from} .. {to}: {why}")]
    TimeOutOfRange {
        /// "field `event_time`", or the message timestamp standing in for it.
        what: String,
        /// The value as given (short), with how it was read.
        given: String,
        from: String,
        to: String,
        /// Which bound it broke, and the fix.
        why: String,
    },
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
            DeadLetter::BadTime { .. } | DeadLetter::TimeOutOfRange { .. } => "bad_time",
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
    /// Event times more than this far ahead of the message timestamp (or of
    /// the wall clock, whichever is earlier) are dead-lettered as `bad_time`.
    #[serde(default = "d_max_skew_secs")]
    pub max_skew_secs: u64,
    /// Event times more than this far behind the message timestamp are
    /// dead-lettered as `bad_time`; 0 (the default) turns the check off.
    /// Messages without a timestamp (files) are never checked against it.
    #[serde(default)]
    pub max_age_hours: u64,
    /// Event times before this (RFC 3339, ms since the epoch once read) are
    /// dead-lettered as `bad_time`.
    #[serde(default = "d_min_event_time", deserialize_with = "rfc3339_value")]
    pub min_event_time: EventTime,
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
fn d_max_skew_secs() -> u64 {
    3600
}
fn d_min_event_time() -> EventTime {
    MIN_EVENT_TIME_DEFAULT
}

/// 2000-01-01T00:00:00Z: no review stream holds older events, and epoch 0
/// (a common "unset" value) lies before it.
pub const MIN_EVENT_TIME_DEFAULT: EventTime = 946_684_800_000;

/// Largest `mapping.max_skew_secs` / `mapping.max_age_hours` accepted: 100 years.
pub const MAX_TIME_WINDOW_SECS: u64 = 100 * 365 * 86_400;

/// `min_event_time` as a TOML string or a TOML date-time, both RFC 3339.
fn rfc3339_value<'de, D: Deserializer<'de>>(d: D) -> Result<EventTime, D::Error> {
    let text = match toml::Value::deserialize(d)? {
        toml::Value::String(s) => s,
        toml::Value::Datetime(t) => t.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected an RFC 3339 time such as \"2000-01-01T00:00:00Z\", found {}",
                other.type_str()
            )))
        }
    };
    parse_rfc3339(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{text}` is not an RFC 3339 time with a UTC offset (e.g. \"2000-01-01T00:00:00Z\")"
        ))
    })
}

impl Default for Mapping {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

/// The value at `path`, `null` treated as absent.
fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    lookup_raw(root, path).filter(|v| !v.is_null())
}

/// The value at `path`, `null` included (for required fields: a `null` text
/// is a wrong type, not a missing field).
fn lookup_raw<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
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
    Some(cur)
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

/// A value as it may appear in an error message: strings cut to 40
/// characters; numbers are passed as serde_json writes them (`1e+300`, not
/// 301 digits).
fn short(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("`{}…`", &s[..cut]),
        None => format!("`{s}`"),
    }
}

/// The unit of a numeric epoch, from its magnitude: seconds up to 10^11
/// (year 5138), milliseconds up to 10^14, microseconds up to 10^17,
/// nanoseconds up to 10^20. Each range holds every date from 1973 to 5138
/// once, so a plausible time has exactly one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl EpochUnit {
    /// The unit a number's magnitude suggests; `None` beyond nanoseconds.
    pub fn of(f: f64) -> Option<Self> {
        let a = f.abs();
        Some(if a <= 1e11 {
            EpochUnit::Seconds
        } else if a <= 1e14 {
            EpochUnit::Millis
        } else if a <= 1e17 {
            EpochUnit::Micros
        } else if a <= 1e20 {
            EpochUnit::Nanos
        } else {
            return None;
        })
    }

    fn name(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "seconds",
            EpochUnit::Millis => "milliseconds",
            EpochUnit::Micros => "microseconds",
            EpochUnit::Nanos => "nanoseconds",
        }
    }
}

/// An epoch number (`text` is how it was written) to event time.
fn epoch(f: f64, text: &str) -> Result<(EventTime, EpochUnit), String> {
    if !f.is_finite() {
        return Err(format!("{} is not a finite number", short(text)));
    }
    if f < 0.0 {
        return Err(format!("epoch {} is negative (before 1970)", short(text)));
    }
    match EpochUnit::of(f) {
        Some(u @ EpochUnit::Seconds) => Ok(((f * 1000.0) as EventTime, u)),
        Some(u @ EpochUnit::Millis) => Ok((f as EventTime, u)),
        Some(u @ (EpochUnit::Micros | EpochUnit::Nanos)) => {
            let (div, by) = if u == EpochUnit::Micros {
                (1e3, "1000")
            } else {
                (1e6, "1000000")
            };
            Err(format!(
                "epoch {} looks like {} ({}): divide by {by} to send milliseconds",
                short(text),
                u.name(),
                rfc3339((f / div) as EventTime),
            ))
        }
        None => Err(format!(
            "epoch {} is too large for seconds, milliseconds, microseconds or nanoseconds",
            short(text)
        )),
    }
}

/// Parses RFC 3339 or epoch seconds / milliseconds (see [`EpochUnit`]; a
/// number above 10^11 is milliseconds, above 10^14 an error naming the unit it
/// looks like). Numbers may be JSON numbers or numeric strings.
pub fn parse_time(v: &Value) -> Result<EventTime, String> {
    read_time(v).map(|(t, _)| t)
}

/// [`parse_time`], plus how the value is shown in an out-of-range message.
fn read_time(v: &Value) -> Result<(EventTime, String), String> {
    let shown =
        |text: &str, t: EventTime, u: EpochUnit| format!("{} (epoch {}, {})", short(text), u.name(), rfc3339(t));
    match v {
        Value::Number(n) => {
            let text = n.to_string();
            let f = n
                .as_f64()
                .ok_or_else(|| format!("{} is not a finite number", short(&text)))?;
            let (t, u) = epoch(f, &text)?;
            Ok((t, shown(&text, t, u)))
        }
        Value::String(s) => {
            if let Ok(f) = s.trim().parse::<f64>() {
                let (t, u) = epoch(f, s.trim())?;
                return Ok((t, shown(s.trim(), t, u)));
            }
            match parse_rfc3339(s) {
                Some(t) => Ok((t, short(s))),
                None => Err(format!("{} is not RFC 3339 (e.g. 2026-11-23T18:00:00Z)", short(s))),
            }
        }
        other => Err(format!("found {}", kind(other))),
    }
}

/// The event times [`Mapping::decode`] accepts for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from: EventTime,
    pub to: EventTime,
    /// Whether `from` is the `max_age_hours` bound (else `min_event_time`).
    age_bound: bool,
    /// Whether `to` is measured from the message timestamp (else the wall clock).
    to_from_timestamp: bool,
}

impl Mapping {
    /// The accepted event times of a message with timestamp `timestamp`
    /// decoded at wall-clock time `now` (both ms since the epoch):
    ///
    /// * at most `max_skew_secs` ahead of the message timestamp or of `now`,
    ///   whichever is earlier (a file replay has no timestamp: `now`);
    /// * not before `min_event_time`, and, when `max_age_hours` is set and
    ///   the message has a timestamp, not more than that behind it. A file
    ///   replay of old history is therefore only held to `min_event_time`.
    ///
    /// A timestamp before `min_event_time` (0 from a broken producer) is no
    /// reference: such a message is checked as if it had none.
    pub fn time_range(&self, timestamp: Option<EventTime>, now: EventTime) -> TimeRange {
        let secs = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let timestamp = timestamp.filter(|&ts| ts >= self.min_event_time);
        let reference = timestamp.map_or(now, |ts| ts.min(now));
        let to = reference.saturating_add(secs(self.max_skew_secs));
        let aged = timestamp
            .filter(|_| self.max_age_hours > 0)
            .map(|ts| ts.saturating_sub(secs(self.max_age_hours.saturating_mul(3600))));
        let (from, age_bound) = match aged {
            Some(a) if a > self.min_event_time => (a, true),
            _ => (self.min_event_time, false),
        };
        TimeRange {
            from,
            to,
            age_bound,
            to_from_timestamp: timestamp.is_some_and(|ts| ts <= now),
        }
    }

    /// Checks a time read from the message (`what` names where it came from).
    fn check_time(
        &self,
        range: &TimeRange,
        t: EventTime,
        what: String,
        given: String,
    ) -> Result<EventTime, DeadLetter> {
        if (range.from..=range.to).contains(&t) {
            return Ok(t);
        }
        let why = if t > range.to {
            format!(
                "more than `mapping.max_skew_secs` ({} s) ahead of {}; a time in the future would hold \
                 every later event of its partition back as too late: fix the producer's clock or the \
                 value, or raise `mapping.max_skew_secs`",
                self.max_skew_secs,
                if range.to_from_timestamp {
                    "the message timestamp"
                } else {
                    "the wall clock"
                }
            )
        } else if range.age_bound {
            format!(
                "more than `mapping.max_age_hours` ({} h) behind the message timestamp: send the real \
                 event time, or raise `mapping.max_age_hours` (0 turns the check off)",
                self.max_age_hours
            )
        } else {
            "before `mapping.min_event_time`: send the real event time (epoch 0 usually means unset), \
             or lower `mapping.min_event_time`"
                .to_string()
        };
        Err(DeadLetter::TimeOutOfRange {
            what,
            given,
            from: rfc3339(range.from),
            to: rfc3339(range.to),
            why,
        })
    }

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
    /// (used when the event-time field is absent); `now` is the wall clock
    /// (ms) for [`Mapping::time_range`]; `pos` names the message.
    pub fn decode(
        &self,
        payload: Option<&[u8]>,
        fallback_time: Option<EventTime>,
        now: EventTime,
        pos: SourcePos,
    ) -> Result<Event, DeadLetter> {
        let bytes = payload
            .filter(|b| !b.iter().all(u8::is_ascii_whitespace))
            .ok_or(DeadLetter::NoPayload)?;
        let text = std::str::from_utf8(bytes).map_err(|e| DeadLetter::InvalidUtf8(e.valid_up_to()))?;
        let root: Value = serde_json::from_str(text).map_err(|e| DeadLetter::InvalidJson(e.to_string()))?;
        if !root.is_object() {
            return Err(DeadLetter::NotAnObject);
        }
        let range = self.time_range(fallback_time, now);
        let time_of = |path: &str| -> Result<Option<EventTime>, DeadLetter> {
            lookup(&root, path)
                .map(|v| {
                    let (t, given) = read_time(v).map_err(|message| DeadLetter::BadTime {
                        path: path.to_string(),
                        message,
                    })?;
                    self.check_time(&range, t, format!("field `{path}`"), given)
                })
                .transpose()
        };
        // The message timestamp standing in for a missing time field.
        let fallback = |field: &str| -> Result<Option<EventTime>, DeadLetter> {
            fallback_time
                .map(|t| {
                    self.check_time(
                        &range,
                        t,
                        format!("the message timestamp (used because `{field}` is absent)"),
                        format!("{t} ms ({})", rfc3339(t)),
                    )
                })
                .transpose()
        };
        let id_of = |root: &Value| -> Result<String, DeadLetter> {
            Ok(self
                .opt_string(root, &self.id)?
                .unwrap_or_else(|| format!("{}/{}/{}", pos.source, pos.partition, pos.offset)))
        };
        if let Some(target) = self.opt_string(&root, &self.reply_to)? {
            let at = match time_of(&self.replied_at)?.or(time_of(&self.event_time)?) {
                Some(t) => Some(t),
                None => fallback(&self.replied_at)?,
            };
            let at = match at {
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
        let body = match lookup_raw(&root, &self.text) {
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
        let event_time = match time_of(&self.event_time)? {
            Some(t) => Some(t),
            None => fallback(&self.event_time)?,
        };
        let event_time = match event_time {
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

    /// The wall clock of these tests: 2026-11-24T00:00:00Z.
    const NOW: EventTime = 1_795_478_400_000;
    /// A message timestamp: 2026-11-23T20:00:00Z.
    const TS: EventTime = 1_795_464_000_000;

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
        let e = m.decode(Some(msg), Some(TS), NOW, pos()).unwrap();
        assert_eq!(e.text, "Akku kaputt");
        assert_eq!(e.key.brand.as_deref(), Some("Voltra"));
        assert_eq!(e.rating, Some(1.0));
        assert_eq!(e.id, "reviews/3/42");
        assert_eq!(e.event_time, parse_rfc3339("2026-11-23T17:00:00.250Z").unwrap());
        // No time field: message timestamp.
        let e = m
            .decode(Some(br#"{"review": {"body": "ok"}}"#), Some(TS), NOW, pos())
            .unwrap();
        assert_eq!(e.event_time, TS);
    }

    #[test]
    fn a_reply_needs_no_text_and_takes_its_time_from_replied_at() {
        let m = Mapping::default();
        let msg = br#"{"id": "a1", "reply_to": "r9", "replied_at": "2026-11-23T18:00:00Z", "event_time": 1795400000}"#;
        let e = m.decode(Some(msg), Some(TS), NOW, pos()).unwrap();
        assert_eq!(e.reply_to.as_deref(), Some("r9"));
        assert_eq!(e.id, "a1");
        assert!(e.text.is_empty());
        let at = parse_rfc3339("2026-11-23T18:00:00Z").unwrap();
        assert_eq!((e.event_time, e.replied_at), (at, Some(at)));
        // Without `replied_at`: the event time, then the message timestamp.
        let e = m
            .decode(
                Some(br#"{"reply_to": "r9", "event_time": 1795400000}"#),
                Some(TS),
                NOW,
                pos(),
            )
            .unwrap();
        let t = parse_time(&serde_json::json!(1_795_400_000)).unwrap();
        assert_eq!((e.event_time, e.replied_at), (t, Some(t)));
        let e = m.decode(Some(br#"{"reply_to": "r9"}"#), Some(TS), NOW, pos()).unwrap();
        assert_eq!(e.replied_at, Some(TS));
        let err = m.decode(Some(br#"{"reply_to": "r9"}"#), None, NOW, pos()).unwrap_err();
        assert_eq!(err.code(), "missing_field");
        assert!(err.to_string().contains("replied_at"), "{err}");
        let err = m
            .decode(Some(br#"{"reply_to": ["r9"]}"#), Some(TS), NOW, pos())
            .unwrap_err();
        assert!(err.to_string().contains("reply_to"), "{err}");
        // A reply's time is checked like an event time.
        let err = m
            .decode(
                Some(br#"{"reply_to": "r9", "replied_at": 1e300}"#),
                Some(TS),
                NOW,
                pos(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "bad_time", "{err}");
        // A review is still a review.
        let e = m
            .decode(Some(br#"{"text": "ok", "event_time": 1795400000}"#), None, NOW, pos())
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
            (br#"{"text": null}"#, "wrong_type"),
            (br#"{"text": "  "}"#, "empty_text"),
            (br#"{"text": "ok", "event_time": "yesterday"}"#, "bad_time"),
            (br#"{"text": "ok", "rating": "five"}"#, "wrong_type"),
            (b"", "no_payload"),
            (b" \r\n", "no_payload"),
        ];
        for (msg, code) in cases {
            let err = m.decode(Some(msg), Some(TS), NOW, pos()).unwrap_err();
            assert_eq!(err.code(), code, "{}", String::from_utf8_lossy(msg));
            assert!(!err.to_string().is_empty());
        }
        let big = format!(r#"{{"text": "{}"}}"#, "a".repeat(70_000));
        assert_eq!(
            m.decode(Some(big.as_bytes()), Some(TS), NOW, pos()).unwrap_err().code(),
            "oversize"
        );
        assert_eq!(m.decode(None, Some(TS), NOW, pos()).unwrap_err().code(), "no_payload");
        // No time anywhere.
        assert_eq!(
            m.decode(Some(br#"{"text": "ok"}"#), None, NOW, pos())
                .unwrap_err()
                .code(),
            "missing_field"
        );
        // Every code is registered.
        for code in ["wrong_type", "no_payload", "bad_time"] {
            assert!(DeadLetter::CODES.contains(&code), "{code}");
        }
    }

    #[test]
    fn a_null_text_is_a_wrong_type_not_a_missing_field() {
        let err = Mapping::default()
            .decode(Some(br#"{"text": null, "event_time": 1795400000}"#), None, NOW, pos())
            .unwrap_err();
        assert_eq!(err.code(), "wrong_type");
        assert_eq!(err.to_string(), "field `text` must be a string, found null");
        // An optional field that is null is absent, as before.
        let e = Mapping::default()
            .decode(
                Some(br#"{"text": "ok", "brand": null, "event_time": 1795400000}"#),
                None,
                NOW,
                pos(),
            )
            .unwrap();
        assert_eq!(e.key.brand, None);
    }

    /// What the decoder says about one event time (no message timestamp:
    /// a file replay at `NOW`).
    fn time_error(t: &str) -> DeadLetter {
        let msg = format!(r#"{{"text": "ok", "event_time": {t}}}"#);
        Mapping::default()
            .decode(Some(msg.as_bytes()), None, NOW, pos())
            .expect_err(t)
    }

    #[test]
    fn hostile_event_times_are_bad_time_with_short_messages() {
        for (t, says) in [
            ("1e300", "epoch `1e+300` is too large"),
            ("-1e300", "epoch `-1e+300` is negative"),
            (r#""1e300""#, "epoch `1e300` is too large"),
            (r#""NaN""#, "`NaN` is not a finite number"),
            (r#""inf""#, "`inf` is not a finite number"),
            (r#""-Infinity""#, "`-Infinity` is not a finite number"),
            ("1795000000000000", "looks like microseconds (2026-11-18T11:06:40Z): divide by 1000"),
            ("1795000000000000000", "looks like nanoseconds (2026-11-18T11:06:40Z): divide by 1000000"),
            (r#""0001-01-01T00:00:00Z""#, "before `mapping.min_event_time`"),
            ("0", "`0` (epoch seconds, 1970-01-01T00:00:00Z) is outside the accepted range 2000-01-01T00:00:00Z .. 2026-11-24T01:00:00Z"),
            (r#""1970-01-01T00:00:00Z""#, "before `mapping.min_event_time`"),
            (r#""2300-01-01T00:00:00Z""#, "ahead of the wall clock"),
            (r#""9999-12-31T00:00:00Z""#, "`mapping.max_skew_secs` (3600 s)"),
            (r#""2026-02-30T00:00:00Z""#, "`2026-02-30T00:00:00Z` is not RFC 3339"),
            (r#""2026-11-24T01:00:01Z""#, "ahead of the wall clock"),
            ("[1]", "found an array"),
        ] {
            let err = time_error(t);
            assert_eq!(err.code(), "bad_time", "{t}: {err}");
            let text = err.to_string();
            assert!(text.contains("`event_time`"), "{t}: names the field: {text}");
            assert!(text.contains(says), "{t}: {text}");
            assert!(text.len() < 400, "{t}: short: {text}");
        }
        // A long string is cut in the message.
        let long = format!(r#""{}""#, "x".repeat(5000));
        assert!(time_error(&long).to_string().len() < 200);
        // The edges of the range are accepted; milliseconds and seconds as before.
        for ok in [
            r#""2000-01-01T00:00:00Z""#,
            r#""2026-11-24T01:00:00Z""#,
            "946684800",
            "1795000000000",
        ] {
            let msg = format!(r#"{{"text": "ok", "event_time": {ok}}}"#);
            assert!(
                Mapping::default()
                    .decode(Some(msg.as_bytes()), None, NOW, pos())
                    .is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn the_range_follows_the_message_timestamp_and_the_config() {
        let m = Mapping::default();
        let decode = |m: &Mapping, t: &str, ts: Option<EventTime>| {
            let msg = format!(r#"{{"text": "ok", "event_time": "{t}"}}"#);
            m.decode(Some(msg.as_bytes()), ts, NOW, pos())
        };
        // One hour ahead of the message timestamp, not of the (later) wall clock.
        assert!(decode(&m, "2026-11-23T21:00:00Z", Some(TS)).is_ok());
        let err = decode(&m, "2026-11-23T21:00:01Z", Some(TS)).unwrap_err();
        assert!(err.to_string().contains("ahead of the message timestamp"), "{err}");
        // A timestamp ahead of the wall clock does not widen the range.
        let err = decode(&m, "2026-11-25T00:00:00Z", Some(NOW + 86_400_000)).unwrap_err();
        assert!(err.to_string().contains("ahead of the wall clock"), "{err}");
        // Old events: only `min_event_time` by default, `max_age_hours` when set.
        assert!(decode(&m, "2001-01-01T00:00:00Z", Some(TS)).is_ok());
        let aged = Mapping {
            max_age_hours: 720,
            ..Mapping::default()
        };
        assert!(decode(&aged, "2026-10-25T00:00:00Z", Some(TS)).is_ok());
        let err = decode(&aged, "2026-10-23T00:00:00Z", Some(TS)).unwrap_err();
        assert_eq!(err.code(), "bad_time");
        assert!(
            err.to_string()
                .contains("2026-10-24T20:00:00Z .. 2026-11-23T21:00:00Z: more than `mapping.max_age_hours` (720 h)"),
            "{err}"
        );
        // Without a timestamp (a file replay) `max_age_hours` does not apply.
        assert!(decode(&aged, "2001-01-01T00:00:00Z", None).is_ok());
        // An absurd message timestamp standing in for the event time.
        let err = m
            .decode(Some(br#"{"text": "ok"}"#), Some(253_402_214_400_000), NOW, pos())
            .unwrap_err();
        assert_eq!(err.code(), "bad_time");
        assert!(err.to_string().starts_with("the message timestamp (used because `event_time` is absent) = 253402214400000 ms (9999-12-31T00:00:00Z)"), "{err}");
        let err = m.decode(Some(br#"{"text": "ok"}"#), Some(0), NOW, pos()).unwrap_err();
        assert_eq!(err.code(), "bad_time", "{err}");
        // A later `min_event_time`.
        let late = Mapping {
            min_event_time: parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
            ..Mapping::default()
        };
        assert!(decode(&late, "2025-12-31T23:59:59Z", None).is_err());
    }

    #[test]
    fn time_config_is_validated_at_start_up() {
        use crate::config::Config;
        let load = |toml: &str| Config::from_toml(&format!("[mapping]\n{toml}\n"), "t.toml", std::path::Path::new("."));
        let c = load("max_skew_secs = 60\nmax_age_hours = 720\nmin_event_time = \"2020-01-01T00:00:00Z\"").unwrap();
        assert_eq!(
            (
                c.mapping.max_skew_secs,
                c.mapping.max_age_hours,
                c.mapping.min_event_time
            ),
            (60, 720, parse_rfc3339("2020-01-01T00:00:00Z").unwrap())
        );
        // A TOML date-time works as well as a string.
        let c = load("min_event_time = 2020-01-01T00:00:00Z").unwrap();
        assert_eq!(c.mapping.min_event_time, parse_rfc3339("2020-01-01T00:00:00Z").unwrap());
        let d = Mapping::default();
        assert_eq!((d.max_skew_secs, d.max_age_hours), (3600, 0));
        assert_eq!(rfc3339(d.min_event_time), "2000-01-01T00:00:00Z");
        for (toml, says) in [
            ("max_skew_secs = 0", "mapping.max_skew_secs"),
            ("max_skew_secs = 99999999999", "mapping.max_skew_secs"),
            ("max_age_hours = 99999999", "mapping.max_age_hours"),
            ("min_event_time = \"2000-01-01\"", "not an RFC 3339 time"),
            ("min_event_time = 2000", "expected an RFC 3339 time"),
        ] {
            let e = load(toml).unwrap_err();
            let text = format!("{:#}", anyhow::Error::from(e));
            assert!(text.contains(says), "{toml}: {text}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        assert_eq!(parse_time(&Value::from(1_700_000_000)), Ok(1_700_000_000_000));
        assert_eq!(parse_time(&Value::from(1_700_000_000_123i64)), Ok(1_700_000_000_123));
        assert_eq!(parse_time(&Value::from("1700000000.5")), Ok(1_700_000_000_500));
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_none());
        assert_eq!(EpochUnit::of(1.7e9), Some(EpochUnit::Seconds));
        assert_eq!(EpochUnit::of(1.7e12), Some(EpochUnit::Millis));
        assert_eq!(EpochUnit::of(1.7e15), Some(EpochUnit::Micros));
        assert_eq!(EpochUnit::of(1.7e18), Some(EpochUnit::Nanos));
        assert_eq!(EpochUnit::of(1e300), None);
    }
}
