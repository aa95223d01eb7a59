//! Detector configuration: sensitivity presets, decision thresholds, the spam
//! filter settings and the validated [`DetectConfig`] (built by the root
//! crate's config module from TOML).

use earshot_core::types::Dim;

use crate::stats::Seasonality;
use crate::{HOUR, MINUTE};

/// Sensitivity presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Fewer,
    Balanced,
    More,
}

impl Preset {
    pub fn parse(s: &str) -> Option<Preset> {
        match s {
            "fewer" => Some(Preset::Fewer),
            "balanced" => Some(Preset::Balanced),
            "more" => Some(Preset::More),
            _ => None,
        }
    }

    pub fn thresholds(self) -> Thresholds {
        let (p, min_count, cusum_h, drift_h, cluster_cusum_h) = match self {
            Preset::Fewer => (1e-8, 8, 10.0, 12.0, 10.0),
            Preset::Balanced => (1e-7, 5, 8.0, 10.0, 7.0),
            Preset::More => (1e-4, 3, 5.0, 6.0, 5.0),
        };
        Thresholds {
            p_volume: p,
            p_share: p,
            p_cluster: p,
            p_confirm: 1e-2,
            min_count,
            min_cluster_count: min_count,
            min_ratio: 2.0,
            min_share_delta: 0.10,
            cusum_k: 0.5,
            cusum_h,
            cusum_batch: 10,
            drift_ratio: 3.0,
            drift_h,
            cluster_cusum_ratio: 10.0,
            cluster_cusum_h,
            cluster_prior_items: 20.0,
            cluster_cusum_youth: 24 * HOUR,
            baseline_z: 1.5,
            min_expected_per_hour: 0.1,
        }
    }
}

/// Decision thresholds (a preset, optionally overridden field by field).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Poisson tail below which negative volume is anomalous.
    pub p_volume: f64,
    /// Binomial tail below which the negative share is anomalous.
    pub p_share: f64,
    /// Binomial tail below which a cluster's share of negatives is anomalous.
    pub p_cluster: f64,
    /// Total volume counts as "up" (no sentiment shift) below this tail;
    /// a volume spike also needs its negative share up at this tail.
    /// Expected negatives are scaled by the traffic factor (the larger of
    /// the lower confidence bound of observed / expected non-negative items
    /// of the key and the observed / expected non-negative items of all
    /// keys, over the last hour, at least 1), so a surge of all traffic with
    /// the usual share is not a crisis, and a complaint wave does not count
    /// as traffic that explains itself away.
    pub p_confirm: f64,
    /// Minimum negatives in the window (evidence floor).
    pub min_count: u32,
    /// Minimum members of a cluster in the window.
    pub min_cluster_count: u32,
    /// Observed / expected negatives at least this for a volume spike.
    pub min_ratio: f64,
    /// Share above baseline by at least this for a sentiment shift.
    pub min_share_delta: f64,
    /// CUSUM reference value and decision interval (in standard deviations).
    pub cusum_k: f64,
    pub cusum_h: f64,
    /// Items batched into one CUSUM residual (keeps residuals near-normal).
    pub cusum_batch: u32,
    /// Poisson CUSUM of hourly negative volume: the rate ratio it is tuned
    /// to detect and its decision interval (log-likelihood ratio units).
    pub drift_ratio: f64,
    pub drift_h: f64,
    /// Poisson CUSUM of each cluster's members per step (emerging issues
    /// on busy keys, where a new topic is a small part of the negatives):
    /// the ratio to the cluster's usual rate it is tuned to detect and its
    /// decision interval (log-likelihood ratio units). It also needs
    /// `min_cluster_count` distinct members in its run.
    pub cluster_cusum_ratio: f64,
    pub cluster_cusum_h: f64,
    /// Negatives of evidence the prior share of a new cluster counts as.
    pub cluster_prior_items: f64,
    /// Clusters younger than this are watched by the CUSUM (a run that
    /// began in time continues).
    pub cluster_cusum_youth: i64,
    /// Standard errors by which baseline estimates are inflated.
    pub baseline_z: f64,
    /// Floor of the expected negatives per hour.
    pub min_expected_per_hour: f64,
}

/// Spam / fake-wave filter settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SpamConfig {
    /// Rollup that scopes near-duplicate groups and contradiction bursts.
    pub scope: Vec<Dim>,
    /// Estimated Jaccard similarity (3-shingles) for a near-duplicate.
    pub near_dup_similarity: f64,
    /// Near-duplicates within `window` that make a burst.
    pub burst_min: u32,
    pub window: i64,
    /// Items by one author within `author_window` that make them suspect.
    pub author_max: u32,
    pub author_window: i64,
    /// Probability of the opposite sentiment for a rating/text contradiction.
    pub contradiction_prob: f32,
    /// Contradictions within `window` in one scope that raise a signal.
    pub contradiction_min: u32,
}

/// Validated detector configuration (built by the root crate's `config` module).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    pub rollups: Vec<Vec<Dim>>,
    pub step: i64,
    pub windows: Vec<i64>,
    /// Windows on which cluster growth is tested.
    pub cluster_windows: Vec<i64>,
    pub out_of_orderness: i64,
    pub allowed_lateness: i64,
    pub max_keys: usize,
    pub idle_ttl: i64,
    pub seasonality: Seasonality,
    /// EWMA memory of baseline levels.
    pub baseline_memory: i64,
    /// History a key needs before it may alert.
    pub min_history: i64,
    /// A firing condition must stay false this long before it can fire again.
    pub clear_after: i64,
    pub thresholds: Thresholds,
    pub cluster_similarity: f32,
    pub max_clusters: usize,
    pub cluster_half_life: i64,
    pub cluster_prior_share: f64,
    pub spam: SpamConfig,
    pub sla: i64,
    /// Quotes kept per key for explanations.
    pub recent_per_key: usize,
    /// Ids of the most recent events remembered to skip redeliveries (0: off).
    pub dedup_ids: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        use Dim::*;
        Self {
            rollups: vec![
                vec![Brand],
                vec![Brand, Product],
                vec![Brand, Product, Category],
                vec![Brand, Region],
                vec![Region],
                vec![Region, Category],
            ],
            step: 5 * MINUTE,
            windows: vec![15 * MINUTE, HOUR, 24 * HOUR],
            cluster_windows: vec![15 * MINUTE, HOUR],
            out_of_orderness: MINUTE,
            allowed_lateness: 10 * MINUTE,
            max_keys: 50_000,
            idle_ttl: 14 * 24 * HOUR,
            seasonality: Seasonality::HourOfDay,
            baseline_memory: 168 * HOUR,
            min_history: 24 * HOUR,
            clear_after: 2 * HOUR,
            thresholds: Preset::Balanced.thresholds(),
            cluster_similarity: 0.5,
            max_clusters: 24,
            cluster_half_life: 24 * HOUR,
            cluster_prior_share: 0.05,
            spam: SpamConfig {
                scope: vec![Brand, Product],
                near_dup_similarity: 0.75,
                burst_min: 4,
                window: HOUR,
                author_max: 4,
                author_window: 24 * HOUR,
                contradiction_prob: 0.8,
                contradiction_min: 5,
            },
            sla: 24 * HOUR,
            recent_per_key: 96,
            dedup_ids: 262_144,
        }
    }
}
