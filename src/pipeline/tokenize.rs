//! The tokenizer stage: threads that take decoded events from a shared
//! receiver in chunks, tokenise them (and detect their language when the
//! event has none), and pass them on to the batcher; texts that cannot be
//! tokenised become dead letters. Never runs on the inference thread.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{dead_event, Done, PipelineStats, Tokenized};
use crate::metrics as m;
use crate::model::{lang, Tokenizer};
use crate::types::Event;

/// Events a tokenizer thread takes at once. The batch channel's capacity is
/// counted in such chunks (`channel_capacity / 64`), so this bounds the events
/// waiting there to about `channel_capacity`.
const TOKENIZE_CHUNK: usize = 64;

pub(super) fn spawn_tokenizers(
    n: usize,
    tokenizer: Tokenizer,
    rx: mpsc::Receiver<(u64, Event, Instant)>,
    tx: std::sync::mpsc::SyncSender<Vec<Tokenized>>,
    done_tx: mpsc::Sender<Vec<Done>>,
    stats: Arc<PipelineStats>,
) -> Vec<std::thread::JoinHandle<()>> {
    // One receiver shared by the threads; each takes what is available.
    let rx = Arc::new(std::sync::Mutex::new(rx));
    (0..n.max(1))
        .map(|i| {
            let (rx, tx, done_tx, tokenizer) = (rx.clone(), tx.clone(), done_tx.clone(), tokenizer.clone());
            let stats = stats.clone();
            std::thread::Builder::new()
                .name(format!("earshot-tokenize-{i}"))
                .spawn(move || loop {
                    let chunk: Vec<(u64, Event, Instant)> = {
                        let mut guard = rx.lock().unwrap_or_else(|e| e.into_inner());
                        let Some(first) = guard.blocking_recv() else { return };
                        let mut chunk = vec![first];
                        while chunk.len() < TOKENIZE_CHUNK {
                            match guard.try_recv() {
                                Ok(x) => chunk.push(x),
                                Err(_) => break,
                            }
                        }
                        chunk
                    };
                    let start = Instant::now();
                    let mut ok = Vec::with_capacity(chunk.len());
                    let mut dead = Vec::new();
                    for (seq, event, received) in chunk {
                        match tokenizer.encode(&event.text) {
                            Ok(encoded) => {
                                let lang = event.lang.clone().unwrap_or_else(|| lang::detect(&event.text));
                                ok.push(Tokenized {
                                    seq,
                                    event,
                                    encoded,
                                    lang,
                                    received,
                                    tokenized: start,
                                });
                            }
                            Err(e) => dead.push(dead_event(seq, &event, "tokenize_failed", e.to_string())),
                        }
                    }
                    let done = Instant::now();
                    for t in &mut ok {
                        t.tokenized = done;
                    }
                    stats
                        .metrics
                        .observe(&m::STAGE_SECONDS, &["tokenize"], (done - start).as_secs_f64());
                    if !dead.is_empty() && done_tx.blocking_send(dead).is_err() {
                        return;
                    }
                    if !ok.is_empty() && tx.send(ok).is_err() {
                        return;
                    }
                })
                .expect("failed to spawn a tokenizer thread")
        })
        .collect()
}
