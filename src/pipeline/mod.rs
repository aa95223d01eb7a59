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
mod tokenize;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;

pub use crate::alert::AlertOut;
use crate::config::Config;
use crate::ingest::mapping::{DeadLetter, Mapping};
use crate::ingest::RawMessage;
use crate::metrics::{self as m, Registry};
use crate::model::worker::ClassifierThread;
use crate::model::{batch, BatchLimits, Encoded, EncodedBatch, Tokenizer, PAD_ID};
use crate::types::{Event, ScoredEvent, SourcePos};
pub use sink::Sink;

/// Counters of one pipeline run, plus the metrics registry the stages record
/// into (histograms, labelled counters). Per-message counts stay atomics here
/// and are mirrored into the registry at scrape time ([`PipelineStats::export`]).
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub metrics: Registry,
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
    /// Reply messages (`mapping.reply_to`): acked, not scored.
    pub replies: AtomicU64,
}

impl PipelineStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Copies the atomic counters into the registry (call before rendering).
    pub fn export(&self) {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let r = &self.metrics;
        r.set(&m::EVENTS_RECEIVED, &[], g(&self.received));
        r.set(&m::EVENTS_SCORED, &[], g(&self.scored));
        r.set(&m::EVENTS_ACKED, &[], g(&self.acked));
        r.set(&m::EVENTS_TOO_LATE, &[], g(&self.too_late));
        r.set(&m::EVENTS_TRUNCATED, &[], g(&self.truncated));
        r.set(
            &m::PIPELINE_IN_FLIGHT,
            &[],
            (g(&self.received) - g(&self.acked)).max(0.0),
        );
        r.set(&m::INFERENCE_TOKENS, &["real"], g(&self.real_tokens));
        r.set(&m::INFERENCE_TOKENS, &["padded"], g(&self.padded_tokens));
        self.init_series();
    }

    /// Creates the series of known label values at zero (adding 0 is a
    /// no-op once they exist), so `rate()`/`changes()` see the first increment.
    fn init_series(&self) {
        let r = &self.metrics;
        for code in DeadLetter::CODES
            .iter()
            .chain(&["tokenize_failed", "inference_failed", "detector_rejected"])
        {
            r.add(&m::EVENTS_DEAD, &[code], 0.0);
        }
        for outcome in ["ok", "error"] {
            r.add(&m::INFERENCE_BATCHES, &[outcome], 0.0);
        }
        for kind in crate::types::SignalKind::ALL {
            for severity in ["info", "warning", "critical"] {
                for status in ["firing", "resolved"] {
                    r.add(&m::ALERTS, &[kind.as_str(), severity, status], 0.0);
                }
            }
        }
        for stage in m::STAGES {
            r.observe_many(&m::STAGE_SECONDS, &[stage], std::iter::empty());
        }
        r.observe_many(&m::EVENT_LATENCY, &[], std::iter::empty());
        r.observe_many(&m::EVENT_TO_ALERT, &[], std::iter::empty());
        r.observe_many(&m::BATCH_SIZE, &[], std::iter::empty());
        r.observe_many(&m::BATCH_TOKENS, &[], std::iter::empty());
    }
}

/// Per-event figures gathered by the output stage and recorded into the
/// registry once per burst (one lock per family instead of per message).
#[derive(Default)]
struct Tally {
    detect: Vec<f64>,
    deliver: Vec<f64>,
    end_to_end: Vec<f64>,
    event_to_alert: Vec<f64>,
    sentiment: std::collections::HashMap<(String, String, &'static str), f64>,
    category: std::collections::HashMap<(String, &'static str, &'static str), f64>,
    dead: std::collections::HashMap<&'static str, f64>,
    alerts: std::collections::HashMap<(String, String, String), f64>,
}

impl Tally {
    fn scored(&mut self, r: &Registry, se: &ScoredEvent) {
        let brand = r.brand(se.event.key.brand.as_deref());
        let lang = r.language(se.event.lang.as_deref().unwrap_or(se.scored.lang.as_str()));
        let sentiment = se.scored.sentiment.as_str();
        *self
            .category
            .entry((brand.clone(), se.scored.category.as_str(), sentiment))
            .or_default() += 1.0;
        *self.sentiment.entry((brand, lang, sentiment)).or_default() += 1.0;
    }

    fn alert(&mut self, a: &AlertOut) {
        let field = |k: &str| {
            a.payload
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("unknown")
                .to_string()
        };
        *self
            .alerts
            .entry((field("rule"), field("severity"), field("status")))
            .or_default() += 1.0;
    }

    fn flush(&mut self, r: &Registry) {
        for (stage, v) in [("detect", &mut self.detect), ("deliver", &mut self.deliver)] {
            if !v.is_empty() {
                r.observe_many(&m::STAGE_SECONDS, &[stage], v.drain(..));
            }
        }
        if !self.end_to_end.is_empty() {
            r.observe_many(&m::EVENT_LATENCY, &[], self.end_to_end.drain(..));
        }
        if !self.event_to_alert.is_empty() {
            r.observe_many(&m::EVENT_TO_ALERT, &[], self.event_to_alert.drain(..));
        }
        if !self.sentiment.is_empty() {
            r.add_many(
                &m::SENTIMENT,
                self.sentiment
                    .drain()
                    .map(|((b, l, s), v)| (vec![b, l, s.to_string()], v)),
            );
        }
        if !self.category.is_empty() {
            r.add_many(
                &m::CATEGORY,
                self.category
                    .drain()
                    .map(|((b, c, s), v)| (vec![b, c.to_string(), s.to_string()], v)),
            );
        }
        if !self.dead.is_empty() {
            r.add_many(
                &m::EVENTS_DEAD,
                self.dead.drain().map(|(c, v)| (vec![c.to_string()], v)),
            );
        }
        if !self.alerts.is_empty() {
            r.add_many(&m::ALERTS, self.alerts.drain().map(|((a, b, c), v)| (vec![a, b, c], v)));
        }
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
    /// Sequence number, the event, and when its message entered the pipeline.
    Scored(u64, Box<ScoredEvent>, Instant),
    Dead(u64, Box<Dead>),
}

impl Done {
    fn seq(&self) -> u64 {
        match self {
            Done::Scored(s, ..) | Done::Dead(s, _) => *s,
        }
    }
}

impl merge::Timed for Done {
    fn partition(&self) -> (&str, i32) {
        let pos = match self {
            Done::Scored(_, se, _) => se.event.pos.as_ref(),
            Done::Dead(_, d) => Some(&d.pos),
        };
        pos.map_or(("", 0), |p| (p.source.as_str(), p.partition))
    }
    fn event_time(&self) -> Option<i64> {
        match self {
            Done::Scored(_, se, _) => Some(se.event.event_time),
            Done::Dead(..) => None,
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
    let (tok_tx, tok_rx) = mpsc::channel::<(u64, Event, Instant)>(cap);
    let (batch_tx, batch_rx) = mpsc::channel::<Vec<Tokenized>>(cap / 64 + 1);
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
    tok_tx: mpsc::Sender<(u64, Event, Instant)>,
    done_tx: mpsc::Sender<Vec<Done>>,
    stats: Arc<PipelineStats>,
) {
    let mut seq = 0u64;
    while let Some(raw) = input.recv().await {
        seq += 1;
        let received = Instant::now();
        stats.received.fetch_add(1, Ordering::Relaxed);
        match mapping.decode(raw.payload.as_deref(), raw.timestamp, raw.pos.clone()) {
            Ok(event) if event.reply_to.is_some() => {
                // A reply skips the model; it keeps its place in the sequence.
                let se = ScoredEvent {
                    event,
                    scored: crate::types::Scored::unscored(),
                };
                if done_tx
                    .send(vec![Done::Scored(seq, Box::new(se), received)])
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
            stats.metrics.observe(&m::BATCH_SIZE, &[], eb.batch as f64);
            stats.metrics.observe(&m::BATCH_TOKENS, &[], eb.padded_tokens() as f64);
            let oldest = members.iter().map(|t| t.tokenized).min().unwrap_or_else(Instant::now);
            let submitted_at = Instant::now();
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
                                Done::Scored(t.seq, Box::new(ScoredEvent { event: t.event, scored }), t.received)
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

/// What a finished delivery reports: the position to acknowledge, when its
/// message entered the pipeline and when delivery started (for latency
/// metrics), and the outcome.
type Delivered = (Option<SourcePos>, Option<(Instant, Instant)>, Result<(), PipelineError>);
type Delivery = futures::future::BoxFuture<'static, Delivered>;

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
    let tally = Mutex::new(Tally::default());
    let finish = |(pos, timing, r): Delivered| -> Result<(), PipelineError> {
        r?;
        if let Some(p) = pos {
            ack(&p);
            stats.acked.fetch_add(1, Ordering::Relaxed);
        }
        if let Some((received, started)) = timing {
            let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
            t.deliver.push(started.elapsed().as_secs_f64());
            t.end_to_end.push(received.elapsed().as_secs_f64());
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
                Done::Scored(_, se, _) if se.event.reply_to.is_some() => {
                    // A reply: the detector closes the review's SLA entry;
                    // nothing is scored or delivered, the message is acked.
                    stats.replies.fetch_add(1, Ordering::Relaxed);
                    let _ = detect(&se);
                    let pos = se.event.pos.clone();
                    Box::pin(async move { (pos, None, Ok(())) })
                }
                Done::Scored(_, se, received) => {
                    stats.scored.fetch_add(1, Ordering::Relaxed);
                    if se.scored.truncated {
                        stats.truncated.fetch_add(1, Ordering::Relaxed);
                    }
                    let started = Instant::now();
                    let det = detect(&se);
                    {
                        let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                        t.detect.push(started.elapsed().as_secs_f64());
                        t.scored(&stats.metrics, &se);
                        for a in &det.alerts {
                            t.alert(a);
                            t.event_to_alert.push(received.elapsed().as_secs_f64());
                        }
                        if det.rejected.is_some() {
                            *t.dead.entry("detector_rejected").or_default() += 1.0;
                        }
                    }
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
                        (pos, Some((received, started)), r)
                    })
                }
                Done::Dead(_, dead) => {
                    stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    *tally
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .dead
                        .entry(dead.code)
                        .or_default() += 1.0;
                    tracing::debug!(code = dead.code, error = %dead.message, topic = %dead.pos.source,
                        partition = dead.pos.partition, offset = dead.pos.offset, "dead letter");
                    let pos = Some(dead.pos.clone());
                    let d = sink.deliver_dead(&dead);
                    Box::pin(async move { (pos, None, d.await) })
                }
            };
            in_flight.push_back(fut);
            while in_flight.len() > max_in_flight {
                if let Some(r) = in_flight.next().await {
                    finish(r)?;
                }
            }
        }
        tally.lock().unwrap_or_else(|e| e.into_inner()).flush(&stats.metrics);
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
    tally.lock().unwrap_or_else(|e| e.into_inner()).flush(&stats.metrics);
    sink.flush().await;
    Ok(())
}
