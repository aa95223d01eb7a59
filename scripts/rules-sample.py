#!/usr/bin/env python3
"""Deterministic subsample of the rule-generated texts used to train the adapter.

Usage:
    python3 scripts/rules-sample.py [--in ~/.cache/earshot/train/rules.jsonl]
        [--out ~/.cache/earshot/train/rules-sample.jsonl] [--per-label 450]

Per (language, label): all families share `--per-label` items, polar 1/2,
negation 1/4, mixed 1/4 (neutral has one family and takes them all), chosen
by sha256 of the text. Keeps the synthetic texts a minority of the training
set (13,480 of ~40k items with the defaults). Standard library only.
"""

import argparse
import collections
import hashlib
import json
import os

SHARE = {"polar": 0.5, "negation": 0.25, "mixed": 0.25, "neutral": 1.0}


def main() -> None:
    home = os.path.expanduser("~/.cache/earshot/train")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--in", dest="src", default=os.path.join(home, "rules.jsonl"))
    ap.add_argument("--out", default=os.path.join(home, "rules-sample.jsonl"))
    ap.add_argument("--per-label", type=int, default=450)
    args = ap.parse_args()
    groups = collections.defaultdict(list)
    with open(args.src, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            groups[(r["lang"], r["label"], r["subset"])].append(r)
    out = []
    for key in sorted(groups):
        rows = sorted(groups[key], key=lambda r: hashlib.sha256(r["text"].encode()).hexdigest())
        out += rows[: int(args.per_label * SHARE[key[2].split("-")[0]])]
    with open(args.out, "w", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(out)} rows -> {args.out}")


if __name__ == "__main__":
    main()
