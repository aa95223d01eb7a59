#!/usr/bin/env python3
"""Samples one earshot process for the fault harness until killed: every
--interval seconds one CSV row with the pid (re-read from --pidfile, so a
restarted engine is followed), VmRSS / VmHWM from /proc/<pid>/status, the
/readyz status code and a few /metrics values.

  python3 monitor.py --pidfile F --http 127.0.0.1:PORT --out samples.csv
"""
import argparse
import csv
import os
import re
import sys
import time
import urllib.error
import urllib.request

COLS = ["t", "pid", "rss_kb", "hwm_kb", "readyz", "acked", "received", "dead", "lag", "in_flight",
        "assigned", "rebalances", "outbox_depth", "delivered", "not_ready"]
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)')


def proc_status(pid):
    rss = hwm = ""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = line.split()[1]
                elif line.startswith("VmHWM:"):
                    hwm = line.split()[1]
    except OSError:
        pass
    return rss, hwm


def get(url, timeout=0.4):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except Exception:
        return 0, ""


def metrics(text):
    m = {}
    not_ready = []
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        g = LINE.match(line)
        if not g:
            continue
        name, labels, val = g.group(1), g.group(3) or "", g.group(4)
        try:
            v = float(val)
        except ValueError:
            continue
        if name == "earshot_not_ready" and v > 0:
            not_ready.append(re.sub(r'.*reason="([^"]*)".*', r"\1", labels))
        m[name] = m.get(name, 0.0) + v
    m["not_ready"] = "+".join(not_ready)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--http", required=True, help="host:port of the engine's HTTP server")
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.5)
    a = ap.parse_args()
    new = not os.path.exists(a.out)
    f = open(a.out, "a", newline="")
    w = csv.writer(f)
    if new:
        w.writerow(COLS)
    base = f"http://{a.http}"
    while True:
        t0 = time.time()
        pid = ""
        try:
            pid = open(a.pidfile).read().strip()
        except OSError:
            pass
        alive = pid and os.path.exists(f"/proc/{pid}")
        rss, hwm = proc_status(pid) if alive else ("", "")
        ready, _ = get(base + "/readyz") if alive else (0, "")
        code, text = get(base + "/metrics", 1.0) if alive else (0, "")
        m = metrics(text) if code == 200 else {}
        g = lambda k: "" if k not in m else int(m[k])
        w.writerow([f"{t0:.3f}", pid if alive else "", rss, hwm, ready,
                    g("earshot_events_acked_total"), g("earshot_events_received_total"),
                    g("earshot_events_dead_lettered_total"), g("earshot_kafka_consumer_lag_messages"),
                    g("earshot_pipeline_in_flight"), g("earshot_kafka_assigned_partitions"),
                    g("earshot_kafka_rebalances_total"), g("earshot_outbox_depth"),
                    g("earshot_webhook_deliveries_total"), m.get("not_ready", "")])
        f.flush()
        time.sleep(max(0.0, a.interval - (time.time() - t0)))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
