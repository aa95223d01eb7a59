//! Exact tail probabilities, an EWMA seasonal baseline and a one-sided CUSUM.
//!
//! Everything is deterministic `f64` arithmetic on counts; nothing here knows
//! about keys, windows or wall clocks.

/// `ln(n!)`: exact sum for small `n`, Stirling series beyond.
pub fn ln_factorial(n: u64) -> f64 {
    if n < 2 {
        return 0.0;
    }
    if n <= 64 {
        // Cumulative sums in the same order as summing ln 2..=n each time,
        // so the values are bit-identical; the tail tests call this in loops.
        static TABLE: std::sync::OnceLock<[f64; 65]> = std::sync::OnceLock::new();
        let table = TABLE.get_or_init(|| {
            let mut t = [0.0f64; 65];
            for i in 2..65 {
                t[i] = t[i - 1] + (i as f64).ln();
            }
            t
        });
        return table[n as usize];
    }
    let x = n as f64;
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x) - 1.0 / (360.0 * x * x * x)
}

fn ln_poisson_pmf(k: u64, mu: f64) -> f64 {
    -mu + k as f64 * mu.ln() - ln_factorial(k)
}

/// `P(X >= k)` for `X ~ Poisson(mu)`, exact (summed term by term).
pub fn poisson_sf(k: u64, mu: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if mu <= 0.0 {
        return 0.0;
    }
    if (k as f64) > mu {
        // Terms decrease from k on: sum the upper tail directly.
        let mut term = ln_poisson_pmf(k, mu).exp();
        let mut sum = 0.0;
        let mut i = k;
        while term > sum * 1e-17 && term > 0.0 {
            sum += term;
            i += 1;
            term *= mu / i as f64;
        }
        sum.min(1.0)
    } else {
        let lower: f64 = (0..k).map(|i| ln_poisson_pmf(i, mu).exp()).sum();
        (1.0 - lower).clamp(0.0, 1.0)
    }
}

fn ln_binom_pmf(k: u64, n: u64, p: f64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k) + k as f64 * p.ln() + (n - k) as f64 * (1.0 - p).ln()
}

/// `P(X >= k)` for `X ~ Binomial(n, p)`, exact (summed term by term).
pub fn binomial_sf(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    if (k as f64) > n as f64 * p {
        let mut term = ln_binom_pmf(k, n, p).exp();
        let mut sum = 0.0;
        let mut i = k;
        let odds = p / (1.0 - p);
        while i <= n && term > sum * 1e-17 && term > 0.0 {
            sum += term;
            term *= (n - i) as f64 / (i + 1) as f64 * odds;
            i += 1;
        }
        sum.min(1.0)
    } else {
        let lower: f64 = (0..k).map(|i| ln_binom_pmf(i, n, p).exp()).sum();
        (1.0 - lower).clamp(0.0, 1.0)
    }
}

/// How the seasonal profile is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seasonality {
    HourOfDay,
    HourOfWeek,
}

impl Seasonality {
    pub fn slots(self) -> usize {
        match self {
            Seasonality::HourOfDay => 24,
            Seasonality::HourOfWeek => 168,
        }
    }

    /// Slot of an hour counted from the epoch (1970-01-01 was a Thursday;
    /// slot 0 of the week is Monday 00:00 UTC).
    pub fn slot(self, hour: i64) -> usize {
        match self {
            Seasonality::HourOfDay => hour.rem_euclid(24) as usize,
            Seasonality::HourOfWeek => (hour + 72).rem_euclid(168) as usize,
        }
    }

    /// Hours of history before a key's own profile replaces the global one
    /// (a week of days, or three weeks of weeks).
    pub fn own_profile_after_hours(self) -> u64 {
        match self {
            Seasonality::HourOfDay => 7 * 24,
            Seasonality::HourOfWeek => 3 * 168,
        }
    }
}

/// Expected counts under a baseline: all items, and negatives.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Expected {
    pub total: f64,
    pub neg: f64,
}

impl Expected {
    /// Expected non-negative items.
    pub fn non_negative(self) -> f64 {
        self.total - self.neg
    }
}

/// Seasonal EWMA baseline of hourly totals and negatives.
///
/// Model: `count(h) ≈ level × shape[slot(h)]`, the shape averaging 1 over a
/// cycle. The level is an EWMA of de-seasonalised hourly counts (a plain
/// mean while history is shorter than the EWMA memory); each slot of the
/// shape is an EWMA of `count / level`. Negatives share the total's shape.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub seasonality: Seasonality,
    shape: Vec<f64>,
    /// Per-slot observation count (the shape is trusted after a few).
    level_total: f64,
    level_neg: f64,
    /// Hours folded in.
    pub hours: u64,
    alpha: f64,
    beta: f64,
}

impl Baseline {
    /// `memory_hours`: EWMA memory of the level; `shape_memory_cycles`: of
    /// the profile, in cycles.
    pub fn new(seasonality: Seasonality, memory_hours: f64, shape_memory_cycles: f64) -> Self {
        Self {
            seasonality,
            shape: vec![1.0; seasonality.slots()],
            level_total: 0.0,
            level_neg: 0.0,
            hours: 0,
            alpha: 1.0 / memory_hours.max(1.0),
            beta: 1.0 / shape_memory_cycles.max(1.0),
        }
    }

    /// The profile value for an hour: the own shape once history is long
    /// enough, else `fallback` (the global shape), else flat.
    pub fn shape_at(&self, hour: i64, fallback: Option<&Baseline>) -> f64 {
        let slot = self.seasonality.slot(hour);
        if self.hours >= self.seasonality.own_profile_after_hours() {
            return self.shape[slot];
        }
        match fallback {
            Some(g) if g.hours >= 48 && g.seasonality == self.seasonality => g.shape[slot],
            _ => 1.0,
        }
    }

    /// Folds one closed hour in.
    pub fn fold(&mut self, hour: i64, total: f64, neg: f64, fallback: Option<&Baseline>) {
        let s = self.shape_at(hour, fallback).max(0.05);
        let a = self.alpha.max(1.0 / (self.hours as f64 + 1.0));
        let prev_level = self.level_total;
        let (x_total, x_neg) = self.clipped(total, neg, s);
        self.level_total += a * (x_total - self.level_total);
        self.level_neg += a * (x_neg - self.level_neg);
        if prev_level > 0.0 && self.hours >= 24 {
            let slot = self.seasonality.slot(hour);
            let ratio = (total / prev_level).min(10.0);
            self.shape[slot] += self.beta * (ratio - self.shape[slot]);
            let mean = self.shape.iter().sum::<f64>() / self.shape.len() as f64;
            if mean > 0.0 {
                for v in &mut self.shape {
                    *v /= mean;
                }
            }
        }
        self.hours += 1;
    }

    /// De-seasonalised hourly counts (`total`, `neg` over shape `s`), robust:
    /// once a day of history exists, an hour counts at most three times the
    /// expected level (an outburst must not teach the baseline that
    /// outbursts are normal, nor distort the share after).
    fn clipped(&self, total: f64, neg: f64, s: f64) -> (f64, f64) {
        let (mut x_total, mut x_neg) = (total / s, neg / s);
        // The slack of three items is in raw counts (divided by the shape):
        // in a quiet hour a single item is a large deseasonalised value, and
        // clipping it there would bias the level, and the share, low.
        if self.hours >= 24 && self.level_total > 0.0 {
            let cap = 3.0 * self.level_total + 3.0 / s;
            if x_total > cap {
                let f = cap / x_total;
                x_total *= f;
                x_neg *= f;
            }
            x_neg = x_neg.min(3.0 * self.level_neg + 3.0 / s);
        }
        (x_total, x_neg)
    }

    /// Hour `hour` was folded with counts `before` (items, negatives) and now
    /// holds `after` (items that arrived late): corrects the level as if the
    /// fold had seen `after`. The difference of the two inputs, each clipped
    /// like a fold's (so a late outburst is capped as an on-time one would
    /// be), is weighted as that hour's input weighs now: `1 / hours` while
    /// the level is a plain mean, else `alpha` decayed over the `since` hours
    /// folded after it. The seasonal shape and the hour count stay as they
    /// are. Nothing happens before the first fold.
    pub fn correct(
        &mut self,
        hour: i64,
        since: u64,
        before: (f64, f64),
        after: (f64, f64),
        fallback: Option<&Baseline>,
    ) {
        if self.hours == 0 {
            return;
        }
        let s = self.shape_at(hour, fallback).max(0.05);
        let mean_weight = 1.0 / self.hours as f64;
        let w = if mean_weight > self.alpha {
            mean_weight
        } else {
            let decay = (1.0 - self.alpha).powi(i32::try_from(since).unwrap_or(i32::MAX));
            self.alpha * decay
        };
        let (t0, n0) = self.clipped(before.0, before.1, s);
        let (t1, n1) = self.clipped(after.0, after.1, s);
        self.level_total += w * (t1 - t0);
        self.level_neg += w * (n1 - n0);
    }

    /// Expected count of items and negatives for `fraction` of hour `hour`.
    pub fn expected(&self, hour: i64, fraction: f64, fallback: Option<&Baseline>) -> Expected {
        let s = self.shape_at(hour, fallback) * fraction;
        Expected {
            total: self.level_total * s,
            neg: self.level_neg * s,
        }
    }

    /// Long-run negative share.
    pub fn neg_share(&self) -> f64 {
        if self.level_total > 0.0 {
            (self.level_neg / self.level_total).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Items the level estimate rests on (for its relative error):
    /// hourly negatives times the EWMA memory in hours.
    pub fn evidence_neg(&self) -> f64 {
        self.level_neg * (self.hours as f64).min(1.0 / self.alpha)
    }

    pub fn evidence_total(&self) -> f64 {
        self.level_total * (self.hours as f64).min(1.0 / self.alpha)
    }
}

/// Inflates an estimated rate by `z` standard errors of its estimate
/// (relative error `1/sqrt(evidence)`), so that a baseline learned from few
/// items does not make ordinary counts look extreme.
pub fn inflate(mu: f64, evidence: f64, z: f64) -> f64 {
    mu * (1.0 + z / (evidence + 1.0).sqrt())
}

/// Upper confidence bound of a share estimated from `evidence` items.
pub fn inflate_share(p: f64, evidence: f64, z: f64) -> f64 {
    (p + z * (p * (1.0 - p) / (evidence + 1.0)).sqrt()).min(0.999)
}

/// One-sided upper CUSUM on standardised residuals: `S = max(0, S + z - k)`,
/// alarm when `S > h`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cusum {
    pub s: f64,
}

impl Cusum {
    /// Adds a residual; returns true when the statistic crosses `h` (and
    /// resets it, so the next alarm needs fresh evidence).
    pub fn push(&mut self, z: f64, k: f64, h: f64) -> bool {
        self.s = (self.s + z - k).max(0.0);
        if self.s > h {
            self.s = 0.0;
            true
        } else {
            false
        }
    }
}

/// Standardised residual of `k` negatives out of `n` against share `p`.
pub fn share_residual(k: f64, n: f64, p: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let p = p.clamp(0.01, 0.99);
    (k - n * p) / (n * p * (1.0 - p)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use earshot_core::rng::Rng;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn poisson_tail_matches_closed_forms() {
        // P(X >= 5 | 2) = 1 - 7 e^-2.
        assert!(close(poisson_sf(5, 2.0), 1.0 - 7.0 * (-2.0f64).exp(), 1e-10));
        assert!(close(poisson_sf(1, 0.5), 1.0 - (-0.5f64).exp(), 1e-12));
        // Far tail: P(X >= 20 | 1) ~ e^-1 / 20! (1 + 1/21 + ...).
        let t = poisson_sf(20, 1.0);
        let first = (-1.0f64).exp() / (2..=20).map(|i| i as f64).product::<f64>();
        assert!(t > first && t < first * 1.06, "{t} vs {first}");
        assert_eq!(poisson_sf(0, 3.0), 1.0);
        assert_eq!(poisson_sf(3, 0.0), 0.0);
        // Large mean: lower path, median near mu.
        let m = poisson_sf(1000, 1000.0);
        assert!((0.49..0.51).contains(&m), "{m}");
    }

    #[test]
    fn binomial_tail_matches_closed_forms() {
        assert!(close(binomial_sf(8, 10, 0.5), 56.0 / 1024.0, 1e-12));
        assert!(close(binomial_sf(10, 10, 0.1), 1e-10, 1e-9));
        assert!(close(binomial_sf(1, 3, 0.2), 1.0 - 0.8f64.powi(3), 1e-12));
        assert_eq!(binomial_sf(0, 5, 0.3), 1.0);
        assert_eq!(binomial_sf(6, 5, 0.3), 0.0);
    }

    #[test]
    fn ln_factorial_is_continuous_across_the_switch() {
        let exact: f64 = (2..=65u64).map(|i| (i as f64).ln()).sum();
        assert!((ln_factorial(65) - exact).abs() < 1e-9);
        // The table equals the direct sum bit for bit (n < 2 returns 0 before either).
        for n in 2..=64u64 {
            let direct: f64 = (2..=n).map(|i| (i as f64).ln()).sum();
            assert_eq!(ln_factorial(n).to_bits(), direct.to_bits(), "n = {n}");
        }
    }

    #[test]
    fn poisson_test_is_calibrated_on_poisson_data() {
        // The test at level 0.01 rejects at most ~1% of true-null samples
        // (discrete tests are conservative).
        let mut rng = Rng::new(11);
        for &mu in &[0.7, 3.0, 25.0] {
            let n = 20_000;
            let rejects = (0..n).filter(|_| poisson_sf(rng.poisson(mu), mu) < 0.01).count();
            assert!(rejects as f64 / (n as f64) < 0.0125, "mu={mu}: {rejects}");
        }
    }

    #[test]
    fn binomial_test_is_calibrated_on_binomial_data() {
        let mut rng = Rng::new(5);
        let (n, p) = (40u64, 0.2);
        let trials = 20_000;
        let rejects = (0..trials)
            .filter(|_| {
                let k = (0..n).filter(|_| rng.uniform() < p).count() as u64;
                binomial_sf(k, n, p) < 0.01
            })
            .count();
        assert!((rejects as f64 / trials as f64) < 0.0125, "{rejects}");
    }

    #[test]
    fn baseline_learns_level_share_and_daily_shape() {
        let mut b = Baseline::new(Seasonality::HourOfDay, 72.0, 5.0);
        let mut rng = Rng::new(3);
        for h in 0..(24 * 21) {
            let rate = 10.0 * (1.0 + 0.6 * ((h % 24) as f64 / 24.0 * std::f64::consts::TAU).sin());
            let total = rng.poisson(rate) as f64;
            let neg = (0..total as u64).filter(|_| rng.uniform() < 0.2).count() as f64;
            b.fold(h, total, neg, None);
        }
        assert!((b.neg_share() - 0.2).abs() < 0.05, "{}", b.neg_share());
        let peak = b.expected(24 * 21 + 6, 1.0, None).total;
        let trough = b.expected(24 * 21 + 18, 1.0, None).total;
        assert!(peak > 13.0 && trough < 7.0, "peak {peak} trough {trough}");
    }

    #[test]
    fn late_correction_matches_folding_the_items_in_their_hour() {
        // (hours folded, memory, corrected hour): the plain-mean regime and the EWMA one.
        for (hours, memory, late_hour) in [(10i64, 72.0, 5i64), (40, 10.0, 36)] {
            let mut on_time = Baseline::new(Seasonality::HourOfWeek, memory, 5.0);
            let mut corrected = on_time.clone();
            let mut uncorrected = on_time.clone();
            for h in 0..hours {
                let extra = if h == late_hour { 6.0 } else { 0.0 };
                on_time.fold(h, 20.0 + extra, 4.0 + extra, None);
                corrected.fold(h, 20.0, 4.0, None);
                uncorrected.fold(h, 20.0, 4.0, None);
            }
            corrected.correct(
                late_hour,
                (hours - 1 - late_hour) as u64,
                (20.0, 4.0),
                (26.0, 10.0),
                None,
            );
            let at = |b: &Baseline| b.expected(hours, 1.0, None);
            let (want, got, before) = (at(&on_time), at(&corrected), at(&uncorrected));
            assert!(close(got.neg, want.neg, 0.005), "{hours}: {} vs {}", got.neg, want.neg);
            assert!(
                close(got.total, want.total, 0.005),
                "{hours}: {} vs {}",
                got.total,
                want.total
            );
            assert!(
                !close(before.neg, want.neg, 0.05),
                "the late items matter: {}",
                before.neg
            );
        }
        // A late outburst is clipped like an on-time one.
        let mut on_time = Baseline::new(Seasonality::HourOfWeek, 10.0, 5.0);
        let mut corrected = on_time.clone();
        for h in 0..40 {
            let extra = if h == 36 { 200.0 } else { 0.0 };
            on_time.fold(h, 20.0 + extra, 4.0 + extra, None);
            corrected.fold(h, 20.0, 4.0, None);
        }
        let mut before = (20.0, 4.0);
        for _ in 0..200 {
            let after = (before.0 + 1.0, before.1 + 1.0);
            corrected.correct(36, 3, before, after, None);
            before = after;
        }
        // Each correction raises the level the cap is taken from a little,
        // so the clip is approximate: within 10 %, where unclipped
        // corrections would have added 200 negatives at weight 0.07 to a
        // level of 4.
        let (want, got) = (on_time.expected(40, 1.0, None), corrected.expected(40, 1.0, None));
        assert!(close(got.neg, want.neg, 0.1), "{} vs {}", got.neg, want.neg);
        // Nothing to correct before the first fold.
        let mut b = Baseline::new(Seasonality::HourOfDay, 72.0, 5.0);
        b.correct(3, 0, (0.0, 0.0), (5.0, 5.0), None);
        assert_eq!(b.expected(3, 1.0, None).total, 0.0);
    }

    #[test]
    fn cusum_stays_quiet_on_null_and_fires_on_shift() {
        let mut rng = Rng::new(9);
        let mut c = Cusum::default();
        let alarms = (0..5000).filter(|_| c.push(rng.normal(), 0.5, 8.0)).count();
        assert_eq!(alarms, 0);
        let mut c = Cusum::default();
        let first = (0..100).position(|_| c.push(1.5 + rng.normal(), 0.5, 8.0));
        assert!(matches!(first, Some(i) if i < 20), "{first:?}");
    }
}
