//! Crisis detection: event-time windows, seasonal baselines, spike statistics,
//! semantic complaint clusters and a fake-wave filter.
//!
//! Contract:
//! * Pure and deterministic. No clock, no I/O, no threads, no randomness: the
//!   output is a function of the sequence of calls, so a replay of the same
//!   events in the same order yields the same signals as the live run.
//!   Iteration that affects output goes through `BTreeMap`s or sorted lists.
//! * Event time only. The watermark is the maximum event time seen minus a
//!   bounded out-of-orderness. A hopping window `[end - len, end)` is
//!   evaluated once, when the watermark passes `end`. Events behind the
//!   watermark but within the allowed lateness still count into every window
//!   not yet evaluated and into baselines; events later than that are
//!   returned as [`Lateness::TooLate`] (for the caller to dead-letter) and
//!   counted. Nothing is dropped silently.
//! * Bounded state: keys idle for `idle_ttl` expire; at most `max_keys` keys
//!   are tracked (new keys beyond the cap are counted and not tracked);
//!   clusters, recent-quote rings, spam groups and the term table are capped.
//! * Suspected fakes (near-duplicate bursts, one author posting many,
//!   rating/text contradictions) are kept out of every crisis statistic
//!   (retroactively for the members seen before a burst was recognised) and
//!   reported as [`SignalKind::ReviewBombing`] instead.
//! * The caller records [`Counters`] (cumulative) and SLA counts as metrics;
//!   this module never touches a metrics registry.

pub mod cluster;
pub mod spam;
pub mod stats;
pub mod terms;
pub mod window;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use cluster::{ClusterParams, Clusters};
use earshot_core::types::{
    Category, Dim, EventTime, Explanation, Quote, ScoredEvent, Sentiment, Signal, SignalKey, SignalKind,
};
use stats::{Baseline, Cusum, Seasonality};
pub use window::Lateness;
use window::{bucket_of, Buckets, Watermark};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// Errors for inputs the detector cannot use.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("event {id}: embedding has {got} dimensions, earlier events had {expected}")]
    EmbeddingDim { id: String, expected: usize, got: usize },
    #[error("event {id}: embedding contains a non-finite value")]
    NonFinite { id: String },
}

/// Sensitivity presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Fewer,
    Balanced,
    More,
}

impl Preset {
    pub fn parse(s: &str) -> Option<Preset> {
        match s {
            "fewer" => Some(Preset::Fewer),
            "balanced" => Some(Preset::Balanced),
            "more" => Some(Preset::More),
            _ => None,
        }
    }

    pub fn thresholds(self) -> Thresholds {
        let (p, min_count, cusum_h, drift_h) = match self {
            Preset::Fewer => (1e-8, 8, 10.0, 12.0),
            Preset::Balanced => (1e-7, 5, 8.0, 10.0),
            Preset::More => (1e-4, 3, 5.0, 6.0),
        };
        Thresholds {
            p_volume: p,
            p_share: p,
            p_cluster: p,
            p_confirm: 1e-2,
            min_count,
            min_cluster_count: min_count,
            min_ratio: 2.0,
            min_share_delta: 0.10,
            cusum_k: 0.5,
            cusum_h,
            cusum_batch: 10,
            drift_ratio: 3.0,
            drift_h,
            baseline_z: 1.5,
            min_expected_per_hour: 0.1,
        }
    }
}

/// Decision thresholds (a preset, optionally overridden field by field).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Poisson tail below which negative volume is anomalous.
    pub p_volume: f64,
    /// Binomial tail below which the negative share is anomalous.
    pub p_share: f64,
    /// Binomial tail below which a cluster's share of negatives is anomalous.
    pub p_cluster: f64,
    /// Total volume counts as "up" (no sentiment shift) below this tail;
    /// a volume spike also needs its negative share up at this tail.
    /// Expected negatives are scaled by the traffic factor (the larger of
    /// the lower confidence bound of observed / expected non-negative items
    /// of the key and the observed / expected non-negative items of all
    /// keys, over the last hour, at least 1), so a surge of all traffic with
    /// the usual share is not a crisis, and a complaint wave does not count
    /// as traffic that explains itself away.
    pub p_confirm: f64,
    /// Minimum negatives in the window (evidence floor).
    pub min_count: u32,
    /// Minimum members of a cluster in the window.
    pub min_cluster_count: u32,
    /// Observed / expected negatives at least this for a volume spike.
    pub min_ratio: f64,
    /// Share above baseline by at least this for a sentiment shift.
    pub min_share_delta: f64,
    /// CUSUM reference value and decision interval (in standard deviations).
    pub cusum_k: f64,
    pub cusum_h: f64,
    /// Items batched into one CUSUM residual (keeps residuals near-normal).
    pub cusum_batch: u32,
    /// Poisson CUSUM of hourly negative volume: the rate ratio it is tuned
    /// to detect and its decision interval (log-likelihood ratio units).
    pub drift_ratio: f64,
    pub drift_h: f64,
    /// Standard errors by which baseline estimates are inflated.
    pub baseline_z: f64,
    /// Floor of the expected negatives per hour.
    pub min_expected_per_hour: f64,
}

/// Spam / fake-wave filter settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SpamConfig {
    /// Rollup that scopes near-duplicate groups and contradiction bursts.
    pub scope: Vec<Dim>,
    /// Estimated Jaccard similarity (3-shingles) for a near-duplicate.
    pub near_dup_similarity: f64,
    /// Near-duplicates within `window` that make a burst.
    pub burst_min: u32,
    pub window: i64,
    /// Items by one author within `author_window` that make them suspect.
    pub author_max: u32,
    pub author_window: i64,
    /// Probability of the opposite sentiment for a rating/text contradiction.
    pub contradiction_prob: f32,
    /// Contradictions within `window` in one scope that raise a signal.
    pub contradiction_min: u32,
}

/// Validated detector configuration (built by [`crate::config`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    pub rollups: Vec<Vec<Dim>>,
    pub step: i64,
    pub windows: Vec<i64>,
    /// Windows on which cluster growth is tested.
    pub cluster_windows: Vec<i64>,
    pub out_of_orderness: i64,
    pub allowed_lateness: i64,
    pub max_keys: usize,
    pub idle_ttl: i64,
    pub seasonality: Seasonality,
    /// EWMA memory of baseline levels.
    pub baseline_memory: i64,
    /// History a key needs before it may alert.
    pub min_history: i64,
    /// A firing condition must stay false this long before it can fire again.
    pub clear_after: i64,
    pub thresholds: Thresholds,
    pub cluster_similarity: f32,
    pub max_clusters: usize,
    pub cluster_half_life: i64,
    pub cluster_prior_share: f64,
    pub spam: SpamConfig,
    pub sla: i64,
    /// Quotes kept per key for explanations.
    pub recent_per_key: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        use Dim::*;
        Self {
            rollups: vec![
                vec![Brand],
                vec![Brand, Product],
                vec![Brand, Product, Category],
                vec![Brand, Region],
                vec![Region],
                vec![Region, Category],
            ],
            step: 5 * MINUTE,
            windows: vec![15 * MINUTE, HOUR, 24 * HOUR],
            cluster_windows: vec![15 * MINUTE, HOUR],
            out_of_orderness: MINUTE,
            allowed_lateness: 10 * MINUTE,
            max_keys: 50_000,
            idle_ttl: 14 * 24 * HOUR,
            seasonality: Seasonality::HourOfDay,
            baseline_memory: 168 * HOUR,
            min_history: 24 * HOUR,
            clear_after: 2 * HOUR,
            thresholds: Preset::Balanced.thresholds(),
            cluster_similarity: 0.5,
            max_clusters: 24,
            cluster_half_life: 24 * HOUR,
            cluster_prior_share: 0.05,
            spam: SpamConfig {
                scope: vec![Brand, Product],
                near_dup_similarity: 0.75,
                burst_min: 4,
                window: HOUR,
                author_max: 4,
                author_window: 24 * HOUR,
                contradiction_prob: 0.8,
                contradiction_min: 5,
            },
            sla: 24 * HOUR,
            recent_per_key: 96,
        }
    }
}

/// Cumulative counters for the caller to export (take differences per batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub events: u64,
    pub late_accepted: u64,
    pub too_late: u64,
    pub spam_near_duplicate: u64,
    pub spam_author: u64,
    pub contradictions: u64,
    /// Items taken back out of statistics when a burst was recognised.
    pub retracted: u64,
    pub no_embedding: u64,
    pub keys_created: u64,
    pub keys_expired: u64,
    /// New keys not tracked because `max_keys` was reached.
    pub keys_over_cap: u64,
    pub windows_evaluated: u64,
    /// Replies recorded: a tracked negative event published again with
    /// `replied_at` (not counted twice), or [`Detector::reply`].
    pub replies: u64,
    /// Evaluation steps skipped over a gap in event time.
    pub steps_skipped: u64,
    pub signals: u64,
}

/// Why an event was kept out of the crisis statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suspect {
    NearDuplicate,
    Author,
    Contradiction,
}

/// What happened to one pushed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    pub lateness: Lateness,
    pub suspect: Option<Suspect>,
    /// Signals that became due with this event (watermark advance or a spam burst).
    pub signals: Vec<Signal>,
}

/// Unreplied negatives of one key at the current watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaCount {
    pub key: SignalKey,
    pub open: u32,
    /// Older than the SLA.
    pub overdue: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    total: u32,
    neg: u32,
}

#[derive(Debug, Clone)]
struct Recent {
    seq: u64,
    t: EventTime,
    id: Arc<str>,
    text: Arc<str>,
    author: Option<Arc<str>>,
    lang: Arc<str>,
    category: Category,
    cluster: Option<u64>,
    sim: f32,
    terms: Arc<[String]>,
    retracted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cond {
    Volume,
    Cluster(u64),
}

#[derive(Debug, Clone, Copy)]
struct Active {
    last_true: EventTime,
    /// The kind of the signal fired at the onset (reported when it clears).
    kind: SignalKind,
}

/// A condition that fired and is no longer true (after `clear_after` of event
/// time, or because its key or cluster expired): the alert stage resolves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cleared {
    pub kind: SignalKind,
    pub key: SignalKey,
    pub cluster: Option<u64>,
    /// Event time (window end) at which it cleared.
    pub at: EventTime,
}

fn cleared_of(key: &SignalKey, cond: Cond, a: &Active, at: EventTime) -> Cleared {
    let cluster = match cond {
        Cond::Cluster(id) => Some(id),
        Cond::Volume => None,
    };
    Cleared {
        kind: a.kind,
        key: key.clone(),
        cluster,
        at,
    }
}

#[derive(Debug, Clone)]
struct KeyState {
    id: u64,
    buckets: Buckets<Counts>,
    baseline: Baseline,
    /// Next hour (index since epoch) to fold into the baseline.
    next_fold: Option<i64>,
    first_seen: EventTime,
    last_seen: EventTime,
    cusum: Cusum,
    cusum_acc: (u32, u32),
    drift_from: i64,
    /// Poisson CUSUM of hourly negatives against the traffic-adjusted
    /// seasonal expectation, and the hour its current run started.
    vcusum: f64,
    vdrift_from: i64,
    /// Observed and expected negatives since `vdrift_from`.
    vrun: (u32, f64),
    /// The CUSUM crossed its interval in the current run (re-armed at 0).
    vfired: bool,
    last_drift: Option<EventTime>,
    active: BTreeMap<Cond, Active>,
    clusters: Clusters,
    recent: VecDeque<Recent>,
}

impl KeyState {
    fn new(id: u64, cfg: &DetectConfig, t: EventTime) -> Self {
        Self {
            id,
            buckets: Buckets::default(),
            baseline: Baseline::new(cfg.seasonality, (cfg.baseline_memory / HOUR) as f64, 10.0),
            next_fold: None,
            first_seen: t,
            last_seen: t,
            cusum: Cusum::default(),
            cusum_acc: (0, 0),
            drift_from: 0,
            vcusum: 0.0,
            vdrift_from: 0,
            vrun: (0, 0.0),
            vfired: false,
            last_drift: None,
            active: BTreeMap::new(),
            clusters: Clusters::default(),
            recent: VecDeque::new(),
        }
    }
}

/// What one accepted event added, so it can be taken back out.
#[derive(Debug, Clone)]
struct Applied {
    t: EventTime,
    neg: bool,
    keys: Vec<(u64, Option<u64>)>,
}

#[derive(Debug, Clone)]
struct Group {
    leader: spam::Signature,
    band_keys: Vec<(u64, usize, u64)>,
    members: VecDeque<(EventTime, u64)>,
    quotes: Vec<Quote>,
    flagged: bool,
    scope: SignalKey,
    last: EventTime,
}

#[derive(Debug, Clone, Default)]
struct Author {
    items: VecDeque<(EventTime, u64)>,
    flagged: bool,
}

#[derive(Debug, Clone, Default)]
struct Contradictions {
    times: VecDeque<EventTime>,
    quotes: VecDeque<Quote>,
    active_until: EventTime,
}

/// The detector. See the module docs for the contract.
pub struct Detector {
    cfg: DetectConfig,
    watermark: Watermark,
    next_eval: Option<i64>,
    keys: BTreeMap<SignalKey, KeyState>,
    key_ids: HashMap<u64, SignalKey>,
    next_key_id: u64,
    global: KeyState,
    /// Traffic factor of all keys' non-negative items per closed hour (for
    /// the drift CUSUM).
    global_hour_factor: BTreeMap<i64, f64>,
    mean: Vec<f32>,
    mean_n: u64,
    terms: terms::TermStats,
    seq: u64,
    ledger: BTreeMap<u64, Applied>,
    groups: BTreeMap<u64, Group>,
    bands: HashMap<(u64, usize, u64), u64>,
    next_group: u64,
    authors: HashMap<String, Author>,
    contradictions: BTreeMap<SignalKey, Contradictions>,
    /// Last review-bombing signal per scope (one signal per wave).
    spam_last: BTreeMap<SignalKey, EventTime>,
    unreplied: HashMap<String, (EventTime, Vec<u64>)>,
    counters: Counters,
    /// Conditions cleared since the last [`Detector::take_cleared`].
    cleared: Vec<Cleared>,
}

/// The key of an event under one rollup (`None` when the event lacks a dimension).
pub fn key_for(ev: &ScoredEvent, dims: &[Dim]) -> Option<SignalKey> {
    let k = &ev.event.key;
    let mut out = Vec::with_capacity(dims.len());
    for d in dims {
        let v = match d {
            Dim::Brand => k.brand.clone(),
            Dim::Product => k.product.clone(),
            Dim::Sku => k.sku.clone(),
            Dim::Region => k.region.clone(),
            Dim::Channel => k.channel.clone(),
            Dim::Category => Some(ev.scored.category.as_str().to_string()),
            Dim::Language => Some(lang_of(ev).to_string()),
        }?;
        out.push((*d, v));
    }
    Some(SignalKey(out))
}

fn lang_of(ev: &ScoredEvent) -> &str {
    ev.event.lang.as_deref().unwrap_or(ev.scored.lang.as_str())
}

fn hour_of(t: EventTime) -> i64 {
    t.div_euclid(HOUR)
}

impl Detector {
    pub fn new(cfg: DetectConfig) -> Self {
        let global = KeyState::new(0, &cfg, 0);
        Self {
            watermark: Watermark::new(cfg.out_of_orderness),
            next_eval: None,
            keys: BTreeMap::new(),
            key_ids: HashMap::new(),
            next_key_id: 1,
            global,
            global_hour_factor: BTreeMap::new(),
            mean: Vec::new(),
            mean_n: 0,
            terms: terms::TermStats::new(200_000),
            seq: 0,
            ledger: BTreeMap::new(),
            groups: BTreeMap::new(),
            bands: HashMap::new(),
            next_group: 0,
            authors: HashMap::new(),
            contradictions: BTreeMap::new(),
            spam_last: BTreeMap::new(),
            unreplied: HashMap::new(),
            counters: Counters::default(),
            cleared: Vec::new(),
            cfg,
        }
    }

    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn watermark(&self) -> Option<EventTime> {
        self.watermark.current()
    }

    /// Keys currently tracked.
    pub fn tracked_keys(&self) -> usize {
        self.keys.len()
    }

    /// Feeds one scored event. Signals that became due are returned in order.
    pub fn push(&mut self, ev: &ScoredEvent) -> Result<Pushed, DetectError> {
        let e = &ev.event;
        // A reply message: not a review, only closes one SLA entry.
        if let Some(target) = &e.reply_to {
            self.reply(target);
            return Ok(Pushed {
                lateness: Lateness::OnTime,
                suspect: None,
                signals: Vec::new(),
            });
        }
        let emb = &ev.scored.embedding;
        if !emb.is_empty() {
            if !self.mean.is_empty() && emb.len() != self.mean.len() {
                return Err(DetectError::EmbeddingDim {
                    id: e.id.clone(),
                    expected: self.mean.len(),
                    got: emb.len(),
                });
            }
            if emb.iter().any(|x| !x.is_finite()) {
                return Err(DetectError::NonFinite { id: e.id.clone() });
            }
        }
        self.counters.events += 1;
        // A review the detector already counted as an unreplied negative,
        // published again with its reply time (a change feed of the review
        // table does this): the reply closes its SLA entry, and the review
        // is not counted a second time.
        if e.replied_at.is_some() && self.unreplied.remove(&e.id).is_some() {
            self.counters.replies += 1;
            return Ok(Pushed {
                lateness: Lateness::OnTime,
                suspect: None,
                signals: Vec::new(),
            });
        }
        let t = e.event_time;
        let lateness = self.watermark.observe(t, self.cfg.allowed_lateness);
        let mut signals = Vec::new();
        if lateness == Lateness::TooLate {
            self.counters.too_late += 1;
            return Ok(Pushed {
                lateness,
                suspect: None,
                signals,
            });
        }
        if lateness == Lateness::Late {
            self.counters.late_accepted += 1;
        }
        self.seq += 1;
        let seq = self.seq;
        let neg = ev.scored.sentiment == Sentiment::Negative;
        let scope = key_for(ev, &self.cfg.spam.scope).unwrap_or_default();
        let quote = Quote {
            id: e.id.clone(),
            text: e.text.clone(),
            lang: lang_of(ev).to_string(),
            event_time: t,
        };

        // Fake-wave filter.
        let mut suspect = None;
        if self.is_contradiction(ev) {
            self.counters.contradictions += 1;
            suspect = Some(Suspect::Contradiction);
            if let Some(s) = self.note_contradiction(&scope, t, quote.clone()) {
                signals.push(s);
            }
        }
        let (dup, dup_signal) = self.note_near_duplicate(&scope, &e.text, t, seq, quote.clone());
        signals.extend(dup_signal);
        if dup && suspect.is_none() {
            self.counters.spam_near_duplicate += 1;
            suspect = Some(Suspect::NearDuplicate);
        }
        if let Some(author) = e.author.as_deref().filter(|a| !a.is_empty()) {
            let (flag, s) = self.note_author(author, &scope, t, seq, quote);
            signals.extend(s);
            if flag && suspect.is_none() {
                self.counters.spam_author += 1;
                suspect = Some(Suspect::Author);
            }
        }

        // One review-bombing signal per scope and wave: later recognitions
        // within the spam window extend the wave silently.
        let window = self.cfg.spam.window;
        signals.retain(|s| {
            let last = self.spam_last.insert(s.key.clone(), s.window_end);
            last.is_none_or(|l| s.window_end - l >= window)
        });
        if suspect.is_none() {
            self.apply(ev, seq, neg);
            if neg {
                self.early(ev, &mut signals);
            }
        }
        if neg && e.replied_at.is_none() {
            self.track_sla(ev);
        }
        if let Some(w) = self.watermark.current() {
            self.evaluate_until(w, &mut signals);
        }
        self.counters.signals += signals.len() as u64;
        Ok(Pushed {
            lateness,
            suspect,
            signals,
        })
    }

    /// Moves the watermark forward without an event (idle source heartbeat,
    /// or the end of a replay) and returns the signals that became due.
    pub fn advance_watermark(&mut self, to: EventTime) -> Vec<Signal> {
        self.watermark.advance_to(to);
        let mut out = Vec::new();
        if let Some(w) = self.watermark.current() {
            self.evaluate_until(w, &mut out);
        }
        self.counters.signals += out.len() as u64;
        out
    }

    /// Conditions that cleared since the last call, in event-time order.
    pub fn take_cleared(&mut self) -> Vec<Cleared> {
        std::mem::take(&mut self.cleared)
    }

    /// Records a reply to an earlier event (a reply event from the source).
    pub fn reply(&mut self, event_id: &str) {
        if self.unreplied.remove(event_id).is_some() {
            self.counters.replies += 1;
        }
    }

    /// Unreplied negatives per key at the current watermark, sorted by key.
    pub fn sla(&self) -> Vec<SlaCount> {
        let w = self.watermark.current().unwrap_or(i64::MIN);
        let mut per: BTreeMap<u64, (u32, u32)> = BTreeMap::new();
        for (t, ids) in self.unreplied.values() {
            for id in ids {
                let c = per.entry(*id).or_default();
                c.0 += 1;
                if *t < w.saturating_sub(self.cfg.sla) {
                    c.1 += 1;
                }
            }
        }
        let mut out: Vec<SlaCount> = per
            .into_iter()
            .filter_map(|(id, (open, overdue))| {
                self.key_ids.get(&id).map(|k| SlaCount {
                    key: k.clone(),
                    open,
                    overdue,
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    fn track_sla(&mut self, ev: &ScoredEvent) {
        let ids: Vec<u64> = self
            .cfg
            .rollups
            .iter()
            .filter_map(|r| key_for(ev, r))
            .filter_map(|k| self.keys.get(&k).map(|s| s.id))
            .collect();
        if !ids.is_empty() && self.unreplied.len() < 4 * self.cfg.max_keys.max(1024) {
            self.unreplied.insert(ev.event.id.clone(), (ev.event.event_time, ids));
        }
    }

    fn is_contradiction(&self, ev: &ScoredEvent) -> bool {
        let Some(r) = ev.event.rating.filter(|r| r.is_finite()) else {
            return false;
        };
        let p = &ev.scored.probs;
        let thr = self.cfg.spam.contradiction_prob;
        (r >= 4.0 && p.negative >= thr) || (r <= 2.0 && p.positive >= thr)
    }

    fn note_contradiction(&mut self, scope: &SignalKey, t: EventTime, q: Quote) -> Option<Signal> {
        let sc = self.cfg.spam.clone();
        let c = self.contradictions.entry(scope.clone()).or_default();
        c.times.push_back(t);
        c.quotes.push_back(q);
        while c.times.front().is_some_and(|&f| f < t - sc.window) {
            c.times.pop_front();
        }
        while c.quotes.len() > 5 {
            c.quotes.pop_front();
        }
        if c.times.len() as u32 >= sc.contradiction_min && t >= c.active_until {
            c.active_until = t + sc.window;
            let quotes: Vec<Quote> = c.quotes.iter().cloned().collect();
            let n = c_len(c);
            return Some(self.spam_signal(scope.clone(), t - sc.window, t, n, quotes, "contradictions"));
        }
        None
    }

    /// Returns (is suspect, signal when a burst is recognised now).
    fn note_near_duplicate(
        &mut self,
        scope: &SignalKey,
        text: &str,
        t: EventTime,
        seq: u64,
        q: Quote,
    ) -> (bool, Option<Signal>) {
        let sc = self.cfg.spam.clone();
        let sig = spam::signature(text);
        let scope_hash = {
            let s = scope.to_string();
            s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
            })
        };
        let bands = spam::bands(&sig);
        let mut found = None;
        for (b, h) in bands.iter().enumerate() {
            if let Some(&g) = self.bands.get(&(scope_hash, b, *h)) {
                if let Some(grp) = self.groups.get(&g) {
                    if spam::similarity(&grp.leader, &sig) >= sc.near_dup_similarity {
                        found = Some(g);
                        break;
                    }
                }
            }
        }
        let gid = match found {
            Some(g) => g,
            None => {
                let g = self.next_group;
                self.next_group += 1;
                let mut band_keys = Vec::new();
                for (b, h) in bands.iter().enumerate() {
                    let k = (scope_hash, b, *h);
                    if let std::collections::hash_map::Entry::Vacant(v) = self.bands.entry(k) {
                        v.insert(g);
                        band_keys.push(k);
                    }
                }
                self.groups.insert(
                    g,
                    Group {
                        leader: sig,
                        band_keys,
                        members: VecDeque::new(),
                        quotes: Vec::new(),
                        flagged: false,
                        scope: scope.clone(),
                        last: t,
                    },
                );
                g
            }
        };
        let Some(grp) = self.groups.get_mut(&gid) else {
            return (false, None);
        };
        grp.members.push_back((t, seq));
        grp.last = grp.last.max(t);
        while grp.members.front().is_some_and(|&(f, _)| f < t - sc.window) {
            grp.members.pop_front();
        }
        if grp.quotes.len() < 5 {
            grp.quotes.push(q);
        }
        if grp.flagged {
            return (true, None);
        }
        if grp.members.len() as u32 >= sc.burst_min {
            grp.flagged = true;
            let seqs: Vec<u64> = grp.members.iter().map(|&(_, s)| s).collect();
            let start = grp.members.front().map_or(t, |&(f, _)| f);
            let n = grp.members.len() as u32;
            let quotes = grp.quotes.clone();
            let scope = grp.scope.clone();
            for s in seqs {
                self.retract(s);
            }
            let signal = self.spam_signal(scope, start, t, n, quotes, "near_duplicates");
            return (true, Some(signal));
        }
        (false, None)
    }

    fn note_author(
        &mut self,
        author: &str,
        scope: &SignalKey,
        t: EventTime,
        seq: u64,
        q: Quote,
    ) -> (bool, Option<Signal>) {
        let sc = &self.cfg.spam;
        let (max, window) = (sc.author_max, sc.author_window);
        let a = self.authors.entry(author.to_string()).or_default();
        a.items.push_back((t, seq));
        while a.items.front().is_some_and(|&(f, _)| f < t - window) {
            a.items.pop_front();
        }
        if a.items.len() as u32 >= max {
            if a.flagged {
                return (true, None);
            }
            a.flagged = true;
            let seqs: Vec<u64> = a.items.iter().map(|&(_, s)| s).collect();
            let start = a.items.front().map_or(t, |&(f, _)| f);
            let n = a.items.len() as u32;
            for s in seqs {
                self.retract(s);
            }
            let signal = self.spam_signal(scope.clone(), start, t, n, vec![q], "author");
            return (true, Some(signal));
        }
        a.flagged = false;
        (false, None)
    }

    fn spam_signal(
        &self,
        key: SignalKey,
        start: EventTime,
        end: EventTime,
        n: u32,
        quotes: Vec<Quote>,
        reason: &str,
    ) -> Signal {
        let mut languages: BTreeMap<String, u32> = BTreeMap::new();
        for q in &quotes {
            *languages.entry(q.lang.clone()).or_insert(0) += 1;
        }
        let docs: Vec<Vec<String>> = quotes.iter().map(|q| terms::terms(&q.text)).collect();
        Signal {
            kind: SignalKind::ReviewBombing,
            key,
            window_start: start,
            window_end: end,
            observed: n,
            expected: 0.0,
            population: n,
            baseline_share: 0.0,
            p_value: 0.0,
            cluster: None,
            reason: Some(reason.to_string()),
            explanation: Explanation {
                quotes,
                top_terms: self.terms.top(docs.iter().map(|d| d.as_slice()), 8),
                languages: sorted_counts(languages),
                categories: Vec::new(),
            },
        }
    }

    /// Takes an accepted event back out of every statistic it entered.
    fn retract(&mut self, seq: u64) {
        let Some(a) = self.ledger.remove(&seq) else {
            return;
        };
        self.counters.retracted += 1;
        let b = bucket_of(a.t, self.cfg.step);
        for (kid, cl) in a.keys {
            let Some(key) = self.key_ids.get(&kid) else {
                continue;
            };
            let Some(st) = self.keys.get_mut(key) else {
                continue;
            };
            if let Some(c) = st.buckets.get_mut(b) {
                c.total = c.total.saturating_sub(1);
                if a.neg {
                    c.neg = c.neg.saturating_sub(1);
                }
            }
            if let Some(cid) = cl {
                if let Some(c) = st.clusters.get_mut(cid) {
                    if let Some(n) = c.counts.get_mut(b) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            for r in st.recent.iter_mut().filter(|r| r.seq == seq) {
                r.retracted = true;
            }
        }
        if let Some(c) = self.global.buckets.get_mut(b) {
            c.total = c.total.saturating_sub(1);
            if a.neg {
                c.neg = c.neg.saturating_sub(1);
            }
        }
    }

    fn apply(&mut self, ev: &ScoredEvent, seq: u64, neg: bool) {
        let t = ev.event.event_time;
        let b = bucket_of(t, self.cfg.step);
        if let Some(c) = self.global.buckets.get_mut(b) {
            c.total += 1;
            c.neg += neg as u32;
        }
        if self.global.next_fold.is_none() {
            self.global.next_fold = Some(hour_of(t));
        }
        let terms: Arc<[String]> = terms::terms(&ev.event.text).into();
        self.terms.add(&terms);
        let centred = self.centre(&ev.scored.embedding);
        if ev.scored.embedding.is_empty() {
            self.counters.no_embedding += 1;
        }
        let params = ClusterParams {
            threshold: self.cfg.cluster_similarity,
            max_clusters: self.cfg.max_clusters,
            half_life: self.cfg.cluster_half_life,
            prior_share: self.cfg.cluster_prior_share,
            step: self.cfg.step,
        };
        let id: Arc<str> = ev.event.id.as_str().into();
        let text: Arc<str> = ev.event.text.as_str().into();
        let lang: Arc<str> = lang_of(ev).into();
        let author: Option<Arc<str>> = ev.event.author.as_deref().map(Into::into);
        let mut applied = Applied {
            t,
            neg,
            keys: Vec::new(),
        };
        for r in 0..self.cfg.rollups.len() {
            let Some(key) = key_for(ev, &self.cfg.rollups[r]) else {
                continue;
            };
            if !self.keys.contains_key(&key) {
                if self.keys.len() >= self.cfg.max_keys {
                    self.counters.keys_over_cap += 1;
                    continue;
                }
                let kid = self.next_key_id;
                self.next_key_id += 1;
                self.key_ids.insert(kid, key.clone());
                self.keys.insert(key.clone(), KeyState::new(kid, &self.cfg, t));
                self.counters.keys_created += 1;
            }
            let Some(st) = self.keys.get_mut(&key) else {
                continue;
            };
            st.last_seen = st.last_seen.max(t);
            if st.next_fold.is_none() {
                st.next_fold = Some(hour_of(t));
            }
            let Some(c) = st.buckets.get_mut(b) else {
                continue;
            };
            c.total += 1;
            c.neg += neg as u32;
            let mut cl = None;
            if neg {
                let mut sim = 0.0;
                if let Some(x) = &centred {
                    let (cid, s) = st.clusters.assign(x, t, &params);
                    cl = Some(cid);
                    sim = s;
                }
                st.recent.push_back(Recent {
                    seq,
                    t,
                    id: id.clone(),
                    text: text.clone(),
                    author: author.clone(),
                    lang: lang.clone(),
                    category: ev.scored.category,
                    cluster: cl,
                    sim,
                    terms: terms.clone(),
                    retracted: false,
                });
                while st.recent.len() > self.cfg.recent_per_key {
                    st.recent.pop_front();
                }
            }
            applied.keys.push((st.id, cl));
        }
        self.ledger.insert(seq, applied);
    }

    /// Centres an embedding on the running mean of all embeddings (plain mean
    /// for the first 2000, then an EWMA) and normalises it.
    fn centre(&mut self, emb: &[f32]) -> Option<Vec<f32>> {
        if emb.is_empty() {
            return None;
        }
        if self.mean.is_empty() {
            self.mean = vec![0.0; emb.len()];
        }
        self.mean_n += 1;
        let a = (1.0 / self.mean_n as f32).max(1.0 / 2000.0);
        for (m, x) in self.mean.iter_mut().zip(emb) {
            *m += a * (x - *m);
        }
        if self.mean_n < 50 {
            // Too few items for a meaningful mean: use the raw direction.
            let n: f32 = emb.iter().map(|x| x * x).sum::<f32>().sqrt();
            return (n > 0.0).then(|| emb.iter().map(|x| x / n).collect());
        }
        cluster::centre(emb, &self.mean)
    }

    /// Early firing: the shortest window still open that holds this event is
    /// tested at once, on the counts so far against the expectation for the
    /// whole window, so a sharp wave is reported on the event that makes it
    /// significant rather than when the window closes. The usual onset /
    /// clear logic dedups it with the evaluation at the close.
    fn early(&mut self, ev: &ScoredEvent, out: &mut Vec<Signal>) {
        let (Some(m), Some(&len)) = (self.watermark.max_seen(), self.cfg.windows.iter().min()) else {
            return;
        };
        let end = (bucket_of(m, self.cfg.step) + 1) * self.cfg.step;
        let start = end - len;
        if ev.event.event_time < start || self.next_eval.is_some_and(|n| end < n) {
            return;
        }
        let gf = self.global_factor(end);
        for r in 0..self.cfg.rollups.len() {
            let Some(key) = key_for(ev, &self.cfg.rollups[r]) else {
                continue;
            };
            let Some(st) = self.keys.get_mut(&key) else {
                continue;
            };
            if !is_warm(st, &self.cfg, end) || st.active.contains_key(&Cond::Volume) {
                continue;
            }
            let Some(t) = window_test(st, &self.global.baseline, (start, end), &self.cfg, gf) else {
                continue;
            };
            // The fake-wave filter recognises a burst only after a few
            // members; until then they sit in the counts. An early signal
            // must hold on distinct negatives alone (no shared author, no
            // near-duplicate text); otherwise the close decides.
            let distinct = distinct_negatives(st, (start, end), self.cfg.spam.near_dup_similarity);
            if stats::poisson_sf(distinct as u64, t.mu_k) < self.cfg.thresholds.p_volume {
                st.active.insert(
                    Cond::Volume,
                    Active {
                        last_true: end,
                        kind: t.kind,
                    },
                );
                out.push(build_signal(
                    t.kind,
                    &key,
                    st,
                    (start, end),
                    (t.k, t.mu_k, t.n, t.p0, t.p),
                    None,
                    &self.terms,
                ));
            }
        }
    }

    /// Traffic factor of all keys over the hour before `end`, from the
    /// non-negative items only: a large complaint wave is itself traffic,
    /// and must not pass for a surge that explains it away.
    fn global_factor(&self, end: EventTime) -> f64 {
        let g = &self.global;
        if g.baseline.hours < 24 {
            return 1.0;
        }
        let (n, k) = range_counts(&g.buckets, end - HOUR, end, self.cfg.step);
        let (en, ek) = expected(&g.baseline, &g.baseline, end - HOUR, end, self.cfg.step);
        traffic_factor_z(n - k, en - ek, 0.0)
    }

    fn evaluate_until(&mut self, watermark: EventTime, out: &mut Vec<Signal>) {
        let step = self.cfg.step;
        let max_len = self.cfg.windows.iter().copied().max().unwrap_or(step);
        let mut next = match self.next_eval {
            Some(n) => n,
            None => (bucket_of(watermark, step) + 1) * step,
        };
        // Over a long gap, jump ahead: nothing but empty windows lies there.
        let floor_end = (bucket_of(watermark, step) + 1) * step - max_len - step;
        if next < floor_end {
            self.counters.steps_skipped += ((floor_end - next) / step) as u64;
            next = floor_end;
        }
        while next <= watermark {
            self.evaluate_at(next, out);
            next += step;
        }
        self.next_eval = Some(next);
        self.trim(watermark);
    }

    fn trim(&mut self, watermark: EventTime) {
        let cut = watermark - self.cfg.spam.window.max(self.cfg.allowed_lateness) - HOUR;
        while let Some((&s, a)) = self.ledger.iter().next() {
            if a.t < cut || self.ledger.len() > 2_000_000 {
                self.ledger.remove(&s);
            } else {
                break;
            }
        }
    }

    fn fold_hours(&mut self, end: EventTime) {
        let fold_until = hour_of(end - self.cfg.allowed_lateness - self.cfg.out_of_orderness);
        let step = self.cfg.step;
        let per_hour = HOUR / step;
        // The global shape first: every key falls back to it.
        if let Some(mut h) = self.global.next_fold {
            while h < fold_until {
                let (n, k) = hour_counts(&self.global.buckets, h, per_hour);
                let g = &self.global.baseline;
                let f = if g.hours >= 24 {
                    let (en, ek) = g.expected(h, 1.0, Some(g));
                    traffic_factor_z(n - k, en - ek, 0.0)
                } else {
                    1.0
                };
                self.global_hour_factor.insert(h, f);
                while self.global_hour_factor.len() > 48 {
                    self.global_hour_factor.pop_first();
                }
                self.global.baseline.fold(h, n as f64, k as f64, None);
                h += 1;
            }
            self.global.next_fold = Some(h);
        }
        let _ = end;
    }

    fn evaluate_at(&mut self, end: EventTime, out: &mut Vec<Signal>) {
        self.fold_hours(end);
        let global_factor = self.global_factor(end);
        let cfg = self.cfg.clone();
        let th = cfg.thresholds;
        let step = cfg.step;
        let per_hour = HOUR / step;
        let fold_until = hour_of(end - cfg.allowed_lateness - cfg.out_of_orderness);
        let max_len = cfg.windows.iter().copied().max().unwrap_or(step);
        let keep_from = bucket_of(end - max_len - cfg.allowed_lateness - 2 * HOUR, step);
        let global = &self.global.baseline;
        let mut expired = Vec::new();
        for (key, st) in self.keys.iter_mut() {
            if st.last_seen < end - cfg.idle_ttl {
                for (c, a) in &st.active {
                    self.cleared.push(cleared_of(key, *c, a, end));
                }
                expired.push(key.clone());
                continue;
            }
            // 1. Close hours: baseline, cluster shares, CUSUM.
            if let Some(mut h) = st.next_fold {
                while h < fold_until {
                    let (n, k) = hour_counts(&st.buckets, h, per_hour);
                    // Residuals against the share's upper bound of one
                    // standard error, so estimation noise does not drift.
                    let p0 = stats::inflate_share(st.baseline.neg_share(), st.baseline.evidence_total(), 1.0);
                    let warm = st.baseline.hours as i64 * HOUR >= cfg.min_history;
                    if warm && n > 0 {
                        st.cusum_acc.0 += n;
                        st.cusum_acc.1 += k;
                        if st.cusum_acc.0 >= th.cusum_batch {
                            let (an, ak) = st.cusum_acc;
                            st.cusum_acc = (0, 0);
                            let z = stats::share_residual(ak as f64, an as f64, p0);
                            if st.cusum.s == 0.0 {
                                st.drift_from = h;
                            }
                            let s = st.cusum.s + z - th.cusum_k;
                            let fire = st.cusum.push(z, th.cusum_k, th.cusum_h);
                            let w_end = (h + 1) * HOUR;
                            let cooled = st.last_drift.is_none_or(|d| w_end - d >= 24 * HOUR);
                            if fire && cooled {
                                st.last_drift = Some(w_end);
                                let w_start = st.drift_from * HOUR;
                                let (nn, kk) = range_counts(&st.buckets, w_start, w_end, step);
                                out.push(build_signal(
                                    SignalKind::SlowDrift,
                                    key,
                                    st,
                                    (w_start, w_end),
                                    (kk, nn as f64 * p0, nn, p0, (-s).exp()),
                                    None,
                                    &self.terms,
                                ));
                            }
                        }
                    }
                    // Cluster shares.
                    for c in st.clusters.items.iter_mut() {
                        if k > 0 {
                            let kc: u32 = c.counts.range(h * per_hour, (h + 1) * per_hour).map(|(_, x)| *x).sum();
                            let a = (1.0 / 48.0f64).max(1.0 / (c.evidence / k as f64 + 2.0));
                            c.share += a * (kc as f64 / k as f64 - c.share);
                            c.evidence = (c.evidence + k as f64).min(2000.0);
                        }
                    }
                    // Poisson CUSUM of negative volume (slow drifts): the
                    // log-likelihood ratio of rate `r × mu` against `mu`, with
                    // `mu` the seasonal expectation scaled by the traffic
                    // factor. While a run builds up, the baseline does not
                    // learn the excess (for at most three days), so a drift
                    // is not absorbed before it is detected.
                    let (en, ek) = st.baseline.expected(h, 1.0, Some(global));
                    let ek =
                        stats::inflate(ek, st.baseline.evidence_neg(), th.baseline_z).max(th.min_expected_per_hour);
                    let gf = self.global_hour_factor.get(&h).copied().unwrap_or(1.0);
                    // The point estimate of the key's traffic factor: the CUSUM
                    // sums many hours, and a lower bound would bias every hour
                    // of a traffic surge towards "more negatives than expected".
                    let mu = ek * shrunk_traffic_factor(n - k, en - ek, gf);
                    let mut k_fold = k as f64;
                    if warm {
                        if st.vcusum == 0.0 {
                            st.vdrift_from = h;
                            st.vrun = (0, 0.0);
                            st.vfired = false;
                        }
                        let r = th.drift_ratio;
                        st.vcusum = (st.vcusum + k as f64 * r.ln() - (r - 1.0) * mu).clamp(0.0, 2.0 * th.drift_h);
                        st.vrun.0 += k;
                        st.vrun.1 += mu;
                        let w_end = (h + 1) * HOUR;
                        if st.vcusum > th.drift_h && !st.vfired {
                            st.vfired = true;
                            let cooled = st.last_drift.is_none_or(|d| w_end - d >= 24 * HOUR);
                            if cooled {
                                st.last_drift = Some(w_end);
                                let (nn, _) = range_counts(&st.buckets, st.vdrift_from * HOUR, w_end, step);
                                let (kk, ee) = st.vrun;
                                out.push(build_signal(
                                    SignalKind::SlowDrift,
                                    key,
                                    st,
                                    (st.vdrift_from * HOUR, w_end),
                                    (kk, ee, nn, p0, stats::poisson_sf(kk as u64, ee)),
                                    None,
                                    &self.terms,
                                ));
                            }
                        }
                        if st.vcusum > th.drift_h / 2.0 && h - st.vdrift_from < 72 {
                            k_fold = k_fold.min(mu);
                        }
                    }
                    st.baseline.fold(h, n as f64, k_fold, Some(global));
                    h += 1;
                }
                st.next_fold = Some(h);
            }
            // 2. Windows.
            if is_warm(st, &cfg, end) {
                let mut fired: Option<Signal> = None;
                let mut any = false;
                for &len in &cfg.windows {
                    self.counters.windows_evaluated += 1;
                    if let Some(t) = window_test(st, global, (end - len, end), &cfg, global_factor) {
                        any = true;
                        if fired.is_none() {
                            fired = Some(build_signal(
                                t.kind,
                                key,
                                st,
                                (end - len, end),
                                (t.k, t.mu_k, t.n, t.p0, t.p),
                                None,
                                &self.terms,
                            ));
                        }
                    }
                }
                let kind = fired.as_ref().map_or(SignalKind::VolumeSpike, |s| s.kind);
                if onset(
                    &mut st.active,
                    (key, Cond::Volume, kind),
                    any,
                    end,
                    cfg.clear_after,
                    &mut self.cleared,
                ) {
                    out.extend(fired);
                }
                // 3. Clusters.
                let mut cluster_hits: BTreeMap<u64, Signal> = BTreeMap::new();
                let mut true_ids = Vec::new();
                for &len in &cfg.cluster_windows {
                    let start = end - len;
                    let (_, kneg) = range_counts(&st.buckets, start, end, step);
                    if kneg < th.min_cluster_count {
                        continue;
                    }
                    for c in &st.clusters.items {
                        let kc: u32 = c
                            .counts
                            .range(bucket_of(start, step), bucket_of(end, step))
                            .map(|(_, x)| *x)
                            .sum();
                        if kc < th.min_cluster_count {
                            continue;
                        }
                        let q0 = stats::inflate_share(c.share.max(0.01), c.evidence, th.baseline_z);
                        let p = stats::binomial_sf(kc as u64, kneg as u64, q0);
                        if p < th.p_cluster && kc as f64 >= th.min_ratio * q0 * kneg as f64 {
                            true_ids.push(c.id);
                            if let std::collections::btree_map::Entry::Vacant(v) = cluster_hits.entry(c.id) {
                                v.insert(build_signal(
                                    SignalKind::EmergingIssue,
                                    key,
                                    st,
                                    (start, end),
                                    (kc, q0 * kneg as f64, kneg, q0, p),
                                    Some(c.id),
                                    &self.terms,
                                ));
                            }
                        }
                    }
                }
                let ids: Vec<u64> = st.clusters.items.iter().map(|c| c.id).collect();
                for id in ids {
                    let is_true = true_ids.contains(&id);
                    let cond = (key, Cond::Cluster(id), SignalKind::EmergingIssue);
                    if onset(&mut st.active, cond, is_true, end, cfg.clear_after, &mut self.cleared) {
                        out.extend(cluster_hits.remove(&id));
                    }
                }
                let live: Vec<u64> = st.clusters.items.iter().map(|c| c.id).collect();
                let cleared = &mut self.cleared;
                st.active.retain(|c, a| {
                    let keep = match c {
                        Cond::Cluster(id) => live.contains(id),
                        Cond::Volume => true,
                    };
                    if !keep {
                        cleared.push(cleared_of(key, *c, a, end));
                    }
                    keep
                });
            }
            // 4. Trim.
            if st.next_fold.is_some_and(|h| h * per_hour > keep_from) {
                st.buckets.trim_before(keep_from);
                for c in st.clusters.items.iter_mut() {
                    c.counts.trim_before(keep_from);
                }
            }
        }
        self.global
            .buckets
            .trim_before(keep_from.min(self.global.next_fold.unwrap_or(keep_from) * per_hour));
        for k in expired {
            if let Some(st) = self.keys.remove(&k) {
                self.key_ids.remove(&st.id);
                self.counters.keys_expired += 1;
            }
        }
        if end % HOUR == 0 {
            self.sweep(end);
        }
    }

    /// Hourly clean-up of spam state and SLA entries.
    fn sweep(&mut self, end: EventTime) {
        let sc = &self.cfg.spam;
        let stale: Vec<u64> = self
            .groups
            .iter()
            .filter(|(_, g)| g.last < end - sc.window)
            .map(|(&id, _)| id)
            .collect();
        for id in stale {
            if let Some(g) = self.groups.remove(&id) {
                for k in g.band_keys {
                    if self.bands.get(&k) == Some(&id) {
                        self.bands.remove(&k);
                    }
                }
            }
        }
        let aw = sc.author_window;
        self.authors
            .retain(|_, a| a.items.back().is_some_and(|&(t, _)| t >= end - aw));
        let w = sc.window;
        self.spam_last.retain(|_, t| *t >= end - w);
        self.contradictions
            .retain(|_, c| c.times.back().is_some_and(|&t| t >= end - w));
        let keep = end - 30 * 24 * HOUR;
        self.unreplied.retain(|_, (t, _)| *t >= keep);
    }
}

/// Negatives of a key in `[start, end)` (from its recent ring) that share
/// no author and no near-duplicate text with an earlier one.
fn distinct_negatives(st: &KeyState, (start, end): (EventTime, EventTime), near_dup: f64) -> u32 {
    let mut kept: Vec<(Option<&str>, spam::Signature)> = Vec::new();
    for r in st.recent.iter().filter(|r| !r.retracted && r.t >= start && r.t < end) {
        let sig = spam::signature(&r.text);
        let a = r.author.as_deref();
        if kept
            .iter()
            .any(|(ka, ks)| (a.is_some() && *ka == a) || spam::similarity(ks, &sig) >= near_dup)
        {
            continue;
        }
        kept.push((a, sig));
    }
    kept.len() as u32
}

fn is_warm(st: &KeyState, cfg: &DetectConfig, end: EventTime) -> bool {
    st.baseline.hours as i64 * HOUR >= cfg.min_history && end - st.first_seen >= cfg.min_history
}

/// Lower confidence bound (about two standard errors) of observed /
/// expected counts, at least 1: how much more traffic than the baseline
/// there certainly was.
fn traffic_factor(observed: u32, expected: f64) -> f64 {
    traffic_factor_z(observed, expected, 2.0)
}

/// [`traffic_factor`] at `z` standard errors (the global count is large
/// and is trusted at one).
fn traffic_factor_z(observed: u32, expected: f64, z: f64) -> f64 {
    if expected <= 0.0 {
        return 1.0;
    }
    let lcb = ((observed as f64).sqrt() - z / 2.0).max(0.0).powi(2);
    (lcb / expected).max(1.0)
}

/// Point estimate of a key's traffic factor for one hour, shrunk towards
/// the global factor `prior` (all keys' traffic, the same hour) by a prior
/// worth `TRAFFIC_PRIOR_ITEMS` expected items, and at least `prior`. In a
/// quiet key one hour with five positive reviews where 0.3 were expected is
/// not an eighteen-fold traffic surge, and must not scale the expected
/// negatives (and so reset a drift's CUSUM) as if it were; a holiday surge
/// lifts every key, quiet ones included.
fn shrunk_traffic_factor(observed: u32, expected: f64, prior: f64) -> f64 {
    let prior = prior.max(1.0);
    ((observed as f64 + TRAFFIC_PRIOR_ITEMS * prior) / (expected.max(0.0) + TRAFFIC_PRIOR_ITEMS)).max(prior)
}

const TRAFFIC_PRIOR_ITEMS: f64 = 3.0;

/// A window whose negatives are anomalous.
struct Tested {
    kind: SignalKind,
    k: u32,
    mu_k: f64,
    n: u32,
    p0: f64,
    p: f64,
}

/// The volume-spike and sentiment-shift tests of one window `[start, end)`.
/// Expected counts are scaled by the traffic factor: the larger of the
/// key's non-negative traffic (over the window, at least its last hour) and
/// `global_factor` (all keys' non-negative items, last hour).
fn window_test(
    st: &KeyState,
    global: &Baseline,
    (start, end): (EventTime, EventTime),
    cfg: &DetectConfig,
    global_factor: f64,
) -> Option<Tested> {
    let th = cfg.thresholds;
    let step = cfg.step;
    let len = end - start;
    let (n, k) = range_counts(&st.buckets, start, end, step);
    if k < th.min_count {
        return None;
    }
    let (mu_n, mu_k) = expected(&st.baseline, global, start, end, step);
    let span = len.max(HOUR);
    let (sn, sk) = range_counts(&st.buckets, end - span, end, step);
    let (en, ek) = expected(&st.baseline, global, end - span, end, step);
    let f = traffic_factor(sn - sk, en - ek).max(global_factor);
    let floor = th.min_expected_per_hour * len as f64 / HOUR as f64;
    let mu_k = stats::inflate(mu_k, st.baseline.evidence_neg(), th.baseline_z).max(floor) * f;
    let mu_n = stats::inflate(mu_n, st.baseline.evidence_total(), th.baseline_z).max(floor) * f;
    let p0 = stats::inflate_share(st.baseline.neg_share(), st.baseline.evidence_total(), th.baseline_z);
    let p_vol = stats::poisson_sf(k as u64, mu_k);
    let p_share = stats::binomial_sf(k as u64, n as u64, p0);
    let total_up = stats::poisson_sf(n as u64, mu_n) < th.p_confirm;
    let share = k as f64 / n.max(1) as f64;
    let (kind, p) = if p_vol < th.p_volume && p_share < th.p_confirm && k as f64 >= th.min_ratio * mu_k {
        (SignalKind::VolumeSpike, p_vol)
    } else if !total_up && p_share < th.p_share && share - p0 >= th.min_share_delta {
        (SignalKind::SentimentShift, p_share)
    } else {
        return None;
    };
    Some(Tested {
        kind,
        k,
        mu_k,
        n,
        p0,
        p,
    })
}

fn c_len(c: &Contradictions) -> u32 {
    c.times.len() as u32
}

/// Updates a condition's state; true when this is an onset (fire).
/// Clearing queues a [`Cleared`] with the kind fired at the onset.
fn onset(
    active: &mut BTreeMap<Cond, Active>,
    (key, cond, kind): (&SignalKey, Cond, SignalKind),
    now_true: bool,
    end: EventTime,
    clear_after: i64,
    cleared: &mut Vec<Cleared>,
) -> bool {
    match (active.get_mut(&cond), now_true) {
        (Some(a), true) => {
            a.last_true = end;
            false
        }
        (None, true) => {
            active.insert(cond, Active { last_true: end, kind });
            true
        }
        (Some(a), false) => {
            if end - a.last_true >= clear_after {
                cleared.push(cleared_of(key, cond, a, end));
                active.remove(&cond);
            }
            false
        }
        (None, false) => false,
    }
}

fn hour_counts(b: &Buckets<Counts>, h: i64, per_hour: i64) -> (u32, u32) {
    b.range(h * per_hour, (h + 1) * per_hour)
        .fold((0, 0), |(n, k), (_, c)| (n + c.total, k + c.neg))
}

fn range_counts(b: &Buckets<Counts>, start: EventTime, end: EventTime, step: i64) -> (u32, u32) {
    b.range(bucket_of(start, step), bucket_of(end, step))
        .fold((0, 0), |(n, k), (_, c)| (n + c.total, k + c.neg))
}

/// Expected (total, negatives) in `[start, end)` under the seasonal baseline.
fn expected(b: &Baseline, global: &Baseline, start: EventTime, end: EventTime, step: i64) -> (f64, f64) {
    let mut t = start;
    let (mut n, mut k) = (0.0, 0.0);
    while t < end {
        let h = hour_of(t);
        let seg_end = ((h + 1) * HOUR).min(end);
        let (a, bb) = b.expected(h, (seg_end - t) as f64 / HOUR as f64, Some(global));
        n += a;
        k += bb;
        t = seg_end;
    }
    let _ = step;
    (n, k)
}

fn sorted_counts<K: Ord + Clone>(m: BTreeMap<K, u32>) -> Vec<(K, u32)> {
    let mut v: Vec<(K, u32)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Builds a signal with its explanation from the key's recent negatives in
/// the window (restricted to one cluster for emerging issues).
fn build_signal(
    kind: SignalKind,
    key: &SignalKey,
    st: &KeyState,
    (start, end): (EventTime, EventTime),
    (observed, expected, population, share, p): (u32, f64, u32, f64, f64),
    cluster: Option<u64>,
    terms: &terms::TermStats,
) -> Signal {
    let items: Vec<&Recent> = st
        .recent
        .iter()
        .filter(|r| !r.retracted && r.t >= start && r.t < end)
        .filter(|r| cluster.is_none() || r.cluster == cluster)
        .collect();
    // Cluster sizes in the window, to quote the dominant complaints first.
    let mut sizes: BTreeMap<Option<u64>, u32> = BTreeMap::new();
    for r in &items {
        *sizes.entry(r.cluster).or_insert(0) += 1;
    }
    let mut ranked = items.clone();
    ranked.sort_by(|a, b| {
        let sa = sizes.get(&a.cluster).copied().unwrap_or(0);
        let sb = sizes.get(&b.cluster).copied().unwrap_or(0);
        sb.cmp(&sa)
            .then(b.sim.total_cmp(&a.sim))
            .then(a.t.cmp(&b.t))
            .then(a.seq.cmp(&b.seq))
    });
    // One quote per language first, then fill up to five; distinct texts.
    let mut quotes: Vec<&Recent> = Vec::new();
    for pass in 0..2 {
        for r in &ranked {
            if quotes.len() >= 5 {
                break;
            }
            if quotes.iter().any(|q| q.text == r.text || q.seq == r.seq) {
                continue;
            }
            if pass == 0 && quotes.iter().any(|q| q.lang == r.lang) {
                continue;
            }
            quotes.push(r);
        }
    }
    let mut languages: BTreeMap<String, u32> = BTreeMap::new();
    let mut categories: BTreeMap<Category, u32> = BTreeMap::new();
    for r in &items {
        *languages.entry(r.lang.to_string()).or_insert(0) += 1;
        *categories.entry(r.category).or_insert(0) += 1;
    }
    Signal {
        kind,
        key: key.clone(),
        window_start: start,
        window_end: end,
        observed,
        expected,
        population,
        baseline_share: share,
        p_value: p,
        cluster,
        reason: None,
        explanation: Explanation {
            quotes: quotes
                .into_iter()
                .map(|r| Quote {
                    id: r.id.to_string(),
                    text: r.text.to_string(),
                    lang: r.lang.to_string(),
                    event_time: r.t,
                })
                .collect(),
            top_terms: terms.top(items.iter().map(|r| &r.terms[..]), 8),
            languages: sorted_counts(languages),
            categories: sorted_counts(categories),
        },
    }
}
