//! Metrics, the HTTP server and the Grafana/Prometheus files:
//! * routes through `app().oneshot()` (auth, readiness, alerts/silences via an
//!   in-test `AlertApi`, `/classify` against the same model as `classify`);
//! * `/metrics` parsed back with a small text-format parser and checked
//!   against the declarations in `earshot::metrics`;
//! * the real engine on the demo stream (real model, real broker), scraped by
//!   a real Prometheus (`/usr/bin/prometheus`, started here on a free port):
//!   every PromQL expression of every dashboard panel and annotation must
//!   return data, and the engine alerting rules pass `promtool check rules`
//!   and their unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use earshot::alert::api::{AlertApi, Silence, SinkStats};
use earshot::metrics::{self as m, Kind};
use earshot::pipeline::engine::{Live, LiveModel};
use earshot::pipeline::PipelineStats;
use earshot::server::{self, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::{kafka_util as k, util};

// ---------------------------------------------------------------------------
// A small parser of the Prometheus text exposition format (0.0.4).

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if name.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('='), "label {name} without =");
        assert_eq!(chars.next(), Some('"'), "label {name} value not quoted");
        let mut v = String::new();
        loop {
            match chars.next().expect("unterminated label value") {
                '\\' => match chars.next().expect("dangling escape") {
                    'n' => v.push('\n'),
                    c @ ('\\' | '"') => v.push(c),
                    c => panic!("invalid escape \\{c}"),
                },
                '"' => break,
                c => v.push(c),
            }
        }
        assert!(
            out.insert(name.trim().to_string(), v).is_none(),
            "duplicate label in {s}"
        );
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(c) => panic!("unexpected {c:?} after a label value in {s}"),
        }
    }
    out
}

fn parse_value(v: &str) -> f64 {
    match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| panic!("bad sample value {v:?}")),
    }
}

/// Families by name; panics on anything that is not valid text format.
fn parse_exposition(text: &str) -> BTreeMap<String, Family> {
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            fams.entry(name.into()).or_default().help = help.into();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line without a type");
            let f = fams.entry(name.into()).or_default();
            assert!(
                f.kind.is_empty() && f.samples.is_empty(),
                "TYPE of {name} repeated or late"
            );
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{kind}"
            );
            f.kind = kind.into();
            current = Some(name.into());
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("sample without a value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, parse_labels(l.strip_suffix('}').expect("unclosed {"))),
            None => (series, BTreeMap::new()),
        };
        let fam = current.clone().expect("sample before any TYPE line");
        let base = [
            name,
            name.trim_end_matches("_bucket"),
            name.trim_end_matches("_sum"),
            name.trim_end_matches("_count"),
        ];
        assert!(base.contains(&fam.as_str()), "sample {name} outside its family {fam}");
        fams.get_mut(&fam).unwrap().samples.push(Sample {
            name: name.into(),
            labels,
            value: parse_value(value),
        });
    }
    fams
}

/// Every family is declared in `earshot::metrics` with this type and these
/// labels; histograms are cumulative and end in `+Inf` = `_count`.
fn check_against_declarations(fams: &BTreeMap<String, Family>) {
    for (name, f) in fams {
        let def = m::def(name).unwrap_or_else(|| panic!("{name} is exported but not declared in earshot::metrics"));
        assert_eq!(f.kind, def.kind.as_str(), "{name}");
        assert_eq!(f.help, def.help, "{name}");
        assert!(!f.samples.is_empty(), "{name} has no samples");
        let want: BTreeSet<&str> = def.labels.iter().copied().collect();
        for s in &f.samples {
            let mut got: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
            if s.name.ends_with("_bucket") && def.kind == Kind::Histogram {
                assert!(got.remove("le"), "{} without le", s.name);
            }
            assert_eq!(got, want, "labels of {}", s.name);
            assert!(!s.value.is_nan(), "{} is NaN", s.name);
        }
        if def.kind == Kind::Histogram {
            let mut series: BTreeMap<Vec<(String, String)>, Vec<&Sample>> = BTreeMap::new();
            for s in &f.samples {
                let key: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .filter(|(k, _)| *k != "le")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                series.entry(key).or_default().push(s);
            }
            for (key, ss) in series {
                let buckets: Vec<f64> = ss
                    .iter()
                    .filter(|s| s.name.ends_with("_bucket"))
                    .map(|s| s.value)
                    .collect();
                assert_eq!(buckets.len(), def.buckets.len() + 1, "{name} {key:?}");
                assert!(
                    buckets.windows(2).all(|w| w[0] <= w[1]),
                    "{name} {key:?} not cumulative"
                );
                let inf = ss
                    .iter()
                    .find(|s| s.labels.get("le").map(String::as_str) == Some("+Inf"))
                    .expect("+Inf bucket");
                let count = ss.iter().find(|s| s.name.ends_with("_count")).expect("_count");
                assert_eq!(inf.value, count.value, "{name} {key:?}");
                assert!(ss.iter().any(|s| s.name.ends_with("_sum")), "{name} {key:?} _sum");
            }
        }
    }
}

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

    let silence = json!({"matchers": {"brand": "Voltra"}, "ends_at": "2026-11-22T00:00:00Z", "comment": "known"});
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

    // Metrics: parse back; alert-stage figures are exported at scrape time.
    stats.metrics.observe(&m::STAGE_SECONDS, &["inference"], 0.25);
    stats.metrics.add(&m::EVENTS_DEAD, &["invalid_json"], 2.0);
    let (code, text) = call(&app, "GET", "/metrics", tok, None).await;
    assert_eq!(code, StatusCode::OK);
    let fams = parse_exposition(&text);
    check_against_declarations(&fams);
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

// ---------------------------------------------------------------------------
// The real engine, scraped by a real Prometheus.

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

fn require_prometheus() {
    for b in [PROMETHEUS, PROMTOOL] {
        assert!(
            Path::new(b).exists(),
            "{b} is missing: install the Debian package `prometheus` (scripts/setup.sh does)"
        );
    }
}

/// Every `expr` in a dashboard: panel targets (rows included) and annotations;
/// plus the `label_values(metric, label)` queries of its variables.
/// (panel title, expr) and (metric, label) pairs.
type Queries = (Vec<(String, String)>, Vec<(String, String)>);

fn dashboard_queries(dash: &Value) -> Queries {
    fn panels(v: &Value, out: &mut Vec<(String, String)>) {
        for p in v.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_string()));
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut exprs = Vec::new();
    panels(&dash["panels"], &mut exprs);
    for a in dash["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(e) = a["expr"].as_str() {
            exprs.push((format!("annotation {}", a["name"]), e.to_string()));
        }
    }
    let mut vars = Vec::new();
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        let q = v["query"]["query"].as_str().or(v["query"].as_str()).unwrap_or("");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query {q:?} is not label_values(metric, label)"));
        let (metric, label) = inner.split_once(',').unwrap();
        vars.push((metric.trim().to_string(), label.trim().to_string()));
    }
    (exprs, vars)
}

/// Grafana's built-in intervals → a window covering the test run; variables → `.*`.
fn substitute(expr: &str) -> String {
    let mut e = expr.to_string();
    for v in ["$__rate_interval", "$__interval", "$__range"] {
        e = e.replace(v, "5m");
    }
    for v in ["$instance", "$brand", "$language"] {
        e = e.replace(v, ".*");
    }
    assert!(!e.contains('$'), "unsubstituted variable in {e}");
    e
}

async fn prom_query(client: &reqwest::Client, base: &str, q: &str) -> Vec<Value> {
    let v: Value = util::get_json(client.get(format!("{base}/api/v1/query")).query(&[("query", q)])).await;
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_gets_data_for_every_dashboard_panel() {
    require_prometheus();
    k::require_broker();
    let root = util::root();
    // Rules first: cheap, and the Prometheus below loads them too.
    for args in [
        vec!["check", "rules", "earshot-rules.yml"],
        vec!["test", "rules", "earshot-rules.test.yml"],
    ] {
        let out = std::process::Command::new(PROMTOOL)
            .args(&args)
            .current_dir(root.join("prometheus"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The demo stream (it has a few broken lines) plus two more undecodable
    // messages, keyed by brand as `earshot produce` does, on a fresh topic.
    let base = k::unique("obs");
    let (input, group) = (format!("{base}.in"), format!("{base}.group"));
    let lines = util::read_lines(&root.join("examples/stream.jsonl"));
    k::create_topic(&input, 6).await;
    let total = lines.len() as u64 + 2;

    let toml = format!(
        "[kafka]\nbrokers = \"{}\"\ngroup_id = \"{group}\"\ntopics = [\"{input}\"]\ncommit_interval_ms = 200\n\
         [output]\nscored_topic = \"{base}.scored\"\nalerts_topic = \"{base}.alerts\"\ndead_letter_topic = \"{base}.dlq\"\n",
        k::brokers()
    );
    util::require_models();
    let cfg = earshot::config::Config::from_toml(&toml, "test", &root).unwrap();
    let stats = Arc::new(PipelineStats::default());
    let live = Arc::new(Live::new(stats.clone()));
    let api = Arc::new(TestAlerts::default());
    assert!(live.alerts.set(api.clone()).is_ok());
    let (addr, server_task) = server::serve("127.0.0.1:0".parse().unwrap(), AppState::new(live.clone(), None))
        .await
        .unwrap();

    // Prometheus scraping the engine every second, with the engine rules loaded.
    let dir = tempfile::tempdir().unwrap();
    let prom_port = util::free_port();
    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: earshot\n    static_configs:\n      - targets: ['{addr}']\n",
        rules = root.join("prometheus/earshot-rules.yml").display()
    );
    std::fs::write(dir.path().join("prometheus.yml"), prom_cfg).unwrap();
    let _prom = util::KillOnDrop(
        std::process::Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );

    let client = reqwest::Client::new();
    let prom = format!("http://127.0.0.1:{prom_port}");
    let prom_log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    let wait_prom = |q: &'static str, want: String| {
        let (client, prom) = (client.clone(), prom.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let got = match client
                    .get(format!("{prom}/api/v1/query"))
                    .query(&[("query", q)])
                    .send()
                    .await
                {
                    Ok(r) => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["data"]["result"][0]["value"][1].as_str().map(str::to_string)),
                    Err(_) => None,
                };
                if got.as_deref() == Some(want.as_str()) {
                    return true;
                }
                if Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    // Prometheus scrapes the idle engine first, so every counter starts from a sample.
    assert!(
        wait_prom("up", "1".into()).await,
        "prometheus never scraped earshot: {}",
        prom_log()
    );

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let api2 = api.clone();
    // No sinks configured: the real alert stage without an outbox.
    let alert_stage = earshot::alert::service::AlertService::start(&cfg.alert).expect("alert stage");
    let engine = tokio::spawn(earshot::pipeline::engine::run_kafka_live(
        cfg,
        "cpu",
        live.clone(),
        async move {
            let _ = stop_rx.await;
        },
        move |a| api2.active.lock().unwrap().push(a.payload.clone()),
        alert_stage,
    ));

    // Two halves, each processed and scraped before the next, so rates have
    // two points per series (a deadline for a hang, not a speed test).
    let half = lines.len() / 2;
    for (part, chunk) in [&lines[..half], &lines[half..]].into_iter().enumerate() {
        for l in chunk {
            let key = serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["brand"].as_str().map(str::to_string))
                .unwrap_or_default();
            k::send(
                k::producer(),
                rdkafka::producer::FutureRecord::to(&input)
                    .key(key.as_str())
                    .payload(l.as_bytes()),
            )
            .await;
        }
        if part == 1 {
            k::produce_json(&input, "bad", &json!({"no_text": true})).await;
            k::produce_json(&input, "bad", &json!("not an object")).await;
        }
        let want = if part == 0 { half as u64 } else { total };
        let deadline = Instant::now() + Duration::from_secs(600);
        while stats.acked.load(Ordering::Relaxed) < want {
            assert!(!engine.is_finished(), "engine stopped early: {:?}", engine.await);
            assert!(Instant::now() < deadline, "engine did not finish: {stats:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            wait_prom("earshot_events_acked_total", want.to_string()).await,
            "prometheus never scraped the processed stream: {}",
            prom_log()
        );
    }
    assert!(
        stats.alerts.load(Ordering::Relaxed) > 0,
        "the demo stream raises alerts"
    );

    // Our own scrape parses and matches the declarations.
    let text = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fams = parse_exposition(&text);
    check_against_declarations(&fams);
    let series = fams.values().map(|f| f.samples.len()).sum::<usize>();
    eprintln!(
        "scrape: {} bytes, {} families, {series} samples",
        text.len(),
        fams.len()
    );
    for (name, labels) in [
        ("earshot_events_dead_lettered_total", vec!["reason"]),
        ("earshot_kafka_consumer_lag_messages", vec!["topic", "partition"]),
        ("earshot_alerts_total", vec!["rule", "severity", "status"]),
    ] {
        let f = fams.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(f
            .samples
            .iter()
            .all(|s| labels.iter().all(|l| s.labels.contains_key(*l))));
    }
    let stats_json: Value = util::get_json(client.get(format!("http://{addr}/stats"))).await;
    eprintln!("/stats latency: {}", stats_json["latency_seconds"]);

    // A few more scrapes of the finished run (rules evaluate every second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let up = prom_query(&client, &prom, "up{job=\"earshot\"}").await;
    assert_eq!(up[0]["value"][1], "1", "{up:?}");

    let mut checked = 0;
    let mut empty = Vec::new();
    for entry in std::fs::read_dir(root.join("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (exprs, vars) = dashboard_queries(&dash);
        assert!(!exprs.is_empty(), "{} has no queries", path.display());
        for (metric, label) in vars {
            let v: Value = util::get_json(
                client
                    .get(format!("{prom}/api/v1/label/{label}/values"))
                    .query(&[("match[]", metric.as_str())]),
            )
            .await;
            assert!(
                v["data"].as_array().is_some_and(|a| !a.is_empty()),
                "{}: variable label_values({metric}, {label}) is empty",
                path.display()
            );
        }
        for (title, expr) in exprs {
            let q = substitute(&expr);
            let result = prom_query(&client, &prom, &q).await;
            let finite = result.iter().any(|r| {
                r["value"][1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .is_some_and(f64::is_finite)
            });
            if !finite {
                empty.push(format!(
                    "{} / {title}: {q} -> {result:?}",
                    path.file_name().unwrap().to_string_lossy()
                ));
            }
            checked += 1;
        }
    }
    assert!(empty.is_empty(), "panels without data:\n{}", empty.join("\n"));
    assert!(checked >= 30, "only {checked} expressions checked");
    // The engine's own rules evaluate on real series without errors.
    let rules: Value = util::get_json(client.get(format!("{prom}/api/v1/rules"))).await;
    for g in rules["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "{r}");
        }
    }

    let _ = stop_tx.send(());
    let summary = engine.await.unwrap().unwrap();
    assert!(summary.drained);
    assert_eq!(summary.acked, total);
    server_task.abort();
}
