//! Detector behaviour on synthetic streams with known rates: traffic
//! adjustment (a surge with the usual share is quiet; a complaint wave is not
//! traffic), early firing of a sudden wave, the drift CUSUM on a slow share
//! increase, the response SLA, and quiet nulls.
//! Texts are random word salads (never near-duplicates) without embeddings,
//! so only the volume/share statistics are exercised.

mod dispersion;
mod extreme_times;
mod late;
mod spam_rules;

use super::*;
use earshot_core::rng::Rng;
use earshot_core::types::{Category, Event, KeyDims, Scored, SentimentProbs, SignalKind};

const DAY: i64 = 24 * HOUR;
const T0: EventTime = 1_704_067_200_000;

const WORDS: [&str; 40] = [
    "battery", "strap", "screen", "box", "delivery", "colour", "size", "charger", "sound", "price", "gift", "fabric",
    "handle", "lid", "button", "cable", "manual", "app", "update", "light", "weight", "zip", "sole", "seam", "paint",
    "glass", "door", "wheel", "motor", "pump", "filter", "brush", "blade", "lens", "case", "clip", "hinge", "pad",
    "plug", "knob",
];

fn event(rng: &mut Rng, n: &mut u64, t: EventTime, product: &str, neg: bool) -> ScoredEvent {
    *n += 1;
    let text: Vec<&str> = (0..10).map(|_| WORDS[rng.below(WORDS.len())]).collect();
    let (sentiment, probs) = if neg {
        (
            Sentiment::Negative,
            SentimentProbs {
                negative: 0.9,
                neutral: 0.05,
                positive: 0.05,
            },
        )
    } else {
        (
            Sentiment::Positive,
            SentimentProbs {
                negative: 0.05,
                neutral: 0.05,
                positive: 0.9,
            },
        )
    };
    ScoredEvent {
        event: Event {
            id: format!("s{n:08}"),
            key: KeyDims {
                brand: Some("Acme".into()),
                product: Some(product.into()),
                sku: None,
                region: Some("us".into()),
                channel: None,
            },
            text: format!("{} {n}", text.join(" ")),
            lang: Some("en".into()),
            rating: None,
            author: None,
            event_time: t,
            replied_at: Some(t + HOUR),
            reply_to: None,
            pos: None,
        },
        scored: Scored {
            sentiment,
            probs,
            category: Category::ProductQuality,
            category_score: 0.9,
            lang: "en".into(),
            tokens: 12,
            truncated: false,
            embedding: Vec::new(),
        },
    }
}

/// A stream over `days`, `rate(t)` items per hour and `share(t)` negative,
/// for two products (the second always at background), plus `extra(t)`
/// negatives per hour on the first. Returns the signals with the event time
/// they were emitted at.
fn run(
    days: i64,
    rate: impl Fn(EventTime) -> f64,
    share: impl Fn(EventTime) -> f64,
    extra: impl Fn(EventTime) -> f64,
) -> Vec<(EventTime, Signal)> {
    let mut rng = Rng::new(11);
    let mut n = 0u64;
    let mut events = Vec::new();
    let step = MINUTE;
    for s in 0..days * DAY / step {
        let t0 = T0 + s * step;
        let hour = (t0 - T0) as f64 / HOUR as f64;
        let daily = 1.0 + 0.6 * (hour / 24.0 * std::f64::consts::TAU).cos();
        for product in ["Rocket", "Anvil"] {
            let mu = rate(t0) * daily / 60.0;
            let p = if product == "Rocket" { share(t0) } else { 0.15 };
            for _ in 0..rng.poisson(mu) {
                let t = t0 + (rng.uniform() * step as f64) as i64;
                let neg = rng.uniform() < p;
                events.push(event(&mut rng, &mut n, t, product, neg));
            }
            if product == "Rocket" {
                for _ in 0..rng.poisson(extra(t0) / 60.0) {
                    let t = t0 + (rng.uniform() * step as f64) as i64;
                    events.push(event(&mut rng, &mut n, t, product, true));
                }
            }
        }
    }
    events.sort_by_key(|e| e.event.event_time);
    let mut det = Detector::new(DetectConfig::default());
    let mut out = Vec::new();
    for e in &events {
        let p = det.push(e).expect("push");
        out.extend(p.signals.into_iter().map(|s| (e.event.event_time, s)));
    }
    out.extend(
        det.advance_watermark(T0 + days * DAY)
            .into_iter()
            .map(|s| (T0 + days * DAY, s)),
    );
    out
}

fn crises(signals: &[(EventTime, Signal)], from: EventTime) -> Vec<&(EventTime, Signal)> {
    signals
        .iter()
        .filter(|(t, s)| *t >= from && s.kind.is_crisis())
        .collect()
}

#[test]
fn steady_background_is_quiet() {
    let s = run(8, |_| 30.0, |_| 0.15, |_| 0.0);
    let c = crises(&s, T0 + 2 * DAY);
    assert!(c.is_empty(), "false alerts on a stationary stream: {c:?}");
}

#[test]
fn traffic_surge_with_the_usual_share_is_quiet() {
    // Triple traffic for a day (a holiday) on every product, same share.
    let surge = T0 + 6 * DAY;
    let s = run(
        8,
        |t| if (surge..surge + DAY).contains(&t) { 90.0 } else { 30.0 },
        |_| 0.15,
        |_| 0.0,
    );
    let c = crises(&s, T0 + 2 * DAY);
    assert!(c.is_empty(), "a volume surge with the usual share raised {c:?}");
}

#[test]
fn sudden_wave_fires_before_its_longest_window_closes() {
    // 60 extra negatives per hour on Rocket from day 6 10:00 for 2 hours.
    let start = T0 + 6 * DAY + 10 * HOUR;
    let s = run(
        7,
        |_| 30.0,
        |_| 0.15,
        |t| {
            if (start..start + 2 * HOUR).contains(&t) {
                60.0
            } else {
                0.0
            }
        },
    );
    let on_rocket: Vec<_> = crises(&s, start)
        .into_iter()
        .filter(|(_, sig)| sig.key.get(Dim::Product) == Some("Rocket"))
        .collect();
    let (at, first) = on_rocket.first().expect("the wave was not detected");
    let delay = (at - start) as f64 / MINUTE as f64;
    println!(
        "sudden wave: {} on {} after {delay:.1} min",
        first.kind.as_str(),
        first.key
    );
    assert!(delay <= 20.0, "detected after {delay} min: {first:?}");
    assert!(first.observed as f64 > 2.0 * first.expected, "{first:?}");
    // Nothing before the wave, and nothing on the untouched product.
    assert!(crises(&s, T0 + 2 * DAY).iter().all(|(t, _)| *t >= start));
    assert!(crises(&s, start)
        .iter()
        .all(|(_, sig)| sig.key.get(Dim::Product) != Some("Anvil")));
}

#[test]
fn slow_share_increase_is_caught_and_explained_as_a_drift_or_shift() {
    // Rocket's negative share ramps from 15 % to 40 % over 24 h, volume flat.
    let start = T0 + 5 * DAY;
    let share = |t: EventTime| {
        let x = ((t - start) as f64 / DAY as f64).clamp(0.0, 1.0);
        if t < start {
            0.15
        } else {
            0.15 + 0.25 * x
        }
    };
    let s = run(8, |_| 40.0, share, |_| 0.0);
    let c = crises(&s, T0 + 2 * DAY);
    let first = c.first().expect("the drift was not detected");
    let h = (first.0 - start) as f64 / HOUR as f64;
    println!(
        "share ramp: {} on {} after {h:.1} h",
        first.1.kind.as_str(),
        first.1.key
    );
    assert!(first.0 >= start, "fired before the drift began: {first:?}");
    assert!(
        first.0 < start + 2 * DAY,
        "too late: {:.1} h",
        (first.0 - start) as f64 / HOUR as f64
    );
    assert!(
        matches!(
            first.1.kind,
            SignalKind::SlowDrift | SignalKind::SentimentShift | SignalKind::VolumeSpike
        ),
        "{first:?}"
    );
    assert!(
        c.iter().all(|(_, sig)| sig.key.get(Dim::Product) != Some("Anvil")),
        "{c:?}"
    );
}

#[test]
fn response_sla_counts_unreplied_negatives_and_a_republished_reply_closes_one() {
    let mut det = Detector::new(DetectConfig::default());
    let mut rng = Rng::new(5);
    let mut n = 0;
    let unreplied = |rng: &mut Rng, n: &mut u64, t: EventTime, neg: bool| {
        let mut e = event(rng, n, t, "Kettle", neg);
        e.event.replied_at = None;
        e
    };
    let a = unreplied(&mut rng, &mut n, T0, true);
    let b = unreplied(&mut rng, &mut n, T0 + MINUTE, true);
    // Replied already when first seen, and a positive review: never open.
    let replied = event(&mut rng, &mut n, T0 + 2 * MINUTE, "Kettle", true);
    let positive = unreplied(&mut rng, &mut n, T0 + 3 * MINUTE, false);
    for e in [&a, &b, &replied, &positive] {
        det.push(e).unwrap();
    }
    let brand = |det: &Detector| {
        det.sla()
            .into_iter()
            .find(|s| s.key.to_string() == "brand=Acme")
            .map(|s| (s.open, s.overdue))
    };
    assert_eq!(brand(&det), Some((2, 0)));
    det.advance_watermark(T0 + 25 * HOUR);
    assert_eq!(brand(&det), Some((2, 2)), "both are older than the 24 h SLA");
    // `a` published again with its reply time: its entry closes, and it is
    // neither counted again nor treated as a too-late event.
    let mut again = a.clone();
    again.event.replied_at = Some(T0 + 26 * HOUR);
    let p = det.push(&again).unwrap();
    assert_eq!(p.lateness, Lateness::OnTime);
    assert!(p.signals.is_empty());
    assert_eq!(brand(&det), Some((1, 1)));
    assert_eq!(det.counters().replies, 1);
    assert_eq!(det.counters().too_late, 0);
    // A reply message naming `b` closes the other; it is not an event.
    let events = det.counters().events;
    let mut reply = unreplied(&mut rng, &mut n, T0 + 27 * HOUR, false);
    reply.event.text.clear();
    reply.event.reply_to = Some(b.event.id.clone());
    reply.event.replied_at = Some(T0 + 27 * HOUR);
    assert!(det.push(&reply).unwrap().signals.is_empty());
    assert_eq!(brand(&det).map_or(0, |x| x.0), 0);
    assert_eq!(det.counters().replies, 2);
    assert_eq!(det.counters().events, events);
}

#[test]
fn a_large_complaint_wave_is_not_taken_for_traffic_that_explains_a_smaller_one_away() {
    // Rocket 20 items/h, Anvil 4 items/h, 15 % negative. From day 6 at noon,
    // for two hours, Rocket gets 300 extra negatives per hour (ten times all
    // other traffic) and Anvil 12. Counted as traffic, Rocket's wave would
    // read as a ten-fold surge everywhere and explain Anvil's wave away.
    let mut rng = Rng::new(3);
    let mut n = 0u64;
    let mut events = Vec::new();
    let start = T0 + 6 * DAY + 12 * HOUR;
    for s in 0..7 * DAY / MINUTE {
        let t0 = T0 + s * MINUTE;
        let wave = t0 >= start && t0 < start + 2 * HOUR;
        for (product, rate, extra) in [("Rocket", 20.0, 300.0), ("Anvil", 4.0, 12.0)] {
            for _ in 0..rng.poisson(rate / 60.0) {
                let (neg, t) = (rng.uniform() < 0.15, t0 + rng.below(60_000) as i64);
                events.push(event(&mut rng, &mut n, t, product, neg));
            }
            if wave {
                for _ in 0..rng.poisson(extra / 60.0) {
                    let t = t0 + rng.below(60_000) as i64;
                    events.push(event(&mut rng, &mut n, t, product, true));
                }
            }
        }
    }
    events.sort_by_key(|e| e.event.event_time);
    let mut det = Detector::new(DetectConfig::default());
    let mut anvil = None;
    for e in &events {
        for s in det.push(e).unwrap().signals {
            if s.kind.is_crisis() && s.key.get(Dim::Product) == Some("Anvil") && anvil.is_none() {
                anvil = Some((e.event.event_time, s.kind));
            }
        }
    }
    let (at, kind) = anvil.expect("Anvil's wave was not detected");
    assert!(at >= start, "fired before the wave: {at}");
    assert!(
        at < start + HOUR,
        "late: {:.0} min",
        (at - start) as f64 / MINUTE as f64
    );
    // Anvil's own volume quadrupled: a volume spike. Read as a sentiment
    // shift ("share up while volume is flat") it would mean that Rocket's
    // wave had been taken for traffic that explains Anvil's volume away.
    assert_eq!(kind, SignalKind::VolumeSpike);
}

/// Keys named `p0`, `p1`, ... under one rollup (product), `max_keys` = 3.
fn capped() -> Detector {
    let cfg = DetectConfig {
        rollups: vec![vec![Dim::Product]],
        max_keys: 3,
        ..DetectConfig::default()
    };
    Detector::new(cfg)
}

fn product_key(p: &str) -> SignalKey {
    SignalKey(vec![(Dim::Product, p.to_string())])
}

#[test]
fn at_max_keys_new_keys_evict_the_least_recently_seen() {
    let mut rng = Rng::new(3);
    let mut n = 0;
    let mut det = capped();
    // p0, p1, p2 fill the table; p0 is seen again, so p1 is the least recent.
    for (i, p) in ["p0", "p1", "p2", "p0"].iter().enumerate() {
        det.push(&event(&mut rng, &mut n, T0 + i as i64 * MINUTE, p, false))
            .unwrap();
    }
    assert_eq!(det.tracked_keys(), 3);
    // p1 has an open condition: evicting it reports it cleared.
    det.keys.get_mut(&product_key("p1")).unwrap().active.insert(
        evaluate::Cond::Volume,
        evaluate::Active {
            last_true: T0,
            kind: SignalKind::VolumeSpike,
        },
    );
    det.take_cleared();
    det.push(&event(&mut rng, &mut n, T0 + 10 * MINUTE, "p3", false))
        .unwrap();
    let tracked = |d: &Detector| -> Vec<String> {
        (0..20)
            .map(|i| format!("p{i}"))
            .filter(|p| d.keys.get(&product_key(p)).is_some())
            .collect()
    };
    assert_eq!(tracked(&det), ["p0", "p2", "p3"]);
    let cleared = det.take_cleared();
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].key, product_key("p1"));
    assert_eq!(det.counters().keys_evicted, 1);
    assert_eq!(det.counters().keys_over_cap, 0);
    // A stream of new keys keeps tracking the newest three.
    for i in 4..20 {
        det.push(&event(
            &mut rng,
            &mut n,
            T0 + (10 + i) * MINUTE,
            &format!("p{i}"),
            false,
        ))
        .unwrap();
        assert_eq!(det.tracked_keys(), 3);
    }
    assert_eq!(tracked(&det), ["p17", "p18", "p19"]);
    assert_eq!(det.counters().keys_evicted, 17);
    // An evicted key that returns starts cold: first seen now, no history.
    let back = T0 + 40 * MINUTE;
    det.push(&event(&mut rng, &mut n, back, "p0", false)).unwrap();
    let st = det.keys.get(&product_key("p0")).unwrap();
    assert_eq!(st.first_seen, back);
    assert_eq!(
        st.buckets.range(i64::MIN, i64::MAX).map(|(_, c)| c.total).sum::<u32>(),
        1
    );
    assert_eq!(tracked(&det), ["p0", "p18", "p19"]);
}

#[test]
fn eviction_ties_go_to_the_older_key_and_repeat_exactly() {
    let run = || {
        let mut rng = Rng::new(4);
        let mut n = 0;
        let mut det = capped();
        // All at one event time: the order of creation breaks the tie.
        for p in ["b", "a", "c", "d", "e"] {
            det.push(&event(&mut rng, &mut n, T0, p, false)).unwrap();
        }
        ["a", "b", "c", "d", "e"]
            .iter()
            .filter(|p| det.keys.get(&product_key(p)).is_some())
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), ["c", "d", "e"]);
    assert_eq!(run(), run());
}

/// Negatives and items in the global key's buckets (all keys' statistics).
fn global_counts(d: &Detector) -> (u64, u64) {
    let b = &d.global.buckets;
    let (lo, hi) = (bucket_of(T0 - DAY, d.cfg.step), bucket_of(T0 + 2 * DAY, d.cfg.step));
    (lo..hi)
        .filter_map(|i| b.get(i))
        .fold((0, 0), |(n, t), c| (n + c.neg as u64, t + c.total as u64))
}

/// A Kafka redelivery (the last minutes' events again, as after a failed
/// commit) is not counted twice; with `dedup_ids = 0` it is.
#[test]
fn redelivered_events_are_counted_once() {
    let mut rng = Rng::new(5);
    let mut n = 0u64;
    let events: Vec<ScoredEvent> = (0..600)
        .map(|i| event(&mut rng, &mut n, T0 + i * 6_000, "Rocket", i % 3 == 0))
        .collect();
    let feed = |cfg: DetectConfig| {
        let mut d = Detector::new(cfg);
        for e in &events {
            d.push(e).unwrap();
        }
        // The last 100 events (10 minutes) delivered again.
        for e in &events[500..] {
            d.push(e).unwrap();
        }
        d
    };
    let on = feed(DetectConfig::default());
    assert_eq!(on.counters().duplicates, 100);
    assert_eq!(global_counts(&on), (200, 600), "each event counted once");
    let off = feed(DetectConfig {
        dedup_ids: 0,
        ..DetectConfig::default()
    });
    assert_eq!(off.counters().duplicates, 0);
    assert!(
        global_counts(&off).1 > 600,
        "without it the redelivery inflates the counts: {:?}",
        global_counts(&off)
    );
}

/// A unit vector in `DIM` dimensions: `topic` plus noise when given, else
/// a random direction (background complaints about everything).
fn embedding(rng: &mut Rng, topic: Option<&[f32]>) -> Vec<f32> {
    const DIM: usize = 32;
    let mut v: Vec<f32> = (0..DIM).map(|_| rng.normal() as f32).collect();
    if let Some(u) = topic {
        for (x, t) in v.iter_mut().zip(u) {
            *x = t + 0.08 * *x;
        }
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// One key ("Rocket") for three days and 21 hours, fed to a detector:
/// each stream is (items per hour, negative, topic of its embeddings or
/// scattered, ramped): a ramped stream starts at the returned wave start
/// (three days and 19 hours in) and reaches its rate linearly over 30 min.
/// Returns the crisis signals and the wave's start.
type Stream<'a> = (f64, bool, Option<&'a [f32]>, bool);

fn busy_key(mut rng: Rng, streams: &[Stream], cfg: DetectConfig) -> (Vec<(EventTime, Signal)>, EventTime) {
    let mut n = 0u64;
    let start = T0 + 3 * DAY + 19 * HOUR;
    let mut events = Vec::new();
    let step = MINUTE;
    for s in 0..(3 * DAY + 21 * HOUR) / step {
        let t0 = T0 + s * step;
        let ramp = ((t0 - start) as f64 / (30 * MINUTE) as f64).clamp(0.0, 1.0);
        for &(per_hour, neg, topic, ramped) in streams {
            let rate = if ramped { per_hour * ramp } else { per_hour };
            for _ in 0..rng.poisson(rate / 60.0) {
                let t = t0 + (rng.uniform() * step as f64) as i64;
                let mut e = event(&mut rng, &mut n, t, "Rocket", neg);
                e.scored.embedding = embedding(&mut rng, topic);
                events.push(e);
            }
        }
    }
    events.sort_by_key(|e| e.event.event_time);
    let mut det = Detector::new(cfg);
    let mut out = Vec::new();
    for e in &events {
        let p = det.push(e).expect("push");
        out.extend(
            p.signals
                .into_iter()
                .filter(|s| s.kind.is_crisis())
                .map(|s| (e.event.event_time, s)),
        );
    }
    (out, start)
}

/// A busy key (16 negatives per hour of scattered complaints among 24
/// positives) for three days, then a new topic ramps up linearly over 30
/// min to 16 more negatives per hour (the negatives double). Returns the
/// crisis signals and the wave's start.
fn busy_key_with_a_new_topic(cfg: DetectConfig) -> (Vec<(EventTime, Signal)>, EventTime) {
    let mut rng = Rng::new(5);
    let topic = embedding(&mut rng, None);
    busy_key(
        rng,
        &[
            (24.0, false, None, false),
            (16.0, true, None, false),
            (16.0, true, Some(&topic), true),
        ],
        cfg,
    )
}

#[test]
fn a_new_topic_on_a_busy_key_is_found_by_the_cluster_cusum_soon_after_its_ramp() {
    let (signals, start) = busy_key_with_a_new_topic(DetectConfig::default());
    let before: Vec<_> = signals.iter().filter(|(t, _)| *t >= T0 + DAY && *t < start).collect();
    assert!(before.is_empty(), "false alerts on the busy background: {before:?}");
    let first = signals
        .iter()
        .find(|(t, s)| *t >= start && s.kind == SignalKind::EmergingIssue && s.cluster.is_some())
        .map(|(t, _)| *t);
    let within = start + 45 * MINUTE;
    assert!(
        first.is_some_and(|t| t <= within),
        "first emerging issue at {:?} min after the ramp began",
        first.map(|t| (t - start) / MINUTE)
    );
    // Without the sequential rule the window tests see nothing that soon:
    // the new topic is a small part of a busy key's negatives.
    let mut off = DetectConfig::default();
    off.thresholds.cluster_cusum_h = f64::INFINITY;
    let (signals, _) = busy_key_with_a_new_topic(off);
    assert!(
        !signals.iter().any(|(t, _)| (start..=within).contains(t)),
        "the window tests alone fired within 45 min: the test no longer shows the CUSUM's gain"
    );
}

/// A busy key whose negatives are half one broad, long-standing topic and
/// half scattered, for three days; then a new topic ramps up over 30 min
/// to 16 more negatives per hour. Each item of the new topic lies closer
/// to the broad topic's centroid than the join threshold, so it would
/// join that cluster if it got there first. Returns the crisis signals
/// and the wave's start.
fn busy_key_with_a_topic_near_a_broad_one(cfg: DetectConfig) -> (Vec<(EventTime, Signal)>, EventTime) {
    let mut rng = Rng::new(11);
    let broad = embedding(&mut rng, None);
    let fresh = embedding(&mut rng, None);
    // Between the two: cos about 0.6 to the broad topic once centred.
    let near: Vec<f32> = broad.iter().zip(&fresh).map(|(b, f)| 0.8 * b + 0.6 * f).collect();
    busy_key(
        rng,
        &[
            (24.0, false, None, false),
            (8.0, true, Some(&broad), false),
            (8.0, true, None, false),
            (16.0, true, Some(&near), true),
        ],
        cfg,
    )
}

#[test]
fn a_new_topic_next_to_a_broad_one_pairs_up_instead_of_sinking_into_it() {
    let first_issue = |cfg: DetectConfig| {
        let (signals, start) = busy_key_with_a_topic_near_a_broad_one(cfg);
        let before: Vec<_> = signals.iter().filter(|(t, _)| *t >= T0 + DAY && *t < start).collect();
        assert!(before.is_empty(), "false alerts on the busy background: {before:?}");
        let first = signals
            .iter()
            .find(|(t, s)| *t >= start && s.kind == SignalKind::EmergingIssue && s.cluster.is_some())
            .map(|(t, _)| (t - start) / MINUTE);
        (first, start)
    };
    let (on, _) = first_issue(DetectConfig::default());
    assert!(
        on.is_some_and(|m| m <= 45),
        "first emerging issue {on:?} min after the ramp began"
    );
    // Without re-homing the new topic's items join the broad cluster
    // (the first ones, or all of them) and its issue comes later or never.
    let (off, _) = first_issue(DetectConfig {
        cluster_rehome: 0,
        ..DetectConfig::default()
    });
    println!("first emerging issue: {on:?} min after the ramp began with re-homing, {off:?} without");
    assert!(
        off.is_none_or(|m| m > on.unwrap_or(0) + 10),
        "without re-homing: {off:?} min, with: {on:?} min; the test no longer shows the gain"
    );
}

#[test]
fn loose_members_let_their_embeddings_go_once_past_the_rehoming_window() {
    let mut rng = Rng::new(3);
    let mut n = 0u64;
    let topic = embedding(&mut rng, None);
    let mut det = Detector::new(DetectConfig {
        rollups: vec![vec![Dim::Product]],
        ..DetectConfig::default()
    });
    // 40 negatives on one topic within 20 minutes: all but the founder join.
    for i in 0..40 {
        let mut e = event(&mut rng, &mut n, T0 + i * 30_000, "Rocket", true);
        e.scored.embedding = embedding(&mut rng, Some(&topic));
        det.push(&e).unwrap();
    }
    let key = product_key("Rocket");
    let loose = |d: &Detector| d.keys.get(&key).unwrap().loose.len();
    assert!(
        loose(&det) > 0 && loose(&det) <= crate::cluster::LOOSE_CAP,
        "{}",
        loose(&det)
    );
    // No new negative on the key: the evaluation drops them all the same.
    det.advance_watermark(T0 + 20 * MINUTE + det.cfg.cluster_rehome + 2 * det.cfg.step);
    assert_eq!(loose(&det), 0);
}
