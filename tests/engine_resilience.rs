//! `earshot run` under broker trouble and shutdown (the real binary):
//! `--until-idle` never succeeds before partitions are assigned; `/readyz`
//! answers 503 while the broker is down and 200 again after it is back;
//! SIGTERM while the broker is down exits within the drain bound.
//!
//! The outage test stops and starts a broker of its own (the bundled
//! noida-db on a separate port and data dir, `EARSHOT_KAFKA_PORT`), so the
//! shared broker on 9092 that other tests use is never interrupted; a guard
//! stops it even when the test fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::{kafka_util as k, util};

/// The binary under test: `EARSHOT_TEST_BIN` (a private copy, when other
/// checkouts share the target dir) or cargo's.
fn bin() -> String {
    std::env::var("EARSHOT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_earshot").to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, brokers: &str, group: &str, topic: &str, extra_kafka: &str) -> std::path::PathBuf {
    let toml = format!(
        "[model]\nencoder = \"random\"\ndir = \"{models}\"\n\
         [kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{group}\"\ntopics = [\"{topic}\"]\ncommit_interval_ms = 200\n{extra_kafka}\
         [output]\nalerts_topic = \"{topic}.alerts\"\ndead_letter_topic = \"{topic}.dlq\"\n\
         [pipeline]\ndrain_timeout_ms = 5000\nstall_timeout_ms = 10000\n",
        models = util::root().join("models").display(),
    );
    let p = dir.join("earshot.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

fn earshot(args: &[&str], log: &Path) -> Child {
    Command::new(bin())
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("EARSHOT_UNTIL_IDLE")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Status code and body of a GET on the engine's HTTP server.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default();
    Some((code, body))
}

fn wait_ready(port: u16, want: u16, within: Duration, log: &Path) -> String {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some((code, body)) = get(port, "/readyz") {
            if code == want {
                return body;
            }
            last = Some((code, body));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "/readyz did not answer {want} within {within:?}; last {last:?}\nlog:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A bundled broker on its own port and data dir; stopped on drop.
struct OwnBroker {
    port: u16,
}

impl OwnBroker {
    fn script(&self, cmd: &str) {
        let st = Command::new("bash")
            .arg(util::root().join("scripts/broker.sh"))
            .arg(cmd)
            .env("EARSHOT_KAFKA_PORT", self.port.to_string())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "broker.sh {cmd} (port {}) failed", self.port);
    }
    fn start(port: u16) -> Self {
        let b = Self { port };
        b.script("start");
        b
    }
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(util::root().join("scripts/broker.sh"))
            .arg("stop")
            .env("EARSHOT_KAFKA_PORT", self.port.to_string())
            .stdout(Stdio::null())
            .status();
    }
}

fn produce(brokers: &str, topic: &str, partitions: usize, n: usize, dir: &Path) {
    let file = dir.join("events.jsonl");
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({"id": format!("e{i}"), "brand": format!("b{}", i % 4), "text": "the battery died after two days",
                "event_time": 1_795_000_000_000i64 + i as i64 * 1000})
            .to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let st = Command::new(bin())
        .args(["produce", "--brokers", brokers, "--topic", topic, "--partitions"])
        .arg(partitions.to_string())
        .arg(&file)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "earshot produce failed");
}

/// Another member of the group holds the only partition (it sorts first, so
/// the range and round-robin assignors both give it the partition): the old
/// `--until-idle` exited 0 after ~26 s having read nothing.
#[test]
fn until_idle_does_not_succeed_when_no_partition_is_ever_assigned() {
    k::require_broker();
    util::require_models();
    let dir = tempfile::tempdir().unwrap();
    let topic = k::unique("resil-unassigned");
    let group = k::unique("resil-unassigned-group");
    produce(&k::brokers(), &topic, 1, 50, dir.path());
    let holder: BaseConsumer = k::client_config()
        .set("group.id", &group)
        .set("client.id", "aaaa-holder")
        .set("session.timeout.ms", "60000")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    holder.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while holder.assignment().map_or(0, |a| a.count()) == 0 {
        assert!(Instant::now() < deadline, "the holder got no partition");
        let _ = holder.poll(Duration::from_millis(100));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let polling = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = holder.poll(Duration::from_millis(100));
            }
            holder.unsubscribe();
        })
    };
    let cfg = write_config(
        dir.path(),
        &k::brokers(),
        &group,
        &topic,
        "properties = { \"client.id\" = \"zzzz-earshot\" }\n",
    );
    let log = dir.path().join("run.log");
    let start = Instant::now();
    let mut child = earshot(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--http-addr",
            "off",
            "--until-idle",
            "2",
            "--assignment-timeout",
            "20",
        ],
        &log,
    );
    let status = wait_exit(&mut child, Duration::from_secs(90));
    stop.store(true, Ordering::Relaxed);
    polling.join().unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("earshot run did not stop\n{text}")
    });
    assert_eq!(status.code(), Some(5), "expected exit 5 (Kafka)\n{text}");
    assert!(
        start.elapsed() >= Duration::from_secs(20),
        "stopped before the assignment timeout"
    );
    assert!(
        text.contains("waiting for the group to assign partitions"),
        "no waiting line\n{text}"
    );
    assert!(text.contains("assigned no partitions to this member"), "{text}");
}

/// Broker stopped: /readyz 503 naming the broker (and the metric says so);
/// broker back: 200 again. Then, broker stopped again: SIGTERM ends the run
/// within `pipeline.drain_timeout_ms` (5 s) plus the 5 s grace.
#[test]
fn readyz_follows_the_broker_and_sigterm_exits_within_the_drain_bound_while_it_is_down() {
    util::require_models();
    let broker = OwnBroker::start(19_000 + (std::process::id() % 500) as u16);
    let dir = tempfile::tempdir().unwrap();
    let topic = k::unique("resil-outage");
    produce(&broker.addr(), &topic, 2, 200, dir.path());
    let cfg = write_config(dir.path(), &broker.addr(), &k::unique("resil-outage-group"), &topic, "");
    let http = free_port();
    let log = dir.path().join("run.log");
    let mut child = earshot(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--http-addr",
            &format!("127.0.0.1:{http}"),
        ],
        &log,
    );
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
        }
    }
    let guard = Kill(&mut child);
    wait_ready(http, 200, Duration::from_secs(90), &log);

    broker.script("stop");
    let body = wait_ready(http, 503, Duration::from_secs(60), &log);
    assert!(body.contains("broker_unreachable"), "{body}");
    let (_, metrics) = get(http, "/metrics").unwrap();
    assert!(
        metrics.contains("earshot_not_ready{reason=\"broker_unreachable\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("earshot_ready 0"), "{metrics}");

    broker.script("start");
    wait_ready(http, 200, Duration::from_secs(60), &log);

    broker.script("stop");
    wait_ready(http, 503, Duration::from_secs(60), &log);
    let pid = guard.0.id().to_string();
    let sent = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = wait_exit(guard.0, Duration::from_secs(20));
    let took = sent.elapsed();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("no exit 20 s after SIGTERM with the broker down\n{text}"));
    assert!(took <= Duration::from_secs(11), "exit took {took:?}\n{text}");
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "exit {status:?} (0 drained, 3 not drained)\n{text}"
    );
    drop(broker);
}

/// A run that fails (here: its dead-letter topic name is invalid, so the
/// first malformed message cannot be delivered) exits 5 and leaves the
/// consumer group, so another member gets the partitions at once. Before,
/// the process exited without leaving: with the bundled broker (which never
/// evicts a vanished member) the group stayed blocked for good, on a real
/// cluster for `session.timeout.ms`.
#[test]
fn a_failed_run_leaves_the_consumer_group() {
    k::require_broker();
    util::require_models();
    let dir = tempfile::tempdir().unwrap();
    let topic = k::unique("resil-fail");
    let group = k::unique("resil-fail-group");
    produce(&k::brokers(), &topic, 2, 20, dir.path());
    // One malformed message: it must go to the (unwritable) dead-letter topic.
    k::block_on(k::produce_json_many(
        &topic,
        vec![("b0".to_string(), serde_json::json!({"id": "bad"}))],
    ));
    let cfg = write_config(
        dir.path(),
        &k::brokers(),
        &group,
        &topic,
        "properties = { \"session.timeout.ms\" = \"60000\" }\n",
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("dead_letter_topic = \"{topic}.dlq\""),
        "dead_letter_topic = \"no such/topic!\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let log = dir.path().join("run.log");
    let mut child = earshot(&["run", "--config", cfg.to_str().unwrap(), "--http-addr", "off"], &log);
    let status = wait_exit(&mut child, Duration::from_secs(90));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("earshot run did not stop\n{text}")
    });
    assert_eq!(status.code(), Some(5), "expected exit 5 (Kafka)\n{text}");
    assert!(text.contains("left the consumer group"), "{text}");
    // Another member is assigned both partitions well within the failed
    // member's 60 s session timeout.
    let next: BaseConsumer = k::client_config()
        .set("group.id", &group)
        .set("session.timeout.ms", "10000")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    next.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while next.assignment().map_or(0, |a| a.count()) < 2 {
        assert!(
            Instant::now() < deadline,
            "the group still holds the failed member's partitions after 30 s\n{text}"
        );
        let _ = next.poll(Duration::from_millis(100));
    }
}
