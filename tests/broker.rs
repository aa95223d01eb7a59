//! Broker conformance: what earshot relies on from the Kafka-protocol broker,
//! checked with the same rdkafka (bundled librdkafka) the engine uses, against
//! the local broker (`bash scripts/broker.sh start`, 127.0.0.1:9092) or
//! `EARSHOT_KAFKA_BROKERS`. Keeps a broker regression (or a broker swap) from
//! passing silently: topic creation, idempotent produce with headers and each
//! compression codec, consumer groups (eager and cooperative) with rebalance on
//! leave, commit and resume (manual and auto-commit on close, offsets stored
//! only by the application), regex subscription, offsets-for-times and
//! watermarks. Every test uses fresh topic and group names, so reruns on the
//! same broker data never collide.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka_util::{self as ku, block_on, unique, Received, RPC};

/// How long a consumer-group step (join, rebalance, catching up) may take.
const GROUP_STEP: Duration = Duration::from_secs(30);

fn report(what: &str, t0: Instant) {
    eprintln!("[broker] {what}: {:.2} s", t0.elapsed().as_secs_f64());
}

/// Produces `per_partition` JSON messages `{"id": "<tag>-<p>-<i>"}` to each
/// partition; returns the ids.
fn produce_per_partition(topic: &str, partitions: i32, per_partition: usize, tag: &str) -> BTreeSet<String> {
    block_on(async {
        let p = ku::producer();
        let mut sends = Vec::new();
        let mut ids = BTreeSet::new();
        for part in 0..partitions {
            for i in 0..per_partition {
                let id = format!("{tag}-{part}-{i}");
                ids.insert(id.clone());
                sends.push(async move {
                    let bytes = serde_json::to_vec(&serde_json::json!({ "id": id })).unwrap();
                    let (got, _) = ku::send(
                        p,
                        FutureRecord::to(topic).partition(part).key(&id[..]).payload(&bytes[..]),
                    )
                    .await;
                    assert_eq!(got, part, "record for partition {part} landed in {got}");
                });
            }
        }
        futures::future::join_all(sends).await;
        ids
    })
}

fn id_of(r: &Received) -> String {
    r.json()["id"].as_str().expect("id field").to_string()
}

fn partitions_of(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// Polls once; returns the message, if any (errors fail the test).
fn poll_one(c: &BaseConsumer, ms: u64) -> Option<Received> {
    match c.poll(Duration::from_millis(ms)) {
        Some(Ok(m)) => Some(Received::from_message(&m)),
        Some(Err(e)) => panic!("consumer error: {e}"),
        None => None,
    }
}

#[test]
fn admin_creates_topics_with_partitions() {
    let t0 = Instant::now();
    let topic = unique("conf-admin");
    block_on(ku::create_topic(&topic, 6));
    assert_eq!(ku::partition_count(&topic), 6);

    let opts = AdminOptions::new().operation_timeout(Some(RPC));
    let again = block_on(ku::admin().create_topics(&[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))], &opts))
        .expect("create_topics request");
    assert!(
        matches!(again[..], [Err((_, RDKafkaErrorCode::TopicAlreadyExists))]),
        "creating {topic} twice: {again:?}"
    );
    assert_eq!(
        ku::partition_count(&topic),
        6,
        "a refused re-create must not change the topic"
    );

    let c: BaseConsumer = ku::client_config().create().unwrap();
    for p in 0..6 {
        assert_eq!(c.fetch_watermarks(&topic, p, RPC).unwrap(), (0, 0), "new partition {p}");
    }
    report("admin: create 6 partitions, duplicate refused, watermarks", t0);
}

#[test]
fn idempotent_produce_with_headers_and_each_compression() {
    let t0 = Instant::now();
    let filler = "the delivery was late again and the box was damaged; ".repeat(8);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let t1 = Instant::now();
        let topic = unique(&format!("conf-codec-{codec}"));
        block_on(ku::create_topic(&topic, 3));
        let producer = ku::producer_with(&[("compression.type", codec), ("linger.ms", "20")]);
        let n = 300;
        let sent: Vec<((i32, i64), String, Vec<u8>)> = block_on(async {
            let sends = (0..n).map(|i| {
                let (producer, topic, filler) = (&producer, &topic, &filler);
                async move {
                    let key = format!("brand-{}", i % 7);
                    let payload = serde_json::to_vec(&serde_json::json!({"id": i, "text": filler})).unwrap();
                    let id = i.to_string();
                    let h = ku::headers(&[
                        ("earshot-id", Some(id.as_bytes())),
                        ("earshot-codec", Some(codec.as_bytes())),
                        ("empty", Some(&b""[..])),
                        ("binary", Some(&[0u8, 255, 1, 254, 0][..])),
                        ("null", None),
                        ("earshot-id", Some(&b"second value, same name"[..])),
                    ]);
                    let at = ku::send(
                        producer,
                        FutureRecord::to(topic).key(&key[..]).payload(&payload[..]).headers(h),
                    )
                    .await;
                    (at, key, payload)
                }
            });
            futures::future::join_all(sends).await
        });
        let got = ku::read_to_end(&topic, Duration::from_secs(30));
        assert_eq!(got.len(), n, "{codec}: read back {} of {n} records", got.len());
        let by_pos: BTreeMap<(i32, i64), &Received> = got.iter().map(|r| ((r.partition, r.offset), r)).collect();
        assert_eq!(by_pos.len(), n, "{codec}: duplicate positions");
        for (i, (at, key, payload)) in sent.iter().enumerate() {
            let r = by_pos
                .get(at)
                .unwrap_or_else(|| panic!("{codec}: record {i} not found at {at:?}"));
            assert_eq!(r.key.as_deref(), Some(&key[..]), "{codec}: key of record {i}");
            assert_eq!(&r.payload, payload, "{codec}: payload of record {i}");
            let want: Vec<(String, Option<Vec<u8>>)> = vec![
                ("earshot-id".into(), Some(i.to_string().into_bytes())),
                ("earshot-codec".into(), Some(codec.as_bytes().to_vec())),
                ("empty".into(), Some(vec![])),
                ("binary".into(), Some(vec![0, 255, 1, 254, 0])),
                ("null".into(), None),
                ("earshot-id".into(), Some(b"second value, same name".to_vec())),
            ];
            assert_eq!(r.headers, want, "{codec}: headers of record {i} (names, order, values)");
            assert!(
                r.timestamp.is_some_and(|t| t > 0),
                "{codec}: record {i} has no timestamp"
            );
        }
        // Offsets per partition are dense from 0: the idempotent producer
        // neither lost nor duplicated a batch.
        let mut per_part: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for r in &got {
            per_part.entry(r.partition).or_default().push(r.offset);
        }
        for (p, offs) in &per_part {
            assert!(
                offs.iter().copied().eq(0..offs.len() as i64),
                "{codec}: partition {p} offsets not dense"
            );
        }
        // Keyed records go to one partition per key.
        let mut key_part: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
        for r in &got {
            key_part
                .entry(r.key.as_deref().unwrap())
                .or_default()
                .insert(r.partition);
        }
        assert!(
            key_part.values().all(|ps| ps.len() == 1),
            "{codec}: a key spread over partitions"
        );
        report(&format!("produce+read {n} records, 6 headers, compression {codec}"), t1);
    }
    report("produce: all codecs", t0);
}

fn group_consumer(group: &str, strategy: &str) -> BaseConsumer {
    ku::client_config()
        .set("group.id", group)
        .set("partition.assignment.strategy", strategy)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "45000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("create group consumer")
}

/// Two consumers in one group split 6 partitions; each reads only its own;
/// one leaves and the other takes all 6 over (through LeaveGroup, well before
/// the session timeout), resuming at the committed offsets.
fn split_then_takeover(strategy: &str) {
    let t0 = Instant::now();
    let topic = unique("conf-group");
    let group = unique("conf-group");
    block_on(ku::create_topic(&topic, 6));
    let a = group_consumer(&group, strategy);
    let b = group_consumer(&group, strategy);
    a.subscribe(&[&topic]).unwrap();
    b.subscribe(&[&topic]).unwrap();

    // 1. Both join; the split is disjoint and covers all 6.
    let deadline = Instant::now() + GROUP_STEP;
    let (sa, sb) = loop {
        assert!(
            poll_one(&a, 50).is_none() && poll_one(&b, 50).is_none(),
            "empty topic delivered a message"
        );
        let (sa, sb) = (partitions_of(&a), partitions_of(&b));
        if !sa.is_empty() && !sb.is_empty() && sa.is_disjoint(&sb) && sa.len() + sb.len() == 6 {
            break (sa, sb);
        }
        assert!(
            Instant::now() < deadline,
            "{strategy}: no split within {GROUP_STEP:?}: a={sa:?} b={sb:?}"
        );
    };
    report(
        &format!("group ({strategy}): two members joined, split {sa:?} / {sb:?}"),
        t0,
    );

    // 2. Each reads exactly the records of its own partitions.
    let t1 = Instant::now();
    let ids1 = produce_per_partition(&topic, 6, 10, "one");
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + GROUP_STEP;
    while ra.len() + rb.len() < ids1.len() {
        ra.extend(poll_one(&a, 50));
        rb.extend(poll_one(&b, 50));
        assert!(
            Instant::now() < deadline,
            "{strategy}: read {} of {}",
            ra.len() + rb.len(),
            ids1.len()
        );
    }
    assert_eq!(
        (partitions_of(&a), partitions_of(&b)),
        (sa.clone(), sb.clone()),
        "assignment moved while stable"
    );
    assert!(
        ra.iter().all(|r| sa.contains(&r.partition)),
        "a read a partition it does not own"
    );
    assert!(
        rb.iter().all(|r| sb.contains(&r.partition)),
        "b read a partition it does not own"
    );
    let seen: BTreeSet<String> = ra.iter().chain(&rb).map(id_of).collect();
    assert_eq!(
        seen.len(),
        ra.len() + rb.len(),
        "{strategy}: a record was delivered twice"
    );
    assert_eq!(seen, ids1);
    a.commit_consumer_state(CommitMode::Sync).expect("commit a");
    b.commit_consumer_state(CommitMode::Sync).expect("commit b");
    report(&format!("group ({strategy}): 60 records split by owner, committed"), t1);

    // 3. b leaves: a gets all 6 partitions and resumes b's at b's commits.
    let t2 = Instant::now();
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            poll_one(&a, 100).is_none(),
            "{strategy}: a re-read a committed record after the rebalance"
        );
        if partitions_of(&a).len() == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{strategy}: a has {:?} 20 s after b left (LeaveGroup ignored? session timeout is 45 s)",
            partitions_of(&a)
        );
    }
    report(&format!("group ({strategy}): b left, a took all 6"), t2);
    let ids2 = produce_per_partition(&topic, 6, 10, "two");
    let mut r2 = Vec::new();
    let deadline = Instant::now() + GROUP_STEP;
    while r2.len() < ids2.len() {
        r2.extend(poll_one(&a, 100));
        assert!(
            Instant::now() < deadline,
            "{strategy}: a read {} of {} after takeover",
            r2.len(),
            ids2.len()
        );
    }
    let settle = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < settle {
        r2.extend(poll_one(&a, 100));
    }
    let seen2: Vec<String> = r2.iter().map(id_of).collect();
    assert_eq!(
        seen2.len(),
        ids2.len(),
        "{strategy}: extra records after takeover: {seen2:?}"
    );
    assert_eq!(
        seen2.into_iter().collect::<BTreeSet<_>>(),
        ids2,
        "{strategy}: after takeover"
    );
    report(&format!("group ({strategy}): total"), t0);
}

#[test]
fn group_split_and_rebalance_eager_range() {
    split_then_takeover("range");
}

#[test]
fn group_split_and_rebalance_roundrobin() {
    split_then_takeover("roundrobin");
}

#[test]
fn group_split_and_rebalance_cooperative_sticky() {
    split_then_takeover("cooperative-sticky");
}

fn resume_consumer(group: &str, auto_commit: bool) -> BaseConsumer {
    ku::client_config()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", if auto_commit { "true" } else { "false" })
        // Long interval: with auto-commit on, only the commit on close counts.
        .set("auto.commit.interval.ms", "600000")
        .create()
        .expect("create consumer")
}

/// Processes up to `n` records (storing each offset after "processing"),
/// checks that each partition starts where `start` says; returns the records.
fn process(c: &BaseConsumer, topic: &str, n: usize, start: &BTreeMap<i32, i64>, stage: &str) -> Vec<Received> {
    let mut out: Vec<Received> = Vec::new();
    let mut first: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + GROUP_STEP;
    while out.len() < n {
        assert!(Instant::now() < deadline, "{stage}: processed {} of {n}", out.len());
        let Some(r) = poll_one(c, 100) else { continue };
        first.entry(r.partition).or_insert(r.offset);
        c.store_offset(topic, r.partition, r.offset).expect("store_offset");
        out.push(r);
    }
    for (p, off) in first {
        let want = start.get(&p).copied().unwrap_or(0);
        assert_eq!(
            off, want,
            "{stage}: partition {p} resumed at {off}, committed was {want}"
        );
    }
    out
}

/// The committed offsets of `group` on `topic`, read by a fresh client
/// (partitions without a commit are left out).
fn committed(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = ku::client_config().set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, RPC).expect("committed_offsets");
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// The offsets to commit after processing `records`: last offset + 1 per partition.
fn next_offsets(records: &[Received], base: &BTreeMap<i32, i64>) -> BTreeMap<i32, i64> {
    let mut m = base.clone();
    for r in records {
        let e = m.entry(r.partition).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    m
}

#[test]
fn commit_and_resume_without_gap_or_repeat() {
    let t0 = Instant::now();
    let topic = unique("conf-resume");
    let group = unique("conf-resume");
    block_on(ku::create_topic(&topic, 3));
    let all = produce_per_partition(&topic, 3, 100, "r");

    // Stage 1: process 120, store their offsets, commit synchronously, close.
    let c1 = resume_consumer(&group, false);
    c1.subscribe(&[&topic]).unwrap();
    let s1 = process(&c1, &topic, 120, &BTreeMap::new(), "stage 1");
    c1.commit_consumer_state(CommitMode::Sync).expect("sync commit");
    drop(c1);
    let after1 = next_offsets(&s1, &BTreeMap::new());
    assert_eq!(
        committed(&group, &topic, 3),
        after1,
        "committed offsets after stage 1 (stored = processed + 1)"
    );

    // Stage 2: a new member resumes exactly there, processes 90, and relies
    // on auto-commit at close (what the engine does on shutdown).
    let c2 = resume_consumer(&group, true);
    c2.subscribe(&[&topic]).unwrap();
    let s2 = process(&c2, &topic, 90, &after1, "stage 2");
    drop(c2);
    let after2 = next_offsets(&s2, &after1);
    assert_eq!(
        committed(&group, &topic, 3),
        after2,
        "committed offsets after stage 2 (auto-commit on close)"
    );

    // Stage 3: the rest, exactly.
    let c3 = resume_consumer(&group, false);
    c3.subscribe(&[&topic]).unwrap();
    let s3 = process(&c3, &topic, 300 - 120 - 90, &after2, "stage 3");
    let settle = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < settle {
        assert!(poll_one(&c3, 100).is_none(), "stage 3: more records than were left");
    }

    let ids: Vec<String> = s1.iter().chain(&s2).chain(&s3).map(id_of).collect();
    let uniq: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(uniq.len(), ids.len(), "a record was processed twice across restarts");
    assert_eq!(uniq, all, "records missing across restarts");
    report("commit/resume: 300 records over 3 members, no gap, no repeat", t0);
}

#[test]
fn regex_subscription_picks_up_matching_topics() {
    let t0 = Instant::now();
    let base = unique("conf-rx");
    let (ta, tb, other) = (format!("{base}-a"), format!("{base}-b"), unique("conf-rx-other"));
    block_on(async {
        ku::create_topic(&ta, 2).await;
        ku::create_topic(&tb, 1).await;
        ku::create_topic(&other, 1).await;
    });
    let mut want = produce_per_partition(&ta, 2, 5, "a");
    want.extend(produce_per_partition(&tb, 1, 5, "b"));
    produce_per_partition(&other, 1, 5, "other");
    let c = ku::client_config()
        .set("group.id", unique("conf-rx"))
        .set("auto.offset.reset", "earliest")
        .create::<BaseConsumer>()
        .unwrap();
    c.subscribe(&[&format!("^{base}-.*")]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + GROUP_STEP;
    while got.len() < want.len() {
        assert!(
            Instant::now() < deadline,
            "regex subscription read {} of {}",
            got.len(),
            want.len()
        );
        got.extend(poll_one(&c, 100));
    }
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        got.extend(poll_one(&c, 100));
    }
    let seen: BTreeSet<String> = got.iter().map(id_of).collect();
    assert_eq!(seen.len(), got.len(), "duplicates");
    assert_eq!(
        seen, want,
        "regex subscription must read both matching topics and nothing else"
    );
    report("regex subscription over 2 topics", t0);
}

#[test]
fn offsets_for_times_and_watermarks() {
    let t0 = Instant::now();
    let topic = unique("conf-time");
    block_on(ku::create_topic(&topic, 3));
    // An hour ago, on a whole second; record i of partition p at base + i s + p ms.
    let base = (ku::now_ms() - 3_600_000) / 1000 * 1000;
    block_on(async {
        for p in 0..2 {
            for i in 0..20i64 {
                let payload = format!("{p}-{i}");
                ku::send(
                    ku::producer(),
                    FutureRecord::to(&topic)
                        .partition(p)
                        .timestamp(base + i * 1000 + p as i64)
                        .payload(payload.as_bytes()),
                )
                .await;
            }
        }
    });
    let c: BaseConsumer = ku::client_config().create().unwrap();
    assert_eq!(c.fetch_watermarks(&topic, 0, RPC).unwrap(), (0, 20));
    assert_eq!(c.fetch_watermarks(&topic, 1, RPC).unwrap(), (0, 20));
    assert_eq!(
        c.fetch_watermarks(&topic, 2, RPC).unwrap(),
        (0, 0),
        "untouched partition"
    );

    // The CreateTime we set comes back on every record.
    for r in ku::read_to_end(&topic, Duration::from_secs(20)) {
        assert_eq!(
            r.timestamp,
            Some(base + r.offset * 1000 + r.partition as i64),
            "{}/{}",
            r.partition,
            r.offset
        );
    }

    // (partition, query timestamp, expected offset; -1 = none at or after it)
    let cases: [(i32, i64, i64); 8] = [
        (0, base - 60_000, 0),
        (0, base, 0),
        (0, base + 5000, 5),
        (0, base + 5001, 6),
        (1, base + 5000, 5), // record 5 of partition 1 is at base + 5001
        (1, base + 19_001, 19),
        (1, base + 19_002, -1),
        (2, base, -1),
    ];
    for (p, ts, want) in cases {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, p, Offset::Offset(ts)).unwrap();
        let got = c.offsets_for_times(tpl, RPC).expect("offsets_for_times");
        let e = got.find_partition(&topic, p).expect("partition in answer");
        assert!(e.error().is_ok(), "offsets_for_times {p}@{ts}: {:?}", e.error());
        let off = match e.offset() {
            Offset::Offset(o) => o,
            Offset::End => -1,
            other => panic!("offsets_for_times {p}@{}: unexpected {other:?}", ts - base),
        };
        assert_eq!(off, want, "offsets_for_times partition {p} at base{:+} ms", ts - base);
    }
    // Several partitions in one request.
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(&topic, p, Offset::Offset(base + 10_000))
            .unwrap();
    }
    let got = c.offsets_for_times(tpl, RPC).expect("offsets_for_times, 3 partitions");
    let offs: Vec<Offset> = (0..3)
        .map(|p| got.find_partition(&topic, p).unwrap().offset())
        .collect();
    assert_eq!(offs, vec![Offset::Offset(10), Offset::Offset(10), Offset::End]);
    report("offsets_for_times (9 lookups) and watermarks", t0);
}

/// Bulk: 50k keyed JSON events (about the size of a review) across 6
/// partitions, produced with the shared helpers and read back completely.
#[test]
fn bulk_50k_events_round_trip() {
    let t0 = Instant::now();
    let topic = unique("conf-bulk");
    block_on(ku::create_topic(&topic, 6));
    let n = 50_000;
    let text = "Ordered the blue one, got the red one. Support never answered my two emails.";
    let items = (0..n).map(|i| {
        let key = format!("brand-{}/product-{}", i % 13, i % 101);
        (
            key,
            serde_json::json!({ "id": format!("e{i}"), "text": text, "rating": 1 + i % 5 }),
        )
    });
    let at = block_on(ku::produce_json_many(&topic, items));
    let produced = t0.elapsed();
    assert_eq!(at.len(), n);
    let t1 = Instant::now();
    let got = ku::read_to_end(&topic, Duration::from_secs(120));
    let read = t1.elapsed();
    assert_eq!(got.len(), n, "read back {} of {n}", got.len());
    let ids: BTreeSet<String> = got.iter().map(id_of).collect();
    assert_eq!(ids.len(), n, "duplicate or missing ids");
    let parts: BTreeSet<i32> = got.iter().map(|r| r.partition).collect();
    assert_eq!(parts.len(), 6, "keys should spread over all 6 partitions");
    eprintln!(
        "[broker] bulk: produced {n} in {:.2} s ({:.0}/s), read back in {:.2} s ({:.0}/s)",
        produced.as_secs_f64(),
        n as f64 / produced.as_secs_f64(),
        read.as_secs_f64(),
        n as f64 / read.as_secs_f64()
    );
}
