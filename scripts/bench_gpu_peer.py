#!/usr/bin/env python3
"""PyTorch peer for earshot's encoder benchmark (`encoder_bench`).

A BERT encoder with multilingual-e5-small's shape (XLM-R vocabulary 250037,
hidden 384, 12 layers, 12 heads, FFN 1536, 514 positions, GELU (erf),
LayerNorm eps 1e-12, mean pooling, L2 normalisation), written with plain
torch.nn and F.scaled_dot_product_attention, with RANDOM weights: nothing is
downloaded, the numbers are about speed only.

The same texts as earshot's run are tokenized with the `tokenizers` package
and models/tokenizer.json (the tokenizer earshot uses); if that package or
file is missing, the token counts come from --lengths FILE (one integer per
line, e.g. written by earshot's bench) and the ids are random.

Configurations (each prints one JSON line, "impl": "torch-<dtype>-<config>"):
  queue   earshot's policy: texts in arrival order through a bounded queue of
          --queue texts; each queue-full is sorted by length and cut into
          batches of at most --max-tokens padded tokens and --max-batch texts;
          all its batches run, then the queue refills.
  naive   arrival order, batches of --max-batch consecutive texts, padded to
          the longest in the batch (no sorting, no token budget).
  sorted  the whole set sorted by length, then cut like `queue` (a bound on
          what sorting can give; not possible for a stream).
  compile (with --compile) `queue` through torch.compile(dynamic=True).
  fp32    (with --also-fp32) `queue` in float32, earshot's CUDA precision.

Timing: tokenization is done once up front and not timed (its time is
reported as tokenize_s). Each batch's time covers building the padded id and
mask tensors on the host, the copy to the device, the forward pass and the
copy of the pooled embeddings back, with torch.cuda.synchronize() before the
clock is read. Batch-1 latency runs the first --single texts one at a time
(no padding). Warm-up batches run, untimed, before each configuration.
padding_ratio = padded tokens / real tokens (1.0 = no padding).

Example (GPU):  python3 scripts/bench_gpu_peer.py --texts texts.txt --json
Example (CPU):  python3 scripts/bench_gpu_peer.py --device cpu --texts t.txt --limit 64 --single 8 --json
"""

import argparse
import json
import os
import platform
import random
import sys
import time

VOCAB = 250037
HIDDEN = 384
LAYERS = 12
HEADS = 12
INTERMEDIATE = 1536
MAX_POSITIONS = 514
LN_EPS = 1e-12
PAD_ID = 1  # XLM-R: <s>=0, <pad>=1, </s>=2
BOS_ID = 0
EOS_ID = 2


def die(msg, code=2):
    print(f"bench_gpu_peer: error: {msg}", file=sys.stderr)
    sys.exit(code)


def note(msg):
    print(f"bench_gpu_peer: {msg}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    p.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default=None,
                   help="default fp16 on CUDA, fp32 on the CPU")
    p.add_argument("--texts", help="texts, one per line (empty lines are skipped)")
    p.add_argument("--lengths", help="token counts, one integer per line, e.g. encoder_bench "
                   "--lengths-out: used when tokenizers or the tokenizer file is missing, when "
                   "they disagree with tokenizers, or with --use-lengths")
    p.add_argument("--use-lengths", action="store_true", help="use --lengths even if tokenizers works")
    p.add_argument("--tokenizer", default="models/tokenizer.json")
    p.add_argument("--prefix", default="query: ",
                   help='prepended to every text before tokenizing (default "query: ", the E5 prefix earshot adds)')
    p.add_argument("--max-len", type=int, default=512, help="model window in tokens, specials included (default 512)")
    p.add_argument("--queue", type=int, default=512, help="bounded queue size in texts (default 512)")
    p.add_argument("--max-tokens", type=int, default=4096, help="padded tokens per batch (default 4096)")
    p.add_argument("--max-batch", type=int, default=64, help="texts per batch (default 64)")
    p.add_argument("--single", type=int, default=200, help="texts run one at a time for batch-1 latency (default 200)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N texts (0 = all)")
    p.add_argument("--configs", default="queue,naive,sorted", help="comma list of queue,naive,sorted")
    p.add_argument("--compile", action="store_true", help="also try torch.compile (config 'compile')")
    p.add_argument("--also-fp32", action="store_true", help="also run the queue policy in fp32")
    p.add_argument("--warmup", type=int, default=10, help="warm-up batches per configuration (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON lines only (else also a summary on stderr)")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- inputs

def read_texts(path, limit):
    texts = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.strip():
                texts.append(line)
                if limit and len(texts) >= limit:
                    break
    return texts


def read_lengths(path, limit, max_len):
    lens = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            n = int(line)
            if n < 1:
                die(f"{path}: token count {n} < 1")
            lens.append(min(n, max_len))
            if limit and len(lens) >= limit:
                break
    return lens


def token_ids(args):
    """Returns (list of id lists, source description, tokenize seconds)."""
    texts = read_texts(args.texts, args.limit) if args.texts else None
    if texts is not None and not texts:
        die(f"{args.texts} holds no texts")
    why_not = None
    if not args.use_lengths:
        if texts is None:
            why_not = "no --texts given"
        else:
            try:
                from tokenizers import Tokenizer  # noqa: F401
            except ImportError:
                why_not = "the Python package `tokenizers` is not installed"
            if why_not is None and not os.path.exists(args.tokenizer):
                why_not = f"{args.tokenizer} does not exist"
            if why_not is None:
                from tokenizers import Tokenizer
                tok = Tokenizer.from_file(args.tokenizer)
                tok.no_padding()
                tok.enable_truncation(max_length=args.max_len)
                t0 = time.perf_counter()
                enc = tok.encode_batch([args.prefix + t for t in texts], add_special_tokens=True)
                dt = time.perf_counter() - t0
                ids = [e.ids for e in enc]
                source = f"tokenizers:{os.path.basename(args.tokenizer)}"
                if not args.lengths:
                    return ids, source, dt
                # A lengths file from earshot's run is the ground truth for
                # "the same work": if the two tokenizations disagree (another
                # prefix, truncation, a different tokenizer file), use it.
                lens = read_lengths(args.lengths, args.limit, args.max_len)
                differ = sum(1 for a, b in zip(ids, lens) if len(a) != b) + abs(len(ids) - len(lens))
                if differ == 0:
                    return ids, source + " (= " + os.path.basename(args.lengths) + ")", dt
                note(f"tokenizers and {args.lengths} disagree on {differ} of {len(ids)} texts; "
                     "using the lengths file (random ids)")
                why_not = f"tokenizers disagreed with it on {differ} texts"
    if not args.lengths:
        die(f"cannot get token ids: {why_not or '--use-lengths given'}, and no --lengths FILE "
            "(one token count per line, e.g. from earshot's bench) was given")
    if why_not:
        note(f"using token counts from {args.lengths}: {why_not}")
    lens = read_lengths(args.lengths, args.limit, args.max_len)
    if texts is not None and len(texts) != len(lens):
        note(f"warning: {len(texts)} texts but {len(lens)} lengths; using the lengths")
    rng = random.Random(args.seed)
    ids = []
    for n in lens:
        if n == 1:
            ids.append([BOS_ID])
        else:
            ids.append([BOS_ID] + [rng.randrange(5, VOCAB) for _ in range(n - 2)] + [EOS_ID])
    return ids, f"lengths:{os.path.basename(args.lengths)}", 0.0


# --------------------------------------------------------------------------- batching

def cut(order, lens, max_tokens, max_batch):
    """Greedy token-budget batches over `order`: a batch grows while
    (texts + 1) * longest <= max_tokens and texts + 1 <= max_batch."""
    batches, cur, longest = [], [], 0
    for i in order:
        m = max(longest, lens[i])
        if cur and (len(cur) + 1 > max_batch or (len(cur) + 1) * m > max_tokens):
            batches.append(cur)
            cur, m = [], lens[i]
        cur.append(i)
        longest = m
    if cur:
        batches.append(cur)
    return batches


def plan(policy, lens, queue, max_tokens, max_batch):
    n = len(lens)
    if policy == "queue":
        out = []
        for start in range(0, n, queue):
            chunk = sorted(range(start, min(n, start + queue)), key=lambda i: lens[i])
            out.extend(cut(chunk, lens, max_tokens, max_batch))
        return out
    if policy == "naive":
        return [list(range(s, min(n, s + max_batch))) for s in range(0, n, max_batch)]
    if policy == "sorted":
        return cut(sorted(range(n), key=lambda i: lens[i]), lens, max_tokens, max_batch)
    raise ValueError(policy)


def percentile(values, p):
    """The same rule as encoder_bench: sorted[round((n - 1) * p / 100)]."""
    if not values:
        return None
    v = sorted(values)
    return v[int(round((len(v) - 1) * p / 100.0))]


# --------------------------------------------------------------------------- model

def build_model(torch, device, dtype, seed):
    nn = torch.nn
    F = torch.nn.functional

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(HIDDEN, 3 * HIDDEN)   # q, k, v fused into one GEMM
            self.attn_out = nn.Linear(HIDDEN, HIDDEN)
            self.ln1 = nn.LayerNorm(HIDDEN, eps=LN_EPS)
            self.up = nn.Linear(HIDDEN, INTERMEDIATE)
            self.down = nn.Linear(INTERMEDIATE, HIDDEN)
            self.ln2 = nn.LayerNorm(HIDDEN, eps=LN_EPS)

        def forward(self, x, attn_mask):
            b, l, _ = x.shape
            qkv = self.qkv(x).view(b, l, 3, HEADS, HIDDEN // HEADS).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)                               # [b, heads, l, d]
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
            a = a.transpose(1, 2).reshape(b, l, HIDDEN)
            x = self.ln1(x + self.attn_out(a))                    # post-LN, as BERT
            return self.ln2(x + self.down(F.gelu(self.up(x))))    # GELU (erf)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.word = nn.Embedding(VOCAB, HIDDEN, padding_idx=PAD_ID)
            self.pos = nn.Embedding(MAX_POSITIONS, HIDDEN, padding_idx=PAD_ID)
            self.token_type = nn.Embedding(1, HIDDEN)
            self.ln = nn.LayerNorm(HIDDEN, eps=LN_EPS)
            self.layers = nn.ModuleList([Layer() for _ in range(LAYERS)])

        def forward(self, ids, mask):
            # ids, mask: [b, l]; mask 1 for tokens, 0 for padding.
            m = mask.to(torch.int64)
            positions = torch.cumsum(m, dim=1) * m + PAD_ID        # XLM-R position ids
            x = self.word(ids) + self.pos(positions) + self.token_type.weight[0]
            x = self.ln(x)
            attn_mask = mask.to(torch.bool)[:, None, None, :]     # [b, 1, 1, l]: keys to attend
            for layer in self.layers:
                x = layer(x, attn_mask)
            w = mask.to(x.dtype).unsqueeze(-1)
            pooled = (x * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)   # mean pooling
            return F.normalize(pooled.float(), dim=-1)

    torch.manual_seed(seed)
    model = Encoder()
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if name.endswith("bias"):
                prm.zero_()
            elif ".ln" in name or name.startswith("ln"):
                prm.fill_(1.0)
            else:
                prm.normal_(0.0, 0.02)
    return model.to(device=device, dtype=dtype).eval()


# --------------------------------------------------------------------------- timing

class Runner:
    def __init__(self, torch, model, ids, device):
        self.torch = torch
        self.model = model
        self.ids = ids
        self.device = device
        self.cuda = device.type == "cuda"
        self.pin = self.cuda

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def run_batch(self, batch):
        torch = self.torch
        seqs = [self.ids[i] for i in batch]
        longest = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), longest), PAD_ID, dtype=torch.int64)
        mask = torch.zeros((len(seqs), longest), dtype=torch.int64)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s, dtype=torch.int64)
            mask[r, : len(s)] = 1
        if self.pin:
            ids, mask = ids.pin_memory(), mask.pin_memory()
        ids = ids.to(self.device, non_blocking=True)
        mask = mask.to(self.device, non_blocking=True)
        out = self.model(ids, mask)
        emb = out.to("cpu")
        self.sync()
        return emb

    def timed(self, batches):
        lat = []
        self.sync()
        t0 = time.perf_counter()
        for b in batches:
            tb = time.perf_counter()
            self.run_batch(b)
            lat.append(time.perf_counter() - tb)
        return time.perf_counter() - t0, lat

    def warm(self, batches, count):
        if not batches:
            return 0.0
        pick = list(batches[:count])
        # the largest padded shape too, so its kernels and memory are ready
        pick.append(max(batches, key=lambda b: len(b) * max(len(self.ids[i]) for i in b)))
        t0 = time.perf_counter()
        for b in pick:
            self.run_batch(b)
        return time.perf_counter() - t0

    def single(self, n, warm=3):
        idx = list(range(min(n, len(self.ids))))
        for i in idx[:warm]:
            self.run_batch([i])
        lat = []
        for i in idx:
            tb = time.perf_counter()
            self.run_batch([i])
            lat.append(time.perf_counter() - tb)
        return lat


def result_line(args, torch, device, impl, ids, batches, seconds, lat, single_lat, extra):
    lens = [len(s) for s in ids]
    real = sum(lens)
    padded = sum(len(b) * max(lens[i] for i in b) for b in batches)
    line = {
        "impl": impl,
        "device": device.type,
        "texts": len(ids),
        "seconds": round(seconds, 4),
        "reviews_per_s": round(len(ids) / seconds, 1),
        "tokens_per_s": round(real / seconds, 1),
        "batch_p50_ms": round(percentile(lat, 50) * 1e3, 3),
        "batch_p99_ms": round(percentile(lat, 99) * 1e3, 3),
        "single_p50_ms": round(percentile(single_lat, 50) * 1e3, 3) if single_lat else None,
        "single_p99_ms": round(percentile(single_lat, 99) * 1e3, 3) if single_lat else None,
        "padding_ratio": round(padded / real, 4),
        "batches": len(batches),
        "tokens": real,
        "padded_tokens": padded,
        "queue": args.queue,
        "max_tokens": args.max_tokens,
        "max_batch": args.max_batch,
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        line["gpu"] = torch.cuda.get_device_name(device)
    else:
        line["cpu_threads"] = torch.get_num_threads()
    line.update(extra)
    return line


def main(argv=None):
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        die(f"PyTorch is not installed for {sys.executable} (Python {platform.python_version()}); "
            "the torch peer cannot run. Install torch for this Python or point PYTHON= at one that has it.", 3)

    dev_s = args.device
    if dev_s.startswith("cuda"):
        if not torch.cuda.is_available():
            die(f"--device {dev_s} but torch {torch.__version__} sees no CUDA device "
                f"(torch.version.cuda={torch.version.cuda}); use --device cpu to test on the CPU", 4)
    elif dev_s != "cpu":
        die(f"--device {dev_s}: use cuda, cuda:N or cpu")
    device = torch.device(dev_s)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    dtype_name = args.dtype or ("fp16" if device.type == "cuda" else "fp32")
    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in configs:
        if c not in ("queue", "naive", "sorted"):
            die(f"unknown config {c!r} in --configs (queue, naive, sorted; --compile and --also-fp32 add more)")
    if min(args.queue, args.max_tokens, args.max_batch) < 1:
        die("--queue, --max-tokens and --max-batch must be >= 1")
    if args.max_len > MAX_POSITIONS - 2:
        die(f"--max-len {args.max_len} exceeds the model's {MAX_POSITIONS - 2} positions")

    ids, source, tok_s = token_ids(args)
    lens = [len(s) for s in ids]
    common = {"tokens_source": source, "tokenize_s": round(tok_s, 4)}
    note(f"{len(ids)} texts, {sum(lens)} tokens (mean {sum(lens) / len(lens):.1f}, max {max(lens)}) "
         f"from {source}; device {device}, torch {torch.__version__}")

    lines = []

    def emit(line):
        lines.append(line)
        print(json.dumps(line, ensure_ascii=False), flush=True)

    torch.set_grad_enabled(False)
    with torch.inference_mode():
        model = build_model(torch, device, dtypes[dtype_name], args.seed)
        runner = Runner(torch, model, ids, device)
        single_lat = runner.single(args.single) if args.single > 0 else []
        for cfg in configs:
            batches = plan(cfg, lens, args.queue, args.max_tokens, args.max_batch)
            warm_s = runner.warm(batches, args.warmup)
            seconds, lat = runner.timed(batches)
            emit(result_line(args, torch, device, f"torch-{dtype_name}-{cfg}", ids, batches,
                             seconds, lat, single_lat, dict(common, warmup_s=round(warm_s, 3))))

        if args.also_fp32 and dtype_name != "fp32":
            m32 = build_model(torch, device, torch.float32, args.seed)
            r32 = Runner(torch, m32, ids, device)
            s32 = r32.single(args.single) if args.single > 0 else []
            batches = plan("queue", lens, args.queue, args.max_tokens, args.max_batch)
            warm_s = r32.warm(batches, args.warmup)
            seconds, lat = r32.timed(batches)
            emit(result_line(args, torch, device, "torch-fp32-queue", ids, batches, seconds, lat, s32,
                             dict(common, warmup_s=round(warm_s, 3))))
            del m32, r32

    if args.compile:
        # Its own configuration: compiling may fail offline (no compiler,
        # Triton missing) and that must not cost the eager numbers above.
        impl = f"torch-{dtype_name}-compile"
        try:
            with torch.inference_mode():
                cmodel = torch.compile(model, dynamic=True)
                crun = Runner(torch, cmodel, ids, device)
                batches = plan("queue", lens, args.queue, args.max_tokens, args.max_batch)
                t0 = time.perf_counter()
                # every batch once, untimed: compiles (dynamic shapes) and warms
                for b in batches:
                    crun.run_batch(b)
                warm_s = time.perf_counter() - t0
                csingle = crun.single(args.single) if args.single > 0 else []
                seconds, lat = crun.timed(batches)
            emit(result_line(args, torch, device, impl, ids, batches, seconds, lat, csingle,
                             dict(common, warmup_s=round(warm_s, 3), compile="dynamic=True")))
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            note(f"torch.compile failed: {msg}")
            emit({"impl": impl, "device": device.type, "texts": len(ids), "error": msg[:300]})

    if not args.json:
        print("", file=sys.stderr)
        print(f"{'impl':<24} {'reviews/s':>10} {'tokens/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'b1 p50':>8} {'b1 p99':>8} {'pad':>6}", file=sys.stderr)
        for r in lines:
            if "error" in r:
                print(f"{r['impl']:<24} error: {r['error']}", file=sys.stderr)
                continue
            print(f"{r['impl']:<24} {r['reviews_per_s']:>10.1f} {r['tokens_per_s']:>11.1f} "
                  f"{r['batch_p50_ms']:>8.2f} {r['batch_p99_ms']:>8.2f} "
                  f"{(r['single_p50_ms'] or 0):>8.2f} {(r['single_p99_ms'] or 0):>8.2f} "
                  f"{r['padding_ratio']:>6.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
