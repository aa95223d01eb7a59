//! Every metric earshot exports, declared in one place ([`ALL`]), a small
//! registry that records them, and a writer for the Prometheus text
//! exposition format (version 0.0.4).
//!
//! Contract:
//! * Names follow `earshot_<what>_<unit>[_total]` in base units (seconds,
//!   bytes); process metrics use the conventional `process_*` names.
//! * Labels come from fixed sets (stage, reason, rule, severity, status,
//!   sentiment, category, sink, topic/partition) or are capped: at most
//!   [`MAX_BRANDS`] brand values and [`MAX_LANGUAGES`] language values are
//!   admitted (first come), the rest are reported as `other`. No event, SKU
//!   or product ids ever become label values.
//! * Histograms have explicit buckets for the `_bucket` series and an
//!   hdrhistogram beside them, so [`Registry::quantiles`] gives exact
//!   p50/p99/p999 (3 significant digits) for `/stats` and the replay report.
//! * Callers record per batch where they can; the registry takes one lock per
//!   call. Nothing here knows about the domain: `pipeline` and `server` record,
//!   `model` and `detect` never do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Brand label values admitted before new brands are reported as `other`.
pub const MAX_BRANDS: usize = 50;
/// Language label values admitted before new languages are reported as `other`.
pub const MAX_LANGUAGES: usize = 24;
/// The label value that stands for every value beyond a cap.
pub const OTHER: &str = "other";

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
}

const fn counter(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Def {
    Def {
        name,
        help,
        kind: Kind::Counter,
        labels,
        buckets: &[],
        hdr_scale: 1.0,
    }
}

const fn gauge(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Def {
    Def {
        name,
        help,
        kind: Kind::Gauge,
        labels,
        buckets: &[],
        hdr_scale: 1.0,
    }
}

const fn histogram(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    hdr_scale: f64,
) -> Def {
    Def {
        name,
        help,
        kind: Kind::Histogram,
        labels,
        buckets,
        hdr_scale,
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
pub const STAGE_SECONDS: Def = histogram(
    "earshot_stage_duration_seconds",
    "Time spent per stage: tokenize (one chunk of texts), queue_wait (a batch from its first text tokenized to inference start), inference (one batch forward + heads), detect (one event), deliver (one event's outputs acknowledged by the sink).",
    &["stage"],
    SECONDS_BUCKETS,
    1e6,
);
pub const EVENT_LATENCY: Def = histogram(
    "earshot_event_latency_seconds",
    "Wall time from a message entering the pipeline to its effects being acknowledged (end to end, per event).",
    &[],
    SECONDS_BUCKETS,
    1e6,
);
pub const EVENT_TO_ALERT: Def = histogram(
    "earshot_event_to_alert_seconds",
    "Wall time from the message that triggered an alert entering the pipeline to the alert leaving the detector.",
    &[],
    SECONDS_BUCKETS,
    1e6,
);
pub const BATCH_SIZE: Def = histogram(
    "earshot_inference_batch_size",
    "Texts per inference batch.",
    &[],
    BATCH_BUCKETS,
    1.0,
);
pub const BATCH_TOKENS: Def = histogram(
    "earshot_inference_batch_tokens",
    "Padded tokens (batch x longest text) per inference batch.",
    &[],
    TOKEN_BUCKETS,
    1.0,
);
pub const INFERENCE_TOKENS: Def = counter(
    "earshot_inference_tokens_total",
    "Tokens fed to the model: kind=real (text tokens) or padded (including padding).",
    &["kind"],
);
pub const INFERENCE_BATCHES: Def = counter(
    "earshot_inference_batches_total",
    "Inference batches by outcome (ok, error).",
    &["outcome"],
);
pub const EVENTS_RECEIVED: Def = counter(
    "earshot_events_received_total",
    "Messages that entered the pipeline.",
    &[],
);
pub const EVENTS_SCORED: Def = counter(
    "earshot_events_scored_total",
    "Events classified and passed to the detector.",
    &[],
);
pub const EVENTS_ACKED: Def = counter(
    "earshot_events_acked_total",
    "Messages whose effects were delivered and whose offset was stored.",
    &[],
);
pub const EVENTS_DEAD: Def = counter(
    "earshot_events_dead_lettered_total",
    "Messages sent to the dead-letter topic, by reason code.",
    &["reason"],
);
pub const EVENTS_TOO_LATE: Def = counter(
    "earshot_events_too_late_total",
    "Events scored and delivered but behind the detector's allowed lateness (not in its statistics).",
    &[],
);
pub const EVENTS_TRUNCATED: Def = counter("earshot_events_truncated_total", "Texts cut to the model window.", &[]);
pub const PIPELINE_IN_FLIGHT: Def = gauge(
    "earshot_pipeline_in_flight",
    "Messages received but not yet acknowledged.",
    &[],
);

// --- brand reputation (bounded labels) ---------------------------------------
pub const SENTIMENT: Def = counter(
    "earshot_sentiment_events_total",
    "Scored events by brand (capped, overflow=other), language (capped) and sentiment.",
    &["brand", "language", "sentiment"],
);
pub const CATEGORY: Def = counter(
    "earshot_category_events_total",
    "Scored events by brand (capped), complaint category and sentiment.",
    &["brand", "category", "sentiment"],
);
pub const SIGNAL_SCORE: Def = gauge(
    "earshot_detector_signal_score",
    "Strength of the latest detector signal per brand and rule: -log10(p-value), capped at 50.",
    &["brand", "rule"],
);
pub const SIGNAL_RATIO: Def = gauge(
    "earshot_detector_signal_ratio",
    "Observed / expected count of the latest detector signal per brand and rule.",
    &["brand", "rule"],
);
pub const SLA_OPEN: Def = gauge(
    "earshot_detector_sla_open",
    "Unreplied negative events per brand at the detector's watermark.",
    &["brand"],
);
pub const SLA_OVERDUE: Def = gauge(
    "earshot_detector_sla_overdue",
    "Unreplied negative events per brand older than the response SLA (detect.sla_hours).",
    &["brand"],
);
pub const DETECTOR_KEYS: Def = gauge("earshot_detector_tracked_keys", "Keys the detector tracks.", &[]);
pub const DETECTOR_ITEMS: Def = counter(
    "earshot_detector_items_total",
    "Detector counters by kind (events, late_accepted, too_late, spam_near_duplicate, spam_author, contradictions, retracted, keys_created, keys_expired, keys_over_cap, windows_evaluated, replies, signals).",
    &["kind"],
);
pub const DETECTOR_WATERMARK: Def = gauge(
    "earshot_detector_watermark_seconds",
    "The detector's event-time watermark, Unix seconds.",
    &[],
);

// --- alerts and delivery -----------------------------------------------------
pub const ALERTS: Def = counter(
    "earshot_alerts_total",
    "Alert messages that left the detector/alert stage, by rule, severity and status (firing, resolved).",
    &["rule", "severity", "status"],
);
pub const ALERTS_ACTIVE: Def = gauge(
    "earshot_alerts_active",
    "Alerts currently firing, by rule, severity and brand (capped).",
    &["rule", "severity", "brand"],
);
pub const WEBHOOK_DELIVERED: Def = counter(
    "earshot_webhook_deliveries_total",
    "Alert notifications delivered, by sink.",
    &["sink", "kind"],
);
pub const WEBHOOK_RETRIES: Def = counter(
    "earshot_webhook_retries_total",
    "Delivery retries, by sink.",
    &["sink", "kind"],
);
pub const WEBHOOK_FAILURES: Def = counter(
    "earshot_webhook_failures_total",
    "Failed delivery attempts, by sink.",
    &["sink", "kind"],
);
pub const WEBHOOK_DROPPED: Def = counter(
    "earshot_webhook_dropped_total",
    "Notifications given up on (non-retryable error or retries exhausted), by sink.",
    &["sink", "kind"],
);
pub const WEBHOOK_BACKOFF: Def = counter(
    "earshot_webhook_backoff_seconds_total",
    "Time spent waiting between retries, by sink.",
    &["sink", "kind"],
);
pub const OUTBOX_PENDING: Def = gauge(
    "earshot_outbox_pending",
    "Outbox entries waiting for one sink.",
    &["sink"],
);
pub const OUTBOX_DEPTH: Def = gauge(
    "earshot_outbox_depth",
    "Outbox entries not yet delivered to every sink.",
    &[],
);

// --- source --------------------------------------------------------------------
pub const KAFKA_LAG: Def = gauge(
    "earshot_kafka_consumer_lag_messages",
    "Messages in a partition not yet read by this consumer (high watermark - next offset), refreshed every 250 ms.",
    &["topic", "partition"],
);
pub const KAFKA_ASSIGNED: Def = gauge(
    "earshot_kafka_assigned_partitions",
    "Partitions assigned to this consumer.",
    &[],
);
pub const KAFKA_REBALANCES: Def = counter(
    "earshot_kafka_rebalances_total",
    "Consumer group rebalances seen by this consumer.",
    &[],
);

// --- engine --------------------------------------------------------------------
pub const MODEL_INFO: Def = gauge(
    "earshot_model_info",
    "The loaded model (value 1): description, device and matmul mode.",
    &["model", "device", "matmul"],
);
pub const BUILD_INFO: Def = gauge("earshot_build_info", "earshot version (value 1).", &["version"]);
pub const READY: Def = gauge(
    "earshot_ready",
    "1 when the model is loaded and the consumer has partitions assigned.",
    &[],
);
pub const HTTP_REQUESTS: Def = counter(
    "earshot_http_requests_total",
    "HTTP requests served, by route and status code.",
    &["route", "code"],
);

// --- process (conventional names) ------------------------------------------------
pub const PROCESS_CPU: Def = counter(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds.",
    &[],
);
pub const PROCESS_RSS: Def = gauge("process_resident_memory_bytes", "Resident memory size in bytes.", &[]);
pub const PROCESS_VSZ: Def = gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", &[]);
pub const PROCESS_FDS: Def = gauge("process_open_fds", "Number of open file descriptors.", &[]);
pub const PROCESS_MAX_FDS: Def = gauge("process_max_fds", "Maximum number of open file descriptors.", &[]);
pub const PROCESS_THREADS: Def = gauge("process_threads", "Number of OS threads.", &[]);
pub const PROCESS_START: Def = gauge(
    "process_start_time_seconds",
    "Start time of the process since the Unix epoch in seconds.",
    &[],
);

/// Every family, in exposition order.
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
    &MODEL_INFO,
    &BUILD_INFO,
    &READY,
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

/// A histogram series: bucket counts, sum, count, and the exact recorder.
#[derive(Debug, Clone)]
pub struct Hist {
    buckets: &'static [f64],
    scale: f64,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
    hdr: Histogram<u64>,
}

impl Hist {
    fn new(def: &'static Def) -> Self {
        Self {
            buckets: def.buckets,
            scale: def.hdr_scale,
            counts: vec![0; def.buckets.len()],
            sum: 0.0,
            count: 0,
            hdr: Histogram::new(3).expect("3 significant digits is a valid hdrhistogram precision"),
        }
    }

    fn record(&mut self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        if let Some(i) = self.buckets.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
        // Auto-resizing histogram: only a value beyond u64 could fail.
        let _ = self.hdr.record((v * self.scale).round() as u64);
    }

    /// The value at quantile `q` (0..=1) in the recorded unit.
    pub fn quantile(&self, q: f64) -> f64 {
        self.hdr.value_at_quantile(q) as f64 / self.scale
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn summary(&self) -> Quantiles {
        Quantiles {
            count: self.count,
            mean: if self.count == 0 {
                0.0
            } else {
                self.sum / self.count as f64
            },
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.hdr.max() as f64 / self.scale,
        }
    }
}

/// Exact quantiles of one histogram series (recorded unit: seconds or count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone)]
enum Value {
    Scalar(f64),
    Hist(Box<Hist>),
}

type SeriesKey = (&'static str, Vec<String>);

/// The recorded series. Cheap to share (`Arc`); every method takes one lock.
#[derive(Debug, Default)]
pub struct Registry {
    series: Mutex<BTreeMap<SeriesKey, Value>>,
    brands: Mutex<BTreeSet<String>>,
    languages: Mutex<BTreeSet<String>>,
}

fn key(def: &'static Def, labels: &[&str]) -> SeriesKey {
    debug_assert_eq!(def.labels.len(), labels.len(), "label values of {}", def.name);
    (def.name, labels.iter().map(|s| s.to_string()).collect())
}

fn capped(set: &Mutex<BTreeSet<String>>, cap: usize, value: &str) -> String {
    let mut s = set.lock().unwrap_or_else(|e| e.into_inner());
    if s.contains(value) {
        return value.to_string();
    }
    if s.len() < cap && value != OTHER {
        s.insert(value.to_string());
        return value.to_string();
    }
    OTHER.to_string()
}

impl Registry {
    /// The label value for a brand: itself while fewer than [`MAX_BRANDS`]
    /// brands were seen (or it was seen before), else `other`; empty → `none`.
    pub fn brand(&self, brand: Option<&str>) -> String {
        match brand.filter(|b| !b.is_empty()) {
            Some(b) => capped(&self.brands, MAX_BRANDS, b),
            None => "none".to_string(),
        }
    }

    /// The label value for a language code, capped like [`Registry::brand`].
    pub fn language(&self, lang: &str) -> String {
        capped(&self.languages, MAX_LANGUAGES, lang)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<SeriesKey, Value>> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds to a counter (or gauge).
    pub fn add(&self, def: &'static Def, labels: &[&str], v: f64) {
        let mut m = self.lock();
        if let Value::Scalar(x) = m.entry(key(def, labels)).or_insert(Value::Scalar(0.0)) {
            *x += v;
        }
    }

    /// Adds many increments of one family under one lock.
    pub fn add_many(&self, def: &'static Def, items: impl IntoIterator<Item = (Vec<String>, f64)>) {
        let mut m = self.lock();
        for (labels, v) in items {
            debug_assert_eq!(def.labels.len(), labels.len(), "label values of {}", def.name);
            if let Value::Scalar(x) = m.entry((def.name, labels)).or_insert(Value::Scalar(0.0)) {
                *x += v;
            }
        }
    }

    /// Sets a gauge (or a counter mirrored from an external cumulative count).
    pub fn set(&self, def: &'static Def, labels: &[&str], v: f64) {
        self.lock().insert(key(def, labels), Value::Scalar(v));
    }

    /// Replaces every series of a gauge family (values that disappeared go away).
    pub fn set_all(&self, def: &'static Def, items: impl IntoIterator<Item = (Vec<String>, f64)>) {
        let mut m = self.lock();
        m.retain(|(n, _), _| *n != def.name);
        for (labels, v) in items {
            m.insert((def.name, labels), Value::Scalar(v));
        }
    }

    /// Records one observation into a histogram.
    pub fn observe(&self, def: &'static Def, labels: &[&str], v: f64) {
        self.observe_many(def, labels, std::iter::once(v));
    }

    /// Records several observations into one histogram series under one lock.
    pub fn observe_many(&self, def: &'static Def, labels: &[&str], values: impl IntoIterator<Item = f64>) {
        let mut m = self.lock();
        let e = m
            .entry(key(def, labels))
            .or_insert_with(|| Value::Hist(Box::new(Hist::new(def))));
        if let Value::Hist(h) = e {
            for v in values {
                h.record(v);
            }
        }
    }

    /// A counter or gauge value (0 when never recorded).
    pub fn get(&self, def: &'static Def, labels: &[&str]) -> f64 {
        match self.lock().get(&key(def, labels)) {
            Some(Value::Scalar(x)) => *x,
            _ => 0.0,
        }
    }

    /// A copy of one histogram series.
    pub fn hist(&self, def: &'static Def, labels: &[&str]) -> Option<Hist> {
        match self.lock().get(&key(def, labels)) {
            Some(Value::Hist(h)) => Some((**h).clone()),
            _ => None,
        }
    }

    /// Exact quantiles of one histogram series.
    pub fn quantiles(&self, def: &'static Def, labels: &[&str]) -> Option<Quantiles> {
        self.hist(def, labels).map(|h| h.summary())
    }

    /// Quantiles per pipeline stage plus end-to-end and event→alert latency
    /// (seconds), for `/stats` and reports. Stages never observed are absent.
    pub fn latency_summary(&self) -> BTreeMap<String, Quantiles> {
        let mut out = BTreeMap::new();
        for s in STAGES {
            if let Some(q) = self.quantiles(&STAGE_SECONDS, &[s]) {
                out.insert(s.to_string(), q);
            }
        }
        if let Some(q) = self.quantiles(&EVENT_LATENCY, &[]) {
            out.insert("end_to_end".to_string(), q);
        }
        if let Some(q) = self.quantiles(&EVENT_TO_ALERT, &[]) {
            out.insert("event_to_alert".to_string(), q);
        }
        out
    }

    /// Writes every recorded series in the text exposition format, families
    /// in [`ALL`] order, each with its `# HELP` and `# TYPE` lines.
    pub fn render(&self, out: &mut String) {
        let m = self.lock();
        for def in ALL {
            let series: Vec<(&Vec<String>, &Value)> = m
                .range((def.name, Vec::new())..)
                .take_while(|((n, _), _)| *n == def.name)
                .map(|((_, l), v)| (l, v))
                .collect();
            if series.is_empty() {
                continue;
            }
            write_header(out, def);
            for (labels, v) in series {
                let pairs: Vec<(&str, &str)> = def
                    .labels
                    .iter()
                    .copied()
                    .zip(labels.iter().map(String::as_str))
                    .collect();
                match v {
                    Value::Scalar(x) => write_sample(out, def.name, "", &pairs, *x),
                    Value::Hist(h) => write_hist(out, def.name, &pairs, h),
                }
            }
        }
    }
}

/// `# HELP` and `# TYPE` lines.
pub fn write_header(out: &mut String, def: &Def) {
    let help = def.help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {} {}", def.name, help);
    let _ = writeln!(out, "# TYPE {} {}", def.name, def.kind.as_str());
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// One sample line: `name{a="x",b="y"} value`.
pub fn write_sample(out: &mut String, name: &str, suffix: &str, labels: &[(&str, &str)], v: f64) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, val)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(val));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", format_value(v));
}

fn write_hist(out: &mut String, name: &str, labels: &[(&str, &str)], h: &Hist) {
    let mut cum = 0u64;
    for (b, c) in h.buckets.iter().zip(&h.counts) {
        cum += c;
        let le = format_value(*b);
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        with_le.push(("le", &le));
        write_sample(out, name, "_bucket", &with_le, cum as f64);
    }
    let mut with_le: Vec<(&str, &str)> = labels.to_vec();
    with_le.push(("le", "+Inf"));
    write_sample(out, name, "_bucket", &with_le, h.count as f64);
    write_sample(out, name, "_sum", labels, h.sum);
    write_sample(out, name, "_count", labels, h.count as f64);
}

/// Process metrics from `/proc/self` (Linux); nothing elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub open_fds: f64,
    pub max_fds: f64,
    pub threads: f64,
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Reads the current process's figures; `None` off Linux or on a parse error.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may contain spaces) in parentheses.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state); field N is f[N - 3].
        let num = |n: usize| f.get(n - 3).and_then(|s| s.parse::<f64>().ok());
        let ticks = 100.0; // sysconf(_SC_CLK_TCK) is 100 on every Linux ABI we build for
        let page = 4096.0;
        let utime = num(14)?;
        let stime = num(15)?;
        let threads = num(20)?;
        let start_ticks = num(22)?;
        let vsize = num(23)?;
        let rss_pages = num(24)?;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok()))?;
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as f64)
            .unwrap_or(0.0);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse::<f64>().ok()))
            })
            .unwrap_or(0.0);
        Some(Self {
            cpu_seconds: (utime + stime) / ticks,
            resident_bytes: rss_pages * page,
            virtual_bytes: vsize,
            open_fds,
            max_fds,
            threads,
            start_time_seconds: boot + start_ticks / ticks,
        })
    }

    /// Writes the `process_*` families.
    pub fn render(&self, out: &mut String) {
        for (def, v) in [
            (&PROCESS_CPU, self.cpu_seconds),
            (&PROCESS_RSS, self.resident_bytes),
            (&PROCESS_VSZ, self.virtual_bytes),
            (&PROCESS_FDS, self.open_fds),
            (&PROCESS_MAX_FDS, self.max_fds),
            (&PROCESS_THREADS, self.threads),
            (&PROCESS_START, self.start_time_seconds),
        ] {
            write_header(out, def);
            write_sample(out, def.name, "", &[], v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let mut seen = BTreeSet::new();
        for d in ALL {
            assert!(seen.insert(d.name), "{} declared twice", d.name);
            assert!(
                d.name.starts_with("earshot_") || d.name.starts_with("process_"),
                "{}",
                d.name
            );
            assert_eq!(d.kind == Kind::Counter, d.name.ends_with("_total"), "{}", d.name);
            assert!(!d.labels.iter().any(|l| *l == "sku" || *l == "id" || *l == "product"));
            if d.kind == Kind::Histogram {
                assert!(!d.buckets.is_empty() && d.buckets.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }

    #[test]
    fn histograms_render_cumulative_buckets_and_exact_quantiles() {
        let r = Registry::default();
        r.observe_many(&STAGE_SECONDS, &["inference"], (1..=1000).map(|i| i as f64 / 1000.0));
        let q = r.quantiles(&STAGE_SECONDS, &["inference"]).unwrap();
        assert_eq!(q.count, 1000);
        assert!((q.p50 - 0.5).abs() < 0.001, "{q:?}");
        assert!((q.p99 - 0.99).abs() < 0.001, "{q:?}");
        assert!((q.p999 - 0.999).abs() < 0.001, "{q:?}");
        let mut s = String::new();
        r.render(&mut s);
        assert!(s.contains("# TYPE earshot_stage_duration_seconds histogram\n"));
        assert!(s.contains("earshot_stage_duration_seconds_bucket{stage=\"inference\",le=\"0.1\"} 100\n"));
        assert!(s.contains("earshot_stage_duration_seconds_bucket{stage=\"inference\",le=\"+Inf\"} 1000\n"));
        assert!(s.contains("earshot_stage_duration_seconds_count{stage=\"inference\"} 1000\n"));
    }

    #[test]
    fn brand_labels_are_capped() {
        let r = Registry::default();
        for i in 0..MAX_BRANDS {
            assert_eq!(r.brand(Some(&format!("b{i}"))), format!("b{i}"));
        }
        assert_eq!(r.brand(Some("late")), OTHER);
        assert_eq!(r.brand(Some("b3")), "b3");
        assert_eq!(r.brand(None), "none");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        write_sample(&mut s, "m", "", &[("a", "x\"y\\z\nw")], 1.5);
        assert_eq!(s, "m{a=\"x\\\"y\\\\z\\nw\"} 1.5\n");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
    }

    #[test]
    fn process_stats_are_read_on_linux() {
        if cfg!(target_os = "linux") {
            let p = ProcessStats::read().expect("/proc/self is readable");
            assert!(p.resident_bytes > 0.0 && p.threads >= 1.0 && p.start_time_seconds > 1.0e9);
        }
    }
}
