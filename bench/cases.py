"""The benchmark's cases (rows 1-6 of the table) and their PyTorch side.

Seeded random weights and inputs; modelc compiles the shipped model at -O2
--emit exe; PyTorch is Debian's, eager, torch.no_grad():
 1 gpt2_128, gpt2_512  GPT-2 small (12 layers, 768 wide, vocab 50257, HF
        state_dict layout of models/gpt2.model): full-sequence logits of a
        prompt of 128 / 512 tokens. GFLOP/s = (GEMM + causal attention +
        LM head FLOPs) / time. Target, at 2 threads (the issue sets none at
        1): modelc/torch <= 0.4 and modelc's GFLOP/s >= 80% of the OpenBLAS
        sgemm 1024 GFLOP/s of row 7 (the best valid BLAS setting).
 2 gpt2_decode  GPT-2 small greedy decoding with the KV cache:
        models/gpt2_generate.model entry `generate` (-D max_new=64) against a
        plain torch GPT-2 whose past keys/values are concatenated each step.
        Prompt 16 tokens. Both sides are timed twice, with 64 new tokens and
        with 1 (modelc: the `stop` input set to the first greedy token, so the
        same program stops after one step; torch: the same loop run for 1
        step); ms/token = (t(64) - t(1)) / 63: the prefill cancels (modelc:
        the median of 3 alternated pairs of processes, measure.py). Every step is one token through the layers and
        the choice of the next token (modelc: its top-k/top-p machinery at
        temperature 0; torch: argmax). The bandwidth bound is the bytes of
        weights one token reads (all but wpe, of which one row) / the triad
        bandwidth at the same thread count. Target, at 1 and 2 threads:
        <= 0.26 and modelc at >= 85% of the bound (bound / time).
 1, 2 gpt2_128_f16, gpt2_128_bf16, gpt2_decode_f16, gpt2_decode_bf16: the
        same programs compiled with --weight-dtype f16 / bf16 (the matrices in
        16 bits), timed against the same torch f32 runs; the check prints the
        accuracy cost (max |logit - torch f32 logit|, absolute and relative to
        the largest logit; decoding: how many greedy tokens stay torch's).
        The bound counts 2 bytes per matrix element. Decoding target: <= 5
        ms/token on 2 threads; the prompts keep the f32 rows' target.
 3 encoder  one torch.nn.TransformerEncoderLayer(512, 8, 2048, dropout=0,
        batch_first=True) in eval mode (post-norm, ReLU, eps 1e-5 - the layout
        models/transformer_encoder.model implements at -D num_layers=1), x of
        [8, 128, 512]. Target: <= 0.6.
 4 bilstm_crf  models/bilstm_crf.model entry `decode` at -D n_vocab=5000
        -D n_embd=100 -D n_hidden=128 -D n_tags=9, tokens [32, 50], lengths
        uniform in [25, 50] (one row full): torch nn.Embedding + nn.LSTM
        (bidirectional, packed sequences) + nn.Linear + batched Viterbi in
        torch ops (max over the previous tag per step, backpointers, a gather
        walk back). GFLOP/s counts only the recurrent and tag matmuls of the
        valid steps (the input projection is a table lookup from -O1 on):
        the least any implementation computes. Target: <= 0.2.
 5 act_chain  bench/models/activation_chain.model, y = hardsigmoid(gelu_tanh(
        silu(leaky_relu(x)))) over 16M floats (torch: the four F.* calls).
        Rated by the bytes a fused pass must move (read x, write y: 8 per
        element) / time, against the triad bandwidth. Target: >= 80% of triad.
 6 sgemm_N  bench/sgemm.model, c = a @ b, N = 256, 512, 1024, 2048, against
        torch.matmul; GFLOP/s = 2 N^3 / time. Target: modelc >= 0.9 x
        OpenBLAS's GFLOP/s (torch.matmul is OpenBLAS here).
 8 bilstm_crf_train  models/train_bilstm_crf.model entry `train` at row 4's
        sizes: one training step (the batch's mean CRF negative
        log-likelihood through the BiLSTM, its gradient, Adam lr 0.01) on
        B 32 rows of 4 batches taken in order (tags uniform). ms per step =
        (t(1 + S steps) - t(1 step)) / S, each t a program's wall time (the
        load cancels); torch: models/train/train_segmenter.py's BiLstmCrf
        (nn.LSTM on packed sequences, the forward algorithm in torch ops),
        loss.backward(), Adam.step(), zero_grad. The check compares the
        first step's loss. The issue sets no target: the ratio is printed.
 Also activations_all (models/activations.model, all 14 outputs; only with
 --cases activations_all).

--quick: a tiny GPT-2 (2 layers, 128 wide, vocab 2048; prompt 64, decoding
8 + 16), the encoder and BiLSTM-CRF at full size, the activation chain over
4M floats, sgemm 256 and 512 (and 64 MiB triad arrays, see machine.py).
"""
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
MODELS = os.path.join(SOURCE_DIR, "models")


# ---- configurations -----------------------------------------------------------

GPT2_FULL = dict(n_layer=12, n_head=12, n_embd=768, n_vocab=50257, n_ctx=1024)
GPT2_QUICK = dict(n_layer=2, n_head=4, n_embd=128, n_vocab=2048, n_ctx=256)


def configs(quick):
    if quick:
        # GPT-2 small's weights take long to write and its programs to
        # compile: a tiny GPT-2; the encoder and BiLSTM-CRF rows are cheap at
        # full size.
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


def gpt2_token_bytes(g, half=False):
    """Bytes of weights one decoding step reads: everything but wpe, of which
    one row (wte is read whole by the tied LM head). half: the matrices in 16
    bits (--weight-dtype), the vectors in f32."""
    d, L, m = g["n_embd"], g["n_layer"], 2 if half else 4
    matrices = L * (d * 3 * d + d * d + d * 4 * d + 4 * d * d) + g["n_vocab"] * d
    vectors = L * (3 * d + d + 4 * d + d + 4 * d) + d + 2 * d
    return m * matrices + 4 * vectors


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


def bilstm_flops(c):
    """Of inputs: the recurrent matmuls of both directions and the tag
    matmul over the valid steps (sum of the lengths)."""
    h = c["hidden"]
    per_step = 2 * 2 * h * 4 * h + 2 * 2 * h * c["tags"]
    return lambda inputs: int(inputs["lengths"].sum()) * per_step


def make_bilstm_train(rng, c):
    """make_bilstm's weights; 4 batches of data rows with random tags."""
    w, _ = make_bilstm(rng, c)
    c4 = dict(c, batch=4 * c["batch"])
    _, data = make_bilstm(rng, c4)
    data["tags"] = rng.integers(0, c["tags"], (c4["batch"], c["t"])).astype(np.int32)
    return w, data


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
# "gpt2", inputs), flops (or a function of the inputs), target, cfg (for the
# torch child) and kind ("forward" or "decode"); optional: target_threads
# (the thread counts the target is for; default all) and target_also (a
# second condition: ("blas", share of OpenBLAS sgemm 1024's GFLOP/s) or
# ("bound", share of the bandwidth bound)).

def cases(cfg):
    g = cfg["gpt2"]
    out = []
    for t in cfg["prompts"]:
        out.append(dict(
            key="gpt2_%d" % t, row=1, name="%s prompt %d" % (gpt2_name(g), t),
            model="gpt2.model", defines=gpt2_defines(g), entry=None, arena_defines={"T": t},
            make=lambda rng, t=t: ("gpt2", {"tokens": rng.integers(0, g["n_vocab"], t)
                                            .astype(np.int32)}),
            flops=gpt2_flops(t, g),
            # the target is for 2 threads, with a share of OpenBLAS's
            # sgemm 1024 GFLOP/s measured in the same run (row 7)
            target=("ratio", 0.4), target_threads=(2,), target_also=("blas", 0.8),
            cfg=dict(g), kind="forward"))
    p, new = cfg["decode_prompt"], cfg["decode_new"]
    out.append(dict(
        key="gpt2_decode", row=2,
        name="%s decode P%d+%d, per token" % (gpt2_name(g), p, new),
        model="gpt2_generate.model", defines=dict(gpt2_defines(g), max_new=new),
        entry="generate", arena_defines={"P": p},
        make=lambda rng: ("gpt2", {"prompt": rng.integers(0, g["n_vocab"], p).astype(np.int32)}),
        flops=None, target=("ratio", 0.26), target_also=("bound", 0.85),
        cfg=dict(g, max_new=new),
        kind="decode"))
    # 16-bit weights (--weight-dtype): the first prompt and decoding, timed
    # against the same torch f32 run; the output check prints the accuracy
    # cost against it
    for base in [c for c in out if c["key"] in ("gpt2_%d" % cfg["prompts"][0], "gpt2_decode")]:
        for wdt in ("f16", "bf16"):
            out.append(dict(base, key="%s_%s" % (base["key"], wdt),
                            name="%s, %s weights" % (base["name"], wdt),
                            compile_args=["--weight-dtype", wdt], torch_key=base["key"],
                            weight_dtype=wdt,
                            **(dict(target=("ms", 5.0), target_threads=(2,), target_also=None)
                               if base["kind"] == "decode" else {})))
    e = cfg["encoder"]
    out.append(dict(
        key="encoder", row=3,
        name="encoder layer d%d h%d ffn%d B%d T%d" % (e["d"], e["heads"], e["ffn"], e["batch"],
                                                   e["t"]),
        model="transformer_encoder.model",
        defines=dict(d_model=e["d"], nhead=e["heads"], dim_feedforward=e["ffn"], num_layers=1),
        entry=None, arena_defines={"B": e["batch"], "T": e["t"]},
        make=lambda rng: make_encoder(rng, e),
            flops=encoder_flops(e),
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
        flops=bilstm_flops(b), target=("ratio", 0.2), cfg=b, kind="forward"))
    out.append(dict(
        key="bilstm_crf_train", row=8,
        name="BiLSTM-CRF training step V%d E%d H%dx2 K%d B%d T%d" % (
            b["vocab"], b["emb"], b["hidden"], b["tags"], b["batch"], b["t"]),
        model="train_bilstm_crf.model",
        defines=dict(n_vocab=b["vocab"], n_embd=b["emb"], n_hidden=b["hidden"],
                     n_tags=b["tags"]),
        entry="train", arena_defines={"B": b["batch"], "T": b["t"]},
        make=lambda rng: make_bilstm_train(rng, b),
        flops=None, target=None, cfg=b, kind="train", steps=b.get("train_steps", 20)))
    n = cfg["act_n"]
    out.append(dict(
        key="act_chain", row=5, name="activation chain (4 fns), %dM floats" % (n >> 20),
        model=os.path.join(HERE, "models", "activation_chain.model"), defines={}, entry=None,
        arena_defines={"N": n},
        make=lambda rng: ({}, {"x": (4 * rng.standard_normal(n)).astype(np.float32)}),
            flops=None, bytes=8 * n,
        target=("triad", 0.8), cfg={}, kind="forward"))
    for s in cfg["sgemm"]:
        out.append(dict(
            key="sgemm_%d" % s, row=6, name="sgemm %dx%d" % (s, s),
            model=os.path.join(HERE, "sgemm.model"), defines={}, entry=None,
            arena_defines={"N": s},
            make=lambda rng, s=s: ({}, {"a": rng.standard_normal((s, s), dtype=np.float32),
                                        "b": rng.standard_normal((s, s), dtype=np.float32)}),
            flops=2 * s ** 3, target=("gemm", 0.9), cfg={}, kind="forward"))
    out.append(dict(
        key="activations_all", row=5, name="activations.model, 14 outputs, %dM floats" % (n >> 20),
        model="activations.model", defines={}, entry=None, arena_defines={"N": n},
        make=lambda rng: ({}, {"x": (4 * rng.standard_normal(n)).astype(np.float32)}),
            flops=None, target=None, cfg={}, kind="forward",
        optional=True))
    return out


def target_of(case, threads):
    """(kind, value) of the case's target at this thread count, or None."""
    if case["target"] is None or threads not in case.get("target_threads", (threads,)):
        return None
    return case["target"]


def target_text(case, threads):
    target = target_of(case, threads)
    if target is None:
        return "-"
    kind, v = target
    text = {"ratio": "<=%.2f" % v, "gemm": ">=%.1fx BLAS" % v,
            "triad": ">=%d%% triad" % round(100 * v), "ms": "<=%g ms" % v}[kind]
    also = case.get("target_also")
    if also:
        text += ", >=%d%% %s" % (round(100 * also[1]), {"blas": "BLAS", "bound": "bound"}[also[0]])
    return text


def model_path(case):
    return case["model"] if os.path.isabs(case["model"]) else os.path.join(MODELS, case["model"])


def per_token(case, t_all, t_one):
    """Decoding: seconds per token from the runs with all new tokens and one."""
    return (t_all - t_one) / (case["cfg"]["max_new"] - 1)


# ---- the torch side (timed in a child process, see measure.py) --------------------

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
    if key == "bilstm_crf_train":
        return torch_bilstm_train(torch, cfg, w, inputs)
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



def torch_bilstm_train(torch, cfg, w, inputs):
    """Training steps of train_segmenter.py's BiLstmCrf, batch after batch
    of the rows in order; "loss": the first step's loss from the initial
    weights (a copy of the module takes it before the timed steps)."""
    sys.path.insert(0, os.path.join(MODELS, "train"))
    import train_segmenter
    B = cfg["batch"]
    tokens, lengths, tags = (inputs[k].long() for k in ("tokens", "lengths", "tags"))
    rows = tokens.shape[0]

    def module():
        m = train_segmenter.BiLstmCrf(cfg["vocab"], cfg["emb"], cfg["hidden"], cfg["tags"])
        m.load_state_dict({k: v.clone() for k, v in w.items()})
        return m, torch.optim.Adam(m.parameters(), lr=0.01)

    def step(m, opt, k):
        r = slice(k * B % rows, k * B % rows + B)
        with torch.enable_grad():
            loss = m.nll(tokens[r], lengths[r], tags[r]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.detach()
    first = step(*module(), 0)
    m, opt = module()
    count = [0]

    def train_step():
        step(m, opt, count[0])
        count[0] += 1
        return {"loss": first}
    return {"main": train_step}
