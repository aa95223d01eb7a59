#!/usr/bin/env python3
"""Cut the held-out sentiment evaluation set out of the fetched training data.

Usage:
    python3 scripts/make-sentiment-eval.py --data TRAIN.jsonl --out EVAL.jsonl [--per-group 150]

An item is held out when FNV-1a 64 of its UTF-8 text is 0 mod 10: the same
rule as `earshot train-head` / `train-adapter` (crates/model/src/train.rs),
which never train or calibrate on such items. From the held-out items, at
most `--per-group` per (source, subset, lang, label) are kept, chosen by the
same stable hash, so the file is identical on every machine. Rows keep
`text, label, lang, source, subset, domain` (domain "review" | "post" |
"other"; rows without one are marked "other").

Standard library only.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv1a(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & MASK
    return h


def rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (64 - n))) & MASK


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-group", type=int, default=150)
    ap.add_argument("--skip", action="append", default=[],
                    help="drop items whose source/subset contains this string (repeatable)")
    args = ap.parse_args()

    groups: dict[tuple, list] = collections.defaultdict(list)
    with open(args.data, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            origin = f"{row.get('source', 'unknown')}/{row.get('subset', '-')}"
            if any(s in origin for s in args.skip):
                continue
            h = fnv1a(row["text"].encode("utf-8"))
            if h % 10 != 0:
                continue
            key = (row.get("source", "unknown"), row.get("subset", "-"), row.get("lang", "und"), row["label"])
            groups[key].append((rotl(h, 17), row))
    out = []
    counts = collections.Counter()
    for key in sorted(groups):
        items = sorted(groups[key], key=lambda t: t[0])[: args.per_group]
        for _, row in items:
            row = {k: row[k] for k in ("text", "label", "lang", "source", "subset", "domain") if k in row}
            row.setdefault("domain", "other")
            out.append(row)
            counts[(row["lang"], row["domain"], row["label"])] += 1
    with open(args.out, "w", encoding="utf-8") as f:
        for row in out:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(out)} held-out items -> {args.out}", file=sys.stderr)
    print(f"{'lang':5} {'domain':7} {'neg':>5} {'neu':>5} {'pos':>5}", file=sys.stderr)
    for lang, dom in sorted({(l, d) for l, d, _ in counts}):
        print(f"{lang:5} {dom:7} " + " ".join(f"{counts[(lang, dom, lab)]:5d}" for lab in ("neg", "neu", "pos")),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
