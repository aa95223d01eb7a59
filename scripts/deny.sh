#!/usr/bin/env bash
# Dependency policy check with cargo-deny (deny.toml): licences, banned or
# wildcard dependencies, and crate sources (crates.io only). Installs the tool
# from crates.io into the cache on first use (pinned, --locked; ~6 min on 2
# cores, then cached).
#
#   bash scripts/deny.sh            install if needed, then check
#   bash scripts/deny.sh install    install only
#
# Not checked: security advisories. `cargo deny check advisories` and
# `cargo audit` read the RustSec advisory database, which is published only
# as a GitHub repository; no package registry ships it, and nothing here may
# download from elsewhere.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
VERSION=0.20.2
TOOLS="$EARSHOT_CACHE/tools"
BIN="$TOOLS/bin/cargo-deny"

install() {
  if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q " $VERSION\$"; then
    return 0
  fi
  log "installing cargo-deny $VERSION from crates.io into $TOOLS (once)"
  cargo install cargo-deny --version "$VERSION" --locked --root "$TOOLS" \
    --target-dir "$EARSHOT_CACHE/tools-target" --quiet
}

install
[ "${1:-}" = install ] && exit 0
cd "$EARSHOT_ROOT"
log "cargo deny check licenses bans sources (advisories: no registry ships the RustSec database)"
"$BIN" --log-level error check licenses bans sources
