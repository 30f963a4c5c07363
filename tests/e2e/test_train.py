"""Compiled training against PyTorch: training entries (minimize) built into
programs (`PROG train --weights INIT --data name=FILE.npy ... --steps N -o
OUT.safetensors`), run for 100 steps from the same initialization on the
same batches as a torch loop, every per-step loss within 1e-3 relative of
torch's (plus 1e-6 absolute: a WGAN loss crosses 0), and OUT loaded by torch's load_state_dict (strict) giving torch's
final weights.

- models/train_mlp.model: a two-layer perceptron, softmax cross-entropy,
  SGD with momentum and Adam; rows shuffled each epoch by the program's
  documented generator (--seed), reproduced here; the LLVM backend's
  program and `modelc run` (its JIT) must give the C backend's bits; SGD with clip_grad_norm_;
  checkpoints; bad arguments and
  data refused with a message and nothing written. Its training entry
  called from C with batches of 2, 8 and 3 rows: Adam's states kept in the
  entry's arena from call to call, also when the arena grows.
- models/train_skipgram.model: skip-gram with negative sampling on
  /usr/share/common-licenses/GPL-3 (negatives drawn by the sampler of
  models/losses.model), nearest neighbours of a few words printed; a run
  stopped by bad data at step 61 leaves step 50's checkpoint, torch's.
- models/train_bilstm_crf.model: the BiLSTM-CRF tagger's mean NLL (the
  CRF's forward algorithm through the BiLSTM's scans), Adam, on the demo's
  word segmentation (models/train/train_segmenter.py's pieces and tags),
  against that script's torch module (nn.LSTM on packed sequences); the
  trained program's own decode entry then tags a few pieces.
- models/train_gan.model: RSGAN and RaSGAN, the discriminator under
  spectral normalization (its power iteration's buffers updated by each
  forward, as torch's in training mode), and models/train_wgan_gp.model:
  WGAN-GP, on a mixture of 8 Gaussians (Tanh networks against torch); the
  modes covered are printed, after a longer run of the program alone with
  the relativistic GANs' networks at 64 hidden units and LeakyReLU(0.2),
  which cover all 8.
"""
import collections
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402
import test_losses  # noqa: E402 - the negative sampler

MASK64 = (1 << 64) - 1
RTOL_LOSS = 1e-3
ATOL_LOSS = 1e-6  # for losses that cross 0 (WGAN's): relative error means nothing there
STEPS = 100


def batches(rows, batch, steps, seed):
    """The program's data order (runtime/mc_train.c): batches of consecutive
    rows of the current order, a new epoch when fewer than `batch` remain;
    with a seed, each epoch first shuffles the order by Fisher-Yates with
    SplitMix64 draws (state += 0x9E3779B97F4A7C15, then the mix)."""
    stream = test_losses.splitmix64(seed) if seed is not None else None
    order = list(range(rows))
    pos = 0
    for _ in range(steps):
        if pos == 0 or pos + batch > rows:
            pos = 0
            for i in range(rows - 1, 0, -1) if stream else ():
                j = next(stream) % (i + 1)
                order[i], order[j] = order[j], order[i]
        yield np.array(order[pos:pos + batch])
        pos += batch


def train(prog, work, name, weights, data, steps=STEPS, extra=(), check=True, prefix=()):
    """Runs the training program (prog and prefix: `modelc run FILE.model
    ...` too); (Result, per-step losses {output: list}, OUT's tensors or
    None)."""
    out = work.path(name, "out.safetensors")
    argv = [prog] + list(prefix) + ["train", "--weights", weights, "--steps", steps]
    for key, value in data.items():
        path = value if isinstance(value, str) else mc_e2e.save_npy(
            work.next_input_path(key), value)
        argv += ["--data", "%s=%s" % (key, path)]
    argv += list(extra) + ["-o", out]
    res = mc_e2e.run(argv, check=check)
    losses = collections.defaultdict(list)
    for line in res.stdout.splitlines():
        words = line.split()
        for k in range(2, len(words), 2):
            losses[words[k]].append(float(words[k + 1]))
    tensors = mc_e2e.read_safetensors(out)[0] if os.path.exists(out) else None
    return res, losses, tensors


def check_losses(ck, name, got, want):
    got = np.array(got, dtype=np.float64)
    want = np.array(want, dtype=np.float64)
    if got.shape != want.shape:
        return ck.check(name, False, "%d losses, expected %d" % (got.size, want.size))
    diff = np.abs(got - want)
    rel = diff / np.maximum(np.abs(want), ATOL_LOSS / RTOL_LOSS)
    return ck.check(name, bool((diff <= RTOL_LOSS * np.abs(want) + ATOL_LOSS).all()),
                    "%d steps, max relative error %.3g (step %d; where |torch| >= %g), max "
                    "absolute %.3g, first %.6g vs torch %.6g, last %.6g vs %.6g" % (
                        got.size, rel.max(), int(rel.argmax()) + 1, ATOL_LOSS / RTOL_LOSS,
                        diff.max(), got[0], want[0], got[-1], want[-1]))


def check_state_dict(ck, torch, name, module, loaded, tensors, rtol, atol, steps=STEPS):
    """OUT through load_state_dict(strict=True) into `loaded` (a new module
    of module's architecture) equals the trained module's weights."""
    state = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    loaded.load_state_dict(state, strict=True)
    ck.check("%s: OUT loads with load_state_dict(strict=True)" % name, True,
             ", ".join(sorted(state)))
    want = module.state_dict()
    for k, v in loaded.state_dict().items():
        ck.close("%s: %s after %d steps = torch's" % (name, k, steps), v.numpy(),
                 want[k].numpy(), rtol, atol)


# ---- the MLP ----------------------------------------------------------------

N_IN, N_HIDDEN, N_OUT, B, ROWS, SEED = 8, 16, 4, 16, 100, 7


def mlp_module(torch):
    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(N_IN, N_HIDDEN)
            self.fc2 = torch.nn.Linear(N_HIDDEN, N_OUT)

        def forward(self, x):
            return self.fc2(torch.tanh(self.fc1(x)))
    return MLP()


def torch_mlp(torch, module, make_opt, x, t, max_norm):
    opt = make_opt(module.parameters())
    losses = []
    clipped = 0
    for rows in batches(ROWS, B, STEPS, SEED):
        loss = torch.nn.functional.cross_entropy(module(x[rows]), t[rows])
        opt.zero_grad()
        loss.backward()
        if max_norm:
            clipped += float(torch.nn.utils.clip_grad_norm_(module.parameters(),
                                                            max_norm)) > max_norm
        opt.step()
        losses.append(loss.item())
    if max_norm:
        print("  clip_grad_norm_(%g) clipped %d of %d steps" % (max_norm, clipped, STEPS))
    return losses


def check_mlp(ck, work, torch):
    init = mlp_module(torch)
    weights = work.path("mlp", "init.safetensors")
    mc_e2e.write_safetensors(weights, init.state_dict(), {"format": "pt"})
    x = torch.randn(ROWS, N_IN)
    t = torch.randint(0, N_OUT, (ROWS,))
    data = {"x": x.numpy(), "targets": t.numpy().astype(np.int64)}
    model = mc_e2e.model_path("train_mlp.model")
    runs = [("sgd_momentum", {"use_adam": 0, "lr": 0.05},
             lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
            ("sgd_clipped", {"use_adam": 0, "lr": 0.05, "max_norm": 0.5},
             lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
            ("adam", {"use_adam": 1, "lr": 0.01},
             lambda p: torch.optim.Adam(p, lr=0.01))]
    for name, defines, make_opt in runs:
        prog = mc_e2e.compile_model(model, work.path(name, "prog"),
                                    defines=dict(defines, B=B))
        extra = ["--seed", SEED, "--checkpoint-every", 30]
        res, losses, out = train(prog, work, name, weights, data, extra=extra)
        module = mlp_module(torch)
        module.load_state_dict(init.state_dict())
        want = torch_mlp(torch, module, make_opt, x, t, defines.get("max_norm"))
        check_losses(ck, "mlp %s: per-step losses vs torch" % name, losses["loss"], want)
        check_state_dict(ck, torch, "mlp %s" % name, module, mlp_module(torch), out,
                         1e-3, 1e-5)
        leftovers = [f for f in os.listdir(work.path(name)) if ".tmp." in f]
        ck.check("mlp %s: checkpoints every 30 steps left no temporary file" % name,
                 not leftovers, "%s" % leftovers)
        if name == "adam":
            llvm = mc_e2e.compile_model(model, work.path("llvm", "prog"),
                                        defines=dict(defines, B=B),
                                        extra=["--backend", "llvm"])
            res2, losses2, out2 = train(llvm, work, "llvm", weights, data, extra=extra)
            ck.check("mlp adam: the LLVM backend's program prints the C backend's losses",
                     res2.stdout == res.stdout)
            for k in sorted(out):
                ck.bits_equal("mlp adam: OUT %s, LLVM backend = C backend" % k, out2[k],
                              out[k])
            jit = [mc_e2e.modelc(), "run", model] + sum(
                (["-D", "%s=%s" % kv] for kv in dict(defines, B=B).items()), [])
            res3, _, out3 = train(jit[0], work, "jit", weights, data, extra=extra,
                                  prefix=jit[1:])
            ck.check("mlp adam: modelc run (the JIT) prints the C backend's losses",
                     res3.stdout == res.stdout)
            ck.check("mlp adam: modelc run writes the C backend's OUT",
                     all(np.array_equal(out3[k], out[k]) for k in out))
    check_errors(ck, work, prog, weights, data)


def c_array(ctype, name, values):
    return "static const %s %s[] = {%s};\n" % (
        ctype, name, ", ".join(repr(float(v)) + "f" if ctype == "float" else str(int(v))
                               for v in values))


def check_state_arena(ck, work, torch):
    """The training entry called from C (--emit c, B left symbolic): Adam's
    states live in the entry's arena, which the model keeps from call to
    call and grows, keeping them, when a larger batch needs more (and
    updates them in place: no copy per step). The
    weights are not fed back, so each step's gradient is taken at the
    initial weights while the states accumulate; torch does the same
    (its parameters reset after each step); under the sanitizers, so is the
    driver (the arena's growth). Also built -DMC_CHECK_PLAN:
    the arena's intermediates start as NaNs and the plan is checked."""
    init = mlp_module(torch)
    weights = work.path("arena", "init.safetensors")
    mc_e2e.write_safetensors(weights, init.state_dict(), {"format": "pt"})
    sizes = (2, 8, 3)
    x = torch.randn(sum(sizes), N_IN)
    t = torch.randint(0, N_OUT, (sum(sizes),))
    out = work.path("arena", "c")
    mc_e2e.compile_model(mc_e2e.model_path("train_mlp.model"), out, emit="c",
                         defines={"use_adam": 1, "lr": 0.01})
    with open(os.path.join(out, "train_mlp.h")) as f:
        header = f.read()
    ck.check("state arena: the header says where the optimizer states live",
             "Its 8 optimizer states" in header and "kept by the model between calls"
             in header, "" if "Its 8 optimizer states" in header else header[:2000])
    with open(os.path.join(out, "train_mlp.c")) as f:
        code = f.read()
    run = code[code.index("\nint train_mlp_train("):]
    run = run[:run.index("\n}\n")]
    ck.check("state arena: Adam's elementwise updates write the states in place (no copy)",
             "memcpy(" not in run and "(fc1_weight_m, " in run,
             "" if "memcpy(" not in run else run[-1500:])
    names = ["fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"]
    sizes_w = [N_HIDDEN * N_IN, N_HIDDEN, N_OUT * N_HIDDEN, N_OUT]
    driver = os.path.join(out, "driver.c")
    with open(driver, "w") as f:
        f.write('#include "train_mlp.h"\n#include <stdio.h>\n')
        f.write(c_array("float", "x", x.numpy().ravel()))
        f.write(c_array("int32_t", "t", t.numpy()))
        f.write("".join("static float %s[%d];\n" % nw for nw in zip(names, sizes_w)))
        f.write("int main(int argc, char **argv) {\n  McError e;\n"
                "  train_mlp_model *m = train_mlp_open(argc > 1 ? argv[1] : NULL, &e);\n"
                "  if (!m) { printf(\"%%s\\n\", e.msg); return 1; }\n"
                "  const int sizes[] = {%s};\n  int row = 0;\n"
                "  for (int k = 0; k < 3; k++) {\n"
                "    float step = (float)(k + 1), loss;\n"
                "    if (train_mlp_train(m, sizes[k], x + row * %d, t + row, &step, "
                "&loss, %s, &e)) {\n"
                "      printf(\"%%s\\n\", e.msg); return 1; }\n"
                "    row += sizes[k];\n    printf(\"%%.9g\\n\", loss);\n"
                % (", ".join(map(str, sizes)), N_IN, ", ".join(names)))
        for n, k in zip(names, sizes_w):
            f.write('    for (int i = 0; i < %d; i++) printf("%%.9g\\n", %s[i]);\n' % (k, n))
        f.write("  }\n  train_mlp_close(m);\n  return 0;\n}\n")
    sources = [os.path.join(out, f) for f in sorted(os.listdir(out))
               if f.endswith(".c") and f not in ("train_mlp_main.c", "driver.c")]
    module = mlp_module(torch)
    module.load_state_dict(init.state_dict())
    opt = torch.optim.Adam(module.parameters(), lr=0.01)
    w0 = [p.detach().clone() for p in module.parameters()]
    want = []
    row = 0
    for n in sizes:
        loss = torch.nn.functional.cross_entropy(module(x[row:row + n]), t[row:row + n])
        row += n
        opt.zero_grad()
        loss.backward()
        opt.step()
        want.append(np.concatenate([[loss.item()]] + [p.detach().numpy().ravel()
                                                       for p in module.parameters()]))
        with torch.no_grad():
            for p, p0 in zip(module.parameters(), w0):
                p.copy_(p0)
    want = np.concatenate(want)
    for label, flags in (("", []), (" -DMC_CHECK_PLAN", ["-DMC_CHECK_PLAN"])):
        prog = work.path("arena", "prog" + "".join(flags))
        san = mc_e2e.SANITIZER_CFLAGS.split() if mc_e2e.SANITIZE else []
        mc_e2e.run(["cc", "-std=c11", "-O1", "-ffp-contract=off", "-I", out] + flags + san +
                   [driver] + sources + ["-o", prog, "-lm", "-lpthread"])
        res = mc_e2e.run([prog, weights], check=False)
        if not ck.check("state arena%s: the driver runs" % label, res.returncode == 0,
                        "" if res.returncode == 0 else res.stdout[-300:] + res.stderr[-300:]):
            continue
        got = np.array([float(v) for v in res.stdout.split()])
        ck.close("state arena%s: batches of 2, 8, 3: losses and Adam's updates = torch's"
                 % label, got, want, 1e-4, 1e-6)


def check_errors(ck, work, prog, weights, data):
    """Bad arguments and data: a message, a non-zero exit, no OUT."""
    x, t = data["x"], data["targets"]
    cases = [
        ("an unknown data name", dict(data, y=x), ()),
        ("a missing data input", {"x": x}, ()),
        ("float targets", {"x": x, "targets": t.astype(np.float32)}, ()),
        ("x of 7 columns", {"x": x[:, :7], "targets": t}, ()),
        ("fewer rows than a batch", {"x": x[:B - 1], "targets": t[:B - 1]}, ()),
        ("arrays of different row counts", {"x": x, "targets": t[:90]}, ()),
        ("a batch the model does not take", data, ("--batch", B + 1)),
        ("a bad --steps", data, ("--steps", "0")),
    ]
    for what, d, extra in cases:
        name = re.sub(r"\W+", "_", what)
        res, _, out = train(prog, work, "error-" + name, weights, d, extra=extra,
                            check=False)
        ck.command_failed_cleanly("train with %s fails" % what, res)
        ck.check("train with %s writes nothing" % what, out is None and not
                 os.listdir(work.path("error-" + name)))
    bad = work.path("bad-weights.safetensors")
    mc_e2e.write_safetensors(bad, {"fc1.weight": np.zeros((N_HIDDEN, N_IN), np.float32)})
    res, _, out = train(prog, work, "error-weights", bad, data, check=False)
    ck.command_failed_cleanly("train from weights without fc1.bias fails", res)
    ck.check("train from bad weights writes nothing", out is None)


# ---- skip-gram -------------------------------------------------------------

TEXT = "/usr/share/common-licenses/GPL-3"
VOCAB, EMBD, WINDOW, NEG, SG_BATCH, SG_SEED = 300, 32, 2, 5, 128, 1
WORDS = ["software", "license", "source", "copy", "you"]


def skipgram_data():
    """(vocabulary, counts, centers, contexts) of the text: lower-case words,
    the VOCAB most frequent kept (the others dropped), every pair within
    WINDOW words of each other."""
    with open(TEXT) as f:
        words = re.findall(r"[a-z]+", f.read().lower())
    counts = collections.Counter(words).most_common(VOCAB)
    vocab = [w for w, _ in counts]
    index = {w: i for i, w in enumerate(vocab)}
    ids = [index[w] for w in words if w in index]
    centers, contexts = [], []
    for i, c in enumerate(ids):
        for j in range(max(0, i - WINDOW), min(len(ids), i + WINDOW + 1)):
            if j != i:
                centers.append(c)
                contexts.append(ids[j])
    return vocab, [n for _, n in counts], np.array(centers), np.array(contexts)


def check_skipgram(ck, work, torch):
    vocab, counts, centers, contexts = skipgram_data()
    table = test_losses.unigram_table(counts, 1 << 16)
    negatives = test_losses.draw_negatives(table, 42, len(centers), NEG)
    F = torch.nn.functional

    def embeddings():
        m = torch.nn.Module()
        m.in_embed = torch.nn.Embedding(VOCAB, EMBD)
        m.out_embed = torch.nn.Embedding(VOCAB, EMBD)
        return m
    module = embeddings()
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(0.1)
    weights = work.path("skipgram", "init.safetensors")
    mc_e2e.write_safetensors(weights, module.state_dict(), {"format": "pt"})
    prog = mc_e2e.compile_model(mc_e2e.model_path("train_skipgram.model"),
                                work.path("skipgram", "prog"),
                                defines={"B": SG_BATCH, "K": NEG})
    data = {"center": centers.astype(np.int32), "context": contexts.astype(np.int32),
            "negatives": negatives}
    _, losses, out = train(prog, work, "skipgram", weights, data,
                           extra=["--seed", SG_SEED])
    c, o, n = (torch.from_numpy(a.astype(np.int64)) for a in (centers, contexts, negatives))

    def torch_train(module, steps, seed):
        opt = torch.optim.Adam(module.parameters(), lr=0.01)
        losses = []
        for rows in batches(len(centers), SG_BATCH, steps, seed):
            u = module.in_embed(c[rows])
            positive = (u * module.out_embed(o[rows])).sum(-1)
            negative = (module.out_embed(n[rows]) * u[:, None, :]).sum(-1)
            loss = -(F.logsigmoid(positive) + F.logsigmoid(-negative).sum(-1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses
    init = {k: v.clone() for k, v in module.state_dict().items()}
    want = torch_train(module, STEPS, SG_SEED)
    check_losses(ck, "skip-gram on %s (%d pairs, %d words): per-step losses vs torch" % (
        TEXT, len(centers), VOCAB), losses["loss"], want)
    # Adam divides a near-zero gradient by the root of its second moment,
    # which magnifies rounding: the weights agree to 1e-4 (measured 2e-5)
    check_state_dict(ck, torch, "skip-gram", module, embeddings(), out, 1e-3, 1e-4)
    # A word out of the vocabulary in the batch of step 61 (rows in order):
    # the run stops there with a message, OUT holding step 50's checkpoint.
    bad = dict(data, center=data["center"].copy())
    bad["center"][60 * SG_BATCH + 5] = VOCAB
    res, _, got = train(prog, work, "skipgram-stopped", weights, bad,
                        extra=["--checkpoint-every", 50], check=False)
    ck.command_failed_cleanly("skip-gram: a word out of the vocabulary at step 61 stops "
                              "the run", res)
    ck.check("skip-gram: the run printed the 60 steps before it",
             res.stdout.count("\n") == 60, "%d lines" % res.stdout.count("\n"))
    module50 = embeddings()
    module50.load_state_dict(init)
    torch_train(module50, 50, None)
    ck.check("skip-gram: the checkpoint of step 50 is there", got is not None)
    if got is not None:
        check_state_dict(ck, torch, "skip-gram checkpoint", module50, embeddings(), got,
                         1e-3, 1e-4, steps=50)
    # nearest neighbours by the program's own entry, on the trained weights
    words = np.array([vocab.index(w) for w in WORDS], dtype=np.int32)
    res, got = mc_e2e.run_program(prog, {"words": words}, work.path("near"), work,
                                  weights=work.path("skipgram", "out.safetensors"),
                                  entry="neighbours")
    ck.check("skip-gram: each word is its own nearest neighbour",
             bool((got["nearest"][:, 0] == words).all()))
    for w, row, sim in zip(WORDS, got["nearest"], got["similarity"]):
        print("  nearest to %-10s %s" % (w, ", ".join(
            "%s %.2f" % (vocab[i], s) for i, s in zip(row[1:], sim[1:]))))


# ---- the BiLSTM-CRF tagger ------------------------------------------------------

CRF_CONFIG = dict(n_vocab=256, n_embd=16, n_hidden=16, n_tags=4)
CRF_ROWS, CRF_BATCH, CRF_SEED, CRF_MAX_BYTES = 64, 8, 3, 40


def check_bilstm_crf(ck, work, torch):
    sys.path.insert(0, os.path.join(mc_e2e.MODELS_DIR, "train"))
    import train_segmenter as seg
    pieces = [p for p in seg.pieces() if not seg.is_held_out(p)]
    examples = [seg.example(p) for p in pieces if len(p.replace(" ", "")) <= CRF_MAX_BYTES]
    examples = examples[::max(1, len(examples) // CRF_ROWS)][:CRF_ROWS]
    tokens, lengths, tags = seg.batch_arrays(examples)
    torch.manual_seed(11)
    module = seg.BiLstmCrf(**CRF_CONFIG)
    with torch.no_grad():  # the CRF's scores start random, not at zero
        for p in module.crf.parameters():
            p.normal_(0, 0.5)
    weights = work.path("crf", "init.safetensors")
    mc_e2e.write_safetensors(weights, module.state_dict(), {"format": "pt"})
    prog = mc_e2e.compile_model(mc_e2e.model_path("train_bilstm_crf.model"),
                                work.path("crf", "prog"),
                                defines=dict(CRF_CONFIG, B=CRF_BATCH))
    data = {"tokens": tokens.numpy().astype(np.int32),
            "lengths": lengths.numpy().astype(np.int32),
            "tags": tags.numpy().astype(np.int32)}
    _, losses, out = train(prog, work, "crf", weights, data, extra=["--seed", CRF_SEED])
    opt = torch.optim.Adam(module.parameters(), lr=0.01)
    want = []
    for rows in batches(len(examples), CRF_BATCH, STEPS, CRF_SEED):
        rows = torch.from_numpy(rows)
        # the program's batches keep the data's width; pad_packed_sequence
        # pads to it (total_length), so the rows' padding changes nothing
        loss = module.nll(tokens[rows], lengths[rows], tags[rows]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        want.append(loss.item())
    check_losses(ck, "BiLSTM-CRF on word segmentation (%d pieces of <= %d bytes, batch %d): "
                 "per-step losses vs torch" % (len(examples), CRF_MAX_BYTES, CRF_BATCH),
                 losses["loss"], want)
    if out is None:
        return ck.check("BiLSTM-CRF: OUT written", False)
    check_state_dict(ck, torch, "BiLSTM-CRF", module, seg.BiLstmCrf(**CRF_CONFIG), out,
                     1e-3, 1e-4)
    # the trained weights tag a few pieces through the program's decode entry
    res, got = mc_e2e.run_program(prog, {"tokens": data["tokens"][:CRF_BATCH],
                                         "lengths": data["lengths"][:CRF_BATCH]},
                                  work.path("crf-decode"), work,
                                  weights=work.path("crf", "out.safetensors"), entry="decode")
    want_tags = module.decode(tokens[:CRF_BATCH], lengths[:CRF_BATCH])
    same = all(list(got["tags"][b, :len(w)]) == w for b, w in enumerate(want_tags))
    ck.check("BiLSTM-CRF: the trained program's Viterbi tags = torch's", same)
    for b in range(4):
        data_b = bytes(data["tokens"][b, :data["lengths"][b]].astype(np.uint8))
        print("  after %d steps: %s" % (STEPS, seg.segment.insert_spaces(
            data_b, got["tags"][b, :data["lengths"][b]])))


# ---- GANs on 8 Gaussians ------------------------------------------------------

N_Z, GAN_BATCH, STD, LONG = 4, 64, 0.05, 3000
CENTERS = np.array([[2 * np.cos(k * np.pi / 4), 2 * np.sin(k * np.pi / 4)]
                    for k in range(8)], dtype=np.float32)


# (n_hidden, act_slope) of the runs against torch: Tanh, smooth, so the
# two trajectories stay within rounding over STEPS steps (with LeakyReLU an
# element that rounding puts on the other side of 0 changes its slope 5x:
# they part by 1% within 100 steps).
CHECKED_GAN = (32, 0.0)


def coverage_config(kind):
    """The longer run's networks: the relativistic GANs' with 64 hidden units
    and LeakyReLU(0.2), which cover the 8 modes in LONG steps (the Tanh
    networks cover few); WGAN-GP's as checked (one critic step per
    generator step: it covers few with either)."""
    return CHECKED_GAN if kind == "wgan_gp" else (64, 0.2)


def gan_modules(torch, kind, config=CHECKED_GAN):
    """gen and disc; the relativistic GANs' disc (spectral) has no last bias:
    its gradient is zero but for rounding (models/train_gan.model)."""
    nn = torch.nn
    spectral = kind != "wgan_gp"
    hidden, slope = config
    sn = nn.utils.spectral_norm if spectral else (lambda m: m)
    act = (lambda: nn.LeakyReLU(slope)) if slope else nn.Tanh
    module = nn.Module()
    module.gen = nn.Sequential(nn.Linear(N_Z, hidden), act(), nn.Linear(hidden, hidden),
                               act(), nn.Linear(hidden, 2))
    module.disc = nn.Sequential(sn(nn.Linear(2, hidden)), act(),
                                sn(nn.Linear(hidden, hidden)), act(),
                                sn(nn.Linear(hidden, 1, bias=not spectral)))
    return module


def modes_covered(x):
    """Modes with at least 1% of the samples within 3 standard deviations."""
    d = np.linalg.norm(x[:, None, :] - CENTERS[None], axis=-1)
    near = (d.min(axis=1) <= 3 * STD)
    counts = np.bincount(d.argmin(axis=1)[near], minlength=8)
    return int((counts >= 0.01 * len(x)).sum()), float(near.mean())


def torch_gan(torch, module, kind, real, z, eps):
    F = torch.nn.functional
    bce = F.binary_cross_entropy_with_logits
    betas = (0.5, 0.9) if kind == "wgan_gp" else (0.5, 0.999)
    opt_d = torch.optim.Adam(module.disc.parameters(), lr=1e-3, betas=betas)
    opt_g = torch.optim.Adam(module.gen.parameters(), lr=1e-3, betas=betas)
    D = lambda x: module.disc(x)[:, 0]  # noqa: E731
    one = lambda x: bce(x, torch.ones_like(x))  # noqa: E731
    zero = lambda x: bce(x, torch.zeros_like(x))  # noqa: E731
    losses = {"d_loss": [], "g_loss": []}
    for k in range(STEPS):
        rows = slice(k * GAN_BATCH, (k + 1) * GAN_BATCH)
        r, fake = real[rows], module.gen(z[rows])
        if kind == "wgan_gp":
            x_hat = (eps[rows] * r + (1 - eps[rows]) * fake.detach()).requires_grad_(True)
            g, = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
            d_loss = D(fake.detach()).mean() - D(r).mean() + \
                10.0 * ((g.norm(2, dim=1) - 1) ** 2).mean()
        else:
            d_real, d_fake = D(torch.cat([r, fake.detach()])).chunk(2)
            d_loss = one(d_real - d_fake) if kind == "rsgan" else \
                (one(d_real - d_fake.mean()) + zero(d_fake - d_real.mean())) / 2
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        if kind == "wgan_gp":
            g_loss = -D(fake).mean()
        else:
            d_real, d_fake = D(torch.cat([r, fake])).chunk(2)
            g_loss = one(d_fake - d_real) if kind == "rsgan" else \
                (zero(d_real - d_fake.mean()) + one(d_fake - d_real.mean())) / 2
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        losses["d_loss"].append(d_loss.item())
        losses["g_loss"].append(g_loss.item())
    return losses


def check_gan(ck, work, torch, kind):
    rng = np.random.default_rng(5)
    n = LONG * GAN_BATCH  # the first STEPS batches are compared with torch
    real = (CENTERS[rng.integers(0, 8, n)] +
            STD * rng.standard_normal((n, 2))).astype(np.float32)
    z = rng.standard_normal((n, N_Z)).astype(np.float32)
    eps = rng.random((n, 1)).astype(np.float32)
    module = gan_modules(torch, kind)
    weights = work.path(kind, "init.safetensors")
    mc_e2e.write_safetensors(weights, module.state_dict(), {"format": "pt"})
    model = "train_wgan_gp.model" if kind == "wgan_gp" else "train_gan.model"
    def build(name, config):
        defines = {"B": GAN_BATCH, "n_hidden": config[0], "act_slope": config[1]}
        if kind != "wgan_gp":
            defines["average"] = int(kind == "rasgan")
        return mc_e2e.compile_model(mc_e2e.model_path(model), work.path(name, "prog"),
                                    defines=defines)
    prog = build(kind, CHECKED_GAN)
    data = {"real": real, "z": z}
    if kind == "wgan_gp":
        data["eps"] = eps
    _, losses, out = train(prog, work, kind, weights, data)
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    want = torch_gan(torch, module, kind, t(real), t(z), t(eps))
    for which in ("d_loss", "g_loss"):
        check_losses(ck, "%s: per-step %s vs torch" % (kind, which), losses[which],
                     want[which])
    check_state_dict(ck, torch, kind, module, gan_modules(torch, kind), out,
                     1e-3, 1e-4)
    z_test = np.random.default_rng(6).standard_normal((1000, N_Z)).astype(np.float32)
    _, got = mc_e2e.run_program(prog, {"z": z_test}, work.path(kind, "samples"), work,
                                weights=work.path(kind, "out.safetensors"), entry="sample")
    with torch.no_grad():
        ref = module.gen(t(z_test)).numpy()
    ck.close("%s: samples of the trained generator = torch's" % kind, got["x"], ref,
             1e-3, 1e-4)
    # a longer run of the program alone (no torch) for a meaningful coverage
    config = coverage_config(kind)
    if config != CHECKED_GAN:
        prog = build(kind + "-long", config)
        weights = work.path(kind + "-long", "init.safetensors")
        mc_e2e.write_safetensors(weights, gan_modules(torch, kind, config).state_dict(),
                                 {"format": "pt"})
    train(prog, work, kind + "-long", weights, data, steps=LONG)
    _, got = mc_e2e.run_program(prog, {"z": z_test}, work.path(kind, "samples-long"), work,
                                weights=work.path(kind + "-long", "out.safetensors"),
                                entry="sample")
    for steps, x, (hidden, slope) in ((STEPS, ref, CHECKED_GAN), (LONG, got["x"], config)):
        modes, share = modes_covered(x)
        print("  %s, %d hidden, %s, after %d steps: the generator covers %d of the 8 modes "
              "(%.0f%% of 1000 samples within 3 std of a mode)" % (
                  kind, hidden, "LeakyReLU(%g)" % slope if slope else "Tanh", steps, modes,
                  100 * share))


def body(ck, work):
    torch = mc_e2e.import_torch()
    check_mlp(ck, work, torch)
    check_state_arena(ck, work, torch)
    check_skipgram(ck, work, torch)
    check_bilstm_crf(ck, work, torch)
    for kind in ("rsgan", "rasgan", "wgan_gp"):
        check_gan(ck, work, torch, kind)


if __name__ == "__main__":
    mc_e2e.main("test_train", body)
