"""models/gpt2.model at a tiny configuration against a plain PyTorch GPT-2.

The reference below is written from the GPT-2 paper and the Hugging Face
layout (transformers is not a dependency): pre-norm blocks, Conv1D weights
[n_in, n_out], "gelu_new", causal softmax attention, tied output head.
Weights are saved twice: once as a GPT2Model checkpoint (no prefix, float
attn.bias / attn.masked_bias buffers) and once as a GPT2LMHeadModel state dict
("transformer." prefix, bool attn.bias buffers, lm_head.weight).
Tolerance: |got - ref| <= 1e-4 + 1e-5 * |ref| (float32 logits).

--weight-dtype f16 / bf16 keeps the matrices (wte, the Conv1D weights) in 16
bits: checked against the same reference on weights rounded to that dtype
(torch's .half() / .bfloat16(), round to nearest even), at the same
tolerance; the cost of the rounding itself (against the f32 logits) is
printed.
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

RTOL = 1e-5
ATOL = 1e-4
CONFIG = {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_vocab": 100, "n_ctx": 32}


def random_weights(torch, n_layer, n_embd, n_vocab, n_ctx, **_):
    g = torch.Generator().manual_seed(2019)

    def normal(*shape, std=0.1, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean

    w = {"wte.weight": normal(n_vocab, n_embd, std=0.2),
         "wpe.weight": normal(n_ctx, n_embd, std=0.05),
         "ln_f.weight": normal(n_embd, mean=1.0), "ln_f.bias": normal(n_embd)}
    for i in range(n_layer):
        p = "h.%d." % i
        for ln in ("ln_1", "ln_2"):
            w[p + ln + ".weight"] = normal(n_embd, mean=1.0)
            w[p + ln + ".bias"] = normal(n_embd)
        for name, n_in, n_out in (("attn.c_attn", n_embd, 3 * n_embd),
                                  ("attn.c_proj", n_embd, n_embd),
                                  ("mlp.c_fc", n_embd, 4 * n_embd),
                                  ("mlp.c_proj", 4 * n_embd, n_embd)):
            w[p + name + ".weight"] = normal(n_in, n_out, std=1 / math.sqrt(n_in))
            w[p + name + ".bias"] = normal(n_out, std=0.02)
    return w


def reference_logits(torch, w, tokens, n_layer, n_head, n_embd, **_):
    F = torch.nn.functional

    def conv1d(x, name):
        return x @ w[name + ".weight"] + w[name + ".bias"]

    def layer_norm(x, name):
        return F.layer_norm(x, (n_embd,), w[name + ".weight"], w[name + ".bias"], 1e-5)

    def gelu_new(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi)
                                           * (x + 0.044715 * torch.pow(x, 3.0))))

    t = tokens.shape[0]
    head_dim = n_embd // n_head
    causal = torch.tril(torch.ones(t, t, dtype=torch.bool))
    h = w["wte.weight"][tokens] + w["wpe.weight"][:t]
    for i in range(n_layer):
        p = "h.%d." % i
        q, k, v = conv1d(layer_norm(h, p + "ln_1"), p + "attn.c_attn").split(n_embd, dim=-1)
        q, k, v = (z.view(t, n_head, head_dim).transpose(0, 1) for z in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
        scores = scores.masked_fill(~causal, float("-inf"))
        a = (scores.softmax(dim=-1) @ v).transpose(0, 1).reshape(t, n_embd)
        h = h + conv1d(a, p + "attn.c_proj")
        m = gelu_new(conv1d(layer_norm(h, p + "ln_2"), p + "mlp.c_fc"))
        h = h + conv1d(m, p + "mlp.c_proj")
    return layer_norm(h, "ln_f") @ w["wte.weight"].T


def checkpoint_gpt2model(torch, w, n_layer, n_ctx, **_):
    """As a GPT2Model checkpoint: no prefix, float causal buffers."""
    out = dict(w)
    for i in range(n_layer):
        out["h.%d.attn.bias" % i] = torch.tril(torch.ones(n_ctx, n_ctx)).view(1, 1, n_ctx, n_ctx)
        out["h.%d.attn.masked_bias" % i] = torch.tensor(-1e4)
    return out


def checkpoint_lmhead(torch, w, n_layer, n_ctx, **_):
    """As a GPT2LMHeadModel state dict: "transformer." prefix, bool buffers,
    the tied lm_head.weight stored as its own tensor."""
    out = {"transformer." + k: v for k, v in w.items()}
    for i in range(n_layer):
        out["transformer.h.%d.attn.bias" % i] = torch.tril(
            torch.ones(n_ctx, n_ctx, dtype=torch.bool)).view(1, 1, n_ctx, n_ctx)
        out["transformer.h.%d.attn.masked_bias" % i] = torch.tensor(-1e4)
    out["lm_head.weight"] = w["wte.weight"].clone()
    return out


def body(ck, work):
    torch = mc_e2e.import_torch()
    model = mc_e2e.model_path("gpt2.model")
    w = random_weights(torch, **CONFIG)
    print("config: %s" % " ".join("%s=%d" % kv for kv in CONFIG.items()))

    files = {
        "no prefix, float buffers": checkpoint_gpt2model(torch, w, **CONFIG),
        "transformer. prefix, bool buffers, lm_head": checkpoint_lmhead(torch, w, **CONFIG),
    }
    g = torch.Generator().manual_seed(7)
    token_sets = [torch.randint(0, CONFIG["n_vocab"], (11,), generator=g),
                  torch.randint(0, CONFIG["n_vocab"], (CONFIG["n_ctx"],), generator=g),
                  torch.tensor([CONFIG["n_vocab"] - 1])]
    with torch.no_grad():
        wants = [mc_e2e.to_numpy(reference_logits(torch, w, t, **CONFIG)) for t in token_sets]

    for index, (label, tensors) in enumerate(files.items()):
        weights = work.path("w%d" % index, "model.safetensors")
        mc_e2e.write_safetensors(weights, tensors, metadata={"format": "pt"})
        print("weights %s: %d tensors, %d bytes" % (label, len(tensors), os.path.getsize(weights)))
        # The first file is checked at compile time, the second at load time.
        prog = mc_e2e.compile_model(model, work.path("w%d" % index, "gpt2"), defines=CONFIG,
                                    weights=weights if index == 0 else None, opt=2)
        for n, (tokens, want) in enumerate(zip(token_sets, wants)):
            # Integer inputs accept int32 and int64 .npy files.
            dtype = np.int64 if n % 2 else np.int32
            toks = mc_e2e.to_numpy(tokens).astype(dtype)
            _, out = mc_e2e.run_program(prog, {"tokens": toks},
                                        work.path("w%d" % index, "out%d" % n), work,
                                        weights=weights)
            name = "%s: T=%d tokens %s" % (label, toks.shape[0], toks.dtype)
            if ck.check(name + ": logits present", "logits" in out, "outputs %s" % sorted(out)):
                ck.close(name + ": logits", out["logits"], want, RTOL, ATOL)
        mc_e2e.check_threads(ck, label, prog, {"tokens": toks}, work, weights=weights,
                             base=out)

    # 16-bit weights: the matrices rounded once, the arithmetic f32.
    weights = work.path("w0", "model.safetensors")
    for wdt, tdt in (("f16", torch.float16), ("bf16", torch.bfloat16)):
        rounded = {k: v.to(tdt).float() if v.dim() == 2 and k != "wpe.weight" else v
                   for k, v in w.items()}
        prog = mc_e2e.compile_model(model, work.path(wdt, "gpt2"), defines=CONFIG,
                                    weights=weights, opt=2,
                                    extra=["--weight-dtype", wdt])
        toks = mc_e2e.to_numpy(token_sets[1]).astype(np.int32)
        _, out = mc_e2e.run_program(prog, {"tokens": toks}, work.path(wdt, "out"), work,
                                    weights=weights)
        with torch.no_grad():
            want = mc_e2e.to_numpy(reference_logits(torch, rounded, token_sets[1], **CONFIG))
        if ck.check("--weight-dtype %s: logits present" % wdt, "logits" in out):
            ck.close("--weight-dtype %s: logits vs torch on %s-rounded weights" % (wdt, wdt),
                     out["logits"], want, RTOL, ATOL)
            cost = np.abs(out["logits"] - wants[1]).max()
            print("--weight-dtype %s: max |logit - f32 logit| = %.3g (logits up to %.3g)"
                  % (wdt, cost, np.abs(wants[1]).max()))
        # the same matrices are 16-bit at -O0, where x @ W.T is still a
        # permute and a matmul: the same bits
        prog0 = mc_e2e.compile_model(model, work.path(wdt + "_O0", "gpt2"), defines=CONFIG,
                                     weights=weights, opt=0,
                                     extra=["--weight-dtype", wdt])
        _, out0 = mc_e2e.run_program(prog0, {"tokens": toks}, work.path(wdt + "_O0", "out"),
                                     work, weights=weights)
        if ck.check("--weight-dtype %s -O0: logits present" % wdt, "logits" in out0) and \
                "logits" in out:
            ck.bits_equal("--weight-dtype %s: -O0 logits = -O2's" % wdt, out0["logits"],
                          out["logits"])

    # -O0 (no fusion: the scores of every key, masked) gives the logits of
    # -O2 (attention leaves out the keys after a block's last row) bit for bit.
    weights = work.path("w0", "model.safetensors")
    tokens = {"tokens": mc_e2e.to_numpy(token_sets[0]).astype(np.int32)}
    for opt in (0, 2):
        prog = mc_e2e.compile_model(model, work.path("O%d" % opt, "gpt2"), defines=CONFIG,
                                    weights=weights, opt=opt)
        _, out = mc_e2e.run_program(prog, tokens, work.path("O%d" % opt, "out"), work,
                                    weights=weights)
        if not ck.check("-O%d: logits present" % opt, "logits" in out):
            break
        ck.close("-O%d: logits" % opt, out["logits"], wants[0], RTOL, ATOL)
        if opt == 0:
            logits_o0 = out["logits"]
        else:
            ck.bits_equal("-O2 logits = -O0's", out["logits"], logits_o0)


if __name__ == "__main__":
    mc_e2e.main("test_gpt2", body)
