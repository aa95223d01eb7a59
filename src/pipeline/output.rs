//! The output end of the pipeline: re-sequencing, the event-time merge across
//! partitions, detection on its own thread, delivery, and acknowledgement in
//! input order.
//!
//! The detector is synchronous and CPU-bound (windows, clusters, spam
//! filter); it runs on a dedicated thread so the async tasks (delivery
//! futures, `/metrics`, shutdown) stay responsive. Merged messages go to it in
//! bursts over a bounded queue; it returns every message, dead letters
//! included, in the order it received them, so acknowledgements stay in
//! consumption order.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;

use super::stats::Tally;
use super::{dead_of_event, merge, Detected, Done, PipelineError, PipelineStats, Sink};
use crate::types::{ScoredEvent, SourcePos};

/// Bursts of merged messages queued for the detector thread.
const DETECTOR_QUEUE: usize = 4;

pub(super) struct OutputOpts<'a> {
    pub pipeline: &'a crate::config::PipelineConfig,
    pub with_embedding: bool,
    pub source_progress: Option<Arc<dyn merge::SourceProgress>>,
}

/// When a delivered event's message entered the pipeline and when its
/// delivery started (for the latency metrics).
struct Timing {
    received: Instant,
    started: Instant,
}

/// What a finished delivery reports.
struct Delivered {
    /// The source position to acknowledge.
    pos: Option<SourcePos>,
    /// Set for scored events (not for replies and dead letters).
    timing: Option<Timing>,
    result: Result<(), PipelineError>,
}

type Delivery = futures::future::BoxFuture<'static, Delivered>;

/// One merged message after the detector has seen it.
struct Checked {
    done: Done,
    /// What the detector said (scored events and replies only).
    detected: Option<Detected>,
    detect_seconds: f64,
}

/// The running detector thread and its two queues.
struct DetectorThread {
    input: mpsc::Sender<Vec<Done>>,
    output: mpsc::UnboundedReceiver<Vec<Checked>>,
    handle: JoinHandle<()>,
}

/// The detector thread: applies `detect` to each scored event of each burst,
/// in order, and hands every message back. Ends when its input closes.
fn spawn_detector(
    mut detect: impl FnMut(&ScoredEvent) -> Detected + Send + 'static,
) -> Result<DetectorThread, PipelineError> {
    let (tx, mut rx) = mpsc::channel::<Vec<Done>>(DETECTOR_QUEUE);
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Vec<Checked>>();
    let handle = std::thread::Builder::new()
        .name("earshot-detect".into())
        .spawn(move || {
            while let Some(burst) = rx.blocking_recv() {
                let checked = burst
                    .into_iter()
                    .map(|done| match &done {
                        Done::Scored { event, .. } => {
                            let started = Instant::now();
                            let detected = detect(event);
                            Checked {
                                detect_seconds: started.elapsed().as_secs_f64(),
                                detected: Some(detected),
                                done,
                            }
                        }
                        Done::Dead { .. } => Checked {
                            done,
                            detected: None,
                            detect_seconds: 0.0,
                        },
                    })
                    .collect();
                if out_tx.send(checked).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| PipelineError::Detector(format!("cannot start it: {e}")))?;
    Ok(DetectorThread {
        input: tx,
        output: out_rx,
        handle,
    })
}

pub(super) async fn output_stage(
    mut done_rx: mpsc::Receiver<Vec<Done>>,
    sink: Sink,
    detect: impl FnMut(&ScoredEvent) -> Detected + Send + 'static,
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
    let mut last_state_log = Instant::now();
    let mut next = 1u64;
    let mut in_flight: FuturesOrdered<Delivery> = FuturesOrdered::new();
    let mut open = true;
    let DetectorThread {
        input: to_detector,
        output: mut from_detector,
        handle: detector,
    } = spawn_detector(detect)?;
    let mut to_detector = Some(to_detector);
    // Messages handed to the detector and not yet back: bounded so a slow sink
    // stops the intake instead of growing the detector's output queue.
    let mut at_detector = 0usize;
    let tally = Mutex::new(Tally::default());
    let finish = |d: Delivered| -> Result<(), PipelineError> {
        d.result?;
        if let Some(p) = d.pos {
            ack(&p);
            stats.acked.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(t) = d.timing {
            let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
            tally.deliver.push(t.started.elapsed().as_secs_f64());
            tally.end_to_end.push(t.received.elapsed().as_secs_f64());
        }
        Ok(())
    };
    let deliver = |c: Checked| -> Delivery {
        match (c.done, c.detected) {
            (Done::Scored { event: se, .. }, Some(_)) if se.event.reply_to.is_some() => {
                // A reply: the detector closed the review's SLA entry;
                // nothing is scored or delivered, the message is acked.
                stats.replies.fetch_add(1, Ordering::Relaxed);
                let pos = se.event.pos.clone();
                Box::pin(async move {
                    Delivered {
                        pos,
                        timing: None,
                        result: Ok(()),
                    }
                })
            }
            (
                Done::Scored {
                    event: se, received, ..
                },
                det,
            ) => {
                let det = det.unwrap_or_default();
                stats.scored.fetch_add(1, Ordering::Relaxed);
                if se.scored.truncated {
                    stats.truncated.fetch_add(1, Ordering::Relaxed);
                }
                {
                    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    t.detect.push(c.detect_seconds);
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
                let started = Instant::now();
                let pos = se.event.pos.clone();
                let scored = sink.deliver_scored(&se, with_embedding, &det.alerts);
                if det.too_late {
                    stats.too_late.fetch_add(1, Ordering::Relaxed);
                }
                let rejected = det.rejected.map(|message| {
                    stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    sink.deliver_dead(&dead_of_event(&se.event, "detector_rejected", message))
                });
                Box::pin(async move {
                    let mut result = scored.await;
                    if let (Ok(()), Some(r)) = (&result, rejected) {
                        result = r.await;
                    }
                    Delivered {
                        pos,
                        timing: Some(Timing { received, started }),
                        result,
                    }
                })
            }
            (Done::Dead { dead, .. }, _) => {
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
                Box::pin(async move {
                    Delivered {
                        pos,
                        timing: None,
                        result: d.await,
                    }
                })
            }
        }
    };
    loop {
        // Everything next in sequence joins its partition's lane...
        let now = Instant::now();
        while let Some(done) = reorder.remove(&next) {
            next += 1;
            merger.push(done, now);
        }
        // ...and leaves in event-time order across partitions, to the detector.
        let mut merged = Vec::new();
        while let Some(done) = merger.pop(now, !open) {
            merged.push(done);
        }
        if !merged.is_empty() {
            at_detector += merged.len();
            let sent = match &to_detector {
                Some(tx) => tx.send(merged).await.is_ok(),
                None => false,
            };
            if !sent {
                return Err(detector_failed(detector));
            }
        }
        tally.lock().unwrap_or_else(|e| e.into_inner()).flush(&stats.metrics);
        if !open && reorder.is_empty() && merger.is_empty() {
            // Closing the queue lets the detector finish and close its output.
            to_detector = None;
        }
        tokio::select! {
            _ = tick.tick(), if !merger.is_empty() => {
                if last_state_log.elapsed() >= Duration::from_secs(10) {
                    last_state_log = Instant::now();
                    tracing::debug!(
                        merge = merger.len(),
                        reorder = reorder.len(),
                        next_seq = next,
                        first_waiting = reorder.keys().next().copied(),
                        at_detector,
                        deliveries = in_flight.len(),
                        "output stage holding events"
                    );
                }
            }
            got = done_rx.recv(), if open && at_detector <= max_in_flight => match got {
                Some(items) => {
                    for d in items {
                        reorder.insert(d.seq(), d);
                    }
                }
                None => {
                    open = false;
                    if !reorder.is_empty() {
                        return Err(PipelineError::OutOfSequence {
                            count: reorder.len(),
                            expected: next,
                        });
                    }
                }
            },
            got = from_detector.recv() => match got {
                Some(burst) => {
                    at_detector -= burst.len();
                    for checked in burst {
                        in_flight.push_back(deliver(checked));
                        while in_flight.len() > max_in_flight {
                            if let Some(r) = in_flight.next().await {
                                finish(r)?;
                            }
                        }
                    }
                }
                None if to_detector.is_none() && at_detector == 0 => break,
                None => return Err(detector_failed(detector)),
            },
            Some(r) = in_flight.next(), if !in_flight.is_empty() => finish(r)?,
        }
    }
    while let Some(r) = in_flight.next().await {
        finish(r)?;
    }
    tally.lock().unwrap_or_else(|e| e.into_inner()).flush(&stats.metrics);
    sink.flush().await;
    let _ = detector.join();
    Ok(())
}

/// The error for a detector thread that stopped before its input closed
/// (it panicked: the panic message is in the log and in the error).
fn detector_failed(detector: JoinHandle<()>) -> PipelineError {
    let why = match detector.join() {
        Err(panic) => super::panic_message(panic),
        Ok(()) => "it stopped early".into(),
    };
    PipelineError::Detector(why)
}
