//! Late delivery (issue 15): four-day scenarios with 3.5 % of events 1–30
//! minutes late and 0.5 % 1–6 hours late, run with the old allowed lateness
//! (10 minutes) and the new default (6 hours). The bank is synthetic (word
//! salads with unit embeddings, no model), so the numbers are about
//! lateness, not about classification.
//!
//! `cargo test --release -p earshot-scenario --test late -- --nocapture`
//! prints the table.

use earshot_core::rng::Rng;
use earshot_core::types::{Category, Scored, Sentiment, SentimentProbs, SignalKind};
use earshot_detect::{Counters, DetectConfig};
use earshot_scenario::{self as scenario, Bank, BankText, Incident, LateDelivery, Role, Scenario};

const WORDS: [&str; 48] = [
    "battery", "strap", "screen", "box", "delivery", "colour", "size", "charger", "sound", "price", "gift", "fabric",
    "handle", "lid", "button", "cable", "manual", "app", "update", "light", "weight", "zip", "sole", "seam", "paint",
    "glass", "door", "wheel", "motor", "pump", "filter", "brush", "blade", "lens", "case", "clip", "hinge", "pad",
    "plug", "knob", "order", "parcel", "refund", "support", "return", "courier", "invoice", "warranty",
];

const ROLES: [Role; 9] = [
    Role::Positive,
    Role::Neutral,
    Role::Negative,
    Role::Battery,
    Role::Logistics,
    Role::AfterSales,
    Role::Quality,
    Role::Spam,
    Role::FakePraise,
];

const DIM: usize = 16;

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// 60 texts per role: coherent roles (a wave's theme, the fakes) share a
/// direction of their own, the background points anywhere; fakes are one
/// sentence with small changes (near-duplicates), the rest word salads.
fn synthetic_bank() -> Bank {
    let mut rng = Rng::new(42);
    let mut texts = Vec::new();
    for (r, &role) in ROLES.iter().enumerate() {
        let (sentiment, category) = match role {
            Role::Positive | Role::FakePraise => (Sentiment::Positive, Category::Other),
            Role::Neutral => (Sentiment::Neutral, Category::Other),
            Role::Logistics => (Sentiment::Negative, Category::Logistics),
            Role::AfterSales => (Sentiment::Negative, Category::AfterSales),
            _ => (Sentiment::Negative, Category::ProductQuality),
        };
        let probs = match sentiment {
            Sentiment::Positive => (0.03, 0.02, 0.95),
            Sentiment::Neutral => (0.1, 0.8, 0.1),
            Sentiment::Negative => (0.95, 0.03, 0.02),
        };
        let coherent = matches!(
            role,
            Role::Battery | Role::Logistics | Role::AfterSales | Role::Spam | Role::FakePraise
        );
        for i in 0..60 {
            let text = match role {
                Role::Spam => format!("worst product ever do not buy total scam {}", WORDS[i % 4]),
                Role::FakePraise => format!("amazing best purchase of my life five stars {}", WORDS[i % 4]),
                _ => (0..10)
                    .map(|_| WORDS[rng.below(WORDS.len())])
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            let embedding = unit(
                (0..DIM)
                    .map(|d| {
                        let axis = if coherent && d == r { 3.0 } else { 0.0 };
                        axis + rng.normal() as f32
                    })
                    .collect(),
            );
            texts.push(BankText {
                role,
                lang: "en".into(),
                text,
                scored: Scored {
                    sentiment,
                    probs: SentimentProbs {
                        negative: probs.0,
                        neutral: probs.1,
                        positive: probs.2,
                    },
                    category,
                    category_score: 0.9,
                    lang: "en".into(),
                    tokens: 16,
                    truncated: false,
                    embedding,
                },
            });
        }
    }
    Bank { texts }
}

fn four_days(seed: u64, incident: Incident, late: LateDelivery) -> Scenario {
    Scenario {
        days: 4,
        incident_day: 3,
        late,
        ..Scenario::new(seed, incident)
    }
}

struct Row {
    incident: Incident,
    seed: u64,
    lateness: &'static str,
    passed: bool,
    delay_min: Option<f64>,
    false_alerts: u32,
    c: Counters,
}

#[test]
fn late_delivery_before_and_after() {
    let bank = synthetic_bank();
    let after = DetectConfig::default();
    let before = DetectConfig {
        allowed_lateness: 10 * 60_000,
        ..DetectConfig::default()
    };
    assert_eq!(after.allowed_lateness, 6 * 3_600_000);
    let mut rows = Vec::new();
    for incident in [Incident::None, Incident::BatteryWave] {
        for seed in [1, 2, 3] {
            for (lateness, cfg) in [("10 min", &before), ("6 h", &after)] {
                let sc = four_days(seed, incident, LateDelivery::OBSERVED);
                let o = scenario::run(&sc, &bank, cfg).expect("run");
                rows.push(Row {
                    incident,
                    seed,
                    lateness,
                    passed: o.report.passed,
                    delay_min: o.report.delay_min,
                    false_alerts: o.report.false_alerts,
                    c: o.counters,
                });
            }
        }
    }
    let mut table = String::from(
        "| scenario | seed | allowed lateness | events | late accepted | late after evaluation | late corrected | too late | too late % | result | delay (event min) | false alerts |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} |\n",
            r.incident.name(),
            r.seed,
            r.lateness,
            r.c.events,
            r.c.late_accepted,
            r.c.late_after_evaluation,
            r.c.late_corrected,
            r.c.too_late,
            100.0 * r.c.too_late as f64 / r.c.events as f64,
            if r.passed { "pass" } else { "FAIL" },
            r.delay_min.map_or("-".into(), |d| format!("{d:.1}")),
            r.false_alerts,
        ));
    }
    println!("{table}");
    for pair in rows.chunks(2) {
        let (old, new) = (&pair[0].c, &pair[1].c);
        assert_eq!(old.events, new.events);
        // About 3.5 % × 19/29 + 0.5 % of the events were too late before.
        assert!(old.too_late * 100 > old.events * 2, "{old:?}");
        // Every delay is within 6 h now.
        assert_eq!(new.too_late, 0, "{new:?}");
        assert_eq!(new.late_accepted, old.late_accepted + old.too_late, "{new:?}");
    }
}

#[test]
fn late_delivery_changes_the_order_not_the_events() {
    let bank = synthetic_bank();
    let on_time = scenario::generate(&four_days(1, Incident::BatteryWave, LateDelivery::NONE), &bank).events;
    let late = scenario::generate(&four_days(1, Incident::BatteryWave, LateDelivery::OBSERVED), &bank).events;
    let ids = |v: &[earshot_core::types::ScoredEvent]| {
        let mut ids: Vec<String> = v.iter().map(|e| e.event.id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&on_time), ids(&late));
    let moved = on_time
        .iter()
        .zip(&late)
        .filter(|(a, b)| a.event.id != b.event.id)
        .count();
    assert!(moved > 0);
}

/// Without late events the longer lateness changes no signal: the same
/// kinds on the same keys and windows at the same times. Only a slow drift
/// whose run is longer than the buckets kept at 10 minutes (24 h + 10 min +
/// 2 h) now reports the items of its whole window.
#[test]
fn on_time_streams_give_the_same_signals_with_six_hours_of_lateness() {
    let bank = synthetic_bank();
    let after = DetectConfig::default();
    let before = DetectConfig {
        allowed_lateness: 10 * 60_000,
        ..DetectConfig::default()
    };
    let kept_before = 26 * 3_600_000 + 10 * 60_000;
    for incident in [
        Incident::BatteryWave,
        Incident::LogisticsDrift,
        Incident::SpamWave,
        Incident::MaskedWave,
    ] {
        let sc = Scenario::new(1, incident);
        let a = scenario::run(&sc, &bank, &before).expect("run").emitted;
        let b = scenario::run(&sc, &bank, &after).expect("run").emitted;
        assert_eq!(a.len(), b.len(), "{}", incident.name());
        for (x, y) in a.iter().zip(&b) {
            let (s, t) = (&x.signal, &y.signal);
            let same_place = (x.at, s.kind, &s.key, s.window_start, s.window_end, &s.explanation)
                == (y.at, t.kind, &t.key, t.window_start, t.window_end, &t.explanation);
            assert!(same_place, "{}: {s:?} vs {t:?}", incident.name());
            if s.kind != SignalKind::SlowDrift || s.window_end - s.window_start <= kept_before {
                assert_eq!(s, t, "{}", incident.name());
            }
        }
    }
}
