//! The pipeline end to end without a broker: the demo stream through the real
//! model and detector, collected in memory.

use std::sync::{Arc, Mutex};

use earshot::ingest::file::read_jsonl;
use earshot::pipeline::{engine, sink::Collected, PipelineStats, Sink};

use crate::util;

#[test]
fn demo_stream_raises_the_overheating_alert_and_dead_letters_bad_lines() {
    let cfg = util::real_config();
    let messages = read_jsonl(&util::root().join("examples/stream.jsonl")).unwrap();
    let n = messages.len() as u64;
    let loaded = earshot::model::load(&cfg.model, &candle_core::Device::Cpu).unwrap();
    let collected = Arc::new(Mutex::new(Collected::default()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stats = Arc::new(PipelineStats::default());
    let summary = rt
        .block_on(engine::run_messages(
            &cfg,
            loaded,
            messages,
            Sink::Memory(collected.clone()),
            stats,
            |_| {},
        ))
        .unwrap();
    let c = collected.lock().unwrap();
    assert_eq!(summary.received, n);
    assert_eq!(summary.scored + 3, n, "{summary:?}");
    // Every event exactly once, in input order.
    let ids: Vec<&str> = c.scored.iter().map(|s| s.event.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "output is in input order");
    let codes: Vec<&str> = c.dead.iter().map(|d| d.code).collect();
    assert_eq!(codes, vec!["empty_text", "missing_field", "invalid_json"]);
    assert_eq!(c.dead[2].pos.offset, n as i64, "dead letter names its line");
    for a in &c.alerts {
        eprintln!("{}", a.summary);
    }
    let crisis: Vec<_> = c
        .alerts
        .iter()
        .filter(|a| a.payload["rule"] != "review_bombing")
        .filter(|a| a.payload["labels"]["brand"] == "Voltra")
        .collect();
    assert!(!crisis.is_empty(), "no crisis alert on Voltra");
    // The page names the product: in its labels when the product-level alert
    // opened the incident, else among the incident's keys (an incident keeps
    // the labels of the alert that opened it; later members are listed).
    let names_product = |a: &&earshot_alert::AlertOut| {
        a.payload["labels"]["product"] == "X2 Power Bank"
            || a.payload["incident"]["keys"].as_array().is_some_and(|ks| {
                ks.iter()
                    .any(|k| k.as_str().is_some_and(|k| k.contains("product=X2 Power Bank")))
            })
    };
    assert!(crisis.iter().any(names_product), "the alert names the product");
}

#[test]
fn a_reply_message_is_acked_in_sequence_without_being_scored_or_dead_lettered() {
    let cfg = util::random_config();
    let loaded = earshot::model::load(&cfg.model, &candle_core::Device::Cpu).unwrap();
    let lines = [
        r#"{"id": "r1", "text": "The kettle leaks everywhere", "brand": "Acme", "event_time": "2026-11-23T10:00:00Z"}"#,
        r#"{"id": "a1", "reply_to": "r1", "replied_at": "2026-11-23T11:00:00Z"}"#,
        r#"{"id": "r2", "text": "Lovely colour", "brand": "Acme", "event_time": "2026-11-23T11:30:00Z"}"#,
        r#"{"id": "a2", "reply_to": 7}"#,
    ];
    let messages: Vec<earshot::ingest::RawMessage> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| earshot::ingest::RawMessage {
            payload: Some(l.as_bytes().to_vec()),
            key: None,
            timestamp: None,
            pos: earshot::types::SourcePos {
                source: "replies".into(),
                partition: 0,
                offset: i as i64,
            },
        })
        .collect();
    let collected = Arc::new(Mutex::new(Collected::default()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stats = Arc::new(PipelineStats::default());
    let summary = rt
        .block_on(engine::run_messages(
            &cfg,
            loaded,
            messages,
            Sink::Memory(collected.clone()),
            stats,
            |_| {},
        ))
        .unwrap();
    let c = collected.lock().unwrap();
    assert_eq!(
        (summary.received, summary.scored, summary.replies),
        (4, 2, 1),
        "{summary:?}"
    );
    assert_eq!(
        summary.acked, 4,
        "every message acknowledged, the reply included: {summary:?}"
    );
    let ids: Vec<&str> = c.scored.iter().map(|s| s.event.id.as_str()).collect();
    assert_eq!(ids, ["r1", "r2"], "replies are not scored outputs");
    // A reply with no time at all (no field, no message timestamp) is a
    // dead letter that names the field.
    assert_eq!(c.dead.len(), 1);
    assert_eq!(c.dead[0].code, "missing_field");
    assert!(c.dead[0].message.contains("replied_at"), "{}", c.dead[0].message);
}

/// The detector runs on its own thread: if it dies (fault injected by a
/// detection callback that panics on the third event), the pipeline stops
/// with an error naming the detector instead of hanging, and acknowledges
/// nothing past the failure.
#[test]
fn a_detector_panic_stops_the_pipeline_with_its_message() {
    let cfg = util::random_config();
    let loaded = earshot::model::load(&cfg.model, &candle_core::Device::Cpu).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    for i in 0..20i64 {
        let line = format!(
            r#"{{"id": "e{i}", "text": "The kettle leaks, try {i}", "brand": "Acme", "event_time": {}}}"#,
            1_795_000_000_000 + i * 60_000
        );
        tx.try_send(earshot::ingest::RawMessage {
            payload: Some(line.into_bytes()),
            key: None,
            timestamp: None,
            pos: earshot::types::SourcePos {
                source: "t".into(),
                partition: 0,
                offset: i,
            },
        })
        .unwrap();
    }
    drop(tx);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stats = Arc::new(PipelineStats::default());
    let mut seen = 0;
    let detect = move |_: &earshot::types::ScoredEvent| {
        seen += 1;
        assert!(seen < 3, "injected detector fault");
        earshot::pipeline::Detected::default()
    };
    let collected = Arc::new(Mutex::new(Collected::default()));
    let run = engine::run_offline(&cfg, loaded, rx, Sink::Memory(collected), stats.clone(), detect);
    let result = rt.block_on(async { tokio::time::timeout(std::time::Duration::from_secs(60), run).await });
    let err = result.expect("the pipeline must stop, not hang").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, earshot::pipeline::PipelineError::Detector(_)), "{text}");
    assert!(text.contains("injected detector fault"), "{text}");
    assert!(
        PipelineStats::get(&stats.acked) <= 2,
        "nothing acknowledged past the fault"
    );
}
