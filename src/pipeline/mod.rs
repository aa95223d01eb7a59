//! Wiring: raw messages → decode → tokenize (own thread) → token-budget
//! batches with a max wait → inference thread → re-sequencing → detection
//! callback → sinks → in-order acknowledgement.
//!
//! Every channel is bounded, so a slow stage pauses the source instead of
//! growing memory. Every message gets a sequence number when it enters and
//! leaves in that order (dead letters included), so acknowledgements are in
//! consumption order and the detector sees a deterministic stream. A message
//! is acknowledged only after everything it caused (scored event, alerts, dead
//! letter) is delivered.

mod batch;
pub mod engine;
pub mod health;
pub mod merge;
mod output;
pub mod sink;
mod stats;
mod tokenize;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

pub use crate::alert::AlertOut;
use crate::config::Config;
use crate::ingest::mapping::{DeadLetter, Mapping};
use crate::ingest::RawMessage;
use crate::model::worker::ClassifierThread;
use crate::model::{Encoded, Tokenizer};
use crate::types::{Event, ScoredEvent, SourcePos};
pub use sink::Sink;
pub use stats::PipelineStats;

/// What the detection callback says about one scored event.
#[derive(Debug, Default)]
pub struct Detected {
    /// Alert messages the event caused.
    pub alerts: Vec<AlertOut>,
    /// The event arrived behind the detector's watermark beyond the allowed
    /// lateness: it is scored and delivered but not counted in the statistics
    /// (counted in `PipelineStats::too_late`).
    pub too_late: bool,
    /// The detector could not use the event (e.g. a malformed embedding): it is
    /// delivered as scored and also dead-lettered with this reason.
    pub rejected: Option<String>,
}

/// A message that could not be processed, with its reason.
#[derive(Debug, Clone)]
pub struct Dead {
    pub code: &'static str,
    pub message: String,
    pub payload: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
    pub pos: SourcePos,
}

/// A message that finished the model stages, in its input sequence.
enum Done {
    Scored {
        seq: u64,
        event: Box<ScoredEvent>,
        /// When its message entered the pipeline.
        received: Instant,
    },
    Dead {
        seq: u64,
        dead: Box<Dead>,
    },
}

impl Done {
    fn seq(&self) -> u64 {
        match self {
            Done::Scored { seq, .. } | Done::Dead { seq, .. } => *seq,
        }
    }
}

impl merge::Timed for Done {
    fn partition(&self) -> (&str, i32) {
        let pos = match self {
            Done::Scored { event, .. } => event.event.pos.as_ref(),
            Done::Dead { dead, .. } => Some(&dead.pos),
        };
        pos.map_or(("", 0), |p| (p.source.as_str(), p.partition))
    }
    fn event_time(&self) -> Option<i64> {
        match self {
            Done::Scored { event, .. } => Some(event.event.event_time),
            Done::Dead { .. } => None,
        }
    }
}

struct Tokenized {
    seq: u64,
    event: Event,
    encoded: Encoded,
    lang: String,
    /// When the message entered the pipeline, and when tokenizing finished.
    received: Instant,
    tokenized: Instant,
}

/// What the pipeline needs besides the message stream.
pub struct Parts {
    pub tokenizer: Tokenizer,
    pub classifier: Arc<ClassifierThread>,
    pub sink: Sink,
    pub stats: Arc<PipelineStats>,
    /// Partition progress of the source, for the event-time merge (Kafka).
    pub source_progress: Option<Arc<dyn merge::SourceProgress>>,
}

/// Runs until `input` closes and everything in flight is acknowledged.
/// `detect` sees every scored event in sequence order (on its own thread) and
/// returns the alerts it caused; `ack` is called per message in order once its effects are durable.
pub async fn run(
    cfg: &Config,
    input: mpsc::Receiver<RawMessage>,
    parts: Parts,
    detect: impl FnMut(&ScoredEvent) -> Detected + Send + 'static,
    ack: impl Fn(&SourcePos) + Send + Sync,
) -> Result<(), PipelineError> {
    let cap = cfg.pipeline.channel_capacity;
    let (tok_tx, tok_rx) = mpsc::channel::<(u64, Event, Instant)>(cap);
    let (batch_tx, batch_rx) = std::sync::mpsc::sync_channel::<Vec<Tokenized>>(cap / 64 + 1);
    let (done_tx, done_rx) = mpsc::channel::<Vec<Done>>(cap / 16 + 1);

    let decode = tokio::spawn(decode_stage(
        input,
        cfg.mapping.clone(),
        tok_tx,
        done_tx.clone(),
        parts.stats.clone(),
    ));
    let tokenizer_threads = tokenize::spawn_tokenizers(
        cfg.pipeline.tokenizer_threads,
        parts.tokenizer.clone(),
        tok_rx,
        batch_tx,
        done_tx.clone(),
        parts.stats.clone(),
    );
    let batcher = batch::BatchStage {
        rx: batch_rx,
        classifier: parts.classifier.clone(),
        limits: cfg.batch,
        max_wait: Duration::from_millis(cfg.pipeline.batch_max_wait_ms),
        done_tx,
        stats: parts.stats.clone(),
    }
    .spawn()
    .map_err(|e| PipelineError::Panicked {
        stage: "batch",
        message: format!("cannot start its thread: {e}"),
    })?;
    let result = output::output_stage(
        done_rx,
        parts.sink,
        detect,
        ack,
        output::OutputOpts {
            pipeline: &cfg.pipeline,
            with_embedding: cfg.output.scored_embedding,
            source_progress: parts.source_progress.clone(),
        },
        parts.stats.clone(),
    )
    .await;
    if let Err(e) = result {
        // The upstream stages may be waiting on a source that never closes
        // (a live topic): stop them rather than wait for its next message.
        // The tokenizer and batch threads end once their inputs close.
        decode.abort();
        return Err(e);
    }
    decode.await.map_err(|source| PipelineError::Stage {
        stage: "decode",
        source,
    })?;
    batcher.join().map_err(|panic| PipelineError::Panicked {
        stage: "batch",
        message: panic_message(panic),
    })?;
    for t in tokenizer_threads {
        let _ = t.join();
    }
    Ok(())
}

/// The message of a thread's panic payload.
fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Errors that stop the pipeline (per-message problems are dead letters).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("delivery failed for {topic}: {source}; the message was not acknowledged and will be redelivered")]
    Delivery {
        topic: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the {stage} stage failed: {source}")]
    Stage {
        stage: &'static str,
        source: tokio::task::JoinError,
    },
    #[error("the detector thread failed: {0}")]
    Detector(String),
    #[error("the {stage} stage panicked: {message}")]
    Panicked { stage: &'static str, message: String },
    #[error(
        "the Kafka producer failed fatally ({reason}); stopping: a restart redelivers from the last committed offset"
    )]
    ProducerFatal { reason: String },
    #[error("pipeline closed with {count} messages out of sequence (expected #{expected})")]
    OutOfSequence { count: usize, expected: u64 },
}

async fn decode_stage(
    mut input: mpsc::Receiver<RawMessage>,
    mapping: Mapping,
    tok_tx: mpsc::Sender<(u64, Event, Instant)>,
    done_tx: mpsc::Sender<Vec<Done>>,
    stats: Arc<PipelineStats>,
) {
    let mut seq = 0u64;
    while let Some(raw) = input.recv().await {
        seq += 1;
        let received = Instant::now();
        stats.received.fetch_add(1, Ordering::Relaxed);
        match mapping.decode(raw.payload.as_deref(), raw.timestamp, wall_clock_ms(), raw.pos.clone()) {
            Ok(event) if event.reply_to.is_some() => {
                // A reply skips the model; it keeps its place in the sequence.
                let se = ScoredEvent {
                    event,
                    scored: crate::types::Scored::unscored(),
                };
                if done_tx
                    .send(vec![Done::Scored {
                        seq,
                        event: Box::new(se),
                        received,
                    }])
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(event) => {
                if tok_tx.send((seq, event, received)).await.is_err() {
                    return;
                }
            }
            Err(dl) => {
                let dead = dead_from(&dl, raw);
                let dead = Box::new(dead);
                if done_tx.send(vec![Done::Dead { seq, dead }]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Milliseconds since the Unix epoch by the wall clock: the reference for
/// event-time sanity of messages without a timestamp (`Mapping::time_range`).
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn dead_from(dl: &DeadLetter, raw: RawMessage) -> Dead {
    Dead {
        code: dl.code(),
        message: dl.to_string(),
        payload: raw.payload,
        key: raw.key,
        pos: raw.pos,
    }
}

/// A dead letter for a decoded event (payload: the event as JSON).
fn dead_of_event(event: &Event, code: &'static str, message: String) -> Dead {
    Dead {
        code,
        message,
        payload: serde_json::to_vec(event).ok(),
        key: None,
        pos: event.pos.clone().unwrap_or(SourcePos {
            source: "unknown".into(),
            partition: -1,
            offset: -1,
        }),
    }
}

fn dead_event(seq: u64, event: &Event, code: &'static str, message: String) -> Done {
    Done::Dead {
        seq,
        dead: Box::new(dead_of_event(event, code, message)),
    }
}
