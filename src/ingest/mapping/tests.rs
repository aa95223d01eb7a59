//! Decoding tests: field paths, dead-letter reasons, hostile times.

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
        (br#"{"text": "ok", "rating": "NaN"}"#, "wrong_type"),
        (br#"{"text": "ok", "rating": "-inf"}"#, "wrong_type"),
        (br#"{"text": "ok", "rating": 1e300}"#, "wrong_type"),
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
    assert!(
        err.to_string().starts_with(
            "the message timestamp (used because `event_time` is absent) = 253402214400000 ms (9999-12-31T00:00:00Z)"
        ),
        "{err}"
    );
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
