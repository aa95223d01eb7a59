//! Event-time text: RFC 3339 in and out, and calendar arithmetic. Event time
//! is milliseconds since the Unix epoch ([`EventTime`]).

use ::time::format_description::well_known::Rfc3339;

use crate::types::EventTime;

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's civil-from-days algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// RFC 3339 (UTC, whole seconds) of an event time in milliseconds.
pub fn rfc3339(t: EventTime) -> String {
    let secs = t.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let r = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        r / 3600,
        r % 3600 / 60,
        r % 60
    )
}

/// RFC 3339 date-time (`time` crate) to event time, truncated to the
/// millisecond. Accepts a space or a lowercase `t` between date and time, as
/// RFC 3339 §5.6 allows; rejects dates that do not exist (`2026-02-30`).
pub fn parse_rfc3339(s: &str) -> Option<EventTime> {
    let s = s.trim();
    let at = match s.as_bytes().get(10) {
        Some(b' ' | b't') => ::time::OffsetDateTime::parse(&format!("{}T{}", &s[..10], &s[11..]), &Rfc3339),
        _ => ::time::OffsetDateTime::parse(s, &Rfc3339),
    };
    let nanos = at.ok()?.unix_timestamp_nanos();
    i64::try_from(nanos.div_euclid(1_000_000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_and_rejects_dates_that_do_not_exist() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        assert_eq!(parse_rfc3339(" 2000-03-01 01:00:00.2509+01:00 "), Some(951_868_800_250));
        assert_eq!(parse_rfc3339("1969-12-31t23:59:59.5z"), Some(-500));
        assert_eq!(parse_rfc3339("2026-02-28T00:00:00Z"), Some(1_772_236_800_000));
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_any_event_time() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-500), "1969-12-31T23:59:59Z");
        for t in [0, 951_868_800_250, 1_772_236_800_000, -86_400_000 * 365] {
            let text = rfc3339(t);
            assert_eq!(parse_rfc3339(&text), Some(t.div_euclid(1000) * 1000), "{text}");
        }
        // Out of the parser's range but still printable.
        assert!(rfc3339(i64::MAX).starts_with("292278994-"));
    }
}
