#!/usr/bin/env python3
"""Kafka side of the fault harness (scripts/faults.sh), on confluent-kafka
(librdkafka's Python client): a client earshot did not write, so the counts
do not share earshot's bugs.

  produce   write events to a topic (rate-limited or as fast as possible),
            keyed by brand, acks=all + idempotence; every id the broker
            confirmed (delivery callback without error) goes to --confirmed
  grouplag  a consumer group's lag on a topic (committed offset vs high
            watermark), printed as one number (-1: topic missing)
  verify    read the input, scored, dead-letter and alerts topics from the
            beginning to their end and compare with the confirmed ids and the
            webhook receiver's log; writes one JSON object of counts

Ids are strings; ids of the form <letters><digits> (every id the harness
produces) are kept in bitmaps so tens of millions of them fit in memory.
"""
import argparse
import json
import os
import random
import re
import signal
import sys
import time
import uuid
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ID_RE = re.compile(rb"^([A-Za-z_.-]*)(\d+)$")


class IdSet:
    """Distinct ids plus a count of every add (so duplicates = total - distinct).
    Numeric-suffix ids live in one bitmap per prefix; others in a set."""

    def __init__(self):
        self.bits = {}  # prefix -> bytearray
        self.other = set()
        self.total = 0
        self.distinct = 0

    @staticmethod
    def _split(i):
        """(prefix, digit count) and the number, or (None, None)."""
        m = ID_RE.match(i)
        if m and len(m.group(2)) <= 12:
            return (m.group(1), len(m.group(2))), int(m.group(2))
        return None, None

    def add(self, i):
        """Adds an id (bytes); True when it was new."""
        self.total += 1
        p, n = self._split(i)
        if p is None:
            if i in self.other:
                return False
            self.other.add(i)
            self.distinct += 1
            return True
        b = self.bits.get(p)
        if b is None:
            b = self.bits[p] = bytearray()
        byte, bit = n >> 3, 1 << (n & 7)
        if byte >= len(b):
            b.extend(bytes(max(byte + 1 - len(b), len(b) // 2 + 1024)))
        if b[byte] & bit:
            return False
        b[byte] |= bit
        self.distinct += 1
        return True

    def __contains__(self, i):
        p, n = self._split(i)
        if p is None:
            return i in self.other
        b = self.bits.get(p)
        return b is not None and (n >> 3) < len(b) and bool(b[n >> 3] & (1 << (n & 7)))

    def items(self):
        for (p, width), b in self.bits.items():
            for byte, v in enumerate(b):
                if v:
                    for bit in range(8):
                        if v & (1 << bit):
                            yield p + str(byte * 8 + bit).zfill(width).encode()
        yield from self.other

    def minus_count(self, other, examples=5):
        """How many of our ids are not in `other`, and a few of them."""
        n, ex = 0, []
        for i in self.items():
            if i not in other:
                n += 1
                if len(ex) < examples:
                    ex.append(i.decode(errors="replace"))
        return n, ex


def log(*a):
    print("[kafka_tool]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- produce

def ensure_topic(brokers, topic, partitions):
    admin = AdminClient({"bootstrap.servers": brokers})
    md = admin.list_topics(timeout=30)
    if topic in md.topics and not md.topics[topic].error:
        return
    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=-1)])
    for t, f in fs.items():
        try:
            f.result(30)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    # wait until the metadata shows every partition
    for _ in range(100):
        md = admin.list_topics(topic, timeout=10)
        if topic in md.topics and len(md.topics[topic].partitions) == partitions:
            return
        time.sleep(0.1)


def templates(path, live_times, new_ids):
    """Pre-split each JSONL line into parts around the id and the event time,
    so producing is a bytes join (fast enough for tens of thousands/s)."""
    out = []
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            key = str(ev.get("brand", "")).encode()
            orig_id = str(ev.get("id", "")).encode()
            if not (live_times or new_ids):
                out.append((key, [line], orig_id))
                continue
            if new_ids:
                ev["id"] = "@@ID@@"
            if live_times:
                ev["event_time"] = "@@TS@@"
            s = json.dumps(ev, ensure_ascii=False)
            parts = re.split(r"(@@ID@@|@@TS@@)", s)
            out.append((key, [p.encode() for p in parts], orig_id))
    return out


def cmd_produce(a):
    ensure_topic(a.brokers, a.topic, a.partitions)
    tpl = templates(a.file, a.live_times, a.id_prefix is not None)
    if not tpl:
        sys.exit(f"no events in {a.file}")
    limit = a.limit if a.limit > 0 else (len(tpl) if not a.duration and a.id_prefix is None else 1 << 62)
    if a.id_prefix is None and limit > len(tpl):
        limit = len(tpl)  # without new ids the file's ids would repeat
    conf_p = {
        "bootstrap.servers": a.brokers,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": a.linger_ms,
        "compression.type": "lz4",
        "message.timeout.ms": a.timeout_ms,
        "queue.buffering.max.messages": 200000,
        "queue.buffering.max.kbytes": 262144,
        "batch.num.messages": 10000,
    }
    p = Producer(conf_p)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__("flag", True))
    conf = open(a.confirmed, "ab", buffering=1 << 20)
    st = {"attempted": 0, "confirmed": 0, "failed": 0, "errors": defaultdict(int), "fatal": None}

    def cb(eid, err):
        if err is None:
            st["confirmed"] += 1
            conf.write(eid + b"\n")
        else:
            st["failed"] += 1
            st["errors"][err.str()] += 1

    def fatal(e):
        """An idempotent producer that failed fatally (e.g. OutOfOrderSequenceNumber
        after a broker restart lost acknowledged writes) cannot send again: what
        it still holds fails (counted), and a new producer carries on."""
        nonlocal p
        st["fatal"] = (st["fatal"] + "; " if st["fatal"] else "") + str(e.args[0].str() if e.args else e)
        st["producers"] = st.get("producers", 1) + 1
        log("fatal producer error, starting a new producer:", st["fatal"])
        try:
            p.purge()
            p.flush(5)
        except KafkaException:
            pass
        p = Producer(conf_p)

    t0 = time.time()
    next_report = t0 + 10
    i = 0
    idx = 0
    while i < limit and not stop["flag"]:
        now = time.time()
        if a.duration and now - t0 >= a.duration:
            break
        if a.rate > 0:
            due = int((now - t0) * a.rate) + 1
            if i >= due:
                try:
                    p.poll(min(0.05, (i + 1 - due + 1) / a.rate))
                except KafkaException as e:
                    fatal(e)
                continue
            burst = min(due - i, limit - i)
        else:
            burst = min(5000, limit - i)
        tsb = None
        if a.live_times:
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (int(now * 1000) % 1000)
            tsb = ts.encode()
        for _ in range(burst):
            key, parts, orig_id = tpl[idx]
            idx = (idx + 1) % len(tpl)
            eid = f"{a.id_prefix}{i + a.id_start:09d}".encode() if a.id_prefix is not None else orig_id
            if len(parts) == 1:
                payload = parts[0]
            else:
                payload = b"".join(eid if x == b"@@ID@@" else tsb if x == b"@@TS@@" else x for x in parts)
            while not stop["flag"]:
                try:
                    p.produce(a.topic, payload, key, on_delivery=lambda err, _m, eid=eid: cb(eid, err))
                    break
                except BufferError:
                    try:
                        p.poll(0.05)
                    except KafkaException as e:
                        fatal(e)
                except KafkaException as e:
                    fatal(e)
            else:
                break  # stopped while the queue was full: not sent
            i += 1
            st["attempted"] = i
        try:
            p.poll(0)
        except KafkaException as e:
            fatal(e)
        if time.time() >= next_report:
            conf.flush()
            el = time.time() - t0
            log(f"{a.topic}: {i} sent, {st['confirmed']} confirmed, {st['failed']} failed, {i / el:.0f}/s")
            next_report += 10
    t_sent = time.time()
    try:
        remaining = p.flush(a.flush_timeout)
    except KafkaException as e:
        fatal(e)
        remaining = p.flush(a.flush_timeout)
    el = time.time() - t0
    conf.close()
    res = {
        "topic": a.topic, "attempted": st["attempted"], "confirmed": st["confirmed"],
        "failed": st["failed"], "unresolved_at_exit": remaining, "errors": dict(st["errors"]),
        "fatal": st["fatal"], "producers": st.get("producers", 1), "seconds_sending": round(t_sent - t0, 2), "seconds_total": round(el, 2),
        "rate_sent": round(st["attempted"] / max(t_sent - t0, 1e-9), 1),
        "rate_target": a.rate,
    }
    log(json.dumps(res))
    if a.stats:
        with open(a.stats, "w") as f:
            json.dump(res, f)


# ---------------------------------------------------------------- read back

def read_topic(brokers, topic, on_msg, timeout=120):
    """Calls on_msg(msg) for every message from the beginning to the high
    watermark seen at the start. Returns the number of messages, or -1 when
    the topic does not exist."""
    c = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "faults-verify-" + uuid.uuid4().hex,
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "earliest",
        # noida-db answers a fetch from the start of a large topic with one
        # response far above fetch.max.bytes (291 MB seen): accept up to
        # librdkafka's ceiling instead of failing "Invalid response size"
        "fetch.max.bytes": 52428800,
        "max.partition.fetch.bytes": 1048576,
        "receive.message.max.bytes": 1000000000,
    })
    try:
        md = c.list_topics(topic, timeout=30)
        t = md.topics.get(topic)
        if t is None or t.error is not None or not t.partitions:
            return -1
        ends = {}
        tps = []
        for pid in t.partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, pid), timeout=30)
            if hi > lo:
                ends[pid] = hi
                tps.append(TopicPartition(topic, pid, lo))
        if not tps:
            return 0
        c.assign(tps)
        n = 0
        last = time.time()
        while ends:
            msgs = c.consume(10000, 1.0)
            if not msgs:
                if time.time() - last > timeout:
                    raise SystemExit(f"reading {topic}: no progress for {timeout}s, {n} read, left {ends}")
                continue
            last = time.time()
            for m in msgs:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise SystemExit(f"reading {topic}: {m.error()}")
                if m.partition() in ends:
                    on_msg(m)
                    n += 1
                    if m.offset() + 1 >= ends[m.partition()]:
                        del ends[m.partition()]
        return n
    finally:
        c.close()


ID_IN_JSON = re.compile(rb'"id"\s*:\s*"([^"]*)"')


def payload_id(v):
    if not v:
        return None
    m = ID_IN_JSON.search(v[:300])
    return m.group(1) if m else None


def group_lag(brokers, group, topic):
    c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=30)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return -1, {}
        tps = [TopicPartition(topic, p) for p in t.partitions]
        committed = c.committed(tps, timeout=30)
        lag, per = 0, {}
        for tp in committed:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=30)
            pos = tp.offset if tp.offset >= 0 else lo
            per[tp.partition] = hi - pos
            lag += max(0, hi - pos)
        return lag, per
    finally:
        c.close()


def group_committed(brokers, group, topic):
    """partition -> committed offset (-1: none)."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=30)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return {}
        return {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in t.partitions], timeout=30)}
    finally:
        c.close()


def cmd_grouplag(a):
    lag, per = group_lag(a.brokers, a.group, a.topic)
    if a.verbose:
        log(json.dumps(per))
    print(lag)


def cmd_evictcheck(a):
    """Does the broker evict a group member that died without leaving (SIGKILL)
    once its session times out? A victim consumer joins, gets partitions and is
    SIGKILLed; then a newcomer joins the same group. Prints the seconds until
    the newcomer got partitions, or -1 when it got none within --wait."""
    import subprocess
    if a.victim:
        c = Consumer({"bootstrap.servers": a.brokers, "group.id": a.group,
                      "session.timeout.ms": a.session_timeout_ms, "enable.auto.commit": False})
        got = []
        c.subscribe([a.topic], on_assign=lambda c, ps: got.append(len(ps)))
        t0 = time.time()
        while not got and time.time() - t0 < 60:
            c.poll(0.2)
        print("assigned" if got else "none", flush=True)
        time.sleep(3600)
        return
    ensure_topic(a.brokers, a.topic, 6)
    v = subprocess.Popen([sys.executable, __file__, "evictcheck", "--victim", "--brokers", a.brokers,
                          "--topic", a.topic, "--group", a.group, "--session-timeout-ms", str(a.session_timeout_ms)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = v.stdout.readline().strip()
    v.kill()
    v.wait()
    if line != "assigned":
        print(-2)
        log("evictcheck: the victim consumer got no partitions within 60 s")
        return
    c = Consumer({"bootstrap.servers": a.brokers, "group.id": a.group,
                  "session.timeout.ms": a.session_timeout_ms, "enable.auto.commit": False,
                  "logger": __import__("logging").getLogger("quiet")})
    got = []
    c.subscribe([a.topic], on_assign=lambda c, ps: got.append(time.time()))
    t0 = time.time()
    while not got and time.time() - t0 < a.wait:
        c.poll(0.2)
    print(round(got[0] - t0, 1) if got else -1)
    c.close()


def cmd_lagmon(a):
    """One CSV row per --interval: unix time, the group's total lag on the
    topic (committed offsets vs high watermarks; -1 while unknown)."""
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    c = Consumer({"bootstrap.servers": a.brokers, "group.id": a.group, "enable.auto.commit": False,
                  "logger": __import__("logging").getLogger("quiet")})
    with open(a.out, "a") as f:
        f.write("t,lag\n")
        while not stop["flag"]:
            t0 = time.time()
            lag = -1
            try:
                md = c.list_topics(a.topic, timeout=2)
                t = md.topics.get(a.topic)
                if t is not None and t.error is None and t.partitions:
                    lag = 0
                    for tp in c.committed([TopicPartition(a.topic, p) for p in t.partitions], timeout=2):
                        lo, hi = c.get_watermark_offsets(TopicPartition(a.topic, tp.partition), timeout=2)
                        lag += max(0, hi - (tp.offset if tp.offset >= 0 else lo))
            except Exception:
                lag = -1
            f.write(f"{t0:.3f},{lag}\n")
            f.flush()
            time.sleep(max(0.0, a.interval - (time.time() - t0)))
    c.close()


def cmd_ping(a):
    """Exit 0 when the broker answers a metadata request within --timeout s."""
    try:
        AdminClient({"bootstrap.servers": a.brokers, "logger": __import__("logging").getLogger("quiet")}).list_topics(timeout=a.timeout)
    except KafkaException as e:
        log("broker does not answer:", e)
        sys.exit(1)


def load_ids(paths):
    s = IdSet()
    for p in paths:
        if p and os.path.exists(p):
            with open(p, "rb") as f:
                for line in f:
                    line = line.strip()
                    if line:
                        s.add(line)
    return s


def cmd_verify(a):
    r = {}
    confirmed = load_ids(a.confirmed)
    r["confirmed"] = confirmed.distinct
    r["confirmed_records"] = confirmed.total

    # input topic as the broker has it now
    inp = IdSet()
    no_id = [0]

    def on_in(m):
        i = payload_id(m.value())
        if i is None:
            no_id[0] += 1
        else:
            inp.add(i)
    r["input_records"] = read_topic(a.brokers, a.input, on_in)
    r["input_distinct"] = inp.distinct
    r["input_without_id"] = no_id[0]
    r["broker_lost"], r["broker_lost_examples"] = confirmed.minus_count(inp)
    r["unconfirmed_but_stored"], _ = inp.minus_count(confirmed)

    # scored events: keyed by event id
    sc = IdSet()
    mx = [0]
    ET = re.compile(rb'"event_time":(\d+)')

    def on_scored(m):
        sc.add(m.key() or b"")
        t = ET.search(m.value() or b"")
        if t and int(t.group(1)) > mx[0]:
            mx[0] = int(t.group(1))
    r["scored_records"] = read_topic(a.brokers, a.scored, on_scored)
    max_event_ms = mx[0]
    r["scored_distinct"] = sc.distinct
    r["duplicates"] = sc.total - sc.distinct

    # dead letters: original payload (id parsed from it), reason header
    dl = IdSet()
    reasons = defaultdict(int)

    def on_dead(m):
        h = dict(m.headers() or [])
        reasons[(h.get("earshot.reason") or b"?").decode()] += 1
        i = payload_id(m.value())
        dl.add(i if i is not None else f"dead@{h.get('earshot.source.partition', b'?').decode()}:{h.get('earshot.source.offset', b'?').decode()}".encode())
    r["dead_records"] = max(0, read_topic(a.brokers, a.dead, on_dead))
    r["dead_distinct"] = dl.distinct
    r["dead_reasons"] = dict(reasons)

    # in the input topic, neither scored nor dead-lettered: lost by earshot
    # when below the group's committed offset (acknowledged as done), else
    # not consumed (yet): a stall, or the run ended early
    missing = IdSet()
    for i in inp.items():
        if i not in sc and i not in dl:
            missing.add(i)
    committed = group_committed(a.brokers, a.group, a.input) if a.group else {}
    lost, unconsumed, ex = [0], [0], []

    def on_in2(m):
        i = payload_id(m.value())
        if i is not None and i in missing:
            if m.offset() < committed.get(m.partition(), -1):
                lost[0] += 1
                if len(ex) < 5:
                    ex.append(f"{i.decode(errors='replace')}@{m.partition()}:{m.offset()}")
            else:
                unconsumed[0] += 1
    if missing.distinct:
        read_topic(a.brokers, a.input, on_in2)
    r["earshot_lost"], r["earshot_lost_examples"] = lost[0], ex
    r["unconsumed"] = unconsumed[0]
    r["out_distinct"] = sc.distinct + dl.distinct  # (an id in both would count twice; reported below)
    r["scored_and_dead"] = sum(1 for i in dl.items() if i in sc)

    # alerts topic: keyed by fingerprint, records in order within a partition.
    # An alert *episode* is (fingerprint, starts_at): its firing, repeats and
    # resolution share them.
    recs = []

    def on_alert(m):
        try:
            v = json.loads(m.value())
        except ValueError:
            return
        recs.append((m.partition(), m.offset(), v))
    r["alert_records"] = max(0, read_topic(a.brokers, a.alerts, on_alert))
    recs.sort(key=lambda x: (x[0], x[1]))
    keys_all, keys_sent = set(), set()
    topic_ep = {}  # (fp, starts_at) -> {"status", "rule", "at"}
    for _, _, v in recs:
        k = v.get("idempotency_key")
        keys_all.add(k)
        if not v.get("silenced"):
            keys_sent.add(k)
        ep = (v.get("fingerprint"), v.get("starts_at"))
        cur = topic_ep.setdefault(ep, {"status": "firing", "rule": v.get("rule"), "at": ""})
        if v.get("status") == "resolved":
            cur["status"] = "resolved"
        cur["at"] = max(cur["at"], v.get("at") or "")
    r["alert_keys"] = len(keys_all)
    r["alert_keys_to_send"] = len(keys_sent)
    r["alert_episodes"] = len(topic_ep)
    r["alerts_open_at_end_topic"] = sum(1 for e in topic_ep.values() if e["status"] == "firing")

    # webhook receiver log (JSONL, one line per POST)
    posts, rkeys, recv_ep, bad_sig = 0, set(), {}, 0
    if a.receiver and os.path.exists(a.receiver):
        for line in open(a.receiver, encoding="utf-8"):
            try:
                p = json.loads(line)
            except ValueError:
                continue
            posts += 1
            rkeys.add(p["headers"].get("idempotency-key"))
            body = p.get("body") or {}
            items = []
            if isinstance(body, dict) and "data" in body:  # generic
                d = body["data"]
                items = [(d.get("fingerprint"), d.get("starts_at"), d.get("status"), d.get("rule"), d.get("at"))]
            elif isinstance(body, dict) and "alerts" in body:  # alertmanager webhook
                items = [(x.get("labels", {}).get("fingerprint"), x.get("startsAt"), x.get("status"),
                          x.get("labels", {}).get("alertname"), x.get("endsAt") or x.get("startsAt"))
                         for x in body["alerts"]]
            for fp, st, status, rule, at in items:
                e = recv_ep.setdefault((fp, st), {"statuses": set(), "rule": rule, "at": ""})
                e["statuses"].add(status)
                e["at"] = max(e["at"], at or "")
            if not p.get("signature_ok", True):
                bad_sig += 1
    r["receiver_posts"] = posts
    r["receiver_keys"] = len(rkeys - {None})
    r["receiver_bad_signatures"] = bad_sig
    r["receiver_missing_keys"] = len(keys_sent - rkeys) if a.receiver else None
    r["receiver_unknown_keys"] = len(rkeys - keys_all - {None}) if a.receiver else None
    # Alerts left firing at the receiver (its latest word on an episode is
    # `firing`), in three kinds:
    #  - missed resolution: the alerts topic resolved the episode, the receiver
    #    never got that resolution (a delivery loss);
    #  - receiver-only: the episode is not on the alerts topic at all (the
    #    outbox delivered a change whose Kafka record was never written, e.g.
    #    a crash between the two, and the re-read events did not derive it
    #    again), so nothing will ever resolve it from the topic's point of view;
    #  - open on both: the engine still considers it firing at the end.
    open_r = {ep: e for ep, e in recv_ep.items() if "resolved" not in e["statuses"]}
    missed = [ep for ep in open_r if ep in topic_ep and topic_ep[ep]["status"] == "resolved"]
    only = [ep for ep in open_r if ep not in topic_ep]
    both = [ep for ep in open_r if ep in topic_ep and topic_ep[ep]["status"] == "firing"]
    r["receiver_missed_resolutions"] = len(missed)
    r["receiver_only_open"] = len(only)
    r["receiver_open_both"] = len(both)
    r["receiver_left_firing"] = len(missed) + len(only) if a.receiver else None
    r["receiver_left_firing_examples"] = [f"{fp}@{st} ({recv_ep[(fp, st)]['rule']}, " + ("missed resolution" if (fp, st) in missed else "not on the alerts topic") + ")"
                                          for fp, st in (missed + only)[:6]]
    # one-shot rules resolve resolve_after_minutes (120 by default) of event
    # time after their latest change: open ones older than that at the end of
    # the stream are overdue
    if max_event_ms:
        from datetime import datetime, timezone
        end = datetime.fromtimestamp(max_event_ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        r["stream_end_event_time"] = end
        cutoff = datetime.fromtimestamp(max_event_ms / 1000 - a.resolve_after_minutes * 60, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        oneshot = ("review_bombing", "slow_drift")
        r["overdue_open_oneshot_topic"] = sum(1 for e in topic_ep.values() if e["status"] == "firing" and e["rule"] in oneshot and e["at"] < cutoff)
        r["overdue_open_oneshot_receiver"] = sum(1 for e in open_r.values() if e["rule"] in oneshot and e["at"] < cutoff)

    r["group_lag_end"], _ = group_lag(a.brokers, a.group, a.input) if a.group else (None, None)
    with open(a.out, "w") as f:
        json.dump(r, f, indent=1)
    log(json.dumps({k: v for k, v in r.items() if not k.endswith("examples")}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--file", required=True, help="JSONL events (templates; cycled with --id-prefix)")
    p.add_argument("--limit", type=int, default=0, help="events to send (0: the file once, or unbounded with --duration)")
    p.add_argument("--rate", type=float, default=0, help="events/s (0: as fast as possible)")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds")
    p.add_argument("--live-times", action="store_true", help="event_time = now")
    p.add_argument("--id-prefix", help="new ids <prefix><9 digits> (cycles the file)")
    p.add_argument("--id-start", type=int, default=0)
    p.add_argument("--confirmed", required=True, help="append confirmed ids here")
    p.add_argument("--stats", help="write a JSON summary here")
    p.add_argument("--timeout-ms", type=int, default=300000, help="message.timeout.ms")
    p.add_argument("--flush-timeout", type=float, default=330)
    p.add_argument("--linger-ms", type=int, default=5)
    p = sub.add_parser("grouplag")
    p.add_argument("--brokers", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("-v", "--verbose", action="store_true")
    p = sub.add_parser("ping")
    p.add_argument("--brokers", required=True)
    p.add_argument("--timeout", type=float, default=10)
    p = sub.add_parser("lagmon")
    p.add_argument("--brokers", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--out", required=True)
    p = sub.add_parser("evictcheck")
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--session-timeout-ms", type=int, default=10000)
    p.add_argument("--wait", type=float, default=40)
    p.add_argument("--victim", action="store_true")
    p = sub.add_parser("verify")
    p.add_argument("--brokers", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--scored", required=True)
    p.add_argument("--dead", required=True)
    p.add_argument("--alerts", required=True)
    p.add_argument("--group")
    p.add_argument("--confirmed", nargs="*", default=[])
    p.add_argument("--receiver")
    p.add_argument("--resolve-after-minutes", type=int, default=120)
    p.add_argument("--out", required=True)
    a = ap.parse_args()
    {"produce": cmd_produce, "grouplag": cmd_grouplag, "verify": cmd_verify, "evictcheck": cmd_evictcheck, "lagmon": cmd_lagmon, "ping": cmd_ping}[a.cmd](a)


if __name__ == "__main__":
    main()
