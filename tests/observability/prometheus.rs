//! The real engine on the demo stream, scraped by a real Prometheus.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use earshot::pipeline::engine::Live;
use earshot::pipeline::PipelineStats;
use earshot::server::{self, AppState};
use serde_json::{json, Value};

use super::exposition::{check_against_declarations, parse_exposition, promtool_check_metrics, PROMTOOL};
use super::TestAlerts;
use crate::{kafka_util as k, util};

const PROMETHEUS: &str = "/usr/bin/prometheus";

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
    if promtool_check_metrics(&text) {
        eprintln!("promtool check metrics: a scrape of the finished run is clean");
    }
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
