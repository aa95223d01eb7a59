#!/usr/bin/env python3
"""Writes N review-length texts (one per line) for the encoder benchmarks.

Real review lengths are long-tailed (multilingual shop reviews: mean about 45
XLM-R tokens, p99 about 190); the fixture sentences are one short sentence each
(about 15 tokens). Each bench text joins k sentences of ONE language from the
fixtures (tests/fixtures/dev_reviews.jsonl, category_eval.jsonl), k drawn from
a geometric distribution (mean 3, capped at 14) with a fixed seed, languages in
turn. Deterministic: the same N gives the same file.

    python3 scripts/make-bench-texts.py 300 > texts.txt
    python3 scripts/make-bench-texts.py 30000 --events > events.jsonl

With --events each text becomes a review event (JSONL: id, brand, product,
region, rating, event_time) spread over four days, 12 brands, in time order.
"""
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

root = Path(__file__).resolve().parent.parent
args = [a for a in sys.argv[1:] if not a.startswith("--")]
events = "--events" in sys.argv[1:]
n = int(args[0]) if args else 300
by_lang = defaultdict(list)
for name in ("dev_reviews.jsonl", "category_eval.jsonl"):
    for line in (root / "tests/fixtures" / name).read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            by_lang[item.get("lang") or "xx"].append(item["text"].replace("\n", " ").strip())
langs = sorted(l for l, v in by_lang.items() if len(v) >= 20)
rng = random.Random(17)
out = []
for i in range(n):
    lang = langs[i % len(langs)]
    k = 1
    while k < 14 and rng.random() < 2 / 3:
        k += 1
    sep = "" if lang in ("zh", "ja") else " "
    out.append(sep.join(rng.choice(by_lang[lang]) for _ in range(k)))
if not events:
    sys.stdout.write("".join(t + "\n" for t in out))
    sys.exit(0)
REGION = {"en": "us", "de": "de", "fr": "fr", "es": "es", "zh": "cn", "ja": "jp"}
t0 = 1_795_000_000_000  # 2026-11-18T...Z, epoch ms
span = 4 * 24 * 3600 * 1000
for i, text in enumerate(out):
    lang = langs[i % len(langs)]
    ev = {
        "id": f"bench-{i:07d}",
        "brand": f"brand{i % 12}",
        "product": f"product{(i * 7) % 40}",
        "region": REGION.get(lang, "xx"),
        "text": text,
        "rating": 1 + (i * 13) % 5,
        "event_time": t0 + i * span // max(n, 1),
    }
    sys.stdout.write(json.dumps(ev, ensure_ascii=False) + "\n")
