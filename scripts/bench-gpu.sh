#!/usr/bin/env bash
# GPU encoder benchmark: earshot (CUDA build, examples/encoder_bench) against a
# PyTorch fp16 peer (scripts/bench_gpu_peer.py) on the same texts, one
# markdown table at the end. Meant to run ON the GPU machine, from the
# repository root, with no Rust toolchain and no network there. See
# scripts/CUDA.md for what to carry. Everything is set through variables:
#
#   EARSHOT_BENCH_BIN   encoder_bench built with --features cuda
#                       (default: .cache/gpu/bin/encoder_bench, then the cargo target dirs)
#   EARSHOT_CUDA_LIB    dir(s, ':'-separated) with libcudart.so.13, libcublas(Lt).so.13,
#                       libcurand.so.10, libnvrtc.so.13 (default .cache/cuda/lib64; the
#                       CUDA libraries of the local PyTorch install and /usr/local/cuda
#                       are tried after it)
#   BENCH_TEXTS         texts, one per line (default: BENCH_N texts made by
#                       scripts/make-bench-texts.py into $BENCH_OUT/texts.txt)
#   BENCH_N             texts to make when BENCH_TEXTS is unset (default 20000)
#   BENCH_LENGTHS       token counts, one per line: the peer's fallback when the
#                       tokenizers package or models/tokenizer.json is missing
#   BENCH_QUEUE=512 BENCH_MAX_TOKENS=4096 BENCH_MAX_BATCH=64 BENCH_SINGLE=200
#                       the batching both sides use (earshot's defaults: 4096 / 64)
#   BENCH_MODEL         e5 (models/e5-small-q4.bin), random (earshot's random encoder
#                       with e5-small's shape: needs only models/tokenizer.json) or
#                       auto (default: e5 if the weights are there, else random)
#   BENCH_CPU=0         skip earshot --device cpu (default on: its speed on this
#                       machine's cores, and the worst cosine of its embeddings
#                       against the CUDA run's)
#   BENCH_COMPILE=1     also try torch.compile in the peer (can take minutes)
#   BENCH_FP32=0        skip the peer's fp32 run (earshot computes in f32 on CUDA)
#   EARSHOT_BENCH_ARGS  extra arguments for encoder_bench (model dir, weights, ...)
#   PYTHON              Python with torch (default python3)
#   BENCH_OUT           where results go (default .cache/bench)
#   BENCH_TIMEOUT       seconds per run (default 600)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$EARSHOT_ROOT"

PYTHON="${PYTHON:-python3}"
BENCH_OUT="${BENCH_OUT:-.cache/bench}"
QUEUE="${BENCH_QUEUE:-512}"
MAX_TOKENS="${BENCH_MAX_TOKENS:-4096}"
MAX_BATCH="${BENCH_MAX_BATCH:-64}"
SINGLE="${BENCH_SINGLE:-200}"
TIMEOUT="${BENCH_TIMEOUT:-600}"
mkdir -p "$BENCH_OUT"
RESULTS="$BENCH_OUT/results.jsonl"
: >"$RESULTS"
failures=0

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=)"
with_timeout() { if command -v timeout >/dev/null; then timeout "$TIMEOUT" "$@"; else "$@"; fi; }
# first_error LOG: the line that says what went wrong (not a backtrace frame)
first_error() {
  { grep -m1 -E "^(Error|error|thread '.*' panicked|bench_gpu_peer: error)" "$1" || tail -n1 "$1"; } 2>/dev/null | cut -c1-300
}
# error_line IMPL DEVICE MESSAGE: a result line that says what went wrong
error_line() {
  "$PYTHON" -c 'import json,sys; print(json.dumps({"impl":sys.argv[1],"device":sys.argv[2],"error":sys.argv[3][:400]}))' \
    "$1" "$2" "$3" >>"$RESULTS"
}

# ---- the GPU -------------------------------------------------------------
if command -v nvidia-smi >/dev/null; then
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1 || true)
  log "GPU: ${gpu:-nvidia-smi found no GPU}"
else
  log "warning: nvidia-smi not found; is this the GPU machine?"
fi

# ---- unpack what build-cuda.sh packed (.cache/gpu-pack: xz, for transfers) -----
unxz_to() {  # unxz_to SRC DEST
  mkdir -p "$(dirname "$2")"
  if command -v xz >/dev/null; then xz -dc "$1" >"$2.tmp"
  else "$PYTHON" -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$1" "$2.tmp"
  fi && mv "$2.tmp" "$2"
}
PACK=.cache/gpu-pack
if [ -z "${EARSHOT_BENCH_BIN:-}" ] && [ -f "$PACK/encoder_bench.xz" ] \
   && { [ ! -x .cache/gpu/bin/encoder_bench ] || [ "$PACK/encoder_bench.xz" -nt .cache/gpu/bin/encoder_bench ]; }; then
  log "unpacking $PACK/encoder_bench.xz"
  unxz_to "$PACK/encoder_bench.xz" .cache/gpu/bin/encoder_bench && chmod +x .cache/gpu/bin/encoder_bench
fi
if [ ! -f models/tokenizer.json ] && [ -f "$PACK/tokenizer.json.xz" ]; then
  log "unpacking $PACK/tokenizer.json.xz into models/"
  unxz_to "$PACK/tokenizer.json.xz" models/tokenizer.json
  # the same check as scripts/fetch-models.sh
  want=$(sed -n 's/.*tokenizer.json|\([0-9a-f]\{64\}\)".*/\1/p' scripts/fetch-models.sh)
  if [ -n "$want" ] && [ "$(sha models/tokenizer.json)" != "$want" ]; then
    rm -f models/tokenizer.json; die "unpacked tokenizer.json fails its sha256 check"
  fi
fi

# ---- the earshot binary and its CUDA libraries ---------------------------
BIN="${EARSHOT_BENCH_BIN:-}"
if [ -z "$BIN" ]; then
  for c in .cache/gpu/bin/encoder_bench "$EARSHOT_CACHE/target-cuda/release/examples/encoder_bench" \
           target/release/examples/encoder_bench; do
    [ -x "$c" ] && { BIN="$c"; break; }
  done
fi

# Candidate library dirs, in order; all that exist go on LD_LIBRARY_PATH.
lib_candidates() {
  local IFS=:
  for d in ${EARSHOT_CUDA_LIB:-.cache/cuda/lib64}; do echo "$d"; done
  # PyTorch's CUDA 13 wheels (nvidia-cublas, nvidia-cuda-runtime, ...) install here
  "$PYTHON" - <<'PY' 2>/dev/null || true
import os
try:
    import nvidia
    for p in nvidia.__path__:
        for sub in ("cu13/lib", "cublas/lib", "cuda_runtime/lib", "curand/lib", "cuda_nvrtc/lib"):
            d = os.path.join(p, sub)
            if os.path.isdir(d):
                print(d)
except Exception:
    pass
PY
  echo /usr/local/cuda/lib64
  echo /usr/local/cuda/targets/x86_64-linux/lib
}

earshot_ok=0
if [ -z "$BIN" ]; then
  log "error: no encoder_bench binary (set EARSHOT_BENCH_BIN; build it with scripts/build-cuda.sh)"
  error_line earshot cuda "encoder_bench binary not found"
  failures=$((failures + 1))
else
  libpath=""
  while IFS= read -r d; do
    [ -d "$d" ] || continue
    d=$(cd "$d" && pwd)
    case ":$libpath:" in *":$d:"*) ;; *) libpath="${libpath:+$libpath:}$d" ;; esac
  done < <(lib_candidates)
  export LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if command -v ldd >/dev/null; then
    missing=$(ldd "$BIN" 2>&1 | awk '/not found/{print $1}' | tr '\n' ' ')
    if [ -n "$missing" ]; then
      log "error: $BIN cannot load: $missing"
      log "  searched: ${libpath:-nothing found}"
      log "  libcuda.so.1 comes with the NVIDIA driver; the others from EARSHOT_CUDA_LIB"
      log "  (the lib dir of \$EARSHOT_CACHE/cuda-13.0.2 made by build-cuda.sh, or a CUDA 13 install)"
      error_line earshot cuda "shared libraries not found: $missing"
      failures=$((failures + 1))
    else
      earshot_ok=1
      ldd "$BIN" | awk '/libcu|libnvrtc/{print "  " $1 " -> " $3}' >&2
    fi
  else
    earshot_ok=1
  fi
fi

# ---- the texts ---------------------------------------------------------------
TEXTS="${BENCH_TEXTS:-}"
if [ -z "$TEXTS" ] && [ -f scripts/make-bench-texts.py ]; then
  # the texts of the CPU benchmarks (scripts/bench-encoder.sh): review-length,
  # long-tailed, six languages, deterministic
  TEXTS="$BENCH_OUT/texts.txt"
  "$PYTHON" scripts/make-bench-texts.py "${BENCH_N:-20000}" >"$TEXTS"
elif [ -z "$TEXTS" ]; then
  TEXTS="$BENCH_OUT/texts.txt"
  # A deterministic stream from the bundled examples: most texts are one
  # review, some join several into longer posts (a long tail, up to the window).
  "$PYTHON" - "$TEXTS" "${BENCH_N:-20000}" examples/stream.jsonl examples/reviews.jsonl <<'PY'
import json, random, sys
out, n, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
pool = []
for path in files:
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # the example stream holds a few deliberately broken lines
            t = obj.get("text") if isinstance(obj, dict) else None
            if isinstance(t, str) and t.strip():
                pool.append(" ".join(t.split()))
rng = random.Random(20261201)
with open(out, "w", encoding="utf-8") as f:
    for _ in range(n):
        r = rng.random()
        k = 1 if r < 0.60 else rng.randint(2, 3) if r < 0.85 else rng.randint(4, 8) if r < 0.97 else rng.randint(10, 30)
        f.write(" ".join(rng.choice(pool) for _ in range(k)) + "\n")
print(f"made {n} texts from {len(pool)} examples", file=sys.stderr)
PY
fi
[ -s "$TEXTS" ] || die "no texts in $TEXTS"
ntexts=$(grep -c . "$TEXTS" || true)
log "texts: $TEXTS ($ntexts); queue $QUEUE, max tokens $MAX_TOKENS, max batch $MAX_BATCH, single $SINGLE"

# ---- earshot -------------------------------------------------------------------
# Embeddings (texts x 384 f32) are large: they go to a scratch dir, not BENCH_OUT.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/earshot-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
LENGTHS="${BENCH_LENGTHS:-}"
MODEL_ARGS=()
model="${BENCH_MODEL:-auto}"
if [ "$model" = auto ]; then
  if [ -f models/e5-small-q4.bin ]; then model=e5; else model=random; fi
fi
case "$model" in
  e5) [ -f models/e5-small-q4.bin ] || log "warning: models/e5-small-q4.bin is missing (BENCH_MODEL=random needs only the tokenizer)" ;;
  random)
    # earshot's random encoder with multilingual-e5-small's shape: the same
    # work per token as the real model, without carrying its 69 MB of weights.
    cat >"$WORK/random-e5.toml" <<TOML
[model]
encoder = "random"
dir = "$EARSHOT_ROOT/models"
[model.random]
hidden = 384
layers = 12
heads = 12
intermediate = 1536
TOML
    MODEL_ARGS=(--config "$WORK/random-e5.toml") ;;
  *) die "BENCH_MODEL=$model: use e5, random or auto" ;;
esac
[ -f models/tokenizer.json ] || log "warning: models/tokenizer.json is missing: earshot cannot tokenize"
log "earshot model: $model"

run_earshot() {
  local device="$1" log_file="$BENCH_OUT/earshot-$1.log" rc=0 extra=()
  if [ "$device" = cuda ]; then
    extra=(--lengths-out "$WORK/lengths.txt" --embeddings-out "$WORK/emb-cuda.f32")
  elif [ -s "$WORK/emb-cuda.f32" ]; then
    extra=(--compare "$WORK/emb-cuda.f32")
  fi
  log "earshot encoder_bench --device $device"
  # shellcheck disable=SC2086
  with_timeout "$BIN" --device "$device" --texts "$TEXTS" --queue "$QUEUE" --max-tokens "$MAX_TOKENS" \
      --max-batch "$MAX_BATCH" --single "$SINGLE" --json "${MODEL_ARGS[@]}" "${extra[@]}" \
      ${EARSHOT_BENCH_ARGS:-} >"$log_file.out" 2>"$log_file" || rc=$?
  if [ "$rc" -eq 0 ] && grep -q '^{' "$log_file.out"; then
    grep '^{' "$log_file.out" >>"$RESULTS"
  else
    log "earshot --device $device failed (exit $rc); first lines of $log_file:"
    head -n 15 "$log_file" >&2 || true
    error_line earshot "$device" "exit $rc: $(first_error "$log_file")"
    failures=$((failures + 1))
  fi
}
if [ "$earshot_ok" = 1 ]; then
  run_earshot cuda
  if [ "${BENCH_CPU:-1}" = 1 ]; then run_earshot cpu; fi
  if [ -z "$LENGTHS" ] && [ -s "$WORK/lengths.txt" ]; then LENGTHS="$WORK/lengths.txt"; fi
fi

# ---- the PyTorch peer ------------------------------------------------------------
if ! torch_info=$("$PYTHON" -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "no-cuda")' 2>/dev/null); then
  log "error: PyTorch is NOT installed for $PYTHON ($(command -v "$PYTHON")): the torch peer is skipped"
  log "  set PYTHON= to a Python that has torch"
  error_line torch-peer cuda "torch is not installed for $PYTHON"
  failures=$((failures + 1))
elif [ "${torch_info#* }" != cuda ]; then
  log "error: torch ${torch_info% *} sees no CUDA device: the torch peer is skipped"
  error_line torch-peer cuda "torch ${torch_info% *} sees no CUDA device"
  failures=$((failures + 1))
else
  log "torch peer (torch ${torch_info% *})"
  peer_args=(--device cuda --texts "$TEXTS" --queue "$QUEUE" --max-tokens "$MAX_TOKENS"
             --max-batch "$MAX_BATCH" --single "$SINGLE" --tokenizer models/tokenizer.json --json)
  # earshot's token counts: the peer checks its own tokenization against them
  if [ -n "$LENGTHS" ]; then peer_args+=(--lengths "$LENGTHS"); fi
  if [ "${BENCH_FP32:-1}" = 1 ]; then peer_args+=(--also-fp32); fi
  if [ "${BENCH_COMPILE:-0}" = 1 ]; then peer_args+=(--compile); fi
  rc=0
  PYTHONUNBUFFERED=1 with_timeout "$PYTHON" scripts/bench_gpu_peer.py "${peer_args[@]}" \
      >"$BENCH_OUT/peer.out" 2>"$BENCH_OUT/peer.log" || rc=$?
  grep '^{' "$BENCH_OUT/peer.out" >>"$RESULTS" || true
  if [ "$rc" -ne 0 ]; then
    log "torch peer failed (exit $rc); last lines of $BENCH_OUT/peer.log:"
    tail -n 15 "$BENCH_OUT/peer.log" >&2 || true
    error_line torch-peer cuda "exit $rc: $(first_error "$BENCH_OUT/peer.log")"
    failures=$((failures + 1))
  fi
fi

# ---- the table -------------------------------------------------------------------
"$PYTHON" - "$RESULTS" "${gpu:-}" >"$BENCH_OUT/results.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
gpu = sys.argv[2]
def f(v, nd=1):
    return "" if v is None else (f"{v:,.{nd}f}" if isinstance(v, (int, float)) else str(v))
print(f"GPU: {gpu or 'unknown'}  \n")
print("| impl | device | texts | reviews/s | tokens/s | batch p50 ms | batch p99 ms | batch-1 p50 ms | batch-1 p99 ms | padding |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if "error" in r:
        print(f"| {r['impl']} | {r.get('device','')} | | error: {r['error'].replace('|', '/')} | | | | | | |")
        continue
    print(f"| {r['impl']} | {r.get('device','')} | {r.get('texts','')} | {f(r.get('reviews_per_s'))} | "
          f"{f(r.get('tokens_per_s'), 0)} | {f(r.get('batch_p50_ms'), 2)} | {f(r.get('batch_p99_ms'), 2)} | "
          f"{f(r.get('single_p50_ms'), 2)} | {f(r.get('single_p99_ms'), 2)} | {f(r.get('padding_ratio'), 3)} |")
ok = [r for r in rows if "error" not in r and r.get("reviews_per_s")]
ours = [r for r in ok if r["impl"] == "earshot" and r.get("device") == "cuda"]
torch_rows = [r for r in ok if r["impl"].startswith("torch-")]
print()
if ours and torch_rows:
    e = ours[0]["reviews_per_s"]
    best = max(torch_rows, key=lambda r: r["reviews_per_s"])
    print(f"earshot (cuda) / best torch ({best['impl']}): **{e / best['reviews_per_s']:.2f}x** reviews/s")
    same = [r for r in torch_rows if r["impl"].endswith("-queue")]
    for r in same:
        print(f"earshot (cuda) / {r['impl']} (same batching): {e / r['reviews_per_s']:.2f}x")
    if ours[0].get("single_p50_ms") and best.get("single_p50_ms"):
        print(f"batch-1 p50: earshot {ours[0]['single_p50_ms']:.2f} ms, torch {best['single_p50_ms']:.2f} ms")
else:
    print("no ratio: " + ("earshot (cuda) has no result" if not ours else "the torch peer has no result"))
cos = [r for r in ok if r["impl"] == "earshot" and r.get("worst_cosine_vs_compare") is not None]
for r in cos:
    print(f"earshot {r['device']} vs cuda embeddings: worst cosine {r['worst_cosine_vs_compare']:.5f}")
srcs = {r.get("tokens_source") for r in torch_rows if r.get("tokens_source")}
if srcs:
    print("torch peer tokens: " + ", ".join(sorted(srcs)))
PY
echo
cat "$BENCH_OUT/results.md"
log "results: $RESULTS and $BENCH_OUT/results.md"
[ "$failures" -eq 0 ] || { log "$failures part(s) failed (see above)"; exit 1; }
