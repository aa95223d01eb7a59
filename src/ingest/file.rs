//! Files as a source: JSONL (each non-empty line is one message) and CSV (a
//! header row, then one message per row, turned into a JSON object with the
//! header names as fields). A message's position is `(path, 0, line number)`,
//! so every dead letter names the line to fix. Used by replay, the demo and
//! tests.
//!
//! [`stream_file`] reads lazily into a bounded channel (constant memory for
//! files of any size); [`read_jsonl`] collects a small file.

use std::io::{BufRead, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::{IngestError, RawMessage};
use crate::types::SourcePos;

/// Reads every non-empty line of a JSONL file as raw messages (bytes as they
/// are, so invalid UTF-8 reaches the dead-letter path with its line number).
pub fn read_jsonl(path: &Path) -> Result<Vec<RawMessage>, IngestError> {
    let (tx, mut rx) = mpsc::channel(1 << 20);
    let reader = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut out = Vec::new();
            while let Some(m) = rx.blocking_recv() {
                out.push(m);
            }
            out
        });
        let r = stream_file(path, &tx, &AtomicU64::new(0));
        drop(tx);
        r.map(|_| h.join().unwrap_or_default())
    });
    reader
}

fn is_csv(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Streams a JSONL or CSV file (by extension) into `tx`, blocking while the
/// channel is full; `bytes_read` counts progress. Returns the messages sent.
/// Must run on a blocking thread.
pub fn stream_file(path: &Path, tx: &mpsc::Sender<RawMessage>, bytes_read: &AtomicU64) -> Result<u64, IngestError> {
    let f = std::fs::File::open(path).map_err(|source| IngestError::Io {
        path: path.display().to_string(),
        source,
    })?;
    stream_reader(f, &path.display().to_string(), is_csv(path), tx, bytes_read)
}

/// [`stream_file`] over any reader: `name` is the message source (and names
/// the file in errors), `csv` picks the CSV reader instead of JSONL. The fuzz
/// harness (`examples/fuzz`) drives this with in-memory bytes.
pub fn stream_reader(
    f: impl Read,
    name: &str,
    csv: bool,
    tx: &mpsc::Sender<RawMessage>,
    bytes_read: &AtomicU64,
) -> Result<u64, IngestError> {
    let io = |source| IngestError::Io {
        path: name.to_string(),
        source,
    };
    let msg = |payload: Vec<u8>, line: u64| RawMessage {
        payload: Some(payload),
        key: None,
        timestamp: None,
        pos: SourcePos {
            source: name.to_string(),
            partition: 0,
            offset: line as i64,
        },
    };
    let mut sent = 0u64;
    if csv {
        let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(f);
        let headers = rdr
            .headers()
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?
            .clone();
        let mut rec = csv::ByteRecord::new();
        loop {
            let line = rdr.position().line() + 1;
            match rdr.read_byte_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => {
                    bytes_read.store(rdr.position().byte(), Ordering::Relaxed);
                    if tx.blocking_send(msg(csv_row_json(&headers, &rec), line)).is_err() {
                        break;
                    }
                    sent += 1;
                }
                Err(e) => {
                    // Not JSON on purpose: it is dead-lettered with this line number.
                    let line = e.position().map_or(line, |p| p.line());
                    if tx
                        .blocking_send(msg(format!("unreadable CSV row: {e}").into_bytes(), line))
                        .is_err()
                    {
                        break;
                    }
                    sent += 1;
                }
            }
        }
        return Ok(sent);
    }
    let mut read = 0u64;
    for (n, line) in std::io::BufReader::with_capacity(1 << 16, f).split(b'\n').enumerate() {
        let mut line = line.map_err(io)?;
        read += line.len() as u64 + 1;
        bytes_read.store(read, Ordering::Relaxed);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if tx.blocking_send(msg(line, n as u64 + 1)).is_err() {
            break;
        }
        sent += 1;
    }
    Ok(sent)
}

/// A CSV row as a JSON object: empty cells are left out; `rating` and
/// numeric `event_time` cells become numbers; other cells stay strings.
fn csv_row_json(headers: &csv::StringRecord, rec: &csv::ByteRecord) -> Vec<u8> {
    let mut o = serde_json::Map::new();
    for (h, v) in headers.iter().zip(rec.iter()) {
        let Ok(v) = std::str::from_utf8(v) else {
            // Invalid UTF-8: hand the raw row on so it is dead-lettered as such.
            return rec.iter().flat_map(|c| c.iter().copied().chain([b','])).collect();
        };
        if v.is_empty() {
            continue;
        }
        let num = matches!(h, "rating" | "event_time" | "replied_at")
            .then(|| v.parse::<f64>().ok())
            .flatten()
            .and_then(serde_json::Number::from_f64);
        let val = match num {
            Some(_) if h != "rating" && v.bytes().all(|b| b.is_ascii_digit()) => {
                serde_json::Value::from(v.parse::<i64>().unwrap_or_default())
            }
            Some(n) => serde_json::Value::Number(n),
            None => serde_json::Value::from(v),
        };
        o.insert(h.to_string(), val);
    }
    serde_json::to_vec(&serde_json::Value::Object(o)).unwrap_or_default()
}
