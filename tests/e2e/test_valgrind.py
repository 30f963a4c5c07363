"""Generated code under valgrind's memcheck: models/mlp.model (GEMMs with
packed weights, a fused GELU, the thread pool) on two threads, and the same
program refusing a malformed input and a malformed weights file: no invalid
read or write, no use of uninitialized memory, no leak, on success and on
failure. Unsanitized builds only (valgrind and ASan do not mix; tests/
CMakeLists.txt registers it there). Every model family under valgrind:
scripts/valgrind.sh.
"""
import os
import shutil
import sys

os.environ["MC_VALGRIND"] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import mc_e2e  # noqa: E402


def gelu(x):
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


def body(ck, work):
    rng = np.random.default_rng(0)
    w = {"fc1.weight": rng.standard_normal((64, 16)).astype(np.float32),
         "fc1.bias": rng.standard_normal(64).astype(np.float32),
         "fc2.weight": rng.standard_normal((8, 64)).astype(np.float32),
         "fc2.bias": rng.standard_normal(8).astype(np.float32)}
    weights = work.path("mlp.safetensors")
    mc_e2e.write_safetensors(weights, w)
    x = rng.standard_normal((3, 16)).astype(np.float32)
    h = gelu(x.astype(np.float64) @ w["fc1.weight"].T + w["fc1.bias"])
    want = (h @ w["fc2.weight"].T + w["fc2.bias"]).astype(np.float32)

    model = mc_e2e.model_path("mlp.model")
    runs = [("run", {"x": x}, weights, True),
            ("malformed input", {"x": work.path("bad.npy")}, weights, False),
            ("malformed weights", {"x": x}, work.path("bad.safetensors"), False)]
    with open(work.path("bad.npy"), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00\xff\x7f{'descr': '<f4'")
    with open(work.path("bad.safetensors"), "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": {\"dtype\"")
    built = mc_e2e.compile_model(model, work.path("mlp"), weights=weights)
    for name, inputs, wfile, ok in runs:
        # a copy per run: valgrind watches each program's first run
        prog = work.path(name.replace(" ", "_"), "mlp")
        shutil.copy(built, prog)
        res, out = mc_e2e.run_program(prog, inputs, work.path(name.replace(" ", "_"), "out"),
                                      work, weights=wfile, threads=2, check=False)
        if ok:
            ck.check("%s: succeeds" % name, res.returncode == 0, res.stderr.strip()[:300])
            if ck.check("%s: output y" % name, "y" in out, str(sorted(out))):
                ck.close("%s: y" % name, out["y"], want, 1e-5, 1e-5)
        else:
            ck.check("%s: fails with a message" % name,
                     res.returncode == 1 and res.stderr.strip() != "",
                     "exit %d: %s" % (res.returncode, res.stderr.strip()[:300]))
    ck.check("valgrind ran 3 programs", len(mc_e2e.valgrind_runs) == 3,
             str(len(mc_e2e.valgrind_runs)))


if __name__ == "__main__":
    mc_e2e.main("test_valgrind", body)
