#!/usr/bin/env bash
# Whole-pipeline throughput vs bare inference on the same texts.
#   bash scripts/bench-pipeline.sh [N_EVENTS] [extra earshot flags, e.g. --device cuda]
# Produces N events (fixture texts, 12 brands, 6 partitions) to a fresh topic,
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
python3 - "$N" "$tmp" <<'PY'
import json, sys
n, out = int(sys.argv[1]), sys.argv[2]
texts = []
for f in ("tests/fixtures/dev_reviews.jsonl", "tests/fixtures/category_eval.jsonl"):
    texts += [json.loads(l)["text"] for l in open(f, encoding="utf-8") if l.strip()]
t0 = 1_795_000_000_000
with open(f"{out}/events.jsonl", "w", encoding="utf-8") as ev, open(f"{out}/texts.txt", "w", encoding="utf-8") as tx:
    for i in range(n):
        text = texts[i % len(texts)]
        ev.write(json.dumps({"id": f"b{i}", "brand": f"brand{i % 12}", "text": text, "event_time": t0 + i * 10_000}, ensure_ascii=False) + "\n")
        tx.write(text.replace("\n", " ") + "\n")
PY
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
echo "whole pipeline (kafka -> score -> detect -> produce -> ack): $pipe events/s"
echo "bare inference (classify, same texts, same batching):        $bare events/s"
