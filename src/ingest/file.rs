//! A JSONL file as a source: each non-empty line is one message; its position
//! is `(path, 0, line number)`. Used by replay, the demo and tests.

use std::io::BufRead;
use std::path::Path;

use super::{IngestError, RawMessage};
use crate::types::SourcePos;

/// Reads every non-empty line of a JSONL file as raw messages (bytes as they
/// are, so invalid UTF-8 reaches the dead-letter path with its line number).
pub fn read_jsonl(path: &Path) -> Result<Vec<RawMessage>, IngestError> {
    let io = |source| IngestError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    let name = path.display().to_string();
    for (n, line) in std::io::BufReader::new(f).split(b'\n').enumerate() {
        let mut line = line.map_err(io)?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        out.push(RawMessage {
            payload: Some(line),
            key: None,
            timestamp: None,
            pos: SourcePos {
                source: name.clone(),
                partition: 0,
                offset: n as i64 + 1,
            },
        });
    }
    Ok(out)
}
