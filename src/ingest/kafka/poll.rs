//! The poll thread: reads messages and hands them to the pipeline, with
//! backpressure by partition pause (never by not polling), a back-off at
//! partition ends, and the hand-back of messages from revoked partitions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use tokio::sync::mpsc;

use super::progress::{all_brokers_down, BrokerState, PartitionProgress, Progress};
use super::EngineContext;
use crate::ingest::{PartitionKey, RawMessage};
use crate::types::SourcePos;

/// A consumed Kafka message as the pipeline's input.
pub(super) fn raw_message<M: Message>(m: &M) -> RawMessage {
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
pub(super) struct PollIo<'a> {
    pub(super) consumer: &'a BaseConsumer<EngineContext>,
    pub(super) stop: &'a AtomicBool,
    pub(super) progress: &'a Progress,
    pub(super) parts: &'a PartitionProgress,
    pub(super) broker: &'a BrokerState,
    /// A subscribed topic, for the reachability probe while brokers are down.
    pub(super) probe_topic: &'a str,
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

pub(super) fn poll_loop(io: &PollIo<'_>, tx: mpsc::Sender<RawMessage>) {
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
