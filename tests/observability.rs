//! Metrics, the HTTP server and the Grafana/Prometheus files:
//! * routes through `app().oneshot()` (auth, readiness, alerts/silences via an
//!   in-test `AlertApi`, `/classify` against the same model as `classify`)
//!   ([`routes`]);
//! * `/metrics` parsed back with a small text-format parser and checked
//!   against the declarations in `earshot::metrics` ([`exposition`]);
//! * the real engine on the demo stream (real model, real broker), scraped by
//!   a real Prometheus (`/usr/bin/prometheus`, started here on a free port):
//!   every PromQL expression of every dashboard panel and annotation must
//!   return data, a scrape passes `promtool check metrics`, and the engine
//!   alerting rules pass `promtool check rules` and their unit tests
//!   ([`prometheus`]).

mod exposition;
mod prometheus;
mod routes;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use earshot::alert::api::{AlertApi, Silence, SinkStats};
use serde_json::Value;

// ---------------------------------------------------------------------------
// An in-test alert stage: alerts seen through `on_alert`, silences in memory,
// one sink that "delivers" everything it saw.

#[derive(Default)]
struct TestAlerts {
    active: Mutex<Vec<Value>>,
    silences: Mutex<Vec<Silence>>,
    next: AtomicU64,
}

impl AlertApi for TestAlerts {
    fn active(&self) -> Vec<Value> {
        self.active.lock().unwrap().clone()
    }
    fn silences(&self) -> Vec<Silence> {
        self.silences.lock().unwrap().clone()
    }
    fn add_silence(&self, mut s: Silence) -> Result<Silence, String> {
        if s.matchers.is_empty() {
            return Err("matchers: at least one matcher is required".into());
        }
        s.id = format!("s{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        self.silences.lock().unwrap().push(s.clone());
        Ok(s)
    }
    fn expire_silence(&self, id: &str) -> bool {
        let mut v = self.silences.lock().unwrap();
        let n = v.len();
        v.retain(|s| s.id != id);
        v.len() < n
    }
    fn delivery(&self) -> Vec<SinkStats> {
        let n = self.active.lock().unwrap().len() as u64;
        vec![SinkStats {
            sink: "test-webhook".into(),
            kind: "generic".into(),
            delivered: n,
            retries: 1,
            failures: 1,
            dropped: 0,
            backoff_seconds: 0.5,
            pending: 0,
        }]
    }
    fn outbox_depth(&self) -> u64 {
        0
    }
}
