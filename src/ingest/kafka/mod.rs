//! Kafka source and producers (rdkafka).
//!
//! The consumer runs on its own thread (`BaseConsumer::poll`) and hands
//! messages to the pipeline through a bounded channel; a full pipeline pauses
//! the assigned partitions (backpressure) while polling goes on, so memory
//! stays bounded and the member stays in its group. At-least-once:
//! `enable.auto.offset.store=false`; the pipeline calls [`KafkaSource::ack`]
//! in order once a message's effects are durable, which stores the offset;
//! librdkafka commits stored offsets every `commit_interval_ms`, and we commit
//! synchronously on partition revoke (after draining in-flight work) and on
//! shutdown.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientContext;
use tokio::sync::mpsc;

mod poll;
mod progress;
mod range;

pub use progress::{BrokerState, PartitionProgress, Progress, RevokeStats};
pub use range::{KafkaRange, PartitionRange};

use poll::{poll_loop, PollIo};
use progress::all_brokers_down;

use super::{IngestError, RawMessage};
use crate::config::KafkaConfig;
use crate::types::SourcePos;

/// Consumer context: drains and commits before partitions are taken away.
pub struct EngineContext {
    progress: Arc<Progress>,
    parts: Arc<PartitionProgress>,
    drain_timeout: Duration,
    assigned: Arc<AtomicUsize>,
    rebalances: Arc<AtomicU64>,
    revokes: Arc<RevokeStats>,
    broker: Arc<BrokerState>,
}

impl ClientContext for EngineContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if all_brokers_down(&error) {
            self.broker.set_down(reason);
        }
        // End of partition is an event, not an error: the poll loop backs off
        // (enable.partition.eof is on for that alone).
        if !matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::error!(target: "librdkafka", "librdkafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for EngineContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // The merge stops waiting for unread data (this thread cannot
            // read any until the revoke returns) so the drain can finish.
            self.parts.begin_revoke(tpl);
            let t0 = Instant::now();
            let drained = self.progress.wait_drained(self.drain_timeout);
            self.parts.end_revoke();
            let r = &self.revokes;
            r.revokes.fetch_add(1, Ordering::Relaxed);
            r.wait_ms.fetch_add(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
            if !drained {
                r.undrained.fetch_add(1, Ordering::Relaxed);
            }
            if !drained {
                tracing::warn!(
                    in_flight = self.progress.in_flight(),
                    "partition revoke: in-flight work did not finish within the drain timeout; it will be redelivered"
                );
            }
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(error = %e, "commit on revoke failed"),
            }
            tracing::info!(partitions = tpl.count(), drained, "partitions revoked");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        let n = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        self.assigned.store(n, Ordering::Release);
        if let Rebalance::Assign(tpl) = rebalance {
            // librdkafka keeps an application pause across a revoke: a
            // partition paused for backpressure or at its end, taken away and
            // given back later, would otherwise never be fetched again (the
            // merge then waits for it forever). The poll loop re-pauses within
            // a second if the pipeline is still full.
            if let Err(e) = consumer.resume(tpl) {
                tracing::debug!(error = %e, "resume of newly assigned partitions failed");
            }
            tracing::info!(assigned = tpl.count(), total = n, "partitions assigned");
        }
    }
}

/// Builds a client config with our defaults, then the user's pass-through
/// properties (which win).
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

/// A producer for dead letters, scored events and alerts: idempotent, acks=all.
pub fn producer(cfg: &KafkaConfig) -> Result<FutureProducer, IngestError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    Ok(c.create()?)
}

/// The running consumer.
pub struct KafkaSource {
    consumer: Arc<BaseConsumer<EngineContext>>,
    progress: Arc<Progress>,
    partitions: Arc<PartitionProgress>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    assigned: Arc<AtomicUsize>,
    rebalances: Arc<AtomicU64>,
    revokes: Arc<RevokeStats>,
    broker: Arc<BrokerState>,
}

impl KafkaSource {
    /// Subscribes and starts the polling thread; messages arrive on the
    /// returned channel (capacity `capacity`).
    pub fn start(
        cfg: &KafkaConfig,
        drain_timeout: Duration,
        capacity: usize,
    ) -> Result<(Self, mpsc::Receiver<RawMessage>), IngestError> {
        let progress = Arc::new(Progress::default());
        let assigned = Arc::new(AtomicUsize::new(0));
        let rebalances = Arc::new(AtomicU64::new(0));
        let broker = Arc::new(BrokerState::default());
        let partitions = Arc::new(PartitionProgress::default());
        let revokes = Arc::new(RevokeStats::default());
        let ctx = EngineContext {
            progress: progress.clone(),
            parts: partitions.clone(),
            revokes: revokes.clone(),
            drain_timeout,
            assigned: assigned.clone(),
            rebalances: rebalances.clone(),
            broker: broker.clone(),
        };
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &cfg.brokers)
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", cfg.commit_interval_ms.to_string())
            .set("auto.offset.reset", &cfg.auto_offset_reset)
            // Smaller per-partition fetches interleave partitions more finely,
            // which keeps the event-time merge's buffer small. Overridable.
            .set("max.partition.fetch.bytes", "32768")
            // EOF events let the poll loop back off a caught-up partition.
            .set("enable.partition.eof", "true")
            // A small prefetch queue: while the pipeline is full the poll
            // thread waits, and a broker that answers end-of-partition fetches
            // at once would keep librdkafka refetching until this is full
            // (default 64 MB). 2 MB is ~6,000 reviews of read-ahead.
            .set("queued.max.messages.kbytes", "2048");
        for (k, v) in &cfg.properties {
            c.set(k, v);
        }
        let consumer: BaseConsumer<EngineContext> = c.create_with_context(ctx)?;
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel(capacity);
        let thread = {
            let (consumer, stop, progress, parts, broker) = (
                consumer.clone(),
                stop.clone(),
                progress.clone(),
                partitions.clone(),
                broker.clone(),
            );
            let topic = cfg.topics.first().cloned().unwrap_or_default();
            std::thread::Builder::new()
                .name("earshot-kafka".into())
                .spawn(move || {
                    let io = PollIo {
                        consumer: &consumer,
                        stop: &stop,
                        progress: &progress,
                        parts: &parts,
                        broker: &broker,
                        probe_topic: &topic,
                    };
                    poll_loop(&io, tx)
                })
                .map_err(|e| IngestError::Io {
                    path: "kafka consumer thread".into(),
                    source: e,
                })?
        };
        Ok((
            Self {
                consumer,
                progress,
                partitions,
                stop,
                thread: Mutex::new(Some(thread)),
                assigned,
                rebalances,
                revokes,
                broker,
            },
            rx,
        ))
    }

    /// Marks a message done: its offset is stored for the next commit. Must be
    /// called in consumption order per partition.
    pub fn ack(&self, pos: &SourcePos) {
        if let Err(e) = self.consumer.store_offset(&pos.source, pos.partition, pos.offset) {
            // A revoked partition cannot store; the new owner re-reads from the
            // last commit, which is the at-least-once contract.
            tracing::warn!(error = %e, topic = %pos.source, partition = pos.partition, offset = pos.offset, "offset not stored");
        }
        self.progress.ack();
    }

    pub fn in_flight(&self) -> u64 {
        self.progress.in_flight()
    }

    /// Per-partition progress for the pipeline's event-time merge.
    pub fn partition_progress(&self) -> Arc<PartitionProgress> {
        self.partitions.clone()
    }

    /// Consumer lag per partition (see [`PartitionProgress::lag`]).
    pub fn lag(&self) -> Vec<((String, i32), i64)> {
        self.partitions.lag()
    }

    /// Partitions currently assigned to this consumer (0 before the group
    /// join completes): readiness.
    pub fn assigned_partitions(&self) -> usize {
        self.assigned.load(Ordering::Acquire)
    }

    /// Since when and why no broker is reachable (librdkafka reported all
    /// brokers down and none has answered since); `None` while one is.
    pub fn broker_down(&self) -> Option<(Duration, String)> {
        self.broker.down()
    }

    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::Relaxed)
    }

    /// How the partition revokes so far went (drained or timed out).
    pub fn revokes(&self) -> &RevokeStats {
        &self.revokes
    }

    /// Stops polling (the channel closes once the thread exits).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    fn join(&self) {
        self.stop();
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = handle {
            let _ = t.join();
        }
    }

    /// Stops polling, commits stored offsets synchronously and leaves the
    /// group. Call after the pipeline has drained.
    pub fn close(&self) -> Result<(), IngestError> {
        self.join();
        let committed = match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(e) => Err(e.into()),
        };
        if committed.is_ok() {
            if let Ok(pos) = self.consumer.position() {
                tracing::info!(positions = ?pos.to_topic_map(), "committed and leaving the group");
            }
        }
        // Leave even when the commit failed: the next owner re-reads from
        // the last successful commit either way.
        self.consumer.unsubscribe();
        committed
    }

    /// After a failure: work in flight will never be acknowledged, so the
    /// revoke does not wait for it; commits what was acknowledged, leaves the
    /// group, and serves the resulting revoke here (the poll thread is gone)
    /// for up to `within`, so the group reassigns at once.
    pub fn abandon(&self, within: Duration) -> Result<(), IngestError> {
        self.progress.abandoned.store(true, Ordering::Release);
        let r = self.close();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline && self.consumer.assignment().is_ok_and(|a| a.count() > 0) {
            // Messages polled now are not handed out: redelivered.
            let _ = self.consumer.poll(Duration::from_millis(100));
        }
        tracing::info!("left the consumer group after the failure");
        r
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.join();
    }
}
