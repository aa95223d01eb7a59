//! What the consumer knows about its progress, shared between the poll
//! thread, the rebalance callbacks, the pipeline's event-time merge and
//! readiness: broker reachability, messages in flight, per-partition offsets
//! and high watermarks, and how revokes went.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::EngineContext;
use crate::ingest::{PartitionKey, PartitionStatus};

/// Whether the brokers are reachable as the consumer sees them: set by
/// librdkafka's "all brokers down" error (every broker connection failed),
/// cleared by the next successful round trip (a message, a watermark query
/// or a metadata probe from the poll thread). Readiness reads it.
#[derive(Default)]
pub struct BrokerState {
    down: Mutex<Option<(Instant, String)>>,
}

impl BrokerState {
    /// Records that no broker is reachable (the first report wins).
    pub fn set_down(&self, reason: &str) {
        let mut d = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if d.is_none() {
            tracing::warn!(reason, "kafka: all brokers are down; not ready until one answers again");
            *d = Some((Instant::now(), reason.to_string()));
        }
    }

    /// Records a successful round trip to a broker.
    pub fn set_up(&self) {
        let was = self.down.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((since, _)) = was {
            tracing::info!(down_s = since.elapsed().as_secs(), "kafka: brokers reachable again");
        }
    }

    /// Since when and why no broker is reachable; `None` while one is.
    pub fn down(&self) -> Option<(Duration, String)> {
        self.down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(since, reason)| (since.elapsed(), reason.clone()))
    }
}

/// True for librdkafka's report that every broker connection is down.
pub(super) fn all_brokers_down(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::Global(RDKafkaErrorCode::AllBrokersDown)
            | KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown)
    )
}

/// Messages handed out vs acknowledged, so a revoke can wait for a drain.
#[derive(Default)]
pub struct Progress {
    pub(super) issued: AtomicU64,
    pub(super) acked: AtomicU64,
    /// Issued but still held by the poll thread (the pipeline was full):
    /// they cannot finish while a revoke waits, so a drain does not wait for them.
    pub(super) held: AtomicU64,
    /// Set after a failure: nothing in flight will finish, revokes do not wait.
    pub(super) abandoned: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Progress {
    pub fn in_flight(&self) -> u64 {
        self.issued
            .load(Ordering::Acquire)
            .saturating_sub(self.acked.load(Ordering::Acquire))
    }

    pub(super) fn ack(&self) {
        self.acked.fetch_add(1, Ordering::AcqRel);
        if self.in_flight() == 0 {
            let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.cv.notify_all();
        }
    }

    /// Waits until every issued message is acknowledged; false on timeout.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.in_flight().saturating_sub(self.held.load(Ordering::Acquire)) > 0
            && !self.abandoned.load(Ordering::Acquire)
        {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self
                .cv
                .wait_timeout(g, (deadline - now).min(Duration::from_millis(50)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Per-partition progress of the poll thread: messages handed to the
/// pipeline, the next offset to hand out, and the high watermark (refreshed
/// every 250 ms), so the event-time merge knows which partitions still have
/// data coming.
#[derive(Default)]
pub struct PartitionProgress {
    parts: Mutex<std::collections::BTreeMap<PartitionKey, PartState>>,
    /// Set by the rebalance callback while a revoke drains the pipeline.
    revoking: AtomicBool,
    /// Partitions revoked since the poll loop last looked: messages it still
    /// holds from them must not enter the pipeline (their next owner, maybe
    /// this consumer again, reads them from the committed offset).
    revoked: Mutex<Vec<PartitionKey>>,
}

/// What the poll thread knows about one partition.
#[derive(Debug, Default, Clone, Copy)]
struct PartState {
    handed_out: u64,
    /// The next offset to hand out.
    next_offset: i64,
    high_watermark: i64,
}

impl PartitionProgress {
    /// Takes back `n` messages handed out but dropped before they reached
    /// the pipeline, the first of them at `first_offset`.
    pub(super) fn unhand(&self, key: &PartitionKey, first_offset: i64, n: u64) {
        let mut m = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = m.get_mut(key) {
            e.handed_out = e.handed_out.saturating_sub(n);
            e.next_offset = e.next_offset.min(first_offset);
        }
    }

    /// librdkafka reported the end of partition number `partition` (of a
    /// subscribed topic): nothing is unread there up to the last known high
    /// watermark. Without this, a partition given back after another member
    /// read it to the end keeps the offset this consumer last handed out, and
    /// the merge would wait forever for data that was consumed elsewhere.
    pub(super) fn at_end(&self, partition: i32) {
        let mut m = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        for ((_, p), e) in m.iter_mut() {
            if *p == partition {
                e.next_offset = e.next_offset.max(e.high_watermark);
            }
        }
    }

    pub(super) fn begin_revoke(&self, tpl: &rdkafka::TopicPartitionList) {
        let mut r = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        r.extend(tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())));
        self.revoking.store(true, Ordering::Release);
    }

    pub(super) fn end_revoke(&self) {
        self.revoking.store(false, Ordering::Release);
    }

    pub(super) fn take_revoked(&self) -> Vec<PartitionKey> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(super) fn handed(&self, topic: &str, partition: i32, offset: i64) {
        let mut m = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry((topic.to_string(), partition)).or_default();
        e.handed_out += 1;
        e.next_offset = offset + 1;
    }

    /// Updates high watermarks (lag). A failed query keeps the last known
    /// value, so lag does not read 0 while the broker is unreachable; a
    /// successful one marks the brokers reachable.
    pub(super) fn refresh(&self, consumer: &BaseConsumer<EngineContext>, broker: &BrokerState) {
        let keys: Vec<(String, i32)> = self
            .parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        let assigned = consumer.assignment().ok();
        for (topic, p) in keys {
            let owned = assigned.as_ref().is_some_and(|a| a.find_partition(&topic, p).is_some());
            let high = if owned {
                match consumer.fetch_watermarks(&topic, p, Duration::from_millis(500)) {
                    Ok((_, h)) => {
                        broker.set_up();
                        Some(h)
                    }
                    Err(e) => {
                        if all_brokers_down(&e) {
                            broker.set_down(&e.to_string());
                        }
                        // Unknown: keep the last value (no false "caught up").
                        continue;
                    }
                }
            } else {
                None
            };
            let mut m = self.parts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = m.get_mut(&(topic.clone(), p)) {
                // A partition no longer assigned has nothing more coming.
                e.high_watermark = high.unwrap_or(e.next_offset.min(e.high_watermark));
            }
        }
    }
}

impl PartitionProgress {
    /// Per partition handed out at least once: messages not yet read
    /// (high watermark − next offset to hand out; 0 once no longer assigned).
    /// Kept up to date by the poll thread every 250 ms, off the hot path.
    pub fn lag(&self) -> Vec<((String, i32), i64)> {
        self.parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, s)| (k.clone(), (s.high_watermark - s.next_offset).max(0)))
            .collect()
    }
}

impl crate::ingest::SourceProgress for PartitionProgress {
    fn progress(&self) -> Vec<PartitionStatus> {
        self.parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, s)| PartitionStatus {
                key: k.clone(),
                handed_out: s.handed_out,
                more_unread: s.next_offset < s.high_watermark,
            })
            .collect()
    }

    fn revoking(&self) -> bool {
        self.revoking.load(Ordering::Acquire)
    }
}

/// How partition revokes went.
#[derive(Debug, Default)]
pub struct RevokeStats {
    /// Revokes seen.
    pub revokes: AtomicU64,
    /// Revokes whose drain timed out (the work in flight is redelivered).
    pub undrained: AtomicU64,
    /// Time spent waiting for drains in revokes, in milliseconds.
    pub wait_ms: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_high_watermark_minus_next_offset() {
        let p = PartitionProgress::default();
        p.handed("t", 0, 9);
        p.handed("t", 1, 4);
        {
            let mut m = p.parts.lock().unwrap();
            m.get_mut(&("t".to_string(), 0)).unwrap().high_watermark = 25;
            // Not refreshed yet (high 0): no negative lag.
        }
        assert_eq!(p.lag(), vec![(("t".to_string(), 0), 15), (("t".to_string(), 1), 0)]);
    }

    #[test]
    fn end_of_partition_clears_unread_data_read_by_another_member() {
        use crate::ingest::SourceProgress;
        let p = PartitionProgress::default();
        // This consumer handed out offset 64 of partition 3, lost it to
        // another member that read it to the end (2,000), and got it back.
        p.handed("t", 3, 64);
        p.parts
            .lock()
            .unwrap()
            .get_mut(&("t".to_string(), 3))
            .unwrap()
            .high_watermark = 2000;
        assert!(p.progress()[0].more_unread);
        p.at_end(3);
        assert!(!p.progress()[0].more_unread, "caught up at the end of the partition");
        assert_eq!(p.lag(), vec![(("t".to_string(), 3), 0)]);
        // New data after that is unread again.
        p.parts
            .lock()
            .unwrap()
            .get_mut(&("t".to_string(), 3))
            .unwrap()
            .high_watermark = 2005;
        assert!(p.progress()[0].more_unread);
    }
}
