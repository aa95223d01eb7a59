//! The hostile-input table (issue 14): each case is run through the reader
//! that meets it in production and the outcome is measured, not assumed.
//! `fuzz --hostile` prints the table as Markdown (README, "Hostile input").

use std::path::Path;
use std::sync::atomic::AtomicU64;

use earshot::alert::api::Silence;
use earshot::alert::silence::Silences;
use earshot::config::Config;
use earshot::detect::{DetectConfig, Detector};
use earshot::ingest::mapping::Mapping;
use earshot::model::e5s1::E5s1;
use earshot::types::SourcePos;

/// Kafka timestamp and wall clock of the mapping cases (2023-11-14T22:13:20Z).
const NOW: i64 = 1_700_000_000_000;

fn pos(offset: i64) -> SourcePos {
    SourcePos {
        source: "hostile".into(),
        partition: 0,
        offset,
    }
}

/// A message through the default `[mapping]`, with a Kafka timestamp.
fn message(payload: &[u8]) -> String {
    match Mapping::default().decode(Some(payload), Some(NOW), NOW, pos(1)) {
        Ok(e) if e.reply_to.is_some() => format!(
            "accepted: reply to `{}` at {}",
            e.reply_to.unwrap_or_default(),
            earshot_core::time::rfc3339(e.event_time)
        ),
        Ok(e) => format!(
            "accepted: event_time {}, rating {:?}",
            earshot_core::time::rfc3339(e.event_time),
            e.rating
        ),
        Err(d) => {
            let mut m = d.to_string();
            if m.len() > 110 {
                let cut = (0..=110).rev().find(|&i| m.is_char_boundary(i)).unwrap_or(0);
                m.truncate(cut);
                m.push('…');
            }
            format!("dead letter `{}`: {}", d.code(), m.replace('|', "\\|"))
        }
    }
}

fn with_time(t: &str) -> Vec<u8> {
    format!(r#"{{"id":"r1","text":"battery died","event_time":{t}}}"#).into_bytes()
}

fn with_rating(r: &str) -> Vec<u8> {
    format!(r#"{{"id":"r1","text":"battery died","event_time":1700000000,"rating":{r}}}"#).into_bytes()
}

/// A file through the replay reader, then the mapping (no Kafka timestamp).
fn file(data: &[u8], csv: bool) -> String {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 20);
    let r = earshot::ingest::file::stream_reader(data, "hostile", csv, &tx, &AtomicU64::new(0));
    drop(tx);
    if let Err(e) = r {
        return format!("error: {e}");
    }
    let mut out = Vec::new();
    while let Ok(m) = rx.try_recv() {
        let line = m.pos.offset;
        out.push(
            match Mapping::default().decode(m.payload.as_deref(), None, NOW, m.pos) {
                Ok(e) => format!("line {line}: accepted (id `{}`, rating {:?})", e.id, e.rating),
                Err(d) => format!("line {line}: dead letter `{}`", d.code()),
            },
        );
    }
    if out.is_empty() {
        "no messages".into()
    } else {
        out.join("; ")
    }
}

fn config(text: &str) -> String {
    match Config::from_toml_with_env(text, "hostile.toml", Path::new("/nonexistent"), |_| None) {
        Ok(_) => "accepted".into(),
        Err(e) => {
            // The whole chain: the top error names only the file.
            let mut m = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                m.push_str(&format!(": {s}"));
                src = s.source();
            }
            // A TOML error is a snippet: keep its first and last lines.
            let lines: Vec<&str> = m.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let m = match lines.as_slice() {
                [first, .., last] if lines.len() > 2 => format!("{first} … {last}"),
                _ => lines.join(" "),
            };
            format!("error: {}", m.chars().take(160).collect::<String>().replace('|', "\\|"))
        }
    }
}

fn model(data: Vec<u8>) -> String {
    match E5s1::parse(data) {
        Ok(_) => "parsed".into(),
        Err(e) => format!("error: {e}"),
    }
}

fn silence(body: &[u8]) -> String {
    let s: Silence = match serde_json::from_slice(body) {
        Ok(s) => s,
        Err(e) => {
            let m = e.to_string();
            return format!("400 invalid silence: {}", m.chars().take(80).collect::<String>());
        }
    };
    match Silences::default().add_from_api(s, NOW) {
        Ok(s) => format!("201 created (id `{}`)", s.id),
        Err(e) => format!("400 {e}"),
    }
}

fn silence_body(starts: &str, ends: &str) -> Vec<u8> {
    format!(r#"{{"matchers":{{"brand":"Voltra"}},"starts_at":{starts},"ends_at":{ends}}}"#).into_bytes()
}

/// Every case: (reader, input, measured outcome).
pub fn cases() -> Vec<(&'static str, String, String)> {
    let mut v: Vec<(&'static str, String, String)> = Vec::new();
    let mut add = |reader: &'static str, input: &str, out: String| v.push((reader, input.to_string(), out));
    let big = "a".repeat(10 << 20);
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));

    // --- Kafka messages (mapping) ---
    add(
        "message",
        "10 MB text field",
        message(format!(r#"{{"text":"{big}","event_time":1700000000}}"#).as_bytes()),
    );
    add("message", "10 MB of non-JSON text", message(big.as_bytes()));
    add(
        "message",
        "invalid UTF-8 (`\\xff` in the text)",
        message(b"{\"text\":\"caf\xff\",\"event_time\":1700000000}"),
    );
    add(
        "message",
        "lone surrogate escape `\"\\ud800\"` as text",
        message(br#"{"text":"\ud800","event_time":1700000000}"#),
    );
    add(
        "message",
        "JSON nested 100,000 deep",
        message(format!(r#"{{"text":"x","event_time":1700000000,"a":{}}}"#, deep(100_000)).as_bytes()),
    );
    add(
        "message",
        "JSON nested 127 deep (under the limit)",
        message(format!(r#"{{"text":"x","event_time":1700000000,"a":{}}}"#, deep(126)).as_bytes()),
    );
    add("message", "rating `NaN` (bare)", message(&with_rating("NaN")));
    add("message", "rating `\"NaN\"` (string)", message(&with_rating("\"NaN\"")));
    add("message", "rating `\"inf\"` (string)", message(&with_rating("\"inf\"")));
    add(
        "message",
        "rating `\"-Infinity\"` (string)",
        message(&with_rating("\"-Infinity\"")),
    );
    add("message", "rating `1e300`", message(&with_rating("1e300")));
    add("message", "rating `-1e300`", message(&with_rating("-1e300")));
    add("message", "rating `1e400` (beyond f64)", message(&with_rating("1e400")));
    for t in [
        "\"0001-01-01T00:00:00Z\"",
        "\"1970-01-01T00:00:00Z\"",
        "\"2300-01-01T00:00:00Z\"",
        "\"9999-12-31T23:59:59Z\"",
        "-62135596800",
        "0",
        "10413792000",
        "253402300799",
        "1e300",
        "-1e300",
        "1700000000000000",
        "1700000000000000000",
        "1700000000",
        "1700000000000",
        "\"2024-02-30T00:00:00Z\"",
    ] {
        let what = match t {
            "-62135596800" => "event_time `-62135596800` (year 1, epoch s)",
            "0" => "event_time `0` (1970, epoch)",
            "10413792000" => "event_time `10413792000` (2300, epoch s)",
            "253402300799" => "event_time `253402300799` (9999, epoch s)",
            "1700000000000000" => "event_time in µs (`1700000000000000`)",
            "1700000000000000000" => "event_time in ns (`1700000000000000000`)",
            "1700000000" => "event_time in s (control)",
            "1700000000000" => "event_time in ms (control)",
            _ => "",
        };
        let label = if what.is_empty() {
            format!("event_time `{t}`")
        } else {
            what.to_string()
        };
        add("message", &label, message(&with_time(t)));
    }
    add(
        "message",
        "duplicate key in one object (`text` twice)",
        message(br#"{"text":"first","text":"second","event_time":1700000000}"#),
    );
    {
        let a = message(br#"{"id":"dup","text":"one","event_time":1700000000}"#);
        let b = message(br#"{"id":"dup","text":"two","event_time":1700000001}"#);
        add("message", "duplicate ids (two messages, id `dup`)", format!("{a}; {b}"));
    }
    add(
        "message",
        "reply to an unknown id",
        message(br#"{"reply_to":"no-such-review","event_time":1700000000}"#),
    );
    {
        let mut d = Detector::new(DetectConfig::default());
        d.reply("no-such-review");
        add(
            "detector",
            "reply to an unknown id (`Detector::reply`)",
            format!("ignored: replies counter {}", d.counters().replies),
        );
    }

    // --- files (replay) ---
    add(
        "JSONL file",
        "one 10 MB line",
        file(
            format!("{{\"text\":\"{big}\",\"event_time\":1700000000}}\n").as_bytes(),
            false,
        ),
    );
    add(
        "JSONL file",
        "invalid UTF-8 line between good ones",
        file(
            b"{\"text\":\"a\",\"event_time\":1700000000}\n\xff\xfe\n{\"text\":\"b\",\"event_time\":1700000000}\n",
            false,
        ),
    );
    add(
        "CSV file",
        "invalid UTF-8 cell",
        file(b"text,event_time\ncaf\xff,1700000000\n", true),
    );
    add(
        "CSV file",
        "rating cells `NaN`, `inf`, `1e300`",
        file(
            b"id,text,event_time,rating\na,x,1700000000,NaN\nb,x,1700000000,inf\nc,x,1700000000,1e300\n",
            true,
        ),
    );
    add(
        "CSV file",
        "event_time cells in µs, ns, year 9999",
        file(
            b"id,text,event_time\na,x,1700000000000000\nb,x,1700000000000000000\nc,x,9999-12-31T23:59:59Z\n",
            true,
        ),
    );
    add(
        "CSV file",
        "ragged row (fewer cells than the header)",
        file(b"id,text,event_time\na,x\n", true),
    );

    // --- config ---
    add("config", "10 MB of text", config(&big));
    add(
        "config",
        "array nested 100,000 deep",
        config(&format!("x = {}", deep(100_000))),
    );
    add(
        "config",
        "`[mapping] max_skew_secs = nan`",
        config("[mapping]\nmax_skew_secs = nan"),
    );
    add(
        "config",
        "`[mapping] max_text_bytes = 1e300`",
        config("[mapping]\nmax_text_bytes = 1e300"),
    );
    add(
        "config",
        "`[mapping] min_event_time = \"0001-01-01T00:00:00Z\"`",
        config("[mapping]\nmin_event_time = \"0001-01-01T00:00:00Z\""),
    );
    add(
        "config",
        "`[mapping] min_event_time = \"9999-12-31T23:59:59Z\"`",
        config("[mapping]\nmin_event_time = \"9999-12-31T23:59:59Z\""),
    );
    add(
        "config",
        "`[mapping] max_skew_secs = 18446744073709551615`",
        config("[mapping]\nmax_skew_secs = 18446744073709551615"),
    );
    {
        let dir = std::env::temp_dir().join(format!("earshot-hostile-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("bad.toml");
        let _ = std::fs::write(&p, b"[mapping]\ntext = \"t\xffx\"\n");
        let out = match Config::from_file(&p) {
            Ok(_) => "accepted".into(),
            Err(e) => format!(
                "error: {e}: {}",
                std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
            ),
        };
        let _ = std::fs::remove_dir_all(&dir);
        add("config", "invalid UTF-8 file (`Config::from_file`)", out);
    }

    // --- E5S1 model file ---
    let mut rng = earshot_core::rng::Rng::new(3);
    let good = crate::targets::e5s1_file(crate::targets::Dims::default(), &mut rng);
    add("E5S1 file", "10 MB of text", model(big.clone().into_bytes()));
    add("E5S1 file", "valid 1-layer file (control)", model(good.clone()));
    let cut = (1..good.len())
        .filter(|&n| E5s1::parse(good[..n].to_vec()).is_ok())
        .count();
    add(
        "E5S1 file",
        "the valid file truncated at every byte",
        format!(
            "{} of {} prefixes rejected (`Truncated`), {cut} parsed",
            good.len() - 1 - cut,
            good.len() - 1
        ),
    );
    {
        let mut f = good.clone();
        f[12..16].copy_from_slice(&i32::MAX.to_le_bytes()); // layers
        add("E5S1 file", "header: layers = 2^31-1", model(f));
        let mut f = good.clone();
        f[8..12].copy_from_slice(&(-1i32).to_le_bytes()); // hidden
        add("E5S1 file", "header: hidden = -1", model(f));
        let mut f = good.clone();
        // SentencePiece blob length (after 11 header words and 5 piece words).
        f[64..72].copy_from_slice(&u64::MAX.to_le_bytes());
        add("E5S1 file", "blob length = 2^64-1", model(f));
    }

    // --- alert API: POST /api/v1/silences ---
    add("silence body", "10 MB body", silence(big.as_bytes()));
    add(
        "silence body",
        "invalid UTF-8",
        silence(b"{\"matchers\":{\"brand\":\"\xff\"},\"ends_at\":\"2030-01-01T00:00:00Z\"}"),
    );
    add("silence body", "nested 100,000 deep", silence(deep(100_000).as_bytes()));
    for (s, e) in [
        ("\"\"", "\"0001-01-01T00:00:00Z\""),
        ("\"0001-01-01T00:00:00Z\"", "\"1970-01-01T00:00:00Z\""),
        ("\"1970-01-01T00:00:00Z\"", "\"2300-01-01T00:00:00Z\""),
        ("\"\"", "\"9999-12-31T23:59:59Z\""),
        ("\"\"", "1e300"),
        ("\"\"", "\"1e300\""),
        ("\"\"", "NaN"),
    ] {
        add(
            "silence body",
            &format!("starts_at {s}, ends_at {e}"),
            silence(&silence_body(s, e)),
        );
    }
    {
        let set = Silences::default();
        let body = br#"{"id":"s1","matchers":{"brand":"Voltra"},"ends_at":"2030-01-01T00:00:00Z"}"#;
        let s: Silence = serde_json::from_slice(body).expect("valid");
        let a = set.add(s.clone(), NOW).map(|s| s.id);
        let b = set.add(s, NOW).map(|s| s.id);
        add(
            "silence body",
            "duplicate id (`s1` twice)",
            format!("first {a:?}; second {b:?}"),
        );
        add(
            "silence API",
            "DELETE of an unknown id",
            format!("expire returned {} (404)", set.expire("no-such-id")),
        );
    }
    v
}

/// The table as Markdown.
pub fn table() -> String {
    let mut s = String::from("| reader | hostile input | measured outcome |\n|---|---|---|\n");
    for (r, i, o) in cases() {
        s.push_str(&format!("| {r} | {i} | {o} |\n"));
    }
    s
}
