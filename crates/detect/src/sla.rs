//! Response-SLA tracking: negative reviews nobody has replied to yet.
//!
//! A tracked negative stays open until a reply closes it: a reply event
//! naming it, or the review published again with its `replied_at` (a change
//! feed of the review table does this). Open entries are counted per key at
//! the watermark, with those older than the SLA as overdue. Entries older
//! than 30 days of event time are dropped by the hourly sweep, and the table
//! is capped; event time only, like the rest of the detector.

use std::collections::{BTreeMap, HashMap};

use earshot_core::types::{EventTime, SignalKey};

/// Unreplied negatives of one key at the current watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaCount {
    pub key: SignalKey,
    pub open: u32,
    /// Older than the SLA.
    pub overdue: u32,
}

/// One unreplied negative: when it was posted and the ids of the keys it counts for.
#[derive(Debug, Clone)]
struct Open {
    at: EventTime,
    key_ids: Vec<u64>,
}

/// Unreplied negatives by event id.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlaTracker {
    open: HashMap<String, Open>,
}

/// Open and overdue entries of one key id.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    open: u32,
    overdue: u32,
}

impl SlaTracker {
    /// Starts tracking a negative event for the given key ids (ignored with
    /// no keys, or when the table holds `cap` entries).
    pub(crate) fn track(&mut self, event_id: &str, at: EventTime, key_ids: Vec<u64>, cap: usize) {
        if !key_ids.is_empty() && self.open.len() < cap {
            self.open.insert(event_id.to_string(), Open { at, key_ids });
        }
    }

    /// Closes an entry; true when it was open.
    pub(crate) fn close(&mut self, event_id: &str) -> bool {
        self.open.remove(event_id).is_some()
    }

    /// Open and overdue (posted before `watermark - sla`) entries per key,
    /// sorted by key; `key_of` names a key id (`None`: expired key, skipped).
    pub(crate) fn counts<'a>(
        &self,
        watermark: EventTime,
        sla: i64,
        key_of: impl Fn(u64) -> Option<&'a SignalKey>,
    ) -> Vec<SlaCount> {
        let overdue_before = watermark.saturating_sub(sla);
        let mut per: BTreeMap<u64, Tally> = BTreeMap::new();
        for o in self.open.values() {
            for id in &o.key_ids {
                let c = per.entry(*id).or_default();
                c.open += 1;
                if o.at < overdue_before {
                    c.overdue += 1;
                }
            }
        }
        let mut out: Vec<SlaCount> = per
            .into_iter()
            .filter_map(|(id, c)| {
                key_of(id).map(|k| SlaCount {
                    key: k.clone(),
                    open: c.open,
                    overdue: c.overdue,
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Drops entries posted before `keep_from`.
    pub(crate) fn sweep(&mut self, keep_from: EventTime) {
        self.open.retain(|_, o| o.at >= keep_from);
    }
}
