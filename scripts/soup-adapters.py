#!/usr/bin/env python3
"""Average several trained LoRA adapters (and their sentiment heads) into one.

A "uniform soup": the merged update of the result is the mean of the
constituents' merged updates, ``mean_i (alpha_i / rank_i) * B_i @ A_i``, so the
encoder loaded with it computes what averaging the constituents' weights would.
It is written as one adapter of rank ``sum(rank_i)`` (the ``A`` rows and ``B``
columns side by side, each ``B_i`` scaled by ``alpha_i / rank_i / n``, alpha =
rank), which the loader merges into the weights like any other: inference speed
does not change.

The sentiment head is the mean of the constituents' calibrated logits,
``mean_i (W_i x + b_i) / T_i`` (temperature 1); run ``earshot train-exemplars``
on the result afterwards, which refits the blend and its sharpening on the
calibration split. The category head given with ``--category`` is copied with
the new adapter's sha256; ``earshot train-category`` re-embeds its prototypes
with the soup anyway.

    python3 scripts/soup-adapters.py --member A.safetensors:A-head.json \\
        --member B.safetensors:B-head.json --category A-category.json \\
        --out-adapter soup.safetensors --out-head soup-head.json \\
        --category-out soup-category.json

Only the standard library is used (safetensors is read and written by hand:
an 8-byte little-endian header length, a JSON header, raw little-endian f32).
"""

import argparse
import hashlib
import json
import struct
import sys
from array import array


def read_safetensors(path):
    """Return (metadata, {name: (shape, array('f'))}) of an f32 safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n :]
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            sys.exit(f"{path}: tensor `{name}` is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        values = array("f")
        values.frombytes(data[a:b])
        if sys.byteorder != "little":
            values.byteswap()
        tensors[name] = (list(t["shape"]), values)
    return meta, tensors


def write_safetensors(path, meta, tensors):
    """Write {name: (shape, array('f'))} with string metadata, names sorted."""
    header = {"__metadata__": meta}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        raw = values.tobytes() if sys.byteorder == "little" else _swapped(values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def _swapped(values):
    v = array("f", values)
    v.byteswap()
    return v.tobytes()


def layers_of(tensors, path):
    """{layer: (A shape, A, B shape, B)} from `layer.lora_a` / `layer.lora_b` pairs."""
    layers = {}
    for name in tensors:
        if name.endswith(".lora_a"):
            layer = name[: -len(".lora_a")]
            if layer + ".lora_b" not in tensors:
                sys.exit(f"{path}: `{layer}.lora_a` has no `{layer}.lora_b`")
            layers[layer] = tensors[name] + tensors[layer + ".lora_b"]
    return layers


def soup_adapter(members):
    """members: [(meta, tensors, path)]. Returns (rank, {name: (shape, array)})."""
    n = len(members)
    per = [layers_of(t, p) for _, t, p in members]
    names = set(per[0])
    for (_, _, p), layers in zip(members, per):
        if set(layers) != names:
            sys.exit(f"{p}: adapts {sorted(set(layers) ^ names)} differently from {members[0][2]}")
    ranks = [int(m["rank"]) for m, _, _ in members]
    scales = [float(m["alpha"]) / r for (m, _, _), r in zip(members, ranks)]
    total = sum(ranks)
    out = {}
    for layer in sorted(names):
        (sa0, _, sb0, _) = per[0][layer]
        rows, cols = sb0[0], sa0[1]
        a = array("f")
        b = array("f", bytes(4 * rows * total))
        col = 0
        for layers, r, s, (_, _, p) in zip(per, ranks, scales, members):
            sa, av, sb, bv = layers[layer]
            if sa != [r, cols] or sb != [rows, r]:
                sys.exit(f"{p}: layer `{layer}` has shapes {sa} / {sb}, expected [{r}, {cols}] / [{rows}, {r}]")
            a.extend(av)
            k = s / n
            for i in range(rows):
                for j in range(r):
                    b[i * total + col + j] = bv[i * r + j] * k
            col += r
        out[layer + ".lora_a"] = ([total, cols], a)
        out[layer + ".lora_b"] = ([rows, total], b)
    return total, out


def soup_head(heads):
    """Mean of calibrated logits: W = mean(W_i / T_i), b = mean(b_i / T_i), T = 1."""
    n = len(heads)
    first = heads[0]
    for h in heads:
        if h.get("classes") is None:
            sys.exit("a member head has no three-class `classes` (format 2 heads only)")
        if float(h.get("neutral_delta", 0.0)) != 0.0:
            sys.exit("a member head has a neutral_delta; not supported")
        if h["dim"] != first["dim"]:
            sys.exit("member heads differ in `dim`")
    rows = len(first["classes"]["weights"])
    weights = [[0.0] * first["dim"] for _ in range(rows)]
    bias = [0.0] * rows
    for h in heads:
        t = float(h["temperature"])
        for c in range(rows):
            for j, w in enumerate(h["classes"]["weights"][c]):
                weights[c][j] += w / t / n
            bias[c] += h["classes"]["bias"][c] / t / n
    return weights, bias


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--member", action="append", required=True, metavar="ADAPTER:HEAD",
                    help="a trained adapter and the sentiment head train-adapter wrote with it (twice or more)")
    ap.add_argument("--category", required=True, help="a category head to copy (any member's)")
    ap.add_argument("--out-adapter", required=True)
    ap.add_argument("--out-head", required=True)
    ap.add_argument("--category-out", required=True)
    args = ap.parse_args()
    if len(args.member) < 2:
        ap.error("--member: give at least two adapters to average")
    members, heads, provenance = [], [], []
    for spec in args.member:
        adapter, sep, head = spec.rpartition(":")
        if not sep or not adapter or not head:
            ap.error(f"--member `{spec}`: expected ADAPTER:HEAD")
        meta, tensors = read_safetensors(adapter)
        if meta.get("format") != "earshot-lora/1":
            sys.exit(f"{adapter}: metadata `format` is {meta.get('format')!r}, expected 'earshot-lora/1'")
        with open(head) as f:
            h = json.load(f)
        digest = sha256_file(adapter)
        if h.get("adapter_sha256") != digest:
            sys.exit(f"{head}: was trained with adapter {h.get('adapter_sha256')}, not {adapter} ({digest})")
        members.append((meta, tensors, adapter))
        heads.append(h)
        provenance.append({"adapter": adapter, "adapter_sha256": digest, "head": head,
                           "training": json.loads(meta.get("provenance", "{}"))})
    rank, tensors = soup_adapter(members)
    command = " ".join(["scripts/soup-adapters.py"] + sys.argv[1:])
    soup_prov = {"soup": {"command": command, "members": provenance}}
    meta = {"format": "earshot-lora/1", "rank": str(rank), "alpha": str(rank),
            "provenance": json.dumps(soup_prov, separators=(",", ":"))}
    write_safetensors(args.out_adapter, meta, tensors)
    digest = sha256_file(args.out_adapter)
    encoder = f"multilingual-e5-small+lora{digest[:8]}"

    weights, bias = soup_head(heads)
    head = dict(heads[0])
    head.update({"encoder": encoder, "temperature": 1.0, "classes": {"weights": weights, "bias": bias},
                 "adapter_sha256": digest, "provenance": soup_prov})
    head.pop("exemplars", None)
    with open(args.out_head, "w") as f:
        json.dump(head, f)
    with open(args.category) as f:
        cat = json.load(f)
    cat.update({"encoder": encoder, "adapter_sha256": digest})
    with open(args.category_out, "w") as f:
        json.dump(cat, f)
    print(f"soup of {len(members)} adapters: rank {rank}, sha256 {digest} -> {args.out_adapter}")


if __name__ == "__main__":
    main()
