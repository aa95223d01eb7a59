#!/usr/bin/env python3
"""Unit check of scripts/soup-adapters.py on two tiny hand-made adapters.
Standard library only:

    python3 scripts/test_soup_adapters.py      (or pytest on this file)
"""
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import unittest
from array import array

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the work tree
HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("soup", os.path.join(HERE, "soup-adapters.py"))
soup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(soup)


def matmul(b, a, rows, rank, cols):
    """B [rows, rank] @ A [rank, cols], row-major lists."""
    return [sum(b[i * rank + k] * a[k * cols + j] for k in range(rank)) for i in range(rows) for j in range(cols)]


def delta(path, layer):
    """(alpha / rank) * B @ A of one layer, read back from the file."""
    meta, t = soup.read_safetensors(path)
    (sa, a), (sb, b) = t[layer + ".lora_a"], t[layer + ".lora_b"]
    scale = float(meta["alpha"]) / int(meta["rank"])
    return [scale * v for v in matmul(b, a, sb[0], sa[0], sa[1])]


def write_member(d, name, rank, alpha, a, b, head_w, head_b, temperature):
    """A 3x2 layer `l0.q` (rows 3, cols 2) and a 3-class head of dim 2."""
    path = os.path.join(d, name + ".safetensors")
    meta = {"format": "earshot-lora/1", "rank": str(rank), "alpha": str(alpha), "provenance": "{}"}
    soup.write_safetensors(path, meta, {"l0.q.lora_a": ([rank, 2], array("f", a)),
                                        "l0.q.lora_b": ([3, rank], array("f", b))})
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    head = {"format": "earshot-sentiment-head/2", "encoder": "x", "dim": 2, "weights": [], "bias": 0.0,
            "temperature": temperature, "neutral_delta": 0.0,
            "classes": {"weights": head_w, "bias": head_b}, "adapter_sha256": digest, "provenance": {}}
    head_path = os.path.join(d, name + "-head.json")
    with open(head_path, "w") as f:
        json.dump(head, f)
    return path, head_path


class SoupTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        # member 1: rank 1, alpha 2 (scale 2); member 2: rank 2, alpha 2 (scale 1)
        self.m1 = write_member(d, "m1", 1, 2, [1.0, 2.0], [1.0, 0.0, -1.0],
                               [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]], [0.5, 0.0, -0.5], 2.0)
        self.m2 = write_member(d, "m2", 2, 2, [0.0, 1.0, 3.0, 0.0], [1.0, 1.0, 0.0, 2.0, 1.0, 0.0],
                               [[3.0, 0.0], [0.0, 0.0], [0.0, 3.0]], [0.0, 1.0, 0.0], 1.0)
        cat = os.path.join(d, "cat.json")
        with open(cat, "w") as f:
            json.dump({"format": "earshot-category-head/1", "encoder": "x", "adapter_sha256": "old"}, f)
        self.out = {k: os.path.join(d, k) for k in ("soup.safetensors", "head.json", "cat.json")}
        argv = ["soup-adapters.py", "--member", "%s:%s" % self.m1, "--member", "%s:%s" % self.m2,
                "--category", cat, "--out-adapter", self.out["soup.safetensors"],
                "--out-head", self.out["head.json"], "--category-out", self.out["cat.json"]]
        with contextlib.redirect_stdout(io.StringIO()), _argv(argv):
            soup.main()

    def tearDown(self):
        self.tmp.cleanup()

    def test_update_is_the_mean_of_the_members_updates(self):
        d1, d2 = delta(self.m1[0], "l0.q"), delta(self.m2[0], "l0.q")
        # worked by hand: d1 = 2 * [1,0,-1]^T [1,2] = [[2,4],[0,0],[-2,-4]];
        # d2 = [[1,1],[0,2],[1,0]] @ [[0,1],[3,0]] = [[3,1],[6,0],[0,1]]
        self.assertEqual(d1, [2.0, 4.0, 0.0, 0.0, -2.0, -4.0])
        self.assertEqual(d2, [3.0, 1.0, 6.0, 0.0, 0.0, 1.0])
        got = delta(self.out["soup.safetensors"], "l0.q")
        for g, want in zip(got, [2.5, 2.5, 3.0, 0.0, -1.0, -1.5]):
            self.assertAlmostEqual(g, want, places=6)
        meta, _ = soup.read_safetensors(self.out["soup.safetensors"])
        self.assertEqual((meta["rank"], meta["alpha"], meta["format"]), ("3", "3", "earshot-lora/1"))

    def test_head_averages_calibrated_logits_and_names_the_new_adapter(self):
        with open(self.out["head.json"]) as f:
            head = json.load(f)
        # (W1 / 2 + W2 / 1) / 2 and (b1 / 2 + b2 / 1) / 2
        self.assertEqual(head["classes"]["weights"], [[1.75, 0.0], [0.0, 0.0], [0.0, 1.75]])
        self.assertEqual(head["classes"]["bias"], [0.125, 0.5, -0.125])
        self.assertEqual(head["temperature"], 1.0)
        with open(self.out["soup.safetensors"], "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        self.assertEqual(head["adapter_sha256"], digest)
        self.assertEqual(head["encoder"], "multilingual-e5-small+lora" + digest[:8])
        with open(self.out["cat.json"]) as f:
            self.assertEqual(json.load(f)["adapter_sha256"], digest)
        members = head["provenance"]["soup"]["members"]
        self.assertEqual([m["adapter"] for m in members], [self.m1[0], self.m2[0]])

    def test_a_head_of_another_adapter_is_refused(self):
        argv = ["soup-adapters.py", "--member", "%s:%s" % (self.m1[0], self.m2[1]), "--member", "%s:%s" % self.m2,
                "--category", self.out["cat.json"], "--out-adapter", os.path.join(self.tmp.name, "x"),
                "--out-head", os.path.join(self.tmp.name, "y"), "--category-out", os.path.join(self.tmp.name, "z")]
        with _argv(argv), self.assertRaises(SystemExit) as e:
            soup.main()
        self.assertIn("was trained with adapter", str(e.exception.code))


@contextlib.contextmanager
def _argv(argv):
    old = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = old


if __name__ == "__main__":
    unittest.main(verbosity=1)
