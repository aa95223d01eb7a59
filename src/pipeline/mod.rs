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

pub mod engine;
pub mod merge;
pub mod sink;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;

pub use crate::alert::AlertOut;
use crate::config::Config;
use crate::ingest::mapping::{DeadLetter, Mapping};
use crate::ingest::RawMessage;
use crate::model::worker::ClassifierThread;
use crate::model::{batch, lang, BatchLimits, Encoded, EncodedBatch, Tokenizer, PAD_ID};
use crate::types::{Event, Scored, ScoredEvent, SourcePos};
pub use sink::Sink;

/// Counters of one pipeline run (the metrics module exports them).
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub received: AtomicU64,
    pub scored: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub alerts: AtomicU64,
    pub acked: AtomicU64,
    pub batches: AtomicU64,
    pub batch_texts: AtomicU64,
    pub real_tokens: AtomicU64,
    pub padded_tokens: AtomicU64,
    pub inference_micros: AtomicU64,
    pub truncated: AtomicU64,
    pub too_late: AtomicU64,
}

impl PipelineStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

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

enum Done {
    Scored(u64, Box<ScoredEvent>),
    Dead(u64, Box<Dead>),
}

impl Done {
    fn seq(&self) -> u64 {
        match self {
            Done::Scored(s, _) | Done::Dead(s, _) => *s,
        }
    }
}

impl merge::Timed for Done {
    fn partition(&self) -> (&str, i32) {
        let pos = match self {
            Done::Scored(_, se) => se.event.pos.as_ref(),
            Done::Dead(_, d) => Some(&d.pos),
        };
        pos.map_or(("", 0), |p| (p.source.as_str(), p.partition))
    }
    fn event_time(&self) -> Option<i64> {
        match self {
            Done::Scored(_, se) => Some(se.event.event_time),
            Done::Dead(..) => None,
        }
    }
}

struct Tokenized {
    seq: u64,
    event: Event,
    encoded: Encoded,
    lang: String,
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
/// `detect` sees every scored event in sequence order and returns the alerts
/// it caused; `ack` is called per message in order once its effects are durable.
pub async fn run(
    cfg: &Config,
    input: mpsc::Receiver<RawMessage>,
    parts: Parts,
    detect: impl FnMut(&ScoredEvent) -> Detected + Send,
    ack: impl Fn(&SourcePos) + Send + Sync,
) -> Result<(), PipelineError> {
    let cap = cfg.pipeline.channel_capacity;
    let (tok_tx, tok_rx) = mpsc::channel::<(u64, Event)>(cap);
    let (batch_tx, batch_rx) = mpsc::channel::<Vec<Tokenized>>(cap / 64 + 1);
    let (done_tx, done_rx) = mpsc::channel::<Vec<Done>>(cap / 16 + 1);

    let decode = tokio::spawn(decode_stage(
        input,
        cfg.mapping.clone(),
        tok_tx,
        done_tx.clone(),
        parts.stats.clone(),
    ));
    let tokenizer_threads = spawn_tokenizers(
        cfg.pipeline.tokenizer_threads,
        parts.tokenizer.clone(),
        tok_rx,
        batch_tx,
        done_tx.clone(),
    );
    let batcher = tokio::spawn(batch_stage(
        batch_rx,
        parts.classifier.clone(),
        cfg.batch,
        Duration::from_millis(cfg.pipeline.batch_max_wait_ms),
        done_tx,
        parts.stats.clone(),
    ));
    let result = output_stage(
        done_rx,
        parts.sink,
        detect,
        ack,
        OutputOpts {
            pipeline: &cfg.pipeline,
            with_embedding: cfg.output.scored_embedding,
            source_progress: parts.source_progress.clone(),
        },
        parts.stats.clone(),
    )
    .await;
    decode
        .await
        .map_err(|e| PipelineError::Stage(format!("decode stage: {e}")))?;
    batcher
        .await
        .map_err(|e| PipelineError::Stage(format!("batch stage: {e}")))?;
    for t in tokenizer_threads {
        let _ = t.join();
    }
    result
}

/// Errors that stop the pipeline (per-message problems are dead letters).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("delivery failed for {topic}: {message}; the message was not acknowledged and will be redelivered")]
    Delivery { topic: String, message: String },
    #[error("{0}")]
    Stage(String),
}

async fn decode_stage(
    mut input: mpsc::Receiver<RawMessage>,
    mapping: Mapping,
    tok_tx: mpsc::Sender<(u64, Event)>,
    done_tx: mpsc::Sender<Vec<Done>>,
    stats: Arc<PipelineStats>,
) {
    let mut seq = 0u64;
    while let Some(raw) = input.recv().await {
        seq += 1;
        stats.received.fetch_add(1, Ordering::Relaxed);
        match mapping.decode(raw.payload.as_deref(), raw.timestamp, raw.pos.clone()) {
            Ok(event) => {
                if tok_tx.send((seq, event)).await.is_err() {
                    return;
                }
            }
            Err(dl) => {
                let dead = dead_from(&dl, raw);
                if done_tx.send(vec![Done::Dead(seq, Box::new(dead))]).await.is_err() {
                    return;
                }
            }
        }
    }
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
    Done::Dead(seq, Box::new(dead_of_event(event, code, message)))
}

fn spawn_tokenizers(
    n: usize,
    tokenizer: Tokenizer,
    rx: mpsc::Receiver<(u64, Event)>,
    tx: mpsc::Sender<Vec<Tokenized>>,
    done_tx: mpsc::Sender<Vec<Done>>,
) -> Vec<std::thread::JoinHandle<()>> {
    // One receiver shared by the threads; each takes what is available.
    let rx = Arc::new(std::sync::Mutex::new(rx));
    (0..n.max(1))
        .map(|i| {
            let (rx, tx, done_tx, tokenizer) = (rx.clone(), tx.clone(), done_tx.clone(), tokenizer.clone());
            std::thread::Builder::new()
                .name(format!("earshot-tokenize-{i}"))
                .spawn(move || loop {
                    let chunk: Vec<(u64, Event)> = {
                        let mut guard = rx.lock().unwrap_or_else(|e| e.into_inner());
                        let Some(first) = guard.blocking_recv() else { return };
                        let mut chunk = vec![first];
                        while chunk.len() < 256 {
                            match guard.try_recv() {
                                Ok(x) => chunk.push(x),
                                Err(_) => break,
                            }
                        }
                        chunk
                    };
                    let mut ok = Vec::with_capacity(chunk.len());
                    let mut dead = Vec::new();
                    for (seq, event) in chunk {
                        match tokenizer.encode(&event.text) {
                            Ok(encoded) => {
                                let lang = event.lang.clone().unwrap_or_else(|| lang::detect(&event.text));
                                ok.push(Tokenized {
                                    seq,
                                    event,
                                    encoded,
                                    lang,
                                });
                            }
                            Err(e) => dead.push(dead_event(seq, &event, "tokenize_failed", e.to_string())),
                        }
                    }
                    if !dead.is_empty() && done_tx.blocking_send(dead).is_err() {
                        return;
                    }
                    if !ok.is_empty() && tx.blocking_send(ok).is_err() {
                        return;
                    }
                })
                .expect("failed to spawn a tokenizer thread")
        })
        .collect()
}

async fn batch_stage(
    mut rx: mpsc::Receiver<Vec<Tokenized>>,
    classifier: Arc<ClassifierThread>,
    limits: BatchLimits,
    max_wait: Duration,
    done_tx: mpsc::Sender<Vec<Done>>,
    stats: Arc<PipelineStats>,
) {
    let mut pending: Vec<Tokenized> = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut open = true;
    while open || !pending.is_empty() {
        let flush_now = {
            let longest = pending.iter().map(|t| t.encoded.len()).max().unwrap_or(0);
            pending.len() >= limits.max_batch || pending.len() * longest >= limits.max_tokens
        };
        if !flush_now && open {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                got = rx.recv() => match got {
                    Some(items) => {
                        if pending.is_empty() {
                            deadline = Some(tokio::time::Instant::now() + max_wait);
                        }
                        pending.extend(items);
                        continue;
                    }
                    None => open = false,
                },
                _ = sleep => {}
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
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats.batch_texts.fetch_add(eb.batch as u64, Ordering::Relaxed);
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
                        members
                            .into_iter()
                            .zip(out.results)
                            .map(|(t, inf)| {
                                let scored = Scored {
                                    sentiment: inf.probs.label(),
                                    probs: inf.probs,
                                    category: inf.category,
                                    category_score: inf.category_score,
                                    lang: t.lang,
                                    tokens: t.encoded.len(),
                                    truncated: t.encoded.truncated,
                                    embedding: inf.embedding,
                                };
                                Done::Scored(t.seq, Box::new(ScoredEvent { event: t.event, scored }))
                            })
                            .collect()
                    }
                    Err(e) => members
                        .iter()
                        .map(|t| dead_event(t.seq, &t.event, "inference_failed", e.to_string()))
                        .collect(),
                };
                let _ = done_tx.blocking_send(out);
            });
            // Blocks while the inference queue is full: backpressure.
            let submitted = tokio::task::block_in_place(|| classifier.submit(eb, reply));
            if let Err(e) = submitted {
                tracing::error!(error = %e, "inference thread is gone; stopping the batch stage");
                return;
            }
        }
    }
}

struct OutputOpts<'a> {
    pipeline: &'a crate::config::PipelineConfig,
    with_embedding: bool,
    source_progress: Option<Arc<dyn merge::SourceProgress>>,
}

type Delivery = futures::future::BoxFuture<'static, (Option<SourcePos>, Result<(), PipelineError>)>;

async fn output_stage(
    mut done_rx: mpsc::Receiver<Vec<Done>>,
    sink: Sink,
    mut detect: impl FnMut(&ScoredEvent) -> Detected,
    ack: impl Fn(&SourcePos),
    opts: OutputOpts<'_>,
    stats: Arc<PipelineStats>,
) -> Result<(), PipelineError> {
    let OutputOpts {
        pipeline: opts,
        with_embedding,
        source_progress,
    } = opts;
    let max_in_flight = opts.max_in_flight;
    let partition_idle = Duration::from_millis(opts.partition_idle_ms);
    let mut reorder: BTreeMap<u64, Done> = BTreeMap::new();
    let mut merger = merge::Merger::new(partition_idle, opts.merge_buffer).with_source(source_progress);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut next = 1u64;
    let mut in_flight: FuturesOrdered<Delivery> = FuturesOrdered::new();
    let mut open = true;
    let finish = |(pos, r): (Option<SourcePos>, Result<(), PipelineError>)| -> Result<(), PipelineError> {
        r?;
        if let Some(p) = pos {
            ack(&p);
            stats.acked.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    };
    loop {
        // Everything next in sequence joins its partition's lane...
        let now = std::time::Instant::now();
        while let Some(done) = reorder.remove(&next) {
            next += 1;
            merger.push(done, now);
        }
        // ...and leaves in event-time order across partitions.
        while let Some(done) = merger.pop(now, !open) {
            let fut: Delivery = match done {
                Done::Scored(_, se) => {
                    stats.scored.fetch_add(1, Ordering::Relaxed);
                    if se.scored.truncated {
                        stats.truncated.fetch_add(1, Ordering::Relaxed);
                    }
                    let det = detect(&se);
                    stats.alerts.fetch_add(det.alerts.len() as u64, Ordering::Relaxed);
                    let pos = se.event.pos.clone();
                    let d = sink.deliver_scored(&se, with_embedding, &det.alerts);
                    if det.too_late {
                        stats.too_late.fetch_add(1, Ordering::Relaxed);
                    }
                    let late = det.rejected.map(|message| {
                        stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                        sink.deliver_dead(&dead_of_event(&se.event, "detector_rejected", message))
                    });
                    Box::pin(async move {
                        let mut r = d.await;
                        if let (Ok(()), Some(l)) = (&r, late) {
                            r = l.await;
                        }
                        (pos, r)
                    })
                }
                Done::Dead(_, dead) => {
                    stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(code = dead.code, error = %dead.message, topic = %dead.pos.source,
                        partition = dead.pos.partition, offset = dead.pos.offset, "dead letter");
                    let pos = Some(dead.pos.clone());
                    let d = sink.deliver_dead(&dead);
                    Box::pin(async move { (pos, d.await) })
                }
            };
            in_flight.push_back(fut);
            while in_flight.len() > max_in_flight {
                if let Some(r) = in_flight.next().await {
                    finish(r)?;
                }
            }
        }
        if !open && reorder.is_empty() && merger.is_empty() {
            break;
        }
        tokio::select! {
            _ = tick.tick(), if !merger.is_empty() => {}
            got = done_rx.recv(), if open => match got {
                Some(items) => {
                    for d in items {
                        reorder.insert(d.seq(), d);
                    }
                }
                None => {
                    open = false;
                    if !reorder.is_empty() {
                        return Err(PipelineError::Stage(format!(
                            "pipeline closed with {} messages out of sequence (expected #{next})",
                            reorder.len()
                        )));
                    }
                }
            },
            Some(r) = in_flight.next(), if !in_flight.is_empty() => finish(r)?,
        }
    }
    while let Some(r) = in_flight.next().await {
        finish(r)?;
    }
    sink.flush().await;
    Ok(())
}
