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

/// `ln Γ(x)` for `x > 0`: the Stirling series, after shifting `x` up to 10
/// with the recurrence `Γ(x + 1) = x Γ(x)` (absolute error below 1e-12).
pub fn ln_gamma(x: f64) -> f64 {
    let mut z = x;
    let mut shift = 0.0;
    while z < 10.0 {
        shift += z.ln();
        z += 1.0;
    }
    let z2 = z * z;
    let series =
        1.0 / (12.0 * z) - 1.0 / (360.0 * z * z2) + 1.0 / (1260.0 * z * z2 * z2) - 1.0 / (1680.0 * z * z2 * z2 * z2);
    (z - 0.5) * z.ln() - z + 0.5 * (2.0 * std::f64::consts::PI).ln() + series - shift
}

/// Regularised incomplete beta function `I_x(a, b)` for `a, b > 0`, from its
/// continued fraction (modified Lentz), on the side of `x` where it
/// converges fast; the other side through `I_x(a, b) = 1 - I_{1-x}(b, a)`.
/// Upper tails (`x` below the mean `a / (a + b)`) are computed directly, so
/// small values keep their relative precision.
pub fn beta_inc(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if x > (a + 1.0) / (a + b + 2.0) {
        return (1.0 - beta_inc_cf(b, a, 1.0 - x, (1.0 - x).ln(), x.ln())).clamp(0.0, 1.0);
    }
    beta_inc_cf(a, b, x, x.ln(), (1.0 - x).ln()).clamp(0.0, 1.0)
}

/// `I_x(a, b)` by the continued fraction, given `ln x` and `ln(1 - x)`
/// (callers that know them more precisely than `x` pass them).
fn beta_inc_cf(a: f64, b: f64, x: f64, ln_x: f64, ln_1mx: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-15;
    let front = (a * ln_x + b * ln_1mx - ln_gamma(a) - ln_gamma(b) + ln_gamma(a + b)).exp() / a;
    if front == 0.0 {
        return 0.0;
    }
    // f = 1 / (1 + d1 / (1 + d2 / (1 + ...))), evaluated forwards.
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut f = d;
    for m in 1..20_000 {
        let m = m as f64;
        let two_m = 2.0 * m;
        // Even step: d_{2m}.
        let num = m * (b - m) * x / ((a + two_m - 1.0) * (a + two_m));
        d = 1.0 + num * d;
        d = if d.abs() < TINY { 1.0 / TINY } else { 1.0 / d };
        c = 1.0 + num / c;
        if c.abs() < TINY {
            c = TINY;
        }
        f *= d * c;
        // Odd step: d_{2m+1}.
        let num = -(a + m) * (a + b + m) * x / ((a + two_m) * (a + two_m + 1.0));
        d = 1.0 + num * d;
        d = if d.abs() < TINY { 1.0 / TINY } else { 1.0 / d };
        c = 1.0 + num / c;
        if c.abs() < TINY {
            c = TINY;
        }
        let delta = d * c;
        f *= delta;
        if (delta - 1.0).abs() < EPS {
            break;
        }
    }
    front * f
}

/// `P(X >= k)` for a negative binomial (gamma-Poisson) count with mean `mu`
/// and variance `mu + c2 mu²` (`c2`: squared coefficient of variation of
/// the underlying rate). `c2 == 0` is the Poisson tail, bit for bit.
pub fn nb_sf(k: u64, mu: f64, c2: f64) -> f64 {
    if c2 <= 0.0 || !c2.is_finite() {
        return poisson_sf(k, mu);
    }
    if k == 0 {
        return 1.0;
    }
    if mu <= 0.0 {
        return 0.0;
    }
    // Size r = 1 / c2; each item a failure with probability q = mu / (mu + r):
    // P(X >= k) = I_q(k, r).
    let r = 1.0 / c2;
    let ln_den = (mu + r).ln();
    let (ln_q, ln_p) = (mu.ln() - ln_den, r.ln() - ln_den);
    let q = mu / (mu + r);
    let (a, b) = (k as f64, r);
    if q > (a + 1.0) / (a + b + 2.0) {
        return (1.0 - beta_inc_cf(b, a, 1.0 - q, ln_p, ln_q)).clamp(0.0, 1.0);
    }
    beta_inc_cf(a, b, q, ln_q, ln_p).clamp(0.0, 1.0)
}

/// Per-hour log-likelihood ratio of `k` counts at mean `ratio × mu` against
/// mean `mu`, negative binomial with squared coefficient of variation `c2`
/// (the Poisson ratio `k ln r - (r - 1) mu` when `c2 == 0`).
pub fn nb_llr(k: f64, mu: f64, ratio: f64, c2: f64) -> f64 {
    if c2 <= 0.0 || !c2.is_finite() {
        return k * ratio.ln() - (ratio - 1.0) * mu;
    }
    let s = 1.0 / c2;
    k * (ratio * (mu + s) / (ratio * mu + s)).ln() + s * ((mu + s) / (ratio * mu + s)).ln()
}

/// Largest squared coefficient of variation a key is credited with.
pub const MAX_C2: f64 = 25.0;

/// Residuals beyond this many standard deviations (under the current
/// estimate) are clipped before they enter the dispersion.
const DISPERSION_CLIP: f64 = 10.0;

/// Online estimate of how overdispersed counts are against their expected
/// values: `c2` in `Var(X) = mu + c2 mu²` (a gamma-Poisson, i.e. negative
/// binomial, model; 0 for Poisson counts).
///
/// Moment estimator: the mean of `(x - mu)² - x` (unbiased for `c2 mu²`)
/// over the mean of `mu²`, both a plain mean over the first `memory`
/// observations and an EWMA of that memory after. Each residual is clipped
/// at a few standard deviations under the current estimate, so one outburst
/// moves it a bounded amount (a run of them raises it step by step). What
/// callers use is a lower confidence bound ([`Dispersion::c2`]): only
/// overdispersion the evidence supports is credited, so Poisson traffic
/// keeps Poisson tails. Three `f64`s of state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Dispersion {
    excess: f64,
    mu2: f64,
    n: f64,
}

impl Dispersion {
    /// Folds in one count `x` whose expectation was `mu`.
    pub fn observe(&mut self, x: f64, mu: f64, memory: f64) {
        if !(mu > 0.0 && mu.is_finite() && x.is_finite()) {
            return;
        }
        let sd = (mu + self.estimate() * mu * mu).sqrt();
        let x = x.clamp((mu - DISPERSION_CLIP * sd).max(0.0), mu + DISPERSION_CLIP * sd);
        self.n = (self.n + 1.0).min(memory.max(1.0));
        let a = 1.0 / self.n;
        self.excess += a * ((x - mu).powi(2) - x - self.excess);
        self.mu2 += a * (mu * mu - self.mu2);
    }

    /// The point estimate of `c2` (0 to [`MAX_C2`]).
    pub fn estimate(&self) -> f64 {
        if self.mu2 > 0.0 {
            (self.excess / self.mu2).clamp(0.0, MAX_C2)
        } else {
            0.0
        }
    }

    /// `c2` less `z` standard errors of its estimate under Poisson counts
    /// (`sqrt(2 / (n mean(mu²)))`), at least 0.
    pub fn c2(&self, z: f64) -> f64 {
        if self.mu2 <= 0.0 || self.n <= 0.0 {
            return 0.0;
        }
        let se = (2.0 / (self.n * self.mu2)).sqrt();
        (self.estimate() - z * se).max(0.0)
    }
}

/// Online lag-1 autocorrelation of standardised hourly residuals: how much
/// of one hour's excess carries into the next (a news day lasts hours). A
/// CUSUM that adds hourly evidence treats hours as independent; with
/// autocorrelation `rho` the variance of a sum of many hours is
/// `(1 + rho) / (1 - rho)` times larger (AR(1)), so the evidence is worth
/// that much less ([`Persistence::evidence_factor`]). Four `f64`s of state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Persistence {
    prev: Option<f64>,
    cross: f64,
    square: f64,
    n: f64,
}

impl Persistence {
    /// Folds in the next residual (clipped to ±10).
    pub fn observe(&mut self, r: f64, memory: f64) {
        if !r.is_finite() {
            return;
        }
        let r = r.clamp(-10.0, 10.0);
        if let Some(p) = self.prev {
            self.n = (self.n + 1.0).min(memory.max(1.0));
            let a = 1.0 / self.n;
            self.cross += a * (r * p - self.cross);
            self.square += a * (0.5 * (r * r + p * p) - self.square);
        }
        self.prev = Some(r);
    }

    /// The autocorrelation less `z` standard errors (`1 / sqrt(n)` under
    /// independence), within [0, 0.9].
    pub fn rho(&self, z: f64) -> f64 {
        if self.square <= 0.0 || self.n <= 0.0 {
            return 0.0;
        }
        (self.cross / self.square - z / self.n.sqrt()).clamp(0.0, 0.9)
    }

    /// What one hour of evidence is worth in a sum of many: `(1 - rho) /
    /// (1 + rho)` (1 for independent hours).
    pub fn evidence_factor(&self, z: f64) -> f64 {
        let rho = self.rho(z);
        (1.0 - rho) / (1.0 + rho)
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

/// Upper confidence bound of a share estimated from `evidence` items (at
/// most 1: a key whose every item is negative has no room to shift).
pub fn inflate_share(p: f64, evidence: f64, z: f64) -> f64 {
    (p + z * (p * (1.0 - p) / (evidence + 1.0)).sqrt()).min(1.0)
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
/// The share is taken at least 0.01 and, in the variance only, at most
/// 0.99: a share at its expected value, 1 included, gives 0 (a key whose
/// every item is negative does not drift by staying so).
pub fn share_residual(k: f64, n: f64, p: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let p = p.clamp(0.01, 1.0);
    let v = p.min(0.99);
    (k - n * p) / (n * v * (1.0 - v)).sqrt()
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
    fn ln_gamma_matches_factorials_and_half_integers() {
        for n in 1..40u64 {
            assert!((ln_gamma(n as f64 + 1.0) - ln_factorial(n)).abs() < 1e-10, "n = {n}");
        }
        // Γ(1/2) = sqrt(pi).
        assert!((ln_gamma(0.5) - 0.5 * std::f64::consts::PI.ln()).abs() < 1e-12);
    }

    #[test]
    fn incomplete_beta_matches_the_binomial_sum() {
        // I_x(a, b) for integers is P(Binomial(a + b - 1, x) >= a).
        for &(a, b, x) in &[(2u64, 3u64, 0.4), (1, 1, 0.3), (5, 2, 0.9), (7, 9, 0.2)] {
            let n = a + b - 1;
            let want = binomial_sf(a, n, x);
            let got = beta_inc(a as f64, b as f64, x);
            assert!(close(got, want, 1e-10), "I_{x}({a}, {b}) = {got}, want {want}");
        }
        assert!(close(beta_inc(2.0, 3.0, 0.4), 0.5248, 1e-12));
    }

    #[test]
    fn negative_binomial_tail_matches_closed_forms() {
        // Size 1 (c2 = 1) is geometric: P(X >= k) = q^k, q = mu / (mu + 1).
        for &(k, mu) in &[(1u64, 0.5), (5, 3.0), (40, 20.0), (400, 20.0)] {
            let q: f64 = mu / (mu + 1.0);
            assert!(close(nb_sf(k, mu, 1.0), q.powi(k as i32), 1e-9), "k={k} mu={mu}");
        }
        // Size 2: pmf(j) = (j + 1) p² q^j, summed.
        let (mu, r) = (7.0, 2.0);
        let (p, q) = (r / (mu + r), mu / (mu + r));
        for k in [1u64, 3, 10, 60] {
            let lower: f64 = (0..k).map(|j| (j + 1) as f64 * p * p * q.powi(j as i32)).sum();
            assert!(close(nb_sf(k, mu, 0.5), 1.0 - lower, 1e-9), "k={k}");
        }
        assert_eq!(nb_sf(0, 5.0, 0.3), 1.0);
        assert_eq!(nb_sf(3, 0.0, 0.3), 0.0);
    }

    #[test]
    fn negative_binomial_without_dispersion_is_the_poisson_tail_exactly() {
        for &(k, mu) in &[(0u64, 1.0), (3, 0.2), (12, 3.5), (700, 500.0)] {
            assert_eq!(nb_sf(k, mu, 0.0).to_bits(), poisson_sf(k, mu).to_bits());
        }
        let poisson = 30.0 * 3f64.ln() - 2.0 * 10.0;
        assert_eq!(nb_llr(30.0, 10.0, 3.0, 0.0), poisson);
        // A tiny dispersion is close to Poisson, a real one is far wider.
        assert!(close(nb_sf(25, 10.0, 1e-6), poisson_sf(25, 10.0), 1e-3));
        assert!(nb_sf(60, 20.0, 0.25) > 1e3 * poisson_sf(60, 20.0));
        assert!((nb_llr(30.0, 10.0, 3.0, 1e-9) - poisson).abs() < 1e-5);
    }

    #[test]
    fn negative_binomial_tail_is_calibrated_on_gamma_poisson_data() {
        // Rate ~ mu * lognormal with c2 = e^(s²) - 1; counts Poisson given the rate.
        let mut rng = Rng::new(21);
        let (mu, s) = (40.0, 0.5f64);
        let c2 = (s * s).exp() - 1.0;
        let n = 20_000;
        let draws: Vec<u64> = (0..n)
            .map(|_| {
                let rate = mu * (s * rng.normal() - s * s / 2.0).exp();
                rng.poisson(rate)
            })
            .collect();
        let nb = draws.iter().filter(|&&x| nb_sf(x, mu, c2) < 0.01).count();
        let poisson = draws.iter().filter(|&&x| poisson_sf(x, mu) < 0.01).count();
        // The lognormal's tail is a little heavier than the gamma's.
        assert!((nb as f64) < 0.02 * n as f64, "nb rejects {nb}");
        assert!((poisson as f64) > 0.15 * n as f64, "poisson rejects {poisson}");
    }

    #[test]
    fn dispersion_is_zero_on_poisson_counts_and_found_on_bursty_ones() {
        let mut rng = Rng::new(8);
        for &mu in &[0.3, 3.0, 30.0, 300.0, 3000.0] {
            let mut d = Dispersion::default();
            for _ in 0..2000 {
                d.observe(rng.poisson(mu) as f64, mu, 168.0);
            }
            assert_eq!(d.c2(1.5), 0.0, "mu={mu}: estimate {}", d.estimate());
        }
        for &(mu, s) in &[(30.0, 0.5f64), (300.0, 0.5), (3000.0, 0.3)] {
            let want = (s * s).exp() - 1.0;
            let mut d = Dispersion::default();
            for _ in 0..2000 {
                d.observe(
                    {
                        let rate = mu * (s * rng.normal() - s * s / 2.0).exp();
                        rng.poisson(rate)
                    } as f64,
                    mu,
                    168.0,
                );
            }
            let got = d.c2(1.5);
            assert!(got > 0.5 * want && got < 1.3 * want, "mu={mu}: c2 {got}, want {want}");
        }
    }

    #[test]
    fn one_outburst_moves_the_dispersion_a_bounded_amount() {
        let mut rng = Rng::new(4);
        let mut d = Dispersion::default();
        for _ in 0..500 {
            d.observe(rng.poisson(100.0) as f64, 100.0, 168.0);
        }
        let before = d.estimate();
        d.observe(5000.0, 100.0, 168.0);
        // Clipped at ten standard deviations: at most 100 variances over 168
        // (unclipped, (4900² - 5000) / 100² / 168 = 14).
        assert!(
            d.estimate() - before < 100.0 * 1.1 / 100.0 / 168.0 * 1.5,
            "{before} -> {}",
            d.estimate()
        );
    }

    #[test]
    fn persistence_is_zero_on_independent_hours_and_found_on_runs() {
        let mut rng = Rng::new(6);
        let mut p = Persistence::default();
        for _ in 0..2000 {
            p.observe(rng.normal(), 168.0);
        }
        assert_eq!(p.rho(1.5), 0.0);
        assert_eq!(p.evidence_factor(1.5), 1.0);
        // AR(1) with coefficient 0.6: runs of high hours.
        let mut p = Persistence::default();
        let mut r = 0.0;
        for _ in 0..2000 {
            r = 0.6 * r + 0.8 * rng.normal();
            p.observe(r, 168.0);
        }
        let rho = p.rho(0.0);
        assert!((0.45..0.75).contains(&rho), "{rho}");
        assert!(p.evidence_factor(0.0) < 0.4);
    }

    #[test]
    fn a_saturated_share_has_no_residual() {
        assert_eq!(share_residual(50.0, 50.0, 1.0), 0.0);
        assert_eq!(inflate_share(1.0, 1e6, 1.5), 1.0);
        // Below saturation, nothing changed: the variance floor still holds.
        let z = share_residual(10.0, 20.0, 0.2);
        assert!(close(z, (10.0 - 4.0) / (20.0f64 * 0.2 * 0.8).sqrt(), 1e-12));
        assert!(close(
            share_residual(3.0, 100.0, 0.001),
            (3.0 - 1.0) / (100.0f64 * 0.01 * 0.99).sqrt(),
            1e-12
        ));
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
