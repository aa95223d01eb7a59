//! Scoring: the detector's signals against the injected truth (detection
//! delay from the start and, for a ramp, from reaching the full rate; false
//! alerts per key and week; crisis and spam signals on the incident).

use earshot_core::types::{EventTime, Signal, SignalKind};

use crate::{Expect, Incident, Truth, DAY, HOUR, MINUTE, T0};

/// A signal with the event time at which it was emitted (max event time seen).
#[derive(Debug, Clone)]
pub struct Emitted {
    pub at: EventTime,
    pub signal: Signal,
}

/// Scored outcome of one scenario run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub scenario: &'static str,
    pub expect: &'static str,
    /// Expected signal seen (crisis or spam); for quiet scenarios: no crisis on matching keys.
    pub passed: bool,
    /// Detection delay in event time (crisis or spam scenarios).
    pub delay_min: Option<f64>,
    /// Detection time after the `EVIDENCE_ITEMS`-th injected item.
    pub evidence_delay_min: Option<f64>,
    /// Detection time after a ramped incident reached its full rate
    /// (negative: detected during the ramp).
    pub full_rate_delay_min: Option<f64>,
    /// Crisis signals on keys and times the incident does not explain.
    pub false_alerts: u32,
    /// Keys that could alert and days after warm-up (for the rate).
    pub keys: usize,
    pub eval_days: f64,
    pub crisis_on_incident: u32,
    pub spam_signals: u32,
}

impl Report {
    pub fn false_per_key_week(&self) -> f64 {
        self.false_alerts as f64 / (self.keys.max(1) as f64 * self.eval_days / 7.0)
    }
}

fn matches(truth: &Truth, s: &Signal) -> bool {
    matches_truth(truth, &s.key)
}

/// Whether a key is compatible with the incident's brand, product and
/// region (every dimension both have agrees).
pub fn matches_truth(truth: &Truth, key: &earshot_core::types::SignalKey) -> bool {
    use earshot_core::types::Dim;
    let ok = |d: Dim, want: &Option<String>| match (key.get(d), want) {
        (Some(v), Some(w)) => v == w,
        _ => true,
    };
    ok(Dim::Brand, &truth.brand) && ok(Dim::Product, &truth.product) && ok(Dim::Region, &truth.region)
}

/// Scores the emitted signals against the truth. Crisis signals before
/// `warmup_days` are ignored (keys cannot alert before their history is
/// long enough anyway).
pub fn score(
    incident: Incident,
    truth: Option<&Truth>,
    emitted: &[Emitted],
    keys: usize,
    days: i64,
    warmup_days: i64,
) -> Report {
    let eval_from = T0 + warmup_days * DAY;
    let mut first: Option<EventTime> = None;
    let mut false_alerts = 0;
    let mut crisis_on_incident = 0;
    let mut spam_signals = 0;
    for e in emitted {
        let s = &e.signal;
        if s.kind == SignalKind::ReviewBombing {
            spam_signals += 1;
        }
        let explained = truth.is_some_and(|t| matches(t, s) && e.at >= t.start && s.window_start < t.end + 2 * HOUR);
        if let Some(t) = truth {
            let wanted = match t.expect {
                Expect::Crisis | Expect::CrisisAndSpam => s.kind.is_crisis(),
                Expect::Spam => s.kind == SignalKind::ReviewBombing,
                Expect::Quiet => false,
            };
            if explained && wanted && first.is_none() {
                first = Some(e.at);
            }
            if explained && s.kind.is_crisis() {
                crisis_on_incident += 1;
            }
        }
        let is_false =
            s.kind.is_crisis() && e.at >= eval_from && !(explained && truth.is_some_and(|t| t.expect.is_crisis()));
        if is_false && !(explained && truth.is_some_and(|t| !t.expect.is_crisis())) {
            false_alerts += 1;
        }
    }
    let (passed, delay) = match truth {
        None => (true, None),
        Some(t) => match t.expect {
            Expect::Crisis => (first.is_some(), first.map(|f| (f - t.start) as f64 / MINUTE as f64)),
            Expect::CrisisAndSpam => (
                first.is_some() && spam_signals > 0,
                first.map(|f| (f - t.start) as f64 / MINUTE as f64),
            ),
            Expect::Spam => (
                first.is_some() && crisis_on_incident == 0,
                first.map(|f| (f - t.start) as f64 / MINUTE as f64),
            ),
            Expect::Quiet => (crisis_on_incident == 0, None),
        },
    };
    Report {
        scenario: incident.name(),
        expect: match truth.map(|t| t.expect) {
            None => "no alert",
            Some(Expect::Crisis) => "crisis",
            Some(Expect::CrisisAndSpam) => "crisis + spam",
            Some(Expect::Spam) => "spam only",
            Some(Expect::Quiet) => "no crisis",
        },
        passed,
        delay_min: delay,
        evidence_delay_min: truth
            .and_then(|t| t.evidence_at)
            .zip(first)
            .map(|(e, f)| (f - e) as f64 / MINUTE as f64),
        full_rate_delay_min: truth
            .and_then(|t| t.full_at)
            .zip(first)
            .map(|(e, f)| (f - e) as f64 / MINUTE as f64),
        false_alerts,
        keys,
        eval_days: (days - warmup_days) as f64,
        crisis_on_incident,
        spam_signals,
    }
}
