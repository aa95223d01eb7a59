//! The alert lifecycle: pure, event-time driven (the clock is the detector's
//! watermark, passed in), so a replay of the same stream yields the same
//! sequence of state changes with the same idempotency keys.
//!
//! * A signal whose fingerprint (rule + key) is not firing → `firing`.
//!   A signal for a firing fingerprint is deduplicated (it refreshes it).
//! * While firing, a `firing` repeat is emitted every `repeat_interval` of
//!   event time (numbered 1, 2, ...; 0 disables repeats).
//! * `resolved` when the detector reports every condition behind the alert
//!   cleared; one-shot kinds (slow_drift, review_bombing) resolve after
//!   `resolve_after` of event time without a new signal.
//! * Grouping: alerts sharing the `group_by` label values share a
//!   `group_key`; each change carries how many of its group are firing.
//! * Silences are checked at the event time of each change.

use std::collections::{BTreeMap, BTreeSet};

use super::silence::Silences;
use super::{dashboard_url, fingerprint_of, fnv_hex, phone_text, rfc3339, severity, summary, AlertOut, Status};
use crate::config::{severity_rank, AlertConfig};
use earshot_core::types::{Dim, EventTime, Signal, SignalKind};
use earshot_detect::Cleared;

/// What the lifecycle needs from `[alert]`.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    pub grafana_url: String,
    pub resolve_after: i64,
    pub repeat_interval: i64,
    pub group_by: Vec<Dim>,
}

impl From<&AlertConfig> for LifecycleConfig {
    fn from(c: &AlertConfig) -> Self {
        Self {
            grafana_url: c.grafana_url.clone(),
            resolve_after: c.resolve_after,
            repeat_interval: c.repeat_interval,
            group_by: c.group_by.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    signal: Signal,
    starts_at: EventTime,
    last_signal: EventTime,
    last_sent: EventTime,
    repeat: u32,
    /// Detector conditions behind the alert (cluster ids; None for volume).
    conds: BTreeSet<Option<u64>>,
    group_key: String,
}

fn one_shot(kind: SignalKind) -> bool {
    matches!(kind, SignalKind::SlowDrift | SignalKind::ReviewBombing)
}

/// The state machine. See the module docs.
pub struct Lifecycle {
    cfg: LifecycleConfig,
    silences: Silences,
    firing: BTreeMap<String, Tracked>,
}

impl Lifecycle {
    pub fn new(cfg: LifecycleConfig, silences: Silences) -> Self {
        Self {
            cfg,
            silences,
            firing: BTreeMap::new(),
        }
    }

    /// Fingerprints currently firing.
    pub fn firing(&self) -> Vec<String> {
        self.firing.keys().cloned().collect()
    }

    /// One detector step: the signals and cleared conditions of one pushed
    /// event, then the watermark (repeats and one-shot resolutions).
    pub fn step(&mut self, signals: &[Signal], cleared: &[Cleared], watermark: Option<EventTime>) -> Vec<AlertOut> {
        let mut out = Vec::new();
        for s in signals {
            let fp = fingerprint_of(s.kind, &s.key);
            match self.firing.get_mut(&fp) {
                Some(t) => {
                    t.last_signal = t.last_signal.max(s.window_end);
                    t.conds.insert(s.cluster);
                }
                None => {
                    let group_key = self.group_key(s);
                    let t = Tracked {
                        signal: s.clone(),
                        starts_at: s.window_start,
                        last_signal: s.window_end,
                        last_sent: s.window_end,
                        repeat: 0,
                        conds: BTreeSet::from([s.cluster]),
                        group_key,
                    };
                    self.firing.insert(fp.clone(), t);
                    out.push(self.change(&fp, Status::Firing, s.window_end));
                }
            }
        }
        for c in cleared {
            if one_shot(c.kind) {
                continue;
            }
            let fp = fingerprint_of(c.kind, &c.key);
            let Some(t) = self.firing.get_mut(&fp) else {
                continue;
            };
            t.conds.remove(&c.cluster);
            if t.conds.is_empty() {
                out.push(self.change(&fp, Status::Resolved, c.at));
                self.firing.remove(&fp);
            }
        }
        if let Some(w) = watermark {
            let due: Vec<String> = self
                .firing
                .iter()
                .filter(|(_, t)| one_shot(t.signal.kind) && w - t.last_signal >= self.cfg.resolve_after)
                .map(|(fp, _)| fp.clone())
                .collect();
            for fp in due {
                let at = self.firing[&fp].last_signal + self.cfg.resolve_after;
                out.push(self.change(&fp, Status::Resolved, at));
                self.firing.remove(&fp);
            }
            if self.cfg.repeat_interval > 0 {
                let due: Vec<String> = self
                    .firing
                    .iter()
                    .filter(|(_, t)| w - t.last_sent >= self.cfg.repeat_interval)
                    .map(|(fp, _)| fp.clone())
                    .collect();
                for fp in due {
                    let t = self.firing.get_mut(&fp).expect("due alert is firing");
                    t.repeat += 1;
                    t.last_sent = w;
                    out.push(self.change(&fp, Status::Firing, w));
                }
            }
        }
        out
    }

    fn group_key(&self, s: &Signal) -> String {
        self.cfg
            .group_by
            .iter()
            .filter_map(|d| s.key.get(*d).map(|v| format!("{}={v}", d.as_str())))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn change(&self, fp: &str, status: Status, at: EventTime) -> AlertOut {
        let t = &self.firing[fp];
        let s = &t.signal;
        let sev = severity(s);
        let mut labels: BTreeMap<String, String> = s
            .key
            .0
            .iter()
            .map(|(d, v)| (d.as_str().to_string(), v.clone()))
            .collect();
        labels.insert("rule".into(), s.kind.as_str().into());
        labels.insert("severity".into(), sev.into());
        let silenced = self.silences.is_silenced(&labels, at);
        let ends_at = (status == Status::Resolved).then_some(at);
        let idempotency_key = fnv_hex(&[fp, status.as_str(), &t.starts_at.to_string(), &t.repeat.to_string()]);
        let url = dashboard_url(&self.cfg.grafana_url, &s.key, t.starts_at, ends_at);
        let text = phone_text(s, status, ends_at, t.repeat, &url);
        let group_firing: Vec<&String> = self
            .firing
            .iter()
            .filter(|(_, x)| x.group_key == t.group_key)
            .map(|(f, _)| f)
            .collect();
        let one = summary(s);
        let line = match status {
            Status::Firing if t.repeat > 0 => format!("{one} [repeat {}]", t.repeat),
            Status::Firing => one,
            Status::Resolved => format!("[resolved {}] {one}", rfc3339(at)),
        };
        let payload = serde_json::json!({
            "fingerprint": fp,
            "status": status.as_str(),
            "rule": s.kind.as_str(),
            "severity": sev,
            "key": s.key.to_string(),
            "labels": labels,
            "starts_at": rfc3339(t.starts_at),
            "ends_at": ends_at.map(rfc3339),
            "at": rfc3339(at),
            "window_end": rfc3339(s.window_end),
            "repeat": t.repeat,
            "idempotency_key": idempotency_key,
            "group_key": t.group_key,
            "group_firing": group_firing,
            "silenced": silenced,
            "summary": line,
            "text": text,
            "dashboard_url": url,
            "observed": s.observed,
            "expected": s.expected,
            "quotes": s.explanation.quotes.iter().take(3).map(|q| q.text.clone()).collect::<Vec<_>>(),
            "top_terms": s.explanation.top_terms.iter().take(5).map(|(t, _)| t.clone()).collect::<Vec<_>>(),
            "signal": s,
        });
        AlertOut {
            fingerprint: fp.to_string(),
            status,
            idempotency_key,
            group_key: t.group_key.clone(),
            severity: severity_rank(sev).unwrap_or(0),
            at,
            repeat: t.repeat,
            silenced,
            payload,
            summary: line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Silence;
    use earshot_core::types::{Explanation, Quote, SignalKey};

    const MIN: i64 = 60_000;
    const T0: i64 = 1_795_000_000_000;

    fn cfg() -> LifecycleConfig {
        LifecycleConfig {
            grafana_url: "http://grafana:3000".into(),
            resolve_after: 60 * MIN,
            repeat_interval: 30 * MIN,
            group_by: vec![Dim::Brand],
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
}
