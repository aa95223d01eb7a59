//! Lifecycle tests: alert dedup, repeats, resolution, silences, restore,
//! and incidents (correlation, updates, echoes).

use super::*;
use crate::api::Silence;
use crate::outbox::Entry;
use earshot_core::types::{Explanation, Quote, SignalKey};

const MIN: i64 = 60_000;
const T0: i64 = 1_795_000_000_000;

fn cfg() -> LifecycleConfig {
    LifecycleConfig {
        grafana_url: "http://grafana:3000".into(),
        resolve_after: 60 * MIN,
        repeat_interval: 30 * MIN,
        group_by: vec![Dim::Brand],
        correlate: CorrelateConfig::default(),
    }
}

fn key(brand: &str, product: &str) -> SignalKey {
    SignalKey(vec![(Dim::Brand, brand.into()), (Dim::Product, product.into())])
}

fn signal(kind: SignalKind, k: SignalKey, end: i64, cluster: Option<u64>) -> Signal {
    Signal {
        kind,
        key: k,
        window_start: end - 15 * MIN,
        window_end: end,
        observed: 42,
        expected: 6.0,
        population: 100,
        baseline_share: 0.1,
        p_value: 1e-9,
        cluster,
        reason: None,
        explanation: Explanation {
            quotes: (0..4)
                .map(|i| Quote {
                    id: format!("q{i}"),
                    text: format!("battery overheats {i}"),
                    lang: "en".into(),
                    event_time: end,
                })
                .collect(),
            top_terms: vec![("overheating".into(), 9), ("battery".into(), 7)],
            ..Default::default()
        },
    }
}

fn cleared(kind: SignalKind, k: SignalKey, at: i64, cluster: Option<u64>) -> Cleared {
    Cleared {
        kind,
        key: k,
        cluster,
        at,
    }
}

fn statuses(v: &[AlertOut]) -> Vec<(&str, u32)> {
    v.iter().map(|a| (a.status.as_str(), a.repeat)).collect()
}

#[test]
fn fires_once_dedups_repeats_and_resolves_on_clear() {
    let mut lc = Lifecycle::new(cfg(), Silences::default());
    let k = key("Voltra", "X2");
    let s = signal(SignalKind::VolumeSpike, k.clone(), T0, None);
    let a = lc.step(std::slice::from_ref(&s), &[], Some(T0));
    assert_eq!(statuses(&a), vec![("firing", 0)]);
    assert_eq!(a[0].fingerprint, crate::fingerprint(&s));
    let text = a[0].payload["text"].as_str().unwrap();
    assert!(text.contains("42 observed vs 6.0 expected"), "{text}");
    assert_eq!(text.matches('“').count(), 3, "three quotes: {text}");
    assert!(text.contains("var-brand=Voltra&var-product=X2"), "{text}");
    // Same condition again: deduplicated.
    let s2 = signal(SignalKind::VolumeSpike, k.clone(), T0 + 5 * MIN, None);
    assert!(lc.step(&[s2], &[], Some(T0 + 5 * MIN)).is_empty());
    // Repeat after 30 minutes of event time, not before.
    assert!(lc.step(&[], &[], Some(T0 + 29 * MIN)).is_empty());
    let r = lc.step(&[], &[], Some(T0 + 30 * MIN));
    assert_eq!(statuses(&r), vec![("firing", 1)]);
    assert_ne!(r[0].idempotency_key, a[0].idempotency_key);
    assert!(lc.step(&[], &[], Some(T0 + 45 * MIN)).is_empty());
    assert_eq!(statuses(&lc.step(&[], &[], Some(T0 + 61 * MIN))), vec![("firing", 2)]);
    // Cleared by the detector: resolved at that time.
    let c = cleared(SignalKind::VolumeSpike, k.clone(), T0 + 70 * MIN, None);
    let r = lc.step(&[], &[c], Some(T0 + 70 * MIN));
    assert_eq!(statuses(&r), vec![("resolved", 2)]);
    assert_eq!(r[0].payload["ends_at"], rfc3339(T0 + 70 * MIN));
    assert!(lc.firing().is_empty());
    // A new onset fires again with a new key.
    let s3 = signal(SignalKind::VolumeSpike, k, T0 + 200 * MIN, None);
    let f = lc.step(&[s3], &[], Some(T0 + 200 * MIN));
    assert_eq!(statuses(&f), vec![("firing", 0)]);
    assert_ne!(f[0].idempotency_key, a[0].idempotency_key);
}

#[test]
fn same_input_gives_same_keys() {
    let run = || {
        let mut lc = Lifecycle::new(cfg(), Silences::default());
        let k = key("Voltra", "X2");
        let mut all = lc.step(&[signal(SignalKind::VolumeSpike, k.clone(), T0, None)], &[], Some(T0));
        all.extend(lc.step(&[], &[], Some(T0 + 40 * MIN)));
        all.extend(lc.step(&[], &[cleared(SignalKind::VolumeSpike, k, T0 + 50 * MIN, None)], None));
        all.into_iter().map(|a| a.idempotency_key).collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a.len(), 3);
    assert_eq!(a, run());
}

#[test]
fn emerging_issue_resolves_when_all_its_clusters_clear() {
    let mut lc = Lifecycle::new(cfg(), Silences::default());
    let k = key("Voltra", "X2");
    let a = lc.step(
        &[
            signal(SignalKind::EmergingIssue, k.clone(), T0, Some(1)),
            signal(SignalKind::EmergingIssue, k.clone(), T0, Some(2)),
        ],
        &[],
        Some(T0),
    );
    assert_eq!(a.len(), 1, "one alert per rule and key");
    let c1 = cleared(SignalKind::EmergingIssue, k.clone(), T0 + MIN, Some(1));
    assert!(lc.step(&[], &[c1], None).is_empty());
    let c2 = cleared(SignalKind::EmergingIssue, k, T0 + 2 * MIN, Some(2));
    assert_eq!(statuses(&lc.step(&[], &[c2], None)), vec![("resolved", 0)]);
}

#[test]
fn one_shot_kinds_resolve_after_resolve_after_without_new_signal() {
    let mut c = cfg();
    c.repeat_interval = 0;
    let mut lc = Lifecycle::new(c, Silences::default());
    let k = key("Voltra", "X2");
    lc.step(&[signal(SignalKind::ReviewBombing, k.clone(), T0, None)], &[], Some(T0));
    // A new signal 40 minutes later extends it.
    lc.step(
        &[signal(SignalKind::ReviewBombing, k, T0 + 40 * MIN, None)],
        &[],
        Some(T0 + 40 * MIN),
    );
    assert!(lc.step(&[], &[], Some(T0 + 99 * MIN)).is_empty());
    let r = lc.step(&[], &[], Some(T0 + 100 * MIN));
    assert_eq!(statuses(&r), vec![("resolved", 0)]);
    assert_eq!(r[0].at, T0 + 100 * MIN);
}

#[test]
fn silences_apply_within_their_event_time_range_and_expire() {
    let silences = Silences::default();
    let mut m = BTreeMap::new();
    m.insert("brand".to_string(), "Voltra".to_string());
    let s = silences
        .add(
            Silence {
                id: String::new(),
                matchers: m,
                starts_at: rfc3339(T0 - MIN),
                ends_at: rfc3339(T0 + 60 * MIN),
                comment: "known issue".into(),
                created_by: "test".into(),
            },
            T0,
        )
        .unwrap();
    assert!(!s.id.is_empty());
    let mut lc = Lifecycle::new(cfg(), silences.clone());
    let v = lc.step(
        &[signal(SignalKind::VolumeSpike, key("Voltra", "X2"), T0, None)],
        &[],
        Some(T0),
    );
    let o = lc.step(
        &[signal(SignalKind::VolumeSpike, key("Other", "Y"), T0, None)],
        &[],
        Some(T0),
    );
    assert!(v[0].silenced && v[0].payload["silenced"] == true);
    assert!(!o[0].silenced);
    // The silence's end passes in event time: the repeat is not silenced.
    let r = lc.step(&[], &[], Some(T0 + 60 * MIN));
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|a| !a.silenced), "silence expired at ends_at");
    // Expired through the API: gone.
    assert!(silences.expire(&s.id));
    assert!(!silences.expire(&s.id));
    assert!(silences.list().is_empty());
    // Invalid silences are refused with the field.
    let e = silences
        .add(
            Silence {
                id: String::new(),
                matchers: BTreeMap::new(),
                starts_at: String::new(),
                ends_at: "tomorrow".into(),
                comment: String::new(),
                created_by: String::new(),
            },
            T0,
        )
        .unwrap_err();
    assert!(e.starts_with("matchers"), "{e}");
}

#[test]
fn restored_alerts_resolve_on_a_new_clear_or_after_resolve_after() {
    let k1 = key("Voltra", "X2");
    let k2 = key("Nimbus", "N1");
    let mut lc = Lifecycle::new(cfg(), Silences::default());
    let fired = lc.step(
        &[
            signal(SignalKind::VolumeSpike, k1.clone(), T0, None),
            signal(SignalKind::EmergingIssue, k2.clone(), T0, Some(4)),
        ],
        &[],
        Some(T0),
    );
    assert_eq!(fired.len(), 2);
    let r = lc.step(&[], &[], Some(T0 + 30 * MIN));
    assert_eq!(statuses(&r), vec![("firing", 1), ("firing", 1)]);
    // Through serde, as the service stores it.
    let snap: LifecycleState = serde_json::from_value(serde_json::to_value(lc.snapshot()).unwrap()).unwrap();
    assert_eq!(snap, lc.snapshot());
    let mut back = Lifecycle::restore(cfg(), Silences::default(), snap);
    assert_eq!(back.firing(), lc.firing());
    // The new detector fires X2 again (deduplicated) and later clears it:
    // resolved with the same key the uninterrupted lifecycle gives.
    let again = signal(SignalKind::VolumeSpike, k1.clone(), T0 + 35 * MIN, None);
    assert!(back
        .step(std::slice::from_ref(&again), &[], Some(T0 + 35 * MIN))
        .is_empty());
    assert!(lc.step(&[again], &[], Some(T0 + 35 * MIN)).is_empty());
    let c = cleared(SignalKind::VolumeSpike, k1, T0 + 50 * MIN, None);
    let a = back.step(&[], std::slice::from_ref(&c), Some(T0 + 50 * MIN));
    let b = lc.step(&[], &[c], Some(T0 + 50 * MIN));
    assert_eq!(statuses(&a), vec![("resolved", 1)]);
    assert_eq!(a[0].idempotency_key, b[0].idempotency_key);
    // N1's cluster condition is gone with the old detector: it resolves
    // `resolve_after` (60 min) after its latest change before the
    // restore (the repeat at 30), repeats since then notwithstanding.
    assert_eq!(statuses(&back.step(&[], &[], Some(T0 + 60 * MIN))), vec![("firing", 2)]);
    assert!(back.step(&[], &[], Some(T0 + 89 * MIN)).is_empty());
    let r = back.step(&[], &[], Some(T0 + 200 * MIN));
    assert_eq!(statuses(&r), vec![("resolved", 2)]);
    assert_eq!(r[0].at, T0 + 90 * MIN);
    assert!(back.firing().is_empty());
    // The uninterrupted lifecycle still waits for the detector's clear.
    assert_eq!(lc.firing().len(), 1);
}

#[test]
fn state_from_outbox_entries_matches_the_snapshot() {
    // Milliseconds too (the payload's times are whole seconds).
    let t = T0 + 123;
    let mut lc = Lifecycle::new(cfg(), Silences::default());
    let mut out = lc.step(
        &[signal(SignalKind::VolumeSpike, key("Voltra", "X2"), t, None)],
        &[],
        Some(t),
    );
    out.extend(lc.step(&[], &[], Some(t + 31 * MIN)));
    let latest: Vec<Entry> = out.iter().rev().take(1).map(Entry::from).collect();
    assert_eq!(LifecycleState::from_entries(&latest), lc.snapshot());
}

#[test]
fn related_alerts_share_a_group() {
    let mut lc = Lifecycle::new(cfg(), Silences::default());
    let a = lc.step(
        &[
            signal(SignalKind::VolumeSpike, key("Voltra", "X2"), T0, None),
            signal(SignalKind::VolumeSpike, key("Voltra", "X3"), T0, None),
            signal(SignalKind::VolumeSpike, key("Other", "X2"), T0, None),
        ],
        &[],
        Some(T0),
    );
    assert_eq!(a.len(), 3);
    assert_eq!(a[0].group_key, "brand=Voltra");
    assert_eq!(a[1].group_key, "brand=Voltra");
    assert_eq!(a[2].group_key, "brand=Other");
    assert_eq!(a[1].payload["group_firing"].as_array().unwrap().len(), 2);
    assert_eq!(a[2].payload["group_firing"].as_array().unwrap().len(), 1);
}

fn wave_signal(kind: SignalKind, k: SignalKey, end: i64, members: std::ops::Range<u64>, region: &str) -> Signal {
    let mut s = signal(kind, k, end, None);
    s.explanation.members = members.collect();
    s.explanation.regions = vec![(region.into(), 9)];
    s
}

fn pairs(p: &[(Dim, &str)]) -> SignalKey {
    SignalKey(p.iter().map(|(d, v)| (*d, v.to_string())).collect())
}

#[test]
fn one_wave_on_many_keys_and_rules_is_one_incident() {
    let mut lc = Lifecycle::new(cfg(), Silences::default());
    let product = key("Voltra", "X2");
    let open = lc.step(
        &[wave_signal(SignalKind::VolumeSpike, product.clone(), T0, 0..30, "DE")],
        &[],
        Some(T0),
    );
    assert_eq!(statuses(&open), vec![("firing", 0)]);
    let id = open[0].fingerprint.clone();
    // The same reviews light up the region, the brand and another rule.
    let region = pairs(&[(Dim::Region, "FR")]);
    let brand = pairs(&[(Dim::Brand, "Voltra")]);
    let specific = pairs(&[
        (Dim::Brand, "Voltra"),
        (Dim::Product, "X2"),
        (Dim::Category, "product_quality"),
    ]);
    let more = [
        wave_signal(SignalKind::EmergingIssue, region.clone(), T0 + 5 * MIN, 10..60, "FR"),
        wave_signal(SignalKind::SentimentShift, brand.clone(), T0 + 5 * MIN, 0..90, "DE"),
        wave_signal(SignalKind::SlowDrift, specific.clone(), T0 + 10 * MIN, 5..40, "DE"),
    ];
    assert!(lc.step(&more, &[], Some(T0 + 10 * MIN)).is_empty(), "no new page");
    assert_eq!(lc.firing(), vec![id.clone()]);
    assert_eq!(lc.firing_alerts().len(), 4);
    // One update once the update interval has passed, naming the spread.
    let u = lc.step(&[], &[], Some(T0 + 30 * MIN));
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].fingerprint, id);
    assert_eq!(u[0].payload["update"], 1);
    assert!(u[0].summary.contains("regions DE, FR"), "{}", u[0].summary);
    // Titled by the most specific key; labels stay the opening alert's.
    assert_eq!(u[0].payload["key"], specific.to_string());
    assert_eq!(u[0].payload["labels"]["product"], "X2");
    assert_eq!(u[0].payload["rule"], "volume_spike");
    assert_eq!(u[0].payload["incident"]["keys"].as_array().unwrap().len(), 4);
    // Unrelated: another product's complaints are another incident.
    let mut z9 = wave_signal(
        SignalKind::VolumeSpike,
        key("Voltra", "Z9"),
        T0 + 31 * MIN,
        500..540,
        "DE",
    );
    z9.explanation.top_terms = vec![("zipper".into(), 8), ("torn".into(), 5)];
    let other = lc.step(&[z9], &[], Some(T0 + 31 * MIN));
    assert_eq!(statuses(&other), vec![("firing", 0)]);
    assert_ne!(other[0].fingerprint, id);
    // Resolved only when the last of its alerts clears.
    let c = |k: &SignalKey, kind, at| cleared(kind, k.clone(), at, None);
    let r = lc.step(
        &[],
        &[
            c(&product, SignalKind::VolumeSpike, T0 + 60 * MIN),
            c(&region, SignalKind::EmergingIssue, T0 + 61 * MIN),
            c(&brand, SignalKind::SentimentShift, T0 + 62 * MIN),
        ],
        None,
    );
    assert!(r.is_empty(), "the drift is still firing: {r:?}");
    // The one-shot drift resolves `resolve_after` after its signal.
    let r = lc.step(&[], &[], Some(T0 + 70 * MIN));
    let r: Vec<AlertOut> = r.into_iter().filter(|a| a.fingerprint == id).collect();
    assert_eq!(statuses(&r), vec![("resolved", 0)]);
    assert_eq!(r[0].at, T0 + 70 * MIN);
}

#[test]
fn spam_and_crisis_are_not_mixed_and_correlation_can_be_switched_off() {
    let product = key("Voltra", "X2");
    let run = |enabled: bool| {
        let mut c = cfg();
        c.correlate.enabled = enabled;
        let mut lc = Lifecycle::new(c, Silences::default());
        lc.step(
            &[
                wave_signal(SignalKind::VolumeSpike, product.clone(), T0, 0..30, "DE"),
                wave_signal(SignalKind::ReviewBombing, product.clone(), T0, 0..30, "DE"),
                wave_signal(SignalKind::EmergingIssue, product.clone(), T0, 0..30, "DE"),
            ],
            &[],
            Some(T0),
        )
        .len()
    };
    assert_eq!(run(true), 2, "crisis + spam");
    assert_eq!(run(false), 3, "one per rule and key");
}

#[test]
fn a_restored_incident_keeps_its_members() {
    let mut lc = Lifecycle::new(cfg(), Silences::default());
    let product = key("Voltra", "X2");
    let region = pairs(&[(Dim::Region, "FR")]);
    lc.step(
        &[
            wave_signal(SignalKind::VolumeSpike, product.clone(), T0, 0..30, "DE"),
            wave_signal(SignalKind::EmergingIssue, region.clone(), T0, 10..40, "FR"),
        ],
        &[],
        Some(T0),
    );
    let snap: LifecycleState = serde_json::from_value(serde_json::to_value(lc.snapshot()).unwrap()).unwrap();
    assert_eq!(snap, lc.snapshot());
    let mut back = Lifecycle::restore(cfg(), Silences::default(), snap);
    assert_eq!(back.firing(), lc.firing());
    assert_eq!(back.firing_alerts(), lc.firing_alerts());
    // A new alert on the same reviews joins the restored incident.
    let brand = wave_signal(
        SignalKind::VolumeSpike,
        pairs(&[(Dim::Brand, "Voltra")]),
        T0 + MIN,
        0..50,
        "DE",
    );
    assert!(back.step(&[brand], &[], Some(T0 + MIN)).is_empty());
}

#[test]
fn a_long_window_echo_of_a_resolved_incident_pages_no_one() {
    let mut lc = Lifecycle::new(cfg(), Silences::default());
    let product = key("Voltra", "X2");
    lc.step(
        &[wave_signal(SignalKind::VolumeSpike, product.clone(), T0, 0..30, "DE")],
        &[],
        Some(T0),
    );
    let r = lc.step(
        &[],
        &[cleared(SignalKind::VolumeSpike, product.clone(), T0 + 120 * MIN, None)],
        None,
    );
    assert_eq!(statuses(&r), vec![("resolved", 0)]);
    // The 24 h window still holds the wave: its share shift is an echo.
    let mut echo = wave_signal(
        SignalKind::SentimentShift,
        pairs(&[(Dim::Region, "DE")]),
        T0 + 300 * MIN,
        0..60,
        "DE",
    );
    echo.window_start = T0 - 20 * 60 * MIN;
    assert!(lc.step(&[echo], &[], Some(T0 + 300 * MIN)).is_empty());
    assert_eq!(lc.echoes(), 1);
    // A new wave on the same reviews' key after the resolution pages.
    let again = wave_signal(SignalKind::VolumeSpike, product, T0 + 400 * MIN, 0..30, "DE");
    assert_eq!(
        statuses(&lc.step(&[again], &[], Some(T0 + 400 * MIN))),
        vec![("firing", 0)]
    );
}
