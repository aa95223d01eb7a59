//! Replay: deterministic output across batch sizes and thread counts, equal
//! to the alerts of the live engine on the same topic, bad lines reported with
//! line numbers, and the report/CSV written. Random encoder (same pipeline).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use earshot::config::Config;
use earshot::ingest::kafka::KafkaRange;
use earshot::pipeline::{engine, PipelineStats};
use earshot::replay::{self, report, Progress};

use crate::{kafka_util as k, util};

/// Three days of background for three brands, then a burst on one product,
/// then more background so the windows close. Event times in ms.
fn scenario() -> Vec<serde_json::Value> {
    let texts: Vec<String> = util::read_lines(&util::fixture("dev_reviews.jsonl"))
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let t0 = 1_795_000_000_000i64;
    let mut out = Vec::new();
    let mut push = |t: i64, brand: &str, product: &str, i: usize| {
        let region = ["us", "de", "jp"][i % 3];
        out.push(serde_json::json!({
            "id": format!("r{:06}", out.len()),
            "brand": brand, "product": product, "region": region,
            "text": texts[i % texts.len()], "rating": 1 + i % 5, "event_time": t,
        }));
    };
    let mut t = t0;
    let mut i = 0;
    while t < t0 + 3 * 86_400_000 {
        push(t, ["Voltra", "Kumo", "Pinecrest"][i % 3], ["A", "B"][i % 2], i * 7);
        t += 150_000;
        i += 1;
    }
    for j in 0..150 {
        push(t + j * 8_000, "Voltra", "A", j as usize * 3 + 1);
    }
    t += 150 * 8_000;
    for _ in 0..200 {
        push(t, ["Kumo", "Pinecrest"][i % 2], "B", i * 7);
        t += 60_000;
        i += 1;
    }
    out
}

fn write_scenario(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("scenario.jsonl");
    let mut s = String::new();
    for (n, v) in scenario().iter().enumerate() {
        s.push_str(&v.to_string());
        s.push('\n');
        if n == 100 {
            s.push_str("{\"id\": \"bad\", \"brand\": \"Kumo\"}\n");
        }
    }
    std::fs::write(&p, s).unwrap();
    p
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(k::unique(name));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn replay_files(cfg: &Config, files: Vec<std::path::PathBuf>) -> replay::Outcome {
    let loaded = earshot::model::load(&cfg.model, &candle_core::Device::Cpu).unwrap();
    let progress = Arc::new(Progress::default());
    let (tx, rx) = tokio::sync::mpsc::channel(cfg.pipeline.channel_capacity);
    let reader = replay::spawn_files(files, tx, progress.clone());
    let out = k::block_on(replay::run(
        cfg,
        loaded,
        rx,
        Arc::new(PipelineStats::default()),
        progress,
        |_| {},
    ))
    .unwrap();
    reader.join().unwrap().unwrap();
    out
}

#[test]
fn replay_is_deterministic_across_batch_sizes_and_threads() {
    let dir = tempdir("replay-det");
    let file = write_scenario(&dir);
    let mut outs = Vec::new();
    for (batch, threads, cap) in [(64, 2, 1024), (7, 1, 16), (64, 3, 4096)] {
        let mut cfg = util::random_config();
        cfg.batch.max_batch = batch;
        cfg.pipeline.tokenizer_threads = threads;
        cfg.pipeline.channel_capacity = cap;
        let o = replay_files(&cfg, vec![file.clone()]);
        let views: Vec<_> = o.alerts.iter().map(replay::AlertView::of).collect();
        outs.push((
            replay::alerts_jsonl(&o.alerts),
            replay::windows_csv(&o.observer, &views),
            o.received,
            o.dead.len(),
        ));
    }
    let n = scenario().len() as u64 + 1;
    assert_eq!(outs[0].2, n);
    assert_eq!(outs[0].3, 1, "one unreadable line");
    assert!(!outs[0].0.is_empty(), "the burst raises at least one alert");
    assert!(outs[0].0.contains("Voltra"), "{}", outs[0].0);
    for o in &outs[1..] {
        assert_eq!(o.0, outs[0].0, "alerts.jsonl differs between runs");
        assert_eq!(o.1, outs[0].1, "windows.csv differs between runs");
    }
    assert!(!outs[0].0.contains("wall"), "no wall-clock fields in alerts");
}

#[test]
fn unreadable_lines_are_counted_with_line_numbers_and_csv_is_read() {
    let dir = tempdir("replay-bad");
    let jsonl = dir.join("a.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\":\"1\",\"brand\":\"B\",\"text\":\"great\",\"event_time\":1795000000000}\nnot json\n\n{\"id\":\"2\",\"brand\":\"B\",\"text\":\"\"}\n",
    )
    .unwrap();
    let csv = dir.join("b.csv");
    std::fs::write(
        &csv,
        "id,brand,text,rating,event_time\nc1,B,\"fine, thanks\",5,1795000001000\nc2,B,too,many,fields,here\nc3,B,ok,4,2026-11-20T00:00:00Z\n",
    )
    .unwrap();
    let out = replay_files(&util::random_config(), vec![jsonl.clone(), csv.clone()]);
    assert_eq!(out.received, 6);
    assert_eq!(out.scored, 3);
    let dead: Vec<(String, i64, &str)> = out
        .dead
        .iter()
        .map(|d| (d.pos.source.clone(), d.pos.offset, d.code))
        .collect();
    assert_eq!(
        dead,
        vec![
            (jsonl.display().to_string(), 2, "invalid_json"),
            (jsonl.display().to_string(), 4, "empty_text"),
            (csv.display().to_string(), 3, "invalid_json"),
        ]
    );
    let html = report::html(&out, &report::RunInfo::default(), None);
    assert!(html.contains("Unreadable input (3)"), "report lists bad lines");
}

#[test]
fn times_and_incidents_parse_and_score() {
    let now = 1_800_000_000_000;
    assert_eq!(replay::parse_time("-7d", now).unwrap(), now - 7 * 86_400_000);
    assert_eq!(replay::parse_time("-30m", now).unwrap(), now - 1_800_000);
    assert_eq!(replay::parse_time("now", now).unwrap(), now);
    assert_eq!(replay::parse_time("1970-01-01T00:00:01Z", now).unwrap(), 1000);
    assert!(replay::parse_time("yesterday", now).is_err());
    let dir = tempdir("replay-inc");
    let p = dir.join("inc.csv");
    std::fs::write(
        &p,
        "start,end,key\n2026-11-20T00:00:00Z,2026-11-20T02:00:00Z,brand=Voltra/product=A\n1,2,brand=Kumo\n",
    )
    .unwrap();
    let inc = replay::read_incidents(&p).unwrap();
    assert_eq!(inc.len(), 2);
    let at = inc[0].start + 20 * 60_000;
    let alert = |brand: &str, at: i64| replay::AlertView {
        rule: "volume_spike".into(),
        key: format!("brand={brand}"),
        labels: vec![("brand".into(), brand.into())],
        status: "firing".into(),
        severity: "critical".into(),
        at,
        window_start: at,
        summary: String::new(),
        crisis: true,
    };
    let s = replay::score_incidents(&[alert("Voltra", at), alert("Pinecrest", at)], &inc, 3_600_000);
    assert_eq!(s.delays, vec![Some(20 * 60_000), None]);
    assert_eq!(s.precision, Some(0.5));
    assert_eq!(s.recall, Some(0.5));
}

/// The live engine over a topic, then a replay of that topic: same alerts.
#[test]
fn replay_of_a_topic_equals_the_live_engine() {
    let base = k::unique("replay-live");
    let (input, group) = (format!("{base}.in"), format!("{base}.group"));
    let events = scenario();
    let n = events.len() as u64;
    k::block_on(async {
        k::create_topic(&input, 1).await;
        k::produce_json_many(&input, events.into_iter().map(|v| ("k".to_string(), v))).await;
    });
    let toml = format!(
        "[model]\nencoder = \"random\"\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"{group}\"\ntopics = [\"{input}\"]\n[output]\nalerts_topic = \"{base}.alerts\"\ndead_letter_topic = \"{base}.dlq\"\n",
        k::brokers()
    );
    let cfg = Config::from_toml(&toml, "test", &util::root()).unwrap();

    // Live.
    let live = Arc::new(Mutex::new(Vec::new()));
    let stats = Arc::new(PipelineStats::default());
    let watch = stats.clone();
    let stop = async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        while watch.acked.load(Ordering::Relaxed) < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let l2 = live.clone();
    let summary = k::block_on(engine::run_kafka(cfg.clone(), "cpu", stats, stop, move |a| {
        l2.lock().unwrap().push(a.payload.clone())
    }))
    .unwrap();
    assert_eq!(summary.acked, n, "{summary:?}");
    let live = live.lock().unwrap().clone();
    assert!(!live.is_empty(), "the live engine raised alerts");

    // Replay of the same topic (fresh group, no commits).
    let range = KafkaRange::open(&cfg.kafka, &input, None, None).unwrap();
    assert_eq!(range.total(), n);
    let loaded = earshot::model::load(&cfg.model, &candle_core::Device::Cpu).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(cfg.pipeline.channel_capacity);
    let reader = std::thread::spawn(move || range.read(&tx, Duration::from_secs(30)));
    let progress = Arc::new(Progress::default());
    let out = k::block_on(replay::run(
        &cfg,
        loaded,
        rx,
        Arc::new(PipelineStats::default()),
        progress,
        |_| {},
    ))
    .unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), n);
    let replayed: Vec<serde_json::Value> = out.alerts.iter().map(|a| a.payload.clone()).collect();
    assert_eq!(replayed, live, "replay alerts differ from the live engine's");

    // An empty range says so (no data), and a future range is empty.
    let empty = KafkaRange::open(&cfg.kafka, &input, Some(k::now_ms() + 3_600_000), None).unwrap();
    assert_eq!(empty.total(), 0);
}

/// The report as a person sees it: headless Chromium (Debian package, installed
/// by the test set-up) loads the self-contained file, finds the inline SVG
/// timeline and the alerted key in its DOM, and renders a non-trivial page.
#[test]
fn report_renders_in_headless_chromium() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is not installed: run `EARSHOT_TEST_TOOLS=1 bash scripts/setup.sh`");
    let dir = tempdir("replay-html");
    let file = write_scenario(&dir);
    let cfg = util::random_config();
    let o = replay_files(&cfg, vec![file.clone()]);
    let info = report::RunInfo {
        inputs: vec![file.display().to_string()],
        elapsed_s: 1.0,
        config: "test".into(),
    };
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, report::html(&o, &info, None)).unwrap();
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ];
    let profile = dir.join("profile");
    let url = format!("file://{}", html_path.display());
    let dom = std::process::Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", &url])
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("<svg"), "no inline SVG in the rendered DOM");
    assert!(dom.contains("Voltra"), "the alerted brand is not in the report");
    assert!(
        !dom.contains("<script src") && !dom.contains("<link "),
        "report is not self-contained"
    );
    let png = dir.join("report.png");
    let shot = std::process::Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--window-size=1400,2400", "--hide-scrollbars"])
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .expect("run chromium");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    // A blank 1400×2400 page compresses to a few kB; charts, tables and text do not.
    assert!(
        size > 40_000,
        "screenshot {} is {size} bytes: {}",
        png.display(),
        String::from_utf8_lossy(&shot.stderr)
    );
}

/// Issue 14: hostile event times. Lines with absurd times (1e300, NaN,
/// epochs in µs/ns, years 1, 1970, 2300, 9999, a date that does not exist)
/// and a `null` text are dead-lettered at decode with the right code; the
/// replay (in process and through the `earshot replay` binary) finishes
/// quickly and the good events raise exactly the alerts they raise alone.
#[test]
fn hostile_times_are_dead_lettered_and_the_good_events_alert_as_without_them() {
    let dir = tempdir("replay-hostile");
    let good: Vec<String> = scenario().iter().map(|v| v.to_string()).collect();
    let t = 1_795_100_000_000i64; // a plausible time inside the scenario
    let bad_time = |v: &str| {
        format!(r#"{{"id": "bad", "brand": "Voltra", "product": "A", "text": "Akku kaputt", "event_time": {v}}}"#)
    };
    let bad: Vec<(String, &str)> = vec![
        (bad_time("1e300"), "bad_time"),
        (bad_time("-1e300"), "bad_time"),
        (bad_time(r#""NaN""#), "bad_time"),
        (bad_time(r#""-inf""#), "bad_time"),
        (bad_time(r#""Infinity""#), "bad_time"),
        (bad_time("1795100000000000"), "bad_time"),    // microseconds
        (bad_time("1795100000000000000"), "bad_time"), // nanoseconds
        (bad_time(r#""0001-01-01T00:00:00Z""#), "bad_time"),
        (bad_time(r#""1970-01-01T00:00:00Z""#), "bad_time"),
        (bad_time("0"), "bad_time"),
        (bad_time(r#""2300-01-01T00:00:00Z""#), "bad_time"),
        (bad_time(r#""9999-12-31T00:00:00Z""#), "bad_time"),
        (bad_time(r#""2026-02-30T00:00:00Z""#), "bad_time"),
        (
            format!(r#"{{"id": "bad", "brand": "Voltra", "text": "ok", "event_time": {t}, "replied_at": 1e300}}"#),
            "bad_time",
        ),
        (
            format!(r#"{{"id": "bad", "brand": "Voltra", "text": null, "event_time": {t}}}"#),
            "wrong_type",
        ),
    ];
    let clean = dir.join("clean.jsonl");
    std::fs::write(&clean, good.join("\n") + "\n").unwrap();
    // The bad lines spread over the stream (the first before any good one),
    // plus lines with nothing on them, which are not messages at all.
    let dirty = dir.join("dirty.jsonl");
    let mut text = String::new();
    let mut expected = Vec::new();
    let mut line = 0i64;
    let mut bad_iter = bad.iter();
    for (i, g) in good.iter().enumerate() {
        if i % 100 == 0 {
            if let Some((b, code)) = bad_iter.next() {
                text.push_str(b);
                text.push('\n');
                line += 1;
                expected.push((line, *code));
            }
        }
        if i == 700 {
            text.push_str("\n   \n");
            line += 2;
        }
        text.push_str(g);
        text.push('\n');
        line += 1;
    }
    assert!(bad_iter.next().is_none(), "every bad line is in the file");
    std::fs::write(&dirty, text).unwrap();

    let cfg = util::random_config();
    let (tx, rx) = std::sync::mpsc::channel();
    let (c2, d2) = (clean.clone(), dirty.clone());
    std::thread::spawn(move || {
        let run = |f: &std::path::Path| {
            let o = replay_files(&cfg, vec![f.to_path_buf()]);
            let views: Vec<_> = o.alerts.iter().map(replay::AlertView::of).collect();
            let dead: Vec<(i64, &'static str, String)> = o
                .dead
                .iter()
                .map(|d| (d.pos.offset, d.code, d.message.clone()))
                .collect();
            (
                replay::alerts_jsonl(&o.alerts),
                replay::windows_csv(&o.observer, &views),
                o.received,
                o.scored,
                o.observer.too_late,
                dead,
            )
        };
        let _ = tx.send((run(&c2), run(&d2)));
    });
    let (c, d) = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("the replays did not finish within 300 s");
    assert!(
        c.0.contains("Voltra"),
        "the clean stream raises the burst's alerts: {}",
        c.0
    );
    assert!(c.5.is_empty(), "the clean stream has no dead letters: {:?}", c.5);
    let n = good.len() as u64;
    assert_eq!((c.2, c.3), (n, n));
    assert_eq!(d.2, n + bad.len() as u64, "empty lines are no messages");
    assert_eq!(d.3, n, "every good event is scored");
    let codes: Vec<(i64, &str)> = d.5.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(codes, expected, "{:#?}", d.5);
    for (l, _, msg) in &d.5 {
        assert!(msg.len() < 400, "line {l}: a short message: {msg}");
    }
    let msgs: Vec<&str> = d.5.iter().map(|(_, _, m)| m.as_str()).collect();
    assert!(msgs[5].contains("looks like microseconds"), "{}", msgs[5]);
    assert!(msgs[6].contains("looks like nanoseconds"), "{}", msgs[6]);
    assert!(msgs[0].contains("`1e+300`"), "{}", msgs[0]);
    assert_eq!(d.4, c.4, "no good event became too late");
    assert_eq!(d.0, c.0, "alerts.jsonl changed by the bad lines");
    assert_eq!(d.1, c.1, "windows.csv changed by the bad lines");

    // The same file through the binary: finishes, writes the same alerts.
    let toml = dir.join("random.toml");
    std::fs::write(
        &toml,
        format!(
            "[model]\nencoder = \"random\"\ndir = \"{}\"\n",
            util::root().join("models").display()
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_earshot"))
        .args(["replay", "--log", "warn", "--config"])
        .arg(&toml)
        .arg(&dirty)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("earshot replay did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains(&format!("({} unreadable/dead, {} too late)", bad.len(), c.4)),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(out.join("alerts.jsonl")).unwrap(), c.0);
    assert_eq!(std::fs::read_to_string(out.join("windows.csv")).unwrap(), c.1);
}
