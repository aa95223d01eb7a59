//! The declarations: every metric family earshot exports, with its name,
//! help text, type, label names and (histograms) buckets. Nothing else in the
//! crate names a metric; the registry ([`super::Registry`]) builds one typed
//! `prometheus` vector per declaration.

use serde::Serialize;

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family: name, help, type, label names and (histograms) buckets.
#[derive(Debug, PartialEq)]
pub struct Def {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    /// Upper bounds of the `_bucket` series (histograms only), ascending.
    pub buckets: &'static [f64],
    /// Recorded values are multiplied by this before going into the
    /// hdrhistogram (which stores integers): 1e6 for seconds (microsecond
    /// resolution), 1 for counts.
    pub hdr_scale: f64,
    /// Counters only: the value may be fractional (seconds), so it is kept as
    /// an f64 (`CounterVec`); other counters count whole things (`IntCounterVec`).
    /// Gauges are always f64 (`GaugeVec`).
    pub fractional: bool,
    /// Exported by the prometheus crate's process collector, not recorded by earshot.
    pub process: bool,
}

const fn def_of(name: &'static str, help: &'static str, kind: Kind, labels: &'static [&'static str]) -> Def {
    Def {
        name,
        help,
        kind,
        labels,
        buckets: &[],
        hdr_scale: 1.0,
        fractional: false,
        process: false,
    }
}

const fn counter(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Def {
    def_of(name, help, Kind::Counter, labels)
}

/// A counter of seconds (fractional increments).
const fn counter_seconds(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Def {
    Def {
        fractional: true,
        ..def_of(name, help, Kind::Counter, labels)
    }
}

const fn gauge(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Def {
    def_of(name, help, Kind::Gauge, labels)
}

const fn histogram(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    hdr_scale: f64,
) -> Def {
    Def {
        buckets,
        hdr_scale,
        ..def_of(name, help, Kind::Histogram, labels)
    }
}

const fn process(name: &'static str, help: &'static str, kind: Kind) -> Def {
    Def {
        process: true,
        ..def_of(name, help, kind, &[])
    }
}

/// Latency buckets, seconds.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Texts per inference batch.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Padded tokens per inference batch.
pub const TOKEN_BUCKETS: &[f64] = &[64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0];

// --- pipeline ---------------------------------------------------------------
pub static STAGE_SECONDS: Def = histogram(
    "earshot_stage_duration_seconds",
    "Time spent per stage: tokenize (one chunk of texts), queue_wait (a batch from its first text tokenized to inference start), inference (one batch forward + heads), detect (one event), deliver (one event's outputs acknowledged by the sink).",
    &["stage"],
    SECONDS_BUCKETS,
    1e6,
);
pub static EVENT_LATENCY: Def = histogram(
    "earshot_event_latency_seconds",
    "Wall time from a message entering the pipeline to its effects being acknowledged (end to end, per event).",
    &[],
    SECONDS_BUCKETS,
    1e6,
);
pub static EVENT_TO_ALERT: Def = histogram(
    "earshot_event_to_alert_seconds",
    "Wall time from the message that triggered an alert entering the pipeline to the alert leaving the detector.",
    &[],
    SECONDS_BUCKETS,
    1e6,
);
pub static BATCH_SIZE: Def = histogram(
    "earshot_inference_batch_size",
    "Texts per inference batch.",
    &[],
    BATCH_BUCKETS,
    1.0,
);
pub static BATCH_TOKENS: Def = histogram(
    "earshot_inference_batch_tokens",
    "Padded tokens (batch x longest text) per inference batch.",
    &[],
    TOKEN_BUCKETS,
    1.0,
);
pub static INFERENCE_TOKENS: Def = counter(
    "earshot_inference_tokens_total",
    "Tokens fed to the model: kind=real (text tokens) or padded (including padding).",
    &["kind"],
);
pub static INFERENCE_BATCHES: Def = counter(
    "earshot_inference_batches_total",
    "Inference batches by outcome (ok, error).",
    &["outcome"],
);
pub static EVENTS_RECEIVED: Def = counter(
    "earshot_events_received_total",
    "Messages that entered the pipeline.",
    &[],
);
pub static EVENTS_SCORED: Def = counter(
    "earshot_events_scored_total",
    "Events classified and passed to the detector.",
    &[],
);
pub static EVENTS_ACKED: Def = counter(
    "earshot_events_acked_total",
    "Messages whose effects were delivered and whose offset was stored.",
    &[],
);
pub static EVENTS_DEAD: Def = counter(
    "earshot_events_dead_lettered_total",
    "Messages sent to the dead-letter topic, by reason code.",
    &["reason"],
);
pub static EVENTS_TOO_LATE: Def = counter(
    "earshot_events_too_late_total",
    "Events scored and delivered but behind the detector's allowed lateness (not in its statistics).",
    &[],
);
pub static EVENTS_TRUNCATED: Def = counter("earshot_events_truncated_total", "Texts cut to model.max_tokens.", &[]);
pub static PIPELINE_IN_FLIGHT: Def = gauge(
    "earshot_pipeline_in_flight",
    "Messages received but not yet acknowledged.",
    &[],
);

// --- brand reputation (bounded labels) ---------------------------------------
pub static SENTIMENT: Def = counter(
    "earshot_sentiment_events_total",
    "Scored events by brand (capped, overflow=other), language (capped) and sentiment.",
    &["brand", "language", "sentiment"],
);
pub static CATEGORY: Def = counter(
    "earshot_category_events_total",
    "Scored events by brand (capped), complaint category and sentiment.",
    &["brand", "category", "sentiment"],
);
pub static SIGNAL_SCORE: Def = gauge(
    "earshot_detector_signal_score",
    "Strength of the latest detector signal per brand and rule: -log10(p-value), capped at 50.",
    &["brand", "rule"],
);
pub static SIGNAL_RATIO: Def = gauge(
    "earshot_detector_signal_ratio",
    "Observed / expected count of the latest detector signal per brand and rule.",
    &["brand", "rule"],
);
pub static SLA_OPEN: Def = gauge(
    "earshot_detector_sla_open",
    "Unreplied negative events per brand at the detector's watermark.",
    &["brand"],
);
pub static SLA_OVERDUE: Def = gauge(
    "earshot_detector_sla_overdue",
    "Unreplied negative events per brand older than the response SLA (detect.sla_hours).",
    &["brand"],
);
pub static DETECTOR_KEYS: Def = gauge("earshot_detector_tracked_keys", "Keys the detector tracks.", &[]);
pub static DETECTOR_ITEMS: Def = counter(
    "earshot_detector_items_total",
    "Detector counters by kind (events, late_accepted, too_late, late_after_evaluation (late events that missed an already evaluated window but count in later ones), late_corrected (late events that corrected an already folded hour's baseline), spam_near_duplicate, spam_author, contradictions, retracted, keys_created, keys_expired, keys_over_cap (always 0: new keys at detect.max_keys evict), keys_evicted, windows_evaluated, replies, signals, duplicates).",
    &["kind"],
);
pub static DETECTOR_WATERMARK: Def = gauge(
    "earshot_detector_watermark_seconds",
    "The detector's event-time watermark, Unix seconds.",
    &[],
);

// --- alerts and delivery -----------------------------------------------------
pub static ALERTS: Def = counter(
    "earshot_alerts_total",
    "Alert messages that left the detector/alert stage, by rule, severity and status (firing, resolved).",
    &["rule", "severity", "status"],
);
pub static ALERTS_ACTIVE: Def = gauge(
    "earshot_alerts_active",
    "Alerts currently firing, by rule, severity and brand (capped).",
    &["rule", "severity", "brand"],
);
pub static WEBHOOK_DELIVERED: Def = counter(
    "earshot_webhook_deliveries_total",
    "Alert notifications delivered, by sink.",
    &["sink", "kind"],
);
pub static WEBHOOK_RETRIES: Def = counter(
    "earshot_webhook_retries_total",
    "Delivery retries, by sink.",
    &["sink", "kind"],
);
pub static WEBHOOK_FAILURES: Def = counter(
    "earshot_webhook_failures_total",
    "Failed delivery attempts, by sink.",
    &["sink", "kind"],
);
pub static WEBHOOK_DROPPED: Def = counter(
    "earshot_webhook_dropped_total",
    "Notifications given up on (non-retryable error or retries exhausted), by sink.",
    &["sink", "kind"],
);
pub static WEBHOOK_BACKOFF: Def = counter_seconds(
    "earshot_webhook_backoff_seconds_total",
    "Time spent waiting between retries, by sink.",
    &["sink", "kind"],
);
pub static OUTBOX_PENDING: Def = gauge(
    "earshot_outbox_pending",
    "Outbox entries waiting for one sink.",
    &["sink"],
);
pub static OUTBOX_DEPTH: Def = gauge(
    "earshot_outbox_depth",
    "Outbox entries not yet delivered to every sink.",
    &[],
);

// --- source --------------------------------------------------------------------
pub static KAFKA_LAG: Def = gauge(
    "earshot_kafka_consumer_lag_messages",
    "Messages in a partition not yet read by this consumer (high watermark - next offset), refreshed every 250 ms.",
    &["topic", "partition"],
);
pub static KAFKA_ASSIGNED: Def = gauge(
    "earshot_kafka_assigned_partitions",
    "Partitions assigned to this consumer.",
    &[],
);
pub static KAFKA_REBALANCES: Def = counter(
    "earshot_kafka_rebalances_total",
    "Consumer group rebalances seen by this consumer.",
    &[],
);
pub static KAFKA_REVOKES: Def = counter(
    "earshot_kafka_revokes_total",
    "Partition revokes, by whether in-flight work drained before the drain timeout (\"false\": it is redelivered).",
    &["drained"],
);
pub static KAFKA_REVOKE_WAIT: Def = counter_seconds(
    "earshot_kafka_revoke_wait_seconds_total",
    "Time partition revokes spent waiting for in-flight work to drain.",
    &[],
);

// --- engine --------------------------------------------------------------------
pub static MODEL_INFO: Def = gauge(
    "earshot_model_info",
    "The loaded model (value 1): description, device and matmul mode.",
    &["model", "device", "matmul"],
);
pub static BUILD_INFO: Def = gauge("earshot_build_info", "earshot version (value 1).", &["version"]);
pub static READY: Def = gauge(
    "earshot_ready",
    "1 when /readyz answers 200: model loaded, partitions assigned, a broker reachable, the producer working, the pipeline not stalled.",
    &[],
);
pub static NOT_READY: Def = gauge(
    "earshot_not_ready",
    "1 for each reason /readyz answers 503 (model_loading, no_partitions, broker_unreachable, producer_failed, stalled), else 0.",
    &["reason"],
);
pub static HTTP_REQUESTS: Def = counter(
    "earshot_http_requests_total",
    "HTTP requests served, by route and status code.",
    &["route", "code"],
);

// --- process (conventional names) ------------------------------------------------
// Exported by the prometheus crate's process collector (Linux); declared here
// so every exported family has one declaration. The help texts are the crate's.
pub static PROCESS_CPU: Def = process(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds.",
    Kind::Counter,
);
pub static PROCESS_RSS: Def = process(
    "process_resident_memory_bytes",
    "Resident memory size in bytes.",
    Kind::Gauge,
);
pub static PROCESS_VSZ: Def = process(
    "process_virtual_memory_bytes",
    "Virtual memory size in bytes.",
    Kind::Gauge,
);
pub static PROCESS_FDS: Def = process("process_open_fds", "Number of open file descriptors.", Kind::Gauge);
pub static PROCESS_MAX_FDS: Def = process(
    "process_max_fds",
    "Maximum number of open file descriptors.",
    Kind::Gauge,
);
pub static PROCESS_THREADS: Def = process("process_threads", "Number of OS threads in the process.", Kind::Gauge);
pub static PROCESS_START: Def = process(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
    Kind::Gauge,
);

/// Every family (the exposition is sorted by name).
pub static ALL: &[&Def] = &[
    &STAGE_SECONDS,
    &EVENT_LATENCY,
    &EVENT_TO_ALERT,
    &BATCH_SIZE,
    &BATCH_TOKENS,
    &INFERENCE_TOKENS,
    &INFERENCE_BATCHES,
    &EVENTS_RECEIVED,
    &EVENTS_SCORED,
    &EVENTS_ACKED,
    &EVENTS_DEAD,
    &EVENTS_TOO_LATE,
    &EVENTS_TRUNCATED,
    &PIPELINE_IN_FLIGHT,
    &SENTIMENT,
    &CATEGORY,
    &SIGNAL_SCORE,
    &SIGNAL_RATIO,
    &SLA_OPEN,
    &SLA_OVERDUE,
    &DETECTOR_KEYS,
    &DETECTOR_ITEMS,
    &DETECTOR_WATERMARK,
    &ALERTS,
    &ALERTS_ACTIVE,
    &WEBHOOK_DELIVERED,
    &WEBHOOK_RETRIES,
    &WEBHOOK_FAILURES,
    &WEBHOOK_DROPPED,
    &WEBHOOK_BACKOFF,
    &OUTBOX_PENDING,
    &OUTBOX_DEPTH,
    &KAFKA_LAG,
    &KAFKA_ASSIGNED,
    &KAFKA_REBALANCES,
    &KAFKA_REVOKES,
    &KAFKA_REVOKE_WAIT,
    &MODEL_INFO,
    &BUILD_INFO,
    &READY,
    &NOT_READY,
    &HTTP_REQUESTS,
    &PROCESS_CPU,
    &PROCESS_RSS,
    &PROCESS_VSZ,
    &PROCESS_FDS,
    &PROCESS_MAX_FDS,
    &PROCESS_THREADS,
    &PROCESS_START,
];

/// Stage label values of [`STAGE_SECONDS`].
pub const STAGES: &[&str] = &["tokenize", "queue_wait", "inference", "detect", "deliver"];

/// Looks a family up by name.
pub fn def(name: &str) -> Option<&'static Def> {
    ALL.iter().copied().find(|d| d.name == name)
}
