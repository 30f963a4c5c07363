#!/usr/bin/python3
"""The float32 error of modelc's gradients next to torch.autograd's, both
against torch.autograd in float64 on the same float32 inputs and weights,
over many draws of tests/e2e/test_grad.py's inputs (run by hand): the
measurement behind test_grad's float32 tolerance.

    cd build && MODELC=$PWD/modelc /usr/bin/python3 \\
        ../tests/tools/grad_f32_error.py [draws] [entry ...]

draws defaults to 100; the entries to every float32 entry of test_grad.
Each model is compiled once (C backend, -O2; the LLVM backend's outputs
equal the C backend's bit for bit, as test_grad checks); draw k of an entry
calls its case with a generator seeded k. Per output it prints the norm-wise
relative error ||got - ref64|| / ||ref64|| of modelc and of torch32 (mean
and max over the draws), the ratio of the two means, and the largest share
of test_grad's per-element bound that any element of any draw used; per
entry the extremes of those.
"""
import os
import sys

import numpy as np

E2E = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e")
sys.path.insert(0, E2E)
import mc_e2e  # noqa: E402
import test_grad  # noqa: E402


class Quiet(mc_e2e.Checker):
    """A checker that counts failures without printing a line per check."""

    def check(self, name, ok, detail=""):
        self.count += 1
        if not ok:
            self.failures.append(name)
        return ok


def main():
    args = sys.argv[1:]
    draws = int(args.pop(0)) if args and args[0].isdigit() else 100
    only = set(args)
    torch = mc_e2e.import_torch()
    work = mc_e2e.Work("grad_f32_error")
    ck = Quiet("grad_f32_error")
    worst = {}
    try:
        for model, defines, cases in test_grad.PROGRAMS:
            cases = [(e, c) for e, c in cases if not only or e in only]
            if not cases:
                continue
            stem = model[:-len(".model")]
            prog = mc_e2e.compile_model(mc_e2e.model_path(model), work.path("c", stem), opt=2,
                                        defines=defines)
            for entry, case in cases:
                stats = {}
                for k in range(draws):
                    inputs, wpath, want, want64 = test_grad.materialize(
                        work, entry, case, torch, torch.Generator().manual_seed(k))
                    _, got = mc_e2e.run_program(
                        prog, inputs, work.path(entry, "out", str(k)), work, weights=wpath,
                        entry=None if model == entry + ".model" else entry)
                    for name in want:
                        _, st = test_grad.close64(ck, name, got[name], want[name], want64[name])
                        stats.setdefault(name, []).append(st)
                print("%s, %d draws: norm-wise relative error (mean, max) of modelc and of "
                      "torch32, modelc's mean / torch32's, the worst element's share of its "
                      "bound" % (entry, draws))
                ratios, shares = [], []
                for name, st in stats.items():
                    st = np.array(st)
                    m, t = st[:, 1], st[:, 3]
                    ratio = m.mean() / t.mean() if t.mean() > 0 else float("nan")
                    print("  %-14s modelc %.2g %.2g  torch32 %.2g %.2g  %.2f  %.2f" % (
                        name, m.mean(), m.max(), t.mean(), t.max(), ratio, st[:, 4].max()))
                    if name != "loss" and t.mean() > 0:
                        ratios.append(ratio)
                    shares.append(st[:, 4].max())
                worst[entry] = (min(ratios), max(ratios), max(shares))
        print("per entry: modelc's mean norm-wise error / torch32's over its gradients "
              "(min, max), the worst element's share of its bound:")
        for entry, (lo, hi, share) in worst.items():
            print("  %-17s %.2f %.2f  %.2f" % (entry, lo, hi, share))
        print("%d of %d outputs over the bound" % (len(ck.failures), ck.count))
    finally:
        work.cleanup(False)
    return 1 if ck.failures else 0


if __name__ == "__main__":
    sys.exit(main())
