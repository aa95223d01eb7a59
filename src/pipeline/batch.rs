//! The batch stage, on its own thread: collects tokenized events until the
//! token budget or the max wait, cuts length-sorted batches
//! (`model::batch::plan`, the same planner `earshot classify` uses), packs
//! them and submits them to the inference thread. Submitting blocks while the
//! inference queue is full (backpressure), which is why this is a thread and
//! not an async task: no tokio worker is ever blocked on the model.

use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{dead_event, Done, PipelineStats, Tokenized};
use crate::metrics as m;
use crate::model::worker::ClassifierThread;
use crate::model::{batch, BatchLimits, EncodedBatch, PAD_ID};
use crate::types::ScoredEvent;

/// What the batch thread works with.
pub(super) struct BatchStage {
    pub rx: std::sync::mpsc::Receiver<Vec<Tokenized>>,
    pub classifier: Arc<ClassifierThread>,
    pub limits: BatchLimits,
    pub max_wait: Duration,
    pub done_tx: mpsc::Sender<Vec<Done>>,
    pub stats: Arc<PipelineStats>,
}

impl BatchStage {
    /// Starts the batch thread; it ends when its input closes and everything
    /// pending is submitted, or when the inference thread is gone.
    pub(super) fn spawn(self) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("earshot-batch".into())
            .spawn(move || self.run())
    }

    fn run(self) {
        let BatchStage {
            rx,
            classifier,
            limits,
            max_wait,
            done_tx,
            stats,
        } = self;
        let mut pending: Vec<Tokenized> = Vec::new();
        let mut deadline: Option<Instant> = None;
        let mut open = true;
        while open || !pending.is_empty() {
            let flush_now = {
                let longest = pending.iter().map(|t| t.encoded.len()).max().unwrap_or(0);
                pending.len() >= limits.max_batch || pending.len() * longest >= limits.max_tokens
            };
            if !flush_now && open {
                let got = match deadline {
                    Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match got {
                    Ok(items) => {
                        if pending.is_empty() {
                            deadline = Some(Instant::now() + max_wait);
                        }
                        pending.extend(items);
                        continue;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
            }
            if pending.is_empty() {
                continue;
            }
            // Cut length-sorted batches; a trickle is flushed by the deadline.
            let items = std::mem::take(&mut pending);
            deadline = None;
            let lengths: Vec<usize> = items.iter().map(|t| t.encoded.len()).collect();
            let mut slots: Vec<Option<Tokenized>> = items.into_iter().map(Some).collect();
            for group in batch::plan(&lengths, limits) {
                let members: Vec<Tokenized> = group.iter().filter_map(|&i| slots[i].take()).collect();
                let eb = EncodedBatch::pack(members.iter().map(|t| &t.encoded), PAD_ID);
                stats.metrics.observe(&m::BATCH_SIZE, &[], eb.texts() as f64);
                stats.metrics.observe(&m::BATCH_TOKENS, &[], eb.padded_tokens() as f64);
                let oldest = members.iter().map(|t| t.tokenized).min().unwrap_or_else(Instant::now);
                let submitted_at = Instant::now();
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats.batch_texts.fetch_add(eb.texts() as u64, Ordering::Relaxed);
                stats.real_tokens.fetch_add(eb.real_tokens as u64, Ordering::Relaxed);
                stats
                    .padded_tokens
                    .fetch_add(eb.padded_tokens() as u64, Ordering::Relaxed);
                let (done_tx, stats2) = (done_tx.clone(), stats.clone());
                let reply: crate::model::worker::Reply = Box::new(move |result| {
                    let out: Vec<Done> = match result {
                        Ok(out) => {
                            stats2
                                .inference_micros
                                .fetch_add(out.compute.as_micros() as u64, Ordering::Relaxed);
                            let waited = submitted_at.saturating_duration_since(oldest) + out.queued;
                            let r = &stats2.metrics;
                            r.observe(&m::STAGE_SECONDS, &["queue_wait"], waited.as_secs_f64());
                            r.observe(&m::STAGE_SECONDS, &["inference"], out.compute.as_secs_f64());
                            r.add(&m::INFERENCE_BATCHES, &["ok"], 1.0);
                            members
                                .into_iter()
                                .zip(out.results)
                                .map(|(t, inf)| {
                                    let scored = crate::model::scored(inf, t.lang, &t.encoded, true);
                                    Done::Scored {
                                        seq: t.seq,
                                        event: Box::new(ScoredEvent { event: t.event, scored }),
                                        received: t.received,
                                    }
                                })
                                .collect()
                        }
                        Err(e) => {
                            stats2.metrics.add(&m::INFERENCE_BATCHES, &["error"], 1.0);
                            members
                                .iter()
                                .map(|t| dead_event(t.seq, &t.event, "inference_failed", e.to_string()))
                                .collect()
                        }
                    };
                    let _ = done_tx.blocking_send(out);
                });
                // Blocks this thread while the inference queue is full: backpressure.
                if let Err(e) = classifier.submit(eb, reply) {
                    tracing::error!(error = %e, "inference thread is gone; stopping the batch stage");
                    return;
                }
            }
        }
    }
}
