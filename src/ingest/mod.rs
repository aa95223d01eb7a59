//! Sources of events: Kafka (consumer group, at-least-once), JSONL files and
//! in-memory lists, behind one [`Source`] type, plus the dead-letter contract.
//!
//! A source yields [`RawMessage`]s in order per partition and accepts
//! acknowledgements (`ack`) in that same order once a message's effects are
//! durable; only then may its offset be committed.

pub mod file;
pub mod kafka;
pub mod mapping;

use crate::types::{EventTime, SourcePos};

/// A message as read from a source, before decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct RawMessage {
    pub payload: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
    /// Broker/create timestamp, used when the event has no time field.
    pub timestamp: Option<EventTime>,
    pub pos: SourcePos,
}

/// Errors of sources and sinks.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A topic that cannot be read as asked (missing, no partitions, stalled).
    #[error("{0}")]
    Topic(String),
}

/// What the source knows about partitions: how many messages it has handed
/// to the pipeline per partition, and whether more are waiting unread.
pub trait SourceProgress: Send + Sync {
    /// Every partition the source has handed out at least one message from.
    fn progress(&self) -> Vec<PartitionStatus>;

    /// True while the source is giving partitions back (a consumer-group
    /// revoke): nothing more arrives until it finishes, and it waits for the
    /// pipeline to drain, so the merge must release what it holds instead of
    /// waiting for unread data.
    fn revoking(&self) -> bool {
        false
    }
}

/// A partition of a source: topic (or file) name and partition number.
pub type PartitionKey = (String, i32);

/// What a source has done with one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStatus {
    pub key: PartitionKey,
    /// Messages handed to the pipeline so far.
    pub handed_out: u64,
    /// Whether the partition holds messages not read yet.
    pub more_unread: bool,
}
