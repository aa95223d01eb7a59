//! The exact recorder beside each histogram series: an hdrhistogram (3
//! significant digits) plus count and sum, for `/stats` and reports. The
//! Prometheus `_bucket` series come from the `prometheus` histogram that is
//! fed the same values ([`super::Registry::observe_many`]).

use hdrhistogram::Histogram;
use serde::Serialize;

/// One series' recorded values (a snapshot when cloned out of the registry).
#[derive(Debug, Clone)]
pub struct Hist {
    scale: f64,
    sum: f64,
    count: u64,
    hdr: Histogram<u64>,
}

/// Negative, NaN and infinite values are recorded as 0 (durations and counts
/// are never negative; a NaN would poison the sum).
pub(crate) fn clean(v: f64) -> f64 {
    if v.is_finite() {
        v.max(0.0)
    } else {
        0.0
    }
}

impl Hist {
    /// `scale`: values are multiplied by it before going into the integer
    /// hdrhistogram (1e6 for seconds, 1 for counts).
    pub(crate) fn new(scale: f64) -> Self {
        Self {
            scale,
            sum: 0.0,
            count: 0,
            hdr: Histogram::new(3).expect("3 significant digits is a valid hdrhistogram precision"),
        }
    }

    /// Records a value already passed through [`clean`].
    pub(crate) fn record(&mut self, v: f64) {
        self.sum += v;
        self.count += 1;
        // Auto-resizing histogram: only a value beyond u64 could fail.
        let _ = self.hdr.record((v * self.scale).round() as u64);
    }

    /// The value at quantile `q` (0..=1) in the recorded unit.
    pub fn quantile(&self, q: f64) -> f64 {
        self.hdr.value_at_quantile(q) as f64 / self.scale
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn summary(&self) -> Quantiles {
        Quantiles {
            count: self.count,
            mean: if self.count == 0 {
                0.0
            } else {
                self.sum / self.count as f64
            },
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.hdr.max() as f64 / self.scale,
        }
    }
}

/// Exact quantiles of one histogram series (recorded unit: seconds or count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_exact_to_three_digits() {
        let mut h = Hist::new(1e6);
        for i in 1..=1000 {
            h.record(clean(i as f64 / 1000.0));
        }
        let q = h.summary();
        assert_eq!(q.count, 1000);
        assert!((q.mean - 0.5005).abs() < 1e-9, "{q:?}");
        assert!((q.p50 - 0.5).abs() < 0.001, "{q:?}");
        assert!((q.p999 - 0.999).abs() < 0.001, "{q:?}");
        assert!((q.max - 1.0).abs() < 0.001, "{q:?}");
        assert_eq!(clean(f64::NAN), 0.0);
        assert_eq!(clean(-1.0), 0.0);
    }
}
