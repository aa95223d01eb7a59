//! `[kafka]`, `[output]` and `[pipeline]`: where events come from, where results
//! go, and the queue sizes and timings between the stages. These sections need
//! no conversion, so the raw structs are also the validated ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::secrets::{SecretRef, SecretSource, SecretTarget};
use super::ConfigError;

/// `[kafka]`: where events come from and where results go. `Debug` hides the
/// values of secret properties (see [`is_secret_property`]).
#[derive(Clone, PartialEq, Deserialize)]
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
    /// After loading it also holds the properties read from
    /// `properties_env` and `properties_file`.
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties read from environment variables at start-up,
    /// property → variable, e.g. `"sasl.password" = "KAFKA_SASL_PASSWORD"`:
    /// secrets stay out of the config file.
    pub properties_env: BTreeMap<String, String>,
    /// librdkafka properties read from files (trimmed) at start-up, property
    /// → path (relative to the config file), e.g. `"sasl.password" = "/run/secrets/kafka"`.
    pub properties_file: BTreeMap<String, PathBuf>,
}

/// librdkafka properties whose values are credentials (passwords, client
/// secrets, private keys, JAAS / OAUTHBEARER configs): never printed.
pub fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "passphrase",
        "jaas",
        "key.pem",
        "oauthbearer.config",
        "private",
    ]
    .iter()
    .any(|w| k.contains(w))
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Props<'a>(&'a KafkaConfig);
        impl std::fmt::Debug for Props<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let c = self.0;
                f.debug_map()
                    .entries(c.properties.iter().map(|(k, v)| {
                        let hide = is_secret_property(k)
                            || c.properties_env.contains_key(k)
                            || c.properties_file.contains_key(k);
                        (k, if hide { "***" } else { v.as_str() })
                    }))
                    .finish()
            }
        }
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("commit_interval_ms", &self.commit_interval_ms)
            .field("properties", &Props(self))
            .field("properties_env", &self.properties_env)
            .field("properties_file", &self.properties_file)
            .finish()
    }
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
            properties_env: BTreeMap::new(),
            properties_file: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Checks the section; returns the properties to read from the
    /// environment or files (paths joined to `base`) as references.
    pub(super) fn validate(&self, base: &Path) -> Result<Vec<SecretRef>, ConfigError> {
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
        let mut refs = Vec::new();
        for (p, var) in &self.properties_env {
            if self.properties.contains_key(p) {
                return Err(ConfigError::Invalid {
                    field: "kafka.properties_env",
                    message: format!("property `{p}` is also in kafka.properties; give it in one place"),
                });
            }
            refs.push(SecretRef {
                target: SecretTarget::KafkaProperty(p.clone()),
                source: SecretSource::Env(var.clone()),
            });
        }
        for (p, path) in &self.properties_file {
            if self.properties.contains_key(p) || self.properties_env.contains_key(p) {
                return Err(ConfigError::Invalid {
                    field: "kafka.properties_file",
                    message: format!(
                        "property `{p}` is also in kafka.properties or kafka.properties_env; give it in one place"
                    ),
                });
            }
            refs.push(SecretRef {
                target: SecretTarget::KafkaProperty(p.clone()),
                source: SecretSource::File(if path.is_absolute() {
                    path.clone()
                } else {
                    base.join(path)
                }),
            });
        }
        Ok(refs)
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
    /// Create the output topics (scored, alerts, dead letter) at start-up
    /// when missing, instead of relying on broker auto-creation (1 partition).
    pub create_topics: bool,
    /// Partitions of output topics created at start-up.
    pub topic_partitions: i32,
    /// Replication factor of output topics created at start-up
    /// (-1: the broker's `default.replication.factor`).
    pub topic_replication: i32,
    /// A dead letter's payload is cut to this many bytes (header
    /// `earshot.truncated` = the original size) so that it always fits the
    /// producer's `message.max.bytes` (librdkafka default 1,000,000); the
    /// whole message stays in the source topic at the offset in the headers.
    pub dead_letter_max_bytes: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            scored_topic: None,
            scored_embedding: false,
            alerts_topic: "earshot.alerts".into(),
            dead_letter_topic: "earshot.dead-letter".into(),
            create_topics: true,
            topic_partitions: 6,
            topic_replication: -1,
            dead_letter_max_bytes: 900_000,
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
    /// `/readyz` answers 503 (reason `stalled`) once work has waited (in
    /// flight or consumer lag) this long without any message acknowledged.
    pub stall_timeout_ms: u64,
    /// A single write to an output topic (queueing plus broker
    /// acknowledgement) fails after this long; the run then stops with exit
    /// code 5 and the message is redelivered after a restart. Sets the
    /// producer's `message.timeout.ms` unless kafka.properties gives it.
    pub send_timeout_ms: u64,
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
            stall_timeout_ms: 60_000,
            send_timeout_ms: 120_000,
        }
    }
}

impl PipelineConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("pipeline.channel_capacity", self.channel_capacity),
            ("pipeline.tokenizer_threads", self.tokenizer_threads),
            ("pipeline.max_in_flight", self.max_in_flight),
            ("pipeline.stall_timeout_ms", self.stall_timeout_ms as usize),
            ("pipeline.send_timeout_ms", self.send_timeout_ms as usize),
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
