//! The engine against the real local broker (scripts/broker.sh): volume,
//! exactly-once output in the happy path, dead letters with reasons, restart
//! from committed offsets, and two instances sharing a group. Volume runs use
//! the small random encoder (same pipeline code) so they take seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use earshot::config::Config;
use earshot::pipeline::{engine, PipelineStats};

use crate::{kafka_util as k, util};

struct Topics {
    input: String,
    scored: String,
    alerts: String,
    dead: String,
    group: String,
}

fn topics(name: &str) -> Topics {
    let base = k::unique(name);
    Topics {
        input: format!("{base}.in"),
        scored: format!("{base}.scored"),
        alerts: format!("{base}.alerts"),
        dead: format!("{base}.dlq"),
        group: format!("{base}.group"),
    }
}

fn config(t: &Topics) -> Config {
    util::require_models();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("EARSHOT_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_test_writer()
        .try_init();
    let toml = format!(
        r#"
[model]
encoder = "random"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
topics = ["{input}"]
commit_interval_ms = 200
[output]
scored_topic = "{scored}"
alerts_topic = "{alerts}"
dead_letter_topic = "{dead}"
[pipeline]
drain_timeout_ms = 20000
"#,
        brokers = k::brokers(),
        group = t.group,
        input = t.input,
        scored = t.scored,
        alerts = t.alerts,
        dead = t.dead,
    );
    Config::from_toml(&toml, "test", &util::root()).unwrap()
}

/// Fresh topics with `n` events (12 brands) produced to the 6-partition input.
fn loaded_topics(name: &str, n: usize) -> Topics {
    let t = topics(name);
    k::block_on(async {
        k::create_topic(&t.input, 6).await;
        k::produce_json_many(&t.input, events(n, 12)).await;
    });
    t
}

/// Shrinks every queue so an instance stops with data still unread.
fn small_queues(mut c: Config) -> Config {
    c.pipeline.channel_capacity = 64;
    c.pipeline.max_in_flight = 64;
    c.pipeline.merge_buffer = 64;
    c
}

/// Review texts from the fixtures, cycled.
fn texts() -> Vec<String> {
    ["dev_reviews.jsonl", "category_eval.jsonl"]
        .iter()
        .flat_map(|f| util::read_lines(&util::fixture(f)))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(&l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// `n` well-formed events over `brands` keys, one per 10 s of event time.
fn events(n: usize, brands: usize) -> Vec<(String, serde_json::Value)> {
    let texts = texts();
    let t0 = 1_795_000_000_000i64;
    (0..n)
        .map(|i| {
            let brand = format!("brand{}", i % brands);
            let region = ["us", "de", "jp"][i % 3];
            let v = serde_json::json!({
                "id": format!("ev{i:06}"),
                "brand": brand,
                "product": format!("p{}", i % 7),
                "region": region,
                "text": texts[i % texts.len()],
                "rating": 1 + (i % 5),
                "event_time": t0 + i as i64 * 10_000,
            });
            (brand, v)
        })
        .collect()
}

/// Runs an engine until `want` messages are acknowledged (or the test times out).
async fn run_until(cfg: Config, want: u64, stats: Arc<PipelineStats>) -> engine::RunSummary {
    let watch = stats.clone();
    let stop = async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
        while watch.acked.load(Ordering::Relaxed) < want && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    engine::run_kafka(cfg, "cpu", stats, stop, |_| {}).await.unwrap()
}

fn ids(recs: &[k::Received]) -> Vec<String> {
    recs.iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn fifty_thousand_events_scored_exactly_once_and_bad_messages_dead_lettered() {
    k::require_broker();
    let t = topics("engine-volume");
    let n = 50_000;
    let evs = events(n, 24);
    let produced: BTreeSet<String> = evs.iter().map(|(_, v)| v["id"].as_str().unwrap().to_string()).collect();
    let bad: Vec<(&[u8], &str)> = vec![
        (b"not json at all", "invalid_json"),
        (b"{\"id\": \"b1\", \"text\": \"   \"}", "empty_text"),
        (b"{\"id\": \"b2\", \"brand\": \"x\"}", "missing_field"),
        (b"{\"id\": \"b3\", \"text\": \"caf\xe9\"}", "invalid_utf8"),
        (b"[1, 2, 3]", "not_an_object"),
        (
            b"{\"id\": \"b4\", \"text\": \"ok\", \"event_time\": \"last tuesday\"}",
            "bad_time",
        ),
    ];
    k::block_on(async {
        k::create_topic(&t.input, 6).await;
        k::produce_json_many(&t.input, evs).await;
        for (payload, _) in &bad {
            k::send(
                k::producer(),
                rdkafka::producer::FutureRecord::to(&t.input)
                    .key("bad")
                    .payload(*payload),
            )
            .await;
        }
    });
    let total = (n + bad.len()) as u64;
    let stats = Arc::new(PipelineStats::default());
    let start = std::time::Instant::now();
    let summary = k::block_on(run_until(config(&t), total, stats));
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "engine: {summary:?} in {secs:.1} s ({:.0} events/s incl. start-up)",
        total as f64 / secs
    );
    assert!(summary.drained);
    assert_eq!(summary.acked, total);
    assert_eq!(summary.scored, n as u64);

    let scored = k::read_to_end(&t.scored, Duration::from_secs(60));
    let got = ids(&scored);
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), n, "every event exactly once (no duplicates)");
    assert_eq!(unique, produced, "the same ids came out as went in");
    let first = scored[0].json();
    assert!(first["scored"]["sentiment"].is_string() && first["scored"]["category"].is_string());

    let dead = k::read_to_end(&t.dead, Duration::from_secs(30));
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for d in &dead {
        *reasons
            .entry(String::from_utf8(d.header("earshot.reason").unwrap().to_vec()).unwrap())
            .or_default() += 1;
    }
    let want: BTreeMap<String, usize> = bad.iter().map(|(_, c)| (c.to_string(), 1)).collect();
    assert_eq!(
        reasons, want,
        "exactly the bad messages are dead-lettered, each with its reason"
    );
    for d in &dead {
        assert_eq!(d.header("earshot.source.topic").unwrap(), t.input.as_bytes());
        assert!(d.header("earshot.source.offset").is_some() && d.header("earshot.error").is_some());
        assert!(!d.payload.is_empty() || d.header("earshot.reason") == Some(b"no_payload"));
    }
}

#[test]
fn restart_resumes_from_committed_offsets_without_gap_or_repeat() {
    k::require_broker();
    let n = 3000u64;
    let t = loaded_topics("engine-restart", n as usize);
    // Small queues, so the first instance stops with most of the topic unread.
    let small = |t: &Topics| small_queues(config(t));
    let first = k::block_on(run_until(small(&t), 1000, Arc::new(PipelineStats::default())));
    assert!(first.drained && first.acked >= 1000 && first.acked < n, "{first:?}");
    let second = k::block_on(run_until(
        small(&t),
        n - first.acked,
        Arc::new(PipelineStats::default()),
    ));
    eprintln!("first run {first:?}\nsecond run {second:?}");
    assert_eq!(
        first.acked + second.acked,
        n,
        "the second run starts exactly after the first's commit"
    );
    let got = ids(&k::read_to_end(&t.scored, Duration::from_secs(60)));
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), n as usize, "no gap");
    assert_eq!(got.len(), n as usize, "no repeat after a clean shutdown");
}

/// Two instances in one group on a 12,000-event backlog: A starts; B joins
/// once A has acknowledged `b_joins_after` messages (0: both at once), B
/// leaves (drains, commits) after 2,000; A runs until everything is
/// acknowledged. Returns the summaries and the duplicate count.
fn two_instances(name: &str, b_joins_after: u64) -> (engine::RunSummary, engine::RunSummary, usize) {
    k::require_broker();
    let n = 12_000u64;
    let t = loaded_topics(name, n as usize);
    let (sa, sb) = (Arc::new(PipelineStats::default()), Arc::new(PipelineStats::default()));
    let (a, b) = k::block_on(async {
        // Small queues, so B leaves with part of its partitions unread.
        let cfg = small_queues(config(&t));
        let (sa2, sb2) = (sa.clone(), sb.clone());
        let b_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let b_done2 = b_done.clone();
        let watch = (sa.clone(), sb.clone());
        // A stops once B has stopped and A has been idle (everything read) for 3 s.
        let stop_a = async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
            let mut last = (0, tokio::time::Instant::now());
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let got = watch.0.received.load(Ordering::Relaxed);
                if got != last.0 {
                    last = (got, tokio::time::Instant::now());
                } else if b_done2.load(Ordering::Relaxed)
                    && watch.0.acked.load(Ordering::Relaxed) == got
                    && last.1.elapsed() > Duration::from_secs(3)
                {
                    break;
                }
            }
        };
        let a = tokio::spawn(engine::run_kafka(cfg.clone(), "cpu", sa2, stop_a, |_| {}));
        let watch_a = sa.clone();
        let b = tokio::spawn(async move {
            while watch_a.acked.load(Ordering::Relaxed) < b_joins_after {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            run_until(cfg, 2000, sb2).await
        });
        let b = b.await.unwrap();
        b_done.store(true, Ordering::Relaxed);
        (a.await.unwrap().unwrap(), b)
    });
    eprintln!("A {a:?}\nB {b:?}");
    assert!(
        b.acked >= 2000 && b.acked < n / 2 && a.acked > n / 2,
        "both worked; A took over B's partitions"
    );
    let got = ids(&k::read_to_end(&t.scored, Duration::from_secs(60)));
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for id in &got {
        *counts.entry(id).or_default() += 1;
    }
    let dups = counts.values().filter(|c| **c > 1).count();
    eprintln!(
        "scored {} messages, {} distinct, {dups} delivered twice",
        got.len(),
        counts.len()
    );
    assert_eq!(counts.len(), n as usize, "no event lost across the rebalance");
    (a, b, dups)
}

#[test]
fn two_instances_split_partitions_then_one_takes_over_without_loss() {
    let (_, _, dups) = two_instances("engine-group", 0);
    // At-least-once allows redelivery around a rebalance (when the broker
    // reports the revoked assignment as lost). Re-reading B's partitions from
    // scratch would be ~half the topic.
    assert!(
        dups < 3_000,
        "{dups} redeliveries: B's commits on leaving did not stick"
    );
}

/// B joins while A is mid-backlog: A's revoke must drain (the event-time
/// merge used to hold A's in-flight events waiting for unread data the
/// blocked poll thread could not deliver, so every revoke waited out the
/// 20 s drain timeout and redelivered what was in flight).
#[test]
fn a_member_joining_mid_backlog_revokes_without_waiting_out_the_drain_timeout() {
    let (a, b, dups) = two_instances("engine-join", 1500);
    assert_eq!(a.revokes_undrained, 0, "A's revokes drained: {a:?}");
    assert_eq!(b.revokes_undrained, 0, "B's revokes drained: {b:?}");
    assert!(dups < 3_000, "{dups} redeliveries");
}
