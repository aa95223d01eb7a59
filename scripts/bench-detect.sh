#!/usr/bin/env bash
# Detector evaluation: prints the scenario table (real model embeddings,
# cached under .cache/) and the criterion throughput bench.
#   EARSHOT_DETECT_SEEDS=1,2,3,4,5  seeds to run (default 1..=5; the test alone defaults to 1,2,3)
#   EARSHOT_DETECT_VERBOSE=1    also print every signal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$EARSHOT_ROOT"
export EARSHOT_DETECT_SEEDS="${EARSHOT_DETECT_SEEDS:-1,2,3,4,5}"
log "scenario table (cargo test --release detect::scenario_table)"
cargo test --release --locked --test tests detect::scenario_table -- --nocapture --test-threads 1 2>&1 \
  | grep -vE '^(running|test |$)' || status=$?
log "throughput (cargo bench --bench detect)"
cargo bench --locked --bench detect
exit "${status:-0}"
