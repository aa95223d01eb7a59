#!/usr/bin/env python3
"""Real bursty count series with labelled anomaly windows, for scripts/bursty-eval.sh.

The series are the Numenta Anomaly Benchmark's realTweets (Twitter mentions of
ten companies, 5-minute counts, about 55 days each, 2015-02-26 .. 2015-04-22)
and their labelled anomaly windows (labels/combined_windows.json), NAB commit
ea702d75cc2258d9d7dd35ca8e5e2539d71f3140, MIT licence (Copyright 2014-2024
Numenta Inc.).

No package registry that this project may use ships them: checked on PyPI
anomalyhtm 1.0.0, nupic 1.0.5, htmresearch 0.0.3 (py2 only), kats 0.2.0,
orion-ml 0.7.1, salesforce-merlion 2.0.4, sktime 1.2.0 (NAB realTraffic speeds
only), seasonal 0.3.1, easytsad 0.3.0.2, tsb-ad 1.5, tsb-uad 0.0.3, streamad,
pysad, luminaire, adtk (no data, or a download at run time); npm and Debian
have no NAB package. So this script reads a NAB checkout the user provides
(a work tree, or a git directory plus the pinned commit) and checks every
file against its pinned SHA-256; it downloads nothing.

Output (under --out, default ~/.cache/earshot/bursty-data):
  <NAME>.csv   one line per 5-minute count: `epoch_ms,count` (UTC)
  labels.csv   one line per labelled window: `NAME,start_ms,end_ms`
where NAME is the company ticker (AAPL, ...).

Usage:
  fetch-bursty-data.py --nab PATH/TO/NAB                 (a checkout)
  fetch-bursty-data.py --nab-git PATH/TO/NAB/.git         (reads the pinned commit)
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys

COMMIT = "ea702d75cc2258d9d7dd35ca8e5e2539d71f3140"
SERIES = {
    "AAPL": "826f5cf404c2890784a7824f7102fd00cb134a4948e12e44ec320d095cbbc217",
    "AMZN": "234f5e63f19a62720dfb7ccfd6ecc8349b94d93b33ef8aafbdb17edda0b654f3",
    "CRM": "e7133bf26479623d58fc7367107aea1cd7df6020420dece48b0eee4d26cdb28a",
    "CVS": "f0bdc89cba3dd2265b47069187c750eeae18ef48f76f86067ee26ea1af9c3114",
    "FB": "a7096bd646759486bda6796b5600cd33a4590f0842bf274ea7acba001b3ba591",
    "GOOG": "3a39cc23d1ff6a0f234b55298d0c46c21d2e94ddb81a0dad9e1e46e3aaa9ec90",
    "IBM": "4309bd56d28ddcbdc168e207da9717395fa2e9f74dba41fa768e0f7da8a116fa",
    "KO": "f3aa8157043c6569911031535bd1f7a73b428b5a2d95238d79b9d5b88ceebbd2",
    "PFE": "18d2804d6a5dae63fe711baaba9242dce38a32bfade3dcdee1d8a7c1a866e41b",
    "UPS": "be50f06bbb9d020f37653c8c5cf19af63f77aa0019d8cf10849d91f4af455af4",
}
LABELS = ("labels/combined_windows.json", "1e1fbc4601321aad8d0f8b3784c8134299379f68f6c1f7777565f8ffd57ab6b1")


def series_path(name):
    return f"data/realTweets/Twitter_volume_{name}.csv"


def read_tree(root, rel):
    with open(os.path.join(root, rel), "rb") as f:
        return f.read()


def read_git(gitdir, rel):
    out = subprocess.run(
        ["git", "--git-dir", gitdir, "show", f"{COMMIT}:{rel}"],
        check=True,
        capture_output=True,
    )
    return out.stdout


def verified(data, want, rel):
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        sys.exit(f"error: {rel}: sha256 {got}, expected {want} (NAB commit {COMMIT})")
    return data


def epoch_ms(stamp):
    # NAB stamps are UTC, "2015-02-26 21:42:53" or with ".000000".
    t = dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp() * 1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--nab", help="a NAB work tree")
    src.add_argument("--nab-git", help="a NAB git directory (reads commit %s)" % COMMIT)
    ap.add_argument("--out", default=os.path.expanduser("~/.cache/earshot/bursty-data"))
    a = ap.parse_args()
    read = (lambda rel: read_tree(a.nab, rel)) if a.nab else (lambda rel: read_git(a.nab_git, rel))
    os.makedirs(a.out, exist_ok=True)
    labels = json.loads(verified(read(LABELS[0]), LABELS[1], LABELS[0]))
    rows = []
    for name, sha in SERIES.items():
        rel = series_path(name)
        text = verified(read(rel), sha, rel).decode()
        lines = text.strip().splitlines()
        if lines[0] != "timestamp,value":
            sys.exit(f"error: {rel}: unexpected header {lines[0]!r}")
        tmp = os.path.join(a.out, f".{name}.csv.tmp")
        with open(tmp, "w") as f:
            for line in lines[1:]:
                stamp, value = line.split(",")
                f.write(f"{epoch_ms(stamp)},{int(value)}\n")
        os.replace(tmp, os.path.join(a.out, f"{name}.csv"))
        for start, end in labels[f"realTweets/Twitter_volume_{name}.csv"]:
            rows.append(f"{name},{epoch_ms(start)},{epoch_ms(end)}\n")
        print(f"{name}: {len(lines) - 1} counts")
    tmp = os.path.join(a.out, ".labels.csv.tmp")
    with open(tmp, "w") as f:
        f.writelines(rows)
    os.replace(tmp, os.path.join(a.out, "labels.csv"))
    print(f"labels: {len(rows)} windows -> {a.out}")


if __name__ == "__main__":
    main()
