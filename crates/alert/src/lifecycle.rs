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
//! * State survives a restart through [`Lifecycle::snapshot`] and
//!   [`Lifecycle::restore`] (serde; the service keeps it in the outbox file,
//!   the lifecycle does no I/O). A restored alert has lost the detector
//!   conditions behind it (the detector starts cold): a signal for its
//!   fingerprint adopts it again (and the detector's clear then resolves it);
//!   without one it resolves after `resolve_after` of event time past its
//!   latest signal or change, like a one-shot kind.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::outbox::Entry;
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
    /// Restored from a snapshot and not yet confirmed by a signal (no
    /// detector condition stands behind it): its latest signal or change
    /// before the restore, where its `resolve_after` deadline starts.
    orphan: Option<EventTime>,
}

/// One firing alert in a [`LifecycleState`]: what resolving and repeating
/// it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    pub fingerprint: String,
    /// The signal that opened the alert (its text, labels and key).
    pub signal: Signal,
    pub starts_at: EventTime,
    /// Window end of the latest signal for it.
    pub last_signal: EventTime,
    /// Event time of its latest `firing` change (onset or repeat).
    pub last_sent: EventTime,
    pub repeat: u32,
    pub group_key: String,
}

/// The firing alerts of a [`Lifecycle`], in fingerprint order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LifecycleState {
    pub alerts: Vec<AlertState>,
}

impl LifecycleState {
    /// The state behind the latest `firing` change of each alert (as stored
    /// in the outbox); entries whose payload carries no readable signal are
    /// skipped.
    pub fn from_entries(entries: &[Entry]) -> Self {
        let mut alerts: Vec<AlertState> = entries
            .iter()
            .filter(|e| e.status == Status::Firing)
            .filter_map(|e| {
                let signal: Signal = serde_json::from_value(e.payload.get("signal")?.clone()).ok()?;
                // An alert starts at its opening signal's window start (the
                // payload's `starts_at` is in whole seconds).
                Some(AlertState {
                    fingerprint: e.fingerprint.clone(),
                    starts_at: signal.window_start,
                    last_signal: signal.window_end,
                    last_sent: e.at,
                    repeat: e.repeat,
                    group_key: e.group_key.clone(),
                    signal,
                })
            })
            .collect();
        alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        alerts.dedup_by(|a, b| a.fingerprint == b.fingerprint);
        Self { alerts }
    }
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

    /// A lifecycle that continues from `state` (see the module docs: the
    /// restored alerts wait for a signal or resolve after `resolve_after`).
    pub fn restore(cfg: LifecycleConfig, silences: Silences, state: LifecycleState) -> Self {
        let mut lc = Self::new(cfg, silences);
        for a in state.alerts {
            let t = Tracked {
                signal: a.signal,
                starts_at: a.starts_at,
                last_signal: a.last_signal,
                last_sent: a.last_sent,
                repeat: a.repeat,
                conds: BTreeSet::new(),
                group_key: a.group_key,
                orphan: Some(a.last_signal.max(a.last_sent)),
            };
            lc.firing.insert(a.fingerprint, t);
        }
        lc
    }

    /// The firing alerts, for [`Lifecycle::restore`].
    pub fn snapshot(&self) -> LifecycleState {
        LifecycleState {
            alerts: self
                .firing
                .iter()
                .map(|(fp, t)| AlertState {
                    fingerprint: fp.clone(),
                    signal: t.signal.clone(),
                    starts_at: t.starts_at,
                    last_signal: t.last_signal,
                    last_sent: t.last_sent,
                    repeat: t.repeat,
                    group_key: t.group_key.clone(),
                })
                .collect(),
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
                    t.orphan = None;
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
                        orphan: None,
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
                .filter(|(_, t)| w.saturating_sub(self.resolve_from(t)) >= self.cfg.resolve_after)
                .map(|(fp, _)| fp.clone())
                .collect();
            for fp in due {
                let at = self
                    .resolve_from(&self.firing[&fp])
                    .saturating_add(self.cfg.resolve_after);
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

    /// Where the `resolve_after` deadline of an alert starts: its latest
    /// signal for one-shot kinds, its latest signal or change for a restored
    /// alert no signal has confirmed (repeats after the restore do not
    /// move it); `i64::MAX` (never) otherwise.
    fn resolve_from(&self, t: &Tracked) -> EventTime {
        if let Some(since) = t.orphan {
            since
        } else if one_shot(t.signal.kind) {
            t.last_signal
        } else {
            i64::MAX
        }
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
}
