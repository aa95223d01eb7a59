#!/usr/bin/env bash
# Whole-pipeline throughput vs bare inference on the same texts.
#   bash scripts/bench-pipeline.sh [N_EVENTS] [extra earshot flags, e.g. --device cuda]
# Produces N events (review-length texts, 12 brands, 6 partitions) to a fresh topic,
# runs `earshot run --until-idle` on it (Kafka in, scored + alerts out, acks),
# then `earshot classify --lines` on the same texts (tokenize + batched
# inference only) and prints events/s for both.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$EARSHOT_ROOT"
N="${1:-2000}"; shift || true
earshot="$CARGO_TARGET_DIR/release/earshot"
[ -x "$earshot" ] || die "build first: bash scripts/setup.sh"
bash scripts/broker.sh start >/dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Review-length texts (mean ~51 tokens, p99 ~210; see make-bench-texts.py),
# one event each, 12 brands, spread over four days of event time.
python3 scripts/make-bench-texts.py "$N" --events > "$tmp/events.jsonl"
python3 scripts/make-bench-texts.py "$N" > "$tmp/texts.txt"
topic="bench.pipeline.$(date +%s)"
"$earshot" produce "$tmp/events.jsonl" --topic "$topic" >/dev/null 2>&1
start=$(date +%s.%N)
"$earshot" run --topic "$topic" --group-id "$topic" --until-idle 2 --log warn "$@" > /dev/null
end=$(date +%s.%N)
# Subtract the 2 s idle wait; model load is included (a few seconds).
pipe=$(python3 -c "print(f'{$N / ($end - $start - 2):.1f}')")
start=$(date +%s.%N)
"$earshot" classify --lines --log warn "$@" < "$tmp/texts.txt" > /dev/null
end=$(date +%s.%N)
bare=$(python3 -c "print(f'{$N / ($end - $start):.1f}')")
echo "events: $N"
rm -rf "$tmp/replay"
start=$(date +%s.%N)
"$earshot" replay "$tmp/events.jsonl" --out "$tmp/replay" --log warn "$@" > /dev/null
end=$(date +%s.%N)
replay=$(python3 -c "print(f'{$N / ($end - $start):.1f}')")
echo "whole pipeline (kafka -> score -> detect -> produce -> ack): $pipe events/s"
echo "replay (file -> score -> detect -> report):                  $replay events/s"
echo "bare inference (classify, same texts, same batching):        $bare events/s"
