//! Pipeline configuration: a TOML file validated into typed structs at start-up.
//! Runtime knobs (device, ports, log format) are CLI flags, not config.
//!
//! Loading runs three steps, one per concern:
//! 1. parse: every table is `#[serde(default, deny_unknown_fields)]`, and each
//!    section's defaults are its struct's one `impl Default`;
//! 2. validate ([`RawConfig::validate`]): pure, reads no files and no
//!    environment; relative paths are joined to the config file's directory;
//! 3. resolve secrets ([`secrets::resolve`]): the only step that reads
//!    environment variables and secret files.
//!
//! One file per section: [`kafka`](KafkaConfig) (`[kafka]`, `[output]`,
//! `[pipeline]`), [`model`](RawModel), [`detect`](RawDetect), [`alert`](RawAlert).

mod alert;
mod detect;
mod kafka;
mod model;
pub mod secrets;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::detect::DetectConfig;
use crate::ingest::mapping::Mapping;
use crate::model::{BatchLimits, ModelSpec};
pub use alert::{RawAlert, RawSink};
pub use detect::{RawDetect, RawSpam, RawThresholds};
pub use earshot_alert::config::{severity_rank, AlertConfig, Secret, SinkKind, SinkSpec, SinkUrl};
pub use kafka::{KafkaConfig, OutputConfig, PipelineConfig};
pub use model::{RawBatch, RawModel, RawRandom};
use secrets::SecretRef;

/// Errors found while reading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {path}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid config field `{field}`: {message}")]
    Invalid { field: &'static str, message: String },
    /// `owner` says whose secret: "sink `pd`", "property `sasl.password`".
    #[error("invalid config field `{field}`: {owner}: cannot read {}", path.display())]
    SecretFile {
        field: &'static str,
        owner: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config field `{field}`: sink `{sink}`: a `whsec_` secret must be followed by base64 key bytes")]
    SecretEncoding {
        field: &'static str,
        sink: String,
        #[source]
        source: base64::DecodeError,
    },
}

/// The whole file; a missing table takes its section's `Default`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub model: RawModel,
    pub kafka: KafkaConfig,
    pub mapping: Mapping,
    pub output: OutputConfig,
    pub pipeline: PipelineConfig,
    pub detect: RawDetect,
    pub alert: RawAlert,
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

/// A validated [`Config`] whose secrets are still references (a variable's
/// name, a file's path): its sinks have no `secret`/`routing_key` yet (nor a
/// `url` given by `url_env`/`url_file`), and `kafka.properties` lacks those of
/// `kafka.properties_env`/`properties_file`; [`secrets::resolve`] reads them.
#[derive(Debug)]
#[must_use = "secrets::resolve turns this into a Config"]
pub struct Unresolved {
    config: Config,
    secrets: Vec<SecretRef>,
}

impl Unresolved {
    /// The secrets [`secrets::resolve`] will read.
    pub fn secrets(&self) -> &[SecretRef] {
        &self.secrets
    }
}

impl Config {
    /// Reads and validates a TOML file, secrets from the process environment.
    /// Relative paths are taken from the file's directory.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, &path.display().to_string(), base)
    }

    /// Parses TOML text; `origin` names it in errors, `base` resolves paths.
    /// Secrets come from the process environment.
    pub fn from_toml(text: &str, origin: &str, base: &Path) -> Result<Self, ConfigError> {
        Self::from_toml_with_env(text, origin, base, secrets::process_env)
    }

    /// [`Config::from_toml`] with environment variables looked up in `env`.
    pub fn from_toml_with_env(
        text: &str,
        origin: &str,
        base: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw = RawConfig::parse(text, origin)?;
        let config = secrets::resolve(raw.validate(base)?, env)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        config.check_clock(now)?;
        Ok(config)
    }

    /// Settings that only make sense against the wall clock `now` (ms):
    /// a `mapping.min_event_time` in the future would dead-letter every event.
    pub fn check_clock(&self, now: i64) -> Result<(), ConfigError> {
        if self.mapping.min_event_time > now {
            return Err(ConfigError::Invalid {
                field: "mapping.min_event_time",
                message: format!(
                    "{} is later than the clock ({}): every event would be dead-lettered as `bad_time`; \
                     give a time in the past (default 2000-01-01T00:00:00Z)",
                    earshot_core::time::rfc3339(self.mapping.min_event_time),
                    earshot_core::time::rfc3339(now),
                ),
            });
        }
        Ok(())
    }

    /// The built-in default: the real model from `./models`.
    pub fn default_in(base: &Path) -> Self {
        let unresolved = RawConfig::default()
            .validate(base)
            .expect("built-in defaults are valid");
        // The defaults name no secrets: nothing is looked up.
        secrets::resolve(unresolved, |_| None).expect("built-in defaults need no secrets")
    }
}

impl RawConfig {
    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: origin.to_string(),
            source,
        })
    }

    /// Checks every section and resolves relative paths against `base`. Pure:
    /// reads no files and no environment variables; secrets stay references.
    pub fn validate(self, base: &Path) -> Result<Unresolved, ConfigError> {
        let detect = self.detect.validate()?;
        let (alert, mut secrets) = self.alert.validate(base)?;
        secrets.extend(self.kafka.validate(base)?);
        self.pipeline.validate()?;
        if self.output.dead_letter_max_bytes < 1024 {
            return Err(ConfigError::Invalid {
                field: "output.dead_letter_max_bytes",
                message: format!(
                    "{} is too small: at least 1024 (keep it under the producer's message.max.bytes)",
                    self.output.dead_letter_max_bytes
                ),
            });
        }
        if self.mapping.max_text_bytes == 0 {
            return Err(ConfigError::Invalid {
                field: "mapping.max_text_bytes",
                message: "must be at least 1".into(),
            });
        }
        if self.mapping.text.is_empty() {
            return Err(ConfigError::Invalid {
                field: "mapping.text",
                message: "must name the field holding the review text".into(),
            });
        }
        // The event-time sanity window (see `Mapping::time_range`).
        let max_window = crate::ingest::mapping::MAX_TIME_WINDOW_SECS;
        if !(1..=max_window).contains(&self.mapping.max_skew_secs) {
            return Err(ConfigError::Invalid {
                field: "mapping.max_skew_secs",
                message: format!(
                    "{} is out of range: give 1 to {max_window} seconds (default 3600); events further \
                     ahead than this are dead-lettered as `bad_time`",
                    self.mapping.max_skew_secs
                ),
            });
        }
        if self.mapping.max_age_hours > max_window / 3600 {
            return Err(ConfigError::Invalid {
                field: "mapping.max_age_hours",
                message: format!(
                    "{} is out of range: give 0 (off, the default) to {} hours",
                    self.mapping.max_age_hours,
                    max_window / 3600
                ),
            });
        }
        let (model, batch) = self.model.validate(base)?;
        let config = Config {
            model,
            batch,
            kafka: self.kafka,
            mapping: self.mapping,
            output: self.output,
            pipeline: self.pipeline,
            detect,
            alert,
        };
        Ok(Unresolved { config, secrets })
    }
}

/// Parses key dimensions (`brand`, `region`, ...); `field` names the key in errors.
/// The longest duration a config field may give: 100 years.
const MAX_DURATION_MS: i64 = 100 * 365 * 86_400_000;

/// `value` in units of `unit_ms` milliseconds as event-time milliseconds,
/// rejected (naming the field) beyond 100 years instead of overflowing.
fn duration_ms(field: &'static str, value: u64, unit_ms: i64) -> Result<i64, ConfigError> {
    i64::try_from(value)
        .ok()
        .and_then(|v| v.checked_mul(unit_ms))
        .filter(|ms| *ms <= MAX_DURATION_MS)
        .ok_or_else(|| ConfigError::Invalid {
            field,
            message: format!(
                "{value} is too long: at most 100 years ({} in this unit)",
                MAX_DURATION_MS / unit_ms
            ),
        })
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
