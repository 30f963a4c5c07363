"""The optimizer steps of models/lib/optim.model (through the entries of
models/optim.model, which run them for S steps on given gradients) against
torch.optim: SGD with momentum and dampening, with Nesterov momentum, plain
SGD, Adam with its defaults and with L2 weight decay, AdamW with its
defaults, and torch.nn.utils.clip_grad_norm_ over two tensors.

torch runs each optimizer on a leaf tensor whose .grad is set to grads[s]
before its step s + 1, and records the parameters after every step; the
program's trajectory must match it for every step.

Tolerance: |got - ref| <= 1e-6 + 2e-6 * |ref| (float32): the formulas are
torch's, in its order, but torch's vectorized kernels fuse some of the
multiply-adds (one rounding where the program has two), a difference of an
ulp per step that carries from step to step (measured: printed with each
check). The program is compiled once, all entries in one file.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

RTOL = 2e-6
ATOL = 1e-6
S, N = 12, 37  # steps, parameters


def trajectory(torch, make_opt, p0, grads):
    p = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = make_opt([p])
    out = []
    for s in range(grads.shape[0]):
        p.grad = torch.from_numpy(grads[s].copy())
        opt.step()
        out.append(p.detach().numpy().copy())
    return np.stack(out)


def body(ck, work):
    torch = mc_e2e.import_torch()
    prog = mc_e2e.compile_model(mc_e2e.model_path("optim.model"), work.path("optim"), opt=2)
    rng = np.random.default_rng(11)
    p0 = rng.standard_normal(N).astype(np.float32)
    grads = rng.standard_normal((S, N)).astype(np.float32)
    grads[3] *= 100  # a large step, and one with gradients near zero
    grads[7] *= 1e-6
    cases = {
        "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1,
                                                   weight_decay=0.01),
        "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01,
                                                   nesterov=True),
        "sgd_plain": lambda ps: torch.optim.SGD(ps, lr=0.1),
        "adam": lambda ps: torch.optim.Adam(ps),
        "adam_decay": lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
        "adamw": lambda ps: torch.optim.AdamW(ps),
    }
    for entry, make in cases.items():
        want = trajectory(torch, make, p0, grads)
        res, got = mc_e2e.run_program(prog, {"p": p0, "grads": grads},
                                      work.path(entry, "out"), work, entry=entry)
        if ck.check("%s: trajectory written" % entry, "trajectory" in got, res.stderr[-300:]):
            ck.close("%s: parameters after each of %d steps vs torch.optim" % (entry, S),
                     got["trajectory"], want, RTOL, ATOL)
    # clip_grad_norm_: once above the norm (clipped), once below (unchanged)
    g1 = rng.standard_normal((5, 7)).astype(np.float32)
    g2 = rng.standard_normal(7).astype(np.float32)
    for max_norm in (1.0, 100.0):
        t1, t2 = torch.from_numpy(g1.copy()), torch.from_numpy(g2.copy())
        a, b = torch.zeros_like(t1, requires_grad=True), torch.zeros_like(t2, requires_grad=True)
        a.grad, b.grad = t1, t2
        total = torch.nn.utils.clip_grad_norm_([a, b], max_norm)
        _, got = mc_e2e.run_program(prog, {"g1": g1, "g2": g2,
                                           "max_norm": np.float32(max_norm)},
                                    work.path("clip%g" % max_norm, "out"), work, entry="clip")
        tag = "clip_grad_norm_(max_norm=%g)" % max_norm
        ck.close(tag + ": total norm", got["total_norm"], total.numpy(), RTOL, ATOL)
        ck.close(tag + ": first gradient", got["g1_clipped"], a.grad.numpy(), RTOL, ATOL)
        ck.close(tag + ": second gradient", got["g2_clipped"], b.grad.numpy(), RTOL, ATOL)


if __name__ == "__main__":
    mc_e2e.main("test_optim", body)
