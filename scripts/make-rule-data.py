#!/usr/bin/env python3
"""Rule-generated labelled review/post texts (synthetic; training only).

Writes JSONL rows {"text","label","lang","source":"rules","subset","domain"}
where subset is "<family>-<lang>" and family is one of polar, negation,
mixed, neutral. Standard library only; deterministic for a given --seed.
All templates and lexicons below were written by the project's engineers
in each language (not machine translated). See models/rules-data.md.

Labelling rules:
  polar    : aspect + evaluative phrase of one polarity (+ optional generic
             verdict / star rating / emoji of the same polarity) -> that polarity.
  negation : negated positive ("not good", "doesn't work") -> neg; negated
             negative idioms ("no complaints", "couldn't be happier") -> pos.
             Only constructions idiomatic in that language are listed.
  mixed    : clause of polarity A + contrastive conjunction + a *verdict*
             clause of polarity B that settles the matter ("but I'm returning
             it", "but for this price it's great") -> B. Only verdict clauses
             (return / recommend / buy again / worth it) are used after the
             conjunction, never a bare aspect judgement.
  neutral  : factual statements and questions (order status, tracking,
             specs, who it was bought for, "will update later"); no
             evaluative word in any slot.

Usage: python3 scripts/make-rule-data.py [--seed 7] [--per-label 1500] [--out PATH]
"""
import argparse
import json
import os
import random
import sys

from rules_lexicon import LANGS  # noqa: E402  (same directory)

FAMILIES = ("polar", "negation", "mixed")


def pick(rng, xs):
    return xs[rng.randrange(len(xs))]


def cap(L, s):
    if L.get("cap", True) and s:
        i = 1 if s[0] in "¿¡" else 0
        return s[:i] + s[i].upper() + s[i + 1:]
    return s


def adj_form(adj, agr):
    return adj if isinstance(adj, str) else adj[agr]


def aspect_clause(rng, L, pol, allow_spec=True, mild=False):
    """One aspect judgement of polarity pol ('pos'/'neg'); mild: gradable adjectives only."""
    # aspect-specific clauses first (more natural), else aspect + adjective
    spec = L.get("spec_" + pol, []) if allow_spec else []
    if spec and rng.random() < 0.35:
        return pick(rng, spec)
    a_text, agr = pick(rng, L["asp"])
    adjs = L["adj_" + pol]
    if mild:
        adjs = [x for x in adjs if x[1]] or adjs
    adj, gradable = pick(rng, adjs)
    inten = pick(rng, L["int"] if gradable else L["int_ng"])
    return L["polar_tpl"](a_text, agr, inten, adj_form(adj, agr))


def neg_aspect_clause(rng, L):
    """Negated positive judgement of an aspect -> neg."""
    a_text, agr = pick(rng, L["asp"])
    adj, _ = pick(rng, L["adj_pos_negatable"])
    return L["negpol_tpl"](a_text, agr, adj_form(adj, agr), rng)


def join(L, parts):
    sep = L["sep"]
    out = []
    for p in parts:
        p = p.strip()
        if not p:
            continue
        p = cap(L, p)
        if p[-1] not in L["end_punct"]:
            p += L["stop"]
        out.append(p)
    return sep.join(out)


def decorate(rng, L, text, label, domain):
    if domain == "review":
        if rng.random() < 0.12:
            text = pick(rng, L["review_pre"]) + L["sep"] + text
        if rng.random() < 0.05:
            text += " " + pick(rng, EMO[label])
    else:
        if rng.random() < 0.45:
            text += " " + pick(rng, EMO[label])
        if rng.random() < 0.35:
            tags = L["hashtags"] + ["#" + w for w in HASHTAGS_COMMON]
            text += " " + " ".join(rng.sample(tags, rng.randint(1, 2)))
        if rng.random() < 0.15:
            text = pick(rng, ["@" + b for b in BRANDS]) + " " + text
    return text


EMO = {
    "pos": ["😍", "👍", "🥰", "😊", "🔥", "👌", "⭐⭐⭐⭐⭐", "💯", "🙌", "😁"],
    "neg": ["😡", "👎", "😤", "🤬", "😞", "🙄", "⭐", "😒", "💔", "😠"],
    "neu": ["📦", "🚚", "🤔", "📱", "🛒", "⏳", "❓", "📅"],
}
BRANDS = ["ShopNow", "MegaStore", "QuickCart", "BuyHub", "OrbitMall"]
HASHTAGS_COMMON = ["onlineshopping", "ecommerce", "unboxing"]


def polar(rng, L, label):
    parts = [aspect_clause(rng, L, label)]
    r = rng.random()
    if r < 0.45:
        second = aspect_clause(rng, L, label)
        if second.split()[:2] != parts[0].split()[:2] and second[:3] != parts[0][:3]:
            parts.append(second)
    if rng.random() < 0.5:
        parts.append(pick(rng, L["gen_" + label]))
    if rng.random() < 0.2:
        parts.append(pick(rng, L["stars_" + label]))
    if rng.random() < 0.15:
        parts = [pick(rng, L["gen_" + label])] + parts[:1]
    return join(L, parts)


def negation(rng, L, label):
    if label == "neg":
        parts = [neg_aspect_clause(rng, L) if rng.random() < 0.5 else pick(rng, L["negx_neg"])]
        if rng.random() < 0.4:
            extra = pick(rng, L["negx_neg"])
            if extra not in parts:
                parts.append(extra)
    else:
        parts = [pick(rng, L["negx_pos"])]
        if rng.random() < 0.45:
            parts.insert(0, aspect_clause(rng, L, "pos"))
    if rng.random() < 0.3:
        rng.shuffle(parts)
    return join(L, parts)


def mixed(rng, L, label):
    other = "neg" if label == "pos" else "pos"
    # first clause: a plain aspect judgement only (no "broke after 3 days"
    # style failures, which a price verdict would not outweigh)
    # and, before a positive verdict, only a gradable (milder) complaint
    first = aspect_clause(rng, L, other, allow_spec=False, mild=(label == "pos"))
    verdict = pick(rng, L["verdict_" + label])
    return join(L, [L["but"](first, verdict, rng)])


def neutral(rng, L):
    n = 1 if rng.random() < 0.6 else 2
    parts = []
    tpls = rng.sample(L["neu"], n)  # two different templates ...
    while n == 2 and any("{%s}" % k in tpls[0] and "{%s}" % k in tpls[1] for k in "GKD"):
        tpls = rng.sample(L["neu"], n)  # ... that do not both name a version, order or day
    for tpl in tpls:
        parts.append(fill(rng, L, tpl))
    return join(L, parts)


def fill(rng, L, tpl):
    slots = L["slots"]
    out = tpl
    if out.count("{D}") == 2:  # two days: keep them in calendar order
        d1, d2 = sorted(rng.sample(range(len(slots["D"])), 2))
        out = out.replace("{D}", slots["D"][d1], 1).replace("{D}", slots["D"][d2], 1)
    for k, vals in slots.items():
        key = "{" + k + "}"
        while key in out:
            out = out.replace(key, str(pick(rng, vals)), 1)
    return out


def nwords(L, text):
    if L.get("cjk"):
        return len(text) // 2
    return len(text.split())


def generate(seed, per_label):
    rows = []
    for lang in sorted(LANGS):
        L = LANGS[lang]
        rng = random.Random(f"{seed}-{lang}")
        seen = set()
        for label in ("neg", "neu", "pos"):
            if label == "neu":
                plan = [("neutral", per_label)]
            else:
                plan = [("polar", int(per_label * 0.55)), ("negation", int(per_label * 0.25)),
                        ("mixed", per_label - int(per_label * 0.55) - int(per_label * 0.25))]
            for fam, want in plan:
                got = 0
                tries = 0
                while got < want and tries < want * 30:
                    tries += 1
                    domain = "post" if rng.random() < 0.35 else "review"
                    if fam == "neutral":
                        t = neutral(rng, L)
                    else:
                        t = {"polar": polar, "negation": negation, "mixed": mixed}[fam](rng, L, label)
                    # dedupe on the undecorated text, so that rows never differ
                    # only by an emoji, hashtag, @handle or product prefix
                    if t in seen:
                        continue
                    core = t
                    t = decorate(rng, L, t, label, domain)
                    if not (3 <= nwords(L, t) <= 40):
                        continue
                    seen.add(core)
                    got += 1
                    rows.append({"text": t, "label": label, "lang": lang, "source": "rules",
                                 "subset": f"{fam}-{lang}", "domain": domain})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--per-label", type=int, default=1500)
    ap.add_argument("--out", default=os.path.expanduser("~/.cache/earshot/train/rules.jsonl"))
    ap.add_argument("--sample", type=int, default=0, help="print N random samples per lang/label, write nothing")
    ap.add_argument("--counts", action="store_true", help="print a lang x label x domain count table")
    a = ap.parse_args()
    rows = generate(a.seed, a.per_label)
    if a.sample:
        rng = random.Random(0)
        for lang in sorted(LANGS):
            for lab in ("neg", "neu", "pos"):
                sel = [r for r in rows if r["lang"] == lang and r["label"] == lab]
                for r in rng.sample(sel, min(a.sample, len(sel))):
                    print(lang, lab, r["subset"].split("-")[0], "|", r["text"])
        return
    rows.sort(key=lambda r: (r["lang"], r["label"], r["subset"], r["text"]))
    if a.counts:
        from collections import Counter
        c = Counter((r["lang"], r["label"], r["domain"]) for r in rows)
        print("| lang | neg (review/post) | neu (review/post) | pos (review/post) | total |")
        print("|---|---|---|---|---|")
        for lang in sorted(LANGS):
            cells = []
            tot = 0
            for lab in ("neg", "neu", "pos"):
                rv, po = c[(lang, lab, "review")], c[(lang, lab, "post")]
                tot += rv + po
                cells.append(f"{rv + po} ({rv}/{po})")
            print(f"| {lang} | " + " | ".join(cells) + f" | {tot} |")
        print(f"total {len(rows)}")
        return
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
