//! `[detect]`, `[detect.thresholds]` and `[detect.spam]`: keys, windows,
//! baselines, sensitivity and the fake-wave filter. Validates into the
//! detector's [`DetectConfig`] (all durations in event-time milliseconds).

use serde::Deserialize;

use super::{dims, duration_ms, ConfigError};
use crate::detect::{stats::Seasonality, DetectConfig, Preset};

/// `[detect]`: keys, windows, baselines and sensitivity of the detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDetect {
    /// `fewer`, `balanced` or `more` alerts; `[detect.thresholds]` overrides fields.
    pub preset: String,
    /// Key rollups, each a list of dimensions (brand, product, sku, region,
    /// channel, category, language).
    pub rollups: Vec<Vec<String>>,
    pub step_secs: u64,
    pub windows_secs: Vec<u64>,
    pub cluster_windows_secs: Vec<u64>,
    pub out_of_orderness_secs: u64,
    pub allowed_lateness_secs: u64,
    pub max_keys: usize,
    /// Ids of the most recent events remembered, so a Kafka redelivery is
    /// not counted twice (0: off).
    pub dedup_ids: usize,
    pub idle_ttl_hours: u64,
    /// `hour_of_day` or `hour_of_week`.
    pub seasonality: String,
    pub baseline_memory_hours: u64,
    pub min_history_hours: u64,
    pub clear_after_minutes: u64,
    pub cluster_similarity: f32,
    pub max_clusters: usize,
    pub sla_hours: u64,
    pub thresholds: RawThresholds,
    pub spam: RawSpam,
}

/// Largest `detect.dedup_ids`: 16 M ids, 256 MB.
const MAX_DEDUP_IDS: usize = 1 << 24;

impl Default for RawDetect {
    fn default() -> Self {
        let rollups: [&[&str]; 6] = [
            &["brand"],
            &["brand", "product"],
            &["brand", "product", "category"],
            &["brand", "region"],
            &["region"],
            &["region", "category"],
        ];
        Self {
            preset: "balanced".into(),
            rollups: rollups
                .iter()
                .map(|r| r.iter().map(|d| d.to_string()).collect())
                .collect(),
            step_secs: 300,
            windows_secs: vec![900, 3600, 86_400],
            cluster_windows_secs: vec![900, 3600],
            out_of_orderness_secs: 60,
            allowed_lateness_secs: 21_600,
            max_keys: 50_000,
            dedup_ids: 262_144,
            idle_ttl_hours: 336,
            seasonality: "hour_of_day".into(),
            baseline_memory_hours: 168,
            min_history_hours: 24,
            clear_after_minutes: 120,
            cluster_similarity: 0.5,
            max_clusters: 24,
            sla_hours: 24,
            thresholds: RawThresholds::default(),
            spam: RawSpam::default(),
        }
    }
}

/// `[detect.thresholds]`: explicit overrides of the preset (all unset by default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawThresholds {
    pub p_volume: Option<f64>,
    pub p_share: Option<f64>,
    pub p_cluster: Option<f64>,
    pub min_count: Option<u32>,
    pub min_cluster_count: Option<u32>,
    pub min_ratio: Option<f64>,
    pub min_share_delta: Option<f64>,
    pub cusum_k: Option<f64>,
    pub cusum_h: Option<f64>,
    /// Slow-drift volume CUSUM: the rate ratio it is tuned to (> 1) and its
    /// decision interval (log-likelihood units, > 0).
    pub drift_ratio: Option<f64>,
    pub drift_h: Option<f64>,
    /// New-topic CUSUM of young clusters: the rate ratio it is tuned to
    /// (> 1) and its decision interval (> 0).
    pub cluster_cusum_ratio: Option<f64>,
    pub cluster_cusum_h: Option<f64>,
}

/// `[detect.spam]`: the fake-wave filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSpam {
    pub scope: Vec<String>,
    pub near_dup_similarity: f64,
    pub burst_min: u32,
    pub window_minutes: u64,
    pub author_max: u32,
    pub author_window_hours: u64,
    pub contradiction_prob: f32,
    pub contradiction_min: u32,
    /// Shortest text (in 3-shingles) judged as a near-duplicate (0: all).
    pub min_shingles: u32,
    /// Items per account that make a near-duplicate burst coordinated.
    pub dup_items_per_author: f64,
    /// Distinct texts that make a near-duplicate burst a varied template (0: any burst).
    pub dup_variants: u32,
    /// Items by one author across all products that make them suspect.
    pub author_max_spread: u32,
    /// Share of the scope's items a contradiction wave needs (0: any count).
    pub contradiction_share: f64,
}

impl Default for RawSpam {
    fn default() -> Self {
        Self {
            scope: vec!["brand".into(), "product".into()],
            near_dup_similarity: 0.75,
            burst_min: 4,
            window_minutes: 60,
            author_max: 4,
            author_window_hours: 24,
            contradiction_prob: 0.8,
            contradiction_min: 5,
            min_shingles: 8,
            dup_items_per_author: 1.5,
            dup_variants: 3,
            author_max_spread: 12,
            contradiction_share: 0.2,
        }
    }
}

impl RawDetect {
    pub fn validate(self) -> Result<DetectConfig, ConfigError> {
        let inv = |field: &'static str, message: String| ConfigError::Invalid { field, message };
        let preset = Preset::parse(&self.preset).ok_or_else(|| {
            inv(
                "detect.preset",
                format!("`{}`: use fewer, balanced or more", self.preset),
            )
        })?;
        let mut th = preset.thresholds();
        let t = &self.thresholds;
        for (field, v) in [
            ("detect.thresholds.p_volume", t.p_volume),
            ("detect.thresholds.p_share", t.p_share),
            ("detect.thresholds.p_cluster", t.p_cluster),
        ] {
            if let Some(p) = v {
                if !(p > 0.0 && p < 1.0) {
                    return Err(inv(field, format!("{p} is not a probability in (0, 1)")));
                }
            }
        }
        th.p_volume = t.p_volume.unwrap_or(th.p_volume);
        th.p_share = t.p_share.unwrap_or(th.p_share);
        th.p_cluster = t.p_cluster.unwrap_or(th.p_cluster);
        th.min_count = t.min_count.unwrap_or(th.min_count).max(1);
        th.min_cluster_count = t.min_cluster_count.unwrap_or(th.min_cluster_count).max(1);
        th.min_ratio = t.min_ratio.unwrap_or(th.min_ratio);
        th.min_share_delta = t.min_share_delta.unwrap_or(th.min_share_delta);
        th.cusum_k = t.cusum_k.unwrap_or(th.cusum_k);
        th.cusum_h = t.cusum_h.unwrap_or(th.cusum_h);
        // The two CUSUMs on rates: the ratio they are tuned to (> 1) and
        // their decision interval (> 0).
        let ratio = |field: &'static str, v: Option<f64>, default: f64, example: &str| match v {
            Some(r) if !(r > 1.0 && r.is_finite()) => {
                Err(inv(field, format!("{r} must be a rate ratio above 1 ({example})")))
            }
            v => Ok(v.unwrap_or(default)),
        };
        let interval = |field: &'static str, v: Option<f64>, default: f64, what: &str| match v {
            Some(h) if !(h > 0.0 && h.is_finite()) => Err(inv(
                field,
                format!("{h} must be positive ({what}; larger means fewer, later alerts)"),
            )),
            v => Ok(v.unwrap_or(default)),
        };
        th.drift_ratio = ratio(
            "detect.thresholds.drift_ratio",
            t.drift_ratio,
            th.drift_ratio,
            "e.g. 3 for a tripling",
        )?;
        th.drift_h = interval(
            "detect.thresholds.drift_h",
            t.drift_h,
            th.drift_h,
            "e.g. 10 for drift alerts",
        )?;
        th.cluster_cusum_ratio = ratio(
            "detect.thresholds.cluster_cusum_ratio",
            t.cluster_cusum_ratio,
            th.cluster_cusum_ratio,
            "e.g. 10: a new topic at ten times its usual share",
        )?;
        th.cluster_cusum_h = interval(
            "detect.thresholds.cluster_cusum_h",
            t.cluster_cusum_h,
            th.cluster_cusum_h,
            "e.g. 7 for new-topic alerts",
        )?;
        if self.step_secs == 0 || 3600 % self.step_secs != 0 {
            return Err(inv(
                "detect.step_secs",
                format!("{} must divide an hour", self.step_secs),
            ));
        }
        let step = duration_ms("detect.step_secs", self.step_secs, 1000)?;
        let windows = |field: &'static str, v: &[u64]| -> Result<Vec<i64>, ConfigError> {
            if v.is_empty() {
                return Err(inv(field, "needs at least one window".into()));
            }
            v.iter()
                .map(|&w| {
                    if w == 0 || w % self.step_secs != 0 {
                        Err(inv(
                            field,
                            format!("{w} s is not a positive multiple of step_secs = {}", self.step_secs),
                        ))
                    } else {
                        duration_ms(field, w, 1000)
                    }
                })
                .collect()
        };
        let rollups = self
            .rollups
            .iter()
            .map(|r| dims("detect.rollups", r))
            .collect::<Result<Vec<_>, _>>()?;
        if rollups.is_empty() {
            return Err(inv("detect.rollups", "needs at least one rollup".into()));
        }
        let seasonality = match self.seasonality.as_str() {
            "hour_of_day" => Seasonality::HourOfDay,
            "hour_of_week" => Seasonality::HourOfWeek,
            other => {
                return Err(inv(
                    "detect.seasonality",
                    format!("`{other}`: use hour_of_day or hour_of_week"),
                ))
            }
        };
        if !(0.0..1.0).contains(&self.cluster_similarity) {
            return Err(inv(
                "detect.cluster_similarity",
                format!("{} is outside [0, 1)", self.cluster_similarity),
            ));
        }
        let sp = self.spam;
        if !(sp.dup_items_per_author.is_finite() && sp.dup_items_per_author >= 1.0) {
            return Err(inv(
                "detect.spam.dup_items_per_author",
                format!(
                    "{}: use a number of items per account of at least 1, e.g. 1.5",
                    sp.dup_items_per_author
                ),
            ));
        }
        if !(0.0..=1.0).contains(&sp.contradiction_share) {
            return Err(inv(
                "detect.spam.contradiction_share",
                format!("{}: use a share in [0, 1], e.g. 0.2", sp.contradiction_share),
            ));
        }
        if !(0.0..=1.0).contains(&sp.near_dup_similarity) {
            return Err(inv(
                "detect.spam.near_dup_similarity",
                format!("{} is outside [0, 1]", sp.near_dup_similarity),
            ));
        }
        let hour = 3_600_000i64;
        let d = DetectConfig::default();
        Ok(DetectConfig {
            rollups,
            step,
            windows: windows("detect.windows_secs", &self.windows_secs)?,
            cluster_windows: windows("detect.cluster_windows_secs", &self.cluster_windows_secs)?,
            out_of_orderness: duration_ms("detect.out_of_orderness_secs", self.out_of_orderness_secs, 1000)?,
            allowed_lateness: duration_ms("detect.allowed_lateness_secs", self.allowed_lateness_secs, 1000)?,
            max_keys: self.max_keys.max(1),
            dedup_ids: if self.dedup_ids > MAX_DEDUP_IDS {
                return Err(ConfigError::Invalid {
                    field: "detect.dedup_ids",
                    message: format!(
                        "{} is too large: give 0 (off) to {MAX_DEDUP_IDS} (16 bytes each; default 262144)",
                        self.dedup_ids
                    ),
                });
            } else {
                self.dedup_ids
            },
            idle_ttl: duration_ms("detect.idle_ttl_hours", self.idle_ttl_hours.max(1), hour)?,
            seasonality,
            baseline_memory: duration_ms("detect.baseline_memory_hours", self.baseline_memory_hours.max(1), hour)?,
            min_history: duration_ms("detect.min_history_hours", self.min_history_hours, hour)?,
            clear_after: duration_ms("detect.clear_after_minutes", self.clear_after_minutes, 60_000)?,
            thresholds: th,
            cluster_similarity: self.cluster_similarity,
            max_clusters: self.max_clusters.max(1),
            spam: crate::detect::SpamConfig {
                scope: dims("detect.spam.scope", &sp.scope)?,
                near_dup_similarity: sp.near_dup_similarity,
                burst_min: sp.burst_min.max(2),
                window: duration_ms("detect.spam.window_minutes", sp.window_minutes.max(1), 60_000)?,
                author_max: sp.author_max.max(2),
                author_window: duration_ms("detect.spam.author_window_hours", sp.author_window_hours.max(1), hour)?,
                contradiction_prob: sp.contradiction_prob,
                contradiction_min: sp.contradiction_min.max(1),
                min_shingles: sp.min_shingles,
                dup_items_per_author: sp.dup_items_per_author,
                dup_variants: sp.dup_variants,
                author_max_spread: sp.author_max_spread.max(2),
                contradiction_share: sp.contradiction_share,
            },
            sla: duration_ms("detect.sla_hours", self.sla_hours, hour)?,
            ..d
        })
    }
}
