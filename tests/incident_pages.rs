//! Pages per scenario: the detector's signals and cleared conditions of a
//! scenario run through the real alert lifecycle (incident correlation
//! included), counting the notifications an on-call engineer would get.

use earshot::alert::incident::CorrelateConfig;
use earshot::alert::lifecycle::{Lifecycle, LifecycleConfig};
use earshot::alert::silence::Silences;
use earshot::alert::Status;
use earshot::types::{Dim, SignalKey};
use earshot_scenario as scenario;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Notifications of one scenario run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pages {
    /// Crisis incidents opened on the injected incident (goal: 1 for a crisis).
    pub on_incident: u32,
    /// Updates sent for them.
    pub updates: u32,
    /// Crisis incidents opened elsewhere, after the warm-up.
    pub false_pages: u32,
    /// Spam incidents opened.
    pub spam_pages: u32,
}

/// The lifecycle as the engine runs it by default.
pub fn lifecycle_config(correlate: bool) -> LifecycleConfig {
    LifecycleConfig {
        grafana_url: "http://localhost:3000".into(),
        resolve_after: 120 * MINUTE,
        repeat_interval: 0,
        group_by: vec![Dim::Brand],
        correlate: CorrelateConfig {
            enabled: correlate,
            ..Default::default()
        },
    }
}

/// The notifications of a run: its signals and cleared conditions, in
/// emission order, through the lifecycle (watermark one minute behind).
fn notifications(o: &scenario::Outcome, correlate: bool) -> Vec<earshot::alert::AlertOut> {
    let mut lc = Lifecycle::new(lifecycle_config(correlate), Silences::default());
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        let at = match (o.emitted.get(i), o.cleared.get(j)) {
            (Some(e), Some(c)) => e.at.min(c.0),
            (Some(e), None) => e.at,
            (None, Some(c)) => c.0,
            (None, None) => break,
        };
        let mut signals = Vec::new();
        while o.emitted.get(i).is_some_and(|e| e.at == at) {
            signals.push(o.emitted[i].signal.clone());
            i += 1;
        }
        let mut cleared = Vec::new();
        while o.cleared.get(j).is_some_and(|c| c.0 == at) {
            cleared.push(o.cleared[j].1.clone());
            j += 1;
        }
        out.extend(lc.step(&signals, &cleared, Some(at - MINUTE)));
    }
    out
}

/// Pages of a run with incident correlation on (`correlate`) or off (one
/// page per rule and key, the behaviour before incidents).
pub fn pages(o: &scenario::Outcome, correlate: bool) -> Pages {
    let eval_from = scenario::T0 + scenario::WARMUP_DAYS * DAY;
    let mut p = Pages::default();
    let mut on_incident_ids = std::collections::BTreeSet::new();
    let mut seen_topics: Vec<Vec<i8>> = Vec::new();
    for a in &notifications(o, correlate) {
        if a.status != Status::Firing {
            continue;
        }
        let crisis = a.payload["severity"] != "info";
        let opening = a.repeat == 0 && a.payload["update"] == 0;
        let key: SignalKey = serde_json::from_value(a.payload["incident"]["labels_key"].clone()).unwrap_or_default();
        // As the scenario scorer: on the incident's keys, emitted after its
        // start, from a window that began before its end plus two hours.
        let window_start = a.payload["signal"]["window_start"].as_i64().unwrap_or(a.at);
        let explained = o.truth.as_ref().is_some_and(|t| {
            t.expect_crisis() && scenario::matches_truth(t, &key) && a.at >= t.start && window_start < t.end + 2 * HOUR
        });
        if !crisis {
            p.spam_pages += u32::from(opening);
            continue;
        }
        if opening && std::env::var_os("EARSHOT_PAGES_VERBOSE").is_some() {
            eprintln!(
                "page {} at +{:.2}h {} {} members {:?} terms {:?}",
                a.fingerprint,
                (a.at - scenario::T0) as f64 / HOUR as f64,
                a.payload["rule"],
                a.payload["key"],
                a.payload["signal"]["explanation"]["members"].as_array().map(Vec::len),
                a.payload["top_terms"]
            );
            let topic: Vec<i8> =
                serde_json::from_value(a.payload["signal"]["explanation"]["topic"].clone()).unwrap_or_default();
            let sims: Vec<String> = seen_topics
                .iter()
                .map(|t| format!("{:.2}", earshot::types::topic_similarity(t, &topic)))
                .collect();
            eprintln!(
                "  topic {} dims; similarity to earlier pages: {}",
                topic.len(),
                sims.join(" ")
            );
            seen_topics.push(topic);
        }
        if opening {
            if explained {
                p.on_incident += 1;
                on_incident_ids.insert(a.fingerprint.clone());
            } else if a.at >= eval_from {
                p.false_pages += 1;
            }
        } else if a.repeat == 0 && on_incident_ids.contains(&a.fingerprint) {
            p.updates += 1;
        }
    }
    p
}

/// One page per injected incident, and few false pages on the background:
/// every scenario of the table, through the lifecycle with and without
/// incident correlation.
#[test]
fn incidents_page_once() {
    use scenario::{Incident, Scenario};
    let bank = crate::detect_bank::real_bank();
    let cfg = earshot::detect::DetectConfig::default();
    let seeds: Vec<u64> = std::env::var("EARSHOT_DETECT_SEEDS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 3]);
    // EARSHOT_DETECT_SCENARIOS=battery_wave runs a subset (no acceptance).
    let only = std::env::var("EARSHOT_DETECT_SCENARIOS").ok();
    let mut rows = String::from(
        "| scenario | seed | pages on incident (alerts before) | updates | false pages (alerts before) | spam pages |\n|---|---|---|---|---|---|\n",
    );
    let (mut on, mut on0, mut crises, mut false_pages, mut false0, mut weeks) = (0, 0, 0, 0, 0, 0.0);
    for &seed in &seeds {
        for inc in Incident::ALL {
            if only.as_ref().is_some_and(|o| !o.split(',').any(|x| x == inc.name())) {
                continue;
            }
            let sc = Scenario::new(seed, inc);
            let o = scenario::run(&sc, &bank, &cfg).expect("run");
            let p = pages(&o, true);
            let p0 = pages(&o, false);
            rows.push_str(&format!(
                "| {} | {seed} | {} ({}) | {} | {} ({}) | {} |\n",
                inc.name(),
                p.on_incident,
                p0.on_incident,
                p.updates,
                p.false_pages,
                p0.false_pages,
                p.spam_pages
            ));
            if o.truth.as_ref().is_some_and(|t| t.expect_crisis()) {
                crises += 1;
                on += p.on_incident;
                on0 += p0.on_incident;
                // A crisis is paged at least once.
                assert!(
                    p.on_incident >= 1,
                    "{} seed {seed}: the incident was not paged",
                    inc.name()
                );
            }
            false_pages += p.false_pages;
            false0 += p0.false_pages;
            weeks += (sc.days - scenario::WARMUP_DAYS) as f64 / 7.0;
        }
    }
    println!("{rows}");
    println!(
        "pages per injected crisis: {:.2} (one per rule and key: {:.2}); false pages per week of background: {:.2} (before: {:.2}) over {weeks:.1} weeks",
        f64::from(on) / f64::from(crises.max(1)),
        f64::from(on0) / f64::from(crises.max(1)),
        f64::from(false_pages) / weeks,
        f64::from(false0) / weeks,
    );
    if only.is_some() {
        return;
    }
    assert!(on <= on0, "correlation never adds pages");
    assert!(
        f64::from(on) / f64::from(crises.max(1)) <= 1.5,
        "one page per incident: {on} pages for {crises} crises"
    );
    assert!(
        f64::from(false_pages) / weeks <= 1.0,
        "false pages per week: {false_pages} in {weeks:.1} weeks"
    );
}
