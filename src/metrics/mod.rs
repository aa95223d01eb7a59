//! Every metric earshot exports, declared in one place ([`ALL`], in
//! [`defs`]), recorded into typed vectors of the `prometheus` crate
//! ([`Registry`]) and written by its text encoder (exposition format 0.0.4).
//!
//! Contract:
//! * Names follow `earshot_<what>_<unit>[_total]` in base units (seconds,
//!   bytes); process metrics are the `prometheus` crate's process collector
//!   (`process_*`, Linux), declared here too so every exported family has one
//!   declaration.
//! * Labels come from fixed sets (stage, reason, rule, severity, status,
//!   sentiment, category, sink, topic/partition) or are capped: at most
//!   [`MAX_BRANDS`] brand values and [`MAX_LANGUAGES`] language values are
//!   admitted (first come), the rest are reported as `other`. No event, SKU
//!   or product ids ever become label values. The crate checks the number of
//!   label values of every observation.
//! * Histograms have explicit buckets for the `_bucket` series and an
//!   hdrhistogram beside them, so [`Registry::quantiles`] gives exact
//!   p50/p99/p999 (3 significant digits) for `/stats` and the replay report.
//! * Callers record per batch where they can. Nothing here knows about the
//!   domain: `pipeline` and `server` record, `model` and `detect` never do.

mod defs;
mod hist;
mod registry;

pub use defs::*;
pub use hist::{Hist, Quantiles};
pub use registry::{MetricsError, Registry, MAX_BRANDS, MAX_LANGUAGES, OTHER};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let mut seen = std::collections::BTreeSet::new();
        for d in ALL {
            assert!(seen.insert(d.name), "{} declared twice", d.name);
            assert_eq!(def(d.name), Some(*d));
            if d.process {
                assert!(d.name.starts_with("process_") && d.labels.is_empty(), "{}", d.name);
            } else {
                assert!(d.name.starts_with("earshot_"), "{}", d.name);
            }
            assert_eq!(d.kind == Kind::Counter, d.name.ends_with("_total"), "{}", d.name);
            assert!(!d.fractional || d.kind == Kind::Counter, "{}", d.name);
            assert_eq!(
                d.fractional,
                d.name.ends_with("_seconds_total") && !d.process,
                "{}",
                d.name
            );
            assert!(!d.labels.iter().any(|l| *l == "sku" || *l == "id" || *l == "product"));
            if d.kind == Kind::Histogram {
                assert!(!d.buckets.is_empty() && d.buckets.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
