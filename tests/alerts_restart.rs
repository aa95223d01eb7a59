//! Alerts across a SIGKILL of the engine (outbox durability, no lost or
//! repeated deliveries) and the detector → lifecycle sequence on a scenario.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use earshot::alert::AlertOut;
use earshot::config::Config;
use earshot_core::rng::Rng;

use crate::alerts::*;
use crate::kafka_util as k;
use crate::util;

// ---------------------------------------------------------------- 4. SIGKILL

const WORDS: &[&str] = &[
    "battery", "screen", "delivery", "price", "quality", "charger", "cable", "box", "colour", "size", "fast", "slow",
    "great", "poor", "works", "broken", "love", "hate", "again", "never", "always", "happy", "sad", "return", "refund",
    "support", "friendly", "rude", "late", "early", "solid", "cheap", "light", "heavy", "loud", "quiet", "warm",
    "cold", "bright", "dim", "smooth", "rough", "simple", "tricky", "useful", "useless", "stylish", "ugly", "strong",
    "weak",
];

/// `n` random words.
fn words(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| WORDS[rng.below(WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Background reviews over 4 hours plus one author flooding each of
/// `brands` brands: one review_bombing alert per brand, repeated and resolved
/// in event time.
fn sigkill_events(brands: usize) -> Vec<(String, serde_json::Value)> {
    let base = now_ms() - 4 * 60 * MIN;
    let mut rng = Rng::new(42);
    let mut out = Vec::new();
    for i in 0..720i64 {
        let b = i as usize % brands;
        out.push((
            base + i * 20_000,
            format!("B{b}"),
            serde_json::json!({
                "id": format!("bg-{i}"), "text": words(&mut rng, 10), "brand": format!("B{b}"), "product": "P",
                "author": format!("user-{i}"), "event_time": base + i * 20_000,
            }),
        ));
    }
    for b in 0..brands as i64 {
        for j in 0..4i64 {
            let t = base + (b + 1) * 25 * MIN + j * MIN + 7_000;
            out.push((
                t,
                format!("B{b}"),
                serde_json::json!({
                    "id": format!("bot-{b}-{j}"), "text": words(&mut rng, 12), "brand": format!("B{b}"), "product": "P",
                    "author": format!("bot-{b}"), "event_time": t,
                }),
            ));
        }
    }
    out.sort_by_key(|(t, _, _)| *t);
    out.into_iter().map(|(_, k, v)| (k, v)).collect()
}

fn earshot_run(cfg: &Path, log: &Path, extra: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_earshot"))
        .arg("run")
        .arg("--config")
        .arg(cfg)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_alerts_are_pending_loses_none() {
    k::require_broker();
    util::require_models();
    let rx = Receiver::start().await;
    rx.fail("/hook", 503, None, None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let topic = k::unique("alerts-kill-in");
    let alerts_topic = k::unique("alerts-kill-out");
    k::create_topic(&topic, 2).await;
    k::create_topic(&alerts_topic, 1).await;
    let brands = 6;
    let events = sigkill_events(brands);
    k::produce_json_many(&topic, events).await;
    let models = util::root().join("models");
    let toml = format!(
        "[model]\nencoder = \"random\"\ndir = \"{}\"\n\
         [kafka]\nbrokers = \"{}\"\ngroup_id = \"{}\"\ntopics = [\"{topic}\"]\ncommit_interval_ms = 60000\n\
         [output]\nalerts_topic = \"{alerts_topic}\"\ndead_letter_topic = \"{alerts_topic}.dead\"\n\
         [pipeline]\ndrain_timeout_ms = 20000\n\
         [alert]\noutbox_path = \"data/outbox.redb\"\nrepeat_interval_minutes = 15\nresolve_after_minutes = 40\n\
         [[alert.sinks]]\nname = \"hook\"\nkind = \"generic\"\nurl = \"{}/hook\"\nsecret_file = \"secret\"\n\
         backoff_initial_ms = 200\nbackoff_max_ms = 1000\nmax_attempts = 100000\n",
        models.display(),
        k::brokers(),
        k::unique("alerts-kill-group"),
        rx.url
    );
    let cfg_path = dir.path().join("earshot.toml");
    std::fs::write(&cfg_path, toml).unwrap();
    let log = dir.path().join("run1.log");
    let mut child = earshot_run(&cfg_path, &log, &[]);
    // Wait until alert changes are on the alerts topic and being attempted.
    let start = Instant::now();
    let mut seen = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let recs = {
            let t = alerts_topic.clone();
            tokio::task::spawn_blocking(move || k::read_to_end(&t, Duration::from_secs(20)))
                .await
                .unwrap()
        };
        let attempted: BTreeSet<String> = rx
            .requests("/hook")
            .iter()
            .map(|r| r.h("webhook-id").to_string())
            .collect();
        if recs.len() >= brands * 2 && recs.len() == seen && attempted.len() >= 2 {
            break;
        }
        seen = recs.len();
        if start.elapsed() > Duration::from_secs(240) {
            let l = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String = l
                .chars()
                .rev()
                .take(4000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!(
                "alerts on topic {}, attempted {}; log tail:\n{tail}",
                recs.len(),
                attempted.len()
            );
        }
        assert!(child.try_wait().unwrap().is_none(), "earshot exited early");
    }
    // SIGKILL: no drain, no final commit, nothing delivered yet.
    let pid = child.id();
    std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
    assert_eq!(rx.ok("/hook").len(), 0, "nothing delivered before the kill");
    let attempts_before = rx.requests("/hook").len();
    rx.heal("/hook");
    // Restart: pending entries are sent; re-processed events add nothing new.
    let log2 = dir.path().join("run2.log");
    // A fresh group id: the local broker keeps the killed member's partitions
    // for longer than a test should wait, and a group without committed
    // offsets re-reads everything, which is what a crash before the first
    // commit does: every alert is derived again, with the same keys.
    let regroup = k::unique("alerts-kill-group2");
    let mut child = earshot_run(&cfg_path, &log2, &["--until-idle", "5", "--group-id", &regroup]);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log2).unwrap_or_default()
    );
    let recs = {
        let t = alerts_topic.clone();
        tokio::task::spawn_blocking(move || k::read_to_end(&t, Duration::from_secs(20)))
            .await
            .unwrap()
    };
    let on_topic: BTreeSet<String> = recs
        .iter()
        .map(|r| r.json()["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    let delivered = rx.ok("/hook");
    let keys: BTreeSet<String> = delivered.iter().map(|r| r.h("webhook-id").to_string()).collect();
    assert!(delivered.iter().all(|r| verify(SECRET, r)));
    let statuses: Vec<String> = delivered
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert!(statuses.iter().any(|s| s == "alert.resolved"), "{statuses:?}");
    assert_eq!(
        keys, on_topic,
        "every alert state change on the topic reached the webhook"
    );
    assert!(recs.len() > on_topic.len(), "the restart re-derived alerts (same keys)");
    let l2 = std::fs::read_to_string(dir.path().join("run2.log")).unwrap_or_default();
    let summary = l2
        .lines()
        .rev()
        .find(|l| l.contains("stopped"))
        .unwrap_or("")
        .to_string();
    eprintln!("sigkill restart summary: {summary}");
    eprintln!(
        "sigkill: {} alert records on the topic ({} distinct keys), {} attempts before the kill, \
         {} deliveries after restart ({} distinct idempotency keys)",
        recs.len(),
        on_topic.len(),
        attempts_before,
        delivered.len(),
        keys.len()
    );
}

// ---------------------------------------------------------------- 5. detector → lifecycle

/// The detector's cleared conditions resolve the alerts its signals opened,
/// and the whole sequence (keys included) is the same on a second run.
#[test]
fn detector_scenario_fires_and_resolves_deterministically() {
    use earshot::detect::{DetectConfig, Detector};
    use earshot_scenario::{self as scenario, Incident, Scenario};
    let bank = crate::detect_bank::real_bank();
    let sc = Scenario::new(7, Incident::BatteryWave);
    let events = scenario::generate(&sc, &bank).events;
    let cfg = Config::from_toml("[alert]\nrepeat_interval_minutes = 60\n", "t", Path::new(".")).unwrap();
    let run = || {
        let mut det = Detector::new(DetectConfig::default());
        let mut lc = lifecycle(&cfg);
        let mut out = Vec::new();
        for ev in &events {
            let p = det.push(ev).unwrap();
            out.extend(lc.step(&p.signals, &det.take_cleared(), det.watermark()));
        }
        let end = events.last().unwrap().event.event_time + 3 * 24 * 60 * MIN;
        let s = det.advance_watermark(end);
        out.extend(lc.step(&s, &det.take_cleared(), det.watermark()));
        out
    };
    let a = run();
    let crisis: Vec<&AlertOut> = a.iter().filter(|x| x.payload["rule"] != "review_bombing").collect();
    let fired: BTreeSet<&str> = crisis
        .iter()
        .filter(|x| x.status == earshot::alert::Status::Firing && x.repeat == 0)
        .map(|x| x.fingerprint.as_str())
        .collect();
    let resolved: BTreeSet<&str> = crisis
        .iter()
        .filter(|x| x.status == earshot::alert::Status::Resolved)
        .map(|x| x.fingerprint.as_str())
        .collect();
    assert!(!fired.is_empty(), "the battery wave fires");
    assert_eq!(fired, resolved, "every crisis alert resolves once the wave is over");
    let b = run();
    let keys = |v: &[AlertOut]| v.iter().map(|x| x.idempotency_key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&a), keys(&b), "replay gives the same alert sequence");
    eprintln!(
        "scenario: {} changes ({} firing fingerprints, {} repeats)",
        a.len(),
        fired.len(),
        a.iter().filter(|x| x.repeat > 0).count()
    );
}
