//! Crisis detection: event-time windows, seasonal baselines, spike statistics,
//! semantic complaint clusters and a fake-wave filter.
//!
//! Contract:
//! * Pure and deterministic. No clock, no I/O, no threads, no randomness: the
//!   output is a function of the sequence of calls, so a replay of the same
//!   events in the same order yields the same signals as the live run.
//!   Iteration that affects output goes through `BTreeMap`s or sorted lists.
//! * Event time only. The watermark is the maximum event time seen minus a
//!   bounded out-of-orderness (1 min). A hopping window `[end - len, end)` is
//!   evaluated once, when the watermark passes `end`, and never again.
//!   Events behind the watermark by more than `allowed_lateness` (6 h) are
//!   returned as [`Lateness::TooLate`] (for the caller to dead-letter),
//!   counted (`too_late`) and kept out of every statistic, at the cost of
//!   one comparison however late they are. Nothing is dropped silently.
//! * Late events (behind the watermark, within `allowed_lateness`) count as
//!   if on time wherever the result is not out yet (`late_accepted`):
//!   - step buckets: counted in their own step (the rings hold the longest
//!     window plus the lateness plus 2 h), so every window evaluated after the event
//!     arrived includes it, e.g. the 24 h window for up to a day; windows
//!     evaluated before keep their result and their signals
//!     (`late_after_evaluation` counts events that missed one);
//!   - baselines: an hour is folded `fold_lateness` (10 min) after it ends;
//!     an item of an hour folded already corrects the level of the key's and
//!     the global baseline as if the fold had held it (`late_corrected`);
//!     the seasonal shape and past global traffic factors are not revised;
//!   - drift CUSUMs (share and volume): such an item is added to the next
//!     hour folded (the CUSUM moves by about what it would have on time; a
//!     drift signal already out, or not raised, stays so);
//!   - clusters: the item joins a cluster on arrival (the centroid moves in
//!     arrival order) and counts in its own step (the cluster rings hold the
//!     longest cluster window plus the lateness plus 2 h), so cluster windows
//!     evaluated later include it; the clusters' usual shares of folded
//!     hours are not revised; it may move to a cluster founded within
//!     `cluster_rehome` of its event time, like an item on time;
//!   - recent quotes: kept in arrival order, quoted by windows holding them;
//!   - spam filter: screened like any event, at its own event time: a
//!     near-duplicate burst, an author's run or a contradiction burst counts
//!     only members within its window of that time, so a late copy does not
//!     complete a burst of copies hours away; a recognised wave takes it
//!     back out of the counts (the ledger keeps `max(spam.window,
//!     allowed_lateness) + 1 h` of events);
//!   - SLA tracker: an unreplied late negative is tracked from its posting
//!     time, so it may be overdue on arrival;
//!   - redelivery dedup: ids are remembered in arrival order whatever the
//!     lateness, so a redelivered too-late event counts as a duplicate, not
//!     twice as too late.
//! * Bounded state: keys idle for `idle_ttl` expire; at most `max_keys` keys
//!   are tracked (a new key at the cap evicts the least recently seen one in
//!   event time, ties to the older key, and clears its open conditions);
//!   clusters, recent-quote rings, spam groups and the term table are capped.
//! * Suspected fakes (coordinated near-duplicate bursts, one author posting
//!   many, rating/text contradictions; identical texts alone are not
//!   suspect, see [`spam`]) are kept out of every crisis statistic
//!   (retroactively for the members seen before a burst was recognised) and
//!   reported as [`SignalKind::ReviewBombing`](earshot_core::types::SignalKind::ReviewBombing) instead.
//!   Until the filter has judged a near-duplicate group whose members carry
//!   author ids (flagged, or posted by `2 * burst_min` accounts without
//!   coordination), a new spike is tested with that group counted as one
//!   item, as early firing counts only distinct negatives: a fake wave split
//!   over templates or categories cannot fire a crisis a member before it
//!   is recognised.
//! * Event times are untrusted input: arithmetic on them saturates, and the
//!   work one event can cause is bounded (a jump of the watermark skips
//!   empty windows and folds at most a few baseline memories of idle hours),
//!   so year 9999 or `i64::MAX` can neither overflow nor stall the detector.
//! * The caller records [`Counters`] (cumulative) and SLA counts as metrics;
//!   this module never touches a metrics registry.

mod baseline;
pub mod cluster;
mod config;
mod dedup;
mod evaluate;
mod explain;
mod key;
pub mod sla;
pub mod spam;
pub mod stats;
pub mod terms;
pub mod window;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use cluster::{Centring, ClusterParams};
use earshot_core::types::{Dim, EventTime, Quote, ScoredEvent, Sentiment, Signal, SignalKey};
use key::{KeyState, KeyTable, Recent};
use sla::SlaTracker;
use spam::{Applied, AppliedTo, SpamFilter};
use window::{bucket_of, Watermark};

pub use config::{DetectConfig, Preset, SpamConfig, Thresholds};
pub use evaluate::Cleared;
pub use explain::Evidence;
pub use sla::SlaCount;
pub use window::{Lateness, Span};

pub(crate) const MINUTE: i64 = 60_000;
pub(crate) const HOUR: i64 = 3_600_000;

/// Errors for inputs the detector cannot use.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("event {id}: embedding has {got} dimensions, earlier events had {expected}")]
    EmbeddingDim { id: String, expected: usize, got: usize },
    #[error("event {id}: embedding contains a non-finite value")]
    NonFinite { id: String },
}

/// Cumulative counters for the caller to export (take differences per batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub events: u64,
    /// Events behind the watermark but within `allowed_lateness`: counted.
    pub late_accepted: u64,
    /// Of `late_accepted`: events that arrived after a window holding them
    /// was evaluated (the window ending at the end of their step, at least).
    /// Those windows keep their result; the event counts in every window
    /// evaluated after it arrived (the 24 h one for up to a day), in the
    /// baselines and in the drift CUSUMs.
    pub late_after_evaluation: u64,
    /// Of `late_accepted` (suspected fakes excepted, as they stay out of the
    /// statistics): events whose hour was already folded into the baselines.
    /// They corrected the baseline levels and entered the drift CUSUMs with
    /// the next hour folded.
    pub late_corrected: u64,
    /// Events behind the watermark by more than `allowed_lateness`: returned
    /// as [`Lateness::TooLate`] and kept out of every statistic.
    pub too_late: u64,
    pub spam_near_duplicate: u64,
    pub spam_author: u64,
    pub contradictions: u64,
    /// Items taken back out of statistics when a burst was recognised.
    pub retracted: u64,
    pub no_embedding: u64,
    pub keys_created: u64,
    pub keys_expired: u64,
    /// Always 0: new keys at `max_keys` evict the least recently seen key
    /// (see `keys_evicted`) instead of being refused. Kept so the exported
    /// label set does not change.
    pub keys_over_cap: u64,
    /// Keys evicted (least recently seen first) to make room for a new key
    /// at `max_keys`; their open conditions are reported cleared.
    pub keys_evicted: u64,
    pub windows_evaluated: u64,
    /// Replies recorded: a tracked negative event published again with
    /// `replied_at` (not counted twice), or [`Detector::reply`].
    pub replies: u64,
    /// Evaluation steps skipped over a gap in event time.
    pub steps_skipped: u64,
    pub signals: u64,
    /// Events whose id was counted already (a Kafka redelivery): not counted again.
    pub duplicates: u64,
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
    /// Sequence number the event was accepted under (0: not accepted: a
    /// reply, a redelivery or too late).
    pub seq: u64,
    /// Sequence numbers of earlier events taken back out of the statistics
    /// now (members of a wave recognised with this event).
    pub retracted: Vec<u64>,
}

impl Pushed {
    fn nothing(lateness: Lateness) -> Self {
        Self {
            lateness,
            suspect: None,
            signals: Vec::new(),
            seq: 0,
            retracted: Vec::new(),
        }
    }
}

/// The detector: a coordinator of its parts (see the module docs for the
/// contract). The watermark decides what is due; accepted events go through
/// the fake-wave filter ([`spam`]) into the keys' counts (`key`); due window
/// ends are evaluated (`evaluate`) after the hourly fold of the baselines
/// (`baseline`); signals carry their explanation (`explain`); unreplied
/// negatives are tracked for the response SLA ([`sla`]).
pub struct Detector {
    cfg: DetectConfig,
    watermark: Watermark,
    /// Next window end to evaluate.
    next_eval: Option<i64>,
    keys: KeyTable,
    /// All items of all keys: the global baseline and traffic.
    global: KeyState,
    /// Traffic factor of all keys' non-negative items per closed hour (for
    /// the drift CUSUM).
    global_hour_factor: BTreeMap<i64, f64>,
    centring: Centring,
    terms: terms::TermStats,
    /// Sequence number of the last accepted event.
    seq: u64,
    spam: SpamFilter,
    sla: SlaTracker,
    /// Ids of the events counted most recently (redeliveries are skipped).
    recent: dedup::RecentIds,
    counters: Counters,
    /// Conditions cleared since the last [`Detector::take_cleared`].
    cleared: Vec<Cleared>,
    #[cfg(test)]
    eval_log: evaluate::EvalLog,
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
            keys: KeyTable::default(),
            global,
            global_hour_factor: BTreeMap::new(),
            centring: Centring::default(),
            terms: terms::TermStats::new(200_000),
            seq: 0,
            spam: SpamFilter::default(),
            sla: SlaTracker::default(),
            recent: dedup::RecentIds::new(cfg.dedup_ids),
            counters: Counters::default(),
            cleared: Vec::new(),
            #[cfg(test)]
            eval_log: Default::default(),
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
            return Ok(Pushed::nothing(Lateness::OnTime));
        }
        self.check_embedding(ev)?;
        self.counters.events += 1;
        // A review the detector already counted as an unreplied negative,
        // published again with its reply time (a change feed of the review
        // table does this): the reply closes its SLA entry, and the review
        // is not counted a second time.
        if e.replied_at.is_some() && self.sla.close(&e.id) {
            self.counters.replies += 1;
            return Ok(Pushed::nothing(Lateness::OnTime));
        }
        // The same review delivered again (Kafka redelivers after a failed
        // commit or a rebalance): counted once.
        if self.recent.seen(&e.id) {
            self.counters.duplicates += 1;
            return Ok(Pushed::nothing(Lateness::OnTime));
        }
        let t = e.event_time;
        let lateness = self.watermark.observe(t, self.cfg.allowed_lateness);
        if lateness == Lateness::TooLate {
            self.counters.too_late += 1;
            return Ok(Pushed::nothing(lateness));
        }
        if lateness == Lateness::Late {
            self.counters.late_accepted += 1;
            if self.next_eval.is_some_and(|n| window::bucket_end(t, self.cfg.step) < n) {
                self.counters.late_after_evaluation += 1;
            }
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

        // Fake-wave filter: suspects stay out of the statistics, and the
        // members of a wave recognised now are taken back out.
        let ctx = spam::Context {
            cfg: &self.cfg.spam,
            terms: &self.terms,
            counters: &mut self.counters,
        };
        let screened = self.spam.screen(ev, &scope, seq, quote, ctx);
        let mut retracted = Vec::new();
        for s in screened.retract {
            if self.retract(s) {
                retracted.push(s);
            }
        }
        let mut signals = screened.signals;
        if screened.suspect.is_none() {
            self.apply(ev, seq, neg);
            if neg {
                self.early(ev, &mut signals);
                self.early_cluster(ev, seq, &mut signals);
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
            suspect: screened.suspect,
            signals,
            seq,
            retracted,
        })
    }

    /// Rejects an embedding of another dimension than earlier ones, or with
    /// a non-finite value.
    fn check_embedding(&self, ev: &ScoredEvent) -> Result<(), DetectError> {
        let emb = &ev.scored.embedding;
        if emb.is_empty() {
            return Ok(());
        }
        if let Some(expected) = self.centring.dim().filter(|&d| d != emb.len()) {
            return Err(DetectError::EmbeddingDim {
                id: ev.event.id.clone(),
                expected,
                got: emb.len(),
            });
        }
        if emb.iter().any(|x| !x.is_finite()) {
            return Err(DetectError::NonFinite {
                id: ev.event.id.clone(),
            });
        }
        Ok(())
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
        if self.sla.close(event_id) {
            self.counters.replies += 1;
        }
    }

    /// Unreplied negatives per key at the current watermark, sorted by key.
    pub fn sla(&self) -> Vec<SlaCount> {
        let w = self.watermark.current().unwrap_or(i64::MIN);
        self.sla.counts(w, self.cfg.sla, |id| self.keys.key_of(id))
    }

    fn track_sla(&mut self, ev: &ScoredEvent) {
        let ids: Vec<u64> = self
            .cfg
            .rollups
            .iter()
            .filter_map(|r| key_for(ev, r))
            .filter_map(|k| self.keys.get(&k).map(|s| s.id))
            .collect();
        let cap = 4 * self.cfg.max_keys.max(1024);
        self.sla.track(&ev.event.id, ev.event.event_time, ids, cap);
    }

    /// Takes an accepted event back out of every statistic it entered
    /// (false: it was not counted, or was retracted already).
    fn retract(&mut self, seq: u64) -> bool {
        let Some(a) = self.spam.ledger.take(seq) else {
            return false;
        };
        self.counters.retracted += 1;
        self.keys.retract(seq, &a, self.cfg.step);
        self.global.uncount(bucket_of(a.t, self.cfg.step), a.neg);
        true
    }

    /// Counts an accepted event into the global and every rollup key's
    /// statistics (creating keys up to the cap), its clusters and quotes,
    /// and records what it added in the ledger.
    fn apply(&mut self, ev: &ScoredEvent, seq: u64, neg: bool) {
        let t = ev.event.event_time;
        let b = bucket_of(t, self.cfg.step);
        self.global.count(b, neg);
        if self.global.next_fold.is_none() {
            self.global.next_fold = Some(hour_of(t));
        }
        // A late item whose hour was folded already corrects the baselines.
        if self.global.correct_late(t, neg, &self.cfg, None) {
            self.counters.late_corrected += 1;
        }
        let terms: Arc<[String]> = terms::terms(&ev.event.text).into();
        self.terms.add(&terms);
        let centred: Option<Arc<[f32]>> = self.centring.centre(&ev.scored.embedding).map(Arc::from);
        if ev.scored.embedding.is_empty() {
            self.counters.no_embedding += 1;
        }
        let params = ClusterParams {
            threshold: self.cfg.cluster_similarity,
            max_clusters: self.cfg.max_clusters,
            half_life: self.cfg.cluster_half_life,
            prior_share: self.cfg.cluster_prior_share,
            step: self.cfg.step,
            rehome: self.cfg.cluster_rehome,
            youth: self.cfg.thresholds.cluster_cusum_youth,
        };
        let id: Arc<str> = ev.event.id.as_str().into();
        let text: Arc<str> = ev.event.text.as_str().into();
        let lang: Arc<str> = lang_of(ev).into();
        let author: Option<Arc<str>> = ev.event.author.as_deref().map(Into::into);
        let region: Option<Arc<str>> = ev.event.key.region.as_deref().map(Into::into);
        let channel: Option<Arc<str>> = ev.event.key.channel.as_deref().map(Into::into);
        let mut applied = Applied {
            t,
            neg,
            keys: Vec::new(),
        };
        // (member, key id, cluster) moved by a cluster founded now.
        let mut rehomed = Vec::new();
        for r in 0..self.cfg.rollups.len() {
            let Some(key) = key_for(ev, &self.cfg.rollups[r]) else {
                continue;
            };
            let (st, evicted) = self.keys.get_or_create(&key, &self.cfg, t, &mut self.counters);
            if let Some(ev) = evicted {
                let at = self.watermark.current().unwrap_or(t);
                evaluate::clear_all(&ev.key, &ev.state, at, &mut self.cleared);
            }
            if st.next_fold.is_none() {
                st.next_fold = Some(hour_of(t));
            }
            if !st.count(b, neg) {
                continue;
            }
            st.correct_late(t, neg, &self.cfg, Some(&self.global.baseline));
            let mut cl = None;
            if neg {
                let mut sim = 0.0;
                if let Some(x) = &centred {
                    let (a, moved) = st.cluster(x, seq, t, &params);
                    cl = Some(a.cluster);
                    sim = a.similarity;
                    if let Some(from) = moved.iter().map(|m| m.t).min() {
                        evaluate::replay_run(st, &self.global, a.cluster, from.min(t), self.next_eval, &self.cfg);
                        rehomed.extend(moved.iter().map(|m| (m.seq, st.id, a.cluster)));
                    }
                }
                st.recent.push_back(Recent {
                    seq,
                    t,
                    id: id.clone(),
                    text: text.clone(),
                    author: author.clone(),
                    lang: lang.clone(),
                    region: region.clone(),
                    channel: channel.clone(),
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
            applied.keys.push(AppliedTo {
                key_id: st.id,
                cluster: cl,
            });
        }
        for (s, key_id, cluster) in rehomed {
            self.spam.ledger.rehome(s, key_id, cluster);
        }
        self.spam.ledger.record(seq, applied);
    }
}
