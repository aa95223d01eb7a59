//! Event-time bookkeeping: the watermark, lateness classification, hopping
//! window arithmetic and a ring of step-sized buckets.
//!
//! Windows are hopping: of length `len`, starting every `step`, so
//! `[e - len, e)` for every `e` on the step grid. A window is final once the
//! watermark (max event time − bounded out-of-orderness) passes its end.

use std::collections::VecDeque;

use earshot_core::types::EventTime;

/// Watermark = max event time seen − bounded out-of-orderness. Never moves back.
#[derive(Debug, Clone, Copy)]
pub struct Watermark {
    max_seen: Option<EventTime>,
    out_of_orderness: i64,
}

/// Where an event falls relative to the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lateness {
    /// At or after the watermark.
    OnTime,
    /// Behind the watermark but within the allowed lateness: counted into
    /// every window evaluated after it arrives and into the baselines (as a
    /// correction when its hour was folded already); windows evaluated
    /// before keep their result.
    Late,
    /// Behind the watermark by more than the allowed lateness: reported back
    /// to the caller (who dead-letters it), not counted into windows.
    TooLate,
}

impl Watermark {
    pub fn new(out_of_orderness: i64) -> Self {
        Self {
            max_seen: None,
            out_of_orderness: out_of_orderness.max(0),
        }
    }

    /// The current watermark, `None` before the first event.
    pub fn current(&self) -> Option<EventTime> {
        self.max_seen.map(|m| m.saturating_sub(self.out_of_orderness))
    }

    pub fn max_seen(&self) -> Option<EventTime> {
        self.max_seen
    }

    /// Classifies `t` against the watermark *before* it is observed, then
    /// advances the watermark.
    pub fn observe(&mut self, t: EventTime, allowed_lateness: i64) -> Lateness {
        let class = match self.current() {
            Some(w) if t < w.saturating_sub(allowed_lateness.max(0)) => Lateness::TooLate,
            Some(w) if t < w => Lateness::Late,
            _ => Lateness::OnTime,
        };
        self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
        class
    }

    /// Moves the watermark to at least `t + out_of_orderness` (end of a
    /// replay: everything seen is final).
    pub fn advance_to(&mut self, watermark: EventTime) {
        let m = watermark.saturating_add(self.out_of_orderness);
        self.max_seen = Some(self.max_seen.map_or(m, |x| x.max(m)));
    }
}

/// A stretch of event time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: EventTime,
    pub end: EventTime,
}

impl Span {
    /// The window of length `len` that ends at `end` (clamped at the start of time).
    pub fn ending_at(end: EventTime, len: i64) -> Span {
        Span {
            start: end.saturating_sub(len),
            end,
        }
    }
}

/// Index of the step bucket holding `t`.
pub fn bucket_of(t: EventTime, step: i64) -> i64 {
    t.div_euclid(step)
}

/// End of the step bucket holding `t`: the first point of the `step` grid
/// after `t`, saturating at `i64::MAX` (event times are untrusted input).
pub fn bucket_end(t: EventTime, step: i64) -> EventTime {
    bucket_of(t, step).saturating_add(1).saturating_mul(step)
}

/// The hopping windows `[start, end)` of length `len` on a `step` grid that
/// contain `t`, earliest first. `len` must be a multiple of `step`. Near the
/// ends of the time range the arithmetic saturates instead of overflowing.
pub fn windows_containing(t: EventTime, step: i64, len: i64) -> impl Iterator<Item = Span> {
    let first_end = bucket_end(t, step);
    (0..len / step).map(move |i| Span::ending_at(first_end.saturating_add(i.saturating_mul(step)), len))
}

/// A ring of per-step buckets indexed by [`bucket_of`]; missing buckets read
/// as `T::default()`.
#[derive(Debug, Clone)]
pub struct Buckets<T> {
    first: i64,
    data: VecDeque<T>,
}

impl<T: Default + Clone> Default for Buckets<T> {
    fn default() -> Self {
        Self {
            first: 0,
            data: VecDeque::new(),
        }
    }
}

impl<T: Default + Clone> Buckets<T> {
    /// The bucket at `idx`, created if needed. Returns `None` for buckets
    /// already trimmed away (older than the retained range), and for
    /// buckets more than 2^20 steps past the newest (absurd event times).
    pub fn get_mut(&mut self, idx: i64) -> Option<&mut T> {
        if self.data.is_empty() {
            self.first = idx;
            self.data.push_back(T::default());
        }
        if idx < self.first {
            // Grow to the front only for a bounded gap (late events).
            let gap = self.first.saturating_sub(idx);
            if gap > 4096 {
                return None;
            }
            for _ in 0..gap {
                self.data.push_front(T::default());
            }
            self.first = idx;
        }
        let off = usize::try_from(idx.saturating_sub(self.first)).unwrap_or(usize::MAX);
        if off >= self.data.len() {
            if off - self.data.len() > 1 << 20 {
                return None;
            }
            self.data.resize(off + 1, T::default());
        }
        self.data.get_mut(off)
    }

    pub fn get(&self, idx: i64) -> Option<&T> {
        if idx < self.first {
            return None;
        }
        self.data
            .get(usize::try_from(idx.saturating_sub(self.first)).unwrap_or(usize::MAX))
    }

    /// Buckets in `[from, to)` that exist, with their index.
    pub fn range(&self, from: i64, to: i64) -> impl Iterator<Item = (i64, &T)> {
        let lo = from.max(self.first);
        let hi = to.min(self.first.saturating_add(self.data.len() as i64));
        (lo..hi.max(lo)).filter_map(move |i| self.get(i).map(|b| (i, b)))
    }

    /// Drops buckets before `idx`.
    pub fn trim_before(&mut self, idx: i64) {
        while self.first < idx && !self.data.is_empty() {
            self.data.pop_front();
            self.first += 1;
        }
        if self.data.is_empty() {
            self.first = idx;
        }
    }

    pub fn first_index(&self) -> i64 {
        self.first
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn watermark_is_monotone_and_lags_the_max(
            times in prop::collection::vec(0i64..1_000_000, 1..200),
            ooo in 0i64..10_000,
            lateness in 0i64..50_000,
        ) {
            let mut w = Watermark::new(ooo);
            let mut prev = i64::MIN;
            let mut max = i64::MIN;
            for &t in &times {
                let before = w.current();
                let class = w.observe(t, lateness);
                max = max.max(t);
                let now = w.current().unwrap();
                prop_assert!(now >= prev);
                prop_assert_eq!(now, max - ooo);
                prev = now;
                match (before, class) {
                    (None, c) => prop_assert_eq!(c, Lateness::OnTime),
                    (Some(b), Lateness::OnTime) => prop_assert!(t >= b),
                    (Some(b), Lateness::Late) => prop_assert!(t < b && t >= b - lateness),
                    (Some(b), Lateness::TooLate) => prop_assert!(t < b - lateness),
                }
            }
        }

        #[test]
        fn hopping_windows_cover_each_instant_exactly_len_over_step_times(
            t in -1_000_000i64..1_000_000,
            step in 1i64..1000,
            mult in 1i64..30,
        ) {
            let len = step * mult;
            let ws: Vec<_> = windows_containing(t, step, len).collect();
            prop_assert_eq!(ws.len() as i64, mult);
            for Span { start: s, end: e } in ws {
                prop_assert!(s <= t && t < e);
                prop_assert_eq!(e - s, len);
                prop_assert_eq!(e.rem_euclid(step), 0);
            }
        }

        #[test]
        fn bucket_sums_equal_brute_force(
            times in prop::collection::vec(0i64..100_000, 0..300),
            step in 1i64..5_000,
            from in 0i64..100_000,
            width in 0i64..100_000,
        ) {
            let mut b: Buckets<u32> = Buckets::default();
            // Buckets refuse to grow more than 4096 steps to the front (a
            // bound for very late events): the brute force counts what was kept.
            let mut kept = Vec::new();
            for &t in &times {
                if let Some(c) = b.get_mut(bucket_of(t, step)) {
                    *c += 1;
                    kept.push(t);
                } else {
                    prop_assert!(bucket_of(t, step) < b.first_index() - 4096);
                }
            }
            let (lo, hi) = (bucket_of(from, step), bucket_of(from + width, step));
            let sum: u32 = b.range(lo, hi).map(|(_, c)| *c).sum();
            let brute = kept.iter().filter(|&&t| {
                let i = bucket_of(t, step);
                i >= lo && i < hi
            }).count() as u32;
            prop_assert_eq!(sum, brute);
            // Trimming keeps later buckets intact.
            b.trim_before(lo);
            let after: u32 = b.range(lo, hi).map(|(_, c)| *c).sum();
            prop_assert_eq!(after, brute);
        }
    }
}
