//! Early firing: a window or a young cluster's CUSUM run tested on the event
//! that may make it significant, before its step closes. The onset / clear
//! logic of [`super`] dedups these signals with the evaluation at the close.

use earshot_core::types::{EventTime, ScoredEvent, Signal, SignalKind};

use super::{
    distinct_members, distinct_negatives, expected_negatives, global_factor, run_evidence, window_test, Active, Cond,
};
use crate::cluster::Run;
use crate::explain::build_signal;
use crate::key::{range_counts, KeyState};
use crate::stats;
use crate::window::{bucket_end, bucket_of, Span};
use crate::{key_for, DetectConfig, Detector, HOUR};

impl Detector {
    /// Early firing: the shortest window still open that holds this event is
    /// tested at once, on the counts so far against the expectation for the
    /// whole window, so a sharp wave is reported on the event that makes it
    /// significant rather than when the window closes. The usual onset /
    /// clear logic dedups it with the evaluation at the close.
    pub(crate) fn early(&mut self, ev: &ScoredEvent, out: &mut Vec<Signal>) {
        let (Some(m), Some(&len)) = (self.watermark.max_seen(), self.cfg.windows.iter().min()) else {
            return;
        };
        let window = Span::ending_at(bucket_end(m, self.cfg.step), len);
        let end = window.end;
        if ev.event.event_time < window.start || self.next_eval.is_some_and(|n| end < n) {
            return;
        }
        let gf = global_factor(&self.global, Span::ending_at(end, HOUR), self.cfg.step);
        for r in 0..self.cfg.rollups.len() {
            let Some(key) = key_for(ev, &self.cfg.rollups[r]) else {
                continue;
            };
            let Some(st) = self.keys.get_mut(&key) else {
                continue;
            };
            if !st.is_warm(&self.cfg, end) || st.active.contains_key(&Cond::Volume) {
                continue;
            }
            let Some(t) = window_test(st, &self.global.baseline, window, &self.cfg, gf, 0) else {
                continue;
            };
            // The fake-wave filter recognises a burst only after a few
            // members; until then they sit in the counts. An early signal
            // must hold on distinct negatives alone (no shared author, no
            // near-duplicate text); otherwise the close decides.
            let distinct = distinct_negatives(st, window, self.cfg.spam.near_dup_similarity);
            if stats::poisson_sf(distinct as u64, t.evidence.expected) < self.cfg.thresholds.p_volume {
                st.active.insert(
                    Cond::Volume,
                    Active {
                        last_true: end,
                        kind: t.kind,
                    },
                );
                out.push(build_signal(t.kind, &key, st, window, t.evidence, None, &self.terms));
            }
        }
    }
}

impl Detector {
    /// Early firing of the cluster CUSUM: for the cluster each key put this
    /// negative in, the members of the steps not evaluated yet are added to
    /// its run, against a whole step's expectation; when that crosses the
    /// decision interval (with enough distinct members) the emerging issue
    /// is reported now rather than at the step's end. The onset / clear
    /// logic dedups it with the evaluation at the end.
    pub(crate) fn early_cluster(&mut self, ev: &ScoredEvent, seq: u64, out: &mut Vec<Signal>) {
        let Some(next) = self.next_eval else {
            return;
        };
        let cfg = &self.cfg;
        let th = cfg.thresholds;
        let step = cfg.step;
        let open = Span {
            start: next.saturating_sub(step),
            end: next,
        };
        if ev.event.event_time < open.start {
            return;
        }
        let gf = global_factor(&self.global, Span::ending_at(next, HOUR), step);
        for r in 0..cfg.rollups.len() {
            let Some(key) = key_for(ev, &cfg.rollups[r]) else {
                continue;
            };
            let Some(st) = self.keys.get_mut(&key) else {
                continue;
            };
            if !st.is_warm(cfg, next) {
                continue;
            }
            let Some(id) = st.recent.back().filter(|x| x.seq == seq).and_then(|x| x.cluster) else {
                continue;
            };
            if st.active.contains_key(&Cond::Cluster(id)) {
                continue;
            }
            let m = expected_negatives(st, &self.global.baseline, open, cfg, gf);
            let Some(c) = st.clusters.items.iter().find(|c| c.id == id) else {
                continue;
            };
            if !c.watched(next, th.cluster_cusum_youth) {
                continue;
            }
            let k: u32 = c
                .counts
                .range(bucket_of(open.start, step), i64::MAX)
                .map(|(_, x)| *x)
                .sum();
            let q = c.usual_share(th.cluster_prior_items, th.baseline_z);
            let run = c
                .run
                .advance(k, q * m, th.cluster_cusum_ratio, 2.0 * th.cluster_cusum_h, open.start);
            if run.cusum < th.cluster_cusum_h || run.observed < th.min_cluster_count {
                continue;
            }
            let window = Span {
                start: run.from,
                end: ev.event.event_time.saturating_add(1).max(next),
            };
            if distinct_members(st, window, Some(id), cfg.spam.near_dup_similarity) < th.min_cluster_count {
                continue;
            }
            let population = range_counts(&st.buckets, window.start, window.end, step).neg;
            let evidence = run_evidence(&run, population, q);
            st.active.insert(
                Cond::Cluster(id),
                Active {
                    last_true: next,
                    kind: SignalKind::EmergingIssue,
                },
            );
            out.push(build_signal(
                SignalKind::EmergingIssue,
                &key,
                st,
                window,
                evidence,
                Some(id),
                &self.terms,
            ));
        }
    }
}

/// After members moved into the cluster `id` just founded (see
/// [`crate::cluster::Clusters::adopt`]): replays its CUSUM over the steps
/// already evaluated from the one holding `from`, as their closes would
/// have advanced it had the cluster existed (each step's expectation scaled
/// by the current traffic factor). The open step is left to the usual
/// evaluation, early or at its close.
pub(crate) fn replay_run(
    st: &mut KeyState,
    global: &KeyState,
    id: u64,
    from: EventTime,
    next_eval: Option<EventTime>,
    cfg: &DetectConfig,
) {
    let Some(next) = next_eval else {
        return;
    };
    let (step, th) = (cfg.step, cfg.thresholds);
    let open = bucket_of(next.saturating_sub(step), step);
    let first = bucket_of(from, step);
    if first >= open {
        return;
    }
    let gf = global_factor(global, Span::ending_at(next, HOUR), step);
    let expected: Vec<(i64, f64)> = (first..open)
        .map(|b| {
            let start = b.saturating_mul(step);
            let span = Span {
                start,
                end: start.saturating_add(step),
            };
            (start, expected_negatives(st, &global.baseline, span, cfg, gf))
        })
        .collect();
    let Some(c) = st.clusters.get_mut(id) else {
        return;
    };
    let q = c.usual_share(th.cluster_prior_items, th.baseline_z);
    let mut run = Run::default();
    for (start, m) in expected {
        let k = c.counts.get(bucket_of(start, step)).copied().unwrap_or(0);
        run = run.advance(k, q * m, th.cluster_cusum_ratio, 2.0 * th.cluster_cusum_h, start);
    }
    c.run = run;
}
