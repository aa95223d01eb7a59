//! Overdispersed counts: negative-binomial tails and likelihood ratios,
//! a per-key estimate of the overdispersion, and of how much one hour's
//! excess carries into the next.

use super::{beta_inc_cf, poisson_sf};

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
