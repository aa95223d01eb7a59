#!/usr/bin/env python3
"""Sentiment evaluation report: our model(s) against offline peers.

    sentiment_report.py --eval EVAL.jsonl --pred NAME=PRED.jsonl [--pred NAME2=...]
                        [--peers PEERS.jsonl] [--markdown OUT.md] [--no-reliability]

Standard library only. Prints markdown (and writes it to --markdown).

Inputs
  EVAL   {"text", "label": neg|neu|pos, "lang", "source", "subset",
          "domain": review|post|other}, one a line.
  PRED   {"text", "p_neg", "p_neu", "p_pos"}, one a line, same order and text
         as EVAL (checked; a mismatch is an error).
  PEERS  {"i", "peer", "label3", "score"} from scripts/sentiment_peers.py;
         a peer covers the items it has rows for.

Metrics (one table per grouping: overall, language, domain)
  bin acc   accuracy on the items whose gold label is neg or pos. Model: pos
            when p_pos > p_neg, neg when p_pos < p_neg; peer: sign of score.
            A tie (p_pos == p_neg, score == 0) counts as wrong; the ties
            column says how many there were.
  macro-F1  3-class F1 averaged over the gold classes present in the subset.
            Model: argmax of (p_neg, p_neu, p_pos), first maximum in that
            order; peer: its label3. F1 of a class = 2TP / (2TP + FP + FN).
            A value marked * was averaged over fewer than the three classes
            (the "classes" column says which: e.g. no neutral gold items).
  Rows      every model on all the items of the group; then each peer on the
            items it covers in the group, followed by every model on exactly
            those items ("NAME @ peer"), so that the comparison is like for
            like.

Calibration (per language and overall, models only)
  ECE-3     10 equal-width bins of confidence = max(p_neg, p_neu, p_pos) (bin
            k holds [k/10, (k+1)/10), the last one also 1.0); sum over bins of
            n_bin/N * |accuracy - mean confidence|.
  ECE-2     on polar gold items, q = p_pos / (p_pos + p_neg) (0.5 when both
            are 0); 10 equal-width bins of q; sum over bins of
            n_bin/N * |fraction of gold pos - mean q|.
  Reliability tables list, per bin, n, mean confidence and accuracy (3-class)
  and n, mean q and fraction pos (binary).

Goals (issue 13's targets, models only; first table of the report)
  binary >= 0.92 on reviews and >= 0.85 on short posts, binary >= 0.80 in
  every language, 3-class macro-F1 >= 0.70 in every language with neutral
  gold items. Each row gives the measured value, a 95 % interval and a
  verdict: "met" / "not met" when the whole interval lies on one side of the
  target, "within noise" when it straddles it (the set cannot tell).
  Binary accuracy: Wilson score interval. Macro-F1: percentile bootstrap
  over the group's items (1,000 resamples, fixed seed, so the report is
  reproducible).
"""
import argparse
import json
import math
import random
import sys

CLASSES = ("neg", "neu", "pos")
DOMAINS = ("review", "post", "other")
N_BINS = 10
Z95 = 1.959964
BOOTSTRAP = 1000
GOAL_REVIEWS, GOAL_POSTS, GOAL_LANG_BIN, GOAL_LANG_F1 = 0.92, 0.85, 0.80, 0.70


# ---------------------------------------------------------------- metrics

def macro_f1(gold, pred):
    """Macro-F1 over the gold classes present; returns (f1, classes used).

    >>> macro_f1(["pos", "neg", "neu"], ["pos", "neg", "neu"])
    (1.0, ('neg', 'neu', 'pos'))
    >>> round(macro_f1(["pos", "pos", "neg", "neg"], ["pos", "neu", "neg", "pos"])[0], 4)
    0.5833
    >>> macro_f1([], [])
    (None, ())
    """
    present = tuple(c for c in CLASSES if c in set(gold))
    if not present:
        return None, ()
    f1s = []
    for c in present:
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred) if g == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s), present


def binary_accuracy(gold, calls):
    """Accuracy over polar gold items; calls are 'pos', 'neg' or None (a tie,
    counted as wrong). Returns (accuracy or None, n polar, n ties).

    >>> binary_accuracy(["pos", "neg", "neu", "pos"], ["pos", "pos", "neg", None])
    (0.3333333333333333, 3, 1)
    """
    pairs = [(g, c) for g, c in zip(gold, calls) if g in ("neg", "pos")]
    if not pairs:
        return None, 0, 0
    right = sum(1 for g, c in pairs if g == c)
    ties = sum(1 for _, c in pairs if c is None)
    return right / len(pairs), len(pairs), ties


def wilson(k, n, z=Z95):
    """Wilson score interval of k successes in n trials (None when n is 0).

    >>> [round(x, 4) for x in wilson(8, 10)]
    [0.4902, 0.9433]
    >>> wilson(0, 0) is None
    True
    """
    if n == 0:
        return None
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def bootstrap_macro_f1(gold, pred, resamples=BOOTSTRAP, seed=0):
    """Percentile 95 % interval of macro-F1 over resamples of the (gold, pred)
    pairs, each scored as `macro_f1` scores it (over its own gold classes).

    >>> bootstrap_macro_f1(["pos", "neg"] * 20, ["pos", "neg"] * 20)
    (1.0, 1.0)
    """
    n = len(gold)
    if n == 0:
        return None
    rng = random.Random(seed)
    vals = []
    for _ in range(resamples):
        pick = [rng.randrange(n) for _ in range(n)]
        f1, _ = macro_f1([gold[i] for i in pick], [pred[i] for i in pick])
        vals.append(f1)
    vals.sort()
    return vals[int(0.025 * resamples)], vals[min(resamples - 1, int(0.975 * resamples))]


def verdict(value, interval, target):
    """'met' / 'not met' when the interval is on one side of the target,
    'within noise' when it straddles it.

    >>> verdict(0.9, (0.85, 0.95), 0.8), verdict(0.7, (0.6, 0.75), 0.8), verdict(0.8, (0.75, 0.85), 0.8)
    ('met', 'not met', 'within noise')
    """
    lo, hi = interval
    if lo >= target:
        return "met"
    if hi < target:
        return "not met"
    return "within noise"


def bin_index(x):
    """Equal-width bin of x in [0, 1]; 1.0 goes in the last bin.

    >>> [bin_index(x) for x in (0.0, 0.05, 0.1, 0.99, 1.0)]
    [0, 0, 1, 9, 9]
    """
    return min(N_BINS - 1, max(0, int(x * N_BINS)))


def reliability(conf, hit):
    """Bins of (confidence, hit in {0,1}); returns (ece, rows) where rows are
    (bin, n, mean confidence or None, accuracy or None).

    >>> ece, rows = reliability([0.95, 0.95, 0.55, 0.55], [1, 0, 1, 1])
    >>> round(ece, 4)
    0.45
    >>> rows[9], rows[5]
    ((9, 2, 0.95, 0.5), (5, 2, 0.55, 1.0))
    """
    n = len(conf)
    bins = [[] for _ in range(N_BINS)]
    for c, h in zip(conf, hit):
        bins[bin_index(c)].append((c, h))
    rows, ece = [], 0.0
    for k, b in enumerate(bins):
        if not b:
            rows.append((k, 0, None, None))
            continue
        mc = sum(c for c, _ in b) / len(b)
        acc = sum(h for _, h in b) / len(b)
        ece += len(b) / n * abs(acc - mc)
        rows.append((k, len(b), mc, acc))
    return (ece if n else None), rows


# ------------------------------------------------------------ predictions

def model_label3(p):
    """Argmax of (p_neg, p_neu, p_pos), first maximum in that order."""
    best = max(p)
    return CLASSES[p.index(best)]


def model_call(p):
    return "pos" if p[2] > p[0] else "neg" if p[2] < p[0] else None


def peer_call(score):
    return "pos" if score > 0 else "neg" if score < 0 else None


def q_pos(p):
    s = p[0] + p[2]
    return p[2] / s if s > 0 else 0.5


# ------------------------------------------------------------------ input

def read_jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_pred(path, items):
    rows = read_jsonl(path)
    if len(rows) != len(items):
        raise SystemExit(f"{path}: {len(rows)} predictions for {len(items)} eval items")
    out = []
    for i, (r, it) in enumerate(zip(rows, items)):
        if r.get("text") is not None and r["text"] != it["text"]:
            raise SystemExit(f"{path}: line {i + 1}: text differs from the eval item's")
        out.append((float(r["p_neg"]), float(r["p_neu"]), float(r["p_pos"])))
    return out


def load_peers(path, n_items):
    peers = {}
    for r in read_jsonl(path):
        i = int(r["i"])
        if not 0 <= i < n_items:
            raise SystemExit(f"{path}: item index {i} out of range (eval has {n_items})")
        if r["label3"] not in CLASSES:
            raise SystemExit(f"{path}: bad label3 {r['label3']!r}")
        peers.setdefault(r["peer"], {})[i] = (r["label3"], float(r["score"]))
    return peers


# ----------------------------------------------------------------- report

def fmt(x, d=3):
    return "—" if x is None else f"{x:.{d}f}"


def system_row(group, system, subset, idx, gold, label3, calls):
    g = [gold[i] for i in idx]
    f1, present = macro_f1(g, [label3[i] for i in idx])
    acc, n_polar, ties = binary_accuracy(g, [calls[i] for i in idx])
    partial = f1 is not None and len(present) < 3
    f1s = fmt(f1) + ("*" if partial else "")
    classes = ",".join(present) if present else "—"
    return f"| {group} | {system} | {subset} | {len(idx)} | {n_polar} | {fmt(acc)} | {ties} | {f1s} | {classes} |"


HEADER = ("| group | system | subset | n | n polar | bin acc | ties | macro-F1 | classes |\n"
          "|---|---|---|---:|---:|---:|---:|---:|---|")


def comparison_table(title, groups, gold, models, peers):
    """groups: list of (name, item indices)."""
    out = [f"### {title}", "", HEADER]
    for gname, idx in groups:
        if not idx:
            continue
        for mname, (lab, calls) in models.items():
            out.append(system_row(gname, f"`{mname}`", "all", idx, gold, lab, calls))
        for pname, cover in peers.items():
            sub = [i for i in idx if i in cover]
            if not sub:
                continue
            lab = {i: cover[i][0] for i in sub}
            calls = {i: peer_call(cover[i][1]) for i in sub}
            out.append(system_row(gname, f"peer `{pname}`", f"{pname}'s", sub, gold, lab, calls))
            for mname, (mlab, mcalls) in models.items():
                out.append(system_row(gname, f"`{mname}` @ {pname}", f"{pname}'s", sub, gold, mlab, mcalls))
    out.append("")
    return out


def calibration_tables(groups, gold, preds, with_reliability):
    out = ["### Calibration (models)", "",
           "| group | model | n | ECE-3 | n polar | ECE-2 |", "|---|---|---:|---:|---:|---:|"]
    rel = []
    for gname, idx in groups:
        if not idx:
            continue
        for mname, p in preds.items():
            conf = [max(p[i]) for i in idx]
            hit = [1 if model_label3(p[i]) == gold[i] else 0 for i in idx]
            ece3, rows3 = reliability(conf, hit)
            pol = [i for i in idx if gold[i] in ("neg", "pos")]
            ece2, rows2 = reliability([q_pos(p[i]) for i in pol],
                                      [1 if gold[i] == "pos" else 0 for i in pol])
            out.append(f"| {gname} | `{mname}` | {len(idx)} | {fmt(ece3)} | {len(pol)} | {fmt(ece2)} |")
            if with_reliability:
                rel += [f"#### Reliability: `{mname}`, {gname}", "",
                        "| bin | n | mean conf | accuracy | n polar | mean P(pos) | frac pos |",
                        "|---|---:|---:|---:|---:|---:|---:|"]
                for (k, n3, c3, a3), (_, n2, c2, a2) in zip(rows3, rows2):
                    rng = f"[{k / N_BINS:.1f}, {(k + 1) / N_BINS:.1f}{']' if k == N_BINS - 1 else ')'}"
                    rel.append(f"| {rng} | {n3} | {fmt(c3)} | {fmt(a3)} | {n2} | {fmt(c2)} | {fmt(a2)} |")
                rel.append("")
    out.append("")
    return out + rel


def goal_rows(mname, goals, gold, lab, calls):
    """One table row per (goal, group) for a model: value, 95 % interval, verdict."""
    out = []
    for what, gname, idx, target in goals:
        g = [gold[i] for i in idx]
        if what == "bin":
            pol = [i for i in idx if gold[i] in ("neg", "pos")]
            if not pol:
                continue
            right = sum(1 for i in pol if calls[i] == gold[i])
            value, ci, n = right / len(pol), wilson(right, len(pol)), len(pol)
            metric = "binary accuracy"
        else:
            if "neu" not in g:
                continue
            p = [lab[i] for i in idx]
            value, ci, n = macro_f1(g, p)[0], bootstrap_macro_f1(g, p), len(idx)
            metric = "3-class macro-F1"
        out.append(f"| `{mname}` | {gname} | {metric} | {n} | ≥ {target:.2f} | {value:.3f} | "
                   f"{ci[0]:.3f}–{ci[1]:.3f} | {verdict(value, ci, target)} |")
    return out


def goals_table(models, gold, by_lang, by_dom):
    dom = dict(by_dom)
    goals = [("bin", "domain=review", dom.get("domain=review", []), GOAL_REVIEWS),
             ("bin", "domain=post", dom.get("domain=post", []), GOAL_POSTS)]
    goals += [("bin", g, idx, GOAL_LANG_BIN) for g, idx in by_lang if idx]
    goals += [("f1", g, idx, GOAL_LANG_F1) for g, idx in by_lang if idx]
    out = ["### Goals (issue 13)", "",
           "95 % interval: Wilson for binary accuracy, bootstrap for macro-F1; \"within noise\": "
           "the interval straddles the target. Macro-F1 goals only where the language has "
           "neutral gold items.", "",
           "| model | group | metric | n | target | value | 95 % interval | verdict |",
           "|---|---|---|---:|---:|---:|---|---|"]
    for mname, (lab, calls) in models.items():
        out += goal_rows(mname, goals, gold, lab, calls)
    out.append("")
    return out


def build_report(items, preds, peers, with_reliability=True):
    gold = [it["label"] for it in items]
    for i, g in enumerate(gold):
        if g not in CLASSES:
            raise SystemExit(f"eval item {i}: label {g!r} is not one of {CLASSES}")
    models = {name: ([model_label3(x) for x in p], [model_call(x) for x in p])
              for name, p in preds.items()}
    all_idx = list(range(len(items)))
    langs = sorted({str(it.get("lang", "")) for it in items})
    by_lang = [(f"lang={lg}", [i for i in all_idx if str(items[i].get("lang", "")) == lg]) for lg in langs]
    doms = [d for d in DOMAINS] + sorted({str(it.get("domain")) for it in items} - set(DOMAINS))
    by_dom = [(f"domain={d}", [i for i in all_idx if str(items[i].get("domain")) == d]) for d in doms]

    out = ["## Sentiment evaluation", "",
           f"{len(items)} items; models: {', '.join(f'`{m}`' for m in preds) or 'none'}; "
           f"peers: {', '.join(f'`{p}` ({len(c)} items)' for p, c in peers.items()) or 'none'}.",
           "bin acc: accuracy on neg/pos gold items (ties count as wrong); macro-F1: 3-class, "
           "over the gold classes present (* = fewer than three, see classes). "
           "`model @ peer`: the model on exactly the items the peer covers.", ""]
    if models:
        out += goals_table(models, gold, by_lang, by_dom)
    out += comparison_table("Overall", [("all", all_idx)], gold, models, peers)
    out += comparison_table("By language", by_lang, gold, models, peers)
    no_neu = [g for g, idx in by_lang if idx and not any(gold[i] == "neu" for i in idx)]
    if no_neu:
        out += [f"No neutral gold items in {', '.join(no_neu)}: macro-F1 there is over the classes "
                "present (marked *).", ""]
    out += comparison_table("By domain", by_dom, gold, models, peers)
    if preds:
        out += calibration_tables([("all", all_idx)] + by_lang, gold, preds, with_reliability)
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval", required=True)
    ap.add_argument("--pred", action="append", default=[], metavar="NAME=PRED.jsonl")
    ap.add_argument("--peers", default="")
    ap.add_argument("--markdown", default="")
    ap.add_argument("--no-reliability", action="store_true", help="omit the per-bin tables")
    args = ap.parse_args(argv)
    items = read_jsonl(args.eval)
    preds = {}
    for spec in args.pred:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            ap.error(f"--pred wants NAME=PATH, got {spec!r}")
        if name in preds:
            ap.error(f"--pred name {name!r} given twice")
        preds[name] = load_pred(path, items)
    peers = load_peers(args.peers, len(items)) if args.peers else {}
    md = build_report(items, preds, peers, not args.no_reliability)
    print(md)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
