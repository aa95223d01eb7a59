//! Alert delivery against real receivers: an axum server on 127.0.0.1 that
//! records requests (and answers 503/400 when told to), a real Alertmanager
//! (`/usr/bin/prometheus-alertmanager`), and the real `earshot run` binary
//! killed with SIGKILL while alerts are pending.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use earshot::alert::api::AlertApi;
use earshot::alert::lifecycle::{Lifecycle, LifecycleConfig};
use earshot::alert::outbox::{Entry, Outbox};
use earshot::alert::service::AlertService;
use earshot::alert::silence::Silences;
use earshot::alert::AlertOut;
use earshot::config::Config;
use earshot::detect::Cleared;
use earshot::types::{Dim, Explanation, Quote, Signal, SignalKey, SignalKind};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::kafka_util as k;
use crate::util;

// ---------------------------------------------------------------- receiver

#[derive(Debug, Clone)]
pub struct Req {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
}

impl Req {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub(crate) fn h(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// How a path answers.
#[derive(Debug, Clone)]
enum Mode {
    /// `status` until `until` (None: always), with an optional Retry-After.
    Fail {
        status: u16,
        until: Option<Instant>,
        retry_after: Option<u64>,
    },
    /// Answers `status` (a 3xx) with `Location: location`.
    Redirect { status: u16, location: String },
}

#[derive(Default)]
struct Recv {
    reqs: Mutex<Vec<Req>>,
    modes: Mutex<HashMap<String, Mode>>,
}

async fn record(State(st): State<Arc<Recv>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let mode = st.modes.lock().unwrap().get(&path).cloned();
    let (status, retry_after, location) = match mode {
        Some(Mode::Fail {
            status,
            until,
            retry_after,
        }) if until.is_none_or(|u| Instant::now() < u) => (status, retry_after, None),
        Some(Mode::Redirect { status, location }) => (status, None, Some(location)),
        _ => (200, None, None),
    };
    st.reqs.lock().unwrap().push(Req {
        path,
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
        status,
    });
    let mut r = StatusCode::from_u16(status).unwrap().into_response();
    if let Some(s) = retry_after {
        r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
    }
    if let Some(l) = location {
        r.headers_mut().insert("location", l.parse().unwrap());
    }
    r
}

/// A recording HTTP server on 127.0.0.1 (on the current tokio runtime).
pub struct Receiver {
    pub url: String,
    st: Arc<Recv>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let st = Arc::new(Recv::default());
        let app = axum::Router::new().fallback(record).with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, st }
    }
    pub(crate) fn fail(&self, path: &str, status: u16, for_: Option<Duration>, retry_after: Option<u64>) {
        self.st.modes.lock().unwrap().insert(
            path.to_string(),
            Mode::Fail {
                status,
                until: for_.map(|d| Instant::now() + d),
                retry_after,
            },
        );
    }
    pub(crate) fn redirect(&self, path: &str, status: u16, location: &str) {
        self.st.modes.lock().unwrap().insert(
            path.to_string(),
            Mode::Redirect {
                status,
                location: location.to_string(),
            },
        );
    }
    pub(crate) fn all(&self) -> Vec<Req> {
        self.st.reqs.lock().unwrap().clone()
    }
    pub(crate) fn heal(&self, path: &str) {
        self.st.modes.lock().unwrap().remove(path);
    }
    pub fn requests(&self, path: &str) -> Vec<Req> {
        self.st
            .reqs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
    pub(crate) fn ok(&self, path: &str) -> Vec<Req> {
        self.requests(path).into_iter().filter(|r| r.status == 200).collect()
    }
}

/// Verifies a Standard Webhooks signature the way a receiver would.
pub(crate) fn verify(secret: &str, r: &Req) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    let signed = format!("{}.{}.", r.h("webhook-id"), r.h("webhook-timestamp"));
    mac.update(signed.as_bytes());
    mac.update(&r.body);
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    r.h("webhook-signature").split(' ').any(|s| s == want)
}

pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// ---------------------------------------------------------------- helpers

pub(crate) const MIN: i64 = 60_000;

pub(crate) fn now_ms() -> i64 {
    k::now_ms()
}

pub(crate) fn signal(kind: SignalKind, brand: &str, product: &str, end: i64) -> Signal {
    Signal {
        kind,
        key: SignalKey(vec![(Dim::Brand, brand.into()), (Dim::Product, product.into())]),
        window_start: end - 15 * MIN,
        window_end: end,
        observed: 42,
        expected: 5.5,
        population: 300,
        baseline_share: 0.1,
        p_value: 1e-9,
        cluster: None,
        reason: None,
        explanation: Explanation {
            quotes: [
                "The power bank gets very hot",
                "Il surchauffe",
                "Se calienta mucho",
                "too hot",
            ]
            .iter()
            .enumerate()
            .map(|(i, t)| Quote {
                id: format!("q{i}"),
                text: t.to_string(),
                lang: "en".into(),
                event_time: end,
            })
            .collect(),
            top_terms: vec![("hot".into(), 12), ("overheating".into(), 9)],
            ..Default::default()
        },
    }
}

pub(crate) fn cleared(kind: SignalKind, brand: &str, product: &str, at: i64) -> Cleared {
    Cleared {
        kind,
        key: SignalKey(vec![(Dim::Brand, brand.into()), (Dim::Product, product.into())]),
        cluster: None,
        at,
    }
}

pub(crate) fn lifecycle(cfg: &Config) -> Lifecycle {
    Lifecycle::new(LifecycleConfig::from(&cfg.alert), Silences::default())
}

pub(crate) fn alert_config(dir: &Path, sinks: &str) -> Config {
    std::fs::write(dir.join("secret"), SECRET).unwrap();
    let toml = format!(
        "[alert]\ngrafana_url = \"http://grafana.test:3000\"\noutbox_path = \"outbox.redb\"\n\
         repeat_interval_minutes = 30\nresolve_after_minutes = 60\n{sinks}"
    );
    Config::from_toml(&toml, "test", dir).unwrap()
}

pub(crate) async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn entries(v: &[AlertOut]) -> Vec<Entry> {
    v.iter().map(Entry::from).collect()
}

// ---------------------------------------------------------------- 2. formats

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_formats_reach_a_real_receiver() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("EARSHOT_TEST_PD_KEY", "pd-routing-key-123");
    let u = &rx.url;
    let cfg = alert_config(
        dir.path(),
        &format!(
            "[[alert.sinks]]\nname = \"amw\"\nkind = \"alertmanager_webhook\"\nurl = \"{u}/am\"\n\
             [[alert.sinks]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{u}/slack\"\n\
             [[alert.sinks]]\nname = \"pd\"\nkind = \"pagerduty\"\nurl = \"{u}/pd\"\nrouting_key_env = \"EARSHOT_TEST_PD_KEY\"\n\
             [[alert.sinks]]\nname = \"gen\"\nkind = \"generic\"\nurl = \"{u}/gen\"\nsecret_file = \"secret\"\n"
        ),
    );
    assert!(
        !format!("{:?}", cfg.alert).contains("pd-routing-key-123"),
        "secrets are redacted"
    );
    let t0 = now_ms() - 30 * MIN;
    let mut lc = lifecycle(&cfg);
    let fired = lc.step(
        &[
            signal(SignalKind::VolumeSpike, "Voltra", "X2", t0),
            signal(SignalKind::SentimentShift, "Voltra", "X3", t0),
            signal(SignalKind::VolumeSpike, "Nimbus", "N1", t0),
        ],
        &[],
        Some(t0),
    );
    assert_eq!(fired.len(), 3);
    // Written before the workers start, so the first batch holds all three.
    let names: Vec<String> = cfg.alert.sinks.iter().map(|s| s.name.clone()).collect();
    let ob = Outbox::open(&cfg.alert.outbox_path, &names).unwrap();
    assert_eq!(ob.insert_blocking(entries(&fired)).unwrap(), 3);
    assert_eq!(ob.insert_blocking(entries(&fired)).unwrap(), 0, "same keys: no-op");
    drop(ob);
    let svc = AlertService::start(&cfg.alert).unwrap();
    let resolved = lc.step(
        &[],
        &[cleared(SignalKind::VolumeSpike, "Voltra", "X2", t0 + 20 * MIN)],
        None,
    );
    assert_eq!(resolved.len(), 1);
    svc.outbox().unwrap().insert(entries(&resolved)).await.unwrap();
    wait_for("all deliveries", Duration::from_secs(30), || svc.outbox_depth() == 0).await;

    // Generic: every request signed, one per change, id = the payload's key.
    let gen = rx.ok("/gen");
    assert_eq!(gen.len(), 4);
    for r in &gen {
        assert!(verify(SECRET, r), "signature of {}", r.h("webhook-id"));
        let b = r.json();
        assert_eq!(b["data"]["idempotency_key"], r.h("webhook-id"));
        assert_eq!(r.h("idempotency-key"), r.h("webhook-id"));
        assert!(b["type"].as_str().unwrap().starts_with("alert."));
    }
    let mut tampered = gen[0].clone();
    tampered.body.push(b' ');
    assert!(!verify(SECRET, &tampered), "the check can fail");
    let types: Vec<String> = gen
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types.iter().filter(|t| *t == "alert.resolved").count(), 1);

    // PagerDuty: trigger per firing, resolve with the same dedup_key.
    let pd: Vec<serde_json::Value> = rx.ok("/pd").iter().map(Req::json).collect();
    assert_eq!(pd.len(), 4);
    for e in &pd {
        assert_eq!(e["routing_key"], "pd-routing-key-123");
    }
    let x2 = &fired[0].fingerprint;
    let x2_events: Vec<&str> = pd
        .iter()
        .filter(|e| e["dedup_key"] == x2.as_str())
        .map(|e| e["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(x2_events, vec!["trigger", "resolve"]);
    let trig = pd.iter().find(|e| e["event_action"] == "trigger").unwrap();
    assert_eq!(trig["payload"]["source"], "earshot");
    assert_eq!(trig["payload"]["severity"], "critical");
    assert!(!trig["payload"]["summary"].as_str().unwrap().is_empty());

    // Alertmanager webhook v4, grouped by brand.
    let am: Vec<serde_json::Value> = rx.ok("/am").iter().map(Req::json).collect();
    assert_eq!(am[0]["version"], "4");
    let first_voltra = am.iter().find(|m| m["groupLabels"]["brand"] == "Voltra").unwrap();
    assert_eq!(
        first_voltra["alerts"].as_array().unwrap().len(),
        2,
        "Voltra's two alerts in one group"
    );
    assert_eq!(first_voltra["status"], "firing");
    assert_eq!(first_voltra["groupKey"], "{}:{brand=Voltra}");
    assert_eq!(first_voltra["commonLabels"]["brand"], "Voltra");
    for a in first_voltra["alerts"].as_array().unwrap() {
        assert_eq!(a["status"], "firing");
        assert!(a["labels"]["alertname"].is_string());
        assert!(a["startsAt"].as_str().unwrap().ends_with('Z'));
        assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
        assert!(a["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("var-brand=Voltra"));
    }
    let res = am.iter().find(|m| m["status"] == "resolved").unwrap();
    assert_eq!(res["alerts"][0]["fingerprint"], x2.as_str());
    assert!(res["alerts"][0]["endsAt"].as_str().unwrap().starts_with("20"));
    assert_eq!(
        am.iter().map(|m| m["alerts"].as_array().unwrap().len()).sum::<usize>(),
        4
    );

    // Slack: text and blocks, grouped the same way.
    let sl: Vec<serde_json::Value> = rx.ok("/slack").iter().map(Req::json).collect();
    assert_eq!(sl.len(), 3, "Voltra group, Nimbus group, the resolution");
    for m in &sl {
        assert!(!m["text"].as_str().unwrap().is_empty());
        let blocks = m["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert!(blocks.iter().any(|b| b["type"] == "section"));
    }
    let s = serde_json::to_string(&sl).unwrap();
    assert!(s.contains("Dashboard") && s.contains("The power bank gets very hot"));

    let stats = svc.delivery();
    assert_eq!(stats.len(), 4);
    assert!(
        stats.iter().all(|s| s.dropped == 0 && s.retries == 0 && s.pending == 0),
        "{stats:?}"
    );
    eprintln!("formats: {stats:?}");
}

// ---------------------------------------------------------------- redirects

/// A receiver that answers 307/308 must not get the signed body sent on to
/// the redirect target: the delivery client follows no redirects, and a 3xx
/// is a failed delivery that is not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_do_not_follow_redirects() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let u = &rx.url;
    let cfg = alert_config(
        dir.path(),
        &format!(
            "[[alert.sinks]]\nname = \"gen\"\nkind = \"generic\"\nurl = \"{u}/gen\"\nsecret_file = \"secret\"\n\
             [[alert.sinks]]\nname = \"gen-abs\"\nkind = \"generic\"\nurl = \"{u}/gen-abs\"\nsecret_file = \"secret\"\n\
             [[alert.sinks]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{u}/slack\"\n"
        ),
    );
    rx.redirect("/gen", 307, "/stolen");
    rx.redirect("/gen-abs", 308, &format!("{u}/stolen-abs?token=x"));
    rx.redirect("/slack", 302, "/stolen-slack");
    let svc = AlertService::start(&cfg.alert).unwrap();
    let t0 = now_ms() - 30 * MIN;
    let mut lc = lifecycle(&cfg);
    let fired = lc.step(&[signal(SignalKind::VolumeSpike, "Voltra", "X2", t0)], &[], Some(t0));
    svc.outbox().unwrap().insert(entries(&fired)).await.unwrap();
    wait_for("the outbox to empty", Duration::from_secs(30), || {
        svc.outbox_depth() == 0
    })
    .await;
    // Give a client that did follow redirects time to show it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paths: Vec<String> = rx.all().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.iter().all(|p| !p.starts_with("/stolen")),
        "a redirect was followed: {paths:?}"
    );
    for path in ["/gen", "/gen-abs"] {
        let got = rx.requests(path);
        assert_eq!(got.len(), 1, "{path}: one attempt, not retried");
        assert!(
            verify(SECRET, &got[0]),
            "{path}: the signed request went to the configured URL only"
        );
    }
    assert_eq!(rx.requests("/slack").len(), 1);
    for s in svc.delivery() {
        assert_eq!(
            (s.delivered, s.failures, s.retries, s.dropped),
            (0, 1, 0, 1),
            "{}: a 3xx is a failed delivery, not retried: {s:?}",
            s.sink
        );
    }
}

// ---------------------------------------------------------------- 3. retries

/// `EARSHOT_ALERT_503_SECS` sets how long the receiver answers 503 (default 6;
/// the figure is 120).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_the_receiver_recovers_and_drops_on_400() {
    let outage: u64 = std::env::var("EARSHOT_ALERT_503_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let u = &rx.url;
    let sink = |name: &str, path: &str| {
        format!(
            "[[alert.sinks]]\nname = \"{name}\"\nkind = \"generic\"\nurl = \"{u}{path}\"\nsecret_file = \"secret\"\n\
             backoff_initial_ms = 200\nbackoff_max_ms = 5000\nmax_attempts = 1000\nmax_concurrency = 2\n"
        )
    };
    let cfg = alert_config(
        dir.path(),
        &format!(
            "{}{}{}",
            sink("flaky", "/flaky"),
            sink("later", "/later"),
            sink("bad", "/bad")
        ),
    );
    rx.fail("/flaky", 503, Some(Duration::from_secs(outage)), None);
    rx.fail("/later", 503, Some(Duration::from_secs(3)), Some(1));
    rx.fail("/bad", 400, None, None);
    let svc = AlertService::start(&cfg.alert).unwrap();
    let t0 = now_ms() - 60 * MIN;
    let mut lc = lifecycle(&cfg);
    let mut all = Vec::new();
    for i in 0..5 {
        let a = lc.step(
            &[signal(SignalKind::VolumeSpike, &format!("Brand{i}"), "P", t0 + i * MIN)],
            &[],
            Some(t0 + i * MIN),
        );
        svc.outbox().unwrap().insert(entries(&a)).await.unwrap();
        all.extend(a);
    }
    let started = Instant::now();
    wait_for("delivery after the outage", Duration::from_secs(outage + 120), || {
        svc.outbox_depth() == 0
    })
    .await;
    let took = started.elapsed();
    let want: BTreeSet<String> = all.iter().map(|a| a.idempotency_key.clone()).collect();
    for path in ["/flaky", "/later"] {
        let got: BTreeSet<String> = rx.ok(path).iter().map(|r| r.h("webhook-id").to_string()).collect();
        assert_eq!(got, want, "{path}: every alert arrived");
        assert!(rx.ok(path).iter().all(|r| verify(SECRET, r)));
    }
    let stats: BTreeMap<String, _> = svc.delivery().into_iter().map(|s| (s.sink.clone(), s)).collect();
    let f = &stats["flaky"];
    assert_eq!(f.delivered, 5);
    assert_eq!(f.dropped, 0);
    assert!(f.retries > 0 && f.backoff_seconds > 0.0, "{f:?}");
    assert_eq!(
        f.failures,
        rx.requests("/flaky").iter().filter(|r| r.status == 503).count() as u64
    );
    let l = &stats["later"];
    assert!(l.retries > 0);
    assert_eq!(l.backoff_seconds, l.retries as f64, "Retry-After: 1 honoured: {l:?}");
    let b = &stats["bad"];
    assert_eq!(
        (b.delivered, b.retries, b.dropped, b.failures),
        (0, 0, 5, 5),
        "400 is not retried"
    );
    assert_eq!(rx.requests("/bad").len(), 5);
    eprintln!(
        "retry: outage {outage}s, all delivered after {:.1}s; flaky {f:?}; retry-after {l:?}; bad {b:?}",
        took.as_secs_f64()
    );
}

// ---------------------------------------------------------------- 1. Alertmanager

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_alertmanager_sees_firing_then_resolved() {
    let bin = Path::new("/usr/bin/prometheus-alertmanager");
    assert!(
        bin.exists(),
        "prometheus-alertmanager is missing: run `bash scripts/setup.sh` (apt-get install prometheus-alertmanager)"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("am.yml"),
        "route:\n  receiver: 'null'\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: 'null'\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let port = util::free_port();
    let _am = util::KillOnDrop(
        std::process::Command::new(bin)
            .arg(format!("--config.file={}", dir.path().join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/-/ready")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "alertmanager did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cfg = alert_config(
        dir.path(),
        &format!(
            "[[alert.sinks]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"{base}\"\nresend_interval_secs = 1\n"
        ),
    );
    let svc = AlertService::start(&cfg.alert).unwrap();
    let t0 = now_ms() - 20 * MIN;
    let mut lc = lifecycle(&cfg);
    let fired = lc.step(&[signal(SignalKind::VolumeSpike, "Voltra", "X2", t0)], &[], Some(t0));
    let fp = fired[0].fingerprint.clone();
    svc.outbox().unwrap().insert(entries(&fired)).await.unwrap();
    let get = || async {
        let v: serde_json::Value = util::get_json(client.get(format!("{base}/api/v2/alerts"))).await;
        v.as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["fingerprint"] == fp.as_str())
            .cloned()
    };
    let start = Instant::now();
    let firing = loop {
        if let Some(a) = get().await {
            break a;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "alert never appeared in alertmanager"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(firing["status"]["state"], "active");
    assert_eq!(firing["labels"]["alertname"], "volume_spike");
    assert_eq!(firing["labels"]["brand"], "Voltra");
    assert_eq!(firing["labels"]["severity"], "critical");
    assert!(firing["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("expected"));
    assert!(firing["generatorURL"].as_str().unwrap().contains("var-product=X2"));
    // Kept alive by re-sends (endsAt moves forward).
    let ends0 = firing["endsAt"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let again = get().await.expect("still firing");
    assert_eq!(again["status"]["state"], "active");
    assert!(again["endsAt"].as_str().unwrap() > ends0.as_str(), "re-sent: {again}");
    // Resolve: gone from the active alerts.
    let resolved = lc.step(
        &[],
        &[cleared(SignalKind::VolumeSpike, "Voltra", "X2", t0 + 5 * MIN)],
        None,
    );
    svc.outbox().unwrap().insert(entries(&resolved)).await.unwrap();
    let start = Instant::now();
    while get().await.is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "alert never resolved in alertmanager"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = &svc.delivery()[0];
    assert!(s.delivered >= 3 && s.dropped == 0, "{s:?}");
    eprintln!("alertmanager: {s:?}");
}
