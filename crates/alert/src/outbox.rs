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
//! * An `open` table (fingerprint → its latest `firing` entry, removed by its
//!   `resolved`) is kept in the same write transaction as the entries, so the
//!   start-up reconciliation ([`Outbox::latest_firing`],
//!   [`Outbox::lifecycle_state`]) reads the open alerts only, not all history.
//! * [`Outbox::compact`] deletes entries delivered to (or given up by) every
//!   endpoint and stored longer ago than the retention (wall clock), except
//!   the latest `firing` of an open alert. Their idempotency keys go with
//!   them: the retention is also how long a re-derived change is recognised.
//! * Silences added through the API are kept in a `silences` table.
//! * A file written before these tables existed gets them on open (one scan).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::api::Silence;
use super::lifecycle::LifecycleState;
use super::{AlertError, AlertOut, Status};
use earshot_core::types::EventTime;

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const KEYS: TableDefinition<&str, u64> = TableDefinition::new("keys");
const PENDING: TableDefinition<(&str, u64), ()> = TableDefinition::new("pending");
/// Fingerprint → sequence number of its latest entry, while that is `firing`.
const OPEN: TableDefinition<&str, u64> = TableDefinition::new("open");
/// Sequence number → wall-clock milliseconds when the entry was stored.
const STORED: TableDefinition<u64, i64> = TableDefinition::new("stored");
/// Silence id → the silence (JSON), for silences added through the API.
const SILENCES: TableDefinition<&str, &[u8]> = TableDefinition::new("silences");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// `meta["version"]`: 2 once `open` and `stored` cover every entry.
const VERSION: u64 = 2;

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
                w.open_table(KEYS).map_err(|e| err(path, e))?;
                w.open_table(SILENCES).map_err(|e| err(path, e))?;
                migrate(&w, path)?;
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
    /// `firing` (what Alertmanager must keep hearing about after a restart),
    /// in fingerprint order. Reads the `open` table, not the history.
    pub fn latest_firing(&self) -> Result<Vec<Entry>, AlertError> {
        let p = &self.path;
        let r = self.db.begin_read().map_err(|e| err(p, e))?;
        let open = r.open_table(OPEN).map_err(|e| err(p, e))?;
        let t = r.open_table(ENTRIES).map_err(|e| err(p, e))?;
        let mut out = Vec::new();
        for row in open.iter().map_err(|e| err(p, e))? {
            let (_, seq) = row.map_err(|e| err(p, e))?;
            if let Some(v) = t.get(seq.value()).map_err(|e| err(p, e))? {
                let e: Entry = serde_json::from_slice(v.value()).map_err(|e| err(p, e))?;
                if e.status == Status::Firing {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    /// The alert lifecycle's state as the outbox knows it: every alert whose
    /// latest delivered-or-pending change is `firing` (see
    /// [`LifecycleState::from_entries`]). Alerts that fired while silenced
    /// never reached the outbox and are not in it.
    pub fn lifecycle_state(&self) -> Result<LifecycleState, AlertError> {
        Ok(LifecycleState::from_entries(&self.latest_firing()?))
    }

    /// Deletes the entries stored before `now_ms - retention_ms` (wall
    /// clock) that no endpoint is waiting for, except the latest `firing` of
    /// an open alert; returns how many were deleted. Silences that ended
    /// before the cut-off (their `ends_at`) are deleted too.
    pub fn compact(&self, retention_ms: i64, now_ms: i64) -> Result<u64, AlertError> {
        let p = &self.path;
        let cutoff = now_ms.saturating_sub(retention_ms);
        let w = self.db.begin_write().map_err(|e| err(p, e))?;
        let mut removed = 0;
        {
            let mut et = w.open_table(ENTRIES).map_err(|e| err(p, e))?;
            let mut kt = w.open_table(KEYS).map_err(|e| err(p, e))?;
            let mut st = w.open_table(STORED).map_err(|e| err(p, e))?;
            let pt = w.open_table(PENDING).map_err(|e| err(p, e))?;
            let ot = w.open_table(OPEN).map_err(|e| err(p, e))?;
            // Entries are numbered in the order they were stored: stop at
            // the first one inside the retention.
            let mut doomed = Vec::new();
            for row in et.iter().map_err(|e| err(p, e))? {
                let (k, v) = row.map_err(|e| err(p, e))?;
                let seq = k.value();
                let stored = st.get(seq).map_err(|e| err(p, e))?.map_or(0, |x| x.value());
                if stored >= cutoff {
                    break;
                }
                let mut pending = false;
                for s in &self.sinks {
                    pending |= pt.get((s.as_str(), seq)).map_err(|e| err(p, e))?.is_some();
                }
                if pending {
                    continue;
                }
                let e: Entry = serde_json::from_slice(v.value()).map_err(|e| err(p, e))?;
                if ot
                    .get(e.fingerprint.as_str())
                    .map_err(|e| err(p, e))?
                    .map(|x| x.value())
                    == Some(seq)
                {
                    continue;
                }
                doomed.push((seq, e.key));
            }
            for (seq, key) in doomed {
                et.remove(seq).map_err(|e| err(p, e))?;
                st.remove(seq).map_err(|e| err(p, e))?;
                if kt.get(key.as_str()).map_err(|e| err(p, e))?.map(|x| x.value()) == Some(seq) {
                    kt.remove(key.as_str()).map_err(|e| err(p, e))?;
                }
                removed += 1;
            }
            let mut sl = w.open_table(SILENCES).map_err(|e| err(p, e))?;
            let mut ended = Vec::new();
            for row in sl.iter().map_err(|e| err(p, e))? {
                let (k, v) = row.map_err(|e| err(p, e))?;
                let end = serde_json::from_slice::<Silence>(v.value())
                    .ok()
                    .and_then(|s| earshot_core::time::parse_rfc3339(&s.ends_at));
                if end.is_none_or(|t| t < cutoff) {
                    ended.push(k.value().to_string());
                }
            }
            for id in ended {
                sl.remove(id.as_str()).map_err(|e| err(p, e))?;
            }
        }
        w.commit().map_err(|e| err(p, e))?;
        Ok(removed)
    }

    /// The silences stored through [`Outbox::put_silence`], in id order.
    pub fn silences(&self) -> Result<Vec<Silence>, AlertError> {
        let p = &self.path;
        let r = self.db.begin_read().map_err(|e| err(p, e))?;
        let t = r.open_table(SILENCES).map_err(|e| err(p, e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| err(p, e))? {
            let (_, v) = row.map_err(|e| err(p, e))?;
            out.push(serde_json::from_slice(v.value()).map_err(|e| err(p, e))?);
        }
        Ok(out)
    }

    /// Stores (replaces) a silence by its id.
    pub fn put_silence(&self, s: &Silence) -> Result<(), AlertError> {
        let p = &self.path;
        let bytes = serde_json::to_vec(s).map_err(|e| err(p, e))?;
        let w = self.db.begin_write().map_err(|e| err(p, e))?;
        w.open_table(SILENCES)
            .map_err(|e| err(p, e))?
            .insert(s.id.as_str(), bytes.as_slice())
            .map_err(|e| err(p, e))?;
        w.commit().map_err(|e| err(p, e))
    }

    /// Deletes a stored silence; false when there was none with this id.
    pub fn remove_silence(&self, id: &str) -> Result<bool, AlertError> {
        let p = &self.path;
        let w = self.db.begin_write().map_err(|e| err(p, e))?;
        let found = w
            .open_table(SILENCES)
            .map_err(|e| err(p, e))?
            .remove(id)
            .map_err(|e| err(p, e))?
            .is_some();
        w.commit().map_err(|e| err(p, e))?;
        Ok(found)
    }
}

/// Wall-clock milliseconds (the time an entry is stored, for compaction).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Creates the tables and, in a file written before `open` and `stored`
/// existed, fills them from the history once (stored time: now).
fn migrate(w: &redb::WriteTransaction, p: &Path) -> Result<(), AlertError> {
    let mut meta = w.open_table(META).map_err(|e| err(p, e))?;
    let et = w.open_table(ENTRIES).map_err(|e| err(p, e))?;
    let mut ot = w.open_table(OPEN).map_err(|e| err(p, e))?;
    let mut st = w.open_table(STORED).map_err(|e| err(p, e))?;
    if meta.get("version").map_err(|e| err(p, e))?.map(|v| v.value()) >= Some(VERSION) {
        return Ok(());
    }
    let now = now_ms();
    let mut latest: std::collections::BTreeMap<String, (u64, Status)> = Default::default();
    for row in et.iter().map_err(|e| err(p, e))? {
        let (k, v) = row.map_err(|e| err(p, e))?;
        let e: Entry = serde_json::from_slice(v.value()).map_err(|e| err(p, e))?;
        latest.insert(e.fingerprint, (k.value(), e.status));
        st.insert(k.value(), now).map_err(|e| err(p, e))?;
    }
    for (fp, (seq, status)) in latest {
        if status == Status::Firing {
            ot.insert(fp.as_str(), seq).map_err(|e| err(p, e))?;
        }
    }
    meta.insert("version", VERSION).map_err(|e| err(p, e))?;
    Ok(())
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
        let mut ot = w.open_table(OPEN).map_err(|e| err(p, e))?;
        let mut st = w.open_table(STORED).map_err(|e| err(p, e))?;
        let mut meta = w.open_table(META).map_err(|e| err(p, e))?;
        // Numbers are never reused, also after compaction emptied the table.
        let last = meta.get("next").map_err(|e| err(p, e))?.map_or(1, |v| v.value());
        let mut next = et
            .last()
            .map_err(|e| err(p, e))?
            .map_or(1, |(k, _)| k.value() + 1)
            .max(last);
        let now = now_ms();
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
            st.insert(next, now).map_err(|e| err(p, e))?;
            match e.status {
                Status::Firing => ot.insert(e.fingerprint.as_str(), next).map(drop),
                Status::Resolved => ot.remove(e.fingerprint.as_str()).map(drop),
            }
            .map_err(|e| err(p, e))?;
            next += 1;
            added += 1;
        }
        meta.insert("next", next).map_err(|e| err(p, e))?;
    }
    w.commit().map_err(|e| err(p, e))?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3_600_000;

    fn entry(key: &str, fp: &str, status: Status, at: EventTime) -> Entry {
        Entry {
            key: key.into(),
            fingerprint: fp.into(),
            status,
            group_key: "brand=Voltra".into(),
            severity: 1,
            at,
            repeat: 0,
            payload: serde_json::json!({ "fingerprint": fp }),
        }
    }

    fn rows(ob: &Outbox) -> (u64, u64, u64) {
        let r = ob.db.begin_read().unwrap();
        (
            r.open_table(ENTRIES).unwrap().len().unwrap(),
            r.open_table(KEYS).unwrap().len().unwrap(),
            r.open_table(STORED).unwrap().len().unwrap(),
        )
    }

    #[test]
    fn compaction_deletes_old_delivered_entries_and_keeps_pending_and_firing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let sinks = vec!["a".to_string(), "b".to_string()];
        let ob = Outbox::open(&path, &sinks).unwrap();
        // 200 alerts fired and resolved, one still firing, one resolved but
        // not yet delivered to `b`.
        let mut all = Vec::new();
        for i in 0..200 {
            let fp = format!("fp{i:03}");
            all.push(entry(&format!("{fp}-f"), &fp, Status::Firing, i));
            all.push(entry(&format!("{fp}-r"), &fp, Status::Resolved, i + 1));
        }
        all.push(entry("open-f", "open", Status::Firing, 500));
        assert_eq!(ob.insert_blocking(all).unwrap(), 401);
        let every: Vec<u64> = (1..=401).collect();
        ob.done("a", &every).unwrap();
        ob.done("b", &every[..399]).unwrap();
        let firing = ob.latest_firing().unwrap();
        assert_eq!(firing.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["open-f"]);
        assert_eq!(ob.depth(), 2);

        // Inside the retention: nothing goes.
        assert_eq!(ob.compact(7 * DAY, now_ms()).unwrap(), 0);
        assert_eq!(rows(&ob), (401, 401, 401));
        // Eight days later: every delivered entry goes but the open alert's
        // firing and the one `b` still waits for.
        let removed = ob.compact(7 * DAY, now_ms() + 8 * DAY).unwrap();
        assert_eq!(removed, 399);
        assert_eq!(rows(&ob), (2, 2, 2));
        assert_eq!(ob.len(), 2);
        assert_eq!(ob.latest_firing().unwrap(), firing);
        assert_eq!(ob.depth(), 2);
        let pend = ob.pending("b", 10).unwrap();
        assert_eq!(
            pend.iter().map(|(_, e)| e.key.as_str()).collect::<Vec<_>>(),
            ["fp199-r", "open-f"]
        );
        // New entries are numbered after the deleted ones and still index.
        assert_eq!(
            ob.insert_blocking(vec![entry("open-r", "open", Status::Resolved, 600)])
                .unwrap(),
            1
        );
        assert!(ob.latest_firing().unwrap().is_empty());
        assert_eq!(ob.pending("a", 10).unwrap()[0].0, 402);
        drop(ob);
        // Reopened: the index tables are there, no rebuild needed.
        let ob = Outbox::open(&path, &sinks).unwrap();
        assert_eq!(ob.len(), 3);
        assert!(ob.latest_firing().unwrap().is_empty());
    }

    #[test]
    fn a_file_without_the_index_tables_gets_them_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        {
            // The layout before `open`, `stored` and `meta`.
            let db = Database::create(&path).unwrap();
            let w = db.begin_write().unwrap();
            {
                let mut et = w.open_table(ENTRIES).unwrap();
                let mut kt = w.open_table(KEYS).unwrap();
                w.open_table(PENDING).unwrap();
                let old = [
                    entry("x-f", "x", Status::Firing, 1),
                    entry("y-f", "y", Status::Firing, 2),
                    entry("x-r", "x", Status::Resolved, 3),
                ];
                for (i, e) in old.iter().enumerate() {
                    et.insert(i as u64 + 1, serde_json::to_vec(e).unwrap().as_slice())
                        .unwrap();
                    kt.insert(e.key.as_str(), i as u64 + 1).unwrap();
                }
            }
            w.commit().unwrap();
        }
        let ob = Outbox::open(&path, &["a".to_string()]).unwrap();
        let firing = ob.latest_firing().unwrap();
        assert_eq!(firing.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["y-f"]);
        assert_eq!(rows(&ob), (3, 3, 3));
        // Delivered, then past the retention: all but the open firing go.
        assert_eq!(ob.compact(DAY, now_ms() + 2 * DAY).unwrap(), 2);
        assert_eq!(ob.len(), 1);
    }

    #[test]
    fn silences_are_stored_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(&dir.path().join("o.redb"), &[]).unwrap();
        let s = Silence {
            id: "s1".into(),
            matchers: [("brand".to_string(), "Voltra".to_string())].into(),
            starts_at: "2026-01-01T00:00:00Z".into(),
            ends_at: "2026-01-02T00:00:00Z".into(),
            comment: "known".into(),
            created_by: "test".into(),
        };
        ob.put_silence(&s).unwrap();
        assert_eq!(ob.silences().unwrap(), vec![s.clone()]);
        // Ended before the cut-off: compaction drops it.
        let end = earshot_core::time::parse_rfc3339(&s.ends_at).unwrap();
        ob.compact(DAY, end + DAY / 2).unwrap();
        assert_eq!(ob.silences().unwrap().len(), 1);
        ob.compact(DAY, end + 2 * DAY).unwrap();
        assert!(ob.silences().unwrap().is_empty());
        ob.put_silence(&s).unwrap();
        assert!(ob.remove_silence("s1").unwrap());
        assert!(!ob.remove_silence("s1").unwrap());
        assert!(ob.silences().unwrap().is_empty());
    }
}
