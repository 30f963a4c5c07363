"""models/grad.model: gradients compiled by the autodiff pass against
torch.autograd on the same inputs and weights, one entry point per group
of derivative rules, all in one program: built by the C backend and by
the LLVM backend at -O2, each checked, and the two equal bit for bit;
under the sanitizers (build-san) one program, the C backend's at -O0.

Tolerance (float32): |got - ref| <= ATOL + RTOL * |ref|, RTOL = 1e-4, ATOL =
1e-5 * max|ref| of the output (the gradients are sums over the batch run in
another order than torch's, and terms near zero are differences of larger
ones). The inputs include ties, where torch's conventions decide: maximum
and minimum give each operand half the gradient where they are equal
(torch.maximum), max and min reductions share it evenly among the equal
elements (torch.amax), abs has derivative 0 at 0.

float64 (entry fd64): the gradient against torch.autograd in float64
(RTOL 1e-10), and its product with a direction against central finite
differences computed by the program itself (step 1e-5: error O(h^2) ~ 1e-10,
RTOL 1e-7).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

RTOL = 1e-4
N_IN, N_HIDDEN, N_OUT, N_VOCAB, N_EMBD = 6, 8, 5, 11, 4
MAX_REL = {}


def compare(ck, what, entry, got, want):
    for name, ref in want.items():
        ref = mc_e2e.to_numpy(ref)
        atol = 1e-5 * float(np.abs(ref).max()) if ref.size else 0.0
        ck.close("%s: %s" % (what, name), got[name], ref, RTOL, atol)
        _, rel = mc_e2e.errors(got[name], ref, atol if atol > 0 else None)
        MAX_REL[entry] = max(MAX_REL.get(entry, 0.0), rel)


def grads(torch, loss, wrt):
    return [g.detach() for g in torch.autograd.grad(loss, wrt)]


def chain(torch, x, y):
    a = torch.exp(x) * torch.sin(y) + torch.log1p(x * x) - torch.tanh(x) / (1 + y.abs())
    b = torch.sqrt(x.abs() + 1) + torch.erf(x) * torch.cos(y) + torch.sigmoid(x) * torch.expm1(y / 4)
    c = (x.abs() + 0.5) ** y + torch.log(y.abs() + 1) + (x.double() * 2.0).float()
    d = (torch.maximum(x, y) + 3 * torch.minimum(x, y) + torch.maximum(x, torch.zeros(()))
         + torch.where(x > y, x * y, -x))
    return (a + b + c + d + torch.floor(x) + torch.sign(y) + torch.remainder(x, 1.5)).sum()


def case_elementwise(torch, g):
    x = torch.randn(12, generator=g)
    y = torch.randn(12, generator=g)
    x[0] = y[0]          # a tie of maximum and minimum
    x[1] = 0.0           # maximum(x, 0) and abs at 0
    inputs = {"x": x, "y": y}
    x.requires_grad_()
    y.requires_grad_()
    loss = chain(torch, x, y)
    dx, dy = grads(torch, loss, [x, y])
    return inputs, {"loss": loss.detach(), "dx": dx, "dy": dy}


def case_broadcasting(torch, g):
    a = torch.randn(3, 1, 4, generator=g, requires_grad=True)
    b = torch.randn(5, 1, generator=g, requires_grad=True)
    c = torch.randn(4, generator=g, requires_grad=True)
    loss = ((a + b) * c - a / (b * b + 3) + c).sum()
    da, db, dc = grads(torch, loss, [a, b, c])
    return {"a": a, "b": b, "c": c}, {"loss": loss.detach(), "da": da, "db": db, "dc": dc}


def case_matmul(torch, g):
    a = torch.randn(3, 4, generator=g, requires_grad=True)
    b = torch.randn(4, 5, generator=g, requires_grad=True)
    q = torch.randn(5, 4, generator=g, requires_grad=True)
    p = torch.randn(2, 3, 4, generator=g, requires_grad=True)
    v = torch.randn(4, generator=g, requires_grad=True)
    r = (torch.tanh(a @ b).sum() + torch.sin(a @ q.T).sum()
         + (torch.cos(a @ b) * (p @ b)).sum())
    loss = r + (v @ b).sum() + (a @ v * 2).sum() + v @ v + torch.sigmoid(b.T @ a.T).sum()
    d = grads(torch, loss, [a, b, q, p, v])
    names = ["a", "b", "q", "p", "v"]
    want = {"loss": loss.detach()}
    want.update({"d" + n: t for n, t in zip(names, d)})
    return {"a": a, "b": b, "q": q, "p": p, "v": v}, want


def case_reductions(torch, g):
    x = torch.randn(4, 5, generator=g)
    x[0, 1] = x[0, 2] = x[0].max() + 1    # a tie of the row's max and of max(x)
    x[1, 0] = x[2, 0] = x[:, 0].min() - 1  # a tie of the column's min
    inputs = {"x": x.clone()}
    x.requires_grad_()
    s = (x * x).sum(1, keepdim=True) * x.mean(0, keepdim=True)
    m = torch.amax(x, 1).sum() + 2 * torch.amin(x, 0).sum() + torch.amax(x)
    loss = (s.sum() + m.sum() + torch.logsumexp(x, -1).sum()
            + torch.var(x, 0, unbiased=False).sum())
    (dx,) = grads(torch, loss, [x])
    return inputs, {"loss": loss.detach(), "dx": dx}


def case_cross_entropy(torch, g):
    logits = torch.randn(6, 7, generator=g) * 3
    targets = torch.randint(0, 7, (6,), generator=g, dtype=torch.int32)
    inputs = {"logits": logits.clone(), "targets": targets}
    logits.requires_grad_()
    logp = torch.log_softmax(logits, -1)
    picked = logp.gather(1, targets.long()[:, None])[:, 0]
    p = torch.softmax(logits * 0.5, -1)
    loss = (-picked).mean() + (p * p).sum() + torch.logsumexp(logits, 0).mean()
    (d,) = grads(torch, loss, [logits])
    return inputs, {"loss": loss.detach(), "dlogits": d}


def case_embedding(torch, g):
    emb = torch.randn(N_VOCAB, N_EMBD, generator=g, requires_grad=True)
    tokens = torch.randint(0, N_VOCAB, (3, 5), generator=g, dtype=torch.int32)
    tokens[0, 0] = tokens[2, 4] = tokens[1, 1]      # rows gathered several times
    cols = torch.tensor([4, 0, 4, 2], dtype=torch.int32)
    x = torch.randn(3, 5, generator=g, requires_grad=True)
    e = emb[tokens.long()]
    xc = x[:, cols.long()]
    loss = (torch.tanh(e) * x[:, :, None]).sum() + (xc * xc).sum()
    demb, dx = grads(torch, loss, [emb, x])
    return ({"tokens": tokens, "cols": cols, "x": x}, {"emb.weight": emb},
            {"loss": loss.detach(), "demb": demb, "dx": dx})


def case_movement(torch, g):
    x = torch.randn(4, 6, generator=g, requires_grad=True)
    y = torch.cat([x[:, 1:4], x[:, 0:2] * 2, x[:, 5:6]], 1)
    y = torch.cat([y[1:, :], y[0:1, :] * 3], 0)
    z = y.reshape(3, -1, 1).permute(2, 0, 1)
    loss = (torch.sin(z) * x[0, 0:1].broadcast_to(1, 3, 1)).sum() + (x[:, 2] * x[:, 3]).sum()
    (dx,) = grads(torch, loss, [x])
    return {"x": x}, {"loss": loss.detach(), "dx": dx}


def case_layer_norm(torch, g):
    x = torch.randn(3, 8, generator=g, requires_grad=True)
    gamma = torch.randn(8, generator=g, requires_grad=True)
    beta = torch.randn(8, generator=g, requires_grad=True)
    r = torch.randn(3, 8, generator=g)
    loss = (torch.nn.functional.layer_norm(x, (8,), gamma, beta, 1e-5) * r).sum()
    dx, dg, db = grads(torch, loss, [x, gamma, beta])
    return ({"x": x, "g": gamma, "b": beta, "r": r},
            {"loss": loss.detach(), "dx": dx, "dg": dg, "db": db})


def linear_params(torch, g, prefix, d_in, d_out):
    return {"%s.weight" % prefix: torch.randn(d_out, d_in, generator=g) / d_in ** 0.5,
            "%s.bias" % prefix: torch.randn(d_out, generator=g) * 0.1}


def case_mlp(torch, g):
    w = dict(linear_params(torch, g, "fc1", N_IN, N_HIDDEN))
    w.update(linear_params(torch, g, "fc2", N_HIDDEN, N_OUT))
    x = torch.randn(7, N_IN, generator=g)
    targets = torch.randint(0, N_OUT, (7,), generator=g, dtype=torch.int32)
    p = {k: v.clone().requires_grad_() for k, v in w.items()}
    F = torch.nn.functional
    h = torch.tanh(F.linear(x, p["fc1.weight"], p["fc1.bias"]))
    loss = F.cross_entropy(F.linear(h, p["fc2.weight"], p["fc2.bias"]), targets.long())
    d = grads(torch, loss, [p["fc1.weight"], p["fc1.bias"], p["fc2.weight"], p["fc2.bias"]])
    return ({"x": x, "targets": targets}, w,
            dict(loss=loss.detach(), dw1=d[0], db1=d[1], dw2=d[2], db2=d[3]))


def case_penalty(torch, g):
    w = dict(linear_params(torch, g, "d1", N_IN, N_HIDDEN))
    w.update(linear_params(torch, g, "d2", N_HIDDEN, 1))
    real = torch.randn(5, N_IN, generator=g)
    fake = torch.randn(5, N_IN, generator=g)
    eps = torch.rand(5, 1, generator=g)
    x_hat = eps * real + (1 - eps) * fake
    p = {k: v.clone().requires_grad_() for k, v in w.items()}
    F = torch.nn.functional

    def critic(x):
        return F.linear(torch.tanh(F.linear(x, p["d1.weight"], p["d1.bias"])),
                        p["d2.weight"], p["d2.bias"])

    xh = x_hat.clone().requires_grad_()
    (gx,) = torch.autograd.grad(critic(xh).sum(), xh, create_graph=True)
    norm = torch.sqrt((gx * gx).sum(-1))
    loss = critic(fake).mean() - critic(real).mean() + 10.0 * ((norm - 1) ** 2).mean()
    d = grads(torch, loss, [p["d1.weight"], p["d1.bias"], p["d2.weight"]])
    return ({"real": real, "fake": fake, "x_hat": x_hat}, w,
            dict(loss=loss.detach(), dw1=d[0], db1=d[1], dw2=d[2]))


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
         ("mlp", case_mlp), ("penalty", case_penalty)]


def body(ck, work):
    torch = mc_e2e.import_torch()
    g = torch.Generator().manual_seed(7)
    model = mc_e2e.model_path("grad.model")
    if mc_e2e.SANITIZE:
        # one program: the C backend's kernels under ASan and UBSan, unfused
        # (a sanitized -O2 build of this many kernels costs 25 s of cc)
        progs = [("c -O0", mc_e2e.compile_model(model, work.path("c", "grad"), opt=0))]
    else:
        # both backends after every pass (fusion of the gradients' loops,
        # hoisting, CSE)
        progs = [("c -O2", mc_e2e.compile_model(model, work.path("c", "grad"), opt=2)),
                 ("llvm -O2", mc_e2e.compile_model(model, work.path("llvm", "grad"), opt=2,
                                                   extra=["--backend", "llvm"]))]
    for entry, case in CASES:
        made = case(torch, g)
        inputs, weights, want = made if len(made) == 3 else (made[0], None, made[1])
        wpath = None
        if weights:
            wpath = work.path(entry, "w.safetensors")
            mc_e2e.write_safetensors(wpath, weights)
        inputs = {k: mc_e2e.to_numpy(v.detach()) for k, v in inputs.items()}
        outs = {}
        for tag, prog in progs:
            _, got = mc_e2e.run_program(prog, inputs, work.path(entry, tag, "out"), work,
                                        weights=wpath, entry=entry)
            compare(ck, "%s (%s)" % (entry, tag), entry, got, want)
            outs[tag] = got
        if len(outs) == 2:
            (_, a), (_, b) = outs.items()
            for name in sorted(a):
                ck.bits_equal("%s: %s, LLVM = C bit for bit" % (entry, name), b.get(name),
                              a[name])
    for tag, prog in progs:
        check_fd64(ck, torch, prog, tag, work, g)
    print("max relative error per entry, over the programs run: " +
          ", ".join("%s %.2g" % kv for kv in MAX_REL.items()))


if __name__ == "__main__":
    mc_e2e.main("test_grad", body)
