//! Counters of a pipeline run and the per-burst tally the output stage
//! records into the metrics registry.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::alert::AlertOut;
use crate::ingest::mapping::DeadLetter;
use crate::metrics::{self as m, Registry};
use crate::types::ScoredEvent;

/// Counters of one pipeline run, plus the metrics registry the stages record
/// into (histograms, labelled counters). Per-message counts stay atomics here
/// and are mirrored into the registry at scrape time ([`PipelineStats::export`]).
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub metrics: Registry,
    pub received: AtomicU64,
    pub scored: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub alerts: AtomicU64,
    pub acked: AtomicU64,
    pub batches: AtomicU64,
    pub batch_texts: AtomicU64,
    pub real_tokens: AtomicU64,
    pub padded_tokens: AtomicU64,
    pub inference_micros: AtomicU64,
    pub truncated: AtomicU64,
    pub too_late: AtomicU64,
    /// Reply messages (`mapping.reply_to`): acked, not scored.
    pub replies: AtomicU64,
}

impl PipelineStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Copies the atomic counters into the registry (call before rendering).
    pub fn export(&self) {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let r = &self.metrics;
        r.set(&m::EVENTS_RECEIVED, &[], g(&self.received));
        r.set(&m::EVENTS_SCORED, &[], g(&self.scored));
        r.set(&m::EVENTS_ACKED, &[], g(&self.acked));
        r.set(&m::EVENTS_TOO_LATE, &[], g(&self.too_late));
        r.set(&m::EVENTS_TRUNCATED, &[], g(&self.truncated));
        r.set(
            &m::PIPELINE_IN_FLIGHT,
            &[],
            (g(&self.received) - g(&self.acked)).max(0.0),
        );
        r.set(&m::INFERENCE_TOKENS, &["real"], g(&self.real_tokens));
        r.set(&m::INFERENCE_TOKENS, &["padded"], g(&self.padded_tokens));
        self.init_series();
    }

    /// Creates the series of known label values at zero (adding 0 is a
    /// no-op once they exist), so `rate()`/`changes()` see the first increment.
    fn init_series(&self) {
        let r = &self.metrics;
        for code in DeadLetter::CODES
            .iter()
            .chain(&["tokenize_failed", "inference_failed", "detector_rejected"])
        {
            r.add(&m::EVENTS_DEAD, &[code], 0.0);
        }
        for outcome in ["ok", "error"] {
            r.add(&m::INFERENCE_BATCHES, &[outcome], 0.0);
        }
        for kind in crate::types::SignalKind::ALL {
            for severity in ["info", "warning", "critical"] {
                for status in ["firing", "resolved"] {
                    r.add(&m::ALERTS, &[kind.as_str(), severity, status], 0.0);
                }
            }
        }
        for stage in m::STAGES {
            r.observe_many(&m::STAGE_SECONDS, &[stage], std::iter::empty());
        }
        r.observe_many(&m::EVENT_LATENCY, &[], std::iter::empty());
        r.observe_many(&m::EVENT_TO_ALERT, &[], std::iter::empty());
        r.observe_many(&m::BATCH_SIZE, &[], std::iter::empty());
        r.observe_many(&m::BATCH_TOKENS, &[], std::iter::empty());
    }
}

/// Per-event figures gathered by the output stage and recorded into the
/// registry once per burst (one lock per family instead of per message).
#[derive(Default)]
pub(super) struct Tally {
    pub(super) detect: Vec<f64>,
    pub(super) deliver: Vec<f64>,
    pub(super) end_to_end: Vec<f64>,
    pub(super) event_to_alert: Vec<f64>,
    sentiment: std::collections::HashMap<(String, String, &'static str), f64>,
    category: std::collections::HashMap<(String, &'static str, &'static str), f64>,
    pub(super) dead: std::collections::HashMap<&'static str, f64>,
    alerts: std::collections::HashMap<(String, String, String), f64>,
}

impl Tally {
    pub(super) fn scored(&mut self, r: &Registry, se: &ScoredEvent) {
        let brand = r.brand(se.event.key.brand.as_deref());
        let lang = r.language(se.event.lang.as_deref().unwrap_or(se.scored.lang.as_str()));
        let sentiment = se.scored.sentiment.as_str();
        *self
            .category
            .entry((brand.clone(), se.scored.category.as_str(), sentiment))
            .or_default() += 1.0;
        *self.sentiment.entry((brand, lang, sentiment)).or_default() += 1.0;
    }

    pub(super) fn alert(&mut self, a: &AlertOut) {
        let field = |k: &str| {
            a.payload
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("unknown")
                .to_string()
        };
        *self
            .alerts
            .entry((field("rule"), field("severity"), field("status")))
            .or_default() += 1.0;
    }

    pub(super) fn flush(&mut self, r: &Registry) {
        for (stage, v) in [("detect", &mut self.detect), ("deliver", &mut self.deliver)] {
            if !v.is_empty() {
                r.observe_many(&m::STAGE_SECONDS, &[stage], v.drain(..));
            }
        }
        if !self.end_to_end.is_empty() {
            r.observe_many(&m::EVENT_LATENCY, &[], self.end_to_end.drain(..));
        }
        if !self.event_to_alert.is_empty() {
            r.observe_many(&m::EVENT_TO_ALERT, &[], self.event_to_alert.drain(..));
        }
        if !self.sentiment.is_empty() {
            r.add_many(
                &m::SENTIMENT,
                self.sentiment
                    .drain()
                    .map(|((b, l, s), v)| (vec![b, l, s.to_string()], v)),
            );
        }
        if !self.category.is_empty() {
            r.add_many(
                &m::CATEGORY,
                self.category
                    .drain()
                    .map(|((b, c, s), v)| (vec![b, c.to_string(), s.to_string()], v)),
            );
        }
        if !self.dead.is_empty() {
            r.add_many(
                &m::EVENTS_DEAD,
                self.dead.drain().map(|(c, v)| (vec![c.to_string()], v)),
            );
        }
        if !self.alerts.is_empty() {
            r.add_many(&m::ALERTS, self.alerts.drain().map(|((a, b, c), v)| (vec![a, b, c], v)));
        }
    }
}
