//! Window evaluation: what happens when the watermark passes a window end.
//!
//! Each end on the step grid is evaluated once, in order, in steps:
//! 1. fold the closed hours into the global baseline;
//! 2. per key (in key order): expire it if idle for `idle_ttl`, else fold
//!    its closed hours ([`crate::baseline`]), then, once warm, test every
//!    window ending here for a volume spike or sentiment shift, every
//!    cluster window for an emerging issue and, for each young cluster, the
//!    step that just closed in its Poisson CUSUM (a new topic on a busy key
//!    is a small part of its negatives, and a window share test sees it
//!    late), and update each condition's
//!    onset / clear state (a condition fires once, at its onset, and clears
//!    after `clear_after` of being false); finally trim its buckets;
//! 3. trim the global buckets, drop expired keys, and sweep the spam and
//!    SLA state on the hour.
//!
//! Over a gap in event time the evaluation jumps ahead to the last windows
//! that can hold anything (the skipped steps are counted), and all grid
//! arithmetic saturates, so an absurd event time cannot overflow or make
//! the loop run for billions of steps. Early firing tests the shortest open
//! window on each negative, before it closes, and the CUSUM of the cluster
//! the negative joined with the members of the open step.

use std::collections::{BTreeMap, HashMap};

use earshot_core::types::{EventTime, Signal, SignalKey, SignalKind};

use crate::baseline::{self, expected, fold_global, fold_key, traffic_factor, traffic_factor_z, FoldContext};
use crate::explain::{build_signal, Evidence};
use crate::key::{range_counts, KeyState};
use crate::stats::{self, Baseline};
use crate::terms::TermStats;
use crate::window::{bucket_end, bucket_of, Span};
use crate::{hour_of, spam, Counters, DetectConfig, Detector, HOUR};

mod early;

pub(crate) use early::replay_run;

/// A condition that can fire for a key: its volume / share, or one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Cond {
    Volume,
    Cluster(u64),
}

/// A condition that fired and has not cleared yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Active {
    pub(crate) last_true: EventTime,
    /// The kind of the signal fired at the onset (reported when it clears).
    pub(crate) kind: SignalKind,
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

/// Queues a [`Cleared`] for every open condition of a key that stops being
/// tracked (expired or evicted).
pub(crate) fn clear_all(key: &SignalKey, st: &KeyState, at: EventTime, cleared: &mut Vec<Cleared>) {
    for (c, a) in &st.active {
        cleared.push(cleared_of(key, *c, a, at));
    }
}

/// One condition of one key, with the kind it fires as.
struct Watched<'a> {
    key: &'a SignalKey,
    cond: Cond,
    kind: SignalKind,
}

/// Updates a condition's state; true when this is an onset (fire).
/// Clearing queues a [`Cleared`] with the kind fired at the onset.
fn onset(
    active: &mut BTreeMap<Cond, Active>,
    w: Watched<'_>,
    now_true: bool,
    end: EventTime,
    clear_after: i64,
    cleared: &mut Vec<Cleared>,
) -> bool {
    let Watched { key, cond, kind } = w;
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
            if end.saturating_sub(a.last_true) >= clear_after {
                cleared.push(cleared_of(key, cond, a, end));
                active.remove(&cond);
            }
            false
        }
        (None, false) => false,
    }
}

/// A window whose negatives are anomalous.
struct Tested {
    kind: SignalKind,
    evidence: Evidence,
}

/// The volume-spike and sentiment-shift tests of one window `[start, end)`.
/// Expected counts are scaled by the traffic factor: the larger of the
/// key's non-negative traffic (over the window, at least its last hour) and
/// `global_factor` (all keys' non-negative items over the same span).
/// `held` negatives of the window are left out of both counts (members of
/// near-duplicate groups the fake-wave filter has not judged yet, beyond
/// one per group: see [`held_negatives`]).
fn window_test(
    st: &KeyState,
    global: &Baseline,
    window: Span,
    cfg: &DetectConfig,
    global_factor: f64,
    held: u32,
) -> Option<Tested> {
    let th = cfg.thresholds;
    let step = cfg.step;
    let Span { start, end } = window;
    let len = end.saturating_sub(start);
    let c = range_counts(&st.buckets, start, end, step);
    let (n, k) = (c.total.saturating_sub(held), c.neg.saturating_sub(held));
    if k < th.min_count {
        return None;
    }
    let TrafficScaled { mu, factor: f, floor } = traffic_scaled(st, global, window, cfg, global_factor);
    let mu_k = stats::inflate(mu.neg, st.baseline.evidence_neg(), th.baseline_z).max(floor) * f;
    let mu_n = stats::inflate(mu.total, st.baseline.evidence_total(), th.baseline_z).max(floor) * f;
    let p0 = stats::inflate_share(st.baseline.neg_share(), st.baseline.evidence_total(), th.baseline_z);
    // Negative-binomial tail with the key's own overdispersion (the Poisson
    // tail on Poisson-like traffic).
    let p_vol = stats::nb_sf(k as u64, mu_k, st.volume_c2(len, step, th.baseline_z));
    let p_share = stats::binomial_sf(k as u64, n as u64, p0);
    let total_up = stats::poisson_sf(n as u64, mu_n) < th.p_confirm;
    let share = k as f64 / n.max(1) as f64;
    // The share confirms a spike only where it has something to go on:
    // with less than one non-negative item expected among the window's
    // (a key whose every item is negative), its rise cannot be seen, and
    // the traffic factor alone tells a spike from a surge.
    let share_confirms = p_share < th.p_confirm || (1.0 - p0) * (n as f64) < 1.0;
    let (kind, p) = if p_vol < th.p_volume && share_confirms && k as f64 >= th.min_ratio * mu_k {
        (SignalKind::VolumeSpike, p_vol)
    } else if !total_up && p_share < th.p_share && share - p0 >= th.min_share_delta {
        (SignalKind::SentimentShift, p_share)
    } else {
        return None;
    };
    Some(Tested {
        kind,
        evidence: Evidence {
            observed: k,
            expected: mu_k,
            population: n,
            baseline_share: p0,
            p_value: p,
        },
    })
}

/// Expected negatives of a key in `window` for the cluster CUSUM: the
/// seasonal expectation inflated by its uncertainty, floored, and scaled by
/// the traffic factor (as the window tests do).
fn expected_negatives(st: &KeyState, global: &Baseline, window: Span, cfg: &DetectConfig, global_factor: f64) -> f64 {
    let th = cfg.thresholds;
    let TrafficScaled { mu, factor, floor } = traffic_scaled(st, global, window, cfg, global_factor);
    stats::inflate(mu.neg, st.baseline.evidence_neg(), th.baseline_z).max(floor) * factor
}

/// A key's seasonal expectation for a window, the traffic factor that
/// scales it (the larger of the key's non-negative traffic over the window,
/// at least its last hour, and `global_factor`) and the floor of expected
/// items for the window's length.
struct TrafficScaled {
    mu: stats::Expected,
    factor: f64,
    floor: f64,
}

fn traffic_scaled(
    st: &KeyState,
    global: &Baseline,
    window: Span,
    cfg: &DetectConfig,
    global_factor: f64,
) -> TrafficScaled {
    let len = window.end.saturating_sub(window.start);
    let recent = Span::ending_at(window.end, len.max(HOUR));
    let sc = range_counts(&st.buckets, recent.start, recent.end, cfg.step);
    let se = expected(&st.baseline, global, recent);
    TrafficScaled {
        mu: expected(&st.baseline, global, window),
        factor: traffic_factor(sc.total - sc.neg, se.non_negative()).max(global_factor),
        floor: cfg.thresholds.min_expected_per_hour * len as f64 / HOUR as f64,
    }
}

/// Negatives of a key in the window (from its recent ring) that share no
/// author and no near-duplicate text with an earlier one.
fn distinct_negatives(st: &KeyState, window: Span, near_dup: f64) -> u32 {
    distinct_members(st, window, None, near_dup)
}

/// [`distinct_negatives`] of one cluster (`Some(id)`) or of all.
fn distinct_members(st: &KeyState, window: Span, cluster: Option<u64>, near_dup: f64) -> u32 {
    let mut kept: Vec<(Option<&str>, spam::Signature)> = Vec::new();
    for r in st
        .recent
        .iter()
        .filter(|r| !r.retracted && r.t >= window.start && r.t < window.end)
        .filter(|r| cluster.is_none() || r.cluster == cluster)
    {
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

/// Negatives of a key in `window` (from its recent ring) that belong to a
/// near-duplicate group the fake-wave filter has not judged yet, beyond the
/// first of each group: counted as one item until the filter flags the
/// group (its members are then retracted) or lets it pass (members from
/// `2 * burst_min` accounts without coordination, or out of the spam
/// window). A fake wave split over two templates, or over the categories
/// of a product, otherwise reaches a key's spike threshold a member or two
/// before the filter recognises it.
fn held_negatives(st: &KeyState, window: Span, undecided: &HashMap<u64, u64>) -> u32 {
    if undecided.is_empty() {
        return 0;
    }
    let mut per_group: HashMap<u64, u32> = HashMap::new();
    for r in st
        .recent
        .iter()
        .filter(|r| !r.retracted && r.t >= window.start && r.t < window.end)
    {
        if let Some(&g) = undecided.get(&r.seq) {
            *per_group.entry(g).or_insert(0) += 1;
        }
    }
    per_group.values().map(|n| n - 1).sum()
}

/// What the per-key steps of one evaluation share.
struct Eval<'a> {
    cfg: &'a DetectConfig,
    end: EventTime,
    global: &'a Baseline,
    /// All keys' traffic factor per span length (see [`global_factor`]).
    global_factors: Vec<(i64, f64)>,
    terms: &'a TermStats,
    /// Members of near-duplicate groups not judged yet (see
    /// [`held_negatives`]), computed on the first window test that needs it.
    undecided: Option<HashMap<u64, u64>>,
    spam: &'a spam::SpamFilter,
    cleared: &'a mut Vec<Cleared>,
    counters: &'a mut Counters,
    #[cfg(test)]
    log: &'a mut EvalLog,
}

/// Tests only: the counts every window evaluation saw, with the sequence
/// number of the last accepted event at that time.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct EvalLog {
    pub(crate) seq: u64,
    pub(crate) windows: Vec<(SignalKey, Span, u64, crate::key::RangeCounts)>,
}

impl Eval<'_> {
    /// Tests every window ending at `end`; the first firing one is reported
    /// at the onset of the key's volume condition.
    fn windows(&mut self, key: &SignalKey, st: &mut KeyState, out: &mut Vec<Signal>) {
        let mut fired: Option<Signal> = None;
        let mut any = false;
        for &len in &self.cfg.windows {
            self.counters.windows_evaluated += 1;
            let window = Span::ending_at(self.end, len);
            #[cfg(test)]
            {
                let c = range_counts(&st.buckets, window.start, window.end, self.cfg.step);
                self.log.windows.push((key.clone(), window, self.log.seq, c));
            }
            let gf = self.global_factor(window.end.saturating_sub(window.start));
            let mut tested = window_test(st, self.global, window, self.cfg, gf, 0);
            // A new spike is tested again without the members of undecided
            // near-duplicate groups (a condition already active is not).
            if tested.is_some() && !st.active.contains_key(&Cond::Volume) {
                let (spam, cfg, end) = (self.spam, self.cfg, self.end);
                let undecided = self.undecided.get_or_insert_with(|| spam.undecided(end, &cfg.spam));
                let held = held_negatives(st, window, undecided);
                if held > 0 {
                    tested = window_test(st, self.global, window, self.cfg, gf, held);
                }
            }
            if let Some(t) = tested {
                any = true;
                if fired.is_none() {
                    fired = Some(build_signal(t.kind, key, st, window, t.evidence, None, self.terms));
                }
            }
        }
        let kind = fired.as_ref().map_or(SignalKind::VolumeSpike, |s| s.kind);
        let w = Watched {
            key,
            cond: Cond::Volume,
            kind,
        };
        if onset(&mut st.active, w, any, self.end, self.cfg.clear_after, self.cleared) {
            out.extend(fired);
        }
    }

    /// Tests every cluster's growth over the cluster windows, updates the
    /// cluster conditions and clears those of clusters that were replaced.
    fn clusters(&mut self, key: &SignalKey, st: &mut KeyState, out: &mut Vec<Signal>) {
        let th = self.cfg.thresholds;
        let step = self.cfg.step;
        let end = self.end;
        let mut cluster_hits: BTreeMap<u64, Signal> = BTreeMap::new();
        let mut true_ids = Vec::new();
        for &len in &self.cfg.cluster_windows {
            let window = Span::ending_at(end, len);
            let kneg = range_counts(&st.buckets, window.start, end, step).neg;
            if kneg < th.min_cluster_count {
                continue;
            }
            for c in &st.clusters.items {
                let kc: u32 = c
                    .counts
                    .range(bucket_of(window.start, step), bucket_of(end, step))
                    .map(|(_, x)| *x)
                    .sum();
                if kc < th.min_cluster_count {
                    continue;
                }
                let q0 = stats::inflate_share(c.share.max(0.01), c.evidence, th.baseline_z);
                let p = stats::binomial_sf(kc as u64, kneg as u64, q0);
                if p < th.p_cluster && kc as f64 >= th.min_ratio * q0 * kneg as f64 {
                    true_ids.push(c.id);
                    cluster_hits.entry(c.id).or_insert_with(|| {
                        let evidence = Evidence {
                            observed: kc,
                            expected: q0 * kneg as f64,
                            population: kneg,
                            baseline_share: q0,
                            p_value: p,
                        };
                        build_signal(
                            SignalKind::EmergingIssue,
                            key,
                            st,
                            window,
                            evidence,
                            Some(c.id),
                            self.terms,
                        )
                    });
                }
            }
        }
        // The sequential rule: each cluster's members in the step that just
        // closed, against its usual share of the key's expected negatives.
        let last = Span::ending_at(end, step);
        let m = expected_negatives(st, self.global, last, self.cfg, self.global_factor(step));
        let mut runs = Vec::new();
        for c in st.clusters.items.iter_mut() {
            // Only new topics: young clusters (an established one is judged
            // by the window tests above); a run that began in time goes on.
            if !c.watched(end, th.cluster_cusum_youth) {
                continue;
            }
            let k = c.counts.get(bucket_of(last.start, step)).copied().unwrap_or(0);
            let q = c.usual_share(th.cluster_prior_items, th.baseline_z);
            let run = c.step(k, q * m, th.cluster_cusum_ratio, 2.0 * th.cluster_cusum_h, last.start);
            if run.cusum >= th.cluster_cusum_h && run.observed >= th.min_cluster_count {
                runs.push((c.id, run, q));
            }
        }
        for (id, run, q) in runs {
            let window = Span { start: run.from, end };
            // Members sharing an author or near-duplicate texts are a fake
            // wave in the making, not an issue.
            if distinct_members(st, window, Some(id), self.cfg.spam.near_dup_similarity) < th.min_cluster_count {
                continue;
            }
            true_ids.push(id);
            cluster_hits.entry(id).or_insert_with(|| {
                let evidence = run_evidence(&run, range_counts(&st.buckets, window.start, end, step).neg, q);
                build_signal(
                    SignalKind::EmergingIssue,
                    key,
                    st,
                    window,
                    evidence,
                    Some(id),
                    self.terms,
                )
            });
        }
        let ids: Vec<u64> = st.clusters.items.iter().map(|c| c.id).collect();
        for &id in &ids {
            let w = Watched {
                key,
                cond: Cond::Cluster(id),
                kind: SignalKind::EmergingIssue,
            };
            if onset(
                &mut st.active,
                w,
                true_ids.contains(&id),
                end,
                self.cfg.clear_after,
                self.cleared,
            ) {
                out.extend(cluster_hits.remove(&id));
            }
        }
        // `ids` are the live clusters: conditions of replaced ones clear.
        let cleared = &mut *self.cleared;
        st.active.retain(|c, a| {
            let keep = match c {
                Cond::Cluster(id) => ids.contains(id),
                Cond::Volume => true,
            };
            if !keep {
                cleared.push(cleared_of(key, *c, a, end));
            }
            keep
        });
    }
}

impl Detector {
    /// Evaluates every window end on the step grid up to the watermark.
    pub(crate) fn evaluate_until(&mut self, watermark: EventTime, out: &mut Vec<Signal>) {
        let step = self.cfg.step;
        let max_len = self.cfg.windows.iter().copied().max().unwrap_or(step);
        let mut next = match self.next_eval {
            Some(n) => n,
            None => bucket_end(watermark, step),
        };
        // Over a long gap, jump ahead: nothing but empty windows lies there.
        let floor_end = bucket_of(watermark, step).saturating_mul(step).saturating_sub(max_len);
        if next < floor_end {
            self.counters.steps_skipped += (floor_end.saturating_sub(next) / step) as u64;
            next = floor_end;
        }
        // `i64::MAX` marks the end of the grid (no later end is representable).
        while next <= watermark && next != i64::MAX {
            self.evaluate_at(next, out);
            next = next.saturating_add(step);
        }
        self.next_eval = Some(next);
        self.spam.ledger.trim(
            watermark
                .saturating_sub(self.cfg.spam.window.max(self.cfg.allowed_lateness))
                .saturating_sub(HOUR),
        );
    }

    fn evaluate_at(&mut self, end: EventTime, out: &mut Vec<Signal>) {
        let cfg = &self.cfg;
        let step = cfg.step;
        let per_hour = HOUR / step;
        let fold_until = hour_of(end.saturating_sub(cfg.fold_lag()).saturating_sub(cfg.out_of_orderness));
        fold_global(&mut self.global, &mut self.global_hour_factor, fold_until, cfg);
        // All keys' traffic factor over each tested span (a window of at
        // least an hour): a 24 h window that holds a day of surge is judged
        // against that day's traffic, not the hour after it.
        let mut spans: Vec<i64> = cfg
            .windows
            .iter()
            .chain(&cfg.cluster_windows)
            .chain(std::iter::once(&step))
            .map(|l| (*l).max(HOUR))
            .collect();
        spans.sort_unstable();
        spans.dedup();
        let global_factors = spans
            .into_iter()
            .map(|len| (len, global_factor(&self.global, Span::ending_at(end, len), step)))
            .collect();
        let max_len = cfg.windows.iter().copied().max().unwrap_or(step);
        // Clusters are tested on the cluster windows only: their counts
        // need those, the lateness and the hours still to fold.
        let max_cluster_len = cfg.cluster_windows.iter().copied().max().unwrap_or(step);
        let keep_clusters_from = bucket_of(
            end.saturating_sub(max_cluster_len)
                .saturating_sub(cfg.allowed_lateness)
                .saturating_sub(2 * HOUR),
            step,
        );
        let keep_from = bucket_of(
            end.saturating_sub(max_len)
                .saturating_sub(cfg.allowed_lateness)
                .saturating_sub(2 * HOUR),
            step,
        );
        let fold = FoldContext {
            cfg,
            global: &self.global.baseline,
            global_hour_factor: &self.global_hour_factor,
            terms: &self.terms,
        };
        let mut eval = Eval {
            cfg,
            end,
            global: &self.global.baseline,
            global_factors,
            terms: &self.terms,
            undecided: None,
            spam: &self.spam,
            cleared: &mut self.cleared,
            counters: &mut self.counters,
            #[cfg(test)]
            log: &mut self.eval_log,
        };
        #[cfg(test)]
        {
            eval.log.seq = self.seq;
        }
        let idle_before = end.saturating_sub(cfg.idle_ttl);
        let loose_from = end.saturating_sub(cfg.cluster_rehome);
        let mut expired = Vec::new();
        for (key, st) in self.keys.iter_mut() {
            if st.last_seen < idle_before {
                clear_all(key, st, end, eval.cleared);
                expired.push(key.clone());
                continue;
            }
            fold_key(key, st, fold_until, &fold, out);
            if st.is_warm(cfg, end) {
                eval.windows(key, st, out);
                eval.clusters(key, st, out);
            }
            // Loose members past the re-homing window let their embeddings
            // go, also on keys that see no new negative.
            st.loose.retain(|m| m.t >= loose_from);
            if st.next_fold.is_some_and(|h| h.saturating_mul(per_hour) > keep_from) {
                st.buckets.trim_before(keep_from);
            }
            if st
                .next_fold
                .is_some_and(|h| h.saturating_mul(per_hour) > keep_clusters_from)
            {
                for c in st.clusters.items.iter_mut() {
                    c.counts.trim_before(keep_clusters_from);
                }
            }
        }
        let global_folded = self.global.next_fold.map_or(keep_from, |h| h.saturating_mul(per_hour));
        self.global.buckets.trim_before(keep_from.min(global_folded));
        for k in expired {
            if self.keys.remove(&k) {
                self.counters.keys_expired += 1;
            }
        }
        if end % HOUR == 0 {
            // Hourly clean-up of spam state and SLA entries.
            self.spam.sweep(end, &self.cfg.spam);
            self.sla.sweep(end.saturating_sub(30 * 24 * HOUR));
        }
    }
}

/// Evidence of a young cluster's CUSUM run: its members against the run's
/// expectation, among `population` negatives of the key.
fn run_evidence(run: &crate::cluster::Run, population: u32, baseline_share: f64) -> Evidence {
    Evidence {
        observed: run.observed,
        expected: run.expected,
        population,
        baseline_share,
        p_value: stats::poisson_sf(run.observed as u64, run.expected),
    }
}

/// Traffic factor of all keys over `span`, from the non-negative items
/// only: a large complaint wave is itself traffic, and must not pass for a
/// surge that explains it away.
fn global_factor(g: &KeyState, span: Span, step: i64) -> f64 {
    if g.baseline.hours < 24 {
        return 1.0;
    }
    let c = range_counts(&g.buckets, span.start, span.end, step);
    let e = baseline::expected(&g.baseline, &g.baseline, span);
    traffic_factor_z(c.total - c.neg, e.non_negative(), 0.0)
}

impl Eval<'_> {
    /// All keys' traffic factor over a span of `len` ending now (at least
    /// an hour).
    fn global_factor(&self, len: i64) -> f64 {
        let len = len.max(HOUR);
        self.global_factors
            .iter()
            .find(|(l, _)| *l == len)
            .map_or(1.0, |(_, f)| *f)
    }
}
