"""models/activations.model against torch.nn.functional, at -O0, -O1 and -O2.

Tolerance of the activations: |got - ref| <= 1e-6 + 1e-5 * |ref| (float32;
erf/tanh/exp come from different libraries, and where 1 + erf(x) cancels the
absolute term covers a one-ulp difference of erf).
`rounding` is compared bit for bit with numpy float32, at every level; every
output of -O1 and -O2 with -O0's, bit for bit (fusion rounds each op as
written); and each level's outputs on 1, 2 and 3 threads, bit for bit.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

RTOL = 1e-5
ATOL = 1e-6


def make_input():
    rng = np.random.default_rng(1234)
    parts = [
        np.linspace(-30, 30, 601),                       # the interesting range
        rng.standard_normal(2000) * 3,
        rng.uniform(-1e4, 1e4, 500),                     # large
        rng.uniform(-1e-3, 1e-3, 200),                   # small
        np.exp(rng.uniform(np.log(1e-38), np.log(1e-3), 200)) * rng.choice([-1, 1], 200),
        [0.0, -0.0, 1e-40, -1e-40, 1e-45, 3.0e38, -3.0e38, 88.0, 89.0, -88.0, -104.0,
         20.0, np.nextafter(np.float32(20), np.float32(21)), 19.999998, -3.0, 3.0,
         1.0 / 512, 3.0 / 1024, 5.0 / 1024, 1.0 + 1.0 / 1024, 16383.99, 16384.0, 1e5],
    ]
    return np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])


def torch_references(torch, x):
    F = torch.nn.functional
    t = torch.from_numpy(x)
    return {
        "relu": F.relu(t),
        "sigmoid": torch.sigmoid(t),
        "tanh": torch.tanh(t),
        "leaky_relu": F.leaky_relu(t, 0.01),
        "elu": F.elu(t),
        "selu": F.selu(t),
        "softplus": F.softplus(t),
        "softsign": F.softsign(t),
        "silu": F.silu(t),
        "mish": F.mish(t),
        "gelu_erf": F.gelu(t),
        "gelu_tanh": F.gelu(t, approximate="tanh"),
        "hardsigmoid": F.hardsigmoid(t),
    }


def rounding_reference(x):
    """Scale into the subnormal range and back, each product rounded to float32."""
    down = np.float32(2.0 ** -140)
    up = np.float32(2.0 ** 70)
    with np.errstate(under="ignore"):
        return ((x * down) * up) * up


def body(ck, work):
    torch = mc_e2e.import_torch()
    x = make_input()
    refs = {name: mc_e2e.to_numpy(t) for name, t in torch_references(torch, x).items()}
    want_rounding = rounding_reference(x)
    changed = int((want_rounding != x).sum())
    print("input: %d float32 values in [%g, %g]; rounding changes %d of them"
          % (x.size, x.min(), x.max(), changed))
    ck.check("rounding reference is non-linear (changes some values)", changed > 0)

    model = mc_e2e.model_path("activations.model")
    by_opt = {}
    for opt in (0, 1, 2):
        prog = mc_e2e.compile_model(model, work.path("O%d" % opt, "activations"), opt=opt)
        _, out = mc_e2e.run_program(prog, {"x": x}, work.path("O%d" % opt, "out"), work)
        by_opt[opt] = out
        mc_e2e.check_threads(ck, "-O%d" % opt, prog, {"x": x}, work)
        expected = sorted(list(refs) + ["rounding"])
        ck.check("-O%d outputs" % opt, sorted(out) == expected,
                 "got %s" % ", ".join(sorted(out)))
        for name, want in refs.items():
            if name in out:
                ck.close("-O%d %s" % (opt, name), out[name], want, RTOL, ATOL)
        if "rounding" in out:
            ck.bits_equal("-O%d rounding bit for bit" % opt, out["rounding"], want_rounding)

    # Fusion changes no bit: each op is rounded as written at every level.
    for opt in (1, 2):
        for name in sorted(by_opt[0]):
            if name in by_opt[opt]:
                ck.bits_equal("-O%d %s = -O0's" % (opt, name), by_opt[opt][name],
                              by_opt[0][name])

    # Same model at a second size of the symbolic dimension N, and float64
    # input (converted to float32 by the program).
    prog = work.path("O2", "activations")
    _, out = mc_e2e.run_program(prog, {"x": x[:7].astype(np.float64)}, work.path("O2", "out7"), work)
    ck.check("N=7 from float64 input: outputs present", "relu" in out and "rounding" in out)
    if "relu" in out:
        ck.close("N=7 relu", out["relu"], refs["relu"][:7], RTOL, ATOL)
    if "rounding" in out:
        ck.bits_equal("N=7 rounding bit for bit", out["rounding"], want_rounding[:7])


if __name__ == "__main__":
    mc_e2e.main("test_activations", body)
