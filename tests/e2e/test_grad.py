"""models/grad.model: gradients compiled by the autodiff pass against
torch.autograd on the same inputs and weights, one entry point per group
of derivative rules (scans included: a bidirectional LSTM over padded
rows, a recurrence whose step takes a gradient and runs a scan), all in
one program: built by the C backend and by the LLVM backend at -O2, each
checked, and the two equal bit for bit; under the sanitizers (build-san)
one program, the C backend's at -O0. Model families' losses likewise,
through their own model files: models/grad_bilstm_crf.model (the
BiLSTM-CRF's mean NLL with respect to every weight, on a tiny
configuration) against test_bilstm_crf.py's reference (nn.LSTM on packed
sequences, the CRF's forward algorithm) and models/grad_seq2seq.model (the
attentional encoder-decoder's teacher-forced NLL: a decoder scan reading
the encoder's states) against test_seq2seq.py's (nn.LSTM, nn.LSTMCell),
models/grad_transformer.model (a Transformer encoder layer with a key
padding mask) against torch.nn.TransformerEncoderLayer and
models/grad_gpt2.model (GPT-2's LM loss, one layer) against test_gpt2.py's
reference.

Each float32 entry's reference is torch.autograd run twice on the same
float32 inputs and weights: in float32 (torch32) and in float64 (ref64, the
exact gradient of the float32 problem up to float64 rounding). Every output
(the loss and each gradient) is checked against ref64, with torch32's own
error as the yardstick of what float32 can do there:
  - norm-wise: ||got - ref64|| / ||ref64|| <= 1e-4 (the issue's 1e-4
    relative, for the output as a whole);
  - per element: |got - ref64| <= 4 * max(|torch32 - ref64|, 8 eps * max
    |ref64|), eps = 2^-23: at most 4 times the larger of torch's float32
    error there and 8 eps of the output's largest element (8 to 16 ulps);
  - inf and nan in the same places.
Why not 1e-4 relative per element against torch32: some elements are
ill-conditioned in float32 for anyone. They are near zero, sums of larger
terms of both signs (d_out_w's element of 1e-4 where the output reaches 3,
the decoder's input weights', a layer norm's bias in GPT-2), or exactly zero
(the key bias's gradient in attention: softmax ignores a shift of its row);
there torch32 is off from ref64 by 4.4e-3 (Transformer), 4.6e-4 (seq2seq)
and 7.8e-5 relative (GPT-2), and modelc by 2.0e-3, 1.8e-4 and 1.3e-4: the
two float32 results differ from each other by more than 1e-4 while each is
as close to ref64 as float32 allows. Measured by tests/tools/grad_f32_error.py
(100 draws of each entry's inputs, 12100 outputs): modelc's norm-wise error
is torch32's within noise in every entry (per gradient, modelc's mean over
the draws is 0.39 to 1.11 times torch32's; the largest of any draw, 1.5e-5,
and torch32's, 1.7e-5, are both the CRF's tag bias's), and the worst element
of any draw used 0.73 of its bound (0.27 on this test's inputs). Tried: tanh's
rule off by a factor 1 + 3e-5 fails 122 float32 checks here (10 entries),
where the former tolerance (1e-5 max|torch32| + 1e-4 |torch32|) failed 14.

The inputs include ties, where torch's conventions decide: maximum and
minimum give each operand half the gradient where they are equal
(torch.maximum), max and min reductions share it evenly among the equal
elements (torch.amax), abs has derivative 0 at 0.

float64 (entries fd64 and scan64, the latter through a scan): the gradient
against torch.autograd in float64 (RTOL 1e-10), and its product with a
direction against central finite differences computed by the program itself
(step 1e-5: error O(h^2) ~ 1e-10, RTOL 1e-7).
"""
import copy
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

EPS32 = float(np.finfo(np.float32).eps)   # 2^-23
NORM_RTOL = 1e-4  # ||got - ref64|| / ||ref64||, per output
TIMES_TORCH = 4   # per element: at most this many times the larger of torch's
FLOOR_EPS = 8     # float32 error and FLOOR_EPS * EPS32 * max|ref64| of the output
N_IN, N_HIDDEN, N_OUT, N_VOCAB, N_EMBD, N_STATE = 6, 8, 5, 11, 4, 4
MAX_REL = {}  # the float64 entries
STATS = {}    # entry -> [max rel, norm-wise] of modelc, of torch f32, worst/bound


def close64(ck, name, got, t32, ref64):
    """got (the program's float32 output) against ref64 (torch.autograd in
    float64 on the same float32 inputs and weights), with t32 (torch.autograd
    in float32) as the yardstick of float32 error; returns (ok, [got's max
    relative error, its norm-wise relative error, the same two of t32, the
    worst element's error as a share of its bound])."""
    got, t = np.asarray(got), mc_e2e.to_numpy(t32)
    if got.shape != t.shape or got.dtype != t.dtype:
        return ck.check(name, False, "got %s %s, expected %s %s" % (
            got.dtype, got.shape, t.dtype, t.shape)), None
    m, t, r = (np.asarray(a, dtype=np.float64) for a in (got, t, mc_e2e.to_numpy(ref64)))
    fin = np.isfinite(r)
    nonfinite_ok = bool(np.array_equal(np.isnan(m), np.isnan(r)) and
                        np.array_equal(m[np.isinf(r)], r[np.isinf(r)]) and
                        not np.isinf(m[fin]).any())
    m, t, r = m[fin], t[fin], r[fin]
    em, et = np.abs(m - r), np.abs(t - r)
    scale = float(np.abs(r).max()) if r.size else 0.0
    floor = max(FLOOR_EPS * EPS32 * scale, float(np.finfo(np.float32).tiny))
    unit = np.maximum(et, floor)
    ratio = float((em / unit).max()) if r.size else 0.0
    nr = float(np.linalg.norm(r))
    norm_m, norm_t = (float(np.linalg.norm(e)) / nr if nr else np.inf if e.any() else 0.0
                      for e in (em, et))
    big = np.abs(r) >= EPS32 * scale   # relative error means something
    rel_m, rel_t = ((float((e[big] / np.abs(r[big])).max()) if big.any() else 0.0)
                    for e in (em, et))
    ok = bool(nonfinite_ok and ratio <= TIMES_TORCH and norm_m <= NORM_RTOL)
    detail = ("shape %s norm-wise %.2g (torch f32 %.2g, tol %g); max rel %.2g (torch f32 %.2g) "
              "where |ref64| >= eps*max|ref64|; worst element %.2f of its bound "
              "%d*max(|torch32-ref64|, %d eps*max|ref64| = %.3g)" % (
                  tuple(got.shape), norm_m, norm_t, NORM_RTOL, rel_m, rel_t, ratio / TIMES_TORCH,
                  TIMES_TORCH, FLOOR_EPS, floor))
    if ratio > TIMES_TORCH:
        i = int(np.argmax(em / unit))
        idx = tuple(np.argwhere(fin)[i]) if got.ndim else ()
        detail += "; element %s: got %r, torch f32 %r, float64 %r" % (idx, m[i], t[i], r[i])
    if not nonfinite_ok:
        detail += "; inf/nan positions differ"
    return ck.check(name, ok, detail), [rel_m, norm_m, rel_t, norm_t, ratio / TIMES_TORCH]


def compare(ck, what, entry, got, want, want64):
    for name in want:
        if name not in got:
            ck.check("%s: %s" % (what, name), False, "no such output")
            continue
        _, stats = close64(ck, "%s: %s = torch.autograd in float64" % (what, name), got[name],
                           want[name], want64[name])
        if stats:
            old = STATS.get(entry, [0.0] * len(stats))
            STATS[entry] = [max(x, y) for x, y in zip(old, stats)]


def grads(torch, loss, wrt):
    return [g.detach() for g in torch.autograd.grad(loss, wrt)]


def leaves(dtype, *ts):
    """Copies of float32 tensors in dtype, each a leaf that wants its gradient."""
    return [t.to(dtype, copy=True).requires_grad_() for t in ts]


def chain(torch, x, y):
    a = torch.exp(x) * torch.sin(y) + torch.log1p(x * x) - torch.tanh(x) / (1 + y.abs())
    b = torch.sqrt(x.abs() + 1) + torch.erf(x) * torch.cos(y) + torch.sigmoid(x) * torch.expm1(y / 4)
    c = (x.abs() + 0.5) ** y + torch.log(y.abs() + 1) + (x.double() * 2.0).to(x.dtype)
    d = (torch.maximum(x, y) + 3 * torch.minimum(x, y) + torch.maximum(x, x.new_zeros(()))
         + torch.where(x > y, x * y, -x))
    return (a + b + c + d + torch.floor(x) + torch.sign(y) + torch.remainder(x, 1.5)).sum()


def case_elementwise(torch, g):
    x = torch.randn(12, generator=g)
    y = torch.randn(12, generator=g)
    x[0] = y[0]          # a tie of maximum and minimum
    x[1] = 0.0           # maximum(x, 0) and abs at 0

    def run(dtype):
        xg, yg = leaves(dtype, x, y)
        loss = chain(torch, xg, yg)
        dx, dy = grads(torch, loss, [xg, yg])
        return {"loss": loss.detach(), "dx": dx, "dy": dy}

    return {"x": x, "y": y}, None, run


def case_broadcasting(torch, g):
    a = torch.randn(3, 1, 4, generator=g)
    b = torch.randn(5, 1, generator=g)
    c = torch.randn(4, generator=g)

    def run(dtype):
        ag, bg, cg = leaves(dtype, a, b, c)
        loss = ((ag + bg) * cg - ag / (bg * bg + 3) + cg).sum()
        da, db, dc = grads(torch, loss, [ag, bg, cg])
        return {"loss": loss.detach(), "da": da, "db": db, "dc": dc}

    return {"a": a, "b": b, "c": c}, None, run


def case_matmul(torch, g):
    names = ["a", "b", "q", "p", "v"]
    shapes = [(3, 4), (4, 5), (5, 4), (2, 3, 4), (4,)]
    inputs = {n: torch.randn(*s, generator=g) for n, s in zip(names, shapes)}

    def run(dtype):
        a, b, q, p, v = leaves(dtype, *(inputs[n] for n in names))
        r = (torch.tanh(a @ b).sum() + torch.sin(a @ q.T).sum()
             + (torch.cos(a @ b) * (p @ b)).sum())
        loss = r + (v @ b).sum() + (a @ v * 2).sum() + v @ v + torch.sigmoid(b.T @ a.T).sum()
        d = grads(torch, loss, [a, b, q, p, v])
        want = {"loss": loss.detach()}
        want.update({"d" + n: t for n, t in zip(names, d)})
        return want

    return inputs, None, run


def case_reductions(torch, g):
    x = torch.randn(4, 5, generator=g)
    x[0, 1] = x[0, 2] = x[0].max() + 1    # a tie of the row's max and of max(x)
    x[1, 0] = x[2, 0] = x[:, 0].min() - 1  # a tie of the column's min

    def run(dtype):
        (xg,) = leaves(dtype, x)
        s = (xg * xg).sum(1, keepdim=True) * xg.mean(0, keepdim=True)
        m = torch.amax(xg, 1).sum() + 2 * torch.amin(xg, 0).sum() + torch.amax(xg)
        loss = (s.sum() + m.sum() + torch.logsumexp(xg, -1).sum()
                + torch.var(xg, 0, unbiased=False).sum())
        (dx,) = grads(torch, loss, [xg])
        return {"loss": loss.detach(), "dx": dx}

    return {"x": x}, None, run


def case_cross_entropy(torch, g):
    logits = torch.randn(6, 7, generator=g) * 3
    targets = torch.randint(0, 7, (6,), generator=g, dtype=torch.int32)

    def run(dtype):
        (lg,) = leaves(dtype, logits)
        logp = torch.log_softmax(lg, -1)
        picked = logp.gather(1, targets.long()[:, None])[:, 0]
        p = torch.softmax(lg * 0.5, -1)
        loss = (-picked).mean() + (p * p).sum() + torch.logsumexp(lg, 0).mean()
        (d,) = grads(torch, loss, [lg])
        return {"loss": loss.detach(), "dlogits": d}

    return {"logits": logits, "targets": targets}, None, run


def case_embedding(torch, g):
    emb = torch.randn(N_VOCAB, N_EMBD, generator=g)
    tokens = torch.randint(0, N_VOCAB, (3, 5), generator=g, dtype=torch.int32)
    tokens[0, 0] = tokens[2, 4] = tokens[1, 1]      # rows gathered several times
    cols = torch.tensor([4, 0, 4, 2], dtype=torch.int32)
    x = torch.randn(3, 5, generator=g)

    def run(dtype):
        eg, xg = leaves(dtype, emb, x)
        e = eg[tokens.long()]
        xc = xg[:, cols.long()]
        loss = (torch.tanh(e) * xg[:, :, None]).sum() + (xc * xc).sum()
        demb, dx = grads(torch, loss, [eg, xg])
        return {"loss": loss.detach(), "demb": demb, "dx": dx}

    return {"tokens": tokens, "cols": cols, "x": x}, {"emb.weight": emb}, run


def case_movement(torch, g):
    x = torch.randn(4, 6, generator=g)

    def run(dtype):
        (xg,) = leaves(dtype, x)
        y = torch.cat([xg[:, 1:4], xg[:, 0:2] * 2, xg[:, 5:6]], 1)
        y = torch.cat([y[1:, :], y[0:1, :] * 3], 0)
        z = y.reshape(3, -1, 1).permute(2, 0, 1)
        loss = (torch.sin(z) * xg[0, 0:1].broadcast_to(1, 3, 1)).sum() + (xg[:, 2] * xg[:, 3]).sum()
        (dx,) = grads(torch, loss, [xg])
        return {"loss": loss.detach(), "dx": dx}

    return {"x": x}, None, run


def case_decoding(torch, g):
    # a generator of its own: the other cases keep their inputs
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(11))
    t = 1

    def run(dtype):
        (xg,) = leaves(dtype, x)
        a = xg[t:t + 2, 1:4]
        y = (xg * 2).clone()
        y[0:2, t:t + 3] = a * a
        loss = (torch.sin(y) * xg).sum() + (torch.cumsum(xg, 1) * xg).sum()
        (dx,) = grads(torch, loss, [xg])
        return {"loss": loss.detach(), "dx": dx}

    return {"x": x, "t": torch.tensor(t, dtype=torch.int32)}, None, run


def case_layer_norm(torch, g):
    x = torch.randn(3, 8, generator=g)
    gamma = torch.randn(8, generator=g)
    beta = torch.randn(8, generator=g)
    r = torch.randn(3, 8, generator=g)

    def run(dtype):
        xg, gg, bg = leaves(dtype, x, gamma, beta)
        loss = (torch.nn.functional.layer_norm(xg, (8,), gg, bg, 1e-5) * r.to(dtype)).sum()
        dx, dg, db = grads(torch, loss, [xg, gg, bg])
        return {"loss": loss.detach(), "dx": dx, "dg": dg, "db": db}

    return {"x": x, "g": gamma, "b": beta, "r": r}, None, run


def linear_params(torch, g, prefix, d_in, d_out):
    return {"%s.weight" % prefix: torch.randn(d_out, d_in, generator=g) / d_in ** 0.5,
            "%s.bias" % prefix: torch.randn(d_out, generator=g) * 0.1}


def case_mlp(torch, g):
    w = dict(linear_params(torch, g, "fc1", N_IN, N_HIDDEN))
    w.update(linear_params(torch, g, "fc2", N_HIDDEN, N_OUT))
    x = torch.randn(7, N_IN, generator=g)
    targets = torch.randint(0, N_OUT, (7,), generator=g, dtype=torch.int32)

    def run(dtype):
        p = dict(zip(w, leaves(dtype, *w.values())))
        F = torch.nn.functional
        h = torch.tanh(F.linear(x.to(dtype), p["fc1.weight"], p["fc1.bias"]))
        loss = F.cross_entropy(F.linear(h, p["fc2.weight"], p["fc2.bias"]), targets.long())
        d = grads(torch, loss, [p["fc1.weight"], p["fc1.bias"], p["fc2.weight"], p["fc2.bias"]])
        return dict(loss=loss.detach(), dw1=d[0], db1=d[1], dw2=d[2], db2=d[3])

    return {"x": x, "targets": targets}, w, run


def case_penalty(torch, g):
    w = dict(linear_params(torch, g, "d1", N_IN, N_HIDDEN))
    w.update(linear_params(torch, g, "d2", N_HIDDEN, 1))
    real = torch.randn(5, N_IN, generator=g)
    fake = torch.randn(5, N_IN, generator=g)
    eps = torch.rand(5, 1, generator=g)
    x_hat = eps * real + (1 - eps) * fake
    F = torch.nn.functional

    def run(dtype):
        p = dict(zip(w, leaves(dtype, *w.values())))

        def critic(x):
            return F.linear(torch.tanh(F.linear(x, p["d1.weight"], p["d1.bias"])),
                            p["d2.weight"], p["d2.bias"])

        (xh,) = leaves(dtype, x_hat)
        (gx,) = torch.autograd.grad(critic(xh).sum(), xh, create_graph=True)
        norm = torch.sqrt((gx * gx).sum(-1))
        loss = (critic(fake.to(dtype)).mean() - critic(real.to(dtype)).mean()
                + 10.0 * ((norm - 1) ** 2).mean())
        d = grads(torch, loss, [p["d1.weight"], p["d1.bias"], p["d2.weight"]])
        return dict(loss=loss.detach(), dw1=d[0], db1=d[1], dw2=d[2])

    return {"real": real, "fake": fake, "x_hat": x_hat}, w, run


def lstm_direction(torch, p, x, mask, sfx, reverse):
    """torch.nn.LSTM's cell (gates i, f, g, o) over padded rows, written as a
    loop: padded steps keep (h, c), as packed sequences do."""
    xw = x @ p["lstm.weight_ih_" + sfx].T + p["lstm.bias_ih_" + sfx]
    w_hh, b_hh = p["lstm.weight_hh_" + sfx], p["lstm.bias_hh_" + sfx]
    steps = x.shape[1]
    h = c = x.new_zeros(x.shape[0], N_STATE)
    ys, zs = [None] * steps, [None] * steps
    for t in (reversed(range(steps)) if reverse else range(steps)):
        i, f, gg, o = (xw[:, t] + h @ w_hh.T + b_hh).chunk(4, -1)
        c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h2 = torch.sigmoid(o) * torch.tanh(c2)
        m = mask[:, t, None]
        ys[t], zs[t] = torch.where(m, h2, h2.new_zeros(())), c2 * 0.5
        h, c = torch.where(m, h2, h), torch.where(m, c2, c)
    return h, c, torch.stack(ys, 1), torch.stack(zs, 1)


LSTM_WEIGHTS = ["lstm.%s_%s%s" % (kind, part, sfx) for sfx in ("l0", "l0_reverse")
                for kind, part in (("weight", "ih_"), ("weight", "hh_"), ("bias", "ih_"),
                                   ("bias", "hh_"))]


def case_lstm(torch, g):
    w = {}
    for name in LSTM_WEIGHTS:
        n_x = N_IN if "_ih_" in name else N_STATE
        shape = (4 * N_STATE, n_x) if ".weight" in name else (4 * N_STATE,)
        w[name] = torch.randn(*shape, generator=g) * 0.5
    x = torch.randn(3, 5, N_IN, generator=g)
    lengths = torch.tensor([5, 2, 3], dtype=torch.int32)
    r = torch.randn(3, 5, 2 * N_STATE, generator=g)
    mask = torch.arange(5)[None, :] < lengths[:, None]

    def run(dtype):
        p = dict(zip(w, leaves(dtype, *w.values())))
        (xg,) = leaves(dtype, x)
        h_f, c_f, y_f, z_f = lstm_direction(torch, p, xg, mask, "l0", False)
        h_b, c_b, y_b, z_b = lstm_direction(torch, p, xg, mask, "l0_reverse", True)
        loss = ((torch.cat([y_f, y_b], -1) * r.to(dtype)).sum() + (h_f * c_b).sum()
                + torch.tanh(z_f * z_b).sum())
        d = grads(torch, loss, [xg] + [p[k] for k in LSTM_WEIGHTS])
        names = ["dx", "dwi", "dwh", "dbi", "dbh", "dwi_r", "dwh_r", "dbi_r", "dbh_r"]
        want = {"loss": loss.detach()}
        want.update(zip(names, d))
        return want

    return {"x": x, "lengths": lengths, "r": r}, w, run


def rnn_step(torch, h, s, x_t, u_t, t, w):
    (grad_e,) = torch.autograd.grad((h * h * h).sum() * 0.1, h, create_graph=True)
    a = h
    for j in range(w.shape[0]):         # the scan over w's rows
        a = torch.tanh(a * w[j]) + a * 0.5
    h2 = torch.tanh(h @ w + x_t * float(t + 1) - 0.1 * grad_e) + 0.1 * a
    return h2, s + (h2 * u_t).sum(-1), h2 * u_t


def case_rnn(torch, g):
    x = torch.randn(2, 4, N_STATE, generator=g)
    u = torch.randn(2, 4, N_STATE, generator=g)
    w = torch.randn(N_STATE, N_STATE, generator=g) * 0.5
    h0 = torch.randn(2, N_STATE, generator=g)

    def run(dtype):
        xg, ug, wg, h0g = leaves(dtype, x, u, w, h0)
        h, s, ys = h0g, h0g.new_zeros(2), []
        for t in range(4):
            h, s, y = rnn_step(torch, h, s, xg[:, t], ug[:, t], t, wg)
            ys.append(y)
        s_n, ys = s, torch.stack(ys, 1)
        ys_r = [None] * 4
        for t in reversed(range(4)):
            h, s, ys_r[t] = rnn_step(torch, h, s, xg[:, t], ug[:, t], t, wg)
        loss = (ys * ys).sum() + torch.stack(ys_r, 1).sum() + (s_n * s).sum() + h.sum()
        d = grads(torch, loss, [xg, ug, wg, h0g])
        return dict(loss=loss.detach(), dx=d[0], du=d[1], dw=d[2], dh0=d[3])

    return {"x": x, "u": u, "w": w, "h0": h0}, None, run


def rnn64(torch, x, w):
    h, ys = x[0] * 0.5, []
    for t in range(x.shape[0]):
        h = torch.tanh(h @ w + x[t])
        ys.append(h * x[t])
    ys = torch.stack(ys)
    return (ys * ys).sum() + torch.sin(h).sum()


def check_scan64(ck, torch, prog, tag, work, g):
    x, v = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(2))
    w, vw = (torch.randn(3, 3, generator=g, dtype=torch.float64) * 0.5 for _ in range(2))
    h = torch.tensor(1e-5, dtype=torch.float64)
    inputs = {k: mc_e2e.to_numpy(t) for k, t in dict(x=x, w=w, v=v, vw=vw, h=h).items()}
    _, got = mc_e2e.run_program(prog, inputs, work.path("scan64", tag, "out"), work,
                                entry="scan64")
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    dx, dw = (mc_e2e.to_numpy(t) for t in torch.autograd.grad(rnn64(torch, xg, wg), [xg, wg]))
    ck.close("scan64 (%s): dx (float64) = torch.autograd" % tag, got["dx"], dx, 1e-10, 1e-14)
    ck.close("scan64 (%s): dw (float64) = torch.autograd" % tag, got["dw"], dw, 1e-10, 1e-14)
    ck.close("scan64 (%s): grad . v = central finite difference" % tag, got["directional"],
             got["central"], 1e-7, 1e-12)
    MAX_REL["scan64"] = max(MAX_REL.get("scan64", 0.0), mc_e2e.errors(got["dx"], dx)[1],
                            mc_e2e.errors(got["dw"], dw)[1],
                            mc_e2e.errors(got["directional"], got["central"])[1])


CRF_DIMS = dict(n_vocab=13, n_embd=4, n_hidden=4, n_tags=3)
CRF_GRADS = [("d_emb", "embedding.weight"), ("d_wi", "lstm.weight_ih_l0"),
             ("d_wh", "lstm.weight_hh_l0"), ("d_bi", "lstm.bias_ih_l0"),
             ("d_bh", "lstm.bias_hh_l0"), ("d_wi_r", "lstm.weight_ih_l0_reverse"),
             ("d_wh_r", "lstm.weight_hh_l0_reverse"), ("d_bi_r", "lstm.bias_ih_l0_reverse"),
             ("d_bh_r", "lstm.bias_hh_l0_reverse"), ("d_wtag", "hidden2tag.weight"),
             ("d_btag", "hidden2tag.bias"), ("d_start", "crf.start_transitions"),
             ("d_end", "crf.end_transitions"), ("d_trans", "crf.transitions")]


def case_bilstm_crf(torch, g):
    """models/grad_bilstm_crf.model: the mean NLL of test_bilstm_crf's
    reference (nn.LSTM on packed sequences, its CRF's forward algorithm and
    path score, one row at a time), with autograd, in float32 and float64."""
    import test_bilstm_crf as crf
    from types import SimpleNamespace
    d = CRF_DIMS
    torch.manual_seed(int(torch.randint(0, 2 ** 31, (), generator=g)))
    w = crf.random_state(torch, (d["n_vocab"], d["n_embd"], d["n_hidden"], d["n_tags"]),
                         1.0, 0.5)
    tokens, lengths, tags = crf.random_batch(np.random.default_rng(3), 3, 5, d["n_vocab"],
                                             d["n_tags"])
    lstm32 = torch.nn.LSTM(d["n_embd"], d["n_hidden"], bidirectional=True, batch_first=True)

    def run(dtype):
        p = {k: v.to(dtype, copy=True).requires_grad_() for k, v in w.items()}
        lstm = copy.deepcopy(lstm32).to(dtype)
        for k, v in lstm.named_parameters():
            p["lstm." + k] = v
            with torch.no_grad():
                v.copy_(w["lstm." + k])
        rnn, F = torch.nn.utils.rnn, torch.nn.functional
        x = F.embedding(torch.from_numpy(np.maximum(tokens, 0).astype(np.int64)),
                        p["embedding.weight"])
        packed = rnn.pack_padded_sequence(x, torch.from_numpy(lengths.astype(np.int64)),
                                          batch_first=True, enforce_sorted=False)
        out, _ = rnn.pad_packed_sequence(lstm(packed)[0], batch_first=True,
                                         total_length=tokens.shape[1])
        e = F.linear(out, p["hidden2tag.weight"], p["hidden2tag.bias"])
        ref = SimpleNamespace(torch=torch, start=p["crf.start_transitions"],
                              end=p["crf.end_transitions"], trans=p["crf.transitions"])
        nll = [crf.Reference.log_partition(ref, e[b], int(n))
               - crf.Reference.path_score(ref, e[b], [int(y) for y in tags[b, :n]])
               for b, n in enumerate(lengths)]
        loss = torch.stack(nll).mean()
        dw = grads(torch, loss, [p[name] for _, name in CRF_GRADS])
        want = {"loss": loss.detach()}
        want.update((out_name, t) for (out_name, _), t in zip(CRF_GRADS, dw))
        return want

    inputs = {"tokens": torch.from_numpy(tokens), "lengths": torch.from_numpy(lengths),
              "tags": torch.from_numpy(tags)}
    return inputs, w, run


S2S_DIMS = dict(n_src_vocab=11, n_tgt_vocab=9, n_embd=4, n_hidden=4)
S2S_GRADS = [("d_src_embed", "src_embed.weight"), ("d_tgt_embed", "tgt_embed.weight")]
S2S_GRADS += [("d_enc_%s%s" % (short, sfx), "encoder.%s_l0%s" % (name, rev))
              for sfx, rev in (("", ""), ("_r", "_reverse"))
              for short, name in (("wi", "weight_ih"), ("wh", "weight_hh"), ("bi", "bias_ih"),
                                  ("bh", "bias_hh"))]
S2S_GRADS += [("d_bridge_hw", "bridge_h.weight"), ("d_bridge_hb", "bridge_h.bias"),
              ("d_bridge_cw", "bridge_c.weight"), ("d_bridge_cb", "bridge_c.bias"),
              ("d_dec_wi", "decoder.weight_ih"), ("d_dec_wh", "decoder.weight_hh"),
              ("d_dec_bi", "decoder.bias_ih"), ("d_dec_bh", "decoder.bias_hh"),
              ("d_attn", "attn.weight"), ("d_attn_out", "attn_out.weight"),
              ("d_out_w", "out.weight"), ("d_out_b", "out.bias")]


def case_seq2seq(torch, g):
    """models/grad_seq2seq.model: the teacher-forced token-mean NLL by
    test_seq2seq's reference (nn.LSTM on packed sequences, nn.LSTMCell, one
    row and one step at a time), autograd, in float32 and float64."""
    import test_seq2seq as s2s
    d = S2S_DIMS
    torch.manual_seed(int(torch.randint(0, 2 ** 31, (), generator=g)))
    ref = s2s.Reference(torch, d["n_src_vocab"], d["n_tgt_vocab"], d["n_embd"],
                        d["n_hidden"], 1.0, 2)
    rng = np.random.default_rng(4)
    src = rng.integers(0, d["n_src_vocab"], size=(3, 4)).astype(np.int32)
    lengths = np.array([4, 1, 2], dtype=np.int32)
    gold = rng.integers(0, d["n_tgt_vocab"], size=(3, 4)).astype(np.int32)
    tgt_in = np.concatenate([np.ones((3, 1), np.int32), gold[:, :-1]], axis=1)
    tgt_lengths = np.array([2, 4, 3], dtype=np.int32)

    def run(dtype):
        r = copy.copy(ref)
        r.mods = copy.deepcopy(ref.mods).to(dtype)
        total = 0
        for b in range(3):
            memory, state = r.encode(src[b], lengths[b])
            for t in range(tgt_lengths[b]):
                state, logp = r.step(memory, state, int(tgt_in[b, t]))
                total = total - logp[int(gold[b, t])]
        loss = total / float(tgt_lengths.sum())
        params = dict(r.mods.named_parameters())
        dw = grads(torch, loss, [params[name] for _, name in S2S_GRADS])
        want = {"loss": loss.detach()}
        want.update((out_name, t) for (out_name, _), t in zip(S2S_GRADS, dw))
        return want

    inputs = {"src": src, "lengths": lengths, "tgt_in": tgt_in, "tgt_out": gold,
              "tgt_lengths": tgt_lengths}
    weights = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    return {k: torch.from_numpy(v) for k, v in inputs.items()}, weights, run


ENCODER_DIMS = dict(d_model=8, nhead=2, dim_feedforward=12)
ENCODER_GRADS = [("d_in_w", "self_attn.in_proj_weight"), ("d_in_b", "self_attn.in_proj_bias"),
                 ("d_out_w", "self_attn.out_proj.weight"),
                 ("d_out_b", "self_attn.out_proj.bias"), ("d_lin1_w", "linear1.weight"),
                 ("d_lin1_b", "linear1.bias"), ("d_lin2_w", "linear2.weight"),
                 ("d_lin2_b", "linear2.bias"), ("d_norm1_w", "norm1.weight"),
                 ("d_norm1_b", "norm1.bias"), ("d_norm2_w", "norm2.weight"),
                 ("d_norm2_b", "norm2.bias")]


def case_activations(torch, g):
    """models/grad_activations.model: every activation of
    models/lib/activations.model, weighted by its row of v."""
    F = torch.nn.functional
    x = 3 * torch.randn(64, generator=g)
    v = torch.randn(13, 64, generator=g)

    def run(dtype):
        (xg,) = leaves(dtype, x)
        acts = [F.relu(xg), torch.sigmoid(xg), torch.tanh(xg), F.leaky_relu(xg, 0.01),
                F.elu(xg), F.selu(xg), F.softplus(xg), F.softsign(xg), F.silu(xg), F.mish(xg),
                F.gelu(xg), F.gelu(xg, approximate="tanh"), F.hardsigmoid(xg)]
        loss = sum((v[k].to(dtype) * a).sum() for k, a in enumerate(acts))
        (dx,) = grads(torch, loss, [xg])
        return {"loss": loss.detach(), "dx": dx}

    return {"x": x, "v": v}, None, run


def case_transformer(torch, g):
    """models/grad_transformer.model: torch.nn.TransformerEncoderLayer
    (post-norm, ReLU, no dropout) with a key padding mask, autograd, in
    float32 and float64."""
    d = ENCODER_DIMS
    torch.manual_seed(int(torch.randint(0, 2 ** 31, (), generator=g)))
    layer = torch.nn.TransformerEncoderLayer(d["d_model"], d["nhead"], d["dim_feedforward"],
                                             dropout=0.0, batch_first=True)
    x = torch.randn(2, 5, d["d_model"], generator=g)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[1, 3:] = True
    r = torch.randn(2, 5, d["d_model"], generator=g)

    def run(dtype):
        lay = copy.deepcopy(layer).to(dtype)
        xg = x.to(dtype, copy=True).requires_grad_()
        loss = (lay(xg, src_key_padding_mask=pad) * r.to(dtype)).sum()
        params = dict(lay.named_parameters())
        dw = grads(torch, loss, [xg] + [params[name] for _, name in ENCODER_GRADS])
        want = {"loss": loss.detach(), "dx": dw[0]}
        want.update((out_name, t) for (out_name, _), t in zip(ENCODER_GRADS, dw[1:]))
        return want

    weights = {"layers.0." + k: v.detach().clone() for k, v in layer.state_dict().items()}
    return {"x": x, "pad": pad, "r": r}, weights, run


GPT2_DIMS = dict(n_layer=1, n_head=2, n_embd=8, n_vocab=13, n_ctx=8)
GPT2_GRADS = [("d_wte", "wte.weight"), ("d_wpe", "wpe.weight"),
              ("d_ln1_w", "h.0.ln_1.weight"), ("d_ln1_b", "h.0.ln_1.bias"),
              ("d_attn_w", "h.0.attn.c_attn.weight"), ("d_attn_b", "h.0.attn.c_attn.bias"),
              ("d_attn_proj_w", "h.0.attn.c_proj.weight"),
              ("d_attn_proj_b", "h.0.attn.c_proj.bias"), ("d_ln2_w", "h.0.ln_2.weight"),
              ("d_ln2_b", "h.0.ln_2.bias"), ("d_fc_w", "h.0.mlp.c_fc.weight"),
              ("d_fc_b", "h.0.mlp.c_fc.bias"), ("d_mlp_proj_w", "h.0.mlp.c_proj.weight"),
              ("d_mlp_proj_b", "h.0.mlp.c_proj.bias"), ("d_lnf_w", "ln_f.weight"),
              ("d_lnf_b", "ln_f.bias")]


def case_gpt2(torch, g):
    """models/grad_gpt2.model: the mean next-token cross-entropy of
    test_gpt2's reference logits (causal attention, gelu_new, tied head), in
    float32 and float64."""
    import test_gpt2
    w = test_gpt2.random_weights(torch, **GPT2_DIMS)
    tokens = torch.randint(0, GPT2_DIMS["n_vocab"], (6,), generator=g, dtype=torch.int32)
    targets = torch.randint(0, GPT2_DIMS["n_vocab"], (6,), generator=g, dtype=torch.int32)

    def run(dtype):
        p = {k: v.to(dtype, copy=True).requires_grad_() for k, v in w.items()}
        logits = test_gpt2.reference_logits(torch, p, tokens.long(), **GPT2_DIMS)
        loss = torch.nn.functional.cross_entropy(logits, targets.long())
        dw = grads(torch, loss, [p[name] for _, name in GPT2_GRADS])
        want = {"loss": loss.detach()}
        want.update((out_name, t) for (out_name, _), t in zip(GPT2_GRADS, dw))
        return want

    return {"tokens": tokens, "targets": targets}, w, run


def smooth64(torch, x):
    s = torch.softmax(x * x, -1)
    return ((torch.log_softmax(x, -1) * s).sum() + torch.logsumexp(torch.sin(x).flatten(), 0)
            + (torch.sqrt(x * x + 1) * torch.tanh(x)).sum())


def check_fd64(ck, torch, prog, tag, work, g):
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    v = torch.randn(3, 4, generator=g, dtype=torch.float64)
    h = torch.tensor(1e-5, dtype=torch.float64)
    _, got = mc_e2e.run_program(prog, {"x": mc_e2e.to_numpy(x), "v": mc_e2e.to_numpy(v),
                                       "h": mc_e2e.to_numpy(h)},
                                work.path("fd64", tag, "out"), work, entry="fd64")
    xg = x.clone().requires_grad_()
    (dx,) = torch.autograd.grad(smooth64(torch, xg), xg)
    ck.close("fd64 (%s): dx (float64) = torch.autograd" % tag, got["dx"], mc_e2e.to_numpy(dx),
             1e-10, 1e-14)
    ck.close("fd64 (%s): grad . v = central finite difference" % tag, got["directional"],
             got["central"], 1e-7, 1e-12)
    MAX_REL["fd64"] = max(MAX_REL.get("fd64", 0.0),
                          mc_e2e.errors(got["dx"], mc_e2e.to_numpy(dx))[1],
                          mc_e2e.errors(got["directional"], got["central"])[1])


CASES = [("elementwise", case_elementwise), ("broadcasting", case_broadcasting),
         ("matmul", case_matmul), ("reductions", case_reductions),
         ("cross_entropy", case_cross_entropy), ("movement", case_movement),
         ("layer_norm", case_layer_norm), ("embedding", case_embedding),
         ("mlp", case_mlp), ("penalty", case_penalty), ("lstm", case_lstm),
         ("rnn", case_rnn), ("decoding", case_decoding)]


# (model, -D defines, entries and their cases): the language's rule groups,
# then model families' losses through their own model files (a model without
# entry blocks has one entry, named after its file)
PROGRAMS = [("grad.model", None, CASES),
            ("grad_bilstm_crf.model", CRF_DIMS, [("nll_grad", case_bilstm_crf)]),
            ("grad_seq2seq.model", S2S_DIMS, [("teacher_forced", case_seq2seq)]),
            ("grad_activations.model", None, [("grad_activations", case_activations)]),
            ("grad_transformer.model", ENCODER_DIMS, [("grad_transformer", case_transformer)]),
            ("grad_gpt2.model", GPT2_DIMS, [("grad_gpt2", case_gpt2)])]


def build(work, model, defines):
    """The programs of one model: both backends at -O2 (fusion of the
    gradients' loops, hoisting, CSE), or under the sanitizers the C
    backend's kernels unfused (a sanitized -O2 build of this many kernels
    costs 25 s of cc)."""
    path = mc_e2e.model_path(model)
    stem = model[:-len(".model")]
    if mc_e2e.SANITIZE:
        return [("c -O0", mc_e2e.compile_model(path, work.path("c", stem), opt=0,
                                                defines=defines))]
    return [("c -O2", mc_e2e.compile_model(path, work.path("c", stem), opt=2, defines=defines)),
            ("llvm -O2", mc_e2e.compile_model(path, work.path("llvm", stem), opt=2,
                                              defines=defines, extra=["--backend", "llvm"]))]


def materialize(work, entry, case, torch, g):
    """A case's inputs as arrays, its weights' file (or None), and torch's
    results in float32 and float64."""
    inputs, weights, run = case(torch, g)
    want, want64 = run(torch.float32), run(torch.float64)
    wpath = None
    if weights:
        wpath = work.path(entry, "w.safetensors")
        mc_e2e.write_safetensors(wpath, weights)
    return ({k: mc_e2e.to_numpy(v.detach()) for k, v in inputs.items()}, wpath, want,
            want64)


def body(ck, work):
    torch = mc_e2e.import_torch()
    g = torch.Generator().manual_seed(7)
    for model, defines, cases in PROGRAMS:
        progs = build(work, model, defines)
        for entry, case in cases:
            inputs, wpath, want, want64 = materialize(work, entry, case, torch, g)
            outs = {}
            for tag, prog in progs:
                # a model without entry blocks: one entry, named after it
                _, got = mc_e2e.run_program(prog, inputs, work.path(entry, tag, "out"), work,
                                            weights=wpath,
                                            entry=None if model == entry + ".model" else entry)
                compare(ck, "%s (%s)" % (entry, tag), entry, got, want, want64)
                outs[tag] = got
            if len(outs) == 2:
                (_, a), (_, b) = outs.items()
                for name in sorted(a):
                    ck.bits_equal("%s: %s, LLVM = C bit for bit" % (entry, name), b.get(name),
                                  a[name])
        if model == "grad.model":
            for tag, prog in progs:
                check_fd64(ck, torch, prog, tag, work, g)
                check_scan64(ck, torch, prog, tag, work, g)
    print("float32 entries against torch.autograd in float64, the worst over the programs "
          "run and outputs: modelc max rel (where |ref64| >= eps*max|ref64|) / norm-wise, "
          "torch f32 max rel / norm-wise, the worst element's share of its bound:")
    for entry, st in STATS.items():
        print("  %-17s modelc %.2g / %.2g, torch f32 %.2g / %.2g, %.2f" % ((entry,) + tuple(st)))
    print("float64 entries, max relative error: " +
          ", ".join("%s %.2g" % kv for kv in MAX_REL.items()))


if __name__ == "__main__":
    mc_e2e.main("test_grad", body)
