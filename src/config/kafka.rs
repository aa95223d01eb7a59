//! `[kafka]`, `[output]` and `[pipeline]`: where events come from, where results
//! go, and the queue sizes and timings between the stages. These sections need
//! no conversion, so the raw structs are also the validated ones.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;

/// `[kafka]`: where events come from and where results go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    pub brokers: String,
    pub group_id: String,
    /// Topics to subscribe to; a name starting with `^` is a regex.
    pub topics: Vec<String>,
    /// Where a group without committed offsets starts: `earliest` or `latest`.
    pub auto_offset_reset: String,
    /// Stored offsets are committed this often (and on shutdown / revoke).
    pub commit_interval_ms: u64,
    /// Extra librdkafka properties for consumer and producers (TLS, SASL, ...),
    /// passed through verbatim, e.g. `"security.protocol" = "SASL_SSL"`.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            group_id: "earshot".into(),
            topics: vec!["reviews".into()],
            auto_offset_reset: "earliest".into(),
            commit_interval_ms: 1000,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.topics.is_empty() {
            return Err(ConfigError::Invalid {
                field: "kafka.topics",
                message: "list at least one topic (a name starting with `^` is a regex)".into(),
            });
        }
        if !matches!(self.auto_offset_reset.as_str(), "earliest" | "latest") {
            return Err(ConfigError::Invalid {
                field: "kafka.auto_offset_reset",
                message: format!("`{}`: use `earliest` or `latest`", self.auto_offset_reset),
            });
        }
        Ok(())
    }
}

/// `[output]`: topics the engine produces to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Enriched scored events (optional).
    pub scored_topic: Option<String>,
    /// Include the 384-float embedding in scored events.
    pub scored_embedding: bool,
    /// Alert state changes, keyed by fingerprint.
    pub alerts_topic: String,
    /// Messages that could not be processed, with reason headers.
    pub dead_letter_topic: String,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            scored_topic: None,
            scored_embedding: false,
            alerts_topic: "earshot.alerts".into(),
            dead_letter_topic: "earshot.dead-letter".into(),
        }
    }
}

/// `[pipeline]`: queue sizes and timings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Events buffered between stages (backpressure beyond this pauses consumption).
    pub channel_capacity: usize,
    /// A partial batch waits at most this long for more texts.
    pub batch_max_wait_ms: u64,
    /// Tokenizer threads.
    pub tokenizer_threads: usize,
    /// Deliveries awaited concurrently before acking.
    pub max_in_flight: usize,
    /// Events are merged across partitions in event-time order; a partition
    /// with nothing buffered holds the merge at most this long.
    pub partition_idle_ms: u64,
    /// Events the merge may hold while waiting for a lagging partition;
    /// beyond it the oldest are released (and may count as late).
    pub merge_buffer: usize,
    /// On shutdown or partition revoke, in-flight work gets this long to finish.
    pub drain_timeout_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 2048,
            batch_max_wait_ms: 20,
            tokenizer_threads: 1,
            max_in_flight: 4096,
            partition_idle_ms: 1000,
            merge_buffer: 20_000,
            drain_timeout_ms: 30_000,
        }
    }
}

impl PipelineConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("pipeline.channel_capacity", self.channel_capacity),
            ("pipeline.tokenizer_threads", self.tokenizer_threads),
            ("pipeline.max_in_flight", self.max_in_flight),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    field,
                    message: "must be at least 1".into(),
                });
            }
        }
        Ok(())
    }
}
