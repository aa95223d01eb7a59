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
