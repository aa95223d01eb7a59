#!/usr/bin/env bash
# Real bursty count series (NAB realTweets: 10 keys, 5-minute counts, ~55
# days, 33 labelled anomaly windows) through the detector with the default
# DetectConfig: per series and overall signals by kind, labelled windows hit
# and false pages per key per month, with the spam filter on and off.
#   NAB=PATH        a NAB work tree, or NAB_GIT=PATH a NAB git directory
#                   (see scripts/fetch-bursty-data.py; no registry ships the data)
#   BURSTY_DATA=DIR where the extracted series go (default ~/.cache/earshot/bursty-data)
#   BURSTY_SPAM=on|off|both (default both)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data="${BURSTY_DATA:-$HOME/.cache/earshot/bursty-data}"
if [[ ! -f "$data/labels.csv" ]]; then
  if [[ -n "${NAB:-}" ]]; then
    python3 scripts/fetch-bursty-data.py --nab "$NAB" --out "$data"
  elif [[ -n "${NAB_GIT:-}" ]]; then
    python3 scripts/fetch-bursty-data.py --nab-git "$NAB_GIT" --out "$data"
  else
    echo "error: no data in $data: set NAB=PATH (a NAB checkout) or NAB_GIT=PATH (its git directory)" >&2
    exit 2
  fi
fi
cargo run --release --locked -p earshot-scenario --example bursty -- "$data" "${BURSTY_SPAM:-both}"
