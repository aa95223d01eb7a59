//! Detector evaluation on generated scenarios scored with the real model.
//! `scripts/bench-detect.sh` runs `scenario_table` and prints the table.

use std::collections::BTreeMap;

use earshot::detect::DetectConfig;
use earshot::types::Sentiment;
use earshot_scenario::{self as scenario, Bank, Incident, Report, Role, Scenario};

use crate::detect_bank;

pub fn table(reports: &[(u64, Report)]) -> String {
    let mut s = String::from(
        "| scenario | seed | expect | result | delay (event min) | after full rate (min) | after 5th injected item (min) | false crisis alerts | keys | false / key / week | spam signals |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (seed, r) in reports {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {} |\n",
            r.scenario,
            seed,
            r.expect,
            if r.passed { "pass" } else { "FAIL" },
            r.delay_min.map_or("-".into(), |d| format!("{d:.1}")),
            r.full_rate_delay_min.map_or("-".into(), |d| format!("{d:.1}")),
            r.evidence_delay_min.map_or("-".into(), |d| format!("{d:.1}")),
            r.false_alerts,
            r.keys,
            r.false_per_key_week(),
            r.spam_signals,
        ));
    }
    s
}

/// Per role: texts, share the classifier calls negative, top category.
fn bank_summary(bank: &Bank) -> String {
    let mut per: BTreeMap<Role, (u32, u32, BTreeMap<&'static str, u32>)> = BTreeMap::new();
    for t in &bank.texts {
        let e = per.entry(t.role).or_default();
        e.0 += 1;
        e.1 += (t.scored.sentiment == Sentiment::Negative) as u32;
        *e.2.entry(t.scored.category.as_str()).or_default() += 1;
    }
    let mut s = String::from("bank:");
    for (role, (n, neg, cats)) in per {
        let top = cats.iter().max_by_key(|(_, c)| **c).map_or("-", |(k, _)| *k);
        s.push_str(&format!(
            " {role:?} {n} texts {:.0}% negative (mostly {top});",
            100.0 * neg as f64 / n as f64
        ));
    }
    s
}

fn seeds() -> Vec<u64> {
    std::env::var("EARSHOT_DETECT_SEEDS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 3])
}

#[test]
fn scenario_table() {
    let bank = detect_bank::real_bank();
    let cfg = DetectConfig::default();
    let mut reports = Vec::new();
    let mut verbose = String::new();
    // EARSHOT_DETECT_SCENARIOS=battery_wave,holiday_surge runs a subset (no acceptance).
    let only = std::env::var("EARSHOT_DETECT_SCENARIOS").ok();
    for seed in seeds() {
        for inc in Incident::ALL {
            if only.as_ref().is_some_and(|o| !o.split(',').any(|x| x == inc.name())) {
                continue;
            }
            let scenario::Outcome {
                report: r,
                emitted,
                counters,
                ..
            } = scenario::run(&Scenario::new(seed, inc), &bank, &cfg).expect("run");
            for e in &emitted {
                verbose.push_str(&format!(
                    "  [{} seed {}] at +{:.1}h {} {} obs {} exp {:.2} pop {} p {:.2e} quotes {:?} terms {:?}\n",
                    inc.name(),
                    seed,
                    (e.at - scenario::T0) as f64 / 3.6e6,
                    e.signal.kind.as_str(),
                    e.signal.key,
                    e.signal.observed,
                    e.signal.expected,
                    e.signal.population,
                    e.signal.p_value,
                    e.signal
                        .explanation
                        .quotes
                        .iter()
                        .map(|q| q.text.chars().take(40).collect::<String>())
                        .collect::<Vec<_>>(),
                    e.signal
                        .explanation
                        .top_terms
                        .iter()
                        .take(5)
                        .map(|t| &t.0)
                        .collect::<Vec<_>>(),
                ));
            }
            let _ = counters;
            reports.push((seed, r));
        }
    }
    println!("sentiment source: {}", detect_bank::sentiment_source());
    println!("{}", bank_summary(&bank));
    println!("{}", table(&reports));
    if std::env::var_os("EARSHOT_DETECT_VERBOSE").is_some() {
        println!("{verbose}");
    }
    if only.is_some() {
        return;
    }
    // Acceptance.
    let busy = ["busy_wave_double", "busy_wave_plus40"];
    let delays: Vec<f64> = reports
        .iter()
        .filter(|(_, r)| r.expect.starts_with("crisis") && !busy.contains(&r.scenario))
        .filter_map(|(_, r)| r.delay_min)
        .collect();
    // Asserted on every seed: each crisis detected (the slow drift within
    // its 48 h), the spam wave reported as spam and never as a crisis, no
    // crisis signal on the positive spike or the holiday surge.
    for (seed, r) in &reports {
        assert!(r.passed, "seed {seed} {} failed:\n{}", r.scenario, table(&reports));
    }
    // The acceptance figure: the median over every injected crisis of every
    // seed (three sudden waves of different shapes and one slow drift per
    // seed). Per kind as well, so a slow kind cannot hide: the drift ramps
    // up from nothing over a day and is measured from its first minute.
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        (v[(n - 1) / 2] + v[n / 2]) / 2.0
    };
    let mut per_kind = String::new();
    for kind in [
        "battery_wave",
        "after_sales_wave",
        "quality_wave",
        "masked_wave",
        "logistics_drift",
        "busy_wave_double",
        "busy_wave_plus40",
    ] {
        let mut d: Vec<f64> = reports
            .iter()
            .filter(|(_, r)| r.scenario == kind)
            .filter_map(|(_, r)| r.delay_min)
            .collect();
        if !d.is_empty() {
            per_kind.push_str(&format!(" {kind} {:.1} min;", median(&mut d)));
        }
    }
    let pooled = median(&mut delays.clone());
    println!(
        "median delay over all {} crises: {pooled:.1} min; per kind:{per_kind}",
        delays.len()
    );
    assert!(pooled <= 15.0, "median delay {pooled} min:\n{}", table(&reports));
    // Waves on a busy key (issue 15): a new topic that doubles the key's
    // negatives, or adds 40 an hour, after a 30-minute ramp. The goal is an
    // alert within 15 minutes of reaching the full rate: asserted on the
    // median over seeds per kind. On every seed the alert must come within
    // 30 minutes of the 5th injected complaint (no rule may fire before
    // that evidence floor, and on an unlucky seed of the doubling it comes
    // only after the goal's 45 minutes).
    for kind in busy {
        let mut full: Vec<f64> = reports
            .iter()
            .filter(|(_, r)| r.scenario == kind)
            .filter_map(|(_, r)| r.full_rate_delay_min)
            .collect();
        if full.is_empty() {
            continue;
        }
        let m = median(&mut full);
        println!("{kind}: median {m:.1} min after reaching the full rate");
        assert!(
            m <= 15.0,
            "{kind}: median {m} min after full rate:\n{}",
            table(&reports)
        );
    }
    for (seed, r) in reports.iter().filter(|(_, r)| busy.contains(&r.scenario)) {
        let ev = r.evidence_delay_min.unwrap_or(f64::INFINITY);
        assert!(
            ev <= 30.0,
            "seed {seed} {}: {ev} min after the 5th injected item:\n{}",
            r.scenario,
            table(&reports)
        );
    }
    let bg: Vec<&Report> = reports
        .iter()
        .filter(|(_, r)| r.scenario == "background")
        .map(|(_, r)| r)
        .collect();
    for r in bg {
        assert!(r.false_per_key_week() <= 1.0, "{}", table(&reports));
    }
    // Outside the incidents no scenario may cry wolf more than the background.
    for (_, r) in &reports {
        assert!(r.false_per_key_week() <= 1.0, "{}", table(&reports));
    }
}

#[test]
fn replay_is_deterministic() {
    let bank = detect_bank::real_bank();
    let cfg = DetectConfig::default();
    let sc = Scenario::new(7, Incident::BatteryWave);
    let first = scenario::run(&sc, &bank, &cfg).unwrap();
    let second = scenario::run(&sc, &bank, &cfg).unwrap();
    let (a, ca, b, cb) = (first.emitted, first.counters, second.emitted, second.counters);
    assert_eq!(ca, cb);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.at, y.at);
        assert_eq!(x.signal, y.signal);
    }
}
