//! The routes through `app().oneshot()`: auth, readiness, alerts and
//! silences, `/metrics` and `/stats`, `/classify`; the README metrics table.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use earshot::metrics as m;
use earshot::pipeline::engine::{Live, LiveModel};
use earshot::pipeline::PipelineStats;
use earshot::server::{self, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::exposition::{check_against_declarations, parse_exposition, promtool_check_metrics};
use super::TestAlerts;
use crate::util;

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&b).unwrap())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn routes_need_the_token_and_serve_alerts_and_silences() {
    let stats = Arc::new(PipelineStats::default());
    let live = Arc::new(Live::new(stats.clone()));
    let api = Arc::new(TestAlerts::default());
    api.active.lock().unwrap().push(json!({
        "fingerprint": "f1", "status": "firing", "rule": "volume_spike", "severity": "critical",
        "key": "brand=Voltra", "labels": {"brand": "Voltra"}, "starts_at": "2026-11-21T05:55:00Z",
        "summary": "x", "silenced": false
    }));
    let app = server::app(AppState::new(live.clone(), Some("s3cret".into())));
    let tok = Some("s3cret");

    assert_eq!(call(&app, "GET", "/healthz", None, None).await.0, StatusCode::OK);
    for uri in ["/metrics", "/readyz", "/stats", "/alerts", "/silences"] {
        assert_eq!(
            call(&app, "GET", uri, None, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
        assert_eq!(
            call(&app, "GET", uri, Some("wrong!"), None).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
    // Not ready: no model, no consumer; no alert stage yet.
    let (code, body) = call(&app, "GET", "/readyz", tok, None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["model_loaded"], false);
    assert_eq!(
        call(&app, "GET", "/alerts", tok, None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (code, _) = call(&app, "POST", "/classify", tok, Some(json!({"texts": ["hi"]}))).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);

    assert!(live.alerts.set(api.clone()).is_ok());
    let (code, body) = call(&app, "GET", "/alerts", tok, None).await;
    assert_eq!(code, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["fingerprint"], "f1");

    // API silences must end ahead of now and within 90 days.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let tomorrow = earshot::alert::rfc3339(now + 86_400_000);
    let silence = json!({"matchers": {"brand": "Voltra"}, "ends_at": tomorrow, "comment": "known"});
    let (code, body) = call(&app, "POST", "/silences", tok, Some(silence)).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = call(
        &app,
        "POST",
        "/silences",
        tok,
        Some(json!({"matchers": {}, "ends_at": "x"})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("matchers"), "{body}");
    let (code, body) = call(&app, "POST", "/silences", tok, Some(json!({"bogus": 1}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (_, body) = call(&app, "GET", "/silences", tok, None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap().as_array().unwrap().len(),
        1
    );
    let uri = format!("/silences/{id}");
    assert_eq!(call(&app, "DELETE", &uri, tok, None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(call(&app, "DELETE", &uri, tok, None).await.0, StatusCode::NOT_FOUND);

    // Metrics: parse back. Active alerts are exported at scrape time; the
    // delivery counters and outbox gauges by the refresh task of `serve`
    // (not running here), so refresh them by hand first.
    stats.metrics.observe(&m::STAGE_SECONDS, &["inference"], 0.25);
    stats.metrics.add(&m::EVENTS_DEAD, &["invalid_json"], 2.0);
    let (_, before) = call(&app, "GET", "/metrics", tok, None).await;
    assert!(!before.contains("earshot_outbox_depth"), "the handler read the outbox");
    server::refresh_delivery_metrics(&live);
    let (code, text) = call(&app, "GET", "/metrics", tok, None).await;
    assert_eq!(code, StatusCode::OK);
    let fams = parse_exposition(&text);
    check_against_declarations(&fams);
    promtool_check_metrics(&text);
    let one = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let f = fams.get(name).unwrap_or_else(|| panic!("{name} missing"));
        f.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .unwrap_or_else(|| panic!("{name}{labels:?} missing"))
            .value
    };
    assert_eq!(
        one("earshot_webhook_deliveries_total", &[("sink", "test-webhook")]),
        1.0
    );
    assert_eq!(one("earshot_webhook_failures_total", &[("sink", "test-webhook")]), 1.0);
    assert_eq!(one("earshot_outbox_depth", &[]), 0.0);
    assert_eq!(
        one(
            "earshot_alerts_active",
            &[("rule", "volume_spike"), ("severity", "critical"), ("brand", "Voltra")]
        ),
        1.0
    );
    assert_eq!(
        one("earshot_events_dead_lettered_total", &[("reason", "invalid_json")]),
        2.0
    );
    assert_eq!(one("earshot_ready", &[]), 0.0);
    assert!(one("process_resident_memory_bytes", &[]) > 0.0);
    // Requests are counted by route and status, the refused ones included.
    assert!(one("earshot_http_requests_total", &[("route", "/metrics"), ("code", "401")]) >= 2.0);
    let (_, stats_body) = call(&app, "GET", "/stats", tok, None).await;
    let v: Value = serde_json::from_str(&stats_body).unwrap();
    assert_eq!(v["latency_seconds"]["inference"]["count"], 1);
    // hdrhistogram keeps 3 significant digits.
    let p99 = v["latency_seconds"]["inference"]["p99"].as_f64().unwrap();
    assert!((p99 - 0.25).abs() < 0.25e-3, "{p99}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_route_answers_like_the_classify_command() {
    let cfg = util::random_config();
    let cpu = candle_core::Device::Cpu;
    let mut reference = earshot::model::load(&cfg.model, &cpu).unwrap();
    let loaded = earshot::model::load(&cfg.model, &cpu).unwrap();
    let classifier = Arc::new(earshot::model::worker::ClassifierThread::spawn(
        Box::new(loaded.classifier),
        2,
    ));
    let live = Arc::new(Live::new(Arc::new(PipelineStats::default())));
    let _ = live.model.set(LiveModel {
        tokenizer: loaded.tokenizer,
        classifier,
        limits: cfg.batch,
        max_tokens: cfg.model.max_tokens,
        device: "cpu".into(),
        matmul: "f32".into(),
    });
    let app = server::app(AppState::new(live, None));
    let texts = ["The battery died after two days", "", "物流很快，包装完好"];
    let (code, body) = call(&app, "POST", "/classify", None, Some(json!({ "texts": texts }))).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let got: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(got.len(), 3);
    assert!(got[1]["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", got[1]);
    let want = earshot::model::classify_texts(
        &reference.tokenizer,
        &mut reference.classifier,
        &texts,
        cfg.batch,
        false,
    )
    .unwrap();
    for i in [0, 2] {
        let w = want[i].as_ref().unwrap();
        assert_eq!(got[i]["index"], i);
        assert_eq!(got[i]["sentiment"], w.sentiment.as_str());
        assert_eq!(got[i]["category"], w.category.as_str());
        assert_eq!(got[i]["lang"], w.lang);
        assert_eq!(got[i]["tokens"], w.tokens);
        let p = got[i]["probs"]["negative"].as_f64().unwrap();
        assert!((p - f64::from(w.probs.negative)).abs() < 1e-4, "{p} vs {:?}", w.probs);
    }
    let (code, _) = call(&app, "POST", "/classify", None, Some(json!({"text": "x"}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let many: Vec<&str> = vec!["x"; server::MAX_CLASSIFY_TEXTS + 1];
    let (code, _) = call(&app, "POST", "/classify", None, Some(json!({ "texts": many }))).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn readme_lists_every_metric() {
    let readme = std::fs::read_to_string(util::root().join("README.md")).unwrap();
    let section = readme
        .split("\n## Metrics")
        .nth(1)
        .expect("README has a Metrics section")
        .split("\n## ")
        .next()
        .unwrap();
    for d in m::ALL {
        assert!(
            section.contains(&format!("`{}`", d.name)),
            "README Metrics table lacks {}",
            d.name
        );
    }
}

/// `earshot run` with a non-loopback `--http-addr` and no token stops at once
/// with a usage error (exit 2) naming the flag and the fixes; a token file or
/// `--insecure-http` gets past that check (here to the next error: the
/// config file does not exist).
#[test]
fn run_refuses_a_public_http_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let run = |extra: &[&str], env: &[(&str, &std::path::Path)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_earshot"));
        cmd.args(["run", "--http-addr", "0.0.0.0:0", "--config"])
            .arg(dir.path().join("absent.toml"))
            .args(extra)
            .env_remove("EARSHOT_HTTP_TOKEN")
            .env_remove("EARSHOT_HTTP_TOKEN_FILE")
            .env_remove("EARSHOT_INSECURE_HTTP")
            .env_remove("EARSHOT_HTTP_ADDR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, err) = run(&[], &[]);
    assert_eq!(code, Some(2), "{err}");
    for needed in [
        "--http-addr 0.0.0.0:0",
        "--http-token-file",
        "EARSHOT_HTTP_TOKEN",
        "--insecure-http",
    ] {
        assert!(err.contains(needed), "{needed}: {err}");
    }
    let (code, err) = run(
        &["--http-token-file", dir.path().join("missing").to_str().unwrap()],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot read --http-token-file"), "{err}");
    let (code, err) = run(&[], &[("EARSHOT_INSECURE_HTTP", std::path::Path::new("false"))]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--insecure-http"),
        "EARSHOT_INSECURE_HTTP=false is not insecure: {err}"
    );
    for (extra, env) in [
        (vec!["--insecure-http"], vec![]),
        (vec![], vec![("EARSHOT_INSECURE_HTTP", std::path::Path::new("1"))]),
        (vec![], vec![("EARSHOT_HTTP_TOKEN_FILE", token.as_path())]),
    ] {
        let (code, err) = run(&extra, &env);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("absent.toml") && !err.contains("loopback"),
            "past the bind check: {err}"
        );
    }
}
