//! Deterministic scenario generator and scorer for evaluating the detector.
//!
//! Pure and seeded: given a [`Bank`] of scored texts (built by the caller,
//! with the real model or otherwise) and a [`Scenario`], [`generate`](fn@generate)
//! returns the same event stream every time. The background has several
//! brands, products and regions (each region writes in its language), a
//! daily rhythm in local time, per-product negative shares, occasional
//! neutral texts, replies, and small arrival jitter (out-of-order events);
//! optionally a share of events is delivered minutes to hours late
//! ([`LateDelivery`]).
//! Incidents are injected on top; [`score`](fn@score) compares the detector's signals
//! with the injected truth.

mod bank;
pub mod bursty;
mod generate;
mod incident;
mod score;
pub mod spam_eval;

use earshot_core::types::EventTime;

pub use bank::{Bank, BankText, Role};
pub use generate::{generate, Generated};
pub use incident::{Expect, Incident, LateDelivery, Scenario, Truth};
pub use score::{matches_truth, score, Emitted, Report};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Stream start: Monday 2024-01-01 00:00 UTC.
pub const T0: EventTime = 1_704_067_200_000;

/// Days at the start of a scenario whose alerts are not scored (keys cannot
/// alert before their history is long enough).
pub const WARMUP_DAYS: i64 = 2;

/// Injected items the detector needs before it may fire (the balanced
/// preset's `min_count`).
pub const EVIDENCE_ITEMS: usize = 5;

/// The outcome of one scenario run.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    /// Every signal, with the event time it was emitted at.
    pub emitted: Vec<Emitted>,
    /// Conditions the detector reported cleared, with the event time
    /// (watermark) they were reported at, for the alert lifecycle.
    pub cleared: Vec<(EventTime, earshot_detect::Cleared)>,
    /// The injected truth (None for the background).
    pub truth: Option<Truth>,
    pub counters: earshot_detect::Counters,
}

/// Runs the detector over a scenario and scores it.
pub fn run(
    sc: &Scenario,
    bank: &Bank,
    cfg: &earshot_detect::DetectConfig,
) -> Result<Outcome, earshot_detect::DetectError> {
    let Generated { events, truth } = generate(sc, bank);
    let mut det = earshot_detect::Detector::new(cfg.clone());
    let mut emitted = Vec::new();
    let mut cleared = Vec::new();
    let mut max_seen = i64::MIN;
    let mut keys = std::collections::BTreeSet::new();
    for ev in &events {
        max_seen = max_seen.max(ev.event.event_time);
        let p = det.push(ev)?;
        for s in p.signals {
            emitted.push(Emitted {
                at: max_seen,
                signal: s,
            });
        }
        cleared.extend(det.take_cleared().into_iter().map(|c| (max_seen, c)));
        if keys.len() < 100_000 {
            for r in &cfg.rollups {
                if let Some(k) = earshot_detect::key_for(ev, r) {
                    keys.insert(k);
                }
            }
        }
    }
    let end = T0 + sc.days * DAY;
    for s in det.advance_watermark(end) {
        emitted.push(Emitted { at: end, signal: s });
    }
    cleared.extend(det.take_cleared().into_iter().map(|c| (end, c)));
    let report = score(sc.incident, truth.as_ref(), &emitted, keys.len(), sc.days, WARMUP_DAYS);
    Ok(Outcome {
        report,
        emitted,
        cleared,
        truth,
        counters: det.counters(),
    })
}
