"""models/gpt2_generate.model: GPT-2 with a cache of keys and values.

Checked against the plain PyTorch GPT-2 of test_gpt2.py on the same random
weights (tiny configuration, GPT2LMHeadModel layout):
- `prefill` feeds the prompt one token at a time through the cache; its
  logits equal the full-sequence logits of models/gpt2.model's program and of
  torch: |got - ref| <= 1e-4 + 1e-4 * |ref|; and those of -O0 bit for bit
  (at -O2 attention reads only the keys up to the position, -O0 all n_ctx).
- `generate` at temperature 0 gives exactly torch's greedy tokens, stops
  after the `stop` token or when the context is full.
- sampling is a function of the seed: the same seed gives the same tokens on
  two runs, top_k=1 and a tiny top_p give the greedy tokens, and every
  sampled token is among the top_k tokens of torch's logits for its prefix.
- --weight-dtype f16 and bf16: prefill's logits (the decoding path: GEMV
  and a gather from the 16-bit, transposed wte) equal torch's on the weights
  rounded to that dtype, same tolerance.
- the demo's shipped byte-level GPT-2 (models/demo/gpt2_bytes.safetensors)
  continues the demo's prompt greedily exactly as torch does on its weights.
"""
import json
import struct
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402
import test_gpt2  # noqa: E402

CONFIG = {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_vocab": 100, "n_ctx": 32}
MAX_NEW = 12
RTOL = 1e-4
ATOL = 1e-4


def body(ck, work):
    torch = mc_e2e.import_torch()
    torch.manual_seed(11)
    w = test_gpt2.random_weights(torch, **CONFIG)
    weights = work.path("gpt2.safetensors")
    mc_e2e.write_safetensors(weights, test_gpt2.checkpoint_lmhead(torch, w, **CONFIG))
    defines = dict(CONFIG, max_new=MAX_NEW)
    gen = mc_e2e.compile_model(mc_e2e.model_path("gpt2_generate.model"), work.path("gen"),
                               defines=defines, weights=weights)
    full = mc_e2e.compile_model(mc_e2e.model_path("gpt2.model"), work.path("full"),
                                defines=CONFIG, weights=weights)

    def ref_logits(seq):
        with torch.no_grad():
            return test_gpt2.reference_logits(torch, w, torch.tensor(seq).long(), **CONFIG)

    def run(entry, inputs, name):
        paths = ["%s=%s" % (k, mc_e2e.save_npy(work.next_input_path(k), v))
                 for k, v in inputs.items()]
        out = work.path(name)
        mc_e2e.run([gen, entry] + paths + ["-o", out])
        return {f[:-4]: mc_e2e.load_npy(os.path.join(out, f))
                for f in os.listdir(out) if f.endswith(".npy")}

    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(0, CONFIG["n_vocab"], (n,), generator=g).numpy().astype(np.int32)
               for n in (1, 7, CONFIG["n_ctx"] - 5)]

    for n, prompt in enumerate(prompts):
        got = run("prefill", {"tokens": prompt}, "prefill%d" % n)["logits"]
        _, out = mc_e2e.run_program(full, {"tokens": prompt}, work.path("full%d" % n), work)
        ck.close("prefill T=%d == gpt2.model logits" % len(prompt), got, out["logits"], RTOL, ATOL)
        ck.close("prefill T=%d == torch logits" % len(prompt), got,
                 mc_e2e.to_numpy(ref_logits(prompt)), RTOL, ATOL)

    # -O0 computes the scores over the whole cache of n_ctx keys, masked;
    # -O2's attention kernel leaves out the keys past pos: the same bits
    o0 = mc_e2e.compile_model(mc_e2e.model_path("gpt2_generate.model"), work.path("gen_O0"),
                              defines=defines, weights=weights, opt=0)
    for n, prompt in enumerate(prompts):
        paths = ["tokens=%s" % mc_e2e.save_npy(work.next_input_path("tokens"), prompt)]
        mc_e2e.run([o0, "prefill"] + paths + ["-o", work.path("prefill_O0_%d" % n)])
        ck.bits_equal("prefill T=%d: -O0 (whole cache) = -O2 (keys up to pos)" % len(prompt),
                      mc_e2e.load_npy(os.path.join(work.path("prefill_O0_%d" % n), "logits.npy")),
                      run("prefill", {"tokens": prompt}, "prefill_O2_%d" % n)["logits"])

    # 16-bit weights: the decoding path against torch on rounded weights (in
    # the unsanitized build; test_gpt2 and the unit tests cover the 16-bit
    # code under the sanitizers)
    for wdt, tdt in () if mc_e2e.SANITIZE else (("f16", torch.float16),
                                                ("bf16", torch.bfloat16)):
        half = mc_e2e.compile_model(mc_e2e.model_path("gpt2_generate.model"),
                                    work.path("gen_" + wdt), defines=defines,
                                    weights=weights, extra=["--weight-dtype", wdt])
        rounded = {k: v.to(tdt).float() if v.dim() == 2 and k != "wpe.weight" else v
                   for k, v in w.items()}
        prompt = prompts[2]
        paths = ["tokens=%s" % mc_e2e.save_npy(work.next_input_path("tokens"), prompt)]
        mc_e2e.run([half, "prefill"] + paths + ["-o", work.path("prefill_" + wdt)])
        got = mc_e2e.load_npy(os.path.join(work.path("prefill_" + wdt), "logits.npy"))
        with torch.no_grad():
            want = test_gpt2.reference_logits(torch, rounded, torch.tensor(prompt).long(),
                                              **CONFIG)
        ck.close("--weight-dtype %s: prefill T=%d == torch on rounded weights"
                 % (wdt, len(prompt)), got, mc_e2e.to_numpy(want), RTOL, ATOL)

    # greedy: exactly torch's argmax tokens, up to max_new or a full context
    for n, prompt in enumerate(prompts):
        out = run("generate", {"prompt": prompt}, "greedy%d" % n)
        seq = list(prompt)
        room = min(MAX_NEW, CONFIG["n_ctx"] - len(prompt))
        for _ in range(room):
            seq.append(int(ref_logits(seq)[-1].argmax()))
        want = seq[len(prompt):]
        steps = int(out["n_tokens"])
        got = [int(t) for t in out["tokens"][:steps]]
        ck.check("greedy T=%d: %d tokens as torch" % (len(prompt), room),
                 steps == room and got == want, "got %s want %s" % (got, want))
        ck.check("greedy T=%d: zeros after the last token" % len(prompt),
                 not out["tokens"][steps:].any())

    # stop token: generation ends right after it
    prompt = prompts[1]
    greedy = run("generate", {"prompt": prompt}, "again")["tokens"]
    stop = np.int32(greedy[3])
    first = int(np.argmax(greedy == stop))
    out = run("generate", {"prompt": prompt, "stop": stop}, "stop")
    ck.check("stop=%d: ends after its first occurrence (step %d)" % (stop, first + 1),
             int(out["n_tokens"]) == first + 1 and
             list(out["tokens"][:first + 1]) == list(greedy[:first + 1]),
             "n_tokens %d" % int(out["n_tokens"]))

    # sampling
    base = {"prompt": prompt, "temperature": np.float32(0.9), "top_k": np.int32(5),
            "seed": np.int64(1234)}
    a = run("generate", base, "sample_a")["tokens"]
    b = run("generate", base, "sample_b")["tokens"]
    mc_e2e.check_threads(ck, "generate, sampling", gen, base, work, entry="generate")
    mc_e2e.check_threads(ck, "prefill T=%d" % len(prompts[2]), gen,
                         {"tokens": prompts[2]}, work, entry="prefill")
    ck.check("same seed, same tokens", np.array_equal(a, b), "%s" % a)
    others = [run("generate", dict(base, seed=np.int64(s)), "seed%d" % s)["tokens"]
              for s in (1, 2, 3)]
    ck.check("other seeds give other tokens", any(not np.array_equal(a, o) for o in others))
    seq = list(prompt)
    inside = True
    for t in a:
        top = set(int(i) for i in ref_logits(seq)[-1].topk(5).indices)
        inside &= int(t) in top
        seq.append(int(t))
    ck.check("every sampled token is in torch's top 5 for its prefix", inside, "%s" % a)
    k1 = run("generate", dict(base, top_k=np.int32(1)), "topk1")["tokens"]
    ck.check("top_k=1 is greedy", np.array_equal(k1, greedy), "%s vs %s" % (k1, greedy))
    p0 = run("generate", dict(base, top_k=np.int32(0), top_p=np.float32(1e-6)),
             "topp0")["tokens"]
    ck.check("top_p=1e-6 is greedy", np.array_equal(p0, greedy), "%s vs %s" % (p0, greedy))

    # the shipped demo model (3 layers of 128, 40 tokens): in the unsanitized
    # build only, where it takes seconds instead of minutes
    if not mc_e2e.SANITIZE:
        demo_model(ck, work, torch)


def read_safetensors(torch, path):
    """The F32 tensors of a safetensors file, as torch tensors."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(e["shape"]).copy())
    return out


def demo_model(ck, work, torch):
    config = {"n_layer": 3, "n_head": 4, "n_embd": 128, "n_vocab": 256, "n_ctx": 128}
    weights = os.path.join(os.environ.get("MC_SOURCE_DIR", "."), "models", "demo",
                           "gpt2_bytes.safetensors")
    w = read_safetensors(torch, weights)
    prog = mc_e2e.compile_model(mc_e2e.model_path("gpt2_generate.model"), work.path("demo"),
                                defines=dict(config, max_new=40), weights=weights)
    prompt = np.frombuffer(b"This program is free software; you can", dtype=np.uint8)
    prompt = prompt.astype(np.int32)
    path = mc_e2e.save_npy(work.next_input_path("prompt"), prompt)
    mc_e2e.run([prog, "generate", "prompt=" + path, "-o", work.path("demo_out")])
    got = mc_e2e.load_npy(work.path("demo_out", "tokens.npy"))
    seq = [int(t) for t in prompt]
    with torch.no_grad():
        for _ in range(40):
            seq.append(int(test_gpt2.reference_logits(torch, w, torch.tensor(seq).long(),
                                                      **config)[-1].argmax()))
    want = seq[len(prompt):]
    ck.check("demo GPT-2: greedy continuation equals torch's",
             [int(t) for t in got] == want,
             repr(bytes(int(t) for t in got).decode(errors="replace")))


if __name__ == "__main__":
    mc_e2e.main("test_gpt2_generate", body)
