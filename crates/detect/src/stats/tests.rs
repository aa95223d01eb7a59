//! Tests of the tails, the baseline, the CUSUMs and the overdispersion
//! estimates.

use super::*;
use earshot_core::rng::Rng;

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

#[test]
fn poisson_tail_matches_closed_forms() {
    // P(X >= 5 | 2) = 1 - 7 e^-2.
    assert!(close(poisson_sf(5, 2.0), 1.0 - 7.0 * (-2.0f64).exp(), 1e-10));
    assert!(close(poisson_sf(1, 0.5), 1.0 - (-0.5f64).exp(), 1e-12));
    // Far tail: P(X >= 20 | 1) ~ e^-1 / 20! (1 + 1/21 + ...).
    let t = poisson_sf(20, 1.0);
    let first = (-1.0f64).exp() / (2..=20).map(|i| i as f64).product::<f64>();
    assert!(t > first && t < first * 1.06, "{t} vs {first}");
    assert_eq!(poisson_sf(0, 3.0), 1.0);
    assert_eq!(poisson_sf(3, 0.0), 0.0);
    // Large mean: lower path, median near mu.
    let m = poisson_sf(1000, 1000.0);
    assert!((0.49..0.51).contains(&m), "{m}");
}

#[test]
fn binomial_tail_matches_closed_forms() {
    assert!(close(binomial_sf(8, 10, 0.5), 56.0 / 1024.0, 1e-12));
    assert!(close(binomial_sf(10, 10, 0.1), 1e-10, 1e-9));
    assert!(close(binomial_sf(1, 3, 0.2), 1.0 - 0.8f64.powi(3), 1e-12));
    assert_eq!(binomial_sf(0, 5, 0.3), 1.0);
    assert_eq!(binomial_sf(6, 5, 0.3), 0.0);
}

#[test]
fn ln_factorial_is_continuous_across_the_switch() {
    let exact: f64 = (2..=65u64).map(|i| (i as f64).ln()).sum();
    assert!((ln_factorial(65) - exact).abs() < 1e-9);
    // The table equals the direct sum bit for bit (n < 2 returns 0 before either).
    for n in 2..=64u64 {
        let direct: f64 = (2..=n).map(|i| (i as f64).ln()).sum();
        assert_eq!(ln_factorial(n).to_bits(), direct.to_bits(), "n = {n}");
    }
}

#[test]
fn poisson_test_is_calibrated_on_poisson_data() {
    // The test at level 0.01 rejects at most ~1% of true-null samples
    // (discrete tests are conservative).
    let mut rng = Rng::new(11);
    for &mu in &[0.7, 3.0, 25.0] {
        let n = 20_000;
        let rejects = (0..n).filter(|_| poisson_sf(rng.poisson(mu), mu) < 0.01).count();
        assert!(rejects as f64 / (n as f64) < 0.0125, "mu={mu}: {rejects}");
    }
}

#[test]
fn binomial_test_is_calibrated_on_binomial_data() {
    let mut rng = Rng::new(5);
    let (n, p) = (40u64, 0.2);
    let trials = 20_000;
    let rejects = (0..trials)
        .filter(|_| {
            let k = (0..n).filter(|_| rng.uniform() < p).count() as u64;
            binomial_sf(k, n, p) < 0.01
        })
        .count();
    assert!((rejects as f64 / trials as f64) < 0.0125, "{rejects}");
}

#[test]
fn ln_gamma_matches_factorials_and_half_integers() {
    for n in 1..40u64 {
        assert!((ln_gamma(n as f64 + 1.0) - ln_factorial(n)).abs() < 1e-10, "n = {n}");
    }
    // Γ(1/2) = sqrt(pi).
    assert!((ln_gamma(0.5) - 0.5 * std::f64::consts::PI.ln()).abs() < 1e-12);
}

#[test]
fn incomplete_beta_matches_the_binomial_sum() {
    // I_x(a, b) for integers is P(Binomial(a + b - 1, x) >= a).
    for &(a, b, x) in &[(2u64, 3u64, 0.4), (1, 1, 0.3), (5, 2, 0.9), (7, 9, 0.2)] {
        let n = a + b - 1;
        let want = binomial_sf(a, n, x);
        let got = beta_inc(a as f64, b as f64, x);
        assert!(close(got, want, 1e-10), "I_{x}({a}, {b}) = {got}, want {want}");
    }
    assert!(close(beta_inc(2.0, 3.0, 0.4), 0.5248, 1e-12));
}

#[test]
fn negative_binomial_tail_matches_closed_forms() {
    // Size 1 (c2 = 1) is geometric: P(X >= k) = q^k, q = mu / (mu + 1).
    for &(k, mu) in &[(1u64, 0.5), (5, 3.0), (40, 20.0), (400, 20.0)] {
        let q: f64 = mu / (mu + 1.0);
        assert!(close(nb_sf(k, mu, 1.0), q.powi(k as i32), 1e-9), "k={k} mu={mu}");
    }
    // Size 2: pmf(j) = (j + 1) p² q^j, summed.
    let (mu, r) = (7.0, 2.0);
    let (p, q) = (r / (mu + r), mu / (mu + r));
    for k in [1u64, 3, 10, 60] {
        let lower: f64 = (0..k).map(|j| (j + 1) as f64 * p * p * q.powi(j as i32)).sum();
        assert!(close(nb_sf(k, mu, 0.5), 1.0 - lower, 1e-9), "k={k}");
    }
    assert_eq!(nb_sf(0, 5.0, 0.3), 1.0);
    assert_eq!(nb_sf(3, 0.0, 0.3), 0.0);
}

#[test]
fn negative_binomial_without_dispersion_is_the_poisson_tail_exactly() {
    for &(k, mu) in &[(0u64, 1.0), (3, 0.2), (12, 3.5), (700, 500.0)] {
        assert_eq!(nb_sf(k, mu, 0.0).to_bits(), poisson_sf(k, mu).to_bits());
    }
    let poisson = 30.0 * 3f64.ln() - 2.0 * 10.0;
    assert_eq!(nb_llr(30.0, 10.0, 3.0, 0.0), poisson);
    // A tiny dispersion is close to Poisson, a real one is far wider.
    assert!(close(nb_sf(25, 10.0, 1e-6), poisson_sf(25, 10.0), 1e-3));
    assert!(nb_sf(60, 20.0, 0.25) > 1e3 * poisson_sf(60, 20.0));
    assert!((nb_llr(30.0, 10.0, 3.0, 1e-9) - poisson).abs() < 1e-5);
}

#[test]
fn negative_binomial_tail_is_calibrated_on_gamma_poisson_data() {
    // Rate ~ mu * lognormal with c2 = e^(s²) - 1; counts Poisson given the rate.
    let mut rng = Rng::new(21);
    let (mu, s) = (40.0, 0.5f64);
    let c2 = (s * s).exp() - 1.0;
    let n = 20_000;
    let draws: Vec<u64> = (0..n)
        .map(|_| {
            let rate = mu * (s * rng.normal() - s * s / 2.0).exp();
            rng.poisson(rate)
        })
        .collect();
    let nb = draws.iter().filter(|&&x| nb_sf(x, mu, c2) < 0.01).count();
    let poisson = draws.iter().filter(|&&x| poisson_sf(x, mu) < 0.01).count();
    // The lognormal's tail is a little heavier than the gamma's.
    assert!((nb as f64) < 0.02 * n as f64, "nb rejects {nb}");
    assert!((poisson as f64) > 0.15 * n as f64, "poisson rejects {poisson}");
}

#[test]
fn dispersion_is_zero_on_poisson_counts_and_found_on_bursty_ones() {
    let mut rng = Rng::new(8);
    for &mu in &[0.3, 3.0, 30.0, 300.0, 3000.0] {
        let mut d = Dispersion::default();
        for _ in 0..2000 {
            d.observe(rng.poisson(mu) as f64, mu, 168.0);
        }
        assert_eq!(d.c2(1.5), 0.0, "mu={mu}: estimate {}", d.estimate());
    }
    for &(mu, s) in &[(30.0, 0.5f64), (300.0, 0.5), (3000.0, 0.3)] {
        let want = (s * s).exp() - 1.0;
        let mut d = Dispersion::default();
        for _ in 0..2000 {
            d.observe(
                {
                    let rate = mu * (s * rng.normal() - s * s / 2.0).exp();
                    rng.poisson(rate)
                } as f64,
                mu,
                168.0,
            );
        }
        let got = d.c2(1.5);
        assert!(got > 0.5 * want && got < 1.3 * want, "mu={mu}: c2 {got}, want {want}");
    }
}

#[test]
fn one_outburst_moves_the_dispersion_a_bounded_amount() {
    let mut rng = Rng::new(4);
    let mut d = Dispersion::default();
    for _ in 0..500 {
        d.observe(rng.poisson(100.0) as f64, 100.0, 168.0);
    }
    let before = d.estimate();
    d.observe(5000.0, 100.0, 168.0);
    // Clipped at ten standard deviations: at most 100 variances over 168
    // (unclipped, (4900² - 5000) / 100² / 168 = 14).
    assert!(
        d.estimate() - before < 100.0 * 1.1 / 100.0 / 168.0 * 1.5,
        "{before} -> {}",
        d.estimate()
    );
}

#[test]
fn persistence_is_zero_on_independent_hours_and_found_on_runs() {
    let mut rng = Rng::new(6);
    let mut p = Persistence::default();
    for _ in 0..2000 {
        p.observe(rng.normal(), 168.0);
    }
    assert_eq!(p.rho(1.5), 0.0);
    assert_eq!(p.evidence_factor(1.5), 1.0);
    // AR(1) with coefficient 0.6: runs of high hours.
    let mut p = Persistence::default();
    let mut r = 0.0;
    for _ in 0..2000 {
        r = 0.6 * r + 0.8 * rng.normal();
        p.observe(r, 168.0);
    }
    let rho = p.rho(0.0);
    assert!((0.45..0.75).contains(&rho), "{rho}");
    assert!(p.evidence_factor(0.0) < 0.4);
}

#[test]
fn a_saturated_share_has_no_residual() {
    assert_eq!(share_residual(50.0, 50.0, 1.0), 0.0);
    assert_eq!(inflate_share(1.0, 1e6, 1.5), 1.0);
    // Below saturation, nothing changed: the variance floor still holds.
    let z = share_residual(10.0, 20.0, 0.2);
    assert!(close(z, (10.0 - 4.0) / (20.0f64 * 0.2 * 0.8).sqrt(), 1e-12));
    assert!(close(
        share_residual(3.0, 100.0, 0.001),
        (3.0 - 1.0) / (100.0f64 * 0.01 * 0.99).sqrt(),
        1e-12
    ));
}

#[test]
fn baseline_learns_level_share_and_daily_shape() {
    let mut b = Baseline::new(Seasonality::HourOfDay, 72.0, 5.0);
    let mut rng = Rng::new(3);
    for h in 0..(24 * 21) {
        let rate = 10.0 * (1.0 + 0.6 * ((h % 24) as f64 / 24.0 * std::f64::consts::TAU).sin());
        let total = rng.poisson(rate) as f64;
        let neg = (0..total as u64).filter(|_| rng.uniform() < 0.2).count() as f64;
        b.fold(h, total, neg, None);
    }
    assert!((b.neg_share() - 0.2).abs() < 0.05, "{}", b.neg_share());
    let peak = b.expected(24 * 21 + 6, 1.0, None).total;
    let trough = b.expected(24 * 21 + 18, 1.0, None).total;
    assert!(peak > 13.0 && trough < 7.0, "peak {peak} trough {trough}");
}

#[test]
fn late_correction_matches_folding_the_items_in_their_hour() {
    // (hours folded, memory, corrected hour): the plain-mean regime and the EWMA one.
    for (hours, memory, late_hour) in [(10i64, 72.0, 5i64), (40, 10.0, 36)] {
        let mut on_time = Baseline::new(Seasonality::HourOfWeek, memory, 5.0);
        let mut corrected = on_time.clone();
        let mut uncorrected = on_time.clone();
        for h in 0..hours {
            let extra = if h == late_hour { 6.0 } else { 0.0 };
            on_time.fold(h, 20.0 + extra, 4.0 + extra, None);
            corrected.fold(h, 20.0, 4.0, None);
            uncorrected.fold(h, 20.0, 4.0, None);
        }
        corrected.correct(
            late_hour,
            (hours - 1 - late_hour) as u64,
            (20.0, 4.0),
            (26.0, 10.0),
            None,
        );
        let at = |b: &Baseline| b.expected(hours, 1.0, None);
        let (want, got, before) = (at(&on_time), at(&corrected), at(&uncorrected));
        assert!(close(got.neg, want.neg, 0.005), "{hours}: {} vs {}", got.neg, want.neg);
        assert!(
            close(got.total, want.total, 0.005),
            "{hours}: {} vs {}",
            got.total,
            want.total
        );
        assert!(
            !close(before.neg, want.neg, 0.05),
            "the late items matter: {}",
            before.neg
        );
    }
    // A late outburst is clipped like an on-time one.
    let mut on_time = Baseline::new(Seasonality::HourOfWeek, 10.0, 5.0);
    let mut corrected = on_time.clone();
    for h in 0..40 {
        let extra = if h == 36 { 200.0 } else { 0.0 };
        on_time.fold(h, 20.0 + extra, 4.0 + extra, None);
        corrected.fold(h, 20.0, 4.0, None);
    }
    let mut before = (20.0, 4.0);
    for _ in 0..200 {
        let after = (before.0 + 1.0, before.1 + 1.0);
        corrected.correct(36, 3, before, after, None);
        before = after;
    }
    // Each correction raises the level the cap is taken from a little,
    // so the clip is approximate: within 10 %, where unclipped
    // corrections would have added 200 negatives at weight 0.07 to a
    // level of 4.
    let (want, got) = (on_time.expected(40, 1.0, None), corrected.expected(40, 1.0, None));
    assert!(close(got.neg, want.neg, 0.1), "{} vs {}", got.neg, want.neg);
    // Nothing to correct before the first fold.
    let mut b = Baseline::new(Seasonality::HourOfDay, 72.0, 5.0);
    b.correct(3, 0, (0.0, 0.0), (5.0, 5.0), None);
    assert_eq!(b.expected(3, 1.0, None).total, 0.0);
}

#[test]
fn cusum_stays_quiet_on_null_and_fires_on_shift() {
    let mut rng = Rng::new(9);
    let mut c = Cusum::default();
    let alarms = (0..5000).filter(|_| c.push(rng.normal(), 0.5, 8.0)).count();
    assert_eq!(alarms, 0);
    let mut c = Cusum::default();
    let first = (0..100).position(|_| c.push(1.5 + rng.normal(), 0.5, 8.0));
    assert!(matches!(first, Some(i) if i < 20), "{first:?}");
}
