//! The durable outbox: alert state changes written to a redb file before the
//! source offset of the event that caused them is stored, then delivered by
//! the endpoint workers, which mark each entry done per endpoint.
//!
//! * Entries are keyed by their idempotency key; inserting a key that exists
//!   is a no-op (after a crash, re-processed events regenerate the same keys).
//! * Writes go through one writer thread in submission order (so a `firing`
//!   is always stored before its `resolved`) and are committed (fsync) before
//!   the returned future resolves.
//! * Pending rows of endpoints that are no longer configured are dropped on open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{AlertError, AlertOut, Status};
use earshot_core::types::EventTime;

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const KEYS: TableDefinition<&str, u64> = TableDefinition::new("keys");
const PENDING: TableDefinition<(&str, u64), ()> = TableDefinition::new("pending");

/// One stored state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub fingerprint: String,
    pub status: Status,
    pub group_key: String,
    pub severity: u8,
    pub at: EventTime,
    pub repeat: u32,
    pub payload: serde_json::Value,
}

impl From<&AlertOut> for Entry {
    fn from(a: &AlertOut) -> Self {
        Entry {
            key: a.idempotency_key.clone(),
            fingerprint: a.fingerprint.clone(),
            status: a.status,
            group_key: a.group_key.clone(),
            severity: a.severity,
            at: a.at,
            repeat: a.repeat,
            payload: a.payload.clone(),
        }
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<usize, AlertError>>;
type Writes = std::sync::mpsc::Sender<(Vec<Entry>, Reply)>;

/// The store plus its writer thread.
pub struct Outbox {
    db: Arc<Database>,
    path: PathBuf,
    sinks: Vec<String>,
    tx: std::sync::Mutex<Option<Writes>>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Woken after every insert that added entries.
    pub wake: Arc<tokio::sync::Notify>,
}

fn err(path: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> AlertError {
    AlertError::Outbox {
        path: path.display().to_string(),
        source: e.into(),
    }
}

impl Outbox {
    /// Opens (creating) the file; `sinks` are the configured endpoint names.
    pub fn open(path: &Path, sinks: &[String]) -> Result<Arc<Self>, AlertError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(path, format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Database::create(path).map_err(|e| err(path, e))?;
        {
            let w = db.begin_write().map_err(|e| err(path, e))?;
            {
                w.open_table(ENTRIES).map_err(|e| err(path, e))?;
                w.open_table(KEYS).map_err(|e| err(path, e))?;
                let mut p = w.open_table(PENDING).map_err(|e| err(path, e))?;
                let mut stale = Vec::new();
                for row in p.iter().map_err(|e| err(path, e))? {
                    let (k, _) = row.map_err(|e| err(path, e))?;
                    let (sink, seq) = k.value();
                    if !sinks.iter().any(|s| s == sink) {
                        stale.push((sink.to_string(), seq));
                    }
                }
                if !stale.is_empty() {
                    tracing::warn!(
                        rows = stale.len(),
                        "outbox: dropping pending entries of endpoints no longer configured"
                    );
                }
                for (s, q) in stale {
                    p.remove((s.as_str(), q)).map_err(|e| err(path, e))?;
                }
            }
            w.commit().map_err(|e| err(path, e))?;
        }
        let db = Arc::new(db);
        let (tx, rx) = std::sync::mpsc::channel::<(Vec<Entry>, Reply)>();
        let wake = Arc::new(tokio::sync::Notify::new());
        let (db2, path2, sinks2, wake2) = (db.clone(), path.to_path_buf(), sinks.to_vec(), wake.clone());
        let writer = std::thread::Builder::new()
            .name("earshot-outbox".into())
            .spawn(move || {
                while let Ok((entries, reply)) = rx.recv() {
                    let r = write(&db2, &path2, &sinks2, &entries);
                    if matches!(r, Ok(n) if n > 0) {
                        wake2.notify_waiters();
                    }
                    let _ = reply.send(r);
                }
            })
            .map_err(|e| err(path, e))?;
        Ok(Arc::new(Self {
            db,
            path: path.to_path_buf(),
            sinks: sinks.to_vec(),
            tx: std::sync::Mutex::new(Some(tx)),
            writer: std::sync::Mutex::new(Some(writer)),
            wake,
        }))
    }

    pub fn sinks(&self) -> &[String] {
        &self.sinks
    }

    /// Queues the entries for writing (in call order); the future resolves
    /// once they are committed, with the number actually added.
    pub fn insert(&self, entries: Vec<Entry>) -> impl std::future::Future<Output = Result<usize, AlertError>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.send((entries, reply)).is_ok());
        let path = self.path.clone();
        async move {
            if !sent {
                return Err(err(&path, "the outbox writer has stopped"));
            }
            rx.await.map_err(|_| err(&path, "the outbox writer has stopped"))?
        }
    }

    /// Blocking insert (tests, tools).
    pub fn insert_blocking(&self, entries: Vec<Entry>) -> Result<usize, AlertError> {
        write(&self.db, &self.path, &self.sinks, &entries).inspect(|&n| {
            if n > 0 {
                self.wake.notify_waiters();
            }
        })
    }

    /// Up to `limit` pending entries of one endpoint, oldest first.
    pub fn pending(&self, sink: &str, limit: usize) -> Result<Vec<(u64, Entry)>, AlertError> {
        let p = &self.path;
        let r = self.db.begin_read().map_err(|e| err(p, e))?;
        let pend = r.open_table(PENDING).map_err(|e| err(p, e))?;
        let entries = r.open_table(ENTRIES).map_err(|e| err(p, e))?;
        let mut out = Vec::new();
        for row in pend.range((sink, 0u64)..=(sink, u64::MAX)).map_err(|e| err(p, e))? {
            let (k, _) = row.map_err(|e| err(p, e))?;
            let seq = k.value().1;
            if let Some(v) = entries.get(seq).map_err(|e| err(p, e))? {
                let e: Entry = serde_json::from_slice(v.value()).map_err(|e| err(p, e))?;
                out.push((seq, e));
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Marks entries done for one endpoint.
    pub fn done(&self, sink: &str, seqs: &[u64]) -> Result<(), AlertError> {
        let p = &self.path;
        let w = self.db.begin_write().map_err(|e| err(p, e))?;
        {
            let mut t = w.open_table(PENDING).map_err(|e| err(p, e))?;
            for &s in seqs {
                t.remove((sink, s)).map_err(|e| err(p, e))?;
            }
        }
        w.commit().map_err(|e| err(p, e))
    }

    /// Pending rows per endpoint.
    pub fn pending_count(&self, sink: &str) -> u64 {
        let count = || -> Result<u64, AlertError> {
            let p = &self.path;
            let r = self.db.begin_read().map_err(|e| err(p, e))?;
            let t = r.open_table(PENDING).map_err(|e| err(p, e))?;
            let n = t.range((sink, 0u64)..=(sink, u64::MAX)).map_err(|e| err(p, e))?.count();
            Ok(n as u64)
        };
        count().unwrap_or(0)
    }

    /// Entries not yet delivered to every endpoint.
    pub fn depth(&self) -> u64 {
        let count = || -> Result<u64, AlertError> {
            let p = &self.path;
            let r = self.db.begin_read().map_err(|e| err(p, e))?;
            let t = r.open_table(PENDING).map_err(|e| err(p, e))?;
            let mut seqs = std::collections::BTreeSet::new();
            for row in t.iter().map_err(|e| err(p, e))? {
                let (k, _) = row.map_err(|e| err(p, e))?;
                seqs.insert(k.value().1);
            }
            Ok(seqs.len() as u64)
        };
        count().unwrap_or(0)
    }

    /// Number of entries ever stored.
    pub fn len(&self) -> u64 {
        let count = || -> Result<u64, AlertError> {
            let p = &self.path;
            let r = self.db.begin_read().map_err(|e| err(p, e))?;
            let t = r.open_table(ENTRIES).map_err(|e| err(p, e))?;
            t.len().map_err(|e| err(p, e))
        };
        count().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The latest stored change of every fingerprint whose latest change is
    /// `firing` (what Alertmanager must keep hearing about after a restart).
    pub fn latest_firing(&self) -> Result<Vec<Entry>, AlertError> {
        let p = &self.path;
        let r = self.db.begin_read().map_err(|e| err(p, e))?;
        let t = r.open_table(ENTRIES).map_err(|e| err(p, e))?;
        let mut latest: std::collections::BTreeMap<String, Entry> = Default::default();
        for row in t.iter().map_err(|e| err(p, e))? {
            let (_, v) = row.map_err(|e| err(p, e))?;
            let e: Entry = serde_json::from_slice(v.value()).map_err(|e| err(p, e))?;
            latest.insert(e.fingerprint.clone(), e);
        }
        Ok(latest.into_values().filter(|e| e.status == Status::Firing).collect())
    }
}

impl Drop for Outbox {
    /// Stops the writer after the queued writes, so the file is closed when
    /// the last handle goes (it can be opened again at once).
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = w.join();
        }
    }
}

fn write(db: &Database, p: &Path, sinks: &[String], entries: &[Entry]) -> Result<usize, AlertError> {
    let w = db.begin_write().map_err(|e| err(p, e))?;
    let mut added = 0;
    {
        let mut et = w.open_table(ENTRIES).map_err(|e| err(p, e))?;
        let mut kt = w.open_table(KEYS).map_err(|e| err(p, e))?;
        let mut pt = w.open_table(PENDING).map_err(|e| err(p, e))?;
        let mut next = et.last().map_err(|e| err(p, e))?.map_or(1, |(k, _)| k.value() + 1);
        for e in entries {
            if kt.get(e.key.as_str()).map_err(|e| err(p, e))?.is_some() {
                continue;
            }
            let bytes = serde_json::to_vec(e).map_err(|e| err(p, e))?;
            et.insert(next, bytes.as_slice()).map_err(|e| err(p, e))?;
            kt.insert(e.key.as_str(), next).map_err(|e| err(p, e))?;
            for s in sinks {
                pt.insert((s.as_str(), next), ()).map_err(|e| err(p, e))?;
            }
            next += 1;
            added += 1;
        }
    }
    w.commit().map_err(|e| err(p, e))?;
    Ok(added)
}
