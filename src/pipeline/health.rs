//! Readiness beyond "model loaded, partitions assigned": the conditions under
//! which the engine is up but not doing its job, so `/readyz` answers 503 and
//! `earshot_not_ready{reason}` says why. Filled by the engine's monitor task
//! (every 500 ms) from the consumer, the producer and the pipeline counters;
//! read by the HTTP server.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Reasons `/readyz` can give (the `reason` label of `earshot_not_ready`).
pub const REASONS: &[&str] = &[
    "model_loading",
    "no_partitions",
    "broker_unreachable",
    "producer_failed",
    "stalled",
];

/// Producer and progress health of a running engine.
#[derive(Debug)]
pub struct Health {
    stall_timeout: Duration,
    producer_fatal: OnceLock<String>,
    progress: Mutex<StallWatch>,
}

#[derive(Debug)]
struct StallWatch {
    acked: u64,
    since: Instant,
    stalled: bool,
}

impl Default for Health {
    fn default() -> Self {
        Self::new(Duration::from_secs(60))
    }
}

impl Health {
    pub fn new(stall_timeout: Duration) -> Self {
        Self {
            stall_timeout,
            producer_fatal: OnceLock::new(),
            progress: Mutex::new(StallWatch {
                acked: 0,
                since: Instant::now(),
                stalled: false,
            }),
        }
    }

    /// Records the producer's fatal error (the first one wins).
    pub fn set_producer_fatal(&self, reason: String) {
        let _ = self.producer_fatal.set(reason);
    }

    pub fn producer_fatal(&self) -> Option<&str> {
        self.producer_fatal.get().map(String::as_str)
    }

    /// Feeds the acknowledged count and whether work is waiting (messages in
    /// flight or consumer lag) at `now`. Stalled: work waited and nothing was
    /// acknowledged for `stall_timeout`. Returns the new state.
    pub fn observe(&self, acked: u64, waiting: bool, now: Instant) -> bool {
        let mut w = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        if acked != w.acked || !waiting {
            // Progress, or nothing to do: the clock restarts.
            w.acked = acked;
            w.since = now;
        }
        let stalled = waiting && now.saturating_duration_since(w.since) >= self.stall_timeout;
        if stalled != w.stalled {
            if stalled {
                tracing::warn!(
                    stall_s = self.stall_timeout.as_secs(),
                    "pipeline stalled: work is waiting but nothing was acknowledged; not ready"
                );
            } else {
                tracing::info!("pipeline progressing again");
            }
            w.stalled = stalled;
        }
        stalled
    }

    pub fn stalled(&self) -> bool {
        self.progress.lock().unwrap_or_else(|e| e.into_inner()).stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_only_when_work_waits_without_progress_for_the_timeout() {
        let h = Health::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(!h.observe(0, true, t0));
        assert!(!h.observe(0, true, t0 + Duration::from_secs(59)));
        assert!(h.observe(0, true, t0 + Duration::from_secs(60)));
        assert!(h.stalled());
        // An ack restarts the clock.
        assert!(!h.observe(5, true, t0 + Duration::from_secs(61)));
        assert!(!h.stalled());
        // Idle (nothing waiting) is never a stall.
        assert!(!h.observe(5, false, t0 + Duration::from_secs(500)));
        assert!(!h.observe(5, true, t0 + Duration::from_secs(501)));
        assert!(h.observe(5, true, t0 + Duration::from_secs(561)));
    }

    #[test]
    fn the_first_fatal_producer_error_is_kept() {
        let h = Health::default();
        assert_eq!(h.producer_fatal(), None);
        h.set_producer_fatal("OutOfOrderSequenceNumber".into());
        h.set_producer_fatal("other".into());
        assert_eq!(h.producer_fatal(), Some("OutOfOrderSequenceNumber"));
    }
}
