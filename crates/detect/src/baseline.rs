//! The hourly fold: closed hours of event time go into the baselines.
//!
//! An hour is closed once the window end being evaluated is past it by the
//! fold lateness (`fold_lateness`, 10 min by default) plus the
//! out-of-orderness. An accepted event that lands in a closed hour later
//! (up to `allowed_lateness`, 6 h) does not reopen it: it corrects the
//! baseline level as if the hour had held it ([`Baseline::correct`]) and
//! is added to the next hour folded for the drift CUSUMs (their increments
//! are sums over items, so an item counted an hour or a few late moves the
//! statistic by about what it would have on time; cluster shares, the
//! seasonal shape and the global traffic factors of past hours are not
//! corrected). The global baseline (all keys) is folded first: every key
//! falls back to its seasonal shape, and its traffic factor per hour scales
//! the keys' expectations. Each key then folds, hour by hour: the share
//! CUSUM (slow drifts of the negative share), its clusters' usual shares,
//! the dispersion estimates (how bursty its negatives are, per step and per
//! hour, and how much one hour's excess carries into the next), the CUSUM
//! of negative volume (slow drifts of volume, negative binomial with that
//! dispersion) and finally its own baseline.
//!
//! Work per fold is bounded whatever the event times: over an idle stretch
//! (no items at all) longer than [`max_idle_fold_hours`], only its last hours
//! are folded; by then the EWMA memory has forgotten the rest anyway. A
//! watermark jump to an absurd event time (year 9999, `i64::MAX / 2`) thus
//! costs O(baseline memory), not O(gap).

use std::collections::BTreeMap;

use earshot_core::types::{EventTime, Signal, SignalKey, SignalKind};

use crate::evaluate::Cond;
use crate::explain::{build_signal, Evidence};
use crate::key::{hour_counts, range_counts, Counts, KeyState};
use crate::stats::{self, Baseline, Expected};
use crate::terms::TermStats;
use crate::window::{Buckets, Span};
use crate::{hour_of, DetectConfig, HOUR};

/// Hours of global traffic factors kept for the keys' volume CUSUM.
const GLOBAL_FACTOR_HOURS: usize = 48;

/// Longest a cluster's share is held while its CUSUM runs.
const CLUSTER_MAX_HOLD: i64 = 6 * HOUR;

/// Hours of an idle stretch that are folded at most: four baseline
/// memories, and at least four weeks (so every hour of the week is folded,
/// and every short-lived state, like the last 48 global factors or a
/// 72-hour drift run, sees the same hours as an hour-by-hour fold).
pub(crate) fn max_idle_fold_hours(cfg: &DetectConfig) -> i64 {
    (cfg.baseline_memory / HOUR).saturating_mul(4).max(4 * 7 * 24)
}

/// The hour to fold next, given that hour `h` is next in order: the same
/// `h`, unless `h` lies in the idle stretch after the last bucket of
/// `buckets` and more than `max_idle` hours of it remain before
/// `fold_until`; then the hour `max_idle` before `fold_until`.
fn resume_at(h: i64, fold_until: i64, buckets: &Buckets<Counts>, per_hour: i64, max_idle: i64) -> i64 {
    if fold_until.saturating_sub(h) <= max_idle {
        return h;
    }
    // Buckets at or after `first + len` hold no items.
    let idle_from = if buckets.is_empty() {
        i64::MIN
    } else {
        let last = buckets.first_index().saturating_add(buckets.len() as i64 - 1);
        last.div_euclid(per_hour.max(1)).saturating_add(1)
    };
    if h >= idle_from {
        h.max(fold_until.saturating_sub(max_idle))
    } else {
        h
    }
}

/// Expected counts in `[start, end)` under the seasonal baseline `b` (with
/// `global` as its fallback shape), hour segment by hour segment.
pub(crate) fn expected(b: &Baseline, global: &Baseline, window: Span) -> Expected {
    let Span { start, end } = window;
    let mut t = start;
    let (mut n, mut k) = (0.0, 0.0);
    while t < end {
        let h = hour_of(t);
        let seg_end = h.saturating_add(1).saturating_mul(HOUR).min(end);
        let e = b.expected(h, (seg_end - t) as f64 / HOUR as f64, Some(global));
        n += e.total;
        k += e.neg;
        t = seg_end;
    }
    Expected { total: n, neg: k }
}

/// Lower confidence bound (about two standard errors) of observed /
/// expected counts, at least 1: how much more traffic than the baseline
/// there certainly was.
pub(crate) fn traffic_factor(observed: u32, expected: f64) -> f64 {
    traffic_factor_z(observed, expected, 2.0)
}

/// [`traffic_factor`] at `z` standard errors (the global count is large
/// and is trusted at one).
pub(crate) fn traffic_factor_z(observed: u32, expected: f64, z: f64) -> f64 {
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

/// Folds the closed hours before `fold_until` into the global baseline and
/// records each hour's traffic factor of non-negative items.
pub(crate) fn fold_global(
    global: &mut KeyState,
    hour_factor: &mut BTreeMap<i64, f64>,
    fold_until: i64,
    cfg: &DetectConfig,
) {
    let per_hour = HOUR / cfg.step;
    let max_idle = max_idle_fold_hours(cfg);
    let Some(mut h) = global.next_fold else {
        return;
    };
    if h < fold_until {
        // Late items corrected the global baseline already; it has no CUSUMs.
        global.late_pending = Counts::default();
    }
    while h < fold_until {
        h = resume_at(h, fold_until, &global.buckets, per_hour, max_idle);
        let c = hour_counts(&global.buckets, h, per_hour);
        let g = &global.baseline;
        let f = if g.hours >= 24 {
            let e = g.expected(h, 1.0, Some(g));
            traffic_factor_z(c.total - c.neg, e.non_negative(), 0.0)
        } else {
            1.0
        };
        hour_factor.insert(h, f);
        while hour_factor.len() > GLOBAL_FACTOR_HOURS {
            hour_factor.pop_first();
        }
        global.baseline.fold(h, c.total as f64, c.neg as f64, None);
        h += 1;
    }
    global.next_fold = Some(h);
}

/// What folding a key reads besides the key itself.
pub(crate) struct FoldContext<'a> {
    pub(crate) cfg: &'a DetectConfig,
    pub(crate) global: &'a Baseline,
    pub(crate) global_hour_factor: &'a BTreeMap<i64, f64>,
    pub(crate) terms: &'a TermStats,
}

/// Folds the key's closed hours before `fold_until`: drift CUSUMs (slow
/// drifts are pushed to `out`), cluster shares and the baseline.
pub(crate) fn fold_key(
    key: &SignalKey,
    st: &mut KeyState,
    fold_until: i64,
    ctx: &FoldContext<'_>,
    out: &mut Vec<Signal>,
) {
    let per_hour = HOUR / ctx.cfg.step;
    let max_idle = max_idle_fold_hours(ctx.cfg);
    let Some(mut h) = st.next_fold else {
        return;
    };
    while h < fold_until {
        h = resume_at(h, fold_until, &st.buckets, per_hour, max_idle);
        fold_hour(key, st, h, ctx, out);
        h += 1;
    }
    st.next_fold = Some(h);
}

/// Closes hour `h` of one key.
fn fold_hour(key: &SignalKey, st: &mut KeyState, h: i64, ctx: &FoldContext<'_>, out: &mut Vec<Signal>) {
    let cfg = ctx.cfg;
    let per_hour = HOUR / cfg.step;
    let c = hour_counts(&st.buckets, h, per_hour);
    // The drift CUSUMs also take the items that arrived after their own
    // hour was folded (the baseline was corrected for them already).
    let late = std::mem::take(&mut st.late_pending);
    let (n, k_all) = (c.total.saturating_add(late.total), c.neg.saturating_add(late.neg));
    // Residuals against the share's upper bound of one standard error, so
    // estimation noise does not drift.
    let p0 = stats::inflate_share(st.baseline.neg_share(), st.baseline.evidence_total(), 1.0);
    let warm = st.has_baseline_history(cfg);
    if warm && n > 0 {
        share_cusum(key, st, h, n, k_all, p0, ctx, out);
    }
    // Cluster shares (not while a cluster's CUSUM is half way to an alarm).
    let k = c.neg;
    let hold = cfg.thresholds.cluster_cusum_h / 2.0;
    for cl in st.clusters.items.iter_mut() {
        let from = h.saturating_mul(per_hour);
        let kc: u32 = cl
            .counts
            .range(from, h.saturating_add(1).saturating_mul(per_hour))
            .map(|(_, x)| *x)
            .sum();
        cl.learn_share(kc, k, hour_end(h), hold, CLUSTER_MAX_HOLD);
    }
    let k_fold = volume_cusum(key, st, h, n, k_all, p0, warm, ctx, out);
    // The fold learns this hour's own negatives, held to the expectation
    // while a volume drift builds up; what is held back is held back as
    // items too (not learned as traffic), so the share stays as it was.
    let k_own = (c.neg as f64).min(k_fold);
    let held = c.neg as f64 - k_own;
    st.baseline.fold(h, c.total as f64 - held, k_own, Some(ctx.global));
}

/// Folds hour `h` into the key's dispersion estimates: its negatives
/// against `mu` (the traffic-adjusted seasonal expectation), and each
/// step's against its part of `mu`.
fn observe_dispersion(st: &mut KeyState, h: i64, k: u32, mu: f64, cfg: &DetectConfig) {
    let per_hour = (HOUR / cfg.step).max(1);
    let memory = (cfg.baseline_memory / HOUR).max(1) as f64;
    let var = mu + st.disp_hour.estimate() * mu * mu;
    st.persistence.observe((k as f64 - mu) / var.sqrt(), memory);
    st.disp_hour.observe(k as f64, mu, memory);
    let mu_step = mu / per_hour as f64;
    let from = h.saturating_mul(per_hour);
    for b in from..from.saturating_add(per_hour) {
        let x = st.buckets.get(b).map_or(0, |c| c.neg);
        st.disp_step.observe(x as f64, mu_step, memory * per_hour as f64);
    }
}

/// The share CUSUM: items are batched (`cusum_batch`) into near-normal
/// residuals of the negative share against `p0`.
#[allow(clippy::too_many_arguments)]
fn share_cusum(
    key: &SignalKey,
    st: &mut KeyState,
    h: i64,
    n: u32,
    k: u32,
    p0: f64,
    ctx: &FoldContext<'_>,
    out: &mut Vec<Signal>,
) {
    let th = ctx.cfg.thresholds;
    st.cusum_acc.total += n;
    st.cusum_acc.neg += k;
    if st.cusum_acc.total < th.cusum_batch {
        return;
    }
    let batch = std::mem::take(&mut st.cusum_acc);
    let z = stats::share_residual(batch.neg as f64, batch.total as f64, p0);
    if st.cusum.s == 0.0 {
        st.drift_from = h;
    }
    let s = st.cusum.s + z - th.cusum_k;
    let fire = st.cusum.push(z, th.cusum_k, th.cusum_h);
    let w_end = hour_end(h);
    if fire && drift_cooled(st, w_end) {
        st.last_drift = Some(w_end);
        let window = Span {
            start: st.drift_from.saturating_mul(HOUR),
            end: w_end,
        };
        let c = range_counts(&st.buckets, window.start, window.end, ctx.cfg.step);
        let evidence = Evidence {
            observed: c.neg,
            expected: c.total as f64 * p0,
            population: c.total,
            baseline_share: p0,
            p_value: (-s).exp(),
        };
        out.push(build_signal(
            SignalKind::SlowDrift,
            key,
            st,
            window,
            evidence,
            None,
            ctx.terms,
        ));
    }
}

/// CUSUM of negative volume (slow drifts): the log-likelihood ratio of rate
/// `r × mu` against `mu`, with `mu` the seasonal expectation scaled by the
/// traffic factor, negative binomial with the key's hourly dispersion and
/// multiplied by what an hour's evidence is worth given their
/// autocorrelation (Poisson and 1 on Poisson traffic), so a bursty key's
/// news day is not a drift while a sustained level shift still is. A run
/// that crosses while the key's volume spike still fires is spent silently
/// (that excess is reported already). While a run builds up, the baseline does not learn
/// the excess (for at most three days), so a drift is not absorbed before it
/// is detected. Returns the negatives to fold into the baseline.
#[allow(clippy::too_many_arguments)]
fn volume_cusum(
    key: &SignalKey,
    st: &mut KeyState,
    h: i64,
    n: u32,
    k: u32,
    p0: f64,
    warm: bool,
    ctx: &FoldContext<'_>,
    out: &mut Vec<Signal>,
) -> f64 {
    let th = ctx.cfg.thresholds;
    let e = st.baseline.expected(h, 1.0, Some(ctx.global));
    let ek = stats::inflate(e.neg, st.baseline.evidence_neg(), th.baseline_z).max(th.min_expected_per_hour);
    let gf = ctx.global_hour_factor.get(&h).copied().unwrap_or(1.0);
    // The point estimate of the key's traffic factor: the CUSUM sums many
    // hours, and a lower bound would bias every hour of a traffic surge
    // towards "more negatives than expected".
    let mu = ek * shrunk_traffic_factor(n - k, e.total - ek, gf);
    let mut k_fold = k as f64;
    // The dispersion learns from every hour once the expectation has a
    // level, against the expectation without the estimation-error margin
    // (its clipping bounds what one outburst teaches it). Its error is
    // prediction error the tests face too: a profile still learning a
    // strong daily rhythm counts, on a key busy enough to tell.
    let c2 = st.disp_hour.c2(th.baseline_z);
    let worth = st.persistence.evidence_factor(th.baseline_z);
    let mu_plain = e.neg * shrunk_traffic_factor(n - k, e.non_negative(), gf);
    if st.baseline.hours > 0 && mu_plain > 0.0 {
        observe_dispersion(st, h, k, mu_plain, ctx.cfg);
    }
    if !warm {
        return k_fold;
    }
    if st.vcusum == 0.0 {
        st.vdrift_from = h;
        st.vrun = Default::default();
        st.vfired = false;
    }
    let r = th.drift_ratio;
    // Negative-binomial evidence with the key's dispersion, discounted for
    // hours that are not independent (both 1 on Poisson traffic).
    st.vcusum = (st.vcusum + worth * stats::nb_llr(k as f64, mu, r, c2)).clamp(0.0, 2.0 * th.drift_h);
    st.vrun.observed += k;
    st.vrun.expected += mu;
    let w_end = hour_end(h);
    if st.vcusum > th.drift_h && !st.vfired {
        st.vfired = true;
        // A volume spike of this key still firing is this excess already
        // reported: the drift run is spent without a second alert.
        if drift_cooled(st, w_end) && !st.active.contains_key(&Cond::Volume) {
            st.last_drift = Some(w_end);
            let window = Span {
                start: st.vdrift_from.saturating_mul(HOUR),
                end: w_end,
            };
            let c = range_counts(&st.buckets, window.start, window.end, ctx.cfg.step);
            let run = st.vrun;
            let evidence = Evidence {
                observed: run.observed,
                expected: run.expected,
                population: c.total,
                baseline_share: p0,
                p_value: stats::nb_sf(run.observed as u64, run.expected, c2),
            };
            out.push(build_signal(
                SignalKind::SlowDrift,
                key,
                st,
                window,
                evidence,
                None,
                ctx.terms,
            ));
        }
    }
    if st.vcusum > th.drift_h / 2.0 && h.saturating_sub(st.vdrift_from) < 72 {
        k_fold = k_fold.min(mu);
    }
    k_fold
}

/// End of hour `h` (saturating).
fn hour_end(h: i64) -> EventTime {
    h.saturating_add(1).saturating_mul(HOUR)
}

/// No slow drift of this key was reported in the day before `w_end`.
fn drift_cooled(st: &KeyState, w_end: EventTime) -> bool {
    st.last_drift.is_none_or(|d| w_end.saturating_sub(d) >= 24 * HOUR)
}
