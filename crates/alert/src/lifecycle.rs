//! The alert lifecycle: pure, event-time driven (the clock is the detector's
//! watermark, passed in), so a replay of the same stream yields the same
//! sequence of notifications with the same idempotency keys.
//!
//! Two levels. **Alerts** (one per rule + key, the fingerprint) follow the
//! detector:
//! * a signal whose fingerprint is not firing opens an alert; a signal for a
//!   firing fingerprint is deduplicated (it refreshes it);
//! * an alert resolves when the detector reports every condition behind it
//!   cleared; one-shot kinds (slow_drift, review_bombing) resolve after
//!   `resolve_after` of event time without a new signal.
//!
//! **Incidents** are what people are notified of. A new alert joins an open
//! incident that is about the same thing (shared events, or a nested key
//! with shared events or terms: see [`crate::incident`]); otherwise it opens
//! one. Per incident:
//! * `firing` once when it opens (its id is the opening alert's
//!   fingerprint; its labels are the opening alert's, so routing does not
//!   move while it spreads);
//! * `firing` updates (numbered, `update` in the payload) when it spread to
//!   a new key, rule, region, channel or language, at most one per
//!   `correlate.update_interval` of event time;
//! * `firing` repeats every `repeat_interval` (numbered, 0 disables);
//! * `resolved` when its last alert resolves.
//!
//! The title (key, summary, quotes) is the member with the most specific
//! key. With `correlate.enabled = false` every alert is its own incident.
//! Grouping: incidents sharing the `group_by` label values share a
//! `group_key`; each change carries how many of its group are firing.
//! Silences are checked at the event time of each change.
//!
//! State survives a restart through [`Lifecycle::snapshot`] and
//! [`Lifecycle::restore`] (serde; the service rebuilds it from the outbox's
//! latest `firing` entries, the lifecycle does no I/O). A restored alert
//! has lost the detector conditions behind it (the detector starts cold): a
//! signal for its fingerprint adopts it again (and the detector's clear then
//! resolves it); without one it resolves after `resolve_after` of event
//! time past its latest signal or change, like a one-shot kind.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::incident::{self, CorrelateConfig, Footprint};
use super::outbox::Entry;
use super::silence::Silences;
use super::{dashboard_url, fingerprint_of, fnv_hex, phone_text, rfc3339, severity, summary, AlertOut, Status};
use crate::config::{severity_rank, AlertConfig};
use earshot_core::types::{Dim, EventTime, Explanation, Signal, SignalKey, SignalKind};
use earshot_detect::Cleared;

/// What the lifecycle needs from `[alert]`.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    pub grafana_url: String,
    pub resolve_after: i64,
    pub repeat_interval: i64,
    pub group_by: Vec<Dim>,
    pub correlate: CorrelateConfig,
}

impl From<&AlertConfig> for LifecycleConfig {
    fn from(c: &AlertConfig) -> Self {
        Self {
            grafana_url: c.grafana_url.clone(),
            resolve_after: c.resolve_after,
            repeat_interval: c.repeat_interval,
            group_by: c.group_by.clone(),
            correlate: c.correlate,
        }
    }
}

/// One firing alert (rule + key).
#[derive(Debug, Clone)]
struct Tracked {
    /// Its latest signal.
    signal: Signal,
    last_signal: EventTime,
    /// Detector conditions behind the alert (cluster ids; None for volume).
    conds: BTreeSet<Option<u64>>,
    /// Restored from a snapshot and not yet confirmed by a signal (no
    /// detector condition stands behind it): its latest signal or change
    /// before the restore, where its `resolve_after` deadline starts.
    orphan: Option<EventTime>,
    incident: String,
}

impl Tracked {
    /// An alert opened by `s`, part of incident `incident`.
    fn new(s: &Signal, incident: String) -> Self {
        Self {
            signal: s.clone(),
            last_signal: s.window_end,
            conds: BTreeSet::from([s.cluster]),
            orphan: None,
            incident,
        }
    }
}

/// One alert of an incident, firing or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberState {
    pub fingerprint: String,
    pub rule: SignalKind,
    pub key: SignalKey,
    pub starts_at: EventTime,
    pub last_signal: EventTime,
    pub firing: bool,
}

/// An open incident: what resolving, repeating and updating it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentState {
    pub id: String,
    pub starts_at: EventTime,
    /// The opening alert's rule, key and severity: the incident's labels.
    pub rule: SignalKind,
    pub labels_key: SignalKey,
    pub severity: String,
    pub group_key: String,
    /// Event time of its latest `firing` notification (open, update, repeat).
    pub last_sent: EventTime,
    pub repeat: u32,
    pub updates: u32,
    pub members: Vec<MemberState>,
}

/// An open incident with the latest signal of its title alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoredIncident {
    pub state: IncidentState,
    pub signal: Signal,
}

/// The open incidents of a [`Lifecycle`], in id order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LifecycleState {
    pub incidents: Vec<RestoredIncident>,
}

impl LifecycleState {
    /// The state behind the latest `firing` change of each incident (as
    /// stored in the outbox); entries whose payload carries no readable
    /// incident or signal are skipped.
    pub fn from_entries(entries: &[Entry]) -> Self {
        let mut incidents: Vec<RestoredIncident> = entries
            .iter()
            .filter(|e| e.status == Status::Firing)
            .filter_map(|e| {
                let signal: Signal = serde_json::from_value(e.payload.get("signal")?.clone()).ok()?;
                let state: IncidentState = serde_json::from_value(e.payload.get("incident")?.clone()).ok()?;
                Some(RestoredIncident { state, signal })
            })
            .collect();
        incidents.sort_by(|a, b| a.state.id.cmp(&b.state.id));
        incidents.dedup_by(|a, b| a.state.id == b.state.id);
        Self { incidents }
    }

    /// Number of open incidents.
    pub fn len(&self) -> usize {
        self.incidents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Open {
    state: IncidentState,
    /// Latest signal of every member (resolved ones too), for the title.
    signals: BTreeMap<String, Signal>,
    foot: Footprint,
    /// Spread since the latest notification.
    dirty: bool,
}

impl Open {
    fn firing_members(&self) -> usize {
        self.state.members.iter().filter(|m| m.firing).count()
    }

    fn title(&self) -> &Signal {
        let fp = incident::title(
            self.state
                .members
                .iter()
                .filter_map(|m| Some((m.fingerprint.as_str(), self.signals.get(&m.fingerprint)?, m.starts_at))),
        );
        fp.and_then(|f| self.signals.get(f))
            .or_else(|| self.signals.values().next())
            .expect("an incident has at least one member signal")
    }
}

/// What a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Open,
    Repeat,
    Update,
    Resolved,
}

fn one_shot(kind: SignalKind) -> bool {
    matches!(kind, SignalKind::SlowDrift | SignalKind::ReviewBombing)
}

/// The state machine. See the module docs.
pub struct Lifecycle {
    cfg: LifecycleConfig,
    silences: Silences,
    alerts: BTreeMap<String, Tracked>,
    incidents: BTreeMap<String, Open>,
    /// Recently resolved incidents (footprint, family, resolution time),
    /// for recognising echoes.
    closed: BTreeMap<String, (Footprint, bool, EventTime)>,
    echoes: u64,
}

impl Lifecycle {
    pub fn new(cfg: LifecycleConfig, silences: Silences) -> Self {
        Self {
            cfg,
            silences,
            alerts: BTreeMap::new(),
            incidents: BTreeMap::new(),
            closed: BTreeMap::new(),
            echoes: 0,
        }
    }

    /// A lifecycle that continues from `state` (see the module docs: the
    /// restored alerts wait for a signal or resolve after `resolve_after`).
    pub fn restore(cfg: LifecycleConfig, silences: Silences, state: LifecycleState) -> Self {
        let mut lc = Self::new(cfg, silences);
        for RestoredIncident { state, signal } in state.incidents {
            let title_fp = fingerprint_of(signal.kind, &signal.key);
            let mut signals = BTreeMap::new();
            let mut foot = Footprint::default();
            for m in &state.members {
                let s = if m.fingerprint == title_fp {
                    signal.clone()
                } else {
                    bare_signal(m)
                };
                foot.add(&s);
                if m.firing {
                    lc.alerts.insert(
                        m.fingerprint.clone(),
                        Tracked {
                            signal: s.clone(),
                            last_signal: m.last_signal,
                            conds: BTreeSet::new(),
                            orphan: Some(m.last_signal.max(state.last_sent)),
                            incident: state.id.clone(),
                        },
                    );
                }
                signals.insert(m.fingerprint.clone(), s);
            }
            let id = state.id.clone();
            lc.incidents.insert(
                id,
                Open {
                    state,
                    signals,
                    foot,
                    dirty: false,
                },
            );
        }
        lc
    }

    /// The open incidents, for [`Lifecycle::restore`].
    pub fn snapshot(&self) -> LifecycleState {
        LifecycleState {
            incidents: self
                .incidents
                .values()
                .map(|o| RestoredIncident {
                    state: o.state.clone(),
                    signal: o.title().clone(),
                })
                .collect(),
        }
    }

    /// Ids of the open incidents (the fingerprint of their notifications).
    pub fn firing(&self) -> Vec<String> {
        self.incidents.keys().cloned().collect()
    }

    /// Alerts recognised as echoes of a resolved incident (not notified).
    pub fn echoes(&self) -> u64 {
        self.echoes
    }

    /// Fingerprints of the firing alerts (rule + key), all incidents.
    pub fn firing_alerts(&self) -> Vec<String> {
        self.alerts.keys().cloned().collect()
    }

    /// One detector step: the signals and cleared conditions of one pushed
    /// event, then the watermark (one-shot resolutions, updates, repeats).
    pub fn step(&mut self, signals: &[Signal], cleared: &[Cleared], watermark: Option<EventTime>) -> Vec<AlertOut> {
        let mut out = Vec::new();
        for s in signals {
            self.on_signal(s, &mut out);
        }
        for c in cleared {
            if one_shot(c.kind) {
                continue;
            }
            let fp = fingerprint_of(c.kind, &c.key);
            let Some(t) = self.alerts.get_mut(&fp) else {
                continue;
            };
            t.conds.remove(&c.cluster);
            if t.conds.is_empty() {
                self.resolve_alert(&fp, c.at, &mut out);
            }
        }
        if let Some(w) = watermark {
            let due: Vec<(String, EventTime)> = self
                .alerts
                .iter()
                .filter_map(|(fp, t)| {
                    let from = self.resolve_from(t);
                    (w.saturating_sub(from) >= self.cfg.resolve_after)
                        .then(|| (fp.clone(), from.saturating_add(self.cfg.resolve_after)))
                })
                .collect();
            for (fp, at) in due {
                self.resolve_alert(&fp, at, &mut out);
            }
            self.due_notifications(w, &mut out);
            let keep = self.cfg.correlate.echo_window;
            self.closed.retain(|_, (_, _, at)| w.saturating_sub(*at) < keep);
        }
        out
    }

    fn on_signal(&mut self, s: &Signal, out: &mut Vec<AlertOut>) {
        let fp = fingerprint_of(s.kind, &s.key);
        if let Some(t) = self.alerts.get_mut(&fp) {
            t.last_signal = t.last_signal.max(s.window_end);
            t.conds.insert(s.cluster);
            t.orphan = None;
            t.signal = s.clone();
            let id = t.incident.clone();
            let last = t.last_signal;
            if let Some(o) = self.incidents.get_mut(&id) {
                if let Some(m) = o.state.members.iter_mut().find(|m| m.fingerprint == fp) {
                    m.last_signal = last;
                }
                o.signals.insert(fp, s.clone());
                o.dirty |= o.foot.add(s) && self.cfg.correlate.enabled;
            }
            return;
        }
        let member = MemberState {
            fingerprint: fp.clone(),
            rule: s.kind,
            key: s.key.clone(),
            starts_at: s.window_start,
            last_signal: s.window_end,
            firing: true,
        };
        let joined = if self.cfg.correlate.enabled {
            self.incidents
                .iter()
                .filter(|(_, o)| o.state.rule.is_crisis() == s.kind.is_crisis())
                .filter(|(_, o)| o.foot.relates(s, &self.cfg.correlate))
                .min_by_key(|(id, o)| (o.state.starts_at, id.to_string()))
                .map(|(id, _)| id.clone())
        } else {
            None
        };
        if joined.is_none() && self.cfg.correlate.enabled {
            let echo_of = self
                .closed
                .iter()
                .filter(|(_, (f, crisis, resolved))| {
                    *crisis == s.kind.is_crisis() && s.window_start < *resolved && f.relates(s, &self.cfg.correlate)
                })
                .map(|(id, _)| id.clone())
                .next();
            if let Some(id) = echo_of {
                // Tracked (its clear is expected) under the closed incident,
                // which sends nothing.
                self.echoes += 1;
                if let Some((f, _, _)) = self.closed.get_mut(&id) {
                    f.add(s);
                }
                self.alerts.insert(fp, Tracked::new(s, id));
                return;
            }
        }
        let id = match joined {
            Some(id) => {
                let o = self.incidents.get_mut(&id).expect("joined incident is open");
                o.state.members.retain(|m| m.fingerprint != fp);
                o.state.members.push(member);
                o.signals.insert(fp.clone(), s.clone());
                o.foot.add(s);
                o.dirty = true;
                id
            }
            None => {
                let id = if self.incidents.contains_key(&fp) {
                    fnv_hex(&[&fp, &s.window_start.to_string()])
                } else {
                    fp.clone()
                };
                let mut foot = Footprint::default();
                foot.add(s);
                let state = IncidentState {
                    id: id.clone(),
                    starts_at: s.window_start,
                    rule: s.kind,
                    labels_key: s.key.clone(),
                    severity: severity(s).to_string(),
                    group_key: self.group_key(&s.key),
                    last_sent: s.window_end,
                    repeat: 0,
                    updates: 0,
                    members: vec![member],
                };
                let o = Open {
                    state,
                    signals: BTreeMap::from([(fp.clone(), s.clone())]),
                    foot,
                    dirty: false,
                };
                self.incidents.insert(id.clone(), o);
                out.push(self.change(&id, Change::Open, s.window_end));
                id
            }
        };
        self.alerts.insert(fp, Tracked::new(s, id));
    }

    /// An alert resolved at `at`; its incident resolves with its last alert.
    fn resolve_alert(&mut self, fp: &str, at: EventTime, out: &mut Vec<AlertOut>) {
        let Some(t) = self.alerts.remove(fp) else {
            return;
        };
        let Some(o) = self.incidents.get_mut(&t.incident) else {
            return;
        };
        if let Some(m) = o.state.members.iter_mut().find(|m| m.fingerprint == fp) {
            m.firing = false;
        }
        if o.firing_members() == 0 {
            out.push(self.change(&t.incident, Change::Resolved, at));
            if let Some(o) = self.incidents.remove(&t.incident) {
                self.closed
                    .insert(t.incident.clone(), (o.foot, o.state.rule.is_crisis(), at));
            }
        }
    }

    /// Updates (spread) and repeats that are due at watermark `w`.
    fn due_notifications(&mut self, w: EventTime, out: &mut Vec<AlertOut>) {
        let update_every = self.cfg.correlate.update_interval;
        let updates: Vec<String> = self
            .incidents
            .iter()
            .filter(|(_, o)| o.dirty && w.saturating_sub(o.state.last_sent) >= update_every)
            .map(|(id, _)| id.clone())
            .collect();
        for id in updates {
            let o = self.incidents.get_mut(&id).expect("due incident is open");
            o.state.updates += 1;
            o.state.last_sent = w;
            o.dirty = false;
            out.push(self.change(&id, Change::Update, w));
        }
        if self.cfg.repeat_interval > 0 {
            let due: Vec<String> = self
                .incidents
                .iter()
                .filter(|(_, o)| w.saturating_sub(o.state.last_sent) >= self.cfg.repeat_interval)
                .map(|(id, _)| id.clone())
                .collect();
            for id in due {
                let o = self.incidents.get_mut(&id).expect("due incident is open");
                o.state.repeat += 1;
                o.state.last_sent = w;
                out.push(self.change(&id, Change::Repeat, w));
            }
        }
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

    fn group_key(&self, key: &SignalKey) -> String {
        self.cfg
            .group_by
            .iter()
            .filter_map(|d| key.get(*d).map(|v| format!("{}={v}", d.as_str())))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn change(&self, id: &str, change: Change, at: EventTime) -> AlertOut {
        let o = &self.incidents[id];
        let st = &o.state;
        let s = o.title();
        let status = match change {
            Change::Resolved => Status::Resolved,
            _ => Status::Firing,
        };
        let mut labels = incident::key_labels(&st.labels_key);
        labels.insert("rule".into(), st.rule.as_str().into());
        labels.insert("severity".into(), st.severity.clone());
        let silenced = self.silences.is_silenced(&labels, at);
        let ends_at = (status == Status::Resolved).then_some(at);
        let idempotency_key = match change {
            Change::Update => fnv_hex(&[id, "update", &st.starts_at.to_string(), &st.updates.to_string()]),
            _ => fnv_hex(&[id, status.as_str(), &st.starts_at.to_string(), &st.repeat.to_string()]),
        };
        let url = dashboard_url(&self.cfg.grafana_url, &s.key, st.starts_at, ends_at);
        let mut text = phone_text(s, status, ends_at, st.repeat, &url);
        let spread = spread_line(&o.foot);
        if !spread.is_empty() {
            text.push('\n');
            text.push_str(&spread);
        }
        let group_firing: Vec<&String> = self
            .incidents
            .iter()
            .filter(|(_, x)| x.state.group_key == st.group_key)
            .map(|(f, _)| f)
            .collect();
        let one = summary(s);
        let line = match change {
            Change::Open => one,
            Change::Repeat => format!("{one} [repeat {}]", st.repeat),
            Change::Update => format!("{one} [update {}: {spread}]", st.updates),
            Change::Resolved => format!("[resolved {}] {one}", rfc3339(at)),
        };
        let mut incident = serde_json::to_value(st).unwrap_or_default();
        if let (Some(m), serde_json::Value::Object(f)) = (incident.as_object_mut(), o.foot.json()) {
            m.extend(f);
            m.insert("title".into(), serde_json::json!(s.key.to_string()));
        }
        let payload = serde_json::json!({
            "fingerprint": id,
            "status": status.as_str(),
            "rule": st.rule.as_str(),
            "severity": st.severity,
            "key": s.key.to_string(),
            "labels": labels,
            "starts_at": rfc3339(st.starts_at),
            "ends_at": ends_at.map(rfc3339),
            "at": rfc3339(at),
            "window_end": rfc3339(s.window_end),
            "repeat": st.repeat,
            "update": st.updates,
            "idempotency_key": idempotency_key,
            "group_key": st.group_key,
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
            "incident": incident,
        });
        AlertOut {
            fingerprint: id.to_string(),
            status,
            idempotency_key,
            group_key: st.group_key.clone(),
            severity: severity_rank(&st.severity).unwrap_or(0),
            at,
            repeat: st.repeat,
            silenced,
            payload,
            summary: line,
        }
    }
}

/// A member restored without its signal: rule, key and window only.
fn bare_signal(m: &MemberState) -> Signal {
    Signal {
        kind: m.rule,
        key: m.key.clone(),
        window_start: m.starts_at,
        window_end: m.last_signal,
        observed: 0,
        expected: 0.0,
        population: 0,
        baseline_share: 0.0,
        p_value: 1.0,
        cluster: None,
        reason: None,
        explanation: Explanation::default(),
    }
}

/// "also: 3 keys (…); rules …; regions …" for an incident that spread beyond
/// one key; empty for a single-key incident.
fn spread_line(f: &Footprint) -> String {
    if f.keys.len() < 2 && f.regions.len() < 2 && f.channels.len() < 2 && f.languages.len() < 2 {
        return String::new();
    }
    let list = |v: &BTreeSet<String>| v.iter().cloned().collect::<Vec<_>>().join(", ");
    let mut parts = vec![format!(
        "{} keys ({})",
        f.keys.len(),
        f.keys.iter().map(|k| k.to_string()).collect::<Vec<_>>().join("; ")
    )];
    parts.push(format!(
        "rules {}",
        f.rules.iter().copied().collect::<Vec<_>>().join(", ")
    ));
    if !f.regions.is_empty() {
        parts.push(format!("regions {}", list(&f.regions)));
    }
    if !f.channels.is_empty() {
        parts.push(format!("channels {}", list(&f.channels)));
    }
    if !f.languages.is_empty() {
        parts.push(format!("languages {}", list(&f.languages)));
    }
    format!("Incident spans {}", parts.join("; "))
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
}
