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
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientContext;
use tokio::sync::mpsc;

mod range;

pub use range::{KafkaRange, PartitionRange};

use super::{IngestError, PartitionKey, PartitionStatus, RawMessage};
use crate::config::KafkaConfig;
use crate::types::SourcePos;

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
fn all_brokers_down(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::Global(RDKafkaErrorCode::AllBrokersDown)
            | KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown)
    )
}

/// Messages handed out vs acknowledged, so a revoke can wait for a drain.
#[derive(Default)]
pub struct Progress {
    issued: AtomicU64,
    acked: AtomicU64,
    /// Issued but still held by the poll thread (the pipeline was full):
    /// they cannot finish while a revoke waits, so a drain does not wait for them.
    held: AtomicU64,
    /// Set after a failure: nothing in flight will finish, revokes do not wait.
    abandoned: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Progress {
    pub fn in_flight(&self) -> u64 {
        self.issued
            .load(Ordering::Acquire)
            .saturating_sub(self.acked.load(Ordering::Acquire))
    }

    fn ack(&self) {
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
    fn unhand(&self, key: &PartitionKey, first_offset: i64, n: u64) {
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
    fn at_end(&self, partition: i32) {
        let mut m = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        for ((_, p), e) in m.iter_mut() {
            if *p == partition {
                e.next_offset = e.next_offset.max(e.high_watermark);
            }
        }
    }

    fn begin_revoke(&self, tpl: &rdkafka::TopicPartitionList) {
        let mut r = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        r.extend(tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())));
        self.revoking.store(true, Ordering::Release);
    }

    fn end_revoke(&self) {
        self.revoking.store(false, Ordering::Release);
    }

    fn take_revoked(&self) -> Vec<PartitionKey> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn handed(&self, topic: &str, partition: i32, offset: i64) {
        let mut m = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry((topic.to_string(), partition)).or_default();
        e.handed_out += 1;
        e.next_offset = offset + 1;
    }

    /// Updates high watermarks (lag). A failed query keeps the last known
    /// value, so lag does not read 0 while the broker is unreachable; a
    /// successful one marks the brokers reachable.
    fn refresh(&self, consumer: &BaseConsumer<EngineContext>, broker: &BrokerState) {
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

impl super::SourceProgress for PartitionProgress {
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

/// A consumed Kafka message as the pipeline's input.
fn raw_message<M: Message>(m: &M) -> RawMessage {
    RawMessage {
        payload: m.payload().map(<[u8]>::to_vec),
        key: m.key().map(<[u8]>::to_vec),
        timestamp: m.timestamp().to_millis(),
        pos: SourcePos {
            source: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
        },
    }
}

/// What the poll thread works with.
struct PollIo<'a> {
    consumer: &'a BaseConsumer<EngineContext>,
    stop: &'a AtomicBool,
    progress: &'a Progress,
    parts: &'a PartitionProgress,
    broker: &'a BrokerState,
    /// A subscribed topic, for the reachability probe while brokers are down.
    probe_topic: &'a str,
}

/// Backpressure without leaving the group: while the pipeline is full, every
/// assigned partition is paused and `poll()` keeps running (a consumer that
/// stops polling for `max.poll.interval.ms` is evicted from the group and its
/// partitions rebalanced). Messages polled meanwhile (librdkafka drops the
/// prefetched ones of a paused partition, so at most a few) wait in order in
/// `held`; once they are all handed over, the assignment is resumed.
struct Backpressure {
    held: std::collections::VecDeque<RawMessage>,
    paused: bool,
    /// When the assignment was last paused (re-paused periodically: a
    /// rebalance while paused assigns partitions unpaused).
    paused_at: Instant,
}

impl Backpressure {
    fn set_paused(&mut self, consumer: &BaseConsumer<EngineContext>, pause: bool) {
        let Ok(tpl) = consumer.assignment() else { return };
        let r = if pause {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, pause, "pause/resume of the assignment failed");
        }
        if pause && !self.paused {
            tracing::debug!(
                partitions = tpl.count(),
                "pipeline full: partitions paused, still polling"
            );
        }
        self.paused = pause;
        self.paused_at = Instant::now();
    }
}

fn poll_loop(io: &PollIo<'_>, tx: mpsc::Sender<RawMessage>) {
    let PollIo {
        consumer,
        stop,
        progress,
        parts,
        broker,
        ..
    } = *io;
    let mut refreshed = Instant::now();
    let mut eof = EofBackoff::default();
    let mut bp = Backpressure {
        held: Default::default(),
        paused: false,
        paused_at: Instant::now(),
    };
    'run: while !stop.load(Ordering::Acquire) {
        // Hand over what is held, in order.
        while let Some(r) = bp.held.pop_front() {
            match tx.try_send(r) {
                Ok(()) => {
                    progress.held.fetch_sub(1, Ordering::AcqRel);
                }
                Err(mpsc::error::TrySendError::Full(r)) => {
                    bp.held.push_front(r);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break 'run,
            }
        }
        if bp.held.is_empty() {
            if bp.paused {
                bp.set_paused(consumer, false);
                // Resuming the assignment also ended every EOF pause.
                eof.paused.clear();
            }
        } else if !bp.paused || bp.paused_at.elapsed() >= Duration::from_secs(1) {
            bp.set_paused(consumer, true);
        }
        if refreshed.elapsed() >= Duration::from_millis(250) {
            if broker.down().is_some() {
                // One bounded probe instead of a watermark query per
                // partition (each would wait out its timeout).
                if consumer
                    .fetch_metadata(Some(io.probe_topic), Duration::from_millis(500))
                    .is_ok()
                {
                    broker.set_up();
                }
            } else {
                parts.refresh(consumer, broker);
            }
            refreshed = Instant::now();
        }
        if !bp.paused {
            eof.resume_due(consumer);
        }
        // Short polls while holding messages, so they move on soon after the
        // pipeline has room.
        let wait = if bp.held.is_empty() { 100 } else { 5 };
        let polled = consumer.poll(Duration::from_millis(wait));
        // A revoke ran inside that poll: what is held from those partitions
        // never entered the pipeline and is past the commit; their next owner
        // (this consumer again, maybe) reads it from the committed offset.
        let revoked = parts.take_revoked();
        if !revoked.is_empty() {
            drop_revoked(&mut bp.held, &revoked, progress, parts);
        }
        match polled {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                parts.at_end(partition);
                if !bp.paused {
                    eof.pause(consumer, partition)
                }
            }
            Some(Ok(m)) => {
                let raw = raw_message(&m);
                drop(m);
                progress.issued.fetch_add(1, Ordering::AcqRel);
                parts.handed(&raw.pos.source, raw.pos.partition, raw.pos.offset);
                progress.held.fetch_add(1, Ordering::AcqRel);
                bp.held.push_back(raw);
            }
            Some(Err(e)) => {
                if all_brokers_down(&e) {
                    broker.set_down(&e.to_string());
                }
                tracing::warn!(error = %e, "kafka consumer error")
            }
        }
    }
    // Held messages never reached the pipeline: not in flight (redelivered).
    let n = bp.held.len() as u64;
    progress.issued.fetch_sub(n, Ordering::AcqRel);
    progress.held.fetch_sub(n, Ordering::AcqRel);
}

/// Removes the held messages of `revoked` partitions, taking them back from
/// the in-flight and handed-out counts.
fn drop_revoked(
    held: &mut std::collections::VecDeque<RawMessage>,
    revoked: &[PartitionKey],
    progress: &Progress,
    parts: &PartitionProgress,
) {
    let is_revoked = |r: &RawMessage| revoked.iter().any(|(t, p)| *t == r.pos.source && *p == r.pos.partition);
    let mut first: std::collections::BTreeMap<PartitionKey, (i64, u64)> = Default::default();
    held.retain(|r| {
        if !is_revoked(r) {
            return true;
        }
        let e = first
            .entry((r.pos.source.clone(), r.pos.partition))
            .or_insert((r.pos.offset, 0));
        e.0 = e.0.min(r.pos.offset);
        e.1 += 1;
        false
    });
    let n: u64 = first.values().map(|(_, n)| n).sum();
    if n == 0 {
        return;
    }
    progress.issued.fetch_sub(n, Ordering::AcqRel);
    progress.held.fetch_sub(n, Ordering::AcqRel);
    for (key, (offset, k)) in &first {
        parts.unhand(key, *offset, *k);
    }
    tracing::info!(
        dropped = n,
        "held messages of revoked partitions dropped (re-read by their next owner)"
    );
}

/// Pauses a partition that reached its end for [`EofBackoff::PAUSE`], then
/// resumes it. A broker that answers fetches at the end of a partition at once
/// instead of holding them for `fetch.wait.max.ms` (the bundled noida-db does)
/// otherwise keeps librdkafka's fetch loop spinning: measured ~0.5 core while
/// idle and a third of the CPU of a backlog run. Costs at most `PAUSE` of
/// extra latency for the first event after a quiet spell.
#[derive(Default)]
struct EofBackoff {
    /// Partition number (every subscribed topic's) and when to resume it.
    paused: Vec<(i32, Instant)>,
}

impl EofBackoff {
    const PAUSE: Duration = Duration::from_millis(100);

    fn matching(consumer: &BaseConsumer<EngineContext>, partition: i32) -> rdkafka::TopicPartitionList {
        let mut tpl = rdkafka::TopicPartitionList::new();
        if let Ok(assigned) = consumer.assignment() {
            for e in assigned.elements().iter().filter(|e| e.partition() == partition) {
                tpl.add_partition(e.topic(), partition);
            }
        }
        tpl
    }

    fn pause(&mut self, consumer: &BaseConsumer<EngineContext>, partition: i32) {
        if self.paused.iter().any(|&(p, _)| p == partition) {
            return;
        }
        let tpl = Self::matching(consumer, partition);
        if tpl.count() > 0 && consumer.pause(&tpl).is_ok() {
            self.paused.push((partition, Instant::now() + Self::PAUSE));
        }
    }

    fn resume_due(&mut self, consumer: &BaseConsumer<EngineContext>) {
        let now = Instant::now();
        self.paused.retain(|&(partition, until)| {
            if until > now {
                return true;
            }
            // A partition revoked meanwhile is no longer in the assignment:
            // nothing to resume (a new assignment starts unpaused).
            let tpl = Self::matching(consumer, partition);
            if tpl.count() > 0 {
                let _ = consumer.resume(&tpl);
            }
            false
        });
    }
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
