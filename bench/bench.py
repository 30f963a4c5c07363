#!/usr/bin/python3
"""modelc against PyTorch, side by side in one run (run it through bench/run.sh).

Rows (seeded random weights and inputs; modelc compiles the shipped model at
-O2 --emit exe; PyTorch is Debian's, eager, torch.no_grad()):
 1 gpt2_128, gpt2_512  GPT-2 small (12 layers, 768 wide, vocab 50257, HF
        state_dict layout of models/gpt2.model): full-sequence logits of a
        prompt of 128 / 512 tokens. GFLOP/s = (GEMM + causal attention +
        LM head FLOPs) / time. Target: modelc/torch <= 0.4.
 2 gpt2_decode  GPT-2 small greedy decoding with the KV cache:
        models/gpt2_generate.model entry `generate` (-D max_new=64) against a
        plain torch GPT-2 whose past keys/values are concatenated each step.
        Prompt 16 tokens. Both sides are timed twice, with 64 new tokens and
        with 1 (modelc: the `stop` input set to the first greedy token, so the
        same program stops after one step; torch: the same loop run for 1
        step); ms/token = (t(64) - t(1)) / 63: prefill, process start, weight
        mapping and I/O cancel. Every step is one token through the layers and
        the choice of the next token (modelc: its top-k/top-p machinery at
        temperature 0; torch: argmax). The bandwidth bound is the bytes of
        weights one token reads (all but wpe, of which one row) / the triad
        bandwidth at the same thread count. Target: <= 0.26.
 3 encoder  one torch.nn.TransformerEncoderLayer(512, 8, 2048, dropout=0,
        batch_first=True) in eval mode (post-norm, ReLU, eps 1e-5 - the layout
        models/transformer_encoder.model implements at -D num_layers=1), x of
        [8, 128, 512]. Target: <= 0.6.
 4 bilstm_crf  models/bilstm_crf.model entry `decode` at -D n_vocab=5000
        -D n_embd=100 -D n_hidden=128 -D n_tags=9, tokens [32, 50], lengths
        uniform in [25, 50] (one row full): torch nn.Embedding + nn.LSTM
        (bidirectional, packed sequences) + nn.Linear + batched Viterbi in
        torch ops (max over the previous tag per step, backpointers, a gather
        walk back). Target: <= 0.2.
 5 act_chain  bench/models/activation_chain.model, y = hardsigmoid(gelu_tanh(
        silu(leaky_relu(x)))) over 16M floats (torch: the four F.* calls).
        Rated by the bytes a fused pass must move (read x, write y: 8 per
        element) / time, against the triad bandwidth. Target: >= 80% of triad.
 6 sgemm_N  bench/sgemm.model, c = a @ b, N = 256, 512, 1024, 2048, against
        torch.matmul; GFLOP/s = 2 N^3 / time. Target: modelc >= 0.9 x
        OpenBLAS's GFLOP/s (torch.matmul is OpenBLAS here).
 7 machine: STREAM triad bandwidth (bench/triad.c compiled here with
        -O2 -march=native -pthread, a[i] = b[i] + s*c[i] over three 256 MiB
        float arrays, best of 10, 12 bytes per element) and OpenBLAS sgemm
        GFLOP/s at 1024 (torch.matmul in a child process) under every BLAS
        setting tried (below).
 Also: the size of the runtime a generated program links (every mc_*.c that
 `modelc compile --emit c` writes next to the model, compiled -c with the
 generated programs' flags; the sum of their .text sections; target <= 64 KB)
 and activations_all (models/activations.model, all 14 outputs; only with
 --cases activations_all).

Threads: every row at each of --threads (default 1,2): modelc with the
environment variable MC_THREADS=n (a program that has no threads ignores it),
torch with torch.set_num_threads(n) and OMP_NUM_THREADS=n.

PyTorch's BLAS setting: OpenBLAS reads OPENBLAS_CORETYPE and
OPENBLAS_NUM_THREADS when it loads, so each setting is a child process. The
settings tried: OPENBLAS_CORETYPE as in the environment (set or unset), the
other of set/unset when the environment sets it, and the core type the CPU
flags imply (SkylakeX with avx512f, Haswell with avx2): on a VM whose CPU
model name is generic OpenBLAS can fall back to old (Prescott) kernels. Each
with OPENBLAS_NUM_THREADS=n ("matching") and unset. Unset lets OpenBLAS use
every core, so at n below the core count it is no n-thread measurement and
never wins; at n = the core count it is the same as matching and is not
repeated. The machine row measures sgemm 1024 under each setting; each case
then runs torch under the settings within 10% of the best one (--quick: the
best only) and keeps the fastest; the table says which won.

What is timed:
  modelc  the generated program has no internal timer (runtime/mc_main.c
          prints none), so: the median wall time of whole runs of the program
          (process start, weights mmap'd from safetensors, inputs read from
          .npy, the model, outputs written as .npy to a tmpfs) minus the
          median of runs of the same program on the case's smallest input
          (1 token, 1 element, ...): process start, weight mapping and
          faulting cancel; the output writing of the real input does not
          (GPT-2 at 512 writes 103 MB of logits), and the small run's own
          compute is subtracted too (for GPT-2 one token, one pass over the
          weights). Big and small runs alternate. Decoding: see row 2.
  torch   the median of warm calls of the forward in a running process (one
          warm-up call first); no interpreter start, weight load or I/O.
Runs: --runs N (default 5; 1 with --quick). A run shorter than 0.25 s is
repeated up to 20 times (or 1 s); without an explicit --runs a run longer
than 5 s is repeated 3 times only. When modelc's difference of medians is
not positive (the work is below the noise of process start) the row says
"below timing noise" and has no ratio.
--quick: a smoke check in 1-2 minutes: a tiny GPT-2 (2 layers, 128 wide,
vocab 2048; prompt 64, decoding 8 + 16), the encoder and BiLSTM-CRF at full
size, the activation chain over 4M floats, sgemm 256 and 512, 64 MiB triad
arrays, one run each and only the best BLAS setting.
Peak RSS: GNU time's maximum resident set of the program and of the torch
child (which includes the interpreter, torch and the weights). Arena: the
layout comment of the C that `modelc compile --emit c` writes with the
case's symbolic sizes fixed by -D ("Arena: N bytes").
Check: modelc's outputs against torch's: floats by max|mc - pt| / max|pt|
<= 1e-3; integer outputs (tags, tokens) equal (Viterbi: >= 99% of positions,
for float32 near-ties); the check column says WARN otherwise.

Usage: bench.py [--quick] [--runs N] [--cases a,b] [--threads 1,2]
                [--csv PATH] [--keep]
       bench.py --torch-child KEY ... (internal: one torch measurement)
"""
import argparse
import csv
import json
import math
import os
import platform
import re
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "e2e"))
from mc_e2e import write_safetensors  # noqa: E402

MODELS = os.path.join(SOURCE_DIR, "models")
GNU_TIME = "/usr/bin/time"
CFLAGS = ["-std=c11", "-O2", "-ffp-contract=off", "-fno-fast-math"]  # codegen/c_build.c
FLOAT_TOL = 1e-3
RUNTIME_TEXT_TARGET = 64 * 1024


# ---- configurations -----------------------------------------------------------

GPT2_FULL = dict(n_layer=12, n_head=12, n_embd=768, n_vocab=50257, n_ctx=1024)
GPT2_QUICK = dict(n_layer=2, n_head=4, n_embd=128, n_vocab=2048, n_ctx=256)


def configs(quick):
    if quick:
        # GPT-2 small's weights take long to write and its programs to
        # compile: a tiny GPT-2; the encoder and BiLSTM-CRF rows are cheap at
        # full size (smaller ones vanish in the process start).
        return dict(gpt2=GPT2_QUICK, prompts=(64,), decode_prompt=8, decode_new=16,
                    encoder=dict(d=512, heads=8, ffn=2048, batch=8, t=128),
                    bilstm=dict(vocab=5000, emb=100, hidden=128, tags=9, batch=32, t=50),
                    act_n=1 << 22, sgemm=(256, 512), triad_mib=64, triad_reps=3)
    return dict(gpt2=GPT2_FULL, prompts=(128, 512), decode_prompt=16, decode_new=64,
                encoder=dict(d=512, heads=8, ffn=2048, batch=8, t=128),
                bilstm=dict(vocab=5000, emb=100, hidden=128, tags=9, batch=32, t=50),
                act_n=1 << 24, sgemm=(256, 512, 1024, 2048), triad_mib=256, triad_reps=10)


def gpt2_defines(g):
    return {} if g == GPT2_FULL else dict(g)


def gpt2_name(g):
    return "GPT-2 small" if g == GPT2_FULL else "GPT-2 tiny L%d d%d" % (g["n_layer"], g["n_embd"])


# ---- weights and inputs (numpy, seeded) ------------------------------------------

def make_gpt2_weights(rng, g):
    n_layer, d, vocab, ctx = g["n_layer"], g["n_embd"], g["n_vocab"], g["n_ctx"]
    w = {"wte.weight": 0.02 * rng.standard_normal((vocab, d), dtype=np.float32),
         "wpe.weight": 0.01 * rng.standard_normal((ctx, d), dtype=np.float32),
         "ln_f.weight": np.ones(d, np.float32), "ln_f.bias": np.zeros(d, np.float32)}
    for i in range(n_layer):
        p = "h.%d." % i
        for name, shape in (("attn.c_attn", (d, 3 * d)), ("attn.c_proj", (d, d)),
                            ("mlp.c_fc", (d, 4 * d)), ("mlp.c_proj", (4 * d, d))):
            w[p + name + ".weight"] = 0.02 * rng.standard_normal(shape, dtype=np.float32)
            w[p + name + ".bias"] = 0.01 * rng.standard_normal(shape[1], dtype=np.float32)
        for name in ("ln_1", "ln_2"):
            w[p + name + ".weight"] = 1 + 0.1 * rng.standard_normal(d, dtype=np.float32)
            w[p + name + ".bias"] = 0.1 * rng.standard_normal(d, dtype=np.float32)
    return w


def gpt2_flops(t, g):
    d = g["n_embd"]
    per_layer = 2 * t * (12 * d * d) + 2 * t * t * d  # GEMMs + causal attention
    return g["n_layer"] * per_layer + 2 * t * d * g["n_vocab"]


def gpt2_token_bytes(g):
    """Bytes of weights one decoding step reads: everything but wpe, of which
    one row (wte is read whole by the tied LM head)."""
    d, L = g["n_embd"], g["n_layer"]
    per_layer = (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 4 * d
    return 4 * (L * per_layer + g["n_vocab"] * d + d + 2 * d)


def make_encoder(rng, c):
    d, ffn = c["d"], c["ffn"]
    s = 1.0 / math.sqrt(d)
    p = "layers.0."
    w = {
        p + "self_attn.in_proj_weight": rng.uniform(-s, s, (3 * d, d)),
        p + "self_attn.in_proj_bias": rng.uniform(-s, s, (3 * d,)),
        p + "self_attn.out_proj.weight": rng.uniform(-s, s, (d, d)),
        p + "self_attn.out_proj.bias": rng.uniform(-s, s, (d,)),
        p + "linear1.weight": rng.uniform(-s, s, (ffn, d)),
        p + "linear1.bias": rng.uniform(-s, s, (ffn,)),
        p + "linear2.weight": rng.uniform(-1 / math.sqrt(ffn), 1 / math.sqrt(ffn), (d, ffn)),
        p + "linear2.bias": rng.uniform(-s, s, (d,)),
        p + "norm1.weight": 1 + 0.1 * rng.standard_normal(d),
        p + "norm1.bias": 0.1 * rng.standard_normal(d),
        p + "norm2.weight": 1 + 0.1 * rng.standard_normal(d),
        p + "norm2.bias": 0.1 * rng.standard_normal(d),
    }
    w = {k: v.astype(np.float32) for k, v in w.items()}
    x = rng.standard_normal((c["batch"], c["t"], d)).astype(np.float32)
    return w, {"x": x}


def encoder_flops(c):
    d, ffn, tokens = c["d"], c["ffn"], c["batch"] * c["t"]
    return 2 * tokens * (4 * d * d + 2 * d * ffn) + 4 * c["batch"] * c["t"] ** 2 * d


def make_bilstm(rng, c):
    V, E, H, K, B, T = c["vocab"], c["emb"], c["hidden"], c["tags"], c["batch"], c["t"]
    s = 1.0 / math.sqrt(H)
    w = {"embedding.weight": rng.standard_normal((V, E))}
    for sfx in ("l0", "l0_reverse"):
        w["lstm.weight_ih_" + sfx] = rng.uniform(-s, s, (4 * H, E))
        w["lstm.weight_hh_" + sfx] = rng.uniform(-s, s, (4 * H, H))
        w["lstm.bias_ih_" + sfx] = rng.uniform(-s, s, 4 * H)
        w["lstm.bias_hh_" + sfx] = rng.uniform(-s, s, 4 * H)
    s2 = 1.0 / math.sqrt(2 * H)
    w["hidden2tag.weight"] = 4 * rng.uniform(-s2, s2, (K, 2 * H))  # emissions of a few units
    w["hidden2tag.bias"] = rng.uniform(-s2, s2, K)
    w["crf.start_transitions"] = rng.standard_normal(K)
    w["crf.end_transitions"] = rng.standard_normal(K)
    w["crf.transitions"] = rng.standard_normal((K, K))
    w = {k: v.astype(np.float32) for k, v in w.items()}
    tokens = rng.integers(0, V, (B, T)).astype(np.int32)
    lengths = rng.integers(T // 2, T + 1, B).astype(np.int32)
    lengths[0] = T
    return w, {"tokens": tokens, "lengths": lengths}


# ---- cases ------------------------------------------------------------------------
# A case: key, row, name, model, defines, entry, make(rng) -> (weights or
# "gpt2", inputs), small inputs (the fixed-cost run), flops, target, cfg (for
# the torch child) and kind ("forward" or "decode").

def cases(cfg):
    g = cfg["gpt2"]
    out = []
    for t in cfg["prompts"]:
        out.append(dict(
            key="gpt2_%d" % t, row=1, name="%s prompt %d" % (gpt2_name(g), t),
            model="gpt2.model", defines=gpt2_defines(g), entry=None, arena_defines={"T": t},
            make=lambda rng, t=t: ("gpt2", {"tokens": rng.integers(0, g["n_vocab"], t)
                                            .astype(np.int32)}),
            small={"tokens": np.zeros(1, np.int32)}, flops=gpt2_flops(t, g),
            target=("ratio", 0.4), cfg=dict(g), kind="forward"))
    p, new = cfg["decode_prompt"], cfg["decode_new"]
    out.append(dict(
        key="gpt2_decode", row=2,
        name="%s decode P%d+%d, per token" % (gpt2_name(g), p, new),
        model="gpt2_generate.model", defines=dict(gpt2_defines(g), max_new=new),
        entry="generate", arena_defines={"P": p},
        make=lambda rng: ("gpt2", {"prompt": rng.integers(0, g["n_vocab"], p).astype(np.int32)}),
        small=None, flops=None, target=("ratio", 0.26), cfg=dict(g, max_new=new),
        kind="decode"))
    e = cfg["encoder"]
    out.append(dict(
        key="encoder", row=3,
        name="encoder layer d%d h%d ffn%d B%d T%d" % (e["d"], e["heads"], e["ffn"], e["batch"],
                                                   e["t"]),
        model="transformer_encoder.model",
        defines=dict(d_model=e["d"], nhead=e["heads"], dim_feedforward=e["ffn"], num_layers=1),
        entry=None, arena_defines={"B": e["batch"], "T": e["t"]},
        make=lambda rng: make_encoder(rng, e),
        small={"x": np.zeros((1, 1, e["d"]), np.float32)}, flops=encoder_flops(e),
        target=("ratio", 0.6), cfg=e, kind="forward"))
    b = cfg["bilstm"]
    out.append(dict(
        key="bilstm_crf", row=4,
        name="BiLSTM-CRF V%d E%d H%dx2 K%d B%d T%d" % (
            b["vocab"], b["emb"], b["hidden"], b["tags"], b["batch"], b["t"]),
        model="bilstm_crf.model",
        defines=dict(n_vocab=b["vocab"], n_embd=b["emb"], n_hidden=b["hidden"],
                     n_tags=b["tags"]),
        entry="decode", arena_defines={"B": b["batch"], "T": b["t"]},
        make=lambda rng: make_bilstm(rng, b),
        small={"tokens": np.zeros((1, 1), np.int32), "lengths": np.ones(1, np.int32)},
        flops=None, target=("ratio", 0.2), cfg=b, kind="forward"))
    n = cfg["act_n"]
    out.append(dict(
        key="act_chain", row=5, name="activation chain (4 fns), %dM floats" % (n >> 20),
        model=os.path.join(HERE, "models", "activation_chain.model"), defines={}, entry=None,
        arena_defines={"N": n},
        make=lambda rng: ({}, {"x": (4 * rng.standard_normal(n)).astype(np.float32)}),
        small={"x": np.zeros(1, np.float32)}, flops=None, bytes=8 * n,
        target=("triad", 0.8), cfg={}, kind="forward"))
    for s in cfg["sgemm"]:
        out.append(dict(
            key="sgemm_%d" % s, row=6, name="sgemm %dx%d" % (s, s),
            model=os.path.join(HERE, "sgemm.model"), defines={}, entry=None,
            arena_defines={"N": s},
            make=lambda rng, s=s: ({}, {"a": rng.standard_normal((s, s), dtype=np.float32),
                                        "b": rng.standard_normal((s, s), dtype=np.float32)}),
            small={"a": np.ones((1, 1), np.float32), "b": np.ones((1, 1), np.float32)},
            flops=2 * s ** 3, target=("gemm", 0.9), cfg={}, kind="forward"))
    out.append(dict(
        key="activations_all", row=5, name="activations.model, 14 outputs, %dM floats" % (n >> 20),
        model="activations.model", defines={}, entry=None, arena_defines={"N": n},
        make=lambda rng: ({}, {"x": (4 * rng.standard_normal(n)).astype(np.float32)}),
        small={"x": np.zeros(1, np.float32)}, flops=None, target=None, cfg={}, kind="forward",
        optional=True))
    return out


# ---- the torch side (runs in a child process) ------------------------------------

def load_safetensors_torch(torch, path):
    """{name: float32 tensor}, each read straight into its tensor (no second
    copy of the file in memory, so the child's RSS is the weights once)."""
    out = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]
                                 if kv[0] != "__metadata__" else -1):
            if name == "__metadata__":
                continue
            assert info["dtype"] == "F32", name
            t = torch.empty(info["shape"], dtype=torch.float32)
            f.seek(8 + n + info["data_offsets"][0])
            f.readinto(memoryview(t.numpy()).cast("B"))
            out[name] = t
    return out


def torch_gpt2(torch, w, g):
    """GPT-2 in plain torch eager (HF Conv1D layout). forward(tokens, past,
    last_only) -> (logits, past); past = per layer (k, v) [heads, S, hd],
    concatenated with the new keys/values each call."""
    F = torch.nn.functional
    d, nh, L = g["n_embd"], g["n_head"], g["n_layer"]
    hd = d // nh

    def ln(x, p):
        return F.layer_norm(x, (d,), w[p + ".weight"], w[p + ".bias"], 1e-5)

    def conv1d(x, p):
        return torch.addmm(w[p + ".bias"], x, w[p + ".weight"])

    def forward(tokens, past=None, last_only=False):
        t = tokens.shape[0]
        start = 0 if past is None else past[0][0].shape[1]
        h = w["wte.weight"][tokens] + w["wpe.weight"][start:start + t]
        mask = None
        if t > 1:
            q_pos = torch.arange(start, start + t)[:, None]
            mask = torch.arange(start + t)[None, :] > q_pos   # True: not attended
        new_past = []
        for i in range(L):
            p = "h.%d." % i
            q, k, v = conv1d(ln(h, p + "ln_1"), p + "attn.c_attn").split(d, dim=-1)
            q, k, v = (z.view(t, nh, hd).transpose(0, 1) for z in (q, k, v))
            if past is not None:
                k = torch.cat([past[i][0], k], dim=1)
                v = torch.cat([past[i][1], v], dim=1)
            new_past.append((k, v))
            s = q @ k.transpose(-1, -2) / math.sqrt(hd)
            if mask is not None:
                s = s.masked_fill(mask, -math.inf)
            a = (s.softmax(dim=-1) @ v).transpose(0, 1).reshape(t, d)
            h = h + conv1d(a, p + "attn.c_proj")
            m = F.gelu(conv1d(ln(h, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh")
            h = h + conv1d(m, p + "mlp.c_proj")
        if last_only:
            h = h[-1:]
        return ln(h, "ln_f") @ w["wte.weight"].T, new_past

    return forward


def torch_case(torch, key, cfg, w, inputs):
    """{name: no-argument function} to time; each returns {output: tensor}."""
    F = torch.nn.functional
    if key.startswith("gpt2_") and key != "gpt2_decode":
        fwd = torch_gpt2(torch, w, cfg)
        tokens = inputs["tokens"].long()
        return {"main": lambda: {"logits": fwd(tokens)[0]}}
    if key == "gpt2_decode":
        fwd = torch_gpt2(torch, w, cfg)
        prompt = inputs["prompt"].long()

        def generate(n_new):
            logits, past = fwd(prompt, None, last_only=True)
            toks = []
            for _ in range(n_new):  # as modelc's scan: choose, then one step
                tok = logits[-1].argmax()
                toks.append(tok)
                logits, past = fwd(tok.reshape(1), past)
            return {"tokens": torch.stack(toks).int()}
        return {"main": lambda: generate(cfg["max_new"]), "one": lambda: generate(1)}
    if key == "encoder":
        layer = torch.nn.TransformerEncoderLayer(cfg["d"], cfg["heads"], cfg["ffn"], dropout=0.0,
                                                 batch_first=True)
        layer.load_state_dict({k[len("layers.0."):]: v for k, v in w.items()})
        layer.eval()
        x = inputs["x"]
        return {"main": lambda: {"y": layer(x)}}
    if key == "bilstm_crf":
        nn = torch.nn
        emb = nn.Embedding(cfg["vocab"], cfg["emb"])
        lstm = nn.LSTM(cfg["emb"], cfg["hidden"], bidirectional=True, batch_first=True)
        lin = nn.Linear(2 * cfg["hidden"], cfg["tags"])
        emb.load_state_dict({"weight": w["embedding.weight"]})
        lstm.load_state_dict({k[len("lstm."):]: v for k, v in w.items() if k.startswith("lstm.")})
        lin.load_state_dict({"weight": w["hidden2tag.weight"], "bias": w["hidden2tag.bias"]})
        for m in (emb, lstm, lin):
            m.eval()
        start, end, trans = (w["crf.start_transitions"], w["crf.end_transitions"],
                             w["crf.transitions"])
        tokens, lengths = inputs["tokens"].long(), inputs["lengths"].long()
        B, T = tokens.shape
        K = cfg["tags"]
        rnn = nn.utils.rnn

        def decode():
            x = emb(tokens)
            packed = rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = lstm(packed)
            out, _ = rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
            e = lin(out)                                            # [B, T, K]
            mask = torch.arange(T)[None, :] < lengths[:, None]      # [B, T]
            ident = torch.arange(K).expand(B, K)
            score = start + e[:, 0]
            bps = []
            for t in range(1, T):
                best, idx = (score[:, :, None] + trans).max(dim=1)  # over the previous tag
                m = mask[:, t, None]
                score = torch.where(m, best + e[:, t], score)
                bps.append(torch.where(m, idx, ident))
            tag = (score + end).argmax(dim=-1)
            path = torch.empty(B, T, dtype=torch.long)
            for t in range(T - 1, -1, -1):
                path[:, t] = torch.where(mask[:, t], tag, torch.full_like(tag, -1))
                if t > 0:
                    tag = bps[t - 1].gather(1, tag[:, None])[:, 0]
            return {"tags": path.int()}
        return {"main": decode}
    if key == "act_chain":
        x = inputs["x"]
        return {"main": lambda: {"y": F.hardsigmoid(F.gelu(F.silu(F.leaky_relu(x, 0.01)),
                                                           approximate="tanh"))}}
    if key == "activations_all":
        t = inputs["x"]

        def activations():
            return dict(relu=F.relu(t), sigmoid=torch.sigmoid(t), tanh=torch.tanh(t),
                        leaky_relu=F.leaky_relu(t, 0.01), elu=F.elu(t), selu=F.selu(t),
                        softplus=F.softplus(t), softsign=F.softsign(t), silu=F.silu(t),
                        mish=F.mish(t), gelu_erf=F.gelu(t),
                        gelu_tanh=F.gelu(t, approximate="tanh"), hardsigmoid=F.hardsigmoid(t),
                        rounding=t * 2.0 ** -140 * 2.0 ** 70 * 2.0 ** 70)
        return {"main": activations}
    if key.startswith("sgemm") or key == "calibrate":
        a, b = inputs["a"], inputs["b"]
        return {"main": lambda: {"c": torch.matmul(a, b)}}
    raise ValueError(key)


def timed_runs(fn, runs, explicit):
    """Median seconds of calls of fn (after one warm-up call), the CPU time
    per wall time of those calls, their number and the last call's result."""
    fn()
    times = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    total = 0.0
    while True:
        t0 = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t0)
        total += times[-1]
        if not more_runs(times, total, runs, explicit):
            break
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return statistics.median(times), cpu / max(total, 1e-9), len(times), last


def more_runs(times, total, runs, explicit):
    n = len(times)
    want = runs
    if times[0] < 0.25:
        want = max(runs, 20 if total < 1.0 else n)
        if total >= 1.0:
            return n < runs
    elif times[0] > 5.0 and not explicit:
        want = min(runs, 3)
    return n < want


def torch_child(args):
    import torch
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.dir, "case.json")) as f:
        cfg = json.load(f)
    w = {}
    wpath = os.path.join(args.dir, "w.safetensors")
    if os.path.exists(wpath):
        w = load_safetensors_torch(torch, wpath)
    inputs = {}
    for f in sorted(os.listdir(args.dir)):
        if f.startswith("in_") and f.endswith(".npy"):
            inputs[f[3:-4]] = torch.from_numpy(np.load(os.path.join(args.dir, f)))
    if args.torch_child == "calibrate":
        n = cfg["n"]
        g = torch.Generator().manual_seed(0)
        inputs = {"a": torch.randn(n, n, generator=g), "b": torch.randn(n, n, generator=g)}
    result = {}
    with torch.no_grad():
        fns = torch_case(torch, args.torch_child, cfg, w, inputs)
        for name, fn in fns.items():
            med, cpu_wall, n, last = timed_runs(fn, args.runs, args.explicit_runs)
            result[name] = med
            if name == "main":
                result["cpu_wall"] = cpu_wall
                result["runs"] = n
                outputs = last
        if args.save:
            outdir = os.path.join(args.dir, "torch_out")
            os.makedirs(outdir, exist_ok=True)
            for name, t in outputs.items():
                np.save(os.path.join(outdir, name + ".npy"), t.contiguous().numpy())
    result["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result))


def blas_env(setting, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    for var, value in (("OPENBLAS_CORETYPE", setting["coretype"]),
                       ("OPENBLAS_NUM_THREADS",
                        str(threads) if setting["blas_threads"] == "match" else None)):
        if value is None:
            env.pop(var, None)
        else:
            env[var] = value
    return env


def setting_label(s):
    """core type (auto: unset, OpenBLAS detects) and OPENBLAS_NUM_THREADS
    (n: the thread count, -: unset)."""
    return "%s,obt=%s" % (s["coretype"] or "auto", "n" if s["blas_threads"] == "match" else "-")


def run_torch(key, workdir, threads, runs, explicit, setting, save=False, verbose=False):
    env = blas_env(setting, threads)
    if verbose:
        env["OPENBLAS_VERBOSE"] = "2"
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-child", key,
           "--threads", str(threads), "--dir", workdir, "--runs", str(runs)]
    if explicit:
        cmd.append("--explicit-runs")
    if save:
        cmd.append("--save")
    rss_file = os.path.join(workdir, "torch_rss.txt")
    use_time = os.access(GNU_TIME, os.X_OK)  # see run_program: RSS floor
    if use_time:
        cmd = [GNU_TIME, "-f", "%M", "-o", rss_file] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError("torch child %s failed: %s" % (key, p.stderr.strip()[-2000:]))
    result = json.loads(p.stdout.strip().splitlines()[-1])
    if use_time:
        with open(rss_file) as f:
            result["rss_kb"] = int(f.read().split()[-1])
    core = re.findall(r"Core: (\w+)", p.stderr)
    result["core"] = core[-1] if core else ""
    return result


# ---- the modelc side --------------------------------------------------------------

def model_path(case):
    return case["model"] if os.path.isabs(case["model"]) else os.path.join(MODELS, case["model"])


def write_inputs(workdir, inputs, prefix="in_"):
    os.makedirs(workdir, exist_ok=True)
    args = []
    for name, arr in inputs.items():
        path = os.path.join(workdir, "%s%s.npy" % (prefix, name))
        np.save(path, arr)
        args.append("%s=%s" % (name, path))
    return args


def compile_case(modelc, case, outdir, cache):
    model = model_path(case)
    cache_key = (model, tuple(sorted(case["defines"].items())), case["entry"])
    if cache_key in cache:
        return cache[cache_key], 0.0
    os.makedirs(outdir, exist_ok=True)
    prog = os.path.join(outdir, "prog_" + case["key"])
    cmd = [modelc, "compile", model, "-O2", "--emit", "exe", "-o", prog]
    if case["entry"]:
        cmd += ["--entry", case["entry"]]
    for k, v in case["defines"].items():
        cmd += ["-D", "%s=%s" % (k, v)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("modelc compile failed: %s" % (p.stderr.strip()[-2000:]))
    cache[cache_key] = prog
    return prog, time.perf_counter() - t0


def arena_bytes(modelc, case, workdir):
    """The arena the generated program plans for the case's sizes: the C of
    `modelc compile --emit c` with the symbolic sizes fixed by -D states it in
    the comment of each workspace ("Workspace of NAME ... Arena: N bytes").
    0 when there is no workspace, None when unknown (e.g. a run-time plan)."""
    out = os.path.join(workdir, "emit_c")
    cmd = [modelc, "compile", model_path(case), "-O2", "--emit", "c", "-o", out]
    if case["entry"]:
        cmd += ["--entry", case["entry"]]
    for k, v in list(case["defines"].items()) + list(case["arena_defines"].items()):
        cmd += ["-D", "%s=%s" % (k, v)]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return None
    text = "".join(open(os.path.join(out, f)).read() for f in sorted(os.listdir(out))
                   if f.endswith(".c") and not f.startswith("mc_"))
    shutil.rmtree(out, ignore_errors=True)
    spaces = {}
    for chunk in text.split("/* Workspace of ")[1:]:
        comment = chunk.split("*/")[0]
        name = re.match(r"(\w+)", comment).group(1)
        m = re.search(r"Arena: (\d+) bytes", comment)
        spaces[name] = int(m.group(1)) if m else None
    if not spaces:
        return 0
    if len(spaces) == 1:
        return list(spaces.values())[0]
    if case["entry"]:
        for name, size in spaces.items():
            if name.endswith("_" + case["entry"]):
                return size
    return None


def run_program(prog, args, outdir, threads, rss_file):
    """Wall time and peak RSS (KiB) of one run of prog. The RSS comes from GNU
    time when it is installed: a child forked from this (large) Python
    process would report Python's RSS as its own floor."""
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    cmd = [prog] + args + ["-o", outdir]
    use_time = os.access(GNU_TIME, os.X_OK)
    full = [GNU_TIME, "-f", "%M", "-o", rss_file] + cmd if use_time else cmd
    env = dict(os.environ, MC_THREADS=str(threads))
    t0 = time.perf_counter()
    p = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    err = p.stderr.read().decode()
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), err.strip()[-2000:]))
    rss = usage.ru_maxrss
    if use_time:
        with open(rss_file) as f:
            rss = int(f.read().split()[-1])
    return elapsed, rss


def time_pair(prog, big_args, small_args, work, threads, runs, explicit, first=None):
    """Alternating runs on the real and on the small input (decoding: all new
    tokens and one): (median real, median small, peak RSS of the real runs,
    the real runs' output dir, the number of pairs). first: (seconds, RSS)
    of a real run already made, counted as the first."""
    big, small, rss = [], [], 0
    out_big, out_small = os.path.join(work, "out"), os.path.join(work, "out_small")
    rss_file = os.path.join(work, "rss.txt")
    total = 0.0
    while True:
        if first is not None:
            t, r = first
            first = None
        else:
            t, r = run_program(prog, big_args, out_big, threads, rss_file)
        big.append(t)
        total += t
        rss = max(rss, r)
        small.append(run_program(prog, small_args, out_small, threads, rss_file)[0])
        if not more_runs(big, total, runs, explicit):
            break
    return statistics.median(big), statistics.median(small), rss, out_big, len(big)


# ---- checks ---------------------------------------------------------------------

def compare(case, mc_dir, pt_dir):
    """(ok, text): modelc's outputs against torch's."""
    notes, ok, worst = [], True, None
    for f in sorted(os.listdir(pt_dir)):
        name = f[:-4]
        ref = np.load(os.path.join(pt_dir, f))
        path = os.path.join(mc_dir, f)
        if not os.path.exists(path):
            return False, "WARN no output %s" % name
        got = np.load(path)
        if case["key"] == "gpt2_decode":
            n = int(np.load(os.path.join(mc_dir, "n_tokens.npy")))
            got = got[:n]
            same = 0
            while same < min(len(got), len(ref)) and got[same] == ref[same]:
                same += 1
            if same == len(ref) == len(got):
                notes.append("%d/%d tokens" % (same, len(ref)))
            else:
                ok = False
                notes.append("WARN tokens equal up to %d of %d" % (same, len(ref)))
            continue
        if got.shape != ref.shape:
            return False, "WARN %s shape %s vs %s" % (name, got.shape, ref.shape)
        if np.issubdtype(ref.dtype, np.floating):
            scale = float(np.max(np.abs(ref))) if ref.size else 0.0
            err = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
            if not np.all(np.isfinite(got) == np.isfinite(ref)):
                err = math.inf
            rel = err / scale if scale > 0 else err
            if rel <= FLOAT_TOL:
                worst = rel if worst is None else max(worst, rel)
            else:
                ok = False
                notes.append("WARN %s err %.1e" % (name, rel))
        else:
            frac = float(np.mean(got == ref)) if ref.size else 1.0
            need = 0.99 if case["key"] == "bilstm_crf" else 1.0
            if frac >= need:
                notes.append("%.1f%% eq" % (100 * frac))
            else:
                ok = False
                notes.append("WARN %s %.1f%% equal" % (name, 100 * frac))
    if worst is not None:
        notes.insert(0, "err %.0e" % worst)
    text = " ".join(notes)
    return ok, ("ok " + text) if ok else text


# ---- the machine ------------------------------------------------------------------

def cpu_info():
    model, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.processor()):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = " " + line.split(":", 1)[1].strip() + " "
    except OSError:
        pass
    return model, flags


def flag_coretype(flags):
    if " avx512f " in flags:
        return "SkylakeX"
    if " avx2 " in flags:
        return "Haswell"
    return None


def blas_settings(flags):
    env = os.environ.get("OPENBLAS_CORETYPE") or None
    cores = [env]
    if env is not None:
        cores.append(None)
    implied = flag_coretype(flags)
    if implied and implied not in cores:
        cores.append(implied)
    return [dict(coretype=c, blas_threads=bt) for c in cores for bt in ("match", "unset")]


def setting_valid(s, threads):
    """unset OPENBLAS_NUM_THREADS: OpenBLAS uses every core. An n-thread
    measurement only when n is the core count (and then it equals match)."""
    return s["blas_threads"] == "match" or threads == (os.cpu_count() or 1)


def build_triad(root):
    exe = os.path.join(root, "triad")
    src = os.path.join(HERE, "triad.c")
    cc = os.environ.get("CC", "cc")
    for extra in (["-march=native"], []):
        p = subprocess.run([cc, "-std=c11", "-O2"] + extra + ["-pthread", src, "-o", exe],
                           capture_output=True, text=True)
        if p.returncode == 0:
            return exe, " ".join(extra)
    raise RuntimeError("cannot compile bench/triad.c: %s" % p.stderr)


def run_triad(exe, threads, mib, reps):
    out = subprocess.run([exe, str(threads), str(mib), str(reps)], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[2])


def runtime_text(modelc, root):
    """(total .text bytes, {file: .text bytes}, Berkeley text total) of the
    runtime .c files modelc writes next to the generated C."""
    out = os.path.join(root, "rt_c")
    subprocess.run([modelc, "compile", os.path.join(HERE, "sgemm.model"), "--emit", "c",
                    "-o", out], check=True, capture_output=True)
    cc = os.environ.get("CC", "cc")
    extra = os.environ.get("MC_CFLAGS", "").split()
    per, berkeley = {}, 0
    for f in sorted(os.listdir(out)):
        if not (f.startswith("mc_") and f.endswith(".c")):
            continue
        obj = os.path.join(out, f[:-2] + ".o")
        subprocess.run([cc] + CFLAGS + extra + ["-c", os.path.join(out, f), "-o", obj],
                       check=True, capture_output=True)
        subprocess.run(["strip", "--strip-unneeded", obj], check=False, capture_output=True)
        sa = subprocess.run(["size", "-A", obj], check=True, capture_output=True,
                            text=True).stdout
        per[f] = sum(int(m.group(1)) for m in re.finditer(r"^\.text\S*\s+(\d+)", sa, re.M))
        sb = subprocess.run(["size", obj], check=True, capture_output=True, text=True).stdout
        berkeley += int(sb.splitlines()[1].split()[0])
    shutil.rmtree(out, ignore_errors=True)
    return sum(per.values()), per, berkeley


def environment(flags_line, threads):
    lines = []
    model, flags = flags_line
    lines.append("CPU: %s, %d logical cores" % (model, os.cpu_count() or 0))
    isa = [x for x in ("sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni")
           if (" %s " % x) in flags]
    lines.append("ISA flags: %s (generated C is built with cc %s%s, no -march)" % (
        " ".join(isa), " ".join(CFLAGS),
        (" " + os.environ["MC_CFLAGS"]) if os.environ.get("MC_CFLAGS") else ""))
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc:
        v = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
        lines.append("C compiler: %s" % v.splitlines()[0])
    lines.append("threads: %s; modelc via MC_THREADS=n; torch via torch.set_num_threads(n), "
                 "OMP_NUM_THREADS=n" % ",".join(map(str, threads)))
    lines.append("environment: OPENBLAS_CORETYPE=%s OPENBLAS_NUM_THREADS=%s OMP_NUM_THREADS=%s "
                 "MC_THREADS=%s" % tuple(os.environ.get(v, "(unset)") for v in (
                     "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                     "MC_THREADS")))
    try:
        import torch
        cfg = torch.__config__.show().replace(",", " ").split()
        blas = [w for w in cfg if w.startswith(("BLAS_INFO=", "USE_MKLDNN=", "USE_OPENMP="))]
        lib = "/usr/lib/%s-linux-gnu/libblas.so.3" % platform.machine()
        if os.path.exists(lib):
            blas.append("libblas.so.3 -> %s" % os.path.realpath(lib))
        lines.append("torch %s (%s)" % (torch.__version__, ", ".join(blas)))
    except Exception as e:  # the rows then fail with the reason
        lines.append("torch: not available (%s)" % e)
    return lines


def tmp_root():
    for d in ("/dev/shm", None):
        if d is None or (os.path.isdir(d) and os.access(d, os.W_OK)
                         and shutil.disk_usage(d).free > (4 << 30)):
            return tempfile.mkdtemp(prefix="mc_bench_", dir=d)


# ---- one case ---------------------------------------------------------------------

def target_text(target):
    if target is None:
        return "-"
    kind, v = target
    return {"ratio": "<=%.2f" % v, "gemm": ">=%.1fx BLAS" % v,
            "triad": ">=%d%% triad" % round(100 * v)}[kind]


def run_case(case, idx, modelc, root, threads_list, runs, explicit, quick, candidates,
             triad, progs, gpt2_weights):
    rows = []
    work = os.path.join(root, case["key"])
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(1234 + idx)
    weights, inputs = case["make"](rng)
    wpath = os.path.join(work, "w.safetensors")
    if weights == "gpt2":
        os.symlink(gpt2_weights(), wpath)
        weight_bytes = os.path.getsize(wpath)
    elif weights:
        write_safetensors(wpath, weights)
        weight_bytes = sum(v.nbytes for v in weights.values())
    else:
        weight_bytes = 0
    wargs = ["--weights", wpath] if weight_bytes else []
    with open(os.path.join(work, "case.json"), "w") as f:
        json.dump(case["cfg"], f)
    big_args = wargs + write_inputs(work, inputs)
    prog, compile_s = compile_case(modelc, case, os.path.join(root, "progs"), progs)
    arena = arena_bytes(modelc, case, work)
    small_args = None
    if case["small"] is not None:
        small_args = wargs + write_inputs(os.path.join(work, "small"), case["small"])
    saved = False
    for n in threads_list:
        row = dict(row=case["row"], key=case["key"], case=case["name"], threads=n,
                   target=target_text(case["target"]), weights_mb=weight_bytes / 2 ** 20,
                   arena_mb="" if arena is None else arena / 2 ** 20, compile_s=compile_s)
        # modelc
        if case["kind"] == "decode":
            # the greedy tokens first, then the same program stopping after one
            mc_out = os.path.join(work, "out")
            pre = run_program(prog, big_args, mc_out, n, os.path.join(work, "rss.txt"))
            first = int(np.load(os.path.join(mc_out, "tokens.npy"))[0])
            stop_args = big_args + write_inputs(work, {"stop": np.array(first, np.int32)},
                                                prefix="stop_")
            t_all, t_one, rss, mc_out, nr = time_pair(prog, big_args, stop_args, work, n, runs,
                                                      explicit, first=pre)
            n_one = int(np.load(os.path.join(work, "out_small", "n_tokens.npy")))
            if n_one != 1:
                raise RuntimeError("generate with stop=first token made %d tokens" % n_one)
            mc_s = (t_all - t_one) / (case["cfg"]["max_new"] - 1)
            row.update(modelc_raw_ms=1e3 * t_all, modelc_fixed_ms=1e3 * t_one)
        else:
            t_big, t_small, rss, mc_out, nr = time_pair(prog, big_args, small_args, work, n,
                                                        runs, explicit)
            mc_s = t_big - t_small
            row.update(modelc_raw_ms=1e3 * t_big, modelc_fixed_ms=1e3 * t_small)
        row.update(modelc_ms=1e3 * mc_s, modelc_runs=nr, rss_mc_mb=rss / 1024.0)
        # torch: every candidate setting, the fastest wins
        best = None
        for s in candidates[n]:
            r = run_torch(case["key"], work, n, runs, explicit, s, save=not saved)
            saved = True
            t = r["main"]
            if case["kind"] == "decode":
                t = (r["main"] - r["one"]) / (case["cfg"]["max_new"] - 1)
                r["total"] = r["main"]
            if best is None or t < best[0]:
                best = (t, s, r)
        pt_s, s, r = best
        noise = mc_s <= 0 or pt_s <= 0  # the fixed cost's own noise exceeds the work
        row.update(torch_ms=1e3 * pt_s, torch_setting=setting_label(s),
                   torch_runs=r.get("runs", ""), torch_cpu_wall=r.get("cpu_wall", ""),
                   rss_pt_mb=r["rss_kb"] / 1024.0, ratio="" if noise else mc_s / pt_s)
        # metrics and target
        metric, met = "", ""
        kind, tv = case["target"] if case["target"] and not noise else (None, None)
        if noise:
            metric = "below timing noise"
        elif case["flops"]:
            row["mc_gflops"] = case["flops"] / mc_s / 1e9 if mc_s > 0 else math.inf
            row["pt_gflops"] = case["flops"] / pt_s / 1e9
            metric = "GF/s mc %.1f pt %.1f" % (row["mc_gflops"], row["pt_gflops"])
        if case["kind"] == "decode" and not noise:
            bound = gpt2_token_bytes(case["cfg"]) / (triad[n] * 1e9)
            row["bound_ms"] = 1e3 * bound
            metric = "bound %.1f ms/tok; mc at %.0f%%, pt %.0f%%" % (
                1e3 * bound, 100 * bound / mc_s if mc_s > 0 else 0, 100 * bound / pt_s)
        if case.get("bytes") and not noise:
            row["mc_gbs"] = case["bytes"] / mc_s / 1e9 if mc_s > 0 else math.inf
            row["pt_gbs"] = case["bytes"] / pt_s / 1e9
            row["triad_gbs"] = triad[n]
            metric = "GB/s mc %.2f (%.0f%% triad) pt %.2f" % (
                row["mc_gbs"], 100 * row["mc_gbs"] / triad[n], row["pt_gbs"])
        if kind == "ratio":
            met = row["ratio"] <= tv
        elif kind == "gemm":
            met = row["ratio"] <= 1 / tv
            metric += " (%.0f%%)" % (100 / row["ratio"])
        elif kind == "triad":
            met = row["mc_gbs"] >= tv * triad[n]
        row["target_met"] = "" if met == "" else ("yes" if met else "no")
        row["metric"] = metric
        ok, text = compare(case, mc_out, os.path.join(work, "torch_out"))
        row["check_ok"], row["check"] = ok, text
        rows.append(row)
        print("  %-44s t=%d modelc %9.2f ms  torch %9.2f ms (%s)  %s" % (
            case["key"], n, row["modelc_ms"], row["torch_ms"], row["torch_setting"], text),
            flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return rows


# ---- main -------------------------------------------------------------------------

def fmt_ms(v):
    if v == "" or v is None:
        return "-"
    return "%.3f" % v if v < 10 else "%.1f" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--torch-child")
    ap.add_argument("--dir")
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--explicit-runs", action="store_true")
    ap.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    ap.add_argument("--runs", type=int, default=0, help="timed runs per measurement")
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 run: a smoke check")
    ap.add_argument("--cases", help="comma-separated case keys or row numbers (gpt2_128, "
                    "gpt2_512, gpt2_decode, encoder, bilstm_crf, act_chain, sgemm_1024, "
                    "activations_all, 6, ...)")
    ap.add_argument("--csv", default=os.path.join(HERE, "results.csv"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if args.torch_child:
        args.threads = int(args.threads)
        return torch_child(args)

    threads_list = [int(x) for x in args.threads.split(",") if x]
    explicit = args.runs > 0
    runs = args.runs or (1 if args.quick else 5)
    cfg = configs(args.quick)
    modelc = os.environ.get("MODELC", os.path.join(SOURCE_DIR, "build", "modelc"))
    cpu = cpu_info()
    t_start = time.perf_counter()
    print("modelc benchmark, %s%s" % (time.strftime("%Y-%m-%d %H:%M"),
                                       " (--quick: small sizes)" if args.quick else ""))
    for line in environment(cpu, threads_list):
        print("  " + line)
    print("  modelc: %s" % modelc)
    print("  timing: modelc = median whole-process wall time on the input minus on the "
          "smallest input (the program has no internal timer); decoding = (t(%d new) - "
          "t(1 new)) / %d on both sides; torch = median warm call; %d run(s) (short runs "
          "repeated); RSS from %s" % (
              cfg["decode_new"], cfg["decode_new"] - 1, runs,
              GNU_TIME if os.access(GNU_TIME, os.X_OK) else "wait4 (floor: python's RSS)"))
    print(flush=True)

    selected = [c for c in cases(cfg) if not c.get("optional")]
    if args.cases:
        want = args.cases.split(",")
        selected = [c for c in cases(cfg) if c["key"] in want or str(c["row"]) in want]
        unknown = [w for w in want if not any(c["key"] == w or str(c["row"]) == w
                                              for c in cases(cfg))]
        if unknown:
            print("unknown case(s): %s" % ", ".join(unknown))
            return 2

    root = tmp_root()
    rows, machine, failures = [], [], []
    try:
        # ---- row 7: the machine
        print("machine (row 7):", flush=True)
        exe, march = build_triad(root)
        triad = {}
        for n in threads_list:
            triad[n] = run_triad(exe, n, cfg["triad_mib"], cfg["triad_reps"])
            print("  triad bandwidth, %d thread(s): %.2f GB/s (3 x %d MiB float arrays, best "
                  "of %d, cc -O2 %s)" % (n, triad[n], cfg["triad_mib"], cfg["triad_reps"],
                                         march), flush=True)
            machine.append(dict(row=7, key="triad", case="triad bandwidth GB/s", threads=n,
                                metric="%.2f GB/s" % triad[n], triad_gbs=triad[n]))
        settings = blas_settings(cpu[1])
        calib_dir = os.path.join(root, "calibrate")
        os.makedirs(calib_dir)
        with open(os.path.join(calib_dir, "case.json"), "w") as f:
            json.dump({"n": 1024}, f)
        candidates = {}
        print("  OpenBLAS sgemm 1024 through torch.matmul (GFLOP/s; cpu/wall = CPU time / "
              "wall time; obt = OPENBLAS_NUM_THREADS):", flush=True)
        for n in threads_list:
            results = []
            for s in settings:
                if s["blas_threads"] == "unset" and n == (os.cpu_count() or 1):
                    print("    t=%d %-28s same as obt=match at the core count" % (
                        n, setting_label(s)))
                    continue
                try:
                    r = run_torch("calibrate", calib_dir, n, max(runs, 5), False, s,
                                  verbose=True)
                except RuntimeError as e:
                    print("    t=%d %-28s failed: %s" % (n, setting_label(s), e))
                    continue
                gf = 2 * 1024 ** 3 / r["main"] / 1e9
                valid = setting_valid(s, n)
                results.append((gf, s, valid))
                print("    t=%d %-28s %7.1f GFLOP/s  cpu/wall %.2f  OpenBLAS core %s%s" % (
                    n, setting_label(s), gf, r["cpu_wall"], r["core"] or "?",
                    "" if valid else "  (not an n-thread setting: never wins)"), flush=True)
                machine.append(dict(row=7, key="openblas_sgemm_1024", threads=n,
                                    case="OpenBLAS sgemm 1024 GFLOP/s (torch)",
                                    torch_setting=setting_label(s), pt_gflops=gf,
                                    torch_cpu_wall=r["cpu_wall"],
                                    metric="core %s%s" % (r["core"] or "?",
                                                          "" if valid else ", invalid")))
            valid = sorted([x for x in results if x[2]], key=lambda x: -x[0])
            if not valid:
                raise RuntimeError("torch could not run under any BLAS setting")
            candidates[n] = [x[1] for x in valid if x[0] >= 0.9 * valid[0][0]][:1 if args.quick
                                                                                 else 2]
            print("  t=%d: best %s (%.1f GFLOP/s); cases try: %s" % (
                n, setting_label(valid[0][1]), valid[0][0],
                ", ".join(setting_label(s) for s in candidates[n])), flush=True)
        try:
            text, per, berkeley = runtime_text(modelc, root)
            print("  runtime linked by a generated program: .text %.1f KB (target <= %d KB: "
                  "%s), size(1) text %.1f KB incl. rodata; %s" % (
                      text / 1024, RUNTIME_TEXT_TARGET // 1024,
                      "yes" if text <= RUNTIME_TEXT_TARGET else "no", berkeley / 1024,
                      " ".join("%s %.1f" % (f[3:-2], v / 1024) for f, v in per.items())))
            machine.append(dict(row=7, key="runtime_text", case="runtime .text KB",
                                metric="%.1f KB" % (text / 1024), target="<=64 KB",
                                target_met="yes" if text <= RUNTIME_TEXT_TARGET else "no"))
        except (subprocess.CalledProcessError, OSError) as e:
            print("  runtime size: failed: %s" % e)
        print(flush=True)

        # ---- the cases
        gpt2_path = os.path.join(root, "gpt2_weights.safetensors")

        def gpt2_weights():
            if not os.path.exists(gpt2_path):
                print("  (writing GPT-2 weights)", flush=True)
                write_safetensors(gpt2_path, make_gpt2_weights(np.random.default_rng(99),
                                                               cfg["gpt2"]))
            return gpt2_path

        progs = {}
        print("cases:", flush=True)
        for i, case in enumerate(selected):
            try:
                rows += run_case(case, i, modelc, root, threads_list, runs, explicit,
                                 args.quick, candidates, triad, progs, gpt2_weights)
            except Exception as e:  # noqa: BLE001 - the other rows still run
                msg = str(e).strip().replace("\n", " ")[:600]
                failures.append((case["key"], msg))
                print("  %-44s FAILED: %s" % (case["key"], msg), flush=True)
                shutil.rmtree(os.path.join(root, case["key"]), ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print("work directory kept: %s" % root)

    print()
    head = ("#", "case", "thr", "modelc ms", "torch ms", "torch setting", "mc/pt", "target",
            "met", "metric", "RSS mc", "RSS pt", "wts MB", "arena", "check")
    fmt = "%-2s %-40s %3s %9s %9s %-15s %6s %12s %3s %-38s %6s %6s %7s %6s  %s"
    print(fmt % head)
    for r in rows:
        print(fmt % (r["row"], r["case"][:40], r["threads"], fmt_ms(r["modelc_ms"]),
                     fmt_ms(r["torch_ms"]), r["torch_setting"],
                     "%.2f" % r["ratio"] if r["ratio"] != "" else "-",
                     r["target"], r["target_met"] or "-", r["metric"][:38],
                     "%.0f" % r["rss_mc_mb"], "%.0f" % r["rss_pt_mb"],
                     "%.1f" % r["weights_mb"],
                     "%.1f" % r["arena_mb"] if r["arena_mb"] != "" else "?", r["check"]))
    print("ms: per run (decoding: per token). mc/pt: modelc time / torch time at the same "
          "thread count (lower is better for modelc).\ntorch setting: OPENBLAS_CORETYPE "
          "(auto = unset) and OPENBLAS_NUM_THREADS (n = the thread count, - = unset). "
          "metric: GFLOP/s; decoding: the bandwidth bound\n(weight bytes per token / triad "
          "bandwidth) and the share of it each side reaches; activation chain: 8 bytes per "
          "element / time. RSS: peak MB\n(GNU time). wts MB: the safetensors weights; arena: "
          "MiB of the planned arena of intermediates.")
    for key, msg in failures:
        print("FAILED %s: %s" % (key, msg))
    warn = [r for r in rows if not r["check_ok"]]
    if warn:
        print("WARNING: modelc and torch disagree on: %s" % ", ".join(
            "%s t=%d (%s)" % (r["key"], r["threads"], r["check"]) for r in warn))
    all_rows = machine + rows
    if all_rows:
        fields = ["row", "key", "case", "threads", "modelc_ms", "torch_ms", "ratio", "target",
                  "target_met", "metric", "torch_setting", "check_ok", "check"]
        for r in all_rows:
            fields += [k for k in r if k not in fields]
        with open(args.csv, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=fields)
            wr.writeheader()
            for r in all_rows:
                wr.writerow({k: ("%.6g" % v if isinstance(v, float) else v)
                             for k, v in r.items()})
        print("\nwrote %s (%.0f s in all)" % (args.csv, time.perf_counter() - t_start))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
