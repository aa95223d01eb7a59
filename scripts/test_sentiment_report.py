#!/usr/bin/env python3
"""Unit check of scripts/sentiment_report.py on a hand-made toy input whose
numbers were worked out by hand (see the comments). Standard library only:

    python3 scripts/test_sentiment_report.py      (or pytest on this file)
"""
import contextlib
import doctest
import io
import json
import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sentiment_report as sr  # noqa: E402

#         lang  gold   domain    (p_neg, p_neu, p_pos)  argmax  binary call
TOY = [
    ("en", "pos", "review", (0.1, 0.2, 0.7)),  # pos     pos  right
    ("en", "neg", "review", (0.6, 0.3, 0.1)),  # neg     neg  right
    ("en", "neu", "post", (0.2, 0.3, 0.5)),    # pos     (not polar)
    ("en", "pos", "post", (0.5, 0.1, 0.4)),    # neg     neg  wrong
    ("de", "pos", "review", (0.3, 0.4, 0.3)),  # neu     tie  wrong
    ("de", "neg", "other", (0.8, 0.1, 0.1)),   # neg     neg  right
]
# peer "p" covers the English items only: (label3, score)
PEER = {0: ("pos", 0.5), 1: ("neg", -0.3), 2: ("neu", 0.0), 3: ("neu", 0.0)}


def row(md, group, system):
    """The cells after 'system' of the table row for (group, system)."""
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 9 and cells[0] == group and cells[1] == system:
            return cells[2:]
    raise AssertionError(f"no row {group!r} / {system!r}")


class ToyReport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sentiment-report-test-")
        ev = os.path.join(cls.dir, "eval.jsonl")
        pr = os.path.join(cls.dir, "pred.jsonl")
        pe = os.path.join(cls.dir, "peers.jsonl")
        with open(ev, "w") as e, open(pr, "w") as p:
            for k, (lang, gold, dom, probs) in enumerate(TOY):
                text = f"text {k}"
                e.write(json.dumps({"text": text, "label": gold, "lang": lang, "source": "toy",
                                    "subset": "toy", "domain": dom}) + "\n")
                p.write(json.dumps({"text": text, "p_neg": probs[0], "p_neu": probs[1],
                                    "p_pos": probs[2]}) + "\n")
        with open(pe, "w") as f:
            for i, (lab, score) in PEER.items():
                f.write(json.dumps({"i": i, "peer": "p", "label3": lab, "score": score}) + "\n")
        cls.md_path = os.path.join(cls.dir, "report.md")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            sr.main(["--eval", ev, "--pred", f"m={pr}", "--peers", pe, "--markdown", cls.md_path])
        cls.md = buf.getvalue()
        cls.paths = (ev, pr, pe)

    def test_markdown_file_matches_stdout(self):
        with open(self.md_path) as fh:
            self.assertEqual(fh.read().strip(), self.md.strip())

    def test_overall_model(self):
        # polar items 0,1,3,4,5: right 0,1,5 -> 3/5, one tie (item 4).
        # 3-class: F1 neg 2*2/(4+1+0)=0.8, neu 0, pos 2/(2+1+2)=0.4 -> 0.4
        self.assertEqual(row(self.md, "all", "`m`"),
                         ["all", "6", "5", "0.600", "1", "0.400", "neg,neu,pos"])

    def test_language_without_neutral_is_marked(self):
        # de: polar 4 (tie, wrong), 5 (right) -> 0.5; F1 neg 1, pos 0 -> 0.5 over neg,pos
        self.assertEqual(row(self.md, "lang=de", "`m`"),
                         ["all", "2", "2", "0.500", "1", "0.500*", "neg,pos"])
        self.assertIn("No neutral gold items in lang=de", self.md)

    def test_peer_and_model_on_the_same_subset(self):
        # peer on en: polar 0,1 right, 3 tie -> 2/3; F1 neg 1, neu 2/3, pos 2/3 -> 0.778
        self.assertEqual(row(self.md, "lang=en", "peer `p`"),
                         ["p's", "4", "3", "0.667", "1", "0.778", "neg,neu,pos"])
        # model on those items: 2/3; F1 neg 2/3, neu 0, pos 1/2 -> 0.389
        self.assertEqual(row(self.md, "lang=en", "`m` @ p"),
                         ["p's", "4", "3", "0.667", "0", "0.389", "neg,neu,pos"])
        # the peer covers nothing in German: no peer rows there
        self.assertNotIn("| lang=de | peer `p`", self.md)

    def test_domain(self):
        # review = items 0,1,4: model 2/3 (4 a tie); F1 neg 1, pos 2/3 -> 0.833 over neg,pos
        self.assertEqual(row(self.md, "domain=review", "`m`"),
                         ["all", "3", "3", "0.667", "1", "0.833*", "neg,pos"])
        self.assertEqual(row(self.md, "domain=review", "peer `p`"),
                         ["p's", "2", "2", "1.000", "0", "1.000*", "neg,pos"])

    def test_calibration(self):
        # ECE-3: conf/hit 0.7/1 0.6/1 0.5/0 0.5/0 0.4/0 0.8/1, one bin each but 0.5 twice:
        # (0.3 + 0.4 + 2*0.5 + 0.4 + 0.2) / 6 = 0.3833
        # ECE-2: q = .875(pos) .1429(neg) .4444(pos) .5(pos) .1111(neg):
        # (.125 + 2*.12698 + .5556 + .5) / 5 = 0.2869
        line = next(x for x in self.md.splitlines() if x.startswith("| all | `m` | 6 |"))
        self.assertEqual(line, "| all | `m` | 6 | 0.383 | 5 | 0.287 |")
        self.assertIn("#### Reliability: `m`, lang=en", self.md)

    def test_goals(self):
        # reviews: polar 0,1,4 -> 2 of 3 right; Wilson(2, 3) = 0.208-0.939: straddles 0.92
        lo, hi = sr.wilson(2, 3)
        line = next(x for x in self.md.splitlines() if x.startswith("| `m` | domain=review |"))
        self.assertEqual(line, f"| `m` | domain=review | binary accuracy | 3 | ≥ 0.92 | 0.667 | "
                               f"{lo:.3f}–{hi:.3f} | within noise |")
        self.assertEqual((round(lo, 3), round(hi, 3)), (0.208, 0.939))
        # macro-F1 goal only where there are neutral gold items: en, not de
        self.assertIn("| `m` | lang=en | 3-class macro-F1 | 4 | ≥ 0.70 |", self.md)
        self.assertNotIn("| `m` | lang=de | 3-class macro-F1", self.md)
        # the goals come before the first comparison table
        self.assertLess(self.md.index("### Goals"), self.md.index("### Overall"))

    def test_intervals(self):
        # a large sample far from the line is decided; the interval holds the value
        lo, hi = sr.wilson(900, 1000)
        self.assertTrue(lo < 0.9 < hi and hi - lo < 0.04)
        self.assertEqual(sr.verdict(0.9, (lo, hi), 0.85), "met")
        self.assertEqual(sr.verdict(0.9, (lo, hi), 0.95), "not met")
        gold = ["neg", "neu", "pos"] * 30
        pred = ["neg", "neu", "pos"] * 25 + ["pos", "neg", "neu"] * 5
        f1 = sr.macro_f1(gold, pred)[0]
        a, b = sr.bootstrap_macro_f1(gold, pred)
        self.assertTrue(a < f1 < b, (a, f1, b))
        self.assertEqual(sr.bootstrap_macro_f1(gold, pred), (a, b))  # fixed seed

    def test_functions(self):
        self.assertAlmostEqual(sr.macro_f1(["pos", "neg", "neu"], ["neu", "neu", "neu"])[0],
                               (0 + 0.5 + 0) / 3)
        self.assertEqual(sr.model_call((0.3, 0.4, 0.3)), None)
        self.assertEqual(sr.model_label3((0.4, 0.2, 0.4)), "neg")  # first maximum
        self.assertEqual(sr.peer_call(0.0), None)

    def test_text_mismatch_is_an_error(self):
        ev, _, _ = self.paths
        bad = os.path.join(self.dir, "bad.jsonl")
        with open(bad, "w") as f:
            for k in range(len(TOY)):
                f.write(json.dumps({"text": "other" if k == 2 else f"text {k}",
                                    "p_neg": 0.3, "p_neu": 0.3, "p_pos": 0.4}) + "\n")
        with self.assertRaises(SystemExit):
            sr.load_pred(bad, sr.read_jsonl(ev))

    def test_doctests(self):
        self.assertEqual(doctest.testmod(sr).failed, 0)


if __name__ == "__main__":
    unittest.main()
