#!/usr/bin/env python3
"""Builds the fault harness report (markdown) from a run directory written
by scripts/faults.sh: one sub-directory per fault with verify.json (counts
from kafka_tool.py verify), events.txt ("<unix time> <what> ..." lines),
meta.tsv ("key<TAB>value" lines), *.samples.csv (monitor.py) and
*.stats.json (producer summaries).

  python3 report.py RUN_DIR BROKER > report.md
"""
import csv
import glob
import json
import os
import statistics
import sys


def load_samples(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            for k in ("t",):
                r[k] = float(r[k])
            for k in ("rss_kb", "hwm_kb", "readyz", "acked", "received", "dead", "lag", "in_flight",
                      "assigned", "rebalances", "outbox_depth", "delivered"):
                r[k] = int(r[k]) if r.get(k) not in (None, "") else None
            rows.append(r)
    return rows


def load_events(path):
    ev = []
    if os.path.exists(path):
        for line in open(path):
            p = line.split()
            if len(p) >= 2:
                ev.append((float(p[0]), p[1], p[2:]))
    return ev


def load_meta(path):
    m = {}
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            if "\t" in line:
                k, v = line.rstrip("\n").split("\t", 1)
                m[k] = v
    return m


def first(ev, what):
    return next((t for t, w, _ in ev if w == what), None)


def secs(x):
    return "–" if x is None else f"{x:.1f} s"


def mib(kb):
    return "–" if not kb else f"{kb / 1024:.0f} MiB"


def load_lag(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                p = line.strip().split(",")
                if len(p) == 2 and p[0] != "t":
                    rows.append((float(p[0]), int(p[1])))
    return rows


def lag_back(lag, start, end):
    """Seconds from `end` until the group lag is back to the highest lag seen
    in the 30 s before `start` (the pre-fault steady state), and that level."""
    pre = [l for t, l in lag if start - 30 <= t < start and l >= 0]
    if not pre:
        return None, None
    level = max(pre)
    back = next((t - end for t, l in lag if t > end and 0 <= l <= level), None)
    return back, level


def recovery(fault, ev, samples, meta, lag):
    """Text for the recovery column."""
    main = samples.get("engine-a", [])
    notes = []
    if fault == "kill":
        acks, readies, none = [], [], 0
        kills = [(tk, rest) for tk, w, rest in ev if w == "kill"]
        end = first(ev, "fault_end") or float("inf")
        for i, (tk, rest) in enumerate(kills):
            pk = rest[1] if len(rest) > 1 else ""
            until = kills[i + 1][0] if i + 1 < len(kills) else end
            win = [r for r in main if tk < r["t"] <= until and r["pid"] and r["pid"] != pk]
            a = next((r["t"] - tk for r in win if (r["acked"] or 0) > 0), None)
            rd = next((r["t"] - tk for r in win if r["readyz"] == 200), None)
            if a is None:
                none += 1
            else:
                acks.append(a)
            if rd is not None:
                readies.append(rd)
        txt = "SIGKILL→next process acks: " + (
            f"median {statistics.median(acks):.1f} s, max {max(acks):.1f} s (n={len(acks)})" if acks else "never")
        if none:
            txt += f" ({none} restarts killed again before acking)"
        if readies:
            txt += f"; →/readyz 200: median {statistics.median(readies):.1f} s, max {max(readies):.1f} s"
        final = first(ev, "final_start")
        done = first(ev, "drained")
        if final and done:
            txt += f"; final --until-idle run: lag 0 {done - final:.1f} s after its start"
        return txt
    end = first(ev, "fault_end")
    if end is None:
        return "–"
    if fault == "second":
        rows = main
        full = next((r["t"] - end for r in rows if r["t"] > end and (r["assigned"] or 0) == int(meta.get("partitions", 6))), None)
        a0 = next((r["acked"] for r in reversed(rows) if r["t"] <= end and r["acked"] is not None), 0)
        ack = next((r["t"] - end for r in rows if r["t"] > end and (r["acked"] or 0) > a0), None)
        lag0 = first(ev, "drained")
        back, level = lag_back(lag, first(ev, "fault_start") or end, end)
        return (f"B's SIGTERM→A owns all partitions {secs(full)}, →A acks again {secs(ack)}"
                + (f", →group lag back to its pre-fault level ({level}) {secs(back)}" if level is not None else "")
                + (f", →group lag 0 {lag0 - end:.1f} s" if lag0 else ", group lag never 0"))
    if fault == "webhook":
        empty = next((r["t"] - end for r in main if r["t"] > end and r["outbox_depth"] == 0), None)
        posts = meta.get("receiver_last_post")
        first_post = meta.get("receiver_first_post_after")
        txt = f"receiver up→first delivery {secs(float(first_post) - end) if first_post else '–'}"
        txt += f", →outbox empty {secs(empty)}"
        if posts:
            txt += f", →last delivery {float(posts) - end:.1f} s"
        return txt
    if fault == "load":
        drained = next((t for t, w, _ in ev if w == "drained" and t > end), None)
        start = first(ev, "fault_start")
        def rss_max(t0, t1):
            v = [r["rss_kb"] for r in main if r["rss_kb"] and t0 <= r["t"] <= t1]
            return mib(max(v)) if v else "–"
        txt = (f"backlog drained (group lag 0) {secs(drained - end) if drained else 'never'} after the producer stopped; "
               f"max RSS before the load {rss_max(0, start)}, during it {rss_max(start, end)}, "
               f"during the drain {rss_max(end, drained or float('inf'))}")
        return txt
    # broker: the engine acking again, /readyz, lag 0
    a0 = next((r["acked"] for r in reversed(main) if r["t"] <= end and r["acked"] is not None), 0)
    ack = next((r["t"] - end for r in main if r["t"] > end and (r["acked"] or 0) > a0), None)
    rdy = next((r["t"] - end for r in main if r["t"] > end and r["readyz"] == 200), None)
    drained = first(ev, "drained")
    txt = f"from the fault's end: acks again {secs(ack)}, /readyz 200 {secs(rdy)}"
    back, level = lag_back(lag, first(ev, "fault_start") or end, end)
    if fault == "broker" and level is not None:
        txt += f", group lag back to its pre-fault level ({level}) {secs(back)}"
    txt += f", group lag 0 {drained - end:.1f} s" if drained else ", group lag never 0"
    return txt


def main():
    run, broker = sys.argv[1], sys.argv[2]
    faults = [l.strip() for l in open(os.path.join(run, "faults.txt")) if l.strip()]
    rows, details = [], []
    for fault in faults:
        d = os.path.join(run, fault)
        vpath = os.path.join(d, "verify.json")
        v = json.load(open(vpath)) if os.path.exists(vpath) else {}
        ev = load_events(os.path.join(d, "events.txt"))
        meta = load_meta(os.path.join(d, "meta.tsv"))
        samples = {os.path.basename(p).split(".")[0]: load_samples(p) for p in glob.glob(os.path.join(d, "*.samples.csv"))}
        lag = load_lag(os.path.join(d, "grouplag.csv"))
        hwm = max((r["hwm_kb"] or 0 for s in samples.values() for r in s), default=0)
        ex = {}
        for t, w, rest in ev:
            if w == "exit" and len(rest) > 1:
                ex.setdefault(rest[0], {}).setdefault(rest[1], 0)
                ex[rest[0]][rest[1]] += 1
        exits = [f"{tag}: " + ", ".join(f"{rc}×{n}" for rc, n in codes.items()) for tag, codes in ex.items()]
        status = meta.get("status", "?")
        g = lambda k: v.get(k, "–")
        lost_e = v.get("earshot_lost")
        lost_b = v.get("broker_lost")
        lt = "–" if lost_e is None else (f"**{lost_e}**" if lost_e else "0")
        if v.get("unconsumed"):
            lt += f" (+{v['unconsumed']} never consumed)"
        bt = "–" if lost_b is None else (f"**{lost_b}**" if lost_b else "0")
        recv = "–" if v.get("receiver_posts") is None else f"{v['receiver_posts']} / {v['receiver_keys']}"
        rows.append([fault, status, str(g("confirmed")), bt, str(g("out_distinct")), lt, str(g("duplicates")),
                     str(g("dead_distinct")), f"{g('alert_records')} / {g('alert_keys_to_send')}", recv,
                     str(g("receiver_missing_keys")), str(g("receiver_left_firing")), str(g("alerts_open_at_end_topic")),
                     mib(hwm), recovery(fault, ev, samples, meta, lag), "; ".join(exits) or "–"])
        det = [f"### {fault}", ""]
        for k, val in meta.items():
            if k not in ("status", "receiver_last_post", "receiver_first_post_after"):
                det.append(f"- {k}: {val}")
        for p in sorted(glob.glob(os.path.join(d, "*.stats.json"))):
            s = json.load(open(p))
            det.append(f"- producer {os.path.basename(p).split('.')[0]}: {s['attempted']} sent, {s['confirmed']} confirmed, "
                       f"{s['failed']} failed {s['errors'] or ''}, {s['rate_sent']}/s sending (target {s['rate_target'] or 'max'}/s), "
                       f"{s['seconds_total']} s incl. flush" + (f", FATAL {s['fatal']}" if s.get("fatal") else ""))
        if v:
            det.append(f"- input topic: {v['input_records']} records, {v['input_distinct']} distinct ids; "
                       f"unconfirmed but stored {v['unconfirmed_but_stored']}; broker lost {v['broker_lost']} {v['broker_lost_examples'] or ''}")
            det.append(f"- scored: {v['scored_records']} records, {v['scored_distinct']} distinct; dead letters "
                       f"{v['dead_records']} ({v['dead_reasons']}); lost by earshot (below the committed offset, never output) "
                       f"{v['earshot_lost']} {v['earshot_lost_examples'] or ''}; never consumed (at or above the committed offset) {v.get('unconsumed')}; "
                       f"group lag at the end {v.get('group_lag_end')}")
            det.append(f"- alerts topic: {v['alert_records']} records, {v['alert_keys']} distinct idempotency keys "
                       f"({v['alert_keys_to_send']} not silenced), {v['alert_episodes']} episodes (fingerprint, starts_at), "
                       f"{v['alerts_open_at_end_topic']} firing at the end; stream ends at event time {v.get('stream_end_event_time')}; "
                       f"open one-shot alerts (review_bombing, slow_drift) older than resolve_after_minutes at the end: "
                       f"topic {v.get('overdue_open_oneshot_topic')}, receiver {v.get('overdue_open_oneshot_receiver')}")
            if v.get("receiver_posts") is not None:
                det.append(f"- receiver: {v['receiver_posts']} POSTs, {v['receiver_keys']} distinct keys, "
                           f"missing {v['receiver_missing_keys']}, unknown {v['receiver_unknown_keys']}, bad signatures "
                           f"{v['receiver_bad_signatures']}; left firing: {v['receiver_missed_resolutions']} missed resolutions, "
                           f"{v['receiver_only_open']} episodes not on the alerts topic {v['receiver_left_firing_examples'] or ''}; "
                           f"{v['receiver_open_both']} open on both (the engine still fires them)")
        for tag, s in sorted(samples.items()):
            if not s:
                continue
            nr = sorted({r["not_ready"] for r in s if r["not_ready"]})
            reb = [r["rebalances"] for r in s if r["rebalances"] is not None]
            det.append(f"- {tag} samples: {len(s)}, peak VmHWM {mib(max((r['hwm_kb'] or 0) for r in s))}, "
                       f"last VmRSS {mib(next((r['rss_kb'] for r in reversed(s) if r['rss_kb']), 0))}, "
                       f"not-ready reasons seen {nr or 'none'}, max rebalances counter {max(reb) if reb else '–'}")
        det.append("")
        details.append("\n".join(det))

    hdr = ["fault", "status", "events in (confirmed)", "broker lost", "distinct out (scored+dead)", "lost by earshot",
           "duplicates", "dead letters", "alerts topic records / keys", "receiver POSTs / distinct keys",
           "keys missing at receiver", "left firing at receiver", "open on alerts topic at end", "peak RSS",
           "recovery", "engine exits"]
    out = [f"# earshot fault harness — broker {broker}, run {os.path.basename(run)}", ""]
    for k, val in load_meta(os.path.join(run, "meta.tsv")).items():
        out.append(f"- {k}: {val}")
    out.append("")
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|" + "---|" * len(hdr))
    for r in rows:
        out.append("| " + " | ".join(x.replace("|", "/") for x in r) + " |")
    out.append("")
    out.append("Definitions: *events in* = ids the producer got a delivery confirmation for; *broker lost* = "
               "confirmed ids missing from the input topic when read back with confluent-kafka at the end; "
               "*distinct out* = distinct ids on the scored topic plus dead letters; *lost by earshot* = ids in the "
               "input topic below the group's committed offset that are neither scored nor dead-lettered "
               "(at-least-once broken), in brackets the ids at or above it (never consumed: a stalled engine); *duplicates* = scored records − distinct scored ids; "
               "*keys missing at receiver* = non-silenced idempotency keys on the alerts topic never POSTed to the "
               "receiver; *left firing at receiver* = alert episodes (fingerprint, starts_at) whose last word at the "
               "receiver is `firing` although the alerts topic resolved them (missed resolution) or never had them "
               "(delivered from the outbox, absent from the topic: see details); *open on alerts topic* = "
               "episodes whose latest state on the topic is `firing` (the engine still considers them open); "
               "*peak RSS* = max VmHWM of every earshot process of the fault (sampled every 0.5 s); "
               "*recovery* is measured from the end of the fault as stated per row.")
    out.append("")
    out.append("## Details")
    out.append("")
    out.extend(details)
    print("\n".join(out))


if __name__ == "__main__":
    main()
