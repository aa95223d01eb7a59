//! The running alert stage: the outbox, one delivery worker per endpoint and
//! the [`AlertApi`] the HTTP server holds. Build it with
//! [`AlertService::start`] inside a tokio runtime, hand
//! [`AlertService::lifecycle`] to the detection path and
//! [`AlertService::outbox`] to the sink, and `Arc<AlertService>` (as
//! `Arc<dyn AlertApi>`) to the server.
//!
//! State across restarts (when the outbox is open, i.e. endpoints are
//! configured): [`AlertService::lifecycle`] continues from the alerts whose
//! latest stored change is `firing` (so they repeat and resolve after a
//! restart), the active list starts with them, and silences added through
//! the API are kept in the outbox file. The outbox is compacted at start and
//! every hour (`alert.outbox_retention_hours`). Without endpoints nothing is
//! stored: the lifecycle starts empty, as in `earshot replay`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::api::{AlertApi, Silence, SinkStats};
use super::deliver::{run_sink, SinkCounters};
use super::lifecycle::{Lifecycle, LifecycleConfig, LifecycleState};
use super::outbox::Outbox;
use super::silence::Silences;
use super::{AlertError, AlertOut, Status};
use crate::config::AlertConfig;

/// Shared state of the alert stage.
pub struct AlertService {
    cfg: AlertConfig,
    silences: Silences,
    active: Mutex<BTreeMap<String, serde_json::Value>>,
    counters: Vec<Arc<SinkCounters>>,
    outbox: Option<Arc<Outbox>>,
    /// The lifecycle state found in the outbox at start.
    restored: LifecycleState,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// How often the outbox is compacted while running.
const COMPACT_EVERY: Duration = Duration::from_secs(3600);

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn retention_ms(cfg: &AlertConfig) -> i64 {
    i64::try_from(cfg.outbox_retention.as_millis()).unwrap_or(i64::MAX)
}

/// Deletes delivered entries older than the retention; logs what it did.
fn compact(outbox: &Outbox, retention: i64) {
    match outbox.compact(retention, wall_ms()) {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "alert outbox compacted"),
        Err(e) => tracing::warn!(error = %e, "alert outbox compaction failed"),
    }
}

impl AlertService {
    /// Without endpoints: lifecycle, silences and the active list only (no outbox file).
    pub fn offline(cfg: &AlertConfig) -> Arc<Self> {
        Arc::new(Self {
            cfg: cfg.clone(),
            silences: Silences::from_config(&cfg.silences),
            active: Mutex::new(BTreeMap::new()),
            counters: Vec::new(),
            outbox: None,
            restored: LifecycleState::default(),
            workers: Mutex::new(Vec::new()),
        })
    }

    /// Opens the outbox (when endpoints are configured) and starts one worker
    /// per endpoint; pending entries from an earlier run are sent first.
    /// Must be called inside a tokio runtime.
    pub fn start(cfg: &AlertConfig) -> Result<Arc<Self>, AlertError> {
        if cfg.sinks.is_empty() {
            return Ok(Self::offline(cfg));
        }
        let names: Vec<String> = cfg.sinks.iter().map(|s| s.name.clone()).collect();
        let outbox = Outbox::open(&cfg.outbox_path, &names)?;
        let retention = retention_ms(cfg);
        compact(&outbox, retention);
        let open = outbox.latest_firing()?;
        let restored = LifecycleState::from_entries(&open);
        let silences = Silences::from_config(&cfg.silences);
        let now = wall_ms();
        for s in outbox.silences()? {
            let id = s.id.clone();
            if let Err(e) = silences.add(s, now) {
                tracing::warn!(id = %id, error = %e, "stored silence not restored");
            }
        }
        let client = super::deliver::client()?;
        let mut counters = Vec::new();
        let mut workers = Vec::new();
        for spec in &cfg.sinks {
            let c = Arc::new(SinkCounters::new(spec));
            counters.push(c.clone());
            workers.push(tokio::spawn(run_sink(
                spec.clone(),
                cfg.grafana_url.clone(),
                outbox.clone(),
                c,
                client.clone(),
            )));
        }
        let ob = outbox.clone();
        workers.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(COMPACT_EVERY).await;
                let ob = ob.clone();
                let _ = tokio::task::spawn_blocking(move || compact(&ob, retention)).await;
            }
        }));
        let pending = outbox.depth();
        tracing::info!(path = %cfg.outbox_path.display(), sinks = names.len(), pending,
            firing = restored.len(), "alert outbox open");
        let active = open.into_iter().map(|e| (e.fingerprint, e.payload)).collect();
        Ok(Arc::new(Self {
            cfg: cfg.clone(),
            silences,
            active: Mutex::new(active),
            counters,
            outbox: Some(outbox),
            restored,
            workers: Mutex::new(workers),
        }))
    }

    /// A lifecycle sharing this service's silences, continuing from the
    /// alerts that were firing when the outbox was last written.
    pub fn lifecycle(&self) -> Lifecycle {
        Lifecycle::restore(
            LifecycleConfig::from(&self.cfg),
            self.silences.clone(),
            self.restored.clone(),
        )
    }

    pub fn outbox(&self) -> Option<Arc<Outbox>> {
        self.outbox.clone()
    }

    /// Records a state change in the active list.
    pub fn observe(&self, a: &AlertOut) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        match a.status {
            Status::Firing => {
                active.insert(a.fingerprint.clone(), a.payload.clone());
            }
            Status::Resolved => {
                active.remove(&a.fingerprint);
            }
        }
    }

    /// Waits until every outbox entry is delivered (or given up), at most `timeout`.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let Some(ob) = &self.outbox else { return true };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let o = ob.clone();
            let depth = tokio::task::spawn_blocking(move || o.depth()).await.unwrap_or(0);
            if depth == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    pending = depth,
                    "alert outbox not empty at shutdown; delivery resumes on restart"
                );
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the delivery workers (pending entries stay in the outbox).
    pub fn stop(&self) {
        for w in self.workers.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            w.abort();
        }
    }
}

impl Drop for AlertService {
    fn drop(&mut self) {
        self.stop();
    }
}

impl AlertApi for AlertService {
    fn active(&self) -> Vec<serde_json::Value> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|v| {
                let mut v = v.clone();
                // Silences added after the change count too.
                let labels: BTreeMap<String, String> = v["labels"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let at = earshot_core::time::parse_rfc3339(v["at"].as_str().unwrap_or("")).unwrap_or(now);
                if self.silences.is_silenced(&labels, at.max(now)) || self.silences.is_silenced(&labels, at) {
                    v["silenced"] = true.into();
                }
                v.as_object_mut().map(|o| o.remove("signal"));
                v
            })
            .collect()
    }

    fn silences(&self) -> Vec<Silence> {
        self.silences.list()
    }

    fn add_silence(&self, silence: Silence) -> Result<Silence, String> {
        let s = self.silences.add_from_api(silence, wall_ms())?;
        if let Some(ob) = &self.outbox {
            if let Err(e) = ob.put_silence(&s) {
                self.silences.expire(&s.id);
                return Err(format!("outbox: the silence could not be stored: {e}"));
            }
        }
        Ok(s)
    }

    fn expire_silence(&self, id: &str) -> bool {
        let found = self.silences.expire(id);
        if let Some(ob) = &self.outbox {
            if let Err(e) = ob.remove_silence(id) {
                tracing::warn!(id = %id, error = %e, "expired silence not removed from the outbox");
            }
        }
        found
    }

    fn delivery(&self) -> Vec<SinkStats> {
        self.counters
            .iter()
            .map(|c| {
                let pending = self.outbox.as_ref().map_or(0, |o| o.pending_count(&c.name));
                c.snapshot(pending)
            })
            .collect()
    }

    fn outbox_depth(&self) -> u64 {
        self.outbox.as_ref().map_or(0, |o| o.depth())
    }
}
