//! Overdispersed (bursty) volume: a key learns how bursty its own negatives
//! are and tests them against a negative-binomial tail, so ordinary bursts
//! stay quiet while a sustained level shift still fires; Poisson traffic
//! keeps Poisson tails (its dispersion's lower bound stays at 0).

use super::*;

fn acme(product: &str) -> SignalKey {
    SignalKey(vec![(Dim::Brand, "Acme".into()), (Dim::Product, product.into())])
}

/// `days` of traffic on one product, every item negative (as in a raw
/// mention stream of complaints): `rate(hour)` items an hour with a daily
/// rhythm of amplitude `rhythm`, each hour's rate multiplied by a lognormal
/// burst factor (`sigma` of its log; 0 for Poisson traffic). Returns the
/// detector and its signals with their emission times.
fn all_negative(days: i64, rhythm: f64, sigma: f64, rate: impl Fn(i64) -> f64) -> (Detector, Vec<(EventTime, Signal)>) {
    let mut rng = Rng::new(17);
    let mut n = 0u64;
    let mut det = Detector::new(DetectConfig::default());
    let mut out = Vec::new();
    for h in 0..days * 24 {
        let daily = 1.0 + rhythm * ((h % 24) as f64 / 24.0 * std::f64::consts::TAU).cos();
        let burst = (sigma * rng.normal() - sigma * sigma / 2.0).exp();
        let mu = rate(h) * daily * burst;
        let mut times: Vec<EventTime> = (0..rng.poisson(mu))
            .map(|_| T0 + h * HOUR + (rng.uniform() * HOUR as f64) as i64)
            .collect();
        times.sort_unstable();
        for t in times {
            let e = event(&mut rng, &mut n, t, "Rocket", true);
            out.extend(det.push(&e).expect("push").signals.into_iter().map(|s| (t, s)));
        }
    }
    let end = T0 + days * DAY;
    out.extend(det.advance_watermark(end).into_iter().map(|s| (end, s)));
    (det, out)
}

#[test]
fn poisson_traffic_keeps_poisson_tails() {
    // Without a daily rhythm the expectation is right from the start: what
    // is left is Poisson noise, and no dispersion is credited. (The
    // seasonal profile takes weeks to learn a strong rhythm; until then its
    // error is real prediction error and may be credited on a busy key.)
    let (det, signals) = all_negative(10, 0.0, 0.0, |_| 40.0);
    let st = det.keys.get(&acme("Rocket")).expect("tracked");
    let z = det.cfg.thresholds.baseline_z;
    for len in [det.cfg.step, 15 * MINUTE, HOUR, DAY] {
        assert_eq!(
            st.volume_c2(len, det.cfg.step, z),
            0.0,
            "window of {len} ms: step {:?} hour {:?}",
            st.disp_step,
            st.disp_hour
        );
    }
    assert!(st.disp_hour.estimate() < 0.05, "{}", st.disp_hour.estimate());
    let c = crises(&signals, T0 + 2 * DAY);
    assert!(c.is_empty(), "false alerts on steady Poisson traffic: {c:?}");
}

#[test]
fn overdispersed_traffic_gets_a_wider_tail_and_stays_quiet() {
    // Hourly rates vary by a lognormal factor (c2 = e^0.36 - 1 = 0.43): a
    // 4x hour happens every few days, far beyond any Poisson tail.
    let (det, signals) = all_negative(12, 0.5, 0.6, |_| 40.0);
    let st = det.keys.get(&acme("Rocket")).expect("tracked");
    let c2 = st.volume_c2(HOUR, det.cfg.step, det.cfg.thresholds.baseline_z);
    assert!(c2 > 0.15 && c2 < 1.0, "hourly c2 {c2}");
    // Four times the expectation in an hour: absurd for Poisson, ordinary here.
    assert!(stats::poisson_sf(160, 40.0) < 1e-30);
    assert!(stats::nb_sf(160, 40.0, c2) > 1e-4);
    let key = acme("Rocket");
    let c: Vec<_> = crises(&signals, T0 + 3 * DAY)
        .into_iter()
        .filter(|(_, s)| s.key == key)
        .collect();
    assert!(c.len() <= 1, "bursty traffic paged {} times: {c:?}", c.len());
}

#[test]
fn a_sustained_3x_level_shift_still_fires_on_overdispersed_traffic() {
    let shift = 10 * 24;
    let (_, signals) = all_negative(12, 0.5, 0.6, |h| if h >= shift { 120.0 } else { 40.0 });
    let from = T0 + shift * HOUR;
    let c = crises(&signals, from);
    let first = c.first().map(|(t, s)| (t - from, s.kind));
    assert!(
        matches!(first, Some((d, _)) if d <= 12 * HOUR),
        "3x level shift not reported within 12 h: {first:?} {c:?}"
    );
    // Reported once as a drift per key (every rollup key here sees the same
    // items), not again every day while the level stays.
    let key = acme("Rocket");
    let drifts = c
        .iter()
        .filter(|(_, s)| s.kind == SignalKind::SlowDrift && s.key == key)
        .count();
    assert!(drifts <= 1, "{drifts} slow drifts for one level shift");
}

#[test]
fn a_wave_already_firing_as_a_spike_is_not_reported_again_as_a_drift() {
    // Five times the level for four hours on Poisson traffic: the spike
    // fires at once; the volume CUSUM crosses in the first hour's fold,
    // while the spike still fires, and stays silent.
    let (from, to) = (8 * 24 + 10, 8 * 24 + 14);
    let (_, signals) = all_negative(9, 0.0, 0.0, |h| if (from..to).contains(&h) { 200.0 } else { 40.0 });
    let key = acme("Rocket");
    let kinds: Vec<SignalKind> = crises(&signals, T0 + from * HOUR)
        .into_iter()
        .filter(|(_, s)| s.key == key)
        .map(|(_, s)| s.kind)
        .collect();
    assert_eq!(kinds, vec![SignalKind::VolumeSpike]);
}
