#!/usr/bin/env python3
"""Writes examples/stream.jsonl: the embedded demo stream for `scripts/run.sh`.

30 hours of ordinary review traffic for three brands (daily rhythm, six
languages, ~20 % negative, texts from the project's fixtures), then a sudden
multilingual wave of "power bank overheating" complaints on one product. The
detector needs a day of history for its baselines, so the history comes
first; the engine reads it in seconds. Deterministic (fixed seed): re-running
gives the same bytes.

    python3 scripts/make-demo-stream.py > examples/stream.jsonl
"""
import json
import math
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
rng = random.Random(20261123)

def rows(name):
    return [json.loads(l) for l in (ROOT / name).read_text(encoding="utf-8").splitlines() if l.strip()]

dev = rows("tests/fixtures/dev_reviews.jsonl")
cat = rows("tests/fixtures/category_eval.jsonl")
pos = [r for r in dev if r["label"] == "pos"]
neg = [r for r in dev if r["label"] == "neg"] + cat
# Keep battery/overheating complaints out of the background.
neg = [r for r in neg if not any(w in r["text"].lower() for w in ("batter", "akku", "電池", "电池", "bater", "overheat"))]

REGION_LANG = {"us": "en", "de": "de", "fr": "fr", "es": "es", "cn": "zh", "jp": "ja"}
PRODUCTS = {
    "Voltra": ["X2 Power Bank", "Pulse Earbuds", "Nova Watch"],
    "Pinecrest": ["Cedar Cookware Set", "Alder Desk Lamp"],
    "Kumo": ["Drift Rain Jacket", "Cloudstep Sneakers"],
}
by_lang_pos = {l: [r for r in pos if r["lang"] == l] for l in REGION_LANG.values()}
by_lang_neg = {l: [r for r in neg if r["lang"] == l] for l in REGION_LANG.values()}

START = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)
HOURS = 30
events = []

def emit(t, brand, product, region, text, rating, author):
    events.append({
        "id": f"demo-{len(events) + 1:05d}",
        "brand": brand, "product": product, "region": region,
        "text": text, "rating": rating, "author": author,
        "event_time": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",
    })

# Background: Poisson arrivals with a daily rhythm (peak mid-afternoon UTC).
t = START
end = START + timedelta(hours=HOURS)
while t < end:
    hour = t.hour + t.minute / 60
    rate_per_hour = 30 * (0.6 + 0.4 * math.sin((hour - 9) / 24 * 2 * math.pi))
    t += timedelta(seconds=rng.expovariate(rate_per_hour / 3600))
    brand = rng.choice(list(PRODUCTS))
    product = rng.choice(PRODUCTS[brand])
    region = rng.choice(list(REGION_LANG))
    lang = REGION_LANG[region]
    if rng.random() < 0.2:
        r = rng.choice(by_lang_neg[lang]); rating = rng.choice([1, 2])
    else:
        r = rng.choice(by_lang_pos[lang]); rating = rng.choice([4, 5])
    emit(t, brand, product, region, r["text"], rating, f"user{rng.randrange(100000)}")

# The incident: overheating complaints about the X2 power bank, many
# languages and wordings, 30 in about 20 minutes.
OPEN = {
    "en": ["My X2 power bank", "The Voltra X2", "This power bank", "Our X2 charger"],
    "de": ["Meine X2 Powerbank", "Die Voltra X2", "Diese Powerbank"],
    "fr": ["Ma batterie externe X2", "La Voltra X2", "Cette batterie externe"],
    "es": ["Mi batería externa X2", "La Voltra X2", "Este power bank"],
    "zh": ["我的X2充电宝", "Voltra X2充电宝", "这个充电宝"],
    "ja": ["X2のモバイルバッテリーが", "Voltra X2が", "このモバイルバッテリーが"],
}
SYMPTOM = {
    "en": ["got dangerously hot while charging", "overheated and the case started to bulge", "became too hot to touch after ten minutes", "smelled like burning plastic and overheated"],
    "de": ["wird beim Laden gefährlich heiß", "ist überhitzt und das Gehäuse hat sich verformt", "wurde nach zehn Minuten glühend heiß"],
    "fr": ["chauffe dangereusement pendant la charge", "a surchauffé et le boîtier a gonflé", "devient brûlante au bout de dix minutes"],
    "es": ["se calienta muchísimo al cargar", "se sobrecalentó y la carcasa se hinchó", "quema al tocarla después de diez minutos"],
    "zh": ["充电时烫得吓人", "过热，外壳都鼓起来了", "用了十分钟就烫手"],
    "ja": ["充電中に異常に熱くなりました", "過熱してケースが膨らみました", "十分で触れないほど熱くなりました"],
}
END_ = {
    "en": [" Unplugged it, this is a fire hazard.", " Please recall this model.", " Scary, I want a refund.", ""],
    "de": [" Brandgefahr!", " Bitte zurückrufen.", ""],
    "fr": [" Risque d'incendie !", " Je demande un remboursement.", ""],
    "es": [" ¡Peligro de incendio!", " Quiero un reembolso.", ""],
    "zh": ["太危险了！", "要求退货。", ""],
    "ja": ["火事になりそうで怖いです。", "返金してください。", ""],
}
t = end + timedelta(minutes=5)
for i in range(30):
    t += timedelta(seconds=rng.uniform(15, 60))
    region = rng.choice(list(REGION_LANG))
    lang = REGION_LANG[region]
    sep = "" if lang in ("zh", "ja") else " "
    text = rng.choice(OPEN[lang]) + sep + rng.choice(SYMPTOM[lang]) + ("。" if lang in ("zh", "ja") else ".") + rng.choice(END_[lang])
    emit(t, "Voltra", "X2 Power Bank", region, text, 1, f"user{rng.randrange(100000)}")
# A little ordinary traffic after it, so the windows close.
for _ in range(40):
    t += timedelta(seconds=rng.uniform(20, 90))
    brand = rng.choice(["Pinecrest", "Kumo"]); product = rng.choice(PRODUCTS[brand])
    region = rng.choice(list(REGION_LANG)); r = rng.choice(by_lang_pos[REGION_LANG[region]])
    emit(t, brand, product, region, r["text"], 5, f"user{rng.randrange(100000)}")

# A few malformed messages: the engine must dead-letter them, not crash.
out = sys.stdout
for e in events:
    out.write(json.dumps(e, ensure_ascii=False) + "\n")
out.write('{"id": "demo-bad-1", "brand": "Kumo", "text": ""}\n')
out.write('{"id": "demo-bad-2", "brand": "Kumo", "rating": 5}\n')
out.write("this is not json\n")
