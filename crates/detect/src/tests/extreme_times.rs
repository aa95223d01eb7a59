//! Absurd event times (year 9999, `i64::MAX / 2`, `i64::MAX`, negative
//! epochs) after or before normal traffic: the detector must return promptly
//! and never overflow. Before checked event-time arithmetic these hung (the
//! hourly fold walked every hour of the gap, per key) or panicked on
//! overflow (debug builds).

use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::baseline::max_idle_fold_hours;

/// 9999-12-31T23:59:59Z.
const YEAR_9999: EventTime = 253_402_300_799_000;

/// Runs `f` on its own thread; fails if it panics or takes longer than `secs`.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("the detector panicked or did not return in time")
}

/// `hours` of ordinary traffic (about 30 items an hour, 15 % negative) from `T0`.
fn normal(det: &mut Detector, rng: &mut Rng, n: &mut u64, hours: i64) {
    for m in 0..hours * 60 {
        let t = T0 + m * MINUTE;
        if rng.uniform() < 0.5 {
            let neg = rng.uniform() < 0.15;
            det.push(&event(rng, n, t, "Rocket", neg)).expect("push");
        }
    }
}

/// An event at `t`; with `contradiction`, a 5-star rating on a negative
/// text by one author (exercises every spam check's time arithmetic).
fn at(rng: &mut Rng, n: &mut u64, t: EventTime, contradiction: bool) -> ScoredEvent {
    // Built at time 0: the helper's reply time `t + 1 h` would overflow.
    let mut e = event(rng, n, 0, "Rocket", true);
    e.event.event_time = t;
    e.event.replied_at = Some(t.saturating_add(HOUR));
    if contradiction {
        e.event.rating = Some(5.0);
        e.event.author = Some("same-author".into());
        e.event.text = "worst battery ever, it melted".into();
        e.event.replied_at = None;
    }
    e
}

#[test]
fn far_future_events_after_normal_traffic_return_promptly() {
    let hours_folded = within(120, || {
        let mut det = Detector::new(DetectConfig::default());
        let (mut rng, mut n) = (Rng::new(7), 0);
        normal(&mut det, &mut rng, &mut n, 48);
        let before = det.global.baseline.hours;
        for t in [YEAR_9999, i64::MAX / 2, i64::MAX - 1, i64::MAX] {
            for _ in 0..6 {
                det.push(&at(&mut rng, &mut n, t, true)).expect("push");
            }
            det.push(&at(&mut rng, &mut n, t, false)).expect("push");
        }
        det.advance_watermark(i64::MAX);
        det.advance_watermark(i64::MAX);
        let _ = det.sla();
        let _ = det.take_cleared();
        // Events back at normal times are now far too late, and counted so.
        let late = det.push(&at(&mut rng, &mut n, T0, false)).expect("push");
        assert_eq!(late.lateness, Lateness::TooLate);
        det.global.baseline.hours - before
    });
    // Each of the three jumps is folded in O(baseline memory), not hour by
    // hour: the idle stretch up to `max_idle_fold_hours`, plus the hours
    // that still hold items (the day of buckets around the previous jump).
    let bound = 3 * (max_idle_fold_hours(&DetectConfig::default()) as u64 + 48);
    assert!(hours_folded <= bound, "{hours_folded} hours folded");
}

#[test]
fn negative_epochs_before_normal_traffic_return_promptly() {
    within(120, || {
        for first in [i64::MIN, i64::MIN / 2, -YEAR_9999] {
            let mut det = Detector::new(DetectConfig::default());
            let (mut rng, mut n) = (Rng::new(9), 0);
            for _ in 0..6 {
                det.push(&at(&mut rng, &mut n, first, true)).expect("push");
            }
            normal(&mut det, &mut rng, &mut n, 30);
            det.advance_watermark(T0 + 40 * HOUR);
            let _ = det.sla();
        }
    });
}

#[test]
fn a_watermark_jump_within_the_baseline_memory_folds_every_hour() {
    // A three-day gap is ordinary (a source down over a weekend): every
    // hour of it is folded, exactly as hour-by-hour progress would.
    let mut det = Detector::new(DetectConfig::default());
    let (mut rng, mut n) = (Rng::new(3), 0);
    normal(&mut det, &mut rng, &mut n, 30);
    let next = det.global.next_fold.expect("folding started");
    let before = det.global.baseline.hours;
    let t = T0 + (30 + 72) * HOUR;
    det.push(&at(&mut rng, &mut n, t, false)).expect("push");
    let folded = det.global.baseline.hours - before;
    assert_eq!(folded as i64, det.global.next_fold.unwrap() - next);
    assert!(folded >= 70, "{folded}");
}

#[test]
fn grid_arithmetic_saturates_at_the_ends_of_time() {
    use crate::window::{bucket_end, windows_containing, Span};
    let step = 5 * MINUTE;
    assert_eq!(bucket_end(i64::MAX, step), i64::MAX);
    assert_eq!(bucket_end(0, step), step);
    assert_eq!(Span::ending_at(i64::MIN + 1, HOUR).start, i64::MIN);
    let ws: Vec<Span> = windows_containing(i64::MAX - 1, step, 3 * step).collect();
    assert_eq!(ws.len(), 3);
    assert!(ws.iter().all(|w| w.start <= w.end));
}
