//! Batch replay: a finite input (JSONL/CSV files, or a Kafka topic between two
//! times) through exactly the live engine's pipeline and detection callback
//! ([`crate::pipeline::engine::detect_fn`]), as fast as the hardware allows,
//! in event time. Alerts come only from that shared callback, so whatever the
//! live engine raises on the same stream, a replay raises too.
//!
//! Contract: input is streamed through a bounded channel and scored events
//! are not kept (constant memory apart from per-key per-step counts); the
//! output is deterministic for a given input and config (independent of batch
//! sizes and thread counts, because the pipeline re-sequences before
//! detection). A replay never commits Kafka offsets and delivers alerts
//! nowhere unless the caller asks for it.

pub mod incidents;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::alert::AlertOut;
use crate::config::Config;
use crate::ingest::RawMessage;
use crate::model;
use crate::pipeline::engine::{offline_detect, run_offline};
use crate::pipeline::sink::Collected;
use crate::pipeline::{Dead, Detected, PipelineError, PipelineStats, Sink};
use crate::types::{Dim, EventTime, ScoredEvent, Sentiment};

/// Errors of replay inputs and outputs.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("invalid time `{0}`: use RFC 3339 (2026-11-20T00:00:00Z) or relative (-7d, -12h, -30m, now)")]
    Time(String),
    #[error("cannot read incidents {path} line {line}: {message}")]
    Incident { path: String, line: usize, message: String },
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Parses `--from`/`--to`: RFC 3339, epoch milliseconds, `now`, or relative
/// to `now_ms` (`-7d`, `-12h`, `-30m`, `-45s`, `-2w`).
pub fn parse_time(s: &str, now_ms: i64) -> Result<EventTime, ReplayError> {
    let s = s.trim();
    if s == "now" {
        return Ok(now_ms);
    }
    if let Some(rel) = s.strip_prefix('-') {
        let (num, unit) = rel.split_at(rel.len().saturating_sub(1));
        let n: i64 = num.parse().map_err(|_| ReplayError::Time(s.into()))?;
        let ms = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return Err(ReplayError::Time(s.into())),
        };
        return Ok(now_ms - n * ms);
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    earshot_core::time::parse_rfc3339(s).ok_or_else(|| ReplayError::Time(s.into()))
}

/// Live progress for a progress bar (read from another thread).
#[derive(Debug, Default)]
pub struct Progress {
    /// Event time of the last event the detector saw (ms; 0 before the first).
    pub event_time: AtomicI64,
    /// Units of input consumed (bytes of files or Kafka messages) and total.
    pub done_units: AtomicU64,
    pub total_units: AtomicU64,
}

/// Counts of one (key, step) cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    pub total: u32,
    pub negative: u32,
}

/// What the replay layer observes besides alerts: per-key per-step counts for
/// every detector rollup, language and category mix, event-time range.
#[derive(Debug)]
pub struct Observer {
    pub step: i64,
    pub rollups: Vec<Vec<Dim>>,
    /// Rollup key (as `SignalKey` prints it) → step start → counts.
    pub series: HashMap<String, BTreeMap<EventTime, Cell>>,
    pub langs: BTreeMap<String, Cell>,
    pub categories: BTreeMap<String, Cell>,
    pub first: Option<EventTime>,
    pub last: Option<EventTime>,
    pub events: u64,
    pub too_late: u64,
}

use crate::detect::key_for as key_of;

impl Observer {
    pub fn new(cfg: &crate::detect::DetectConfig) -> Self {
        Self {
            step: cfg.step.max(1),
            rollups: cfg.rollups.clone(),
            series: HashMap::new(),
            langs: BTreeMap::new(),
            categories: BTreeMap::new(),
            first: None,
            last: None,
            events: 0,
            too_late: 0,
        }
    }

    fn observe(&mut self, se: &ScoredEvent, det: &Detected) {
        if se.event.reply_to.is_some() {
            // A reply message: no text, no scores, not part of the volume.
            return;
        }
        self.events += 1;
        if det.too_late {
            self.too_late += 1;
        }
        let t = se.event.event_time;
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
        let neg = u32::from(se.scored.sentiment == Sentiment::Negative);
        let bump = |c: &mut Cell| {
            c.total += 1;
            c.negative += neg;
        };
        let lang = se.event.lang.clone().unwrap_or_else(|| se.scored.lang.clone());
        bump(self.langs.entry(lang).or_default());
        bump(
            self.categories
                .entry(se.scored.category.as_str().to_string())
                .or_default(),
        );
        let bucket = t.div_euclid(self.step) * self.step;
        for dims in &self.rollups {
            if let Some(k) = key_of(se, dims) {
                bump(self.series.entry(k.to_string()).or_default().entry(bucket).or_default());
            }
        }
    }

    /// Keys of the top-level rollup (the first in `detect.rollups`), sorted.
    pub fn top_keys(&self) -> Vec<String> {
        let Some(top) = self.rollups.first() else {
            return Vec::new();
        };
        let mut keys: Vec<String> = self
            .series
            .keys()
            .filter(|k| {
                k.split('/').count() == top.len() && top.iter().all(|d| k.contains(&format!("{}=", d.as_str())))
            })
            .cloned()
            .collect();
        keys.sort();
        keys
    }
}

/// Everything a replay produced.
#[derive(Debug)]
pub struct Outcome {
    pub alerts: Vec<AlertOut>,
    pub dead: Vec<Dead>,
    pub observer: Observer,
    pub received: u64,
    pub scored: u64,
}

/// Runs `input` to its end through the live pipeline and detection callback
/// with an already loaded model. `on_alert` sees each alert as it is raised.
pub async fn run(
    cfg: &Config,
    loaded: model::Loaded,
    input: mpsc::Receiver<RawMessage>,
    stats: Arc<PipelineStats>,
    progress: Arc<Progress>,
    on_alert: impl Fn(&AlertOut) + Send + 'static,
) -> Result<Outcome, ReplayError> {
    let collected = Arc::new(Mutex::new(Collected::default()));
    let observer = Arc::new(Mutex::new(Observer::new(&cfg.detect)));
    let mut detect = offline_detect(cfg, on_alert);
    let obs = observer.clone();
    let observed = move |se: &ScoredEvent| {
        let det = detect(se);
        obs.lock().unwrap_or_else(|e| e.into_inner()).observe(se, &det);
        progress.event_time.store(se.event.event_time, Ordering::Relaxed);
        det
    };
    run_offline(
        cfg,
        loaded,
        input,
        Sink::Discard(collected.clone()),
        stats.clone(),
        observed,
    )
    .await?;
    let collected = std::mem::take(&mut *collected.lock().unwrap_or_else(|e| e.into_inner()));
    let observer = Arc::try_unwrap(observer)
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .unwrap_or_else(|a| {
            let mut g = a.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *g, Observer::new(&cfg.detect))
        });
    Ok(Outcome {
        alerts: collected.alerts,
        dead: collected.dead,
        observer,
        received: stats.received.load(Ordering::Relaxed),
        scored: stats.scored.load(Ordering::Relaxed),
    })
}

/// Streams files one after another into `tx` on a blocking thread.
pub fn spawn_files(
    paths: Vec<PathBuf>,
    tx: mpsc::Sender<RawMessage>,
    progress: Arc<Progress>,
) -> std::thread::JoinHandle<Result<u64, crate::ingest::IngestError>> {
    let total: u64 = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    progress.total_units.store(total, Ordering::Relaxed);
    std::thread::spawn(move || {
        let mut sent = 0;
        let mut before = 0u64;
        for p in &paths {
            let bytes = AtomicU64::new(0);
            let done = std::sync::atomic::AtomicBool::new(false);
            let r = std::thread::scope(|s| {
                s.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        progress
                            .done_units
                            .store(before + bytes.load(Ordering::Relaxed), Ordering::Relaxed);
                        std::thread::sleep(std::time::Duration::from_millis(200));
                    }
                });
                let r = crate::ingest::file::stream_file(p, &tx, &bytes);
                done.store(true, Ordering::Relaxed);
                r
            });
            sent += r?;
            before += std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            progress.done_units.store(before, Ordering::Relaxed);
        }
        Ok(sent)
    })
}

/// An incident window to score the detector against (`--incidents`).
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub start: EventTime,
    pub end: EventTime,
    /// `dim=value` pairs, e.g. `brand=Voltra/product=X2 Power Bank`.
    pub key: Vec<(String, String)>,
    pub label: String,
}

/// Reads incidents from JSONL (`{"start", "end", "key"}`) or CSV
/// (`start,end,key` header); times RFC 3339 or epoch ms.
pub fn read_incidents(path: &std::path::Path) -> Result<Vec<Incident>, ReplayError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Io {
        path: name.clone(),
        source,
    })?;
    let err = |line: usize, message: String| ReplayError::Incident {
        path: name.clone(),
        line,
        message,
    };
    let csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        if l.trim().is_empty() || (csv && i == 0) {
            continue;
        }
        let (s, e, k) = if csv {
            let f: Vec<&str> = l.splitn(3, ',').map(str::trim).collect();
            if f.len() != 3 {
                return Err(err(line, "expected start,end,key".into()));
            }
            (f[0].to_string(), f[1].to_string(), f[2].trim_matches('"').to_string())
        } else {
            let v: serde_json::Value = serde_json::from_str(l).map_err(|e| err(line, e.to_string()))?;
            let g = |f: &str| match &v[f] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            match (g("start"), g("end"), g("key")) {
                (Some(s), Some(e), Some(k)) => (s, e, k),
                _ => return Err(err(line, "expected fields start, end, key".into())),
            }
        };
        let t = |x: &str| parse_time(x, 0).map_err(|e| err(line, e.to_string()));
        let key: Vec<(String, String)> = k
            .split('/')
            .filter_map(|p| p.split_once('='))
            .map(|(d, v)| (d.trim().to_string(), v.trim().to_string()))
            .collect();
        if key.is_empty() {
            return Err(err(line, format!("key `{k}` is not dim=value[/dim=value]")));
        }
        out.push(Incident {
            start: t(&s)?,
            end: t(&e)?,
            key,
            label: k,
        });
    }
    Ok(out)
}

/// An alert reduced to what scoring and the report need.
#[derive(Debug, Clone)]
pub struct AlertView {
    pub rule: String,
    pub key: String,
    pub labels: Vec<(String, String)>,
    pub status: String,
    pub severity: String,
    pub at: EventTime,
    pub window_start: EventTime,
    pub summary: String,
    pub crisis: bool,
}

impl AlertView {
    pub fn of(a: &AlertOut) -> Self {
        let p = &a.payload;
        let s = |f: &str| p[f].as_str().unwrap_or_default().to_string();
        let time = |f: &str| {
            p["signal"][f]
                .as_i64()
                .or_else(|| {
                    earshot_core::time::parse_rfc3339(
                        p[if f == "window_end" { "window_end" } else { "starts_at" }].as_str()?,
                    )
                })
                .unwrap_or_default()
        };
        let labels = p["labels"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let severity = s("severity");
        Self {
            rule: s("rule"),
            key: s("key"),
            labels,
            status: if s("status").is_empty() {
                "firing".into()
            } else {
                s("status")
            },
            crisis: severity != "info",
            severity,
            at: time("window_end"),
            window_start: time("window_start"),
            summary: a.summary.clone(),
        }
    }

    fn matches(&self, inc: &Incident, slack: i64) -> bool {
        let mut shared = 0;
        for (d, v) in &inc.key {
            if let Some((_, av)) = self.labels.iter().find(|(k, _)| k == d) {
                if av != v {
                    return false;
                }
                shared += 1;
            }
        }
        shared > 0 && self.at >= inc.start && self.at <= inc.end + slack
    }
}

/// Detection quality against incident windows.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentScore {
    /// Per incident: the first matching alert's delay (ms), if detected.
    pub delays: Vec<Option<i64>>,
    pub crisis_alerts: usize,
    pub true_alerts: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

/// An alert is a true positive if it is a crisis alert (firing) that matches
/// an incident's key on every shared label and falls between its start and
/// `slack` after its end.
pub fn score_incidents(alerts: &[AlertView], incidents: &[Incident], slack: i64) -> IncidentScore {
    let crisis: Vec<&AlertView> = alerts.iter().filter(|a| a.crisis && a.status == "firing").collect();
    let delays: Vec<Option<i64>> = incidents
        .iter()
        .map(|inc| {
            crisis
                .iter()
                .filter(|a| a.matches(inc, slack))
                .map(|a| a.at - inc.start)
                .min()
        })
        .collect();
    let true_alerts = crisis
        .iter()
        .filter(|a| incidents.iter().any(|i| a.matches(i, slack)))
        .count();
    IncidentScore {
        precision: (!crisis.is_empty()).then(|| true_alerts as f64 / crisis.len() as f64),
        recall: (!incidents.is_empty())
            .then(|| delays.iter().filter(|d| d.is_some()).count() as f64 / incidents.len() as f64),
        delays,
        crisis_alerts: crisis.len(),
        true_alerts,
    }
}

/// alerts.jsonl: one alert payload per line, in the order raised.
pub fn alerts_jsonl(alerts: &[AlertOut]) -> String {
    let mut s = String::new();
    for a in alerts {
        s.push_str(&serde_json::to_string(&a.payload).unwrap_or_default());
        s.push('\n');
    }
    s
}

/// windows.csv: per top-level key per detector step.
pub fn windows_csv(obs: &Observer, alerts: &[AlertView]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "window_start",
        "window_end",
        "key",
        "total",
        "negative",
        "negative_share",
        "alerts",
    ]);
    for key in obs.top_keys() {
        let pairs: Vec<(&str, &str)> = key.split('/').filter_map(|p| p.split_once('=')).collect();
        for (&t, c) in &obs.series[&key] {
            let n = alerts
                .iter()
                .filter(|a| a.at > t && a.at <= t + obs.step)
                .filter(|a| {
                    pairs
                        .iter()
                        .all(|(d, v)| a.labels.iter().any(|(k, av)| k == d && av == v))
                })
                .count();
            let _ = w.write_record([
                report::rfc3339(t),
                report::rfc3339(t + obs.step),
                key.clone(),
                c.total.to_string(),
                c.negative.to_string(),
                format!("{:.4}", f64::from(c.negative) / f64::from(c.total.max(1))),
                n.to_string(),
            ]);
        }
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}
