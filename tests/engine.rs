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
    assert!(
        crisis.iter().any(|a| a.payload["labels"]["product"] == "X2 Power Bank"),
        "the alert names the product"
    );
}
