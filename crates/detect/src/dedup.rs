//! Redelivered events: Kafka's at-least-once delivery hands an event to the
//! detector again after a failed commit or a rebalance (the same instance
//! often gets its partitions back). Counting it twice inflates the very
//! volumes the detector alerts on, so the detector remembers the ids of the
//! last `capacity` events it counted and skips a repeat.
//!
//! Bounded by count, not by event time: a redelivery follows the original
//! within seconds to minutes of processing, whatever its event time. Ids are
//! kept as 64-bit FNV-1a hashes (16 bytes per entry with the FIFO; 4 MB at
//! the default 262,144).

use std::collections::{HashSet, VecDeque};

/// The ids of the most recent `capacity` counted events.
#[derive(Debug, Default)]
pub struct RecentIds {
    capacity: usize,
    order: VecDeque<u64>,
    set: HashSet<u64>,
}

impl RecentIds {
    /// `capacity` 0 remembers nothing (every event is new).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// True when `id` was seen among the last `capacity` new ids; otherwise
    /// records it (forgetting the oldest beyond capacity) and returns false.
    pub fn seen(&mut self, id: &str) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let h = earshot_core::hash::fnv1a(id.as_bytes());
        if !self.set.insert(h) {
            return true;
        }
        self.order.push_back(h);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        false
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_capacity_are_seen_and_old_ids_are_forgotten() {
        let mut r = RecentIds::new(3);
        for id in ["a", "b", "c"] {
            assert!(!r.seen(id));
        }
        assert!(r.seen("a") && r.seen("c"));
        assert!(!r.seen("d"), "new");
        assert_eq!(r.len(), 3);
        assert!(!r.seen("a"), "forgotten: 4 ids later");
        let mut off = RecentIds::new(0);
        assert!(!off.seen("a") && !off.seen("a"));
        assert!(off.is_empty());
    }
}
