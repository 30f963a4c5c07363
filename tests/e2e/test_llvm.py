"""The LLVM backend (codegen/llvm_*.c) against the C backend, bit for bit.

Each model is compiled three ways and run on the same inputs: the C backend's
program (the reference, at the same -O level: its outputs are checked
against PyTorch by the family's own test), the LLVM backend's program (--emit exe --backend llvm, at
-O0 and -O2, the large families at -O2 only; the -O2 one also on 1, 2 and
3 threads; under the sanitizers -O2 only and only the elementwise, MLP and
data-movement models), and modelc run (LLVM's JIT, with no C compiler on
PATH). Every output must have the same bits: both backends fuse the same
ops into the same kernels, compute each IR op as one IEEE operation (no
contraction, no fast-math) and call the same runtime and the same vmath
functions (linked into the LLVM module as bitcode).

Where the two may differ: only where the C backend's file is built by
someone else with flags that change IEEE arithmetic (-ffp-contract=fast,
GCC's default outside ISO C modes, fuses a*b+c into one rounding;
-ffast-math reassociates) or against another libm (the few functions that
are libm's, such as expf in logsumexp, come from the libm each program
links; the JIT's, from modelc's process). modelc's own builds use
-std=c11 -ffp-contract=off -fno-fast-math, so this test requires the same
bits everywhere.

Also: --emit llvm writes IR that llvm-as-14 and opt-14 -verify accept, with
kernels named after their model-file lines; --emit obj links with the C
backend's header and runtime into a program of one's own; an object for
another target; a CPU LLVM does not know is a clean error; --check-plan
(each call checks its memory plan, the arena filled with NaNs first) gives
the same tokens on both backends for GPT-2 generation. Models: activations (elementwise, fused), a
broadcasting model with integers, bools and an optional input, the MLP
(GEMMs with epilogues, f32 and f16 weights), data movement (transpose,
slice, concat, gather with its range check, iota) and tied embeddings
(gathered from a weight kept transposed, f32 and f16), the tiny GPT-2 and
the Transformer encoder with a padding mask (layer norms' fused reductions,
attention as one kernel per layer), scans (the LSTM/GRU model, the BiLSTM-CRF's decoding
and negative log-likelihood, the stacked LSTM/GRU over padded sequences),
the decoding ops (GPT-2 generation with its KV cache, greedy and sampled;
seq2seq greedy and beam search) and the losses (cross-entropy, skip-gram
with negative sampling, RaSGAN, WGAN, spectral normalization): every
shipped model family.
"""
import os
import re
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402
import test_activations  # noqa: E402

LLVM_BIN = "/usr/lib/llvm-14/bin"

# Broadcasting on two axes, an optional input, integers, bools and casts.
BROADCAST_MODEL = """\
input x: f32[B, N]
input b: f32[N]
input k: i32[B, 1]
input m: bool[B, N] = false
h = x * 2 + b
output y: f32[B, N] = where(m, 0.0, maximum(h, 0.0))
output z: f32[B, N] = h - x / 3
output q: i32[B, N] = k * 7 + i32(h) % 5 - k % 3
output f: bool[B, N] = (h > 0.5) and not m
"""


# Data movement: a transpose, a slice with a symbolic bound, a concat, a
# gather (indices checked at run time), an iota; argmax and argmin.
MOVEMENT_MODEL = """\
input x: f32[B, N]
input idx: i32[K]
output t: f32[N, B] = transpose(x, 0, 1)
output s: f32[B, N - 1] = x[:, 1:]
output c: f32[B, 2 * N] = concat([x, x * 2.0], axis=1)
output g: f32[K, N] = x[idx]
output r: f32[B, N] = x + f32(arange(N))
output am = argmax(x, axis=1)
output an = argmin(x, axis=0)
"""

# Tied embeddings, as GPT-2's wte: gathered from and multiplied by, so kept
# transposed for the GEMM (and in 16 bits with --weight-dtype f16).
TIED_MODEL = """\
const V = 11
const D = 6
param wte: f32[V, D] from "wte.weight"
input tokens: i32[T]
h = wte[tokens] * 2.0
output logits: f32[T, V] = h @ wte.T
"""


# A weight's transpose read by two matmuls (not a view at -O0: a copy).
SHARED_T_MODEL = """\
param w: f32[11, 6] from "w"
input x: f32[B, 6]
wt = w.T
output y: f32[B, 11] = x @ wt + (x * 2.0) @ wt
"""


def run_jit(model, inputs, outdir, work, extra=(), env=None, weights=None):
    argv = [mc_e2e.modelc(), "run", model] + list(extra)
    if weights:
        argv += ["--weights", weights]
    for name, value in inputs.items():
        argv.append("%s=%s" % (name, mc_e2e.save_npy(work.next_input_path(name), value)))
    argv += ["-o", outdir]
    res = mc_e2e.run(argv, env=env)
    outs = {}
    for f in sorted(os.listdir(outdir)):
        if f.endswith(".npy"):
            outs[f[:-4]] = mc_e2e.load_npy(os.path.join(outdir, f))
    return res, outs


def same_outputs(ck, what, got, want, whose="the C backend's"):
    ck.check("%s: outputs %s" % (what, ", ".join(sorted(want))), sorted(got) == sorted(want),
             "got %s" % ", ".join(sorted(got)))
    for name in sorted(want):
        if name in got:
            ck.bits_equal("%s: %s = %s" % (what, name, whose), got[name], want[name])


def three_ways(ck, work, label, model, inputs, extra=(), weights=None, defines=None,
               levels=(0, 2), same_levels=False):
    """The LLVM program at -O0 and -O2 against the C program at the same
    level (-O0 runs no passes: no fusion), the JIT against -O2's: the same
    bits; with same_levels, the C programs' outputs at each level too.
    Returns the C program's -O2 outputs."""
    # under the sanitizers (modelc itself is what they check here: the LLVM
    # backend's code is not instrumented) -O2 only
    first = None
    for opt in (2,) if mc_e2e.SANITIZE else levels:
        c_prog = mc_e2e.compile_model(model, work.path(label, "c-O%d" % opt), opt=opt,
                                      extra=extra, defines=defines)
        _, want = mc_e2e.run_program(c_prog, inputs, work.path(label, "c-O%d-out" % opt), work,
                                     weights=weights)
        if same_levels and first is not None:
            same_outputs(ck, "%s C -O%d" % (label, opt), want, first[1],
                         whose="-O%d's" % first[0])
        first = first or (opt, want)
        prog = mc_e2e.compile_model(model, work.path(label, "llvm-O%d" % opt), opt=opt,
                                    extra=list(extra) + ["--backend", "llvm"],
                                    defines=defines)
        _, got = mc_e2e.run_program(prog, inputs, work.path(label, "llvm-O%d-out" % opt), work,
                                    weights=weights)
        same_outputs(ck, "%s llvm -O%d" % (label, opt), got, want)
        ck.check("%s -O%d: the C program's outputs" % (label, opt), bool(want))
        if opt == 2:  # its loops cut across 1, 2 and 3 threads
            mc_e2e.check_threads(ck, "%s llvm -O2" % label, prog, inputs, work,
                                 weights=weights, base=got)
    # modelc run needs no C compiler: PATH holds none
    dargs = [a for k, v in (defines or {}).items() for a in ("-D", "%s=%s" % (k, v))]
    _, got = run_jit(model, inputs, work.path(label, "jit-out"), work, list(extra) + dargs,
                     env={"PATH": "/nonexistent"}, weights=weights)
    same_outputs(ck, "%s modelc run (no cc on PATH)" % label, got, want)
    return want


def llvm_tools_accept(ck, what, ll, tools=("llvm-as", "opt")):
    """LLVM 14's llvm-as (and opt -verify) read the .ll file ll."""
    for tool in tools:
        exe = os.path.join(LLVM_BIN, tool)
        if not os.path.exists(exe):
            ck.check("%s found" % tool, False, exe)
            continue
        argv = [exe, ll, "-o", os.devnull] + (["-verify"] if tool == "opt" else [])
        res = mc_e2e.run(argv, check=False)
        ck.check("%s: %s-14 %saccepts it" % (what, tool, "-verify " if tool == "opt" else ""),
                 res.returncode == 0, res.stderr.strip()[:300])


def emit_llvm(ck, work, model):
    ll = work.path("ir", "activations.ll")
    mc_e2e.compile_model(model, ll, emit="llvm")
    text = open(ll).read()
    llvm_tools_accept(ck, "--emit llvm", ll)
    ck.check("--emit llvm: kernels named after their lines (define internal ... "
             "@softplus_L16_...)", re.search(r"^define internal .*@softplus_L\d+_", text, re.M))
    ck.check("--emit llvm: the entry points of the header",
             "define i32 @activations_run(" in text and "@activations_info =" in text and
             "define i8* @activations_open(" in text)
    ck.check("--emit llvm: no fast-math flags", " fast " not in text and "reassoc" not in text
             and "contract" not in text)


def emit_obj_with_header(ck, work, model, x, want):
    """A program of one's own: the C backend's header and runtime sources,
    the LLVM backend's object."""
    src = work.path("obj", "src")
    mc_e2e.compile_model(model, src, emit="c")
    obj = work.path("obj", "activations.o")
    mc_e2e.compile_model(model, obj, emit="obj")
    main_c = work.path("obj", "main.c")
    with open(main_c, "w") as f:
        f.write("""#include <stdio.h>
#include <stdlib.h>
#include "activations.h"
int main(int argc, char **argv) {
  (void)argc;
  long n = atol(argv[1]);
  float *x = malloc(sizeof(float) * n), *outs[14];
  FILE *in = fopen(argv[2], "rb");
  if (fread(x, sizeof(float), n, in) != (size_t)n) return 2;
  fclose(in);
  for (int i = 0; i < 14; i++) outs[i] = malloc(sizeof(float) * n);
  McError err;
  activations_model *m = activations_open(NULL, &err);
  if (!m || activations_run(m, n, x, outs[0], outs[1], outs[2], outs[3], outs[4],
                            outs[5], outs[6], outs[7], outs[8], outs[9], outs[10],
                            outs[11], outs[12], outs[13], &err) != MC_OK) {
    fprintf(stderr, "%s\\n", err.msg);
    return 1;
  }
  FILE *out = fopen(argv[3], "wb");
  for (int i = 0; i < 14; i++) fwrite(outs[i], sizeof(float), n, out);
  fclose(out);
  activations_close(m);
  return 0;
}
""")
    header = open(os.path.join(src, "activations.h")).read()
    run_line = [l for l in header.splitlines() if l.startswith("int activations_run(")]
    outs_order = []
    for line in header.splitlines():
        if line.startswith(" *   output "):
            outs_order.append(line.split()[2].rstrip(":"))
    ck.check("header: activations_run and 14 outputs", len(run_line) == 1 and len(outs_order) == 14,
             "%s" % outs_order)
    sources = [os.path.join(src, f) for f in sorted(os.listdir(src))
               if f.startswith("mc_") and f.endswith(".c") and
               f not in ("mc_bpe.c", "mc_bpe_load.c", "mc_unicode_tables.c", "mc_main.c",
                         "mc_train.c")]  # the drivers: this program has its own main
    prog = work.path("obj", "mine")
    cc = os.environ.get("CC", "cc")
    res = mc_e2e.run([cc, "-std=c11", "-O2", "-ffp-contract=off", "-pthread", "-I", src, main_c,
                      obj] + sources + ["-lm", "-o", prog], check=False)
    if not ck.check("--emit obj links with the C backend's header and runtime",
                    res.returncode == 0, res.stderr[:500]):
        return
    xin = work.path("obj", "x.bin")
    x.astype(np.float32).tofile(xin)
    out = work.path("obj", "y.bin")
    res = mc_e2e.run([prog, str(x.size), xin, out], check=False)
    if not ck.check("the program of one's own runs", res.returncode == 0, res.stderr[:300]):
        return
    got = np.fromfile(out, dtype=np.float32).reshape(14, x.size)
    for i, name in enumerate(outs_order):
        ck.bits_equal("--emit obj in a program of one's own: %s" % name, got[i], want[name])


def header_symbols(ck, work):
    """--emit obj of a model with several entry points defines every
    function and table its C header declares."""
    model = mc_e2e.model_path("bilstm_crf.model")
    src, obj = work.path("crf-h"), work.path("crf-h.o")
    mc_e2e.compile_model(model, src, emit="c")
    mc_e2e.compile_model(model, obj, emit="obj")
    header = open(os.path.join(src, "bilstm_crf.h")).read()
    declared = set(re.findall(r"\b(bilstm_crf_\w+)\s*(?:\(|\[|;)", header))
    declared -= set(re.findall(r"typedef struct (\w+)", header))
    res = mc_e2e.run(["nm", "--defined-only", obj])
    defined = {line.split()[-1] for line in res.stdout.splitlines() if line.strip()}
    missing = sorted(declared - defined)
    ck.check("--emit obj defines the %d names bilstm_crf.h declares" % len(declared),
             len(declared) >= 8 and not missing, "missing %s" % missing)


def other_target(ck, work, model):
    obj = work.path("obj", "aarch64.o")
    res = mc_e2e.run(mc_e2e.compile_args(model, obj, emit="obj",
                                         extra=["--target", "aarch64-linux-gnu"]), check=False)
    ok = ck.check("--emit obj --target aarch64-linux-gnu", res.returncode == 0, res.stderr[:300])
    if ok:
        with open(obj, "rb") as f:
            head = f.read(20)
        machine = struct.unpack("<H", head[18:20])[0]
        ck.check("the object is ELF for AArch64 (e_machine 183)",
                 head[:4] == b"\x7fELF" and machine == 183, "e_machine %d" % machine)
    res = mc_e2e.run(mc_e2e.compile_args(model, work.path("obj", "bad.o"), emit="obj",
                                         extra=["--target", "nonsense-triple-x"]), check=False)
    ck.command_failed_cleanly("--target nonsense: a clean error", res)
    ck.check("--target nonsense: nothing written", not os.path.exists(work.path("obj", "bad.o")))


def bad_cpu(ck, work):
    out = work.path("bad-cpu")
    res = mc_e2e.run(mc_e2e.compile_args(mc_e2e.model_path("mlp.model"), out,
                                         extra=["--backend", "llvm", "--cpu", "no-such-cpu"]),
                     check=False)
    ck.command_failed_cleanly("--backend llvm --cpu no-such-cpu: a clean error", res)
    ck.check("the error names the CPU", "no-such-cpu" in res.stderr, res.stderr.strip()[:300])
    ck.check("nothing written", not os.path.exists(out))
    for what, extra in (("--backend llvm --emit c", ["--backend", "llvm", "--emit", "c"]),
                        ("--target for a program", ["--target", "aarch64-linux-gnu"])):
        res = mc_e2e.run(mc_e2e.compile_args(mc_e2e.model_path("mlp.model"), out, emit=None,
                                             extra=extra), check=False)
        ck.command_failed_cleanly("%s: a clean error" % what, res)
        ck.check("%s: nothing written" % what, not os.path.exists(out))


def movement(ck, work):
    mmodel = work.path("movement.model")
    with open(mmodel, "w") as f:
        f.write(MOVEMENT_MODEL)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    three_ways(ck, work, "movement", mmodel, {"x": x, "idx": np.array([2, 0, 1, 2], np.int32)})
    # argmax/argmin: the first index of the best, NaN wins, ties go first
    odd = np.array([[1, np.nan, 3, np.nan, 0], [2, 2, -np.inf, 1, 2],
                    [-np.inf] * 5], np.float32)
    got = three_ways(ck, work, "movement nan", mmodel,
                     {"x": odd, "idx": np.array([0], np.int32)})
    ck.check("argmax: first NaN, first of a tie, first of -inf",
             got.get("am") is not None and list(got["am"]) == [1, 0, 0], str(got.get("am")))
    ck.check("argmin: NaN wins along the column, then the first minimum",
             got.get("an") is not None and list(got["an"]) == [2, 0, 1, 0, 2],
             str(got.get("an")))
    prog = work.path("movement", "llvm-O2")
    res, _ = mc_e2e.run_program(prog, {"x": x, "idx": np.array([1, 3], np.int32)},
                                work.path("movement-bad"), work, check=False)
    ck.command_failed_cleanly("gather of index 3 from 3 rows: a clean error", res)
    ck.check("the message gives the index, the range and the line",
             "index 3 out of range [0, 3) at movement.model:6:" in res.stderr,
             res.stderr.strip())
    ck.check("no output written", not os.path.exists(work.path("movement-bad", "t.npy")))
    tmodel = work.path("tied.model")
    with open(tmodel, "w") as f:
        f.write(TIED_MODEL)
    weights = work.path("tied.safetensors")
    mc_e2e.write_safetensors(weights, {"wte.weight": rng.standard_normal((11, 6)).astype(
        np.float32)})
    tokens = np.array([3, 10, 0, 3, 7], np.int32)
    three_ways(ck, work, "tied", tmodel, {"tokens": tokens}, weights=weights)
    three_ways(ck, work, "tied f16", tmodel, {"tokens": tokens},
               extra=["--weight-dtype", "f16"], weights=weights, same_levels=True)
    # x @ W.T twice: at -O0 the permute copies W.T (widening 16 bits) for
    # both matmuls; at -O2 they read W's panels. The same matrices rounded,
    # the same bits.
    smodel = work.path("shared_t.model")
    with open(smodel, "w") as f:
        f.write(SHARED_T_MODEL)
    weights = work.path("shared_t.safetensors")
    w = rng.standard_normal((11, 6)).astype(np.float32)
    mc_e2e.write_safetensors(weights, {"w": w})
    xs = rng.standard_normal((5, 6)).astype(np.float32)
    for wdt in ("f16", "bf16"):
        three_ways(ck, work, "shared W.T " + wdt, smodel, {"x": xs},
                   extra=["--weight-dtype", wdt], weights=weights, same_levels=True)
    # W.T also an output: W stays f32 (an output is never rounded)
    omodel = work.path("t_out.model")
    with open(omodel, "w") as f:
        f.write(SHARED_T_MODEL.replace("output y", "output t: f32[6, 11] = wt\noutput y"))
    got = three_ways(ck, work, "W.T out f16", omodel, {"x": xs},
                     extra=["--weight-dtype", "f16"], weights=weights, same_levels=True)
    if "t" in got:
        ck.bits_equal("W.T out f16: t = W.T in f32", got["t"], w.T)


def transformers(ck, work, torch):
    """The tiny GPT-2 of test_gpt2 (layer norm, causal attention, GELU, tied
    embeddings) and the Transformer encoder of test_transformer_encoder with
    a padding mask; attention is one kernel per layer, as in the C backend."""
    import test_gpt2
    import test_transformer_encoder as tte
    w = test_gpt2.random_weights(torch, **test_gpt2.CONFIG)
    weights = work.path("gpt2.safetensors")
    mc_e2e.write_safetensors(weights, test_gpt2.checkpoint_gpt2model(torch, w,
                                                                     **test_gpt2.CONFIG))
    ll = mc_e2e.compile_model(mc_e2e.model_path("gpt2.model"), work.path("ir", "gpt2.ll"),
                              emit="llvm", weights=weights, defines=test_gpt2.CONFIG)
    kernels = re.findall(r"^define internal .*@(\w+_L\d+_attention(?:_\d+)?)\(",
                         open(ll).read(), re.M)
    ck.check("gpt2 --emit llvm: one attention kernel per layer, named after its line",
             len(kernels) == test_gpt2.CONFIG["n_layer"], " ".join(kernels))
    fused = re.findall(r"^define internal .*@(layer_norm_L\d+_reduce_mean_L\d+(?:_\d+)?)\(",
                       open(ll).read(), re.M)
    ck.check("gpt2 --emit llvm: each layer norm's variance and its epilogue are one kernel",
             len(fused) == 2 * test_gpt2.CONFIG["n_layer"] + 1, " ".join(fused))
    tokens = np.array([5, 17, 99, 0, 42, 42, 7, 63, 1, 2, 3], np.int32)
    want = three_ways(ck, work, "gpt2", mc_e2e.model_path("gpt2.model"), {"tokens": tokens},
                      weights=weights, defines=test_gpt2.CONFIG, levels=(2,))
    with torch.no_grad():
        ref = test_gpt2.reference_logits(torch, w, torch.from_numpy(tokens.astype(np.int64)),
                                         **test_gpt2.CONFIG)
    if "logits" in want:
        ck.close("gpt2 logits vs torch", want["logits"], mc_e2e.to_numpy(ref),
                 test_gpt2.RTOL, test_gpt2.ATOL)
    enc = tte.torch_encoder(torch, 64, 4, 128, 2, seed=0)
    weights = work.path("encoder.safetensors")
    mc_e2e.write_safetensors(weights, enc.state_dict())
    x = torch.randn(2, 7, 64, generator=torch.Generator().manual_seed(3))
    pad = tte.padding_mask(2, 7)
    with torch.no_grad():
        ref = mc_e2e.to_numpy(enc(x, src_key_padding_mask=torch.from_numpy(pad)))
    want = three_ways(ck, work, "encoder", mc_e2e.model_path("transformer_encoder.model"),
                      {"x": mc_e2e.to_numpy(x), "pad": pad}, weights=weights, levels=(2,))
    if "y" in want:
        ck.close("encoder y vs torch", want["y"], ref, tte.RTOL, tte.ATOL)


def recurrent(ck, work, torch):
    """Scans: the bidirectional LSTM and the GRU of models/rnn.model, and
    the BiLSTM-CRF's Viterbi decoding and negative log-likelihood."""
    import test_bilstm_crf as tbc
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(8, 16, batch_first=True, bidirectional=True).eval()
    gru = torch.nn.GRU(8, 16, batch_first=True).eval()
    state = {}
    for k, v in lstm.state_dict().items():
        state["lstm_reverse." + k[:-len("_reverse")] if k.endswith("_reverse")
              else "lstm." + k] = v
    for k, v in gru.state_dict().items():
        state["gru." + k] = v
    weights = work.path("rnn.safetensors")
    mc_e2e.write_safetensors(weights, state)
    x = torch.randn(3, 5, 8)
    want = three_ways(ck, work, "rnn", mc_e2e.model_path("rnn.model"),
                      {"x": mc_e2e.to_numpy(x)}, weights=weights)
    with torch.no_grad():
        out2, _ = lstm(x)
    if "out" in want:
        ck.close("rnn out vs torch", want["out"], mc_e2e.to_numpy(out2[..., :16]), 1e-5, 1e-5)
    tiny = {"n_vocab": 11, "n_embd": 4, "n_hidden": 5, "n_tags": 3}
    weights = work.path("crf.safetensors")
    mc_e2e.write_safetensors(weights, tbc.random_state(torch, (11, 4, 5, 3), 2.0, 1.5))
    tokens, lengths, tags = tbc.random_batch(np.random.default_rng(3), 6, 4, 11, 3)
    model = mc_e2e.model_path("bilstm_crf.model")
    want = three_ways(ck, work, "crf decode", model, {"tokens": tokens, "lengths": lengths},
                      extra=["--entry", "decode"], weights=weights, defines=tiny)
    # the whole file in the JIT: the entry named first, as its program takes it
    dargs = [a for k, v in tiny.items() for a in ("-D", "%s=%s" % (k, v))]
    _, got = run_jit(model, {"tokens": tokens, "lengths": lengths},
                     work.path("crf-jit-entries"), work, dargs + ["decode"], weights=weights)
    same_outputs(ck, "crf: modelc run MODEL decode (all entries compiled)", got, want)
    three_ways(ck, work, "crf nll", model, {"tokens": tokens, "lengths": lengths,
                                            "tags": tags},
               extra=["--entry", "nll"], weights=weights, defines=tiny)
    # a carry updated in place (where(m, h2, h) into h's buffer): its kernel
    # reads h through the result's pointer, so no call passes the result's
    # pointer as an operand too (LLVM's vectorizer would see two pointers
    # that overlap exactly and run the scalar loop)
    ll = work.path("crf decode", "decode.ll")
    mc_e2e.compile_model(model, ll, emit="llvm", defines=tiny, extra=["--entry", "decode"])
    calls = re.findall(r"call fastcc void @(lstm_step_\w+)\(([^)]*)\)", open(ll).read())
    twice = [name for name, args in calls
             if args.split(", ")[-1] in args.split(", ")[:-1]]
    ck.check("crf decode .ll: %d step kernels, none given its result's pointer twice"
             % len(calls), bool(calls) and not twice, ", ".join(twice))
    llvm_tools_accept(ck, "crf decode .ll (scans side by side that can fail)", ll)
    # a token out of range: the two directions gather their rows a step at
    # a time, side by side (passes/sink_gathers.c); the run fails cleanly
    bad = tokens.copy()
    bad[1, 0] = tiny["n_vocab"]
    for backend in ("c", "llvm"):
        for threads in (1, 2):
            label = "crf decode (%s, %d threads), token %d" % (backend, threads, bad[1, 0])
            outdir = work.path("crf-bad-%s-%d" % (backend, threads))
            res, _ = mc_e2e.run_program(work.path("crf decode", "%s-O2" % backend),
                                        {"tokens": bad, "lengths": lengths}, outdir, work,
                                        weights=weights, threads=threads, check=False)
            ck.command_failed_cleanly(label + ": a clean error", res)
            ck.check(label + ": the index, its range and the gather's line",
                     "index 11 out of range [0, 11) at bilstm_crf.model:" in res.stderr,
                     res.stderr.strip()[:300])
            ck.check(label + ": no output written", not os.path.exists(outdir))


def losses_and_stack(ck, work, torch):
    """models/losses.model's entries (cross-entropy with label smoothing,
    skip-gram with negative sampling, RaSGAN, WGAN, spectral
    normalization's power iteration) and the stacked bidirectional LSTM/GRU
    of rnn_stack.model over padded sequences."""
    rng = np.random.default_rng(9)
    model = mc_e2e.model_path("losses.model")
    three_ways(ck, work, "cross_entropy", model,
               {"logits": (3 * rng.standard_normal((6, 10))).astype(np.float32),
                "targets": np.array([1, 9, 0, -100, 4, 4], np.int32),
                "label_smoothing": np.float32(0.1)}, extra=["--entry", "cross_entropy"])
    d = {"d_real": rng.standard_normal(7).astype(np.float32),
         "d_fake": rng.standard_normal(7).astype(np.float32)}
    for entry in ("rasgan", "wgan"):
        three_ways(ck, work, entry, model, d, extra=["--entry", entry])
    emb = work.path("skipgram.safetensors")
    mc_e2e.write_safetensors(emb, {
        "in_embed.weight": rng.standard_normal((50, 16)).astype(np.float32) * 0.3,
        "out_embed.weight": rng.standard_normal((50, 16)).astype(np.float32) * 0.3})
    three_ways(ck, work, "skipgram_ns", model,
               {"center": rng.integers(0, 50, 5).astype(np.int32),
                "context": rng.integers(0, 50, 5).astype(np.int32),
                "negatives": rng.integers(0, 50, (5, 4)).astype(np.int32)},
               extra=["--entry", "skipgram_ns"], weights=emb)
    sn = work.path("sn.safetensors")
    mc_e2e.write_safetensors(sn, {"weight_orig": rng.standard_normal((16, 8)).astype(
        np.float32)})
    three_ways(ck, work, "spectral_norm", model,
               {"u": rng.standard_normal(16).astype(np.float32)},
               extra=["--entry", "spectral_norm"], weights=sn)
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, batch_first=True)
    lstm = torch.nn.LSTM(8, 16, **kw).eval()
    gru = torch.nn.GRU(8, 16, **kw).eval()
    state = {"lstm." + k: v for k, v in lstm.state_dict().items()}
    state.update({"gru." + k: v for k, v in gru.state_dict().items()})
    weights = work.path("rnn_stack.safetensors")
    mc_e2e.write_safetensors(weights, state)
    lengths = np.array([9, 1, 4, 7], np.int32)
    x = rng.standard_normal((4, 9, 8)).astype(np.float32)
    x[np.arange(9)[None, :] >= lengths[:, None]] = 0
    three_ways(ck, work, "rnn_stack", mc_e2e.model_path("rnn_stack.model"),
               {"x": x, "lengths": lengths}, weights=weights, levels=(2,))

# where with a scalar condition runs the work of the side it picks only: the
# unpicked side's index out of range is not an error
LAZY_MODEL = """\
input x: f32[8]
input t: f32[]
input i: i32[]
v, order = topk(x, 8)
output y = where(t > 0, order[i], i32(argmax(x, axis=0)))
"""


def lazy_select(ck, work):
    """Both backends skip the unpicked side of a lazy select (ir/lazy.c)."""
    model = work.path("lazy.model")
    with open(model, "w") as f:
        f.write(LAZY_MODEL)
    x = np.array([1, 7, 3, 9, 2, 9, 0, 5], np.float32)
    for backend in ("c", "llvm"):
        prog = mc_e2e.compile_model(model, work.path("lazy", backend),
                                    extra=["--backend", backend])
        for t, i, want in ((0.0, 100, 3), (1.0, 2, 1), (1.0, 100, None)):
            inputs = {"x": x, "t": np.float32(t), "i": np.int32(i)}
            out = work.path("lazy", "%s-%g-%d" % (backend, t, i))
            res, got = mc_e2e.run_program(prog, inputs, out, work, check=False)
            what = "lazy select (%s backend), t = %g, i = %d" % (backend, t, i)
            if want is None:
                ck.command_failed_cleanly(what + ": the picked side's error", res)
            else:
                ck.check(what, res.returncode == 0 and int(got["y"]) == want,
                         res.stderr.strip() or "y = %s" % got.get("y"))


def decoding(ck, work, torch):
    """The decoding ops: GPT-2 generation with its KV cache (greedy, and
    sampling with temperature and top-k), seq2seq greedy and beam search."""
    import test_gpt2
    import test_seq2seq as ts
    w = test_gpt2.random_weights(torch, **test_gpt2.CONFIG)
    weights = work.path("gen.safetensors")
    mc_e2e.write_safetensors(weights, test_gpt2.checkpoint_lmhead(torch, w,
                                                                  **test_gpt2.CONFIG))
    defines = dict(test_gpt2.CONFIG, max_new=8)
    model = mc_e2e.model_path("gpt2_generate.model")
    prompt = np.array([3, 14, 15, 92, 65], np.int32)
    want = three_ways(ck, work, "generate greedy", model, {"prompt": prompt},
                      extra=["--entry", "generate"], weights=weights, defines=defines,
                      levels=(2,))
    # --check-plan: every call checks its plan (the KV cache updated in
    # place, the scans' buffers) and fills the arena with NaNs first
    for backend in ("c", "llvm"):
        prog = mc_e2e.compile_model(model, work.path("checked", backend), opt=2,
                                    extra=["--entry", "generate", "--check-plan",
                                           "--backend", backend], defines=defines)
        _, got = mc_e2e.run_program(prog, {"prompt": prompt},
                                    work.path("checked", backend + "-out"), work,
                                    weights=weights)
        same_outputs(ck, "generate greedy --check-plan (%s backend)" % backend, got, want)
    ll = work.path("checked", "generate.ll")
    mc_e2e.compile_model(model, ll, emit="llvm", defines=defines,
                         extra=["--entry", "generate", "--check-plan"])
    with open(ll) as f:
        ck.check("--emit llvm --check-plan: the layouts call mc_plan_check",
                 "call void @mc_plan_check(" in f.read())
    three_ways(ck, work, "generate sampling", model,
               {"prompt": prompt, "temperature": np.float32(0.9), "top_k": np.int32(5),
                "seed": np.int64(1234)},
               extra=["--entry", "generate"], weights=weights, defines=defines, levels=(2,))
    rng = np.random.default_rng(2024)
    cfg = ts.random_config(rng, 3)
    torch.manual_seed(300)
    ref = ts.Reference(torch, cfg["n_src_vocab"], cfg["n_tgt_vocab"], cfg["n_embd"],
                       cfg["n_hidden"], 2.0, cfg["eos"])
    weights = work.path("s2s.safetensors")
    mc_e2e.write_safetensors(weights, ref.state_dict())
    src, lengths = ts.random_batch(rng, cfg["n_src_vocab"])
    model = mc_e2e.model_path("seq2seq.model")
    for entry in ("greedy", "beam_search"):
        three_ways(ck, work, "seq2seq " + entry, model, {"src": src, "lengths": lengths},
                   extra=["--entry", entry], weights=weights, defines=cfg, levels=(2,))


def mlp(ck, work, torch):
    """models/mlp.model: GEMMs with their bias and GELU epilogues, f32 (in the
    GEMM's panels) and f16 weights."""
    rng = np.random.default_rng(11)
    w = {"fc1.weight": rng.standard_normal((64, 16)).astype(np.float32) * 0.3,
         "fc1.bias": rng.standard_normal(64).astype(np.float32),
         "fc2.weight": rng.standard_normal((8, 64)).astype(np.float32) * 0.3,
         "fc2.bias": rng.standard_normal(8).astype(np.float32)}
    weights = work.path("mlp.safetensors")
    mc_e2e.write_safetensors(weights, w)
    x = rng.standard_normal((7, 16)).astype(np.float32)
    model = mc_e2e.model_path("mlp.model")
    want = three_ways(ck, work, "mlp", model, {"x": x}, weights=weights)
    three_ways(ck, work, "mlp f16", model, {"x": x}, extra=["--weight-dtype", "f16"],
               weights=weights, same_levels=True)
    F = torch.nn.functional
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    ref = F.linear(F.gelu(F.linear(t(x), t(w["fc1.weight"]), t(w["fc1.bias"]))),
                   t(w["fc2.weight"]), t(w["fc2.bias"]))
    if "y" in want:
        ck.close("mlp y vs torch", want["y"], mc_e2e.to_numpy(ref), 1e-5, 1e-5)


def body(ck, work):
    torch = mc_e2e.import_torch()
    x = test_activations.make_input()
    model = mc_e2e.model_path("activations.model")
    want = three_ways(ck, work, "activations", model, {"x": x})
    # and the family's reference, to state it here too
    refs = test_activations.torch_references(torch, x)
    for name in ("gelu_erf", "softplus", "mish"):
        if name in want:
            ck.close("activations %s vs torch" % name, want[name], mc_e2e.to_numpy(refs[name]),
                     test_activations.RTOL, test_activations.ATOL)

    bmodel = work.path("broadcast.model")
    with open(bmodel, "w") as f:
        f.write(BROADCAST_MODEL)
    rng = np.random.default_rng(7)
    inputs = {"x": (rng.standard_normal((5, 6)) * 3).astype(np.float32),
              "b": rng.standard_normal(6).astype(np.float32),
              "k": rng.integers(-50, 50, (5, 1)).astype(np.int32)}
    three_ways(ck, work, "broadcast", bmodel, inputs)
    inputs["m"] = rng.random((5, 6)) < 0.3
    three_ways(ck, work, "broadcast+mask", bmodel, inputs)
    # the runtime's checks hold in the LLVM program too
    prog = work.path("broadcast+mask", "llvm-O2")
    bad = dict(inputs, b=np.zeros(7, np.float32))
    res, _ = mc_e2e.run_program(prog, bad, work.path("bad-out"), work, check=False)
    ck.command_failed_cleanly("llvm program, b of 7 for N = 6: a clean error", res)
    ck.check("the message names both sides", "input 'b': dimension 0 is 7 but N = 6 from "
             "input 'x'" in res.stderr, res.stderr.strip())
    ck.check("no output written", not os.path.exists(work.path("bad-out", "y.npy")))

    mlp(ck, work, torch)
    lazy_select(ck, work)
    movement(ck, work)
    # under the sanitizers (CI time) the families above: modelc's LLVM path
    # is what they check, and the families below add kernels, not paths
    if not mc_e2e.SANITIZE:
        transformers(ck, work, torch)
        recurrent(ck, work, torch)
        decoding(ck, work, torch)
        losses_and_stack(ck, work, torch)
    emit_llvm(ck, work, model)
    emit_obj_with_header(ck, work, model, x, want)
    other_target(ck, work, model)
    header_symbols(ck, work)
    bad_cpu(ck, work)


if __name__ == "__main__":
    mc_e2e.main("test_llvm", body)
