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
    /// Tail (negative binomial with the key's overdispersion; Poisson on
    /// Poisson-like traffic) below which negative volume is anomalous.
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
    /// CUSUM of hourly negative volume (negative binomial, discounted for
    /// autocorrelated hours; Poisson on Poisson-like traffic): the rate ratio it is tuned
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
    /// Near-duplicates within `window` that make a burst (when they also
    /// show coordination, see `dup_items_per_author` and `dup_variants`).
    pub burst_min: u32,
    pub window: i64,
    /// Texts with fewer character 3-shingles (after normalisation) are
    /// never judged as near-duplicates: short stock phrases ("太差了",
    /// "great product") repeat among genuine customers.
    pub min_shingles: u32,
    /// A near-duplicate burst is coordinated when its members that carry an
    /// author id number at least `burst_min` and come from so few accounts
    /// that each posted this many on average (copy-paste from few accounts).
    pub dup_items_per_author: f64,
    /// ... or when its members with author ids use at least this many
    /// different texts (a template varied to evade exact matching). The
    /// same text from many authors, or from items without author ids
    /// (retweets, a shared complaint), is not evidence by itself.
    pub dup_variants: u32,
    /// Items by one author within `author_window` in one scope that make
    /// them suspect.
    pub author_max: u32,
    /// Items by one author within `author_window` over all scopes that make
    /// them suspect (a regular reviewing several products a day is not).
    pub author_max_spread: u32,
    pub author_window: i64,
    /// Probability of the opposite sentiment for a rating/text contradiction.
    pub contradiction_prob: f32,
    /// Contradictions within `window` in one scope that raise a signal ...
    pub contradiction_min: u32,
    /// ... when they are also at least this share of the scope's items in
    /// that window (a busy product has a few classifier errors every hour).
    pub contradiction_share: f64,
}

impl Default for SpamConfig {
    fn default() -> Self {
        use Dim::*;
        Self {
            scope: vec![Brand, Product],
            near_dup_similarity: 0.75,
            burst_min: 4,
            window: HOUR,
            min_shingles: 8,
            dup_items_per_author: 1.5,
            dup_variants: 3,
            author_max: 4,
            author_max_spread: 12,
            author_window: 24 * HOUR,
            contradiction_prob: 0.8,
            contradiction_min: 5,
            contradiction_share: 0.2,
        }
    }
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
    /// How far behind the watermark an event may be and still count
    /// (default 6 h): into every window evaluated after it arrives (the
    /// 24 h window for most of a day), the step buckets, the baselines
    /// (directly, or as a correction once its hour was folded, see
    /// `fold_lateness`) and the drift CUSUMs. Later events are
    /// [`Lateness::TooLate`](crate::Lateness::TooLate).
    ///
    /// Memory: every key keeps its step buckets for the longest window plus
    /// this plus 2 h (default: 24 h + 6 h + 2 h = 384 buckets of 5 min, at
    /// most 386 with the steps ahead of the evaluation, at 8 bytes: 3.1 KB
    /// per key, 4 KB allocated as the ring's capacity is a power of two; at
    /// 10 min it was 316 buckets, 2.5 KB, also 4 KB allocated). Each of a
    /// key's clusters (up to `max_clusters`) counts its members for the
    /// longest cluster window plus this plus 2 h (default: 110 buckets at 4
    /// bytes, 440 B, 512 B allocated; it was the 24 h window's 316 buckets,
    /// 2 KB allocated). The spam ledger keeps accepted events for
    /// `max(spam.window, allowed_lateness) + 1 h` of event time (about 250
    /// bytes each, at most 2 million), so a late member of a fake wave can
    /// still be taken back out. All of these grow linearly with this value.
    pub allowed_lateness: i64,
    /// How long an hour waits for late events before it is folded into the
    /// baselines and drift CUSUMs (default 10 min, at most
    /// `allowed_lateness`). An event that arrives later (within
    /// `allowed_lateness`) corrects the folded hour's baseline level and
    /// enters the drift CUSUMs with the next hour folded, so the baselines
    /// do not lag the stream by the whole lateness horizon.
    pub fold_lateness: i64,
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
    /// How long (event time) a negative that joined an existing cluster
    /// may still move to a cluster founded after it, when it is closer to
    /// the new one (0: never). The first items of a new topic otherwise
    /// stay in the broad cluster they joined before the topic had one, and
    /// on a busy key its emerging issue is reported only once later items
    /// make up the evidence alone. Memory: each key keeps at most
    /// [`crate::cluster::LOOSE_CAP`] such members of the last
    /// `cluster_rehome` (dropped at each step's evaluation), holding the
    /// item's centred embedding shared by all its keys (1.5 KB at 384
    /// dimensions): bounded by the negatives of the last 15 minutes.
    pub cluster_rehome: i64,
    pub spam: SpamConfig,
    pub sla: i64,
    /// Quotes kept per key for explanations.
    pub recent_per_key: usize,
    /// Ids of the most recent events remembered to skip redeliveries (0: off).
    pub dedup_ids: usize,
}

impl DetectConfig {
    /// The lateness an hour waits for before it is folded: `fold_lateness`,
    /// at most `allowed_lateness`.
    pub(crate) fn fold_lag(&self) -> i64 {
        self.fold_lateness.clamp(0, self.allowed_lateness.max(0))
    }
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
            allowed_lateness: 6 * HOUR,
            fold_lateness: 10 * MINUTE,
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
            cluster_rehome: 15 * MINUTE,
            spam: SpamConfig::default(),
            sla: 24 * HOUR,
            recent_per_key: 96,
            dedup_ids: 262_144,
        }
    }
}
