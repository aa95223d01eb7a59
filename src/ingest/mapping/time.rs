//! Times in messages: RFC 3339 or numeric epochs whose unit is read from
//! their magnitude, and the short form values take in error messages.

use earshot_core::time::{parse_rfc3339, rfc3339};
use serde_json::Value;

use super::kind;
use crate::types::EventTime;

/// A value as it may appear in an error message: strings cut to 40
/// characters; numbers are passed as serde_json writes them (`1e+300`, not
/// 301 digits).
pub(super) fn short(s: &str) -> String {
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
pub(super) fn read_time(v: &Value) -> Result<(EventTime, String), String> {
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
