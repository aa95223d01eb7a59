//! One delivery worker (tokio task) per endpoint: takes the endpoint's pending
//! outbox entries (the oldest change of each fingerprint per round, so a
//! `resolved` never overtakes its `firing`), sends them with at most
//! `max_concurrency` requests in flight, and marks them done when delivered or
//! given up on.
//!
//! Retries: 5xx, 429, timeouts and connection errors are retried with
//! exponential backoff, each wait drawn from [half, all] of it (`Retry-After` seconds honoured), until
//! `max_attempts` or `max_retry_minutes`; other 4xx are dropped at once.
//! Redirects are never followed ([`client`]): a 3xx answer is a failed
//! delivery that is not retried (a signed body must reach only the configured
//! URL, and a moved endpoint is a configuration to fix), logged with the
//! redirect target's scheme and host.
//! Alertmanager (v2 API) additionally gets every firing alert re-sent each
//! `resend_interval`, so it does not resolve them on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use rand::Rng;

use super::api::SinkStats;
use super::format::{self, Message};
use super::outbox::{Entry, Outbox};
use super::Status;
use crate::config::{SinkKind, SinkSpec};

/// Counters of one endpoint (read by the API and metrics).
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub name: String,
    pub kind: String,
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    pub failures: AtomicU64,
    pub dropped: AtomicU64,
    pub backoff_micros: AtomicU64,
    /// Entries skipped for this endpoint (below `min_severity`, or a repeat
    /// inside its cooldown).
    pub skipped: AtomicU64,
}

impl SinkCounters {
    pub fn new(spec: &SinkSpec) -> Self {
        Self {
            name: spec.name.clone(),
            kind: spec.kind.as_str().into(),
            ..Default::default()
        }
    }

    pub fn snapshot(&self, pending: u64) -> SinkStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SinkStats {
            sink: self.name.clone(),
            kind: self.kind.clone(),
            delivered: g(&self.delivered),
            retries: g(&self.retries),
            failures: g(&self.failures),
            dropped: g(&self.dropped),
            backoff_seconds: g(&self.backoff_micros) as f64 / 1e6,
            pending,
        }
    }
}

/// How one message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Dropped,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn endpoint(spec: &SinkSpec) -> String {
    match spec.kind {
        SinkKind::Alertmanager if !spec.url.expose().contains("/api/v2/alerts") => {
            format!("{}/api/v2/alerts", spec.url.expose().trim_end_matches('/'))
        }
        _ => spec.url.expose().to_string(),
    }
}

/// The HTTP client every delivery worker shares: it never follows a redirect,
/// so a body (and its signature) goes only to the configured URL.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("earshot/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Sends one message with retries. Never logs secrets, URLs past their host, or bodies.
pub async fn send(client: &reqwest::Client, spec: &SinkSpec, msg: &Message, c: &SinkCounters) -> Outcome {
    let url = endpoint(spec);
    let start = Instant::now();
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let mut req = client
            .post(&url)
            .timeout(spec.timeout)
            .header("content-type", "application/json")
            .header("idempotency-key", &msg.id)
            .body(msg.body.clone());
        if let (SinkKind::Generic, Some(key)) = (spec.kind, &spec.secret) {
            let ts = now_ms() / 1000;
            req = req
                .header("webhook-id", &msg.id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", format::sign(&key.0, &msg.id, ts, &msg.body));
        }
        let (retryable, retry_after, what) = match req.send().await {
            Ok(r) if r.status().is_success() => {
                c.delivered.fetch_add(1, Ordering::Relaxed);
                return Outcome::Delivered;
            }
            Ok(r) if r.status().is_redirection() => {
                let to = r.headers().get("location").and_then(|v| v.to_str().ok()).map_or_else(
                    || "nowhere (no Location)".to_string(),
                    |l| match l.contains("://") {
                        true => crate::config::redact_url(l),
                        false => "another path on the same host".to_string(),
                    },
                );
                (
                    false,
                    None,
                    format!(
                        "HTTP {} redirect to {to} not followed (set the sink's url to the final address)",
                        r.status().as_u16()
                    ),
                )
            }
            Ok(r) => {
                let st = r.status();
                let ra = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                (
                    st.is_server_error() || st.as_u16() == 429,
                    ra,
                    format!("HTTP {}", st.as_u16()),
                )
            }
            Err(e) => (
                true,
                None,
                if e.is_timeout() {
                    "timeout".into()
                } else {
                    "connection error".into()
                },
            ),
        };
        c.failures.fetch_add(1, Ordering::Relaxed);
        let elapsed = start.elapsed();
        if !retryable || attempt >= spec.max_attempts || elapsed >= spec.max_retry {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(sink = %spec.name, url = %spec.url, id = %msg.id, attempts = attempt, error = %what,
                retryable, "alert delivery given up");
            return Outcome::Dropped;
        }
        let exp = spec
            .backoff_initial
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(spec.backoff_max);
        let wait = match retry_after {
            Some(ra) => ra,
            None => {
                let ms = exp.as_millis() as u64;
                Duration::from_millis(rand::rng().random_range(ms / 2..=ms.max(1)))
            }
        };
        let wait = wait
            .min(spec.max_retry.saturating_sub(elapsed))
            .max(Duration::from_millis(1));
        c.retries.fetch_add(1, Ordering::Relaxed);
        c.backoff_micros.fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
        tracing::debug!(sink = %spec.name, id = %msg.id, attempt, error = %what, wait_ms = wait.as_millis() as u64, "alert delivery retry");
        tokio::time::sleep(wait).await;
    }
}

type Sent = (Outcome, Vec<(u64, Entry)>);

/// The worker loop of one endpoint; runs until the task is aborted. Up to
/// `max_concurrency` messages are in flight; a fingerprint with a message in
/// flight gets no second one until that ends (so changes stay in order), and
/// a failing message does not hold up other fingerprints.
pub async fn run_sink(
    spec: SinkSpec,
    external_url: String,
    outbox: Arc<Outbox>,
    counters: Arc<SinkCounters>,
    client: reqwest::Client,
) {
    // Alertmanager: what is firing there, re-sent every resend interval.
    let mut am_firing: BTreeMap<String, Entry> = BTreeMap::new();
    if spec.kind == SinkKind::Alertmanager {
        let ob = outbox.clone();
        if let Ok(Ok(list)) = tokio::task::spawn_blocking(move || ob.latest_firing()).await {
            am_firing = list.into_iter().map(|e| (e.fingerprint.clone(), e)).collect();
        }
    }
    let mut last_resend = Instant::now();
    // Per-route cooldown: event time of the last change sent per fingerprint.
    let mut last_sent: BTreeMap<String, i64> = BTreeMap::new();
    let mut inflight: FuturesUnordered<BoxFuture<'static, Sent>> = FuturesUnordered::new();
    let mut busy_fps: BTreeSet<String> = BTreeSet::new();
    let mut busy_seqs: BTreeSet<u64> = BTreeSet::new();
    let spec = Arc::new(spec);
    loop {
        let wake = outbox.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        if spec.kind == SinkKind::Alertmanager && !am_firing.is_empty() && last_resend.elapsed() >= spec.resend_interval
        {
            last_resend = Instant::now();
            let entries: Vec<&Entry> = am_firing
                .values()
                .filter(|e| !busy_fps.contains(&e.fingerprint))
                .collect();
            let ttl = 4 * spec.resend_interval.as_millis() as i64;
            let body = format::alertmanager_alerts(&entries, now_ms(), ttl);
            let msg = Message {
                seqs: Vec::new(),
                id: format!("resend-{}", now_ms()),
                body: serde_json::to_vec(&body).unwrap_or_default(),
            };
            let (client, spec, counters) = (client.clone(), spec.clone(), counters.clone());
            inflight.push(Box::pin(async move {
                (send(&client, &spec, &msg, &counters).await, Vec::new())
            }));
        }
        if inflight.len() < spec.max_concurrency {
            let ob = outbox.clone();
            let name = spec.name.clone();
            let batch = match tokio::task::spawn_blocking(move || ob.pending(&name, 1024)).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    tracing::error!(sink = %spec.name, error = %e, "outbox read failed");
                    Vec::new()
                }
                Err(_) => return,
            };
            // The oldest pending change of each fingerprint not in flight.
            let mut seen = BTreeSet::new();
            let mut take = Vec::new();
            let mut skip = Vec::new();
            for (seq, e) in batch {
                if busy_seqs.contains(&seq) || !seen.insert(e.fingerprint.clone()) || busy_fps.contains(&e.fingerprint)
                {
                    continue;
                }
                let in_cooldown = e.status == Status::Firing
                    && e.repeat > 0
                    && spec
                        .repeat_interval
                        .zip(last_sent.get(&e.fingerprint))
                        .is_some_and(|(iv, &last)| e.at - last < iv);
                if e.severity < spec.min_severity || in_cooldown {
                    skip.push(seq);
                } else {
                    take.push((seq, e));
                }
            }
            if !skip.is_empty() {
                counters.skipped.fetch_add(skip.len() as u64, Ordering::Relaxed);
                mark_done(&outbox, &spec.name, skip).await;
                continue;
            }
            let room = spec.max_concurrency - inflight.len();
            for m in format::messages(&spec, &external_url, &take, now_ms())
                .into_iter()
                .take(room)
            {
                let carried: Vec<(u64, Entry)> = take.iter().filter(|(q, _)| m.seqs.contains(q)).cloned().collect();
                for (q, e) in &carried {
                    busy_seqs.insert(*q);
                    busy_fps.insert(e.fingerprint.clone());
                }
                let (client, spec, counters) = (client.clone(), spec.clone(), counters.clone());
                inflight.push(Box::pin(
                    async move { (send(&client, &spec, &m, &counters).await, carried) },
                ));
            }
        }
        let finished = tokio::select! {
            Some(r) = inflight.next(), if !inflight.is_empty() => Some(r),
            _ = &mut wake => None,
            _ = tokio::time::sleep(Duration::from_millis(500)) => None,
        };
        if let Some((outcome, carried)) = finished {
            let mut done = Vec::new();
            for (q, e) in carried {
                busy_seqs.remove(&q);
                busy_fps.remove(&e.fingerprint);
                done.push(q);
                if outcome == Outcome::Delivered {
                    last_sent.insert(e.fingerprint.clone(), e.at);
                    if spec.kind == SinkKind::Alertmanager {
                        match e.status {
                            Status::Firing => am_firing.insert(e.fingerprint.clone(), e),
                            Status::Resolved => am_firing.remove(&e.fingerprint),
                        };
                    }
                }
            }
            mark_done(&outbox, &spec.name, done).await;
        }
    }
}

async fn mark_done(outbox: &Arc<Outbox>, sink: &str, seqs: Vec<u64>) {
    if seqs.is_empty() {
        return;
    }
    let (ob, name) = (outbox.clone(), sink.to_string());
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || ob.done(&name, &seqs)).await {
        tracing::error!(sink = %sink, error = %e, "outbox update failed");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
