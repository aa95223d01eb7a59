//! Shared helpers for the integration tests that talk to a real Kafka-protocol
//! broker: the local one from `bash scripts/broker.sh start` (127.0.0.1:9092)
//! unless `EARSHOT_KAFKA_BROKERS` names another.
//!
//! Async helpers (admin, producing) work inside any tokio runtime; sync tests
//! call them through [`block_on`]. Consumer helpers are blocking (they poll a
//! `BaseConsumer`): call them from sync code or `spawn_blocking`.
//! Every name a test creates comes from [`unique`], so reruns never collide.

// Shared by several test modules; not every module uses every helper.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Timeout for single broker round trips (metadata, watermarks, commits).
pub const RPC: Duration = Duration::from_secs(10);

/// The bootstrap servers: `EARSHOT_KAFKA_BROKERS` or the local broker.
pub fn brokers() -> String {
    std::env::var("EARSHOT_KAFKA_BROKERS")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:9092".to_string())
}

/// Fails with the fix when no broker accepts TCP connections (checked once).
pub fn require_broker() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let res = CHECKED.get_or_init(|| {
        let list = brokers();
        for hp in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let hp = hp.rsplit("://").next().unwrap_or(hp);
            if let Ok(addrs) = hp.to_socket_addrs() {
                for a in addrs {
                    if TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok() {
                        return Ok(());
                    }
                }
            }
        }
        Err(format!(
            "no Kafka broker reachable at {list}: run `bash scripts/broker.sh start` \
             (scripts/test.sh does), or set EARSHOT_KAFKA_BROKERS"
        ))
    });
    if let Err(msg) = res {
        panic!("{msg}");
    }
}

/// A name no earlier run used: `prefix-<unix ms>-<pid>-<counter>-<random>`
/// (valid as a Kafka topic or group name).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let rnd = RandomState::new().build_hasher().finish() & 0xff_ffff;
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{ms}-{}-{n}-{rnd:06x}", std::process::id())
}

/// Milliseconds since the Unix epoch (Kafka timestamps).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A shared multi-thread runtime for sync tests that need the async helpers.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime for kafka tests")
    })
}

/// Runs a future on [`runtime`] (from sync code only).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// A client config with `bootstrap.servers` set (fails fast without a broker).
pub fn client_config() -> ClientConfig {
    require_broker();
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers());
    c
}

pub fn admin() -> &'static AdminClient<DefaultClientContext> {
    static A: OnceLock<AdminClient<DefaultClientContext>> = OnceLock::new();
    A.get_or_init(|| client_config().create().expect("create kafka admin client"))
}

/// Creates `name` with `partitions` partitions (replication 1) and waits until
/// metadata shows all of them.
pub async fn create_topic(name: &str, partitions: i32) {
    let opts = AdminOptions::new()
        .operation_timeout(Some(RPC))
        .request_timeout(Some(RPC));
    let res = admin()
        .create_topics(&[NewTopic::new(name, partitions, TopicReplication::Fixed(1))], &opts)
        .await
        .unwrap_or_else(|e| panic!("create_topics({name}) request failed: {e}"));
    for r in res {
        if let Err((t, code)) = r {
            panic!("creating topic {t} failed: {code:?}");
        }
    }
    let deadline = Instant::now() + RPC;
    loop {
        let got = partition_count(name);
        if got == partitions as usize {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {name}: metadata shows {got} partitions, expected {partitions}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Number of partitions metadata reports for `topic` (0 if unknown).
pub fn partition_count(topic: &str) -> usize {
    let c: BaseConsumer = client_config().create().expect("create metadata client");
    let md = c
        .fetch_metadata(Some(topic), RPC)
        .unwrap_or_else(|e| panic!("metadata for {topic}: {e}"));
    md.topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len())
}

/// A producer with earshot's settings (idempotent, acks=all) plus `extra`.
pub fn producer_with(extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = client_config();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("create kafka producer")
}

/// The shared default producer.
pub fn producer() -> &'static FutureProducer {
    static P: OnceLock<FutureProducer> = OnceLock::new();
    P.get_or_init(|| producer_with(&[]))
}

/// Sends one record and returns its (partition, offset); panics on failure.
pub async fn send(p: &FutureProducer, rec: FutureRecord<'_, str, [u8]>) -> (i32, i64) {
    let topic = rec.topic.to_string();
    match p.send(rec, Duration::from_secs(30)).await {
        Ok(d) => (d.partition, d.offset),
        Err((e, _)) => panic!("produce to {topic} failed: {e}"),
    }
}

/// Produces one JSON message keyed by `key`; returns (partition, offset).
pub async fn produce_json(topic: &str, key: &str, payload: &serde_json::Value) -> (i32, i64) {
    let bytes = serde_json::to_vec(payload).unwrap();
    send(producer(), FutureRecord::to(topic).key(key).payload(&bytes[..])).await
}

/// Produces many keyed JSON messages with up to 1000 in flight; returns their
/// (partition, offset) in input order. Per-key order is kept (idempotent producer).
pub async fn produce_json_many<I>(topic: &str, items: I) -> Vec<(i32, i64)>
where
    I: IntoIterator<Item = (String, serde_json::Value)>,
{
    let p = producer();
    futures::stream::iter(items)
        .map(|(key, v)| async move {
            let bytes = serde_json::to_vec(&v).unwrap();
            send(p, FutureRecord::to(topic).key(&key[..]).payload(&bytes[..])).await
        })
        .buffered(1000)
        .collect()
        .await
}

/// One consumed message, detached from the consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Received {
    pub fn from_message<M: Message>(m: &M) -> Self {
        Received {
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("payload at {}/{} is not JSON: {e}", self.partition, self.offset))
    }

    /// The first header named `name` (None if absent or null).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Builds headers from (name, value) pairs.
pub fn headers(pairs: &[(&str, Option<&[u8]>)]) -> OwnedHeaders {
    pairs
        .iter()
        .fold(OwnedHeaders::new_with_capacity(pairs.len()), |h, (k, v)| {
            h.insert(rdkafka::message::Header { key: k, value: *v })
        })
}

/// A group-less consumer assigned to every partition of `topic` from the start.
fn reader(topic: &str) -> BaseConsumer {
    let c: BaseConsumer = client_config()
        .set("group.id", unique("earshot-test-reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create kafka reader");
    let n = partition_count(topic);
    assert!(n > 0, "topic {topic} does not exist");
    let mut tpl = TopicPartitionList::new();
    for p in 0..n as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).expect("assign partitions");
    c
}

/// Reads `topic` from the beginning until nothing arrives for `idle`
/// (blocking). For topics something else is still writing to.
pub fn read_all(topic: &str, idle: Duration) -> Vec<Received> {
    let c = reader(topic);
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < idle {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push(Received::from_message(&m));
                last = Instant::now();
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            None => {}
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

/// Reads `topic` from the beginning up to the high watermarks taken at the
/// call (blocking; fails after `timeout`). Deterministic and fast.
pub fn read_to_end(topic: &str, timeout: Duration) -> Vec<Received> {
    let c = reader(topic);
    let mut high: HashMap<i32, i64> = HashMap::new();
    let mut next: HashMap<i32, i64> = HashMap::new();
    for p in 0..partition_count(topic) as i32 {
        let (lo, hi) = c
            .fetch_watermarks(topic, p, RPC)
            .unwrap_or_else(|e| panic!("watermarks {topic}/{p}: {e}"));
        high.insert(p, hi);
        next.insert(p, lo);
    }
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while next.iter().any(|(p, n)| *n < high[p]) {
        assert!(
            Instant::now() < deadline,
            "read_to_end({topic}): timed out at {next:?}, high watermarks {high:?}"
        );
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                next.insert(m.partition(), m.offset() + 1);
                if m.offset() < high[&m.partition()] {
                    out.push(Received::from_message(&m));
                }
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            None => {}
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}
