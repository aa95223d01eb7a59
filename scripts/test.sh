#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), formatting and lint gates, then
# every unit and integration test against the real model and the random one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
EARSHOT_TEST_TOOLS=1 bash "$EARSHOT_ROOT/scripts/setup.sh"
cd "$EARSHOT_ROOT"
log "sentiment report script: unit check (python, standard library)"
python3 scripts/test_sentiment_report.py
log "adapter soup script: unit check (python, standard library)"
python3 scripts/test_soup_adapters.py
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy (workspace, all targets, warnings are errors)"
cargo clippy --release --locked --workspace --all-targets --quiet -- -D warnings
log "dependency policy (cargo-deny: licences, bans, sources)"
bash scripts/deny.sh
log "local Kafka broker for the integration tests (fresh data dir each run)"
bash scripts/broker.sh wipe
bash scripts/broker.sh start
log "cargo test (release profile, shares the build cache)"
cargo test --release --locked --workspace -- --test-threads 2
