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

use super::incident::{self, CorrelateConfig, Footprint};
use super::silence::Silences;
use super::{dashboard_url, fingerprint_of, fnv_hex, phone_text, rfc3339, severity, summary, AlertOut, Status};
use crate::config::{severity_rank, AlertConfig};
use earshot_core::types::{Dim, EventTime, Signal, SignalKey, SignalKind};
use earshot_detect::Cleared;

mod state;

use state::bare_signal;
pub use state::{IncidentState, LifecycleState, MemberState, RestoredIncident};

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
mod tests;
