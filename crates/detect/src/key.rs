//! Per-key state and the table of tracked keys.
//!
//! A key (one value of one rollup, e.g. `brand=Acme,product=Kettle`) holds
//! per-step counts of items and negatives, its seasonal baseline and drift
//! CUSUMs (folded hourly by [`crate::baseline`]), the conditions that fired
//! and have not cleared yet, its complaint clusters and a ring of recent
//! negatives to quote. The table gives every key a numeric id (so the spam
//! ledger and the SLA tracker can refer to keys cheaply) and enforces
//! `max_keys`: a new key at the cap evicts the least recently seen key (in
//! event time; the older id on a tie), so the table follows the keys that
//! are active now. An evicted key that returns starts cold.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use earshot_core::types::{Category, EventTime, SignalKey};

use crate::cluster::{Adopted, Assignment, ClusterParams, Clusters, Loose, LOOSE_CAP};
use crate::evaluate::{Active, Cond};
use crate::spam::Applied;
use crate::stats::{Baseline, Cusum, Dispersion, Persistence};
use crate::window::{bucket_of, Buckets};
use crate::{Counters, DetectConfig, HOUR};

/// Items and negatives in one step bucket.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) total: u32,
    pub(crate) neg: u32,
}

/// One recent negative of a key, kept for quotes and explanations.
#[derive(Debug, Clone)]
pub(crate) struct Recent {
    pub(crate) seq: u64,
    pub(crate) t: EventTime,
    pub(crate) id: Arc<str>,
    pub(crate) text: Arc<str>,
    pub(crate) author: Option<Arc<str>>,
    pub(crate) lang: Arc<str>,
    pub(crate) region: Option<Arc<str>>,
    pub(crate) channel: Option<Arc<str>>,
    pub(crate) category: Category,
    pub(crate) cluster: Option<u64>,
    pub(crate) sim: f32,
    pub(crate) terms: Arc<[String]>,
    pub(crate) retracted: bool,
}

/// Items and negatives accumulated for the next share-CUSUM residual.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CusumBatch {
    pub(crate) total: u32,
    pub(crate) neg: u32,
}

/// Observed and expected negatives of the current volume-CUSUM run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct VolumeRun {
    pub(crate) observed: u32,
    pub(crate) expected: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct KeyState {
    pub(crate) id: u64,
    pub(crate) buckets: Buckets<Counts>,
    pub(crate) baseline: Baseline,
    /// Next hour (index since epoch) to fold into the baseline.
    pub(crate) next_fold: Option<i64>,
    /// Items that arrived after their hour was folded: they entered the
    /// baseline as a correction and wait here for the drift CUSUMs of the
    /// next hour folded.
    pub(crate) late_pending: Counts,
    pub(crate) first_seen: EventTime,
    pub(crate) last_seen: EventTime,
    pub(crate) cusum: Cusum,
    pub(crate) cusum_acc: CusumBatch,
    pub(crate) drift_from: i64,
    /// CUSUM of hourly negatives against the traffic-adjusted
    /// seasonal expectation, and the hour its current run started.
    pub(crate) vcusum: f64,
    pub(crate) vdrift_from: i64,
    /// Observed and expected negatives since `vdrift_from`.
    pub(crate) vrun: VolumeRun,
    /// The CUSUM crossed its interval in the current run (re-armed at 0).
    pub(crate) vfired: bool,
    pub(crate) last_drift: Option<EventTime>,
    /// Overdispersion of the negatives against their expectation, per hour
    /// and per step (see [`KeyState::volume_c2`]).
    pub(crate) disp_hour: Dispersion,
    pub(crate) disp_step: Dispersion,
    /// Autocorrelation of the hourly residuals (scales the drift CUSUM).
    pub(crate) persistence: Persistence,
    pub(crate) active: BTreeMap<Cond, Active>,
    pub(crate) clusters: Clusters,
    /// Negatives that joined an existing cluster lately, which a cluster
    /// founded soon after may take over (see [`Clusters::adopt`]).
    pub(crate) loose: VecDeque<Loose>,
    pub(crate) recent: VecDeque<Recent>,
}

impl KeyState {
    pub(crate) fn new(id: u64, cfg: &DetectConfig, t: EventTime) -> Self {
        Self {
            id,
            buckets: Buckets::default(),
            baseline: Baseline::new(cfg.seasonality, (cfg.baseline_memory / HOUR) as f64, 10.0),
            next_fold: None,
            late_pending: Counts::default(),
            first_seen: t,
            last_seen: t,
            cusum: Cusum::default(),
            cusum_acc: CusumBatch::default(),
            drift_from: 0,
            vcusum: 0.0,
            vdrift_from: 0,
            vrun: VolumeRun::default(),
            vfired: false,
            last_drift: None,
            disp_hour: Dispersion::default(),
            disp_step: Dispersion::default(),
            persistence: Persistence::default(),
            active: BTreeMap::new(),
            clusters: Clusters::default(),
            loose: VecDeque::new(),
            recent: VecDeque::new(),
        }
    }

    /// Puts a negative (centred embedding `x`) into a cluster: it joins the
    /// closest one or founds one. A founder takes over the loose members
    /// closer to it ([`Clusters::adopt`]; their quotes follow them); a
    /// joiner stays loose (the last [`LOOSE_CAP`] at most).
    pub(crate) fn cluster(
        &mut self,
        x: &Arc<[f32]>,
        seq: u64,
        t: EventTime,
        p: &ClusterParams,
    ) -> (Assignment, Vec<Adopted>) {
        let a = self.clusters.assign_or_pair(x, t, &self.loose, p);
        let mut moved = Vec::new();
        if a.founded {
            moved = self.clusters.adopt(a.cluster, t, &mut self.loose, p);
            for m in &moved {
                for r in self.recent.iter_mut().filter(|r| r.seq == m.seq) {
                    r.cluster = Some(a.cluster);
                    r.sim = m.similarity;
                }
            }
        } else if p.rehome > 0 {
            self.loose.push_back(Loose {
                seq,
                t,
                cluster: a.cluster,
                joined: a.joined,
                x: Arc::clone(x),
            });
            // Older ones go at each step's evaluation (`evaluate_until`).
            while self.loose.len() > LOOSE_CAP {
                self.loose.pop_front();
            }
        }
        (a, moved)
    }

    /// Counts one item into bucket `b` (false when the bucket is out of the
    /// retained range).
    pub(crate) fn count(&mut self, b: i64, neg: bool) -> bool {
        let Some(c) = self.buckets.get_mut(b) else {
            return false;
        };
        c.total += 1;
        c.neg += neg as u32;
        true
    }

    /// An item at `t` that arrived after its hour was folded: corrects the
    /// baseline (negatives not while a volume drift is building, as the
    /// fold would not have learned them either) and queues the item for the
    /// drift CUSUMs of the next fold. False (nothing done) when its hour is
    /// not folded yet: the fold will read it from the buckets.
    /// `fallback` is the shape the baseline falls back to (the global one
    /// for a key, none for the global baseline itself).
    pub(crate) fn correct_late(
        &mut self,
        t: EventTime,
        neg: bool,
        cfg: &DetectConfig,
        fallback: Option<&Baseline>,
    ) -> bool {
        let h = t.div_euclid(HOUR);
        let Some(next) = self.next_fold.filter(|&n| h < n) else {
            return false;
        };
        let since = u64::try_from(next.saturating_sub(h).saturating_sub(1)).unwrap_or(0);
        let drifting = self.vcusum > cfg.thresholds.drift_h / 2.0 && next.saturating_sub(self.vdrift_from) < 72;
        let k = (neg && !drifting) as u32;
        // The buckets hold the item already.
        let now = hour_counts(&self.buckets, h, HOUR / cfg.step);
        let after = (f64::from(now.total), f64::from(now.neg));
        let before = (after.0 - 1.0, after.1 - f64::from(neg as u32));
        let after = (after.0, before.1 + f64::from(k));
        self.baseline.correct(h, since, before, after, fallback);
        self.late_pending.total = self.late_pending.total.saturating_add(1);
        self.late_pending.neg = self.late_pending.neg.saturating_add(neg as u32);
        true
    }

    /// Takes one item back out of bucket `b`.
    pub(crate) fn uncount(&mut self, b: i64, neg: bool) {
        if let Some(c) = self.buckets.get_mut(b) {
            c.total = c.total.saturating_sub(1);
            if neg {
                c.neg = c.neg.saturating_sub(1);
            }
        }
    }

    /// The baseline has `min_history` of hours folded in and the key was
    /// first seen at least `min_history` before `end`.
    pub(crate) fn is_warm(&self, cfg: &DetectConfig, end: EventTime) -> bool {
        self.has_baseline_history(cfg) && end.saturating_sub(self.first_seen) >= cfg.min_history
    }

    /// Squared coefficient of variation of the negatives over a window of
    /// `len` (negative binomial `Var = mu + c2 mu²`): the step estimate for
    /// a step, the hourly one for an hour or more, interpolated in `ln len`
    /// between (bursts are larger on short scales and average out over an
    /// hour). Lower confidence bounds at `z` standard errors: 0 on Poisson
    /// traffic.
    pub(crate) fn volume_c2(&self, len: i64, step: i64, z: f64) -> f64 {
        let (cs, ch) = (self.disp_step.c2(z), self.disp_hour.c2(z));
        if len >= HOUR || step >= HOUR {
            return ch;
        }
        if len <= step {
            return cs;
        }
        let lambda = ((len as f64) / (step as f64)).ln() / ((HOUR as f64) / (step.max(1) as f64)).ln();
        cs + (ch - cs) * lambda.clamp(0.0, 1.0)
    }

    /// The baseline has `min_history` of hours folded in.
    pub(crate) fn has_baseline_history(&self, cfg: &DetectConfig) -> bool {
        i64::try_from(self.baseline.hours).map_or(i64::MAX, |h| h.saturating_mul(HOUR)) >= cfg.min_history
    }
}

/// Items and negatives (`total`, `neg`) over a range of buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RangeCounts {
    pub(crate) total: u32,
    pub(crate) neg: u32,
}

/// Counts of hour `h` (`per_hour` buckets per hour).
pub(crate) fn hour_counts(b: &Buckets<Counts>, h: i64, per_hour: i64) -> RangeCounts {
    sum(
        b,
        h.saturating_mul(per_hour),
        h.saturating_add(1).saturating_mul(per_hour),
    )
}

/// Counts of the buckets of `[start, end)`.
pub(crate) fn range_counts(b: &Buckets<Counts>, start: EventTime, end: EventTime, step: i64) -> RangeCounts {
    sum(b, bucket_of(start, step), bucket_of(end, step))
}

fn sum(b: &Buckets<Counts>, from: i64, to: i64) -> RangeCounts {
    let (total, neg) = b
        .range(from, to)
        .fold((0, 0), |(n, k), (_, c)| (n + c.total, k + c.neg));
    RangeCounts { total, neg }
}

/// The tracked keys, by key (iterated in key order), by id, and by when
/// they were last seen (the eviction order).
#[derive(Debug, Clone)]
pub(crate) struct KeyTable {
    by_key: BTreeMap<SignalKey, KeyState>,
    by_id: HashMap<u64, SignalKey>,
    /// `(last_seen, id)` of every tracked key: the first is evicted first.
    by_seen: BTreeSet<(EventTime, u64)>,
    next_id: u64,
}

impl Default for KeyTable {
    fn default() -> Self {
        Self {
            by_key: BTreeMap::new(),
            by_id: HashMap::new(),
            by_seen: BTreeSet::new(),
            next_id: 1,
        }
    }
}

/// A key evicted to make room for a new one.
pub(crate) struct Evicted {
    pub(crate) key: SignalKey,
    pub(crate) state: KeyState,
}

impl KeyTable {
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(crate) fn get(&self, key: &SignalKey) -> Option<&KeyState> {
        self.by_key.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &SignalKey) -> Option<&mut KeyState> {
        self.by_key.get_mut(key)
    }

    /// The key with id `id`, if still tracked.
    pub(crate) fn key_of(&self, id: u64) -> Option<&SignalKey> {
        self.by_id.get(&id)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&SignalKey, &mut KeyState)> {
        self.by_key.iter_mut()
    }

    /// The state of `key`, seen at `t` (its `last_seen` moves forward),
    /// created (first seen at `t`) when it is not tracked. A creation with
    /// `max_keys` keys tracked first evicts the least recently seen key,
    /// which is returned (for its open conditions to clear). Creations and
    /// evictions are counted.
    pub(crate) fn get_or_create(
        &mut self,
        key: &SignalKey,
        cfg: &DetectConfig,
        t: EventTime,
        counters: &mut Counters,
    ) -> (&mut KeyState, Option<Evicted>) {
        let mut evicted = None;
        if !self.by_key.contains_key(key) {
            if self.by_key.len() >= cfg.max_keys.max(1) {
                if let Some(&(_, oldest)) = self.by_seen.first() {
                    if let Some(k) = self.by_id.get(&oldest).cloned() {
                        if let Some(state) = self.take(&k) {
                            counters.keys_evicted += 1;
                            evicted = Some(Evicted { key: k, state });
                        }
                    }
                }
            }
            let kid = self.next_id;
            self.next_id += 1;
            self.by_id.insert(kid, key.clone());
            self.by_seen.insert((t, kid));
            self.by_key.insert(key.clone(), KeyState::new(kid, cfg, t));
            counters.keys_created += 1;
        }
        let st = self.by_key.get_mut(key).expect("key tracked above");
        if t > st.last_seen {
            self.by_seen.remove(&(st.last_seen, st.id));
            self.by_seen.insert((t, st.id));
            st.last_seen = t;
        }
        (st, evicted)
    }

    /// Stops tracking `key`; true when it was tracked.
    pub(crate) fn remove(&mut self, key: &SignalKey) -> bool {
        self.take(key).is_some()
    }

    /// Stops tracking `key` and returns its state.
    fn take(&mut self, key: &SignalKey) -> Option<KeyState> {
        let st = self.by_key.remove(key)?;
        self.by_id.remove(&st.id);
        self.by_seen.remove(&(st.last_seen, st.id));
        Some(st)
    }

    /// Takes the item `seq`, applied as `applied`, back out of every key's
    /// counts, cluster counts and quotes.
    pub(crate) fn retract(&mut self, seq: u64, applied: &Applied, step: i64) {
        let b = bucket_of(applied.t, step);
        for to in &applied.keys {
            let Some(key) = self.by_id.get(&to.key_id) else {
                continue;
            };
            let Some(st) = self.by_key.get_mut(key) else {
                continue;
            };
            st.uncount(b, applied.neg);
            if let Some(cid) = to.cluster {
                // Only a bucket still kept (`get_mut` would grow the ring
                // back to one already trimmed).
                if let Some(c) = st.clusters.get_mut(cid).filter(|c| c.counts.get(b).is_some()) {
                    if let Some(n) = c.counts.get_mut(b) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            for r in st.recent.iter_mut().filter(|r| r.seq == seq) {
                r.retracted = true;
            }
            st.loose.retain(|m| m.seq != seq);
        }
    }
}
