//! Event-time alignment across partitions.
//!
//! Kafka hands out partitions in fetch-sized runs, so one partition's events
//! can arrive minutes (of event time) ahead of another's. The detector's
//! watermark follows the largest event time it has seen, so unaligned input
//! would make the lagging partitions' events "too late". This merger keeps a
//! FIFO per partition and releases the head with the smallest event time,
//! waiting for a partition that has gone quiet only up to an idle timeout (a
//! wall-clock bound, here in the pipeline, never in the detector). Order within
//! a partition is preserved, so acknowledgements stay in offset order; dead
//! letters travel through the same queues for the same reason.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

pub use crate::ingest::{PartitionStatus, SourceProgress};

/// An item with an optional event time and its partition.
pub trait Timed {
    /// `(source, partition)` the item came from.
    fn partition(&self) -> (&str, i32);
    /// Event time, or `None` for items that do not reach the detector.
    fn event_time(&self) -> Option<i64>;
}

struct Lane<T> {
    queue: VecDeque<T>,
    last_arrival: Instant,
    arrived: u64,
}

pub struct Merger<T> {
    lanes: BTreeMap<(String, i32), Lane<T>>,
    idle: Duration,
    max_buffered: usize,
    buffered: usize,
    /// First arrival: partitions not seen yet may still be coming, so the
    /// merge holds everything for one idle period after the start.
    started: Option<Instant>,
    source: Option<std::sync::Arc<dyn SourceProgress>>,
    last_wait_log: Instant,
}

impl<T: Timed> Merger<T> {
    pub fn new(idle: Duration, max_buffered: usize) -> Self {
        Self {
            lanes: BTreeMap::new(),
            idle,
            max_buffered: max_buffered.max(1),
            buffered: 0,
            started: None,
            source: None,
            last_wait_log: Instant::now(),
        }
    }

    /// With a source's progress, a partition that still has messages in the
    /// pipeline or unread at the source holds the merge (no guessing by idle
    /// time); the idle timeout remains for partitions the source has not seen.
    pub fn with_source(mut self, source: Option<std::sync::Arc<dyn SourceProgress>>) -> Self {
        self.source = source;
        self
    }

    pub fn push(&mut self, item: T, now: Instant) {
        let (s, p) = item.partition();
        let lane = self.lanes.entry((s.to_string(), p)).or_insert_with(|| Lane {
            queue: VecDeque::new(),
            last_arrival: now,
            arrived: 0,
        });
        lane.queue.push_back(item);
        lane.last_arrival = now;
        lane.arrived += 1;
        self.buffered += 1;
        self.started.get_or_insert(now);
    }

    pub fn is_empty(&self) -> bool {
        self.buffered == 0
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.buffered
    }

    /// The next item to release, if the merge allows one now. With `force`
    /// (end of input) nothing waits.
    pub fn pop(&mut self, now: Instant, force: bool) -> Option<T> {
        if self.buffered == 0 {
            return None;
        }
        // A revoke waits for the pipeline to drain while the source can
        // deliver nothing: waiting for unread data would stall it to the
        // drain timeout (and redeliver what was held).
        let force = force || self.source.as_ref().is_some_and(|s| s.revoking());
        let over = self.buffered > self.max_buffered;
        let warming = self.started.is_some_and(|s| now.duration_since(s) < self.idle);
        if warming && !(force || over) {
            return None;
        }
        if let (Some(src), false) = (&self.source, force || over) {
            for part in src.progress() {
                let (arrived, empty) = self
                    .lanes
                    .get(&part.key)
                    .map_or((0, true), |l| (l.arrived, l.queue.is_empty()));
                if empty && (part.handed_out > arrived || part.more_unread) {
                    if now.duration_since(self.last_wait_log) >= Duration::from_secs(10) {
                        self.last_wait_log = now;
                        tracing::debug!(
                            topic = %part.key.0,
                            partition = part.key.1,
                            handed_out = part.handed_out,
                            arrived,
                            more_unread = part.more_unread,
                            buffered = self.buffered,
                            "merge waiting for a partition"
                        );
                    }
                    return None;
                }
            }
        }
        let mut best: Option<(i64, &(String, i32))> = None;
        for (key, lane) in &self.lanes {
            match lane.queue.front() {
                Some(head) => match head.event_time() {
                    // Items that skip the detector leave at once.
                    None => {
                        best = Some((i64::MIN, key));
                        break;
                    }
                    Some(t) => {
                        if best.is_none_or(|(b, _)| t < b) {
                            best = Some((t, key));
                        }
                    }
                },
                None => {
                    // An empty lane may still deliver older events: wait for
                    // it unless it has been quiet for the idle timeout (with a
                    // source's progress, only for what the source cannot tell).
                    let quiet = now.duration_since(lane.last_arrival) >= self.idle;
                    if self.source.is_none() && !(force || over || quiet) {
                        return None;
                    }
                }
            }
        }
        let key = best?.1.clone();
        let lane = self.lanes.get_mut(&key)?;
        let item = lane.queue.pop_front();
        self.buffered -= item.is_some() as usize;
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct It(i32, Option<i64>);
    impl Timed for It {
        fn partition(&self) -> (&str, i32) {
            ("t", self.0)
        }
        fn event_time(&self) -> Option<i64> {
            self.1
        }
    }

    #[test]
    fn releases_in_event_time_order_and_waits_for_quiet_lanes() {
        let t0 = Instant::now();
        let mut m = Merger::new(Duration::from_secs(1), 100);
        for t in [10, 20, 30] {
            m.push(It(0, Some(t)), t0);
        }
        // Warm-up: other partitions may still be coming.
        assert_eq!(m.pop(t0, false), None);
        let t0 = t0 + Duration::from_millis(1500);
        m.push(It(1, Some(15)), t0);
        assert_eq!(m.pop(t0, false), Some(It(0, Some(10))));
        assert_eq!(m.pop(t0, false), Some(It(1, Some(15))));
        // Lane 1 is empty and not yet quiet: wait.
        assert_eq!(m.pop(t0, false), None);
        // Dead letters (no time) are never held behind the merge.
        m.push(It(1, None), t0);
        assert_eq!(m.pop(t0, false), Some(It(1, None)));
        // Once lane 1 is quiet, lane 0 drains in order.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(m.pop(later, false), Some(It(0, Some(20))));
        assert_eq!(m.pop(t0, true), Some(It(0, Some(30))));
        assert!(m.is_empty());
    }

    struct Src(Vec<PartitionStatus>);
    impl SourceProgress for Src {
        fn progress(&self) -> Vec<PartitionStatus> {
            self.0.clone()
        }
    }

    fn status(partition: i32, handed_out: u64, more_unread: bool) -> PartitionStatus {
        PartitionStatus {
            key: ("t".into(), partition),
            handed_out,
            more_unread,
        }
    }

    #[test]
    fn source_progress_holds_the_merge_for_partitions_still_in_flight() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        // Partition 1 has handed out 2 messages that have not arrived yet.
        let src = std::sync::Arc::new(Src(vec![status(0, 2, false), status(1, 2, false)]));
        let mut m = Merger::new(Duration::from_secs(1), 100).with_source(Some(src));
        m.push(It(0, Some(30)), t0);
        m.push(It(0, Some(40)), t0);
        assert_eq!(
            m.pop(later, false),
            None,
            "long past idle, but partition 1 is still coming"
        );
        m.push(It(1, Some(10)), later);
        assert_eq!(m.pop(later, false), Some(It(1, Some(10))));
        // Partition 1 handed 2, only 1 arrived: still waiting.
        assert_eq!(m.pop(later, false), None);
        m.push(It(1, Some(35)), later);
        assert_eq!(m.pop(later, false), Some(It(0, Some(30))));
        assert_eq!(m.pop(later, false), Some(It(1, Some(35))));
        // Partition 1 is complete and has nothing unread: no more waiting.
        assert_eq!(m.pop(later, false), Some(It(0, Some(40))));
    }

    struct Revoking(Vec<PartitionStatus>, std::sync::atomic::AtomicBool);
    impl SourceProgress for Revoking {
        fn progress(&self) -> Vec<PartitionStatus> {
            self.0.clone()
        }
        fn revoking(&self) -> bool {
            self.1.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    #[test]
    fn a_revoke_releases_what_waits_for_unread_data() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        // Partition 1 has unread data; while the source is revoking it cannot
        // deliver any, and the revoke waits for the merge to drain.
        let src = std::sync::Arc::new(Revoking(vec![status(0, 2, false), status(1, 0, true)], false.into()));
        let mut m = Merger::new(Duration::from_secs(1), 100).with_source(Some(src.clone()));
        m.push(It(0, Some(30)), t0);
        m.push(It(0, Some(40)), t0);
        assert_eq!(m.pop(later, false), None, "waits for partition 1");
        src.1.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(m.pop(later, false), Some(It(0, Some(30))));
        assert_eq!(m.pop(later, false), Some(It(0, Some(40))));
        assert!(m.is_empty());
    }

    #[test]
    fn order_within_a_partition_is_kept() {
        let t0 = Instant::now();
        let mut m = Merger::new(Duration::from_secs(1), 100);
        m.push(It(0, Some(50)), t0);
        m.push(It(0, Some(40)), t0);
        assert_eq!(m.pop(t0, true), Some(It(0, Some(50))));
        assert_eq!(m.pop(t0, true), Some(It(0, Some(40))));
    }
}
