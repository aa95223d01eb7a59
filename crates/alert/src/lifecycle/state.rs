//! The serialisable state of the lifecycle: incidents and their member
//! alerts, as snapshots and outbox payloads carry them, and how it is read
//! back from the outbox.

use serde::{Deserialize, Serialize};

use crate::outbox::Entry;
use crate::Status;
use earshot_core::types::{EventTime, Explanation, Signal, SignalKey, SignalKind};

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

/// A member restored without its signal: rule, key and window only.
pub(super) fn bare_signal(m: &MemberState) -> Signal {
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
