#!/usr/bin/env bash
# The main job on the embedded default: set up, then classify the bundled
# example reviews and print the results as a table.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$EARSHOT_ROOT/scripts/setup.sh"
cd "$EARSHOT_ROOT"
log "classifying examples/reviews.jsonl with the real model"
"$CARGO_TARGET_DIR/release/earshot" classify --format table "$@" < examples/reviews.jsonl
