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

// ---------------------------------------------------------------- 4b. restart state

/// Starts the alert stage on `cfg`, waiting while the previous one's
/// delivery tasks (aborted on drop) still hold the outbox file.
async fn restart(cfg: &Config) -> std::sync::Arc<earshot::alert::service::AlertService> {
    let start = Instant::now();
    loop {
        match earshot::alert::service::AlertService::start(&cfg.alert) {
            Ok(s) => return s,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the alert stage did not start again: {e}"),
        }
    }
}

/// Alerts firing at a restart resolve afterwards (when the detector clears
/// the condition again, or `resolve_after` after their last change), and a
/// silence added through the API is still there after the restart (and
/// gone after it is expired and the stage restarts once more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_firing_at_a_restart_resolve_and_api_silences_survive() {
    use earshot::alert::api::{AlertApi, Silence};
    use earshot::alert::Status;
    use earshot::types::SignalKind;
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = alert_config(
        dir.path(),
        &format!(
            "[[alert.sinks]]\nname = \"gen\"\nkind = \"generic\"\nurl = \"{}/gen\"\nsecret_file = \"secret\"\n",
            rx.url
        ),
    );
    let t0 = now_ms() - 120 * MIN;
    let svc = restart(&cfg).await;
    let mut lc = svc.lifecycle();
    let fired = lc.step(
        &[
            signal(SignalKind::VolumeSpike, "Voltra", "X2", t0),
            signal(SignalKind::SentimentShift, "Nimbus", "N1", t0),
        ],
        &[],
        Some(t0),
    );
    assert_eq!(fired.len(), 2);
    svc.outbox().unwrap().insert(entries(&fired)).await.unwrap();
    let silence = svc
        .add_silence(Silence {
            id: String::new(),
            matchers: [("brand".to_string(), "Quiet".to_string())].into(),
            starts_at: earshot::alert::rfc3339(t0 - MIN),
            ends_at: earshot::alert::rfc3339(now_ms() + 24 * 60 * MIN),
            comment: "known".into(),
            created_by: "test".into(),
        })
        .unwrap();
    wait_for("the firing deliveries", Duration::from_secs(30), || {
        svc.outbox_depth() == 0
    })
    .await;
    // What an uninterrupted run would send next, for comparison.
    let mut ref_lc = lifecycle(&cfg);
    ref_lc.step(
        &[
            signal(SignalKind::VolumeSpike, "Voltra", "X2", t0),
            signal(SignalKind::SentimentShift, "Nimbus", "N1", t0),
        ],
        &[],
        Some(t0),
    );
    drop(lc);
    drop(svc);

    // Restart: both alerts are firing again, the silence is back.
    let svc = restart(&cfg).await;
    let mut lc = svc.lifecycle();
    let fps: BTreeSet<String> = fired.iter().map(|a| a.fingerprint.clone()).collect();
    assert_eq!(lc.firing().into_iter().collect::<BTreeSet<_>>(), fps);
    let active: BTreeSet<String> = svc
        .active()
        .iter()
        .map(|v| v["fingerprint"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        active, fps,
        "the active list starts with the alerts firing before the restart"
    );
    assert!(
        svc.silences().iter().any(|s| s.id == silence.id),
        "{:?}",
        svc.silences()
    );
    let quiet = lc.step(&[signal(SignalKind::VolumeSpike, "Quiet", "Q", t0 + MIN)], &[], None);
    assert!(quiet[0].silenced, "the restored silence applies");
    // The restarted detector sees X2 again, then the condition clear.
    let again = [signal(SignalKind::VolumeSpike, "Voltra", "X2", t0 + 5 * MIN)];
    assert!(lc.step(&again, &[], Some(t0 + 5 * MIN)).is_empty(), "deduplicated");
    let clear = [cleared(SignalKind::VolumeSpike, "Voltra", "X2", t0 + 20 * MIN)];
    let mut out = lc.step(&[], &clear, Some(t0 + 20 * MIN));
    ref_lc.step(&again, &[], Some(t0 + 5 * MIN));
    let want = ref_lc.step(&[], &clear, Some(t0 + 20 * MIN));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, Status::Resolved);
    assert_eq!(
        out[0].idempotency_key, want[0].idempotency_key,
        "the key an uninterrupted run gives"
    );
    // N1 is not confirmed by the new detector: resolved once resolve_after
    // (60 min) of event time has passed since its firing.
    let later = lc.step(&[], &[], Some(t0 + 61 * MIN));
    let resolved: Vec<_> = later.iter().filter(|a| a.status == Status::Resolved).collect();
    assert_eq!(resolved.len(), 1, "{later:?}");
    assert_eq!(resolved[0].at, t0 + 60 * MIN);
    out.extend(later);
    let to_send: Vec<_> = out.iter().filter(|a| !a.silenced).cloned().collect();
    svc.outbox().unwrap().insert(entries(&to_send)).await.unwrap();
    wait_for("the resolutions", Duration::from_secs(30), || {
        rx.ok("/gen")
            .iter()
            .filter(|r| r.json()["type"] == "alert.resolved")
            .count()
            == 2
    })
    .await;
    let resolved_fps: BTreeSet<String> = rx
        .ok("/gen")
        .iter()
        .filter(|r| r.json()["type"] == "alert.resolved")
        .map(|r| r.json()["data"]["fingerprint"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(resolved_fps, fps, "both alerts firing before the restart were resolved");
    assert!(svc.outbox().unwrap().latest_firing().unwrap().is_empty());
    // Expired through the API: gone after the next restart.
    assert!(svc.expire_silence(&silence.id));
    drop(lc);
    drop(svc);
    let svc = restart(&cfg).await;
    assert!(svc.silences().is_empty(), "{:?}", svc.silences());
    assert!(svc.lifecycle().firing().is_empty());
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
