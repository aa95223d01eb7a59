//! Exit codes: what kind of failure stopped a command, so scripts and
//! supervisors can tell a bad configuration (fix and restart) from an
//! unreachable broker (retry later) from a bug.

use std::process::ExitCode;

use earshot::config::ConfigError;
use earshot::ingest::IngestError;
use earshot::model::e5s1::E5s1Error;
use earshot::model::ModelError;
use earshot::pipeline::PipelineError;
use earshot::replay::ReplayError;

/// Every exit code the CLI uses (also listed in `earshot --help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Ok = 0,
    /// 1: an internal error (a bug, or a failure not classified below).
    Internal = 1,
    /// 2: usage or configuration (bad flag, bad config file or field).
    Usage = 2,
    /// 3: `run` stopped before in-flight work was acknowledged (drain timeout).
    NotDrained = 3,
    /// 4: `replay` found no data in the input or time range.
    NoData = 4,
    /// 5: Kafka (broker unreachable, topic missing, delivery failed).
    Broker = 5,
    /// 6: the model (files missing or corrupt, checksum, inference failure).
    Model = 6,
    /// 7: reading or writing local files (inputs, report, outbox).
    Io = 7,
}

/// Shown under `earshot --help`.
pub const HELP: &str = "Exit codes: 0 ok, 1 internal error, 2 usage or configuration, \
3 run stopped before in-flight work was acknowledged, 4 replay found no data, \
5 Kafka (broker, topic, delivery), 6 model files or inference, 7 local file I/O.";

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// The exit code of a failed command: the first error in the chain whose
/// type says what failed (outermost first).
pub fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if cause.is::<ConfigError>() || cause.is::<earshot::server::HttpConfigError>() {
            return Exit::Usage;
        }
        if cause.is::<ModelError>() || cause.is::<E5s1Error>() {
            return Exit::Model;
        }
        if cause.is::<rdkafka::error::KafkaError>() {
            return Exit::Broker;
        }
        if let Some(e) = cause.downcast_ref::<IngestError>() {
            return match e {
                IngestError::Io { .. } => Exit::Io,
                _ => Exit::Broker,
            };
        }
        if let Some(e) = cause.downcast_ref::<PipelineError>() {
            return match e {
                PipelineError::Delivery { .. } | PipelineError::ProducerFatal { .. } => Exit::Broker,
                _ => Exit::Internal,
            };
        }
        if let Some(ReplayError::Io { .. }) = cause.downcast_ref::<ReplayError>() {
            return Exit::Io;
        }
        if cause.is::<earshot::alert::AlertError>() || cause.is::<std::io::Error>() {
            return Exit::Io;
        }
    }
    Exit::Internal
}

/// The error and its causes on one line, each cause once: a message that
/// already ends with its source's text (`cannot read x: No such file`) does
/// not repeat it.
pub fn render(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn causes_map_to_their_exit_code() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let config = anyhow::Error::new(ConfigError::Read {
            path: "x.toml".into(),
            source: io(),
        })
        .context("failed to load config x.toml");
        assert_eq!(classify(&config), Exit::Usage);
        let public = anyhow::Error::new(earshot::server::HttpConfigError::PublicWithoutToken(
            "0.0.0.0:9464".parse().unwrap(),
        ));
        assert_eq!(classify(&public), Exit::Usage);
        let model = anyhow::Error::new(ModelError::EmptyText).context("failed to load the model");
        assert_eq!(classify(&model), Exit::Model);
        let kafka = anyhow::Error::new(IngestError::Topic("no partitions".into())).context("consumer");
        assert_eq!(classify(&kafka), Exit::Broker);
        let fatal = anyhow::Error::new(PipelineError::ProducerFatal {
            reason: "OutOfOrderSequenceNumber".into(),
        })
        .context("pipeline failed");
        assert_eq!(classify(&fatal), Exit::Broker);
        assert!(render(&fatal).contains("producer failed fatally"));
        assert!(render(&fatal).contains("redelivers from the last committed offset"));
        let file: anyhow::Result<()> = Err(io()).context("cannot read input.jsonl");
        assert_eq!(classify(&file.unwrap_err()), Exit::Io);
        assert_eq!(classify(&anyhow::anyhow!("something odd")), Exit::Internal);
    }

    #[test]
    fn a_cause_already_in_its_parent_message_is_not_repeated() {
        let err = anyhow::Error::new(ConfigError::Read {
            path: "x.toml".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "No such file"),
        })
        .context("failed to load config x.toml");
        assert_eq!(
            render(&err),
            "failed to load config x.toml: cannot read config file x.toml: No such file"
        );
        let plain: anyhow::Result<()> = Err(std::io::Error::other("disk full")).context("cannot write report");
        assert_eq!(render(&plain.unwrap_err()), "cannot write report: disk full");
    }
}
