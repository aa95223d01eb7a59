//! Unit tests of the registry (private helpers included).

use super::*;
use crate::metrics::*;

#[test]
fn every_declaration_registers() {
    let r = Registry::default();
    assert_eq!(r.families.len(), ALL.len());
    // A second registry in the same process is independent.
    let r2 = Registry::default();
    r.add(&EVENTS_RECEIVED, &[], 3.0);
    assert_eq!(r.get(&EVENTS_RECEIVED, &[]), 3.0);
    assert_eq!(r2.get(&EVENTS_RECEIVED, &[]), 0.0);
}

#[test]
fn histograms_render_cumulative_buckets_and_exact_quantiles() {
    let r = Registry::default();
    r.observe_many(&STAGE_SECONDS, &["inference"], (1..=1000).map(|i| i as f64 / 1000.0));
    let q = r.quantiles(&STAGE_SECONDS, &["inference"]).unwrap();
    assert_eq!(q.count, 1000);
    assert!((q.p50 - 0.5).abs() < 0.001, "{q:?}");
    assert!((q.p99 - 0.99).abs() < 0.001, "{q:?}");
    assert!((q.p999 - 0.999).abs() < 0.001, "{q:?}");
    let mut s = String::new();
    r.render(&mut s);
    assert!(s.contains("# TYPE earshot_stage_duration_seconds histogram\n"), "{s}");
    assert!(s.contains("earshot_stage_duration_seconds_bucket{stage=\"inference\",le=\"0.1\"} 100\n"));
    assert!(s.contains("earshot_stage_duration_seconds_bucket{stage=\"inference\",le=\"+Inf\"} 1000\n"));
    assert!(s.contains("earshot_stage_duration_seconds_count{stage=\"inference\"} 1000\n"));
    // Created at zero, no quantiles recorded yet.
    r.observe_many(&BATCH_SIZE, &[], std::iter::empty());
    assert_eq!(r.quantiles(&BATCH_SIZE, &[]).unwrap().count, 0);
    assert!(r.quantiles(&STAGE_SECONDS, &["detect"]).is_none());
}

#[test]
fn wrong_label_counts_are_rejected_by_the_crate() {
    let r = Registry::default();
    assert!(matches!(
        r.try_add(&ALERTS, &["volume_spike", "critical"], 1.0),
        Err(MetricsError::Labels { .. })
    ));
    assert!(matches!(
        r.series(&STAGE_SECONDS, &[]),
        Err(MetricsError::Labels { .. })
    ));
    assert!(matches!(
        r.try_add(&STAGE_SECONDS, &["x"], 1.0),
        Err(MetricsError::Kind { .. })
    ));
    assert!(matches!(
        r.try_add(&EVENTS_RECEIVED, &[], -1.0),
        Err(MetricsError::Value { .. })
    ));
    // Recorded through the public API: dropped, logged, no panic.
    r.add(&ALERTS, &["a"], 1.0);
    r.observe(&EVENT_LATENCY, &["extra"], 1.0);
    let mut s = String::new();
    r.render(&mut s);
    assert!(!s.contains("earshot_alerts_total"), "{s}");
    assert!(!s.contains("earshot_event_latency_seconds"), "{s}");
}

#[test]
fn mirrored_counters_move_by_the_difference() {
    let r = Registry::default();
    r.set(&INFERENCE_TOKENS, &["real"], 10.0);
    r.set(&INFERENCE_TOKENS, &["real"], 25.0);
    assert_eq!(r.get(&INFERENCE_TOKENS, &["real"]), 25.0);
    r.set(&INFERENCE_TOKENS, &["real"], 4.0);
    assert_eq!(r.get(&INFERENCE_TOKENS, &["real"]), 4.0);
    r.set(&WEBHOOK_BACKOFF, &["s", "generic"], 0.5);
    r.set(&WEBHOOK_BACKOFF, &["s", "generic"], 1.75);
    assert_eq!(r.get(&WEBHOOK_BACKOFF, &["s", "generic"]), 1.75);
    assert_eq!(r.get(&INFERENCE_TOKENS, &["padded"]), 0.0);
}

#[test]
fn set_all_replaces_the_family() {
    let r = Registry::default();
    let row = |b: &str, v| (vec![b.to_string()], v);
    r.set_all(&SLA_OPEN, [row("a", 1.0), row("b", 2.0)]);
    r.set_all(&SLA_OPEN, [row("b", 3.0), row("c", 4.0)]);
    assert_eq!(r.get(&SLA_OPEN, &["a"]), 0.0);
    assert_eq!(r.get(&SLA_OPEN, &["b"]), 3.0);
    assert_eq!(r.get(&SLA_OPEN, &["c"]), 4.0);
    let mut s = String::new();
    r.render(&mut s);
    assert!(!s.contains("earshot_detector_sla_open{brand=\"a\"}"), "{s}");
    r.set_all(&SLA_OPEN, []);
    let mut s = String::new();
    r.render(&mut s);
    assert!(!s.contains("earshot_detector_sla_open"), "{s}");
}

#[test]
fn brand_labels_are_capped() {
    let r = Registry::default();
    for i in 0..MAX_BRANDS {
        assert_eq!(r.brand(Some(&format!("b{i}"))), format!("b{i}"));
    }
    assert_eq!(r.brand(Some("late")), OTHER);
    assert_eq!(r.brand(Some("b3")), "b3");
    assert_eq!(r.brand(None), "none");
}

#[test]
fn label_values_are_escaped() {
    let r = Registry::default();
    r.set(&BUILD_INFO, &["x\"y\\z\nw"], 1.0);
    let mut s = String::new();
    r.render(&mut s);
    assert!(s.contains("earshot_build_info{version=\"x\\\"y\\\\z\\nw\"} 1\n"), "{s}");
}

#[test]
fn process_metrics_come_from_the_collector() {
    let r = Registry::default();
    let mut s = String::new();
    r.render(&mut s);
    if cfg!(target_os = "linux") {
        for d in ALL.iter().filter(|d| d.process) {
            assert!(
                s.contains(&format!("# HELP {} {}\n", d.name, d.help)),
                "{}: {s}",
                d.name
            );
            assert!(
                s.contains(&format!("# TYPE {} {}\n", d.name, d.kind.as_str())),
                "{}",
                d.name
            );
        }
        let rss = s
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap();
        assert!(rss > 0.0);
    }
}
