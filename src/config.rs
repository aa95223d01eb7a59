//! Pipeline configuration: a TOML file (every table `deny_unknown_fields`, every
//! default a `default_*` function) validated into typed structs at start-up.
//! Runtime knobs (device, ports, log format) are CLI flags, not config.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use std::collections::BTreeMap;

use crate::detect::{stats::Seasonality, DetectConfig, Preset};
use crate::ingest::mapping::Mapping;
use crate::model::{BatchLimits, EncoderConfig, EncoderSpec, MatmulMode, ModelSpec};
pub use earshot_alert::config::{severity_rank, AlertConfig, Secret, SinkKind, SinkSpec};

/// Errors found while reading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid config field `{field}`: {message}")]
    Invalid { field: &'static str, message: String },
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub model: RawModel,
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub mapping: Mapping,
    #[serde(default)]
    pub output: OutputConfig,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub detect: RawDetect,
    #[serde(default)]
    pub alert: RawAlert,
}

/// `[alert]`: alert lifecycle (event time), the durable outbox and delivery endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlert {
    /// Base URL of Grafana for the dashboard links in alert texts.
    #[serde(default = "default_grafana_url")]
    pub grafana_url: String,
    /// One-shot kinds (slow_drift, review_bombing) resolve after this much
    /// event time without a new signal.
    #[serde(default = "default_resolve_after_minutes")]
    pub resolve_after_minutes: u64,
    /// A firing alert is sent again after this much event time (0: never).
    #[serde(default = "default_repeat_interval_minutes")]
    pub repeat_interval_minutes: u64,
    /// Labels that group related alerts into one notification.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// The durable outbox (redb); relative to the config file's directory.
    #[serde(default = "default_outbox_path")]
    pub outbox_path: PathBuf,
    #[serde(default)]
    pub silences: Vec<crate::alert::api::Silence>,
    #[serde(default)]
    pub sinks: Vec<RawSink>,
}

impl Default for RawAlert {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

/// `[[alert.sinks]]`: one delivery endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    pub name: String,
    /// `alertmanager`, `alertmanager_webhook`, `slack`, `pagerduty` or `generic`.
    pub kind: String,
    pub url: String,
    /// Environment variable holding the signing secret (generic).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the signing secret (generic).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the PagerDuty routing key.
    #[serde(default)]
    pub routing_key_env: Option<String>,
    #[serde(default = "default_sink_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_sink_max_concurrency")]
    pub max_concurrency: usize,
    #[serde(default = "default_sink_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_sink_max_retry_minutes")]
    pub max_retry_minutes: u64,
    #[serde(default = "default_sink_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_sink_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// `info`, `warning` or `critical`: lower severities are not sent here.
    #[serde(default = "default_sink_min_severity")]
    pub min_severity: String,
    /// Per-route cooldown: repeats closer than this (event time) are skipped
    /// for this endpoint; unset means every repeat.
    #[serde(default)]
    pub repeat_interval_minutes: Option<u64>,
    /// Alertmanager only: firing alerts are re-sent this often (wall clock)
    /// so Alertmanager does not resolve them on its own.
    #[serde(default = "default_sink_resend_interval_secs")]
    pub resend_interval_secs: u64,
}

fn default_grafana_url() -> String {
    "http://localhost:3000".into()
}
fn default_resolve_after_minutes() -> u64 {
    120
}
fn default_repeat_interval_minutes() -> u64 {
    240
}
fn default_group_by() -> Vec<String> {
    vec!["brand".into()]
}
fn default_outbox_path() -> PathBuf {
    PathBuf::from("earshot-data/outbox.redb")
}
fn default_sink_timeout_ms() -> u64 {
    10_000
}
fn default_sink_max_concurrency() -> usize {
    4
}
fn default_sink_max_attempts() -> u32 {
    20
}
fn default_sink_max_retry_minutes() -> u64 {
    60
}
fn default_sink_backoff_initial_ms() -> u64 {
    500
}
fn default_sink_backoff_max_ms() -> u64 {
    30_000
}
fn default_sink_min_severity() -> String {
    "info".into()
}
fn default_sink_resend_interval_secs() -> u64 {
    60
}

impl RawAlert {
    pub fn validate(self, base: &Path) -> Result<AlertConfig, ConfigError> {
        let inv = |field: &'static str, message: String| ConfigError::Invalid { field, message };
        if !(self.grafana_url.starts_with("http://") || self.grafana_url.starts_with("https://")) {
            return Err(inv(
                "alert.grafana_url",
                format!("`{}`: use an http:// or https:// URL", self.grafana_url),
            ));
        }
        if self.resolve_after_minutes == 0 {
            return Err(inv("alert.resolve_after_minutes", "must be at least 1".into()));
        }
        let group_by = dims("alert.group_by", &self.group_by)?;
        for s in &self.silences {
            crate::alert::silence::Matcher::parse(s).map_err(|m| inv("alert.silences", m))?;
        }
        let mut sinks = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for r in self.sinks {
            let n = r.name.clone();
            if n.is_empty() || !names.insert(n.clone()) {
                return Err(inv(
                    "alert.sinks.name",
                    format!("`{n}`: every sink needs a unique, non-empty name"),
                ));
            }
            let kind = match r.kind.as_str() {
                "alertmanager" => SinkKind::Alertmanager,
                "alertmanager_webhook" => SinkKind::AlertmanagerWebhook,
                "slack" => SinkKind::Slack,
                "pagerduty" => SinkKind::PagerDuty,
                "generic" => SinkKind::Generic,
                other => {
                    return Err(inv(
                        "alert.sinks.kind",
                        format!(
                            "sink `{n}`: unknown kind `{other}`: use alertmanager, alertmanager_webhook, slack, pagerduty or generic"
                        ),
                    ))
                }
            };
            if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
                return Err(inv(
                    "alert.sinks.url",
                    format!("sink `{n}`: `{}` is not an http:// or https:// URL", r.url),
                ));
            }
            let secret = match (&r.secret_env, &r.secret_file) {
                (Some(_), Some(_)) => {
                    return Err(inv(
                        "alert.sinks.secret_env",
                        format!("sink `{n}`: set secret_env or secret_file, not both"),
                    ))
                }
                (Some(var), None) => {
                    let v = std::env::var(var).map_err(|_| {
                        inv(
                            "alert.sinks.secret_env",
                            format!(
                                "sink `{n}`: environment variable `{var}` is not set; export it or use secret_file"
                            ),
                        )
                    })?;
                    Some(signing_key(v.trim()).map_err(|m| inv("alert.sinks.secret_env", format!("sink `{n}`: {m}")))?)
                }
                (None, Some(f)) => {
                    let path = if f.is_absolute() { f.clone() } else { base.join(f) };
                    let v = std::fs::read_to_string(&path).map_err(|e| {
                        inv(
                            "alert.sinks.secret_file",
                            format!("sink `{n}`: cannot read {}: {e}", path.display()),
                        )
                    })?;
                    Some(
                        signing_key(v.trim())
                            .map_err(|m| inv("alert.sinks.secret_file", format!("sink `{n}`: {m}")))?,
                    )
                }
                (None, None) => None,
            };
            if kind == SinkKind::Generic && secret.is_none() {
                return Err(inv(
                    "alert.sinks.secret_env",
                    format!("sink `{n}`: a generic webhook is signed; set secret_env or secret_file"),
                ));
            }
            let routing_key = match &r.routing_key_env {
                Some(var) => Some(Secret(
                    std::env::var(var)
                        .map_err(|_| {
                            inv(
                                "alert.sinks.routing_key_env",
                                format!("sink `{n}`: environment variable `{var}` is not set; export the PagerDuty integration key"),
                            )
                        })?
                        .trim()
                        .as_bytes()
                        .to_vec(),
                )),
                None => None,
            };
            if kind == SinkKind::PagerDuty && routing_key.is_none() {
                return Err(inv(
                    "alert.sinks.routing_key_env",
                    format!("sink `{n}`: PagerDuty needs routing_key_env (the variable holding the integration key)"),
                ));
            }
            for (field, v) in [
                ("alert.sinks.timeout_ms", r.timeout_ms),
                ("alert.sinks.max_concurrency", r.max_concurrency as u64),
                ("alert.sinks.max_attempts", r.max_attempts as u64),
                ("alert.sinks.max_retry_minutes", r.max_retry_minutes),
                ("alert.sinks.backoff_initial_ms", r.backoff_initial_ms),
                ("alert.sinks.resend_interval_secs", r.resend_interval_secs),
            ] {
                if v == 0 {
                    return Err(inv(field, format!("sink `{n}`: must be at least 1")));
                }
            }
            if r.backoff_max_ms < r.backoff_initial_ms {
                return Err(inv(
                    "alert.sinks.backoff_max_ms",
                    format!(
                        "sink `{n}`: must be at least backoff_initial_ms = {}",
                        r.backoff_initial_ms
                    ),
                ));
            }
            let min_severity = severity_rank(&r.min_severity).ok_or_else(|| {
                inv(
                    "alert.sinks.min_severity",
                    format!("sink `{n}`: `{}`: use info, warning or critical", r.min_severity),
                )
            })?;
            use std::time::Duration as D;
            sinks.push(SinkSpec {
                name: n,
                kind,
                url: r.url,
                secret,
                routing_key,
                timeout: D::from_millis(r.timeout_ms),
                max_concurrency: r.max_concurrency,
                max_attempts: r.max_attempts,
                max_retry: D::from_secs(r.max_retry_minutes * 60),
                backoff_initial: D::from_millis(r.backoff_initial_ms),
                backoff_max: D::from_millis(r.backoff_max_ms),
                min_severity,
                repeat_interval: r.repeat_interval_minutes.map(|m| m as i64 * MINUTE_MS),
                resend_interval: D::from_secs(r.resend_interval_secs),
            });
        }
        Ok(AlertConfig {
            grafana_url: self.grafana_url.trim_end_matches('/').to_string(),
            resolve_after: self.resolve_after_minutes as i64 * MINUTE_MS,
            repeat_interval: self.repeat_interval_minutes as i64 * MINUTE_MS,
            group_by,
            outbox_path: if self.outbox_path.is_absolute() {
                self.outbox_path
            } else {
                base.join(self.outbox_path)
            },
            silences: self.silences,
            sinks,
        })
    }
}

const MINUTE_MS: i64 = 60_000;

/// A Standard Webhooks secret: `whsec_<base64 key>`, or the raw text as key bytes.
fn signing_key(s: &str) -> Result<Secret, String> {
    use base64::Engine;
    if s.is_empty() {
        return Err("the secret is empty".into());
    }
    match s.strip_prefix("whsec_") {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(Secret)
            .map_err(|_| "a `whsec_` secret must be followed by base64 key bytes".into()),
        None => Ok(Secret(s.as_bytes().to_vec())),
    }
}

/// `[detect]`: keys, windows, baselines and sensitivity of the detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetect {
    /// `fewer`, `balanced` or `more` alerts; `[detect.thresholds]` overrides fields.
    #[serde(default = "default_preset")]
    pub preset: String,
    /// Key rollups, each a list of dimensions (brand, product, sku, region,
    /// channel, category, language).
    #[serde(default = "default_rollups")]
    pub rollups: Vec<Vec<String>>,
    #[serde(default = "default_step_secs")]
    pub step_secs: u64,
    #[serde(default = "default_windows_secs")]
    pub windows_secs: Vec<u64>,
    #[serde(default = "default_cluster_windows_secs")]
    pub cluster_windows_secs: Vec<u64>,
    #[serde(default = "default_out_of_orderness_secs")]
    pub out_of_orderness_secs: u64,
    #[serde(default = "default_allowed_lateness_secs")]
    pub allowed_lateness_secs: u64,
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    #[serde(default = "default_idle_ttl_hours")]
    pub idle_ttl_hours: u64,
    /// `hour_of_day` or `hour_of_week`.
    #[serde(default = "default_seasonality")]
    pub seasonality: String,
    #[serde(default = "default_baseline_memory_hours")]
    pub baseline_memory_hours: u64,
    #[serde(default = "default_min_history_hours")]
    pub min_history_hours: u64,
    #[serde(default = "default_clear_after_minutes")]
    pub clear_after_minutes: u64,
    #[serde(default = "default_cluster_similarity")]
    pub cluster_similarity: f32,
    #[serde(default = "default_max_clusters")]
    pub max_clusters: usize,
    #[serde(default = "default_sla_hours")]
    pub sla_hours: u64,
    #[serde(default)]
    pub thresholds: RawThresholds,
    #[serde(default)]
    pub spam: RawSpam,
}

impl Default for RawDetect {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

/// `[detect.thresholds]`: explicit overrides of the preset.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
}

/// `[detect.spam]`: the fake-wave filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpam {
    #[serde(default = "default_spam_scope")]
    pub scope: Vec<String>,
    #[serde(default = "default_near_dup_similarity")]
    pub near_dup_similarity: f64,
    #[serde(default = "default_burst_min")]
    pub burst_min: u32,
    #[serde(default = "default_spam_window_minutes")]
    pub window_minutes: u64,
    #[serde(default = "default_author_max")]
    pub author_max: u32,
    #[serde(default = "default_author_window_hours")]
    pub author_window_hours: u64,
    #[serde(default = "default_contradiction_prob")]
    pub contradiction_prob: f32,
    #[serde(default = "default_contradiction_min")]
    pub contradiction_min: u32,
}

impl Default for RawSpam {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

/// `[kafka]`: where events come from and where results go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    #[serde(default = "default_brokers")]
    pub brokers: String,
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Topics to subscribe to; a name starting with `^` is a regex.
    #[serde(default = "default_topics")]
    pub topics: Vec<String>,
    /// Where a group without committed offsets starts: `earliest` or `latest`.
    #[serde(default = "default_offset_reset")]
    pub auto_offset_reset: String,
    /// Stored offsets are committed this often (and on shutdown / revoke).
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// Extra librdkafka properties for consumer and producers (TLS, SASL, ...),
    /// passed through verbatim, e.g. `"security.protocol" = "SASL_SSL"`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

/// `[output]`: topics the engine produces to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Enriched scored events (optional).
    #[serde(default)]
    pub scored_topic: Option<String>,
    /// Include the 384-float embedding in scored events.
    #[serde(default)]
    pub scored_embedding: bool,
    /// Alert state changes, keyed by fingerprint.
    #[serde(default = "default_alerts_topic")]
    pub alerts_topic: String,
    /// Messages that could not be processed, with reason headers.
    #[serde(default = "default_dead_letter_topic")]
    pub dead_letter_topic: String,
}

impl Default for OutputConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

/// `[pipeline]`: queue sizes and timings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Events buffered between stages (backpressure beyond this pauses consumption).
    #[serde(default = "default_channel_capacity")]
    pub channel_capacity: usize,
    /// A partial batch waits at most this long for more texts.
    #[serde(default = "default_max_wait_ms")]
    pub batch_max_wait_ms: u64,
    /// Tokenizer threads.
    #[serde(default = "default_tokenizer_threads")]
    pub tokenizer_threads: usize,
    /// Deliveries awaited concurrently before acking.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Events are merged across partitions in event-time order; a partition
    /// with nothing buffered holds the merge at most this long.
    #[serde(default = "default_partition_idle_ms")]
    pub partition_idle_ms: u64,
    /// Events the merge may hold while waiting for a lagging partition;
    /// beyond it the oldest are released (and may count as late).
    #[serde(default = "default_merge_buffer")]
    pub merge_buffer: usize,
    /// On shutdown or partition revoke, in-flight work gets this long to finish.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

fn default_brokers() -> String {
    "127.0.0.1:9092".into()
}
fn default_group_id() -> String {
    "earshot".into()
}
fn default_topics() -> Vec<String> {
    vec!["reviews".into()]
}
fn default_offset_reset() -> String {
    "earliest".into()
}
fn default_commit_interval_ms() -> u64 {
    1000
}
fn default_alerts_topic() -> String {
    "earshot.alerts".into()
}
fn default_dead_letter_topic() -> String {
    "earshot.dead-letter".into()
}
fn default_channel_capacity() -> usize {
    2048
}
fn default_max_wait_ms() -> u64 {
    20
}
fn default_tokenizer_threads() -> usize {
    1
}
fn default_max_in_flight() -> usize {
    4096
}
fn default_merge_buffer() -> usize {
    20_000
}
fn default_partition_idle_ms() -> u64 {
    1000
}
fn default_drain_timeout_ms() -> u64 {
    30_000
}

/// `[model]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// `e5-small` (the real weights) or `random` (small random encoder).
    #[serde(default = "default_encoder")]
    pub encoder: String,
    /// Directory holding the files fetched by `scripts/setup.sh`.
    #[serde(default = "default_model_dir")]
    pub dir: PathBuf,
    pub weights: Option<PathBuf>,
    pub tokenizer: Option<PathBuf>,
    pub sentiment_head: Option<PathBuf>,
    pub category_head: Option<PathBuf>,
    /// Model window in tokens, special tokens included.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// `auto` (int8 on the CPU, f32 on CUDA), `int8` (unpadded Q4 x Q8
    /// integer kernels, CPU), `f32` (candle, dequantised dense GEMM) or `q4`
    /// (candle quantised matmul).
    #[serde(default)]
    pub matmul: MatmulMode,
    #[serde(default)]
    pub batch: RawBatch,
    #[serde(default)]
    pub random: RawRandom,
}

impl Default for RawModel {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

/// `[model.batch]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    /// Padded tokens per batch.
    #[serde(default = "default_batch_tokens")]
    pub max_tokens: usize,
    /// Texts per batch.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

impl Default for RawBatch {
    fn default() -> Self {
        Self {
            max_tokens: default_batch_tokens(),
            max_batch: default_max_batch(),
        }
    }
}

/// `[model.random]`: the small random encoder used by volume tests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRandom {
    #[serde(default = "default_random_hidden")]
    pub hidden: usize,
    #[serde(default = "default_random_layers")]
    pub layers: usize,
    #[serde(default = "default_random_heads")]
    pub heads: usize,
    #[serde(default = "default_random_intermediate")]
    pub intermediate: usize,
    #[serde(default = "default_random_seed")]
    pub seed: u64,
}

impl Default for RawRandom {
    fn default() -> Self {
        Self {
            hidden: default_random_hidden(),
            layers: default_random_layers(),
            heads: default_random_heads(),
            intermediate: default_random_intermediate(),
            seed: default_random_seed(),
        }
    }
}

fn default_preset() -> String {
    "balanced".into()
}
fn default_rollups() -> Vec<Vec<String>> {
    [
        &["brand"][..],
        &["brand", "product"],
        &["brand", "product", "category"],
        &["brand", "region"],
        &["region"],
        &["region", "category"],
    ]
    .iter()
    .map(|r| r.iter().map(|d| d.to_string()).collect())
    .collect()
}
fn default_step_secs() -> u64 {
    300
}
fn default_windows_secs() -> Vec<u64> {
    vec![900, 3600, 86_400]
}
fn default_cluster_windows_secs() -> Vec<u64> {
    vec![900, 3600]
}
fn default_out_of_orderness_secs() -> u64 {
    60
}
fn default_allowed_lateness_secs() -> u64 {
    600
}
fn default_max_keys() -> usize {
    50_000
}
fn default_idle_ttl_hours() -> u64 {
    336
}
fn default_seasonality() -> String {
    "hour_of_day".into()
}
fn default_baseline_memory_hours() -> u64 {
    168
}
fn default_min_history_hours() -> u64 {
    24
}
fn default_clear_after_minutes() -> u64 {
    120
}
fn default_cluster_similarity() -> f32 {
    0.5
}
fn default_max_clusters() -> usize {
    24
}
fn default_sla_hours() -> u64 {
    24
}
fn default_spam_scope() -> Vec<String> {
    vec!["brand".into(), "product".into()]
}
fn default_near_dup_similarity() -> f64 {
    0.75
}
fn default_burst_min() -> u32 {
    4
}
fn default_spam_window_minutes() -> u64 {
    60
}
fn default_author_max() -> u32 {
    4
}
fn default_author_window_hours() -> u64 {
    24
}
fn default_contradiction_prob() -> f32 {
    0.8
}
fn default_contradiction_min() -> u32 {
    5
}
fn default_encoder() -> String {
    "e5-small".into()
}
fn default_model_dir() -> PathBuf {
    PathBuf::from("models")
}
fn default_max_tokens() -> usize {
    512
}
fn default_batch_tokens() -> usize {
    4096
}
fn default_max_batch() -> usize {
    64
}
fn default_random_hidden() -> usize {
    64
}
fn default_random_layers() -> usize {
    2
}
fn default_random_heads() -> usize {
    4
}
fn default_random_intermediate() -> usize {
    128
}
fn default_random_seed() -> u64 {
    7
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub model: ModelSpec,
    pub batch: BatchLimits,
    pub kafka: KafkaConfig,
    pub mapping: Mapping,
    pub output: OutputConfig,
    pub pipeline: PipelineConfig,
    pub detect: DetectConfig,
    pub alert: AlertConfig,
}

/// Vocabulary of the XLM-R tokenizer (the random encoder must cover it).
const XLMR_VOCAB: usize = 250_037;

impl Config {
    /// Reads and validates a TOML file. Relative paths are taken from the
    /// file's directory.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, &path.display().to_string(), base)
    }

    /// Parses TOML text; `origin` names it in errors, `base` resolves paths.
    pub fn from_toml(text: &str, origin: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        raw.validate(base)
    }

    /// The built-in default: the real model from `./models`.
    pub fn default_in(base: &Path) -> Self {
        RawConfig::default()
            .validate(base)
            .expect("built-in defaults are valid")
    }
}

impl RawConfig {
    pub fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        let detect = self.detect.validate()?;
        let alert = self.alert.validate(base)?;
        if self.kafka.topics.is_empty() {
            return Err(ConfigError::Invalid {
                field: "kafka.topics",
                message: "list at least one topic (a name starting with `^` is a regex)".into(),
            });
        }
        if !matches!(self.kafka.auto_offset_reset.as_str(), "earliest" | "latest") {
            return Err(ConfigError::Invalid {
                field: "kafka.auto_offset_reset",
                message: format!("`{}`: use `earliest` or `latest`", self.kafka.auto_offset_reset),
            });
        }
        for (field, v) in [
            ("pipeline.channel_capacity", self.pipeline.channel_capacity),
            ("pipeline.tokenizer_threads", self.pipeline.tokenizer_threads),
            ("pipeline.max_in_flight", self.pipeline.max_in_flight),
            ("mapping.max_text_bytes", self.mapping.max_text_bytes),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    field,
                    message: "must be at least 1".into(),
                });
            }
        }
        if self.mapping.text.is_empty() {
            return Err(ConfigError::Invalid {
                field: "mapping.text",
                message: "must name the field holding the review text".into(),
            });
        }
        let (kafka, mapping, output, pipeline) = (self.kafka, self.mapping, self.output, self.pipeline);
        let m = self.model;
        let dir = if m.dir.is_absolute() {
            m.dir.clone()
        } else {
            base.join(&m.dir)
        };
        let in_dir = |p: Option<PathBuf>, name: &str| -> PathBuf {
            match p {
                Some(p) if p.is_absolute() => p,
                Some(p) => base.join(p),
                None => dir.join(name),
            }
        };
        if !(3..=512).contains(&m.max_tokens) {
            return Err(ConfigError::Invalid {
                field: "model.max_tokens",
                message: format!("{} is outside 3..=512 (the model's window)", m.max_tokens),
            });
        }
        if m.batch.max_batch == 0 {
            return Err(ConfigError::Invalid {
                field: "model.batch.max_batch",
                message: "must be at least 1".into(),
            });
        }
        if m.batch.max_tokens < m.max_tokens {
            return Err(ConfigError::Invalid {
                field: "model.batch.max_tokens",
                message: format!(
                    "{} is below model.max_tokens = {}; a full-length text must fit in one batch",
                    m.batch.max_tokens, m.max_tokens
                ),
            });
        }
        let (encoder, sentiment_head) = match m.encoder.as_str() {
            "e5-small" => (
                EncoderSpec::E5s1 {
                    weights: in_dir(m.weights, "e5-small-q4.bin"),
                },
                Some(in_dir(m.sentiment_head, "heads/sentiment.json")),
            ),
            "random" => {
                let r = m.random;
                if r.hidden == 0 || r.heads == 0 || !r.hidden.is_multiple_of(r.heads) || !r.hidden.is_multiple_of(32) {
                    return Err(ConfigError::Invalid {
                        field: "model.random.hidden",
                        message: format!(
                            "hidden = {} must be a positive multiple of 32 and of heads = {}",
                            r.hidden, r.heads
                        ),
                    });
                }
                if r.intermediate == 0 || !r.intermediate.is_multiple_of(32) {
                    return Err(ConfigError::Invalid {
                        field: "model.random.intermediate",
                        message: format!("{} must be a positive multiple of 32", r.intermediate),
                    });
                }
                let cfg = EncoderConfig {
                    hidden: r.hidden,
                    layers: r.layers,
                    heads: r.heads,
                    intermediate: r.intermediate,
                    vocab: XLMR_VOCAB,
                    max_positions: 512,
                    type_vocab: 1,
                    layer_norm_eps: 1e-12,
                };
                (
                    EncoderSpec::Random { cfg, seed: r.seed },
                    m.sentiment_head.map(|p| in_dir(Some(p), "")),
                )
            }
            other => {
                return Err(ConfigError::Invalid {
                    field: "model.encoder",
                    message: format!("unknown encoder `{other}`: use `e5-small` or `random`"),
                })
            }
        };
        let category_head = match (&encoder, m.category_head) {
            (_, Some(p)) => Some(in_dir(Some(p), "")),
            (EncoderSpec::E5s1 { .. }, None) => Some(dir.join("heads/category.json")),
            (EncoderSpec::Random { .. }, None) => None,
        };
        Ok(Config {
            model: ModelSpec {
                encoder,
                tokenizer: in_dir(m.tokenizer, "tokenizer.json"),
                sentiment_head,
                category_head,
                max_tokens: m.max_tokens,
                matmul: m.matmul,
                threads: 0,
            },
            batch: BatchLimits {
                max_tokens: m.batch.max_tokens,
                max_batch: m.batch.max_batch,
            },
            kafka,
            mapping,
            output,
            pipeline,
            detect,
            alert,
        })
    }
}

fn dims(field: &'static str, names: &[String]) -> Result<Vec<crate::types::Dim>, ConfigError> {
    names
        .iter()
        .map(|n| {
            crate::types::Dim::parse(n).ok_or_else(|| ConfigError::Invalid {
                field,
                message: format!(
                    "unknown dimension `{n}`: use brand, product, sku, region, channel, category or language"
                ),
            })
        })
        .collect()
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
        if let Some(r) = t.drift_ratio {
            if !(r > 1.0 && r.is_finite()) {
                return Err(inv(
                    "detect.thresholds.drift_ratio",
                    format!("{r} must be a rate ratio above 1 (e.g. 3 for a tripling)"),
                ));
            }
        }
        if let Some(h) = t.drift_h {
            if !(h > 0.0 && h.is_finite()) {
                return Err(inv(
                    "detect.thresholds.drift_h",
                    format!("{h} must be positive (e.g. 10; larger means fewer, later drift alerts)"),
                ));
            }
        }
        th.drift_ratio = t.drift_ratio.unwrap_or(th.drift_ratio);
        th.drift_h = t.drift_h.unwrap_or(th.drift_h);
        if self.step_secs == 0 || 3600 % self.step_secs != 0 {
            return Err(inv(
                "detect.step_secs",
                format!("{} must divide an hour", self.step_secs),
            ));
        }
        let step = self.step_secs as i64 * 1000;
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
                        Ok(w as i64 * 1000)
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
            out_of_orderness: self.out_of_orderness_secs as i64 * 1000,
            allowed_lateness: self.allowed_lateness_secs as i64 * 1000,
            max_keys: self.max_keys.max(1),
            idle_ttl: self.idle_ttl_hours.max(1) as i64 * hour,
            seasonality,
            baseline_memory: self.baseline_memory_hours.max(1) as i64 * hour,
            min_history: self.min_history_hours as i64 * hour,
            clear_after: self.clear_after_minutes as i64 * 60_000,
            thresholds: th,
            cluster_similarity: self.cluster_similarity,
            max_clusters: self.max_clusters.max(1),
            spam: crate::detect::SpamConfig {
                scope: dims("detect.spam.scope", &sp.scope)?,
                near_dup_similarity: sp.near_dup_similarity,
                burst_min: sp.burst_min.max(2),
                window: sp.window_minutes.max(1) as i64 * 60_000,
                author_max: sp.author_max.max(2),
                author_window: sp.author_window_hours.max(1) as i64 * hour,
                contradiction_prob: sp.contradiction_prob,
                contradiction_min: sp.contradiction_min.max(1),
            },
            sla: self.sla_hours as i64 * hour,
            ..d
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_point_into_models_dir() {
        let c = Config::default_in(Path::new("/srv/earshot"));
        assert_eq!(
            c.model.encoder,
            EncoderSpec::E5s1 {
                weights: PathBuf::from("/srv/earshot/models/e5-small-q4.bin")
            }
        );
        assert_eq!(
            c.model.sentiment_head.as_deref(),
            Some(Path::new("/srv/earshot/models/heads/sentiment.json"))
        );
        assert_eq!(c.batch.max_batch, 64);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let e = Config::from_toml("[model]\nencodr = \"x\"\n", "t.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("encodr"), "{e}");
        let e = Config::from_toml("[model]\nencoder = \"gpt\"\n", "t.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("model.encoder"), "{e}");
        let e = Config::from_toml("[model]\nmax_tokens = 4096\n", "t.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("model.max_tokens"), "{e}");
        let e = Config::from_toml(
            "[model]\nencoder = \"random\"\n[model.random]\nhidden = 50\n",
            "t.toml",
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("model.random.hidden"), "{e}");
    }

    #[test]
    fn detect_defaults_match_the_detector_and_overrides_apply() {
        let c = Config::default_in(Path::new("."));
        assert_eq!(c.detect, DetectConfig::default());
        let c = Config::from_toml(
            "[detect]\npreset = \"fewer\"\nrollups = [[\"brand\", \"language\"]]\n[detect.thresholds]\nmin_count = 9\n",
            "t.toml",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.detect.thresholds.min_count, 9);
        assert_eq!(c.detect.thresholds.p_volume, Preset::Fewer.thresholds().p_volume);
        let e = Config::from_toml("[detect]\nwindows_secs = [1000]\n", "t.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("detect.windows_secs"), "{e}");
        let e = Config::from_toml("[detect]\nrollups = [[\"shop\"]]\n", "t.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("shop"), "{e}");
        let e = Config::from_toml("[detect.spam]\nburst = 3\n", "t.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("burst"), "{e}");
        let c = Config::from_toml(
            "[detect.thresholds]\ndrift_ratio = 2.5\ndrift_h = 12\n",
            "t.toml",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(
            (c.detect.thresholds.drift_ratio, c.detect.thresholds.drift_h),
            (2.5, 12.0)
        );
        for (toml, field) in [
            ("drift_ratio = 1.0", "detect.thresholds.drift_ratio"),
            ("drift_h = -1.0", "detect.thresholds.drift_h"),
        ] {
            let e = Config::from_toml(&format!("[detect.thresholds]\n{toml}\n"), "t.toml", Path::new(".")).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn alert_sinks_are_validated_with_the_field_and_secrets_redacted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "whsec_c2VjcmV0LWJ5dGVz\n").unwrap();
        let ok = "[[alert.sinks]]\nname = \"g\"\nkind = \"generic\"\nurl = \"http://h/x\"\nsecret_file = \"s\"\n";
        let c = Config::from_toml(ok, "t.toml", dir.path()).unwrap();
        assert_eq!(c.alert.sinks[0].secret.as_ref().unwrap().0, b"secret-bytes");
        assert!(!format!("{:?}", c.alert).contains("secret-bytes"));
        assert_eq!(c.alert.outbox_path, dir.path().join("earshot-data/outbox.redb"));
        for (toml, field) in [
            (ok.replace("generic", "teams"), "alert.sinks.kind"),
            (ok.replace("http://h/x", "h/x"), "alert.sinks.url"),
            (ok.replace("secret_file = \"s\"\n", ""), "alert.sinks.secret_env"),
            (ok.replace("\"s\"", "\"missing\""), "alert.sinks.secret_file"),
            (
                ok.replace("secret_file = \"s\"", "secret_env = \"EARSHOT_TEST_UNSET_VAR\""),
                "alert.sinks.secret_env",
            ),
            (
                ok.replace("generic", "pagerduty").replace("secret_file = \"s\"\n", ""),
                "alert.sinks.routing_key_env",
            ),
            (format!("{ok}min_severity = \"high\"\n"), "alert.sinks.min_severity"),
            (format!("{ok}{}", ok), "alert.sinks.name"),
            (
                "[alert]\nsilences = [{ matchers = { brand = \"V\" }, ends_at = \"soon\" }]\n".to_string(),
                "alert.silences",
            ),
            ("[alert]\ngroup_by = [\"shop\"]\n".to_string(), "alert.group_by"),
        ] {
            let e = Config::from_toml(&toml, "t.toml", dir.path()).unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
    }

    #[test]
    fn shipped_example_config_is_valid_and_matches_the_defaults() {
        let root = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
            || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            std::path::PathBuf::from,
        );
        let example = Config::from_file(&root.join("examples/earshot.toml")).unwrap();
        let defaults = Config::default_in(&root.join("examples"));
        assert_eq!(example.kafka, defaults.kafka);
        assert_eq!(example.mapping, defaults.mapping);
        assert_eq!(example.output, defaults.output);
        assert_eq!(example.pipeline, defaults.pipeline);
        assert_eq!(example.detect, defaults.detect);
        assert_eq!(example.alert, defaults.alert);
        assert_eq!(example.model.tokenizer, root.join("examples/../models/tokenizer.json"));
    }
}
