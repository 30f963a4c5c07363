"""models/losses.model, one entry point per loss, against PyTorch written
plainly (torch.nn.functional, torch.nn.utils.spectral_norm).

Tolerance: |got - ref| <= ATOL + RTOL * |ref| with RTOL = 1e-5, ATOL = 1e-6
(float32; sums over the batch and the classes run in another order than
PyTorch's). GAN losses on logits of +-1e4 are means of terms near 1e4 that
may cancel (WGAN: mean(d_fake) - mean(d_real)); another summation order alone
moves such a float32 sum by up to n * 2^-24 * 1e4, so for those inputs the
absolute tolerance is 1e-6 * max|logit| = 0.01 (printed with each check;
measured: 2e-5 at most). Every check is made twice: against torch in float32 (the same
inputs) and against torch in float64 (the exact loss of the float32 inputs),
which shows the stable formulas lose nothing on extreme logits.
Each entry is compiled on its own with `--entry NAME` (once per size: the
cases of one entry run the same program); at the end the whole
file is compiled into one program (`PROG ENTRY ...`), which must give the
same bits for the default-size cases.

The skip-gram negatives are drawn by the sampler defined here (and in the
comments of models/losses.model), exact in integers and IEEE doubles so a C
version can reproduce it: unigram_table, splitmix64, draw_negatives.
"""
import bisect
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

RTOL = 1e-5
ATOL = 1e-6

MASK64 = (1 << 64) - 1


# ---- the negative sampler ---------------------------------------------------

def unigram_table(counts, size):
    """word2vec's table of `size` slots, word i filling a share proportional
    to counts[i]^0.75: slot j holds the smallest i with
    cum_i > ((j + 0.5) * Z) / size, cum_i = w_0 + ... + w_i (doubles added left
    to right), w_i = pow(counts[i], 0.75), Z = cum_{V-1}."""
    cum = []
    total = 0.0
    for c in counts:
        total += float(c) ** 0.75
        cum.append(total)
    return [bisect.bisect_right(cum, ((j + 0.5) * total) / size) for j in range(size)]


def splitmix64(seed):
    """SplitMix64 (Steele, Lea, Flood 2014): an endless stream of uint64."""
    state = seed & MASK64
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        yield z ^ (z >> 31)


def draw_negatives(table, seed, rows, k):
    """negatives[b, k] = table[((next() >> 32) * M) >> 32], b outer, k inner,
    one draw of the seed's SplitMix64 stream each; no rejection."""
    size = len(table)
    assert 0 < size <= 1 << 32
    stream = splitmix64(seed)
    out = np.empty((rows, k), dtype=np.int32)
    for b in range(rows):
        for j in range(k):
            out[b, j] = table[((next(stream) >> 32) * size) >> 32]
    return out


def check_sampler(ck):
    # Known-answer values of SplitMix64 (the reference implementation's
    # outputs for seed 1234567), for a C version to match.
    stream = splitmix64(1234567)
    got = [next(stream) for _ in range(5)]
    want = [6457827717110365317, 3203168211198807973, 9817491932198370423,
            4593380528125082431, 16408922859458223821]
    ck.check("sampler: SplitMix64 seed 1234567 known values", got == want,
             "got %s" % got)

    counts = [0, 1, 10, 100, 1000, 7, 3, 0, 250, 42]
    size = 100000
    table = unigram_table(counts, size)
    w = np.array(counts, dtype=np.float64) ** 0.75
    share = np.bincount(table, minlength=len(counts)) / size
    ck.check("sampler: table shares = count^0.75 / Z within 1/M",
             bool(np.abs(share - w / w.sum()).max() <= 1.0 / size),
             "max |share - p| = %.3g, 1/M = %.3g" % (
                 np.abs(share - w / w.sum()).max(), 1.0 / size))
    ck.check("sampler: words of count 0 never in the table",
             share[0] == 0 and share[7] == 0)
    draws = draw_negatives(table, 7, 2000, 50)
    freq = np.bincount(draws.ravel(), minlength=len(counts)) / draws.size
    dev = np.abs(freq - w / w.sum()).max()
    ck.check("sampler: 100000 draws follow count^0.75 (max deviation < 0.01)",
             bool(dev < 0.01), "max |freq - p| = %.3g" % dev)
    again = draw_negatives(table, 7, 2000, 50)
    ck.check("sampler: same seed, same negatives", bool(np.array_equal(draws, again)))


# ---- helpers ------------------------------------------------------------------

# (entry, inputs, weights {name: tensor}, outputs) of every run at the
# default constants, replayed through the whole-file program at the end
DEFAULT_RUNS = []
# (entry, defines) -> the program compiled with --entry
PROGRAMS = {}


def run_entry(work, model, entry, inputs, defines=None, weights=None, tag=None,
              weight_tensors=None):
    tag = tag or entry
    # one program per entry and size: cases of the same entry share it
    key = (entry, tuple(sorted((defines or {}).items())))
    prog = PROGRAMS.get(key)
    if prog is None:
        prog = mc_e2e.compile_model(model, work.path(tag, entry), defines=defines,
                                    weights=weights, opt=2, extra=["--entry", entry])
        PROGRAMS[key] = prog
    _, out = mc_e2e.run_program(prog, inputs, work.path(tag, "out"), work,
                                weights=weights)
    if defines is None:
        DEFAULT_RUNS.append((tag, entry, inputs, weight_tensors or {}, out))
    return out


def compare(ck, tag, got, want32, want64, atol=ATOL):
    """Each output against torch float32 and torch float64."""
    for name in want32:
        if not ck.check("%s: output %s present" % (tag, name), name in got,
                        "outputs: %s" % sorted(got)):
            continue
        ck.close("%s: %s vs torch f32" % (tag, name), got[name],
                 mc_e2e.to_numpy(want32[name]), RTOL, atol)
        ck.close("%s: %s vs torch f64" % (tag, name), got[name],
                 mc_e2e.to_numpy(want64[name]).astype(np.float32), RTOL, atol)


# ---- softmax cross-entropy ----------------------------------------------------

def test_cross_entropy(ck, work, torch, model):
    F = torch.nn.functional
    B, C = 9, 11
    logits = torch.randn(B, C) * 3
    targets = torch.randint(0, C, (B,), dtype=torch.int32)
    extreme = logits.clone()
    extreme[0, :] = torch.linspace(-1e4, 1e4, C)       # target far below the max
    targets_extreme = targets.clone()
    targets_extreme[0] = 0
    extreme[1, :] = 50.0
    extreme[1, 3] = -50.0                              # target on the one low logit
    targets_extreme[1] = 3
    extreme[2, :] = -1e4
    extreme[2, 5] = 1e4                                # target on the one high logit
    targets_extreme[2] = 5
    extreme[3, :] = 1e4                                # all equal: log C
    targets_ignored = targets.clone()
    targets_ignored[[1, 4]] = -100
    cases = [
        ("random", logits, targets, None),
        ("random, label_smoothing=0.1", logits, targets, 0.1),
        ("extreme +-50, +-1e4", extreme, targets_extreme, None),
        ("extreme, label_smoothing=0.2", extreme, targets_extreme, 0.2),
        ("ignore_index=-100", logits, targets_ignored, None),
    ]
    for i, (label, x, t, smoothing) in enumerate(cases):
        want = {}
        for dtype in (torch.float32, torch.float64):
            kw = {"label_smoothing": smoothing} if smoothing else {}
            xd = x.to(dtype)
            want[dtype] = {
                "loss": F.cross_entropy(xd, t.long(), reduction="none", **kw),
                "mean_loss": F.cross_entropy(xd, t.long(), reduction="mean", **kw),
            }
        inputs = {"logits": mc_e2e.to_numpy(x), "targets": mc_e2e.to_numpy(t)}
        if smoothing is not None:
            inputs["label_smoothing"] = np.array(smoothing, dtype=np.float32)
        tag = "cross_entropy %s" % label
        got = run_entry(work, model, "cross_entropy", inputs, tag="ce%d" % i)
        compare(ck, tag, got, want[torch.float32], want[torch.float64])


# ---- skip-gram negative sampling ------------------------------------------------

def test_skipgram(ck, work, torch, model):
    F = torch.nn.functional
    configs = [
        ("default", None, 50, 16, 64, 5, 1.0, 11),
        ("V=300 D=24 K=15, large dots", {"n_vocab": 300, "n_embd": 24}, 300, 24, 33, 15,
         6.0, 12),
    ]
    for label, defines, V, D, B, K, scale, seed in configs:
        in_embed = torch.nn.Embedding(V, D)
        out_embed = torch.nn.Embedding(V, D)
        with torch.no_grad():
            in_embed.weight.mul_(scale)
            out_embed.weight.mul_(scale)
        weights = work.path("sg-%d" % V, "w.safetensors")
        tensors = {"in_embed.weight": in_embed.weight.detach().clone(),
                   "out_embed.weight": out_embed.weight.detach().clone()}
        mc_e2e.write_safetensors(weights, tensors)
        # Zipf-like counts, some words never seen
        counts = [int(1e6 / (r + 1) ** 1.1) if r % 17 else 0 for r in range(V)]
        table = unigram_table(counts, 100000)
        center = torch.randint(0, V, (B,), dtype=torch.int32)
        context = torch.randint(0, V, (B,), dtype=torch.int32)
        negatives = torch.from_numpy(draw_negatives(table, seed, B, K))
        want = {}
        for dtype in (torch.float32, torch.float64):
            u = in_embed.weight.to(dtype)[center.long()]
            v = out_embed.weight.to(dtype)[context.long()]
            vn = out_embed.weight.to(dtype)[negatives.long()]
            with torch.no_grad():
                pos = F.logsigmoid((u * v).sum(-1))
                neg = F.logsigmoid(-torch.bmm(vn, u.unsqueeze(2)).squeeze(2)).sum(-1)
                loss = -(pos + neg)
            want[dtype] = {"loss": loss, "mean_loss": loss.mean()}
            if dtype == torch.float32:
                dots = torch.cat([(u * v).sum(-1), torch.bmm(vn, u.unsqueeze(2)).flatten()])
        print("skipgram %s: |u.v| up to %.1f" % (label, float(dots.abs().max())))
        inputs = {"center": mc_e2e.to_numpy(center), "context": mc_e2e.to_numpy(context),
                  "negatives": mc_e2e.to_numpy(negatives)}
        got = run_entry(work, model, "skipgram_ns", inputs, defines=defines,
                        weights=weights, tag="sg-%d" % V, weight_tensors=tensors)
        compare(ck, "skipgram_ns %s" % label, got, want[torch.float32], want[torch.float64])


# ---- GAN losses -----------------------------------------------------------------

def gan_reference(torch, name, dr, df):
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    relu = torch.nn.functional.relu
    ones, zeros = torch.ones_like(dr), torch.zeros_like(dr)
    if name == "gan_standard":
        return bce(dr, ones) + bce(df, zeros), bce(df, ones)
    if name == "rsgan":
        return bce(dr - df, ones), bce(df - dr, ones)
    if name == "rasgan":
        real_rel, fake_rel = dr - df.mean(), df - dr.mean()
        return ((bce(real_rel, ones) + bce(fake_rel, zeros)) / 2,
                (bce(real_rel, zeros) + bce(fake_rel, ones)) / 2)
    if name == "wgan":
        return df.mean() - dr.mean(), -df.mean()
    if name == "hinge":
        return relu(1 - dr).mean() + relu(1 + df).mean(), -df.mean()
    raise ValueError(name)


def test_gan(ck, work, torch, model):
    B = 32
    dr = torch.randn(B) * 3 + 1
    df = torch.randn(B) * 3 - 1
    er, ef = dr.clone(), df.clone()
    er[:4] = torch.tensor([50.0, -50.0, 1e4, -1e4])
    ef[:4] = torch.tensor([-50.0, 50.0, -1e4, 1e4])
    er[4:8] = torch.tensor([1e4, -1e4, 50.0, -50.0])
    ef[4:8] = torch.tensor([1e4, -1e4, 50.0, -50.0])
    cases = [("random", dr, df), ("extreme +-50, +-1e4", er, ef)]
    for name in ("gan_standard", "rsgan", "rasgan", "wgan", "hinge"):
        for i, (label, r, f) in enumerate(cases):
            want = {}
            for dtype in (torch.float32, torch.float64):
                d_loss, g_loss = gan_reference(torch, name, r.to(dtype), f.to(dtype))
                want[dtype] = {"d_loss": d_loss, "g_loss": g_loss}
            scale = float(torch.cat([r, f]).abs().max())
            atol = ATOL * max(1.0, scale) if scale > 100 else ATOL
            got = run_entry(work, model, name, {"d_real": mc_e2e.to_numpy(r),
                                                "d_fake": mc_e2e.to_numpy(f)},
                            tag="%s%d" % (name, i))
            compare(ck, "%s %s" % (name, label), got, want[torch.float32],
                    want[torch.float64], atol=atol)


# ---- spectral normalization -------------------------------------------------------

def test_spectral_norm(ck, work, torch, model):
    configs = [
        ("default 16x8, 1 iteration", None, 16, 8, 1),
        ("5x12, 3 iterations", {"n_out": 5, "n_in": 12, "n_power_iterations": 3}, 5, 12, 3),
        ("7x7, 40 iterations", {"n_out": 7, "n_in": 7, "n_power_iterations": 40}, 7, 7, 40),
    ]
    for i, (label, defines, n_out, n_in, iters) in enumerate(configs):
        layer = torch.nn.utils.spectral_norm(torch.nn.Linear(n_in, n_out),
                                             n_power_iterations=iters).train()
        # an arbitrary starting u (the module would use its own random one)
        u0 = torch.randn(n_out)
        with torch.no_grad():
            if iters >= 40:
                # singular values 3, 1.5, ...: 40 iterations converge to
                # sigma within (1.5 / 3)^80
                q1, _ = torch.linalg.qr(torch.randn(n_out, n_out))
                q2, _ = torch.linalg.qr(torch.randn(n_in, n_in))
                s = torch.tensor([3.0, 1.5, 1.2, 1.0, 0.7, 0.5, 0.2])[:min(n_out, n_in)]
                layer.weight_orig.copy_(q1[:, :len(s)] @ torch.diag(s) @ q2[:len(s)])
            layer.weight_u.copy_(u0)
            layer(torch.zeros(1, n_in))            # the pre-forward hook runs the iterations
            w_orig = layer.weight_orig.detach().clone()
            sigma = torch.dot(layer.weight_u, torch.mv(w_orig, layer.weight_v))
        want = {"weight": layer.weight.detach(), "weight_u": layer.weight_u.clone(),
                "weight_v": layer.weight_v.clone(), "sigma": sigma}
        # float64: the same iterations written out (torch's order: v, then u)
        w64, u = w_orig.double(), u0.double()
        nrm = torch.nn.functional.normalize
        for _ in range(iters):
            v = nrm(torch.mv(w64.t(), u), dim=0, eps=1e-12)
            u = nrm(torch.mv(w64, v), dim=0, eps=1e-12)
        s64 = torch.dot(u, torch.mv(w64, v))
        want64 = {"weight": w64 / s64, "weight_u": u, "weight_v": v, "sigma": s64}
        weights = work.path("sn%d" % i, "w.safetensors")
        mc_e2e.write_safetensors(weights, {"weight_orig": w_orig})
        got = run_entry(work, model, "spectral_norm", {"u": mc_e2e.to_numpy(u0)},
                        defines=defines, weights=weights, tag="sn%d" % i,
                        weight_tensors={"weight_orig": w_orig})
        compare(ck, "spectral_norm %s" % label, got, want, want64)
        if iters >= 40 and "sigma" in got:
            top = float(torch.linalg.svdvals(w64)[0])
            ck.close("spectral_norm %s: sigma = largest singular value" % label,
                     got["sigma"].astype(np.float64), np.float64(top), 1e-4, 0)


def test_spectral_linear(ck, work, torch, model):
    """A frozen spectrally normalized nn.Linear: the module's output in
    training mode from its stored u, and the compiled program's, whose
    W / sigma is computed once at load (a prepared weight in its IR)."""
    import subprocess
    ir = subprocess.run(mc_e2e.compile_args(model, "-", emit="ir",
                                            extra=["--entry", "spectral_linear"]),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ck.check("spectral_linear: W / sigma is a prepared weight",
             ir.returncode == 0 and "func prepare @" in ir.stdout and
             "prepared @" in ir.stdout, ir.stderr[-300:])
    for i, (label, defines, n_out, n_in, iters) in enumerate([
            ("default 16x8, 1 iteration", None, 16, 8, 1),
            ("5x12, 3 iterations", {"n_out": 5, "n_in": 12, "n_power_iterations": 3}, 5, 12, 3)]):
        layer = torch.nn.utils.spectral_norm(torch.nn.Linear(n_in, n_out),
                                             n_power_iterations=iters).train()
        sd = {"sn_linear." + k: v.detach().clone() for k, v in layer.state_dict().items()
              if k != "weight_v"}
        x = torch.randn(6, n_in)
        with torch.no_grad():
            want = layer(x)
            want64 = torch.nn.functional.linear(x.double(), layer.weight.double(),
                                                layer.bias.double())
        weights = work.path("snl%d" % i, "w.safetensors")
        mc_e2e.write_safetensors(weights, sd)
        got = run_entry(work, model, "spectral_linear", {"x": mc_e2e.to_numpy(x)},
                        defines=defines, weights=weights, tag="snl%d" % i,
                        weight_tensors=sd)
        compare(ck, "spectral_linear %s" % label, got, {"y": want}, {"y": want64})
        if i == 0:  # -O0 hoists nothing: each call computes W / sigma
            prog = mc_e2e.compile_model(model, work.path("snl0", "o0"), weights=weights,
                                        opt=0, extra=["--entry", "spectral_linear"])
            _, o0 = mc_e2e.run_program(prog, {"x": mc_e2e.to_numpy(x)},
                                       work.path("snl0", "out_o0"), work, weights=weights)
            ck.bits_equal("spectral_linear: prepared once (-O2) = per call (-O0)",
                          got.get("y"), o0.get("y"))


# ---- all entries in one program ---------------------------------------------------

def test_whole_file(ck, work, model):
    """One program for the whole file over one weights file holding every
    weight (the handle is shared, so even the GAN entries take --weights):
    each default-size run above again, through `PROG ENTRY`, bit for bit."""
    tensors = {}
    for _, _, _, w, _ in DEFAULT_RUNS:
        tensors.update(w)
    weights = work.path("all", "w.safetensors")
    mc_e2e.write_safetensors(weights, tensors)
    prog = mc_e2e.compile_model(model, work.path("all", "losses"), opt=2)
    for i, (tag, entry, inputs, _, want) in enumerate(DEFAULT_RUNS):
        argv = [prog, entry, "--weights", weights]
        for name, value in inputs.items():
            argv.append("%s=%s" % (name, mc_e2e.save_npy(work.next_input_path(name), value)))
        outdir = work.path("all", "out%d" % i)
        argv += ["-o", outdir]
        res = mc_e2e.run(argv, check=False)
        if not ck.check("whole file: %s (%s) ran" % (entry, tag), res.returncode == 0,
                        res.stderr.strip()):
            continue
        for name, ref in want.items():
            got = mc_e2e.load_npy(os.path.join(outdir, name + ".npy"))
            ck.bits_equal("whole file: %s (%s) %s = --entry %s" % (entry, tag, name, entry),
                          got, ref)
        mc_e2e.check_threads(ck, "whole file: %s (%s)" % (entry, tag), prog, inputs, work,
                             weights=weights, entry=entry, base=want)


def body(ck, work):
    torch = mc_e2e.import_torch()
    model = mc_e2e.model_path("losses.model")
    check_sampler(ck)
    test_cross_entropy(ck, work, torch, model)
    test_skipgram(ck, work, torch, model)
    test_gan(ck, work, torch, model)
    test_spectral_norm(ck, work, torch, model)
    test_spectral_linear(ck, work, torch, model)
    test_whole_file(ck, work, model)


if __name__ == "__main__":
    mc_e2e.main("test_losses", body)
