"""models/mlp.model against torch.nn.Linear -> GELU -> Linear.

Tolerance: |got - ref| <= 1e-5 + 1e-5 * |ref| (float32; the sums of a matmul
are accumulated in a different order than PyTorch's).
Covers: the default constants, a -D configuration of odd sizes, weights
checked at compile time and loaded at run time, float64 input.
"""
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

RTOL = 1e-5
ATOL = 1e-5


def torch_mlp(torch, n_in, n_hidden, n_out, seed):
    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(collections.OrderedDict([
        ("fc1", nn.Linear(n_in, n_hidden)),
        ("act", nn.GELU()),
        ("fc2", nn.Linear(n_hidden, n_out)),
    ])).eval()


def body(ck, work):
    torch = mc_e2e.import_torch()
    model = mc_e2e.model_path("mlp.model")
    configs = [
        ("default", None, (16, 64, 8), 5),
        ("odd", {"n_in": 7, "n_hidden": 33, "n_out": 3}, (7, 33, 3), 9),
    ]
    for seed, (label, defines, (n_in, n_hidden, n_out), batch) in enumerate(configs):
        net = torch_mlp(torch, n_in, n_hidden, n_out, seed)
        weights = work.path(label, "mlp.safetensors")
        mc_e2e.write_safetensors(weights, net.state_dict())
        x = torch.randn(batch, n_in) * 2
        with torch.no_grad():
            want = mc_e2e.to_numpy(net(x))
        x = mc_e2e.to_numpy(x)
        print("config %s: n_in=%d n_hidden=%d n_out=%d, x %s" % (
            label, n_in, n_hidden, n_out, x.shape))

        prog = mc_e2e.compile_model(model, work.path(label, "mlp"), defines=defines,
                                    weights=weights, opt=2)
        _, out = mc_e2e.run_program(prog, {"x": x}, work.path(label, "out"), work,
                                    weights=weights)
        ck.check("%s: output y present" % label, "y" in out, "outputs: %s" % sorted(out))
        if "y" in out:
            ck.close("%s: y" % label, out["y"], want, RTOL, ATOL)

        _, out = mc_e2e.run_program(prog, {"x": x.astype(np.float64)},
                                    work.path(label, "out64"), work, weights=weights)
        if ck.check("%s: float64 input accepted" % label, "y" in out):
            ck.close("%s: y from float64 x" % label, out["y"], want, RTOL, ATOL)
        mc_e2e.check_threads(ck, label, prog, {"x": x}, work, weights=weights, base=out)

    # Weights given only at run time (checked at load), batch of one.
    net = torch_mlp(torch, 16, 64, 8, 7)
    weights = work.path("late", "mlp.safetensors")
    mc_e2e.write_safetensors(weights, net.state_dict())
    x = torch.randn(1, 16)
    with torch.no_grad():
        want = mc_e2e.to_numpy(net(x))
    prog = mc_e2e.compile_model(model, work.path("late", "mlp"), opt=0)
    _, out = mc_e2e.run_program(prog, {"x": mc_e2e.to_numpy(x)}, work.path("late", "out"),
                                work, weights=weights)
    if ck.check("weights at run time only, -O0: output y present", "y" in out):
        ck.close("weights at run time only, -O0: y", out["y"], want, RTOL, ATOL)


if __name__ == "__main__":
    mc_e2e.main("test_mlp", body)
