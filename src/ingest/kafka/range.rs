//! Bounded reads of a topic between two timestamps, for `earshot replay`.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;
use tokio::sync::mpsc;

use super::client_config;
use super::poll::raw_message;
use crate::config::KafkaConfig;
use crate::ingest::{IngestError, RawMessage};

/// One partition's slice of a bounded read: offsets `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRange {
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

/// A bounded, read-only reader of one topic between two timestamps (replay).
///
/// It uses a fresh random `group.id` (never the live group), `assign` instead
/// of `subscribe`, `enable.auto.commit=false`, and never commits: the live
/// consumer group's offsets are untouched. Start offsets come from
/// `offsets_for_times(from)`, end offsets from `offsets_for_times(to)` (or the
/// high watermark when `to` is past the last message).
pub struct KafkaRange {
    consumer: BaseConsumer,
    topic: String,
    ranges: Vec<PartitionRange>,
}

impl KafkaRange {
    /// Looks up the offsets of `[from_ms, to_ms)` per partition (`None`: the
    /// beginning / the end of the topic).
    pub fn open(cfg: &KafkaConfig, topic: &str, from_ms: Option<i64>, to_ms: Option<i64>) -> Result<Self, IngestError> {
        use rdkafka::{Offset, TopicPartitionList};
        let timeout = Duration::from_secs(10);
        let mut c = client_config(cfg);
        c.set("group.id", format!("earshot-replay-{:016x}", rand::random::<u64>()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer = c.create()?;
        let md = consumer.fetch_metadata(Some(topic), timeout)?;
        let parts: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if parts.is_empty() {
            return Err(IngestError::Topic(format!(
                "topic `{topic}` not found or has no partitions on {}: check --topic and kafka.brokers",
                cfg.brokers
            )));
        }
        let lookup = |at: i64| -> Result<Vec<Offset>, IngestError> {
            let mut tpl = TopicPartitionList::new();
            for &p in &parts {
                tpl.add_partition_offset(topic, p, Offset::Offset(at))?;
            }
            let got = consumer.offsets_for_times(tpl, timeout)?;
            Ok(parts
                .iter()
                .map(|&p| got.find_partition(topic, p).map_or(Offset::End, |e| e.offset()))
                .collect())
        };
        let mut ranges = Vec::new();
        let starts = from_ms.map(lookup).transpose()?;
        let ends = to_ms.map(lookup).transpose()?;
        for (i, &p) in parts.iter().enumerate() {
            let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
            let pick = |o: Option<&Offset>, default: i64| match o {
                Some(Offset::Offset(x)) => (*x).clamp(low, high),
                Some(_) => high,
                None => default,
            };
            let start = pick(starts.as_ref().map(|s| &s[i]), low);
            let end = pick(ends.as_ref().map(|s| &s[i]), high);
            ranges.push(PartitionRange {
                partition: p,
                start,
                end: end.max(start),
            });
        }
        Ok(Self {
            consumer,
            topic: topic.to_string(),
            ranges,
        })
    }

    pub fn ranges(&self) -> &[PartitionRange] {
        &self.ranges
    }

    /// Messages in the range (before filtering nothing: offsets, not events).
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|r| (r.end - r.start) as u64).sum()
    }

    /// Reads every partition up to its end offset into `tx` (blocking while
    /// the channel is full). Must run on a blocking thread. Returns the
    /// messages sent. Fails if no progress is made for `stall`.
    pub fn read(self, tx: &mpsc::Sender<RawMessage>, stall: Duration) -> Result<u64, IngestError> {
        use rdkafka::{Offset, TopicPartitionList};
        let mut open: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for r in self.ranges.iter().filter(|r| r.end > r.start) {
            tpl.add_partition_offset(&self.topic, r.partition, Offset::Offset(r.start))?;
            open.insert(r.partition, r.end);
        }
        if open.is_empty() {
            return Ok(0);
        }
        self.consumer.assign(&tpl)?;
        let mut sent = 0u64;
        let mut last = Instant::now();
        while !open.is_empty() {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    last = Instant::now();
                    let Some(&end) = open.get(&m.partition()) else { continue };
                    if m.offset() >= end {
                        open.remove(&m.partition());
                        continue;
                    }
                    let raw = raw_message(&m);
                    if m.offset() + 1 >= end {
                        open.remove(&m.partition());
                    }
                    drop(m);
                    if tx.blocking_send(raw).is_err() {
                        return Ok(sent);
                    }
                    sent += 1;
                }
                Some(Err(e)) => tracing::warn!(error = %e, "kafka replay consumer error"),
                None => {
                    // Gaps (compaction, transaction markers): done when the position passed the end.
                    if let Ok(pos) = self.consumer.position() {
                        for e in pos.elements() {
                            if let (Offset::Offset(p), Some(&end)) = (e.offset(), open.get(&e.partition())) {
                                if p >= end {
                                    open.remove(&e.partition());
                                }
                            }
                        }
                    }
                    if !open.is_empty() && last.elapsed() > stall {
                        return Err(IngestError::Topic(format!(
                            "{}: no progress for {}s with {} partitions unfinished",
                            self.topic,
                            stall.as_secs(),
                            open.len()
                        )));
                    }
                }
            }
        }
        Ok(sent)
    }
}
