//! A seeded random source for simulations and tests (scenario streams,
//! detector property tests).

use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

/// SplitMix64 (`rand_xoshiro`, a generator whose output is fixed by its
/// definition, unlike `rand::StdRng`) with the few distributions the
/// simulations draw from, written out so a seed gives the same stream on every
/// platform and `rand` version.
#[derive(Debug, Clone)]
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }

    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Poisson draw (Knuth below 30, rounded normal above).
    pub fn poisson(&mut self, mu: f64) -> u64 {
        if mu <= 0.0 {
            return 0;
        }
        if mu < 30.0 {
            let l = (-mu).exp();
            let mut k = 0;
            let mut p = 1.0;
            loop {
                p *= self.uniform();
                if p <= l {
                    return k;
                }
                k += 1;
            }
        }
        (mu + mu.sqrt() * self.normal()).round().max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    /// SplitMix64 (Steele, Lea and Flood 2014) from state `1 ^ φ`; pinned so
    /// a dependency update cannot silently change every generated scenario.
    #[test]
    fn stream_is_pinned() {
        let mut r = Rng::new(1);
        let first: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            first,
            [0xe99f_f867_dbf6_82c9, 0x382f_f84c_b272_81e9, 0x6d1d_b36c_cba9_82d2]
        );
    }
}
