//! The registry: one typed `prometheus` vector per declaration in
//! [`super::ALL`] (`IntCounterVec`, `CounterVec`, `GaugeVec`, `HistogramVec`)
//! in a private `prometheus::Registry`, the process collector, and an
//! hdrhistogram beside every histogram series for exact quantiles.
//!
//! * Label values are checked by the `prometheus` crate (count per family);
//!   a mismatch is an [`MetricsError`], logged once per family, and the
//!   observation is dropped (never a malformed exposition, never a panic).
//! * No lock is shared between families: counters and gauges are atomics
//!   behind the crate's per-vector child map, each histogram series has its
//!   own mutex for its hdrhistogram. Looking up an existing series allocates
//!   nothing; histogram series (fixed label sets) are cached here.
//! * Counters mirrored from cumulative counts kept elsewhere ([`Registry::set`])
//!   and gauge families replaced whole ([`Registry::set_all`]) are updated
//!   under one exporter lock, which only scrape-time code takes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use prometheus::core::Collector;
use prometheus::{CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, TextEncoder};

use super::hist::{clean, Hist, Quantiles};
use super::{Def, Kind, ALL, EVENT_LATENCY, EVENT_TO_ALERT, STAGES, STAGE_SECONDS};

/// Brand label values admitted before new brands are reported as `other`.
pub const MAX_BRANDS: usize = 50;
/// Language label values admitted before new languages are reported as `other`.
pub const MAX_LANGUAGES: usize = 24;
/// The label value that stands for every value beyond a cap.
pub const OTHER: &str = "other";

/// What recording into the registry can get wrong (programming errors: the
/// call sites pass declared families and fixed label sets).
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{name} is not declared in earshot::metrics::ALL")]
    Undeclared { name: &'static str },
    #[error("{name}: {source}")]
    Labels {
        name: &'static str,
        #[source]
        source: prometheus::Error,
    },
    #[error("{name} is a {kind}: {op} does not apply")]
    Kind {
        name: &'static str,
        kind: &'static str,
        op: &'static str,
    },
    #[error("{name}: a counter cannot change by {value}")]
    Value { name: &'static str, value: f64 },
}

/// One histogram series: the `prometheus` child and the exact recorder.
struct Series {
    labels: Box<[String]>,
    prom: prometheus::Histogram,
    hdr: Mutex<Hist>,
}

enum Store {
    IntCounter(IntCounterVec),
    Counter(CounterVec),
    Gauge(GaugeVec),
    Histogram(HistogramVec, RwLock<Vec<Arc<Series>>>),
    /// `process_*`: the crate's process collector exports it.
    Process,
}

struct Family {
    def: &'static Def,
    store: Store,
    /// Set once the first error of this family was logged.
    warned: AtomicBool,
}

/// The recorded series. Share it (`Arc`); every method takes `&self`.
pub struct Registry {
    prom: prometheus::Registry,
    /// In [`ALL`] order.
    families: Vec<Family>,
    /// Serialises [`Registry::set`] on counters and [`Registry::set_all`].
    export: Mutex<()>,
    brands: Mutex<BTreeSet<String>>,
    languages: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("families", &self.families.len())
            .finish_non_exhaustive()
    }
}

fn build(def: &'static Def) -> prometheus::Result<(Store, Option<Box<dyn Collector>>)> {
    let opts = || Opts::new(def.name, def.help);
    Ok(match def.kind {
        _ if def.process => (Store::Process, None),
        Kind::Counter if def.fractional => {
            let v = CounterVec::new(opts(), def.labels)?;
            (Store::Counter(v.clone()), Some(Box::new(v)))
        }
        Kind::Counter => {
            let v = IntCounterVec::new(opts(), def.labels)?;
            (Store::IntCounter(v.clone()), Some(Box::new(v)))
        }
        Kind::Gauge => {
            let v = GaugeVec::new(opts(), def.labels)?;
            (Store::Gauge(v.clone()), Some(Box::new(v)))
        }
        Kind::Histogram => {
            let o = HistogramOpts::new(def.name, def.help).buckets(def.buckets.to_vec());
            let v = HistogramVec::new(o, def.labels)?;
            (Store::Histogram(v.clone(), RwLock::new(Vec::new())), Some(Box::new(v)))
        }
    })
}

impl Default for Registry {
    fn default() -> Self {
        let prom = prometheus::Registry::new();
        let mut families = Vec::with_capacity(ALL.len());
        for def in ALL {
            // Names, labels and buckets are fixed: a failure here is a bad
            // declaration, caught by the unit tests.
            let (store, collector) = build(def).unwrap_or_else(|e| panic!("metric {}: {e}", def.name));
            if let Some(c) = collector {
                prom.register(c).unwrap_or_else(|e| panic!("metric {}: {e}", def.name));
            }
            families.push(Family {
                def,
                store,
                warned: AtomicBool::new(false),
            });
        }
        #[cfg(target_os = "linux")]
        prom.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("the process collector registers once");
        Self {
            prom,
            families,
            export: Mutex::new(()),
            brands: Mutex::new(BTreeSet::new()),
            languages: Mutex::new(BTreeSet::new()),
        }
    }
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

/// Label values as `&str`s without allocating (families have few labels).
fn with_strs<R>(labels: &[String], f: impl FnOnce(&[&str]) -> R) -> R {
    const MAX: usize = 8;
    if labels.len() > MAX {
        let v: Vec<&str> = labels.iter().map(String::as_str).collect();
        return f(&v);
    }
    let mut buf = [""; MAX];
    for (b, l) in buf.iter_mut().zip(labels) {
        *b = l.as_str();
    }
    f(&buf[..labels.len()])
}

fn count(def: &'static Def, v: f64) -> Result<u64, MetricsError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v.round() as u64)
    } else {
        Err(MetricsError::Value {
            name: def.name,
            value: v,
        })
    }
}

fn labels_err(def: &'static Def) -> impl FnOnce(prometheus::Error) -> MetricsError {
    move |source| MetricsError::Labels { name: def.name, source }
}

fn kind_err(def: &'static Def, op: &'static str) -> MetricsError {
    MetricsError::Kind {
        name: def.name,
        kind: if def.process {
            "process metric"
        } else {
            def.kind.as_str()
        },
        op,
    }
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

    fn family(&self, def: &'static Def) -> Result<&Family, MetricsError> {
        self.families
            .iter()
            .find(|f| std::ptr::eq(f.def, def))
            .or_else(|| self.families.iter().find(|f| f.def.name == def.name))
            .ok_or(MetricsError::Undeclared { name: def.name })
    }

    /// Logs the first error of each family (later ones of the same family are
    /// the same bug); the observation is dropped.
    fn report(&self, def: &'static Def, r: Result<(), MetricsError>) {
        let Err(e) = r else { return };
        let first = self
            .family(def)
            .map_or(true, |f| !f.warned.swap(true, Ordering::Relaxed));
        if first {
            tracing::error!(error = %e, "metric not recorded (further errors of this family are not logged)");
        }
    }

    fn try_add(&self, def: &'static Def, labels: &[&str], v: f64) -> Result<(), MetricsError> {
        match &self.family(def)?.store {
            Store::IntCounter(vec) => {
                let n = count(def, v)?;
                vec.get_metric_with_label_values(labels)
                    .map_err(labels_err(def))?
                    .inc_by(n);
            }
            Store::Counter(vec) => {
                count(def, v)?;
                vec.get_metric_with_label_values(labels)
                    .map_err(labels_err(def))?
                    .inc_by(v);
            }
            Store::Gauge(vec) => vec
                .get_metric_with_label_values(labels)
                .map_err(labels_err(def))?
                .add(v),
            Store::Histogram(..) | Store::Process => return Err(kind_err(def, "add")),
        }
        Ok(())
    }

    /// Adds to a counter (or gauge).
    pub fn add(&self, def: &'static Def, labels: &[&str], v: f64) {
        self.report(def, self.try_add(def, labels, v));
    }

    /// Adds many increments of one family.
    pub fn add_many(&self, def: &'static Def, items: impl IntoIterator<Item = (Vec<String>, f64)>) {
        for (labels, v) in items {
            with_strs(&labels, |l| self.add(def, l, v));
        }
    }

    fn try_set(&self, def: &'static Def, labels: &[&str], v: f64) -> Result<(), MetricsError> {
        match &self.family(def)?.store {
            Store::Gauge(vec) => vec
                .get_metric_with_label_values(labels)
                .map_err(labels_err(def))?
                .set(v),
            Store::IntCounter(vec) => {
                let want = count(def, v)?;
                let c = vec.get_metric_with_label_values(labels).map_err(labels_err(def))?;
                let _g = self.export.lock().unwrap_or_else(|e| e.into_inner());
                let got = c.get();
                if want < got {
                    // The source restarted its count: a counter reset.
                    c.reset();
                    c.inc_by(want);
                } else {
                    c.inc_by(want - got);
                }
            }
            Store::Counter(vec) => {
                count(def, v)?;
                let c = vec.get_metric_with_label_values(labels).map_err(labels_err(def))?;
                let _g = self.export.lock().unwrap_or_else(|e| e.into_inner());
                let got = c.get();
                if v < got {
                    c.reset();
                    c.inc_by(v);
                } else if v > got {
                    c.inc_by(v - got);
                }
            }
            Store::Histogram(..) | Store::Process => return Err(kind_err(def, "set")),
        }
        Ok(())
    }

    /// Sets a gauge, or a counter mirrored from a cumulative count kept
    /// elsewhere (it moves by the difference; a smaller value is a reset).
    pub fn set(&self, def: &'static Def, labels: &[&str], v: f64) {
        self.report(def, self.try_set(def, labels, v));
    }

    fn try_set_all(
        &self,
        def: &'static Def,
        items: impl IntoIterator<Item = (Vec<String>, f64)>,
    ) -> Result<(), MetricsError> {
        let Store::Gauge(vec) = &self.family(def)?.store else {
            return Err(kind_err(def, "set_all"));
        };
        let _g = self.export.lock().unwrap_or_else(|e| e.into_inner());
        let mut keep = HashSet::new();
        for (labels, v) in items {
            with_strs(&labels, |l| vec.get_metric_with_label_values(l).map(|g| g.set(v))).map_err(labels_err(def))?;
            keep.insert(labels);
        }
        // Drop the series that are not in `items` (never a moment without
        // the ones that stay, so a concurrent scrape sees no gap).
        for mf in vec.collect() {
            for m in mf.get_metric() {
                let by_name: BTreeMap<&str, &str> = m.get_label().iter().map(|p| (p.name(), p.value())).collect();
                let values: Vec<String> = def
                    .labels
                    .iter()
                    .map(|n| by_name.get(n).copied().unwrap_or_default().to_string())
                    .collect();
                if !keep.contains(&values) {
                    with_strs(&values, |l| vec.remove_label_values(l)).map_err(labels_err(def))?;
                }
            }
        }
        Ok(())
    }

    /// Replaces every series of a gauge family (values that disappeared go away).
    pub fn set_all(&self, def: &'static Def, items: impl IntoIterator<Item = (Vec<String>, f64)>) {
        self.report(def, self.try_set_all(def, items));
    }

    /// The cached series of a histogram (created on first use; the crate
    /// checks the label count then).
    fn series(&self, def: &'static Def, labels: &[&str]) -> Result<Arc<Series>, MetricsError> {
        let Store::Histogram(vec, cache) = &self.family(def)?.store else {
            return Err(kind_err(def, "observe"));
        };
        let matches = |s: &&Arc<Series>| s.labels.iter().map(String::as_str).eq(labels.iter().copied());
        if let Some(s) = cache.read().unwrap_or_else(|e| e.into_inner()).iter().find(matches) {
            return Ok(s.clone());
        }
        let mut w = cache.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = w.iter().find(matches) {
            return Ok(s.clone());
        }
        let prom = vec.get_metric_with_label_values(labels).map_err(labels_err(def))?;
        let s = Arc::new(Series {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            prom,
            hdr: Mutex::new(Hist::new(def.hdr_scale)),
        });
        w.push(s.clone());
        Ok(s)
    }

    /// Records one observation into a histogram.
    pub fn observe(&self, def: &'static Def, labels: &[&str], v: f64) {
        self.observe_many(def, labels, std::iter::once(v));
    }

    /// Records several observations into one histogram series (one lock of
    /// its hdrhistogram). With no values it creates the series at zero.
    pub fn observe_many(&self, def: &'static Def, labels: &[&str], values: impl IntoIterator<Item = f64>) {
        let s = match self.series(def, labels) {
            Ok(s) => s,
            Err(e) => return self.report(def, Err(e)),
        };
        let mut hdr = s.hdr.lock().unwrap_or_else(|e| e.into_inner());
        for v in values {
            let v = clean(v);
            s.prom.observe(v);
            hdr.record(v);
        }
    }

    /// A counter or gauge value (0 when never recorded; never creates a series).
    pub fn get(&self, def: &'static Def, labels: &[&str]) -> f64 {
        let Ok(f) = self.family(def) else { return 0.0 };
        let mfs = match &f.store {
            Store::IntCounter(v) => v.collect(),
            Store::Counter(v) => v.collect(),
            Store::Gauge(v) => v.collect(),
            Store::Histogram(..) | Store::Process => return 0.0,
        };
        for mf in &mfs {
            for m in mf.get_metric() {
                let by_name: BTreeMap<&str, &str> = m.get_label().iter().map(|p| (p.name(), p.value())).collect();
                let hit = def.labels.len() == labels.len()
                    && def.labels.iter().zip(labels).all(|(n, v)| by_name.get(n) == Some(v));
                if hit {
                    return match def.kind {
                        Kind::Counter => m.get_counter().get_value(),
                        _ => m.get_gauge().get_value(),
                    };
                }
            }
        }
        0.0
    }

    /// A copy of one histogram series' exact recorder.
    pub fn hist(&self, def: &'static Def, labels: &[&str]) -> Option<Hist> {
        let Store::Histogram(_, cache) = &self.family(def).ok()?.store else {
            return None;
        };
        let cache = cache.read().unwrap_or_else(|e| e.into_inner());
        let s = cache
            .iter()
            .find(|s| s.labels.iter().map(String::as_str).eq(labels.iter().copied()))?;
        let h = s.hdr.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Some(h)
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

    /// Appends every recorded family and the process metrics in the text
    /// exposition format (0.0.4), families sorted by name.
    pub fn render(&self, out: &mut String) {
        let families = self.prom.gather();
        if let Err(e) = TextEncoder::new().encode_utf8(&families, out) {
            tracing::error!(error = %e, "failed to encode the metrics");
        }
    }

    /// The `Content-Type` of [`Registry::render`]'s output.
    pub fn content_type(&self) -> &'static str {
        "text/plain; version=0.0.4; charset=utf-8"
    }
}

#[cfg(test)]
mod tests;
