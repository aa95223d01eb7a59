//! The HTTP server of a running engine (axum): `/metrics` (Prometheus text
//! format), `/healthz`, `/readyz`, `/stats` (exact latency quantiles),
//! `/alerts` and `/silences` (from the alert stage), `/classify` (ad-hoc
//! inference through the engine's own classifier thread, for debugging).
//!
//! Contract:
//! * It only observes: handlers read [`Live`] handles and the metrics
//!   registry; the one thing they add to the pipeline is `/classify` work on
//!   the shared inference queue (at most [`MAX_CLASSIFY_TEXTS`] per request).
//! * Bound to 127.0.0.1 by default (`--http-addr`). With a bearer token set,
//!   every route except `/healthz` needs `Authorization: Bearer <token>`.
//!   [`check_bind`] refuses any other address without a token unless
//!   `--insecure-http` says so explicitly (a proxy in front authenticates).
//! * Cheap in-memory figures (pipeline counters, consumer lag, active alerts)
//!   are copied into the registry when `/metrics` is read, so the hot path
//!   never pays for them. Alert delivery counters and the outbox gauges,
//!   which read the outbox file, are refreshed by a task every
//!   [`DELIVERY_REFRESH`] ([`refresh_delivery_metrics`], started by [`serve`]):
//!   the handler never reads the outbox. Process metrics come from the
//!   `prometheus` crate's process collector.

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::alert::api::Silence;
use crate::metrics as m;
use crate::pipeline::engine::{Live, LiveModel};
use crate::pipeline::PipelineStats;

/// Texts accepted by one `/classify` request.
pub const MAX_CLASSIFY_TEXTS: usize = 256;

/// How often [`serve`] refreshes the alert delivery and outbox metrics.
pub const DELIVERY_REFRESH: Duration = Duration::from_secs(1);

/// Why the HTTP server may not start as asked: a usage error (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum HttpConfigError {
    #[error("invalid --http-addr {0:?} (expected ip:port, e.g. 127.0.0.1:9464, or off)")]
    Addr(String),
    #[error(
        "--http-addr {0} is not a loopback address and no API token is set: anyone who reaches it could \
         read alerts, add silences and use /classify. Set a token (--http-token-file / EARSHOT_HTTP_TOKEN_FILE, \
         or EARSHOT_HTTP_TOKEN), bind to 127.0.0.1, or pass --insecure-http (EARSHOT_INSECURE_HTTP=true) \
         if something in front of it authenticates"
    )]
    PublicWithoutToken(SocketAddr),
    #[error("cannot read --http-token-file {}", .path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--http-token-file {} is empty", .0.display())]
    EmptyTokenFile(PathBuf),
}

/// How the server is exposed, as allowed by [`check_bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// A loopback address: only this machine reaches it.
    Loopback,
    /// Any address, every route but `/healthz` behind the bearer token.
    Token,
    /// A non-loopback address without a token, allowed by `--insecure-http`.
    Insecure,
}

/// Whether the server may listen on `addr`: a loopback address always; any
/// other address (`0.0.0.0`, `::`, a LAN address) only with a token, or when
/// `insecure` (`--insecure-http`) is set explicitly.
pub fn check_bind(addr: SocketAddr, token: bool, insecure: bool) -> Result<Exposure, HttpConfigError> {
    match (addr.ip().to_canonical().is_loopback(), token, insecure) {
        (_, true, _) => Ok(Exposure::Token),
        (true, false, _) => Ok(Exposure::Loopback),
        (false, false, true) => Ok(Exposure::Insecure),
        (false, false, false) => Err(HttpConfigError::PublicWithoutToken(addr)),
    }
}

/// Parses `--http-addr` (`off`: no server).
pub fn parse_addr(text: &str) -> Result<Option<SocketAddr>, HttpConfigError> {
    if text == "off" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| HttpConfigError::Addr(text.to_string()))
}

/// The bearer token from `--http-token` (inline or env) or `--http-token-file`
/// (trimmed; an empty file is an error). An empty inline token counts as none.
pub fn load_token(inline: Option<String>, file: Option<&FsPath>) -> Result<Option<String>, HttpConfigError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| HttpConfigError::TokenFile {
            path: path.to_path_buf(),
            source,
        })?;
        let t = text.trim();
        if t.is_empty() {
            return Err(HttpConfigError::EmptyTokenFile(path.to_path_buf()));
        }
        return Ok(Some(t.to_string()));
    }
    Ok(inline.filter(|t| !t.is_empty()))
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub live: Arc<Live>,
    /// Required bearer token (every route but `/healthz`), if any.
    pub token: Option<Arc<str>>,
}

impl AppState {
    pub fn new(live: Arc<Live>, token: Option<String>) -> Self {
        Self {
            live,
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
        }
    }
}

/// The router. Test it with `tower::ServiceExt::oneshot`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .route("/stats", get(stats))
        .route("/alerts", get(alerts))
        .route("/silences", get(silences).post(add_silence))
        .route("/silences/{id}", delete(expire_silence))
        .route("/classify", post(classify))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Binds `addr` and serves [`app`] on a task; returns the bound address
/// (port 0 picks a free one) and the task (abort it to stop).
pub async fn serve(addr: SocketAddr, state: AppState) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("failed to bind the http server to {addr} (choose another with --http-addr, or off)")
    })?;
    let bound = listener.local_addr().context("no local address")?;
    let live = state.live.clone();
    let task = tokio::spawn(async move {
        tokio::select! {
            r = axum::serve(listener, app(state)) => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "http server stopped");
                }
            }
            () = refresh_delivery_loop(live) => {}
        }
    });
    Ok((bound, task))
}

/// Copies the alert stage's delivery counters and outbox gauges into the
/// registry. Blocking: it reads the outbox file (call it off the async
/// threads, as [`serve`]'s refresh task does every [`DELIVERY_REFRESH`]).
/// Without an alert stage it does nothing.
pub fn refresh_delivery_metrics(live: &Live) {
    let Some(api) = live.alerts.get() else { return };
    let r = &live.stats.metrics;
    for s in api.delivery() {
        let l = [s.sink.as_str(), s.kind.as_str()];
        r.set(&m::WEBHOOK_DELIVERED, &l, s.delivered as f64);
        r.set(&m::WEBHOOK_RETRIES, &l, s.retries as f64);
        r.set(&m::WEBHOOK_FAILURES, &l, s.failures as f64);
        r.set(&m::WEBHOOK_DROPPED, &l, s.dropped as f64);
        r.set(&m::WEBHOOK_BACKOFF, &l, s.backoff_seconds);
        r.set(&m::OUTBOX_PENDING, &[&s.sink], s.pending as f64);
    }
    r.set(&m::OUTBOX_DEPTH, &[], api.outbox_depth() as f64);
}

async fn refresh_delivery_loop(live: Arc<Live>) {
    let mut tick = tokio::time::interval(DELIVERY_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let live = live.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || refresh_delivery_metrics(&live)).await {
            tracing::error!(error = %e, "delivery metrics refresh failed");
        }
    }
}

fn token_ok(headers: &HeaderMap, want: &str) -> bool {
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant time in the token's length.
    got.len() == want.len() && got.bytes().zip(want.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

/// Bearer-token check and request counting for every routed request.
async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let resp = match &st.token {
        Some(t) if !token_ok(req.headers(), t) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "missing or wrong bearer token (Authorization: Bearer <EARSHOT_HTTP_TOKEN>)"})),
        )
            .into_response(),
        _ => next.run(req).await,
    };
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    st.live
        .stats
        .metrics
        .add(&m::HTTP_REQUESTS, &[route, resp.status().as_str()], 1.0);
    resp
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({ "error": msg.into() }))).into_response()
}

/// Why the engine is not ready, in the order checked (the `reason` label
/// values of `earshot_not_ready`, [`crate::pipeline::health::REASONS`]).
fn not_ready_reasons(live: &Live) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if live.model.get().is_none() {
        out.push(("model_loading", "the model is not loaded yet".to_string()));
    }
    match live.source.get() {
        None => out.push(("no_partitions", "the consumer is not started yet".to_string())),
        Some(src) => {
            if let Some((since, why)) = src.broker_down() {
                out.push((
                    "broker_unreachable",
                    format!("no Kafka broker reachable for {} s ({why})", since.as_secs()),
                ));
            }
            if src.assigned_partitions() == 0 {
                out.push((
                    "no_partitions",
                    "the consumer group has assigned no partitions to this member".to_string(),
                ));
            }
        }
    }
    if let Some(h) = live.health.get() {
        if let Some(why) = h.producer_fatal() {
            out.push(("producer_failed", format!("the Kafka producer failed fatally ({why})")));
        }
        if h.stalled() {
            out.push((
                "stalled",
                "work is waiting (in flight or consumer lag) but nothing was acknowledged within pipeline.stall_timeout_ms"
                    .to_string(),
            ));
        }
    }
    out
}

/// Model loaded, partitions assigned, a broker reachable, the producer
/// working and the pipeline not stalled.
fn readiness(live: &Live) -> (bool, Value) {
    let model = live.model.get().is_some();
    let assigned = live.source.get().map_or(0, |s| s.assigned_partitions());
    let reasons = not_ready_reasons(live);
    let ready = reasons.is_empty();
    let reason = reasons
        .iter()
        .map(|(_, text)| text.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let codes: Vec<&str> = reasons.iter().map(|(code, _)| *code).collect();
    (
        ready,
        json!({"ready": ready, "model_loaded": model, "partitions_assigned": assigned,
               "reasons": codes, "reason": reason}),
    )
}

async fn readyz(State(st): State<AppState>) -> Response {
    let (ready, body) = readiness(&st.live);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Everything `/metrics` serves: the cheap in-memory figures copied into the
/// registry, then the registry encoded (it never reads the outbox).
pub fn render_metrics(live: &Live) -> String {
    let stats: &PipelineStats = &live.stats;
    stats.export();
    let r = &stats.metrics;
    r.set(&m::BUILD_INFO, &[env!("CARGO_PKG_VERSION")], 1.0);
    let reasons = not_ready_reasons(live);
    r.set(&m::READY, &[], if reasons.is_empty() { 1.0 } else { 0.0 });
    r.set_all(
        &m::NOT_READY,
        crate::pipeline::health::REASONS.iter().map(|code| {
            let on = reasons.iter().any(|(c, _)| c == code);
            (vec![code.to_string()], if on { 1.0 } else { 0.0 })
        }),
    );
    if let Some(model) = live.model.get() {
        r.set_all(
            &m::MODEL_INFO,
            [(
                vec![
                    model.classifier.describe().to_string(),
                    model.device.clone(),
                    model.matmul.clone(),
                ],
                1.0,
            )],
        );
    }
    if let Some(src) = live.source.get() {
        r.set_all(
            &m::KAFKA_LAG,
            src.lag()
                .into_iter()
                .map(|((topic, p), lag)| (vec![topic, p.to_string()], lag as f64)),
        );
        r.set(&m::KAFKA_ASSIGNED, &[], src.assigned_partitions() as f64);
        r.set(&m::KAFKA_REBALANCES, &[], src.rebalances() as f64);
        let rv = src.revokes();
        let g = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let undrained = g(&rv.undrained);
        r.set(
            &m::KAFKA_REVOKES,
            &["true"],
            g(&rv.revokes).saturating_sub(undrained) as f64,
        );
        r.set(&m::KAFKA_REVOKES, &["false"], undrained as f64);
        r.set(&m::KAFKA_REVOKE_WAIT, &[], g(&rv.wait_ms) as f64 / 1000.0);
    }
    // Delivery counters and outbox gauges: refreshed by `serve`'s task.
    if let Some(api) = live.alerts.get() {
        let mut active: std::collections::BTreeMap<Vec<String>, f64> = Default::default();
        for a in api.active() {
            let f = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("unknown").to_string();
            let brand = r.brand(a.get("labels").and_then(|l| l.get("brand")).and_then(Value::as_str));
            *active.entry(vec![f("rule"), f("severity"), brand]).or_default() += 1.0;
        }
        r.set_all(&m::ALERTS_ACTIVE, active);
    }
    let mut out = String::with_capacity(64 * 1024);
    r.render(&mut out);
    out
}

async fn metrics(State(st): State<AppState>) -> Response {
    let body = render_metrics(&st.live);
    ([(header::CONTENT_TYPE, st.live.stats.metrics.content_type())], body).into_response()
}

async fn stats(State(st): State<AppState>) -> Response {
    let s = &st.live.stats;
    s.export();
    let r = &s.metrics;
    let g = |c: &std::sync::atomic::AtomicU64| PipelineStats::get(c);
    Json(json!({
        "latency_seconds": r.latency_summary(),
        "batch_size": r.quantiles(&m::BATCH_SIZE, &[]),
        "batch_tokens": r.quantiles(&m::BATCH_TOKENS, &[]),
        "counters": {
            "received": g(&s.received),
            "scored": g(&s.scored),
            "dead_lettered": g(&s.dead_lettered),
            "alerts": g(&s.alerts),
            "acked": g(&s.acked),
            "too_late": g(&s.too_late),
            "batches": g(&s.batches),
            "real_tokens": g(&s.real_tokens),
            "padded_tokens": g(&s.padded_tokens),
        },
        "ready": readiness(&st.live).1,
    }))
    .into_response()
}

const NO_ALERT_STAGE: &str = "the alert lifecycle is not running in this engine";

async fn alerts(State(st): State<AppState>) -> Response {
    match st.live.alerts.get() {
        Some(api) => Json(api.active()).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, NO_ALERT_STAGE),
    }
}

async fn silences(State(st): State<AppState>) -> Response {
    match st.live.alerts.get() {
        Some(api) => Json(api.silences()).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, NO_ALERT_STAGE),
    }
}

async fn add_silence(State(st): State<AppState>, body: axum::body::Bytes) -> Response {
    let Some(api) = st.live.alerts.get() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, NO_ALERT_STAGE);
    };
    let silence: Silence = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid silence: {e}")),
    };
    match api.add_silence(silence) {
        Ok(s) => (StatusCode::CREATED, Json(s)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn expire_silence(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(api) = st.live.alerts.get() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, NO_ALERT_STAGE);
    };
    if api.expire_silence(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("no silence with id {id}"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyRequest {
    texts: Vec<String>,
}

async fn classify(State(st): State<AppState>, body: axum::body::Bytes) -> Response {
    let req: ClassifyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"texts\": [\"...\"]}}: {e}"),
            )
        }
    };
    if req.texts.len() > MAX_CLASSIFY_TEXTS {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} texts; at most {MAX_CLASSIFY_TEXTS} per request", req.texts.len()),
        );
    }
    let live = st.live.clone();
    if live.model.get().is_none() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the model is still loading");
    }
    let res = tokio::task::spawn_blocking(move || {
        let model = live.model.get().expect("checked above");
        classify_blocking(model, &req.texts)
    })
    .await;
    match res {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("inference failed: {e}")),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("classifier task failed: {e}"),
        ),
    }
}

/// One JSON object per text, as `earshot classify` prints them (JSONL lines):
/// the scored fields plus `index`, a `note` when truncated, or `error`.
fn classify_blocking(model: &LiveModel, texts: &[String]) -> Result<Vec<Value>, crate::model::ModelError> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let results = crate::model::classify_texts_with(&model.tokenizer, &refs, model.limits, false, |b| {
        model.classifier.classify(b).map(|out| out.results)
    })?;
    Ok(results
        .into_iter()
        .enumerate()
        .map(|(index, r)| match r {
            Ok(s) => {
                let mut v = serde_json::to_value(&s).unwrap_or_default();
                v["index"] = json!(index);
                if s.truncated {
                    v["note"] = json!(format!(
                        "text truncated to model.max_tokens = {} tokens",
                        model.max_tokens
                    ));
                }
                v
            }
            Err(e) => json!({"index": index, "error": e.to_string()}),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::alert::api::{AlertApi, SinkStats};

    /// An alert stage that counts how often the outbox is read.
    #[derive(Default)]
    struct CountingOutbox {
        reads: AtomicU64,
    }

    impl AlertApi for CountingOutbox {
        fn active(&self) -> Vec<Value> {
            vec![json!({"rule": "volume_spike", "severity": "critical", "labels": {"brand": "Voltra"}})]
        }
        fn silences(&self) -> Vec<Silence> {
            Vec::new()
        }
        fn add_silence(&self, s: Silence) -> Result<Silence, String> {
            Ok(s)
        }
        fn expire_silence(&self, _: &str) -> bool {
            false
        }
        fn delivery(&self) -> Vec<SinkStats> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            vec![SinkStats {
                sink: "hook".into(),
                kind: "generic".into(),
                delivered: 3,
                retries: 2,
                failures: 2,
                dropped: 0,
                backoff_seconds: 1.5,
                pending: 4,
            }]
        }
        fn outbox_depth(&self) -> u64 {
            self.reads.fetch_add(1, Ordering::Relaxed);
            4
        }
    }

    #[test]
    fn only_loopback_binds_without_a_token_unless_insecure_is_explicit() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        for local in ["127.0.0.1:9464", "127.0.0.2:80", "[::1]:9464", "[::ffff:127.0.0.1]:1"] {
            assert_eq!(
                check_bind(a(local), false, false).unwrap(),
                Exposure::Loopback,
                "{local}"
            );
            assert_eq!(check_bind(a(local), true, false).unwrap(), Exposure::Token, "{local}");
        }
        for public in ["0.0.0.0:9464", "[::]:9464", "10.1.2.3:9464", "[2001:db8::1]:80"] {
            let e = check_bind(a(public), false, false).unwrap_err().to_string();
            for needed in [
                "--http-addr",
                "--http-token-file",
                "EARSHOT_HTTP_TOKEN",
                "--insecure-http",
            ] {
                assert!(e.contains(needed), "{public}: {e}");
            }
            assert_eq!(check_bind(a(public), true, false).unwrap(), Exposure::Token);
            assert_eq!(check_bind(a(public), true, true).unwrap(), Exposure::Token);
            assert_eq!(check_bind(a(public), false, true).unwrap(), Exposure::Insecure);
        }
        assert_eq!(parse_addr("off").unwrap(), None);
        assert_eq!(parse_addr("0.0.0.0:1").unwrap(), Some(a("0.0.0.0:1")));
        assert!(matches!(parse_addr("localhost:9464"), Err(HttpConfigError::Addr(_))));
    }

    #[test]
    fn the_token_comes_from_a_file_trimmed_or_inline() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "s3cret-token\n").unwrap();
        assert_eq!(load_token(None, Some(&f)).unwrap().as_deref(), Some("s3cret-token"));
        assert_eq!(
            load_token(Some("inline".into()), None).unwrap().as_deref(),
            Some("inline")
        );
        assert_eq!(load_token(Some(String::new()), None).unwrap(), None, "empty = no token");
        assert_eq!(load_token(None, None).unwrap(), None);
        std::fs::write(&f, " \n").unwrap();
        assert!(matches!(
            load_token(None, Some(&f)),
            Err(HttpConfigError::EmptyTokenFile(_))
        ));
        let missing = dir.path().join("missing");
        let e = load_token(None, Some(&missing)).unwrap_err();
        assert!(
            matches!(&e, HttpConfigError::TokenFile { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
        );
        assert!(e.to_string().contains("--http-token-file"), "{e}");
    }

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
    }

    #[test]
    fn the_metrics_handler_never_reads_the_outbox() {
        let live = Live::new(Arc::new(PipelineStats::default()));
        let api = Arc::new(CountingOutbox::default());
        assert!(live.alerts.set(api.clone()).is_ok());
        let before = render_metrics(&live);
        assert_eq!(api.reads.load(Ordering::Relaxed), 0);
        assert_eq!(line(&before, "earshot_outbox_depth"), None);
        // Active alerts are in-memory: exported at scrape time.
        assert_eq!(
            line(
                &before,
                "earshot_alerts_active{brand=\"Voltra\",rule=\"volume_spike\",severity=\"critical\"}"
            ),
            Some("1")
        );

        refresh_delivery_metrics(&live);
        assert_eq!(api.reads.load(Ordering::Relaxed), 2);
        let text = render_metrics(&live);
        assert_eq!(api.reads.load(Ordering::Relaxed), 2);
        assert_eq!(line(&text, "earshot_outbox_depth"), Some("4"));
        assert_eq!(line(&text, "earshot_outbox_pending{sink=\"hook\"}"), Some("4"));
        let l = "{kind=\"generic\",sink=\"hook\"}";
        assert_eq!(line(&text, &format!("earshot_webhook_deliveries_total{l}")), Some("3"));
        assert_eq!(
            line(&text, &format!("earshot_webhook_backoff_seconds_total{l}")),
            Some("1.5")
        );
        assert_eq!(line(&text, "earshot_ready"), Some("0"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serve_refreshes_the_delivery_metrics() {
        let live = Arc::new(Live::new(Arc::new(PipelineStats::default())));
        let api = Arc::new(CountingOutbox::default());
        assert!(live.alerts.set(api.clone()).is_ok());
        let (_, task) = serve("127.0.0.1:0".parse().unwrap(), AppState::new(live.clone(), None))
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + 10 * DELIVERY_REFRESH;
        while live.stats.metrics.get(&m::OUTBOX_DEPTH, &[]) != 4.0 {
            assert!(std::time::Instant::now() < deadline, "the refresh task never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
    }
}
