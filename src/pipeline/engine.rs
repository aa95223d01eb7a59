//! The long-running engine: a Kafka consumer group in; scored events, alerts
//! and dead letters out; offsets committed only after each message's effects
//! are delivered. Used by `earshot run` and by the integration tests.
//!
//! Detector state on rebalance: it is *rebuilt*. Each instance keeps the state
//! of the keys it has seen; when partitions move, the new owner starts those
//! keys cold (baselines warm up again from the stream) and the old owner's
//! copies expire after `detect.idle_ttl_hours`. Producers must key messages by
//! the detector's top-level key (brand or brand+product) so all of a key's
//! events land in one partition and therefore one instance.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::health::Health;
use super::{Detected, Parts, PipelineError, PipelineStats, Sink};
use crate::alert::api::AlertApi;
use crate::alert::lifecycle::Lifecycle;
use crate::alert::service::AlertService;
use crate::config::Config;
use crate::detect::{Detector, Lateness};
use crate::ingest::kafka::{self, KafkaSource};
use crate::metrics as m;
use crate::model::{self, worker::ClassifierThread, BatchLimits, Tokenizer};
use crate::pipeline::AlertOut;
use crate::types::{Dim, Signal};

/// Handles to a running engine for observers (the HTTP server and the
/// metrics exporter), filled in as the parts come up: the model once loaded,
/// the consumer once created, the alert stage when there is one.
pub struct Live {
    pub stats: Arc<PipelineStats>,
    pub model: OnceLock<LiveModel>,
    pub source: OnceLock<Arc<KafkaSource>>,
    pub alerts: OnceLock<Arc<dyn AlertApi>>,
    /// Broker, producer and progress health (readiness), once running.
    pub health: OnceLock<Arc<Health>>,
}

impl Live {
    pub fn new(stats: Arc<PipelineStats>) -> Self {
        Self {
            stats,
            model: OnceLock::new(),
            source: OnceLock::new(),
            alerts: OnceLock::new(),
            health: OnceLock::new(),
        }
    }
}

/// The loaded model as the server needs it (`/classify`, `earshot_model_info`).
pub struct LiveModel {
    pub tokenizer: Tokenizer,
    pub classifier: Arc<ClassifierThread>,
    pub limits: BatchLimits,
    pub max_tokens: usize,
    pub device: String,
    pub matmul: String,
}

/// Totals of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub received: u64,
    pub scored: u64,
    pub dead_lettered: u64,
    pub alerts: u64,
    pub acked: u64,
    /// Scored but behind the detector's allowed lateness (not in statistics).
    pub too_late: u64,
    /// Reply messages: closed a review's SLA entry, not scored.
    pub replies: u64,
    /// Time the inference thread spent computing, in milliseconds.
    pub inference_ms: u64,
    /// Real and padded tokens fed to the model.
    pub real_tokens: u64,
    pub padded_tokens: u64,
    /// False when shutdown hit the drain timeout (unacked work is redelivered).
    pub drained: bool,
    /// Partition revokes (consumer-group rebalances) whose drain timed out.
    pub revokes_undrained: u64,
}

impl RunSummary {
    fn from_stats(stats: &PipelineStats, drained: bool) -> Self {
        let g = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        Self {
            received: g(&stats.received),
            scored: g(&stats.scored),
            dead_lettered: g(&stats.dead_lettered),
            alerts: g(&stats.alerts),
            acked: g(&stats.acked),
            too_late: g(&stats.too_late),
            replies: g(&stats.replies),
            inference_ms: g(&stats.inference_micros) / 1000,
            real_tokens: g(&stats.real_tokens),
            padded_tokens: g(&stats.padded_tokens),
            drained,
            revokes_undrained: 0,
        }
    }
}

/// The detection callback shared by the engine and replay: detector push,
/// then the alert lifecycle on the detector's signals, cleared conditions and
/// watermark (event time only, so replay == live); too-late events are
/// reported for dead-lettering.
pub fn detect_fn(
    detector: Detector,
    lifecycle: Lifecycle,
    on_alert: impl Fn(&AlertOut) + Send + 'static,
) -> impl FnMut(&crate::types::ScoredEvent) -> Detected + Send + 'static {
    detect_fn_observed(detector, lifecycle, on_alert, None)
}

/// [`detect_fn`] that also exports the detector's counters, tracked keys,
/// watermark and per-brand SLA backlog (at most once a second) and the
/// strength of each signal into `stats`' registry.
pub fn detect_fn_observed(
    mut detector: Detector,
    mut lifecycle: Lifecycle,
    on_alert: impl Fn(&AlertOut) + Send,
    stats: Option<Arc<PipelineStats>>,
) -> impl FnMut(&crate::types::ScoredEvent) -> Detected + Send {
    let mut exported = Instant::now();
    move |se| match detector.push(se) {
        Ok(p) => {
            if let Some(st) = &stats {
                for s in &p.signals {
                    record_signal(&st.metrics, s);
                }
                if exported.elapsed() >= Duration::from_secs(1) || !p.signals.is_empty() {
                    export_detector(&st.metrics, &detector);
                    exported = Instant::now();
                }
            }
            let cleared = detector.take_cleared();
            let alerts = lifecycle.step(&p.signals, &cleared, detector.watermark());
            for a in &alerts {
                on_alert(a);
            }
            Detected {
                alerts,
                too_late: p.lateness == Lateness::TooLate,
                rejected: None,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, id = %se.event.id, "detector rejected event");
            Detected {
                alerts: Vec::new(),
                too_late: false,
                rejected: Some(e.to_string()),
            }
        }
    }
}

fn record_signal(r: &m::Registry, s: &Signal) {
    let brand = r.brand(s.key.get(Dim::Brand));
    let rule = s.kind.as_str();
    let score = if s.p_value > 0.0 {
        (-s.p_value.log10()).min(50.0)
    } else {
        50.0
    };
    let ratio = if s.expected > 0.0 {
        s.observed as f64 / s.expected
    } else {
        s.observed as f64
    };
    r.set(&m::SIGNAL_SCORE, &[&brand, rule], score);
    r.set(&m::SIGNAL_RATIO, &[&brand, rule], ratio);
}

fn export_detector(r: &m::Registry, d: &Detector) {
    let c = d.counters();
    for (kind, v) in [
        ("events", c.events),
        ("late_accepted", c.late_accepted),
        ("too_late", c.too_late),
        ("late_after_evaluation", c.late_after_evaluation),
        ("late_corrected", c.late_corrected),
        ("spam_near_duplicate", c.spam_near_duplicate),
        ("spam_author", c.spam_author),
        ("contradictions", c.contradictions),
        ("retracted", c.retracted),
        ("keys_created", c.keys_created),
        ("keys_expired", c.keys_expired),
        ("keys_over_cap", c.keys_over_cap),
        ("keys_evicted", c.keys_evicted),
        ("windows_evaluated", c.windows_evaluated),
        ("replies", c.replies),
        ("signals", c.signals),
        ("duplicates", c.duplicates),
    ] {
        r.set(&m::DETECTOR_ITEMS, &[kind], v as f64);
    }
    r.set(&m::DETECTOR_KEYS, &[], d.tracked_keys() as f64);
    if let Some(w) = d.watermark() {
        r.set(&m::DETECTOR_WATERMARK, &[], w as f64 / 1000.0);
    }
    // Brand-level keys only (one per brand), summed into `other` past the cap.
    let mut open: std::collections::BTreeMap<String, f64> = Default::default();
    let mut overdue: std::collections::BTreeMap<String, f64> = Default::default();
    for sla in d.sla() {
        if let [(Dim::Brand, b)] = sla.key.0.as_slice() {
            let brand = r.brand(Some(b));
            *open.entry(brand.clone()).or_default() += f64::from(sla.open);
            *overdue.entry(brand).or_default() += f64::from(sla.overdue);
        }
    }
    r.set_all(&m::SLA_OPEN, open.into_iter().map(|(b, v)| (vec![b], v)));
    r.set_all(&m::SLA_OVERDUE, overdue.into_iter().map(|(b, v)| (vec![b], v)));
}

/// Runs the engine until `shutdown` resolves, then drains (bounded by
/// `pipeline.drain_timeout_ms`) and commits. The alert stage (outbox and
/// delivery workers) is started from `cfg.alert`; use [`run_kafka_live`] to
/// share it with the HTTP server.
pub async fn run_kafka(
    cfg: Config,
    device: &str,
    stats: Arc<PipelineStats>,
    shutdown: impl Future<Output = ()>,
    on_alert: impl Fn(&AlertOut) + Send + 'static,
) -> anyhow::Result<RunSummary> {
    let alerts = AlertService::start(&cfg.alert).context("failed to start the alert stage")?;
    run_kafka_live(cfg, device, Arc::new(Live::new(stats)), shutdown, on_alert, alerts).await
}

/// [`run_kafka`] with an alert stage built by the caller
/// (`AlertService::start(&cfg.alert)`), publishing its model, consumer and
/// alert stage in `live` as they come up, for the HTTP server (`/readyz`,
/// `/classify`, `/alerts`, lag and delivery metrics). Alert state changes are
/// written to the outbox before the offset of the event that caused them is
/// stored; on shutdown, delivery gets up to `pipeline.drain_timeout_ms` to
/// empty the outbox (the rest is sent after the next start).
pub async fn run_kafka_live(
    cfg: Config,
    device_spec: &str,
    live: Arc<Live>,
    shutdown: impl Future<Output = ()>,
    on_alert: impl Fn(&AlertOut) + Send + 'static,
    alerts: Arc<AlertService>,
) -> anyhow::Result<RunSummary> {
    let stats = live.stats.clone();
    let _ = live.alerts.set(alerts.clone() as Arc<dyn AlertApi>);
    let device = model::parse_device(device_spec).context("invalid --device")?;
    let spec = cfg.model.clone();
    let loaded = tokio::task::spawn_blocking(move || model::load(&spec, &device))
        .await
        .context("model loader panicked")?
        .context("failed to load the model")?;
    let (sentiment_exemplars, category_exemplars) = loaded.classifier.exemplar_counts();
    tracing::info!(
        load_ms = loaded.load_time.as_millis() as u64,
        sentiment_exemplars,
        category_exemplars,
        "model loaded"
    );
    let matmul = loaded.classifier.encoder().mode().as_str().to_string();
    let classifier = Arc::new(ClassifierThread::spawn(Box::new(loaded.classifier), 2));
    let _ = live.model.set(LiveModel {
        tokenizer: loaded.tokenizer.clone(),
        classifier: classifier.clone(),
        limits: cfg.batch,
        max_tokens: cfg.model.max_tokens,
        device: device_spec.to_string(),
        matmul,
    });
    if cfg.output.create_topics {
        create_output_topics(&cfg).await;
    }
    let send_timeout = Duration::from_millis(cfg.pipeline.send_timeout_ms);
    let mut producer_cfg = cfg.kafka.clone();
    producer_cfg
        .properties
        .entry("message.timeout.ms".into())
        .or_insert_with(|| cfg.pipeline.send_timeout_ms.to_string());
    let producer = kafka::producer(&producer_cfg).context("failed to create kafka producer")?;
    let sink = Sink::Kafka {
        producer,
        output: cfg.output.clone(),
        send_timeout,
        outbox: alerts.outbox(),
    };
    let health = Arc::new(Health::new(Duration::from_millis(cfg.pipeline.stall_timeout_ms)));
    let _ = live.health.set(health.clone());
    let drain = Duration::from_millis(cfg.pipeline.drain_timeout_ms);
    let (source, rx) = KafkaSource::start(&cfg.kafka, drain, cfg.pipeline.channel_capacity)
        .context("failed to create kafka consumer")?;
    let source = Arc::new(source);
    let _ = live.source.set(source.clone());
    tracing::info!(brokers = %cfg.kafka.brokers, group = %cfg.kafka.group_id, topics = ?cfg.kafka.topics, "consuming");

    let service = alerts.clone();
    let detect = detect_fn_observed(
        Detector::new(cfg.detect.clone()),
        alerts.lifecycle(),
        move |a| {
            service.observe(a);
            on_alert(a)
        },
        Some(stats.clone()),
    );
    let acker = source.clone();
    let (fatal_tx, mut fatal_rx) = tokio::sync::oneshot::channel::<String>();
    // Aborted on every way out (it holds the source).
    let monitor = AbortOnDrop(tokio::spawn(monitor(
        health.clone(),
        sink.clone(),
        source.clone(),
        stats.clone(),
        fatal_tx,
    )));
    let fatal_sink = sink.clone();
    let parts = Parts {
        tokenizer: loaded.tokenizer,
        classifier,
        sink,
        stats: stats.clone(),
        source_progress: Some(source.partition_progress()),
    };
    let progress = tokio::spawn(log_progress(stats.clone()));
    let pipe = super::run(&cfg, rx, parts, detect, move |pos| acker.ack(pos));
    tokio::pin!(pipe);
    let mut drained = true;
    // A fatal producer error explains a delivery failure better than the
    // failed delivery itself (every queued write fails with it).
    let explain = |r: Result<(), PipelineError>| match (r, fatal_sink.producer_fatal()) {
        (Err(PipelineError::Delivery { .. }), Some(reason)) => Err(PipelineError::ProducerFatal { reason }),
        (r, _) => r,
    };
    tokio::select! {
        r = &mut pipe => {
            if let Err(e) = explain(r) {
                leave_group(&source).await;
                return Err(e).context("pipeline failed");
            }
        }
        Ok(reason) = &mut fatal_rx => {
            drop(monitor);
            source.stop();
            tracing::error!(%reason, "kafka producer failed fatally; stopping (uncommitted messages are redelivered after a restart)");
            leave_group(&source).await;
            return Err(PipelineError::ProducerFatal { reason }).context("pipeline failed");
        }
        _ = shutdown => {
            tracing::info!(in_flight = source.in_flight(), "shutting down: draining in-flight work");
            source.stop();
            match tokio::time::timeout(drain, &mut pipe).await {
                Ok(r) => {
                    if let Err(e) = explain(r) {
                        leave_group(&source).await;
                        return Err(e).context("pipeline failed while draining");
                    }
                }
                Err(_) => {
                    drained = false;
                    tracing::warn!("drain timeout: unfinished messages stay uncommitted and will be redelivered");
                }
            }
        }
    }
    progress.abort();
    drop(monitor);
    let started_drain = Instant::now();
    if drained {
        // Blocking (a synchronous commit): off the async workers.
        let closing = source.clone();
        tokio::task::spawn_blocking(move || closing.close())
            .await
            .context("consumer close panicked")?
            .context("final offset commit failed")?;
    }
    // Whatever is left of the drain bound (at least a second) for the outbox;
    // undelivered notifications are sent after the next start.
    alerts
        .flush(
            drain
                .saturating_sub(started_drain.elapsed())
                .max(Duration::from_secs(1)),
        )
        .await;
    let mut summary = RunSummary::from_stats(&stats, drained);
    summary.revokes_undrained = source.revokes().undrained.load(Ordering::Relaxed);
    Ok(summary)
}

/// On a failed run: commits what was fully processed (offsets are stored
/// only for those) and leaves the consumer group, so a replacement gets the
/// partitions at once instead of after `session.timeout.ms` (or never, with a
/// broker that does not evict dead members). Bounded: a broker in trouble
/// must not keep a failing process alive.
async fn leave_group(source: &Arc<KafkaSource>) {
    const WITHIN: Duration = Duration::from_secs(10);
    let closing = source.clone();
    let leave = tokio::task::spawn_blocking(move || closing.abandon(Duration::from_secs(5)));
    match tokio::time::timeout(WITHIN, leave).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "leaving the consumer group after a failure: commit failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "leaving the consumer group after a failure panicked"),
        Err(_) => tracing::warn!("leaving the consumer group after a failure took over 10 s; exiting without it"),
    }
}

/// Creates the output topics (scored, alerts, dead letter) that do not exist
/// yet with `output.topic_partitions` partitions, so broker auto-creation (one
/// partition) never decides. Failures (no permission, broker down) are logged:
/// the topics may exist already or be created by an operator.
async fn create_output_topics(cfg: &Config) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let names: Vec<&str> = cfg
        .output
        .scored_topic
        .iter()
        .chain([&cfg.output.alerts_topic, &cfg.output.dead_letter_topic])
        .map(String::as_str)
        .collect();
    let admin: AdminClient<_> = match kafka::client_config(&cfg.kafka).create() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create a kafka admin client; output topics not created");
            return;
        }
    };
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                cfg.output.topic_partitions,
                TopicReplication::Fixed(cfg.output.topic_replication),
            )
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    match tokio::time::timeout(Duration::from_secs(15), admin.create_topics(&topics, &opts)).await {
        Ok(Ok(results)) => {
            for r in results {
                match r {
                    Ok(t) => {
                        tracing::info!(topic = %t, partitions = cfg.output.topic_partitions, "output topic created")
                    }
                    Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((t, e)) => tracing::warn!(topic = %t, error = %e, "output topic not created"),
                }
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "output topics not created"),
        Err(_) => tracing::warn!("output topics not created: the broker did not answer within 15 s"),
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every 500 ms: the producer's fatal error (reported once on `fatal`) and
/// whether the pipeline is stalled, into `health` (readiness).
async fn monitor(
    health: Arc<Health>,
    sink: Sink,
    source: Arc<KafkaSource>,
    stats: Arc<PipelineStats>,
    fatal: tokio::sync::oneshot::Sender<String>,
) {
    let mut fatal = Some(fatal);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if let Some(reason) = sink.producer_fatal() {
            health.set_producer_fatal(reason.clone());
            if let Some(tx) = fatal.take() {
                let _ = tx.send(reason);
            }
        }
        let lag: i64 = source.lag().iter().map(|(_, l)| l).sum();
        let waiting = source.in_flight() > 0 || lag > 0;
        health.observe(stats.acked.load(Ordering::Relaxed), waiting, Instant::now());
    }
}

async fn log_progress(stats: Arc<PipelineStats>) {
    let start = Instant::now();
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tick.tick().await;
        let scored = stats.scored.load(Ordering::Relaxed);
        if scored == last {
            continue;
        }
        tracing::info!(
            received = stats.received.load(Ordering::Relaxed),
            scored,
            dead_lettered = stats.dead_lettered.load(Ordering::Relaxed),
            alerts = stats.alerts.load(Ordering::Relaxed),
            per_sec = format!("{:.1}", (scored - last) as f64 / 10.0),
            uptime_s = start.elapsed().as_secs(),
            "progress"
        );
        last = scored;
    }
}

/// Runs a finite list of messages (a JSONL file, a test stream) through the
/// same pipeline and detector as the live engine, with an already loaded
/// model. Returns when every message is processed.
pub async fn run_messages(
    cfg: &Config,
    loaded: model::Loaded,
    messages: Vec<crate::ingest::RawMessage>,
    sink: Sink,
    stats: Arc<PipelineStats>,
    on_alert: impl Fn(&AlertOut) + Send + 'static,
) -> anyhow::Result<RunSummary> {
    let (tx, rx) = tokio::sync::mpsc::channel(cfg.pipeline.channel_capacity);
    let feeder = tokio::spawn(async move {
        for m in messages {
            if tx.send(m).await.is_err() {
                break;
            }
        }
    });
    run_offline(cfg, loaded, rx, sink, stats.clone(), offline_detect(cfg, on_alert))
        .await
        .context("pipeline failed")?;
    feeder.await.context("feeder panicked")?;
    Ok(RunSummary::from_stats(&stats, true))
}

/// The detection callback of a run without delivery endpoints (files,
/// replay, tests): the detector and the alert lifecycle from `cfg.alert`,
/// exactly as the live engine runs them.
pub fn offline_detect(
    cfg: &Config,
    on_alert: impl Fn(&AlertOut) + Send + 'static,
) -> impl FnMut(&crate::types::ScoredEvent) -> Detected + Send + 'static {
    let lifecycle = AlertService::offline(&cfg.alert).lifecycle();
    detect_fn(Detector::new(cfg.detect.clone()), lifecycle, on_alert)
}

/// Runs a finite input stream through the pipeline with an already loaded
/// model (its own inference thread) and no source acknowledgements; returns
/// when the input is closed and everything is processed.
pub async fn run_offline(
    cfg: &Config,
    loaded: model::Loaded,
    input: tokio::sync::mpsc::Receiver<crate::ingest::RawMessage>,
    sink: Sink,
    stats: Arc<PipelineStats>,
    detect: impl FnMut(&crate::types::ScoredEvent) -> Detected + Send + 'static,
) -> Result<(), super::PipelineError> {
    let classifier = Arc::new(ClassifierThread::spawn(Box::new(loaded.classifier), 2));
    let parts = Parts {
        tokenizer: loaded.tokenizer,
        classifier,
        sink,
        stats,
        source_progress: None,
    };
    super::run(cfg, input, parts, detect, |_| {}).await
}
