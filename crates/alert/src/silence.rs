//! Silences: exact label matchers with an event-time validity `[starts_at,
//! ends_at)`. A silenced state change is still recorded (alerts topic, active
//! list) but not sent to endpoints. The set is shared between the lifecycle
//! (reads) and the HTTP API (adds, expires); every silence expires.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::api::Silence;
use earshot_core::time::parse_rfc3339;
use earshot_core::types::EventTime;

/// A parsed silence.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub silence: Silence,
    pub start: EventTime,
    pub end: EventTime,
}

impl Matcher {
    /// Validates a silence; an empty `starts_at` means "from the beginning".
    /// The error names the field.
    pub fn parse(s: &Silence) -> Result<Matcher, String> {
        if s.matchers.is_empty() {
            return Err("matchers: name at least one label (e.g. brand = \"Voltra\")".into());
        }
        let end = parse_rfc3339(&s.ends_at).ok_or_else(|| {
            format!(
                "ends_at: `{}` is not an RFC 3339 time (silences always expire)",
                s.ends_at
            )
        })?;
        let start = if s.starts_at.is_empty() {
            i64::MIN
        } else {
            parse_rfc3339(&s.starts_at)
                .ok_or_else(|| format!("starts_at: `{}` is not an RFC 3339 time", s.starts_at))?
        };
        if end <= start {
            return Err("ends_at: must be after starts_at".into());
        }
        Ok(Matcher {
            silence: s.clone(),
            start,
            end,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>, at: EventTime) -> bool {
        (self.start..self.end).contains(&at)
            && self
                .silence
                .matchers
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
    }
}

/// The longest silence the HTTP API accepts, in days from now.
pub const API_MAX_SILENCE_DAYS: i64 = 90;

/// The shared set of silences.
#[derive(Debug, Clone, Default)]
pub struct Silences(Arc<RwLock<Vec<Matcher>>>);

impl Silences {
    /// From the configuration (already validated).
    pub fn from_config(list: &[Silence]) -> Self {
        let s = Silences::default();
        for (i, x) in list.iter().enumerate() {
            if let Ok(mut m) = Matcher::parse(x) {
                if m.silence.id.is_empty() {
                    m.silence.id = format!("config-{i}");
                }
                s.0.write().unwrap_or_else(|e| e.into_inner()).push(m);
            }
        }
        s
    }

    /// True when a silence covers these labels at this event time.
    pub fn is_silenced(&self, labels: &BTreeMap<String, String>, at: EventTime) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|m| m.matches(labels, at))
    }

    pub fn list(&self) -> Vec<Silence> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|m| m.silence.clone())
            .collect()
    }

    /// Adds a silence; an empty `starts_at` means `now` (milliseconds).
    pub fn add(&self, mut s: Silence, now: EventTime) -> Result<Silence, String> {
        if s.starts_at.is_empty() {
            s.starts_at = super::rfc3339(now);
        }
        let m = Matcher::parse(&s)?;
        let mut list = self.0.write().unwrap_or_else(|e| e.into_inner());
        if m.silence.id.is_empty() {
            let matchers: Vec<String> = s.matchers.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let n = list.len().to_string();
            s.id = super::fnv_hex(&[&matchers.join(","), &s.starts_at, &s.ends_at, &n]);
        } else if list.iter().any(|x| x.silence.id == s.id) {
            return Err(format!("id: a silence `{}` exists already", s.id));
        }
        list.push(Matcher {
            silence: s.clone(),
            ..m
        });
        Ok(s)
    }

    /// Adds a silence from the HTTP API: as [`Silences::add`], and its end
    /// must lie ahead of `now` and at most [`API_MAX_SILENCE_DAYS`] after it,
    /// so that a typo cannot mute every crisis for years (config silences,
    /// reviewed like code, have no such bound).
    pub fn add_from_api(&self, s: Silence, now: EventTime) -> Result<Silence, String> {
        let end = Matcher::parse(&s)?.end;
        if end <= now {
            return Err(format!(
                "ends_at: `{}` is already past; give a time ahead of now",
                s.ends_at
            ));
        }
        let max = now.saturating_add(API_MAX_SILENCE_DAYS * 86_400_000);
        if end > max {
            return Err(format!(
                "ends_at: `{}` is more than {API_MAX_SILENCE_DAYS} days ahead; silence for at most that long \
                 (or add a reviewed silence to `alert.silences` in the config)",
                s.ends_at
            ));
        }
        self.add(s, now)
    }

    /// Removes a silence; false when there is none with this id.
    pub fn expire(&self, id: &str) -> bool {
        let mut list = self.0.write().unwrap_or_else(|e| e.into_inner());
        let n = list.len();
        list.retain(|m| m.silence.id != id);
        list.len() < n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(ends_at: &str) -> Silence {
        Silence {
            id: String::new(),
            matchers: [("brand".to_string(), "Voltra".to_string())].into_iter().collect(),
            starts_at: String::new(),
            ends_at: ends_at.into(),
            comment: String::new(),
            created_by: String::new(),
        }
    }

    #[test]
    fn api_silences_must_end_ahead_and_within_ninety_days() {
        let now = parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        let set = Silences::default();
        for (ends_at, why) in [
            ("1970-01-01T00:00:00Z", "already past"),
            ("2026-11-30T23:59:59Z", "already past"),
            ("9999-12-31T00:00:00Z", "more than 90 days"),
            ("2027-03-02T00:00:01Z", "more than 90 days"),
        ] {
            let e = set.add_from_api(silence(ends_at), now).unwrap_err();
            assert!(e.starts_with("ends_at:") && e.contains(why), "{ends_at}: {e}");
        }
        set.add_from_api(silence("2026-12-01T04:00:00Z"), now).unwrap();
        set.add_from_api(silence("2027-03-01T00:00:00Z"), now).unwrap();
        assert_eq!(set.list().len(), 2);
    }
}
