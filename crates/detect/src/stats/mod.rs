//! Exact tail probabilities, an EWMA seasonal baseline and a one-sided CUSUM.
//!
//! Everything is deterministic `f64` arithmetic on counts; nothing here knows
//! about keys, windows or wall clocks.

mod dispersion;

pub use dispersion::{nb_llr, nb_sf, Dispersion, Persistence, MAX_C2};

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
pub(super) fn beta_inc_cf(a: f64, b: f64, x: f64, ln_x: f64, ln_1mx: f64) -> f64 {
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
mod tests;
