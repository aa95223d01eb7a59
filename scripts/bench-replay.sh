#!/usr/bin/env bash
# Replay benchmark: writes a ≥1M-event scenario stream (28 days, 3 brands,
# six languages, two incident waves, a few unreadable lines) and its
# incidents file under ~/.cache/earshot/bench-replay (not committed), then
# runs `earshot replay` on it with the random encoder under /usr/bin/time -v
# and prints events/s and peak RSS.
#
#   bash scripts/bench-replay.sh [EVENTS]     # default 1000000
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${EARSHOT_CACHE:-$HOME/.cache/earshot}"
DIR="$CACHE/bench-replay"
N="${1:-1000000}"
mkdir -p "$DIR"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
STREAM="$DIR/stream-$N.jsonl"
if [ ! -s "$STREAM" ]; then
  python3 - "$ROOT" "$N" "$STREAM" "$DIR/incidents-$N.jsonl" <<'PY'
import json, math, random, sys
from datetime import datetime, timedelta, timezone
root, n, out, inc_out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = random.Random(7)
rows = lambda f: [json.loads(l) for l in open(f"{root}/{f}", encoding="utf-8") if l.strip()]
dev, cat = rows("tests/fixtures/dev_reviews.jsonl"), rows("tests/fixtures/category_eval.jsonl")
REG = {"us": "en", "de": "de", "fr": "fr", "es": "es", "cn": "zh", "jp": "ja"}
pos = {l: [r["text"] for r in dev if r["label"] == "pos" and r["lang"] == l] for l in REG.values()}
bad = lambda t: any(w in t.lower() for w in ("batter", "akku", "電池", "电池", "bater", "overheat", "hot"))
neg = {l: [r["text"] for r in dev + cat if r.get("label", "neg") == "neg" and r["lang"] == l and not bad(r["text"])] for l in REG.values()}
PRODUCTS = {"Voltra": ["X2 Power Bank", "Pulse Earbuds", "Nova Watch"], "Pinecrest": ["Cedar Cookware Set", "Alder Desk Lamp"], "Kumo": ["Drift Rain Jacket", "Cloudstep Sneakers"]}
WAVE = {"en": "My {p} got dangerously hot while charging, fire hazard!", "de": "Mein {p} wird beim Laden gefährlich heiß, Brandgefahr!",
        "fr": "Mon {p} chauffe dangereusement pendant la charge !", "es": "Mi {p} se calienta muchísimo al cargar, peligro.",
        "zh": "我的{p}充电时烫得吓人，太危险了！", "ja": "{p}が充電中に異常に熱くなりました。怖いです。"}
DAYS = 28
start = datetime(2026, 10, 1, tzinfo=timezone.utc)
rate = n / (DAYS * 24 * 3600)  # per second, before the daily rhythm
incidents = [("Voltra", "X2 Power Bank", 15, 14), ("Kumo", "Drift Rain Jacket", 23, 3)]
inc_rows, events = [], []
t, i = start, 0
end = start + timedelta(days=DAYS)
with open(out, "w", encoding="utf-8") as f:
    while i < n:
        h = t.hour + t.minute / 60
        r = rate * (0.6 + 0.4 * math.sin((h - 9) / 24 * 2 * math.pi)) / 0.6
        t += timedelta(seconds=rng.expovariate(r))
        b = rng.choice(list(PRODUCTS)); p = rng.choice(PRODUCTS[b]); reg = rng.choice(list(REG)); l = REG[reg]
        text, rating = (rng.choice(neg[l]), rng.choice([1, 2])) if rng.random() < 0.2 else (rng.choice(pos[l]), rng.choice([4, 5]))
        for (ib, ip, day, hour) in incidents:
            s = start + timedelta(days=day, hours=hour)
            if s <= t < s + timedelta(hours=2) and b == ib and rng.random() < 0.5:
                p, text, rating = ip, WAVE[l].format(p=ip), 1
        i += 1
        f.write(json.dumps({"id": f"b{i:08d}", "brand": b, "product": p, "region": reg, "text": text, "rating": rating,
                            "author": f"u{rng.randrange(10**7)}", "event_time": t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}, ensure_ascii=False) + "\n")
        if i % 250000 == 0:
            f.write("this line is not json\n")
with open(inc_out, "w") as f:
    for (ib, ip, day, hour) in incidents:
        s = start + timedelta(days=day, hours=hour)
        f.write(json.dumps({"start": s.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": (s + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"), "key": f"brand={ib}/product={ip}"}) + "\n")
print(f"wrote {i} events to {out}", file=sys.stderr)
PY
fi
cat > "$DIR/random.toml" <<TOML
[model]
encoder = "random"
dir = "$ROOT/models"
TOML
cargo build --release --quiet
rm -rf "$DIR/out"
/usr/bin/time -v "$CARGO_TARGET_DIR/release/earshot" replay --config "$DIR/random.toml" "$STREAM" \
  --incidents "$DIR/incidents-$N.jsonl" --out "$DIR/out" 2> "$DIR/time.txt" || { tail -30 "$DIR/time.txt"; exit 1; }
grep -E "^replayed|^incidents|Maximum resident|Elapsed \(wall" "$DIR/time.txt"
echo "report: $DIR/out/report.html"
