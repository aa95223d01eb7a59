#!/usr/bin/env bash
# Offline peer sentiment analysers (scripts/sentiment_peers.py) in their own
# virtual environment, every package from PyPI at the versions pinned in
# scripts/sentiment-peers-requirements.txt. Nothing else is downloaded: no
# model hub, no GitHub, no NLTK data; the peers script refuses network
# connections while it runs.
#
#   bash scripts/sentiment-peers.sh EVAL.jsonl PEERS.jsonl [sentiment_peers.py options]
#   bash scripts/sentiment-peers.sh            # set up only, list the peers
#
#   EARSHOT_PEERS_VENV   venv (default ~/.cache/earshot/venv-peers)
#   EARSHOT_PIP_CACHE    pip cache (default ~/.cache/earshot/pip)
#   PYTHON               interpreter that makes the venv (default python3, >= 3.10)
#
# Idempotent: pip runs only when the venv is new or the requirements file
# changed since the last successful install (stamp inside the venv).
# Then: python3 scripts/sentiment_report.py --eval EVAL.jsonl \
#         --pred model=PRED.jsonl --peers PEERS.jsonl --markdown report.md
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EARSHOT_PEERS_VENV:-$HOME/.cache/earshot/venv-peers}"
cache="${EARSHOT_PIP_CACHE:-$HOME/.cache/earshot/pip}"
req="$root/scripts/sentiment-peers-requirements.txt"
stamp="$venv/.earshot-peers-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ]; then
  echo "[peers] creating $venv" >&2
  mkdir -p "$(dirname "$venv")"
  "${PYTHON:-python3}" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "[peers] installing pinned peers into $venv" >&2
  mkdir -p "$cache"
  "$venv/bin/pip" install --quiet --cache-dir "$cache" -r "$req"
  echo "$want" >"$stamp"
fi

if [ "$#" -eq 0 ]; then
  "$venv/bin/python" "$root/scripts/sentiment_peers.py" --list
  exit 0
fi
if [ "$#" -lt 2 ]; then
  echo "usage: $0 EVAL.jsonl PEERS.jsonl [sentiment_peers.py options]" >&2
  exit 2
fi
eval_file="$1" out="$2"
shift 2
exec "$venv/bin/python" "$root/scripts/sentiment_peers.py" "$eval_file" --out "$out" "$@"
