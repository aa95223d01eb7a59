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

mod time;

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use time::read_time;
pub use time::{parse_time, EpochUnit};

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
#[serde(default, deny_unknown_fields)]
pub struct Mapping {
    /// Event id; when absent the source position (`topic/partition/offset`) is used.
    pub id: String,
    pub text: String,
    pub brand: String,
    pub product: String,
    pub sku: String,
    pub region: String,
    pub channel: String,
    pub rating: String,
    pub lang: String,
    pub author: String,
    /// Event time; when absent the message timestamp is used.
    pub event_time: String,
    pub replied_at: String,
    /// A message with this field is a reply to the review it names (no
    /// text needed); its time is `replied_at`, else the event time.
    pub reply_to: String,
    /// Larger texts are dead-lettered as `oversize` (the model reads 512
    /// tokens; a limit keeps a runaway producer from stalling the pipeline).
    pub max_text_bytes: usize,
    /// Event times more than this far ahead of the message timestamp (or of
    /// the wall clock, whichever is earlier) are dead-lettered as `bad_time`.
    pub max_skew_secs: u64,
    /// Event times more than this far behind the message timestamp are
    /// dead-lettered as `bad_time`; 0 (the default) turns the check off.
    /// Messages without a timestamp (files) are never checked against it.
    pub max_age_hours: u64,
    /// Event times before this (RFC 3339, ms since the epoch once read) are
    /// dead-lettered as `bad_time`.
    #[serde(deserialize_with = "rfc3339_value")]
    pub min_event_time: EventTime,
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
        Self {
            id: "id".into(),
            text: "text".into(),
            brand: "brand".into(),
            product: "product".into(),
            sku: "sku".into(),
            region: "region".into(),
            channel: "channel".into(),
            rating: "rating".into(),
            lang: "lang".into(),
            author: "author".into(),
            event_time: "event_time".into(),
            replied_at: "replied_at".into(),
            reply_to: "reply_to".into(),
            max_text_bytes: 64 * 1024,
            max_skew_secs: 3600,
            max_age_hours: 0,
            min_event_time: MIN_EVENT_TIME_DEFAULT,
        }
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
        // "NaN", "inf" or 1e300 (infinite as f32) would poison every average
        // the rating enters.
        if rating.is_some_and(|r| !r.is_finite()) {
            return Err(DeadLetter::WrongType {
                path: self.rating.clone(),
                expected: "a finite number",
                found: "NaN or a number out of range",
            });
        }
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
mod tests;
