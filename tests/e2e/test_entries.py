"""Several entry points in one model file (`entry NAME { ... }`): the program
takes the entry's name first (PROG ENTRY name=FILE.npy ... -o OUTDIR), the
header declares one run function per entry over one shared weights handle,
and --entry NAME compiles just one. References: torch on the same weights.
Tolerance: |got - ref| <= 1e-5 + 1e-5 * |ref| (float32 matmul and sums).
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

MODEL = """\
# two entry points sharing a function and a weight
const n = 6
param w: f32[n, n] from "proj.weight"
fn proj(x) = tanh(x @ w.T)

entry encode {
  input x: f32[B, n]
  output y = proj(x)
}

entry score {
  input x: f32[n]
  input k: i32[K]
  output s = sum(proj(x[None, :])[0, k])
}

entry double {
  input x: f32[n]
  output d = 2 * x
}
"""
RTOL = 1e-5
ATOL = 1e-5


def body(ck, work):
    torch = mc_e2e.import_torch()
    model = work.path("two.model")
    with open(model, "w") as f:
        f.write(MODEL)
    g = torch.Generator().manual_seed(5)
    w = torch.randn(6, 6, generator=g)
    weights = work.path("two.safetensors")
    mc_e2e.write_safetensors(weights, {"proj.weight": w})
    x = torch.randn(3, 6, generator=g)
    x1 = torch.randn(6, generator=g)
    k = torch.tensor([0, 5, 2, 2], dtype=torch.int32)
    want_y = torch.tanh(x @ w.T)
    want_s = torch.tanh(x1 @ w.T)[k.long()].sum()

    prog = mc_e2e.compile_model(model, work.path("two"), weights=weights)
    xs = mc_e2e.save_npy(work.next_input_path("x"), mc_e2e.to_numpy(x))
    x1s = mc_e2e.save_npy(work.next_input_path("x1"), mc_e2e.to_numpy(x1))
    ks = mc_e2e.save_npy(work.next_input_path("k"), mc_e2e.to_numpy(k))
    mc_e2e.run([prog, "encode", "x=" + xs, "-o", work.path("o1")])
    ck.close("entry encode: y", mc_e2e.load_npy(work.path("o1", "y.npy")),
             mc_e2e.to_numpy(want_y), RTOL, ATOL)
    mc_e2e.run([prog, "score", "--weights", weights, "x=" + x1s, "k=" + ks,
                "-o", work.path("o2")])
    ck.close("entry score: s", mc_e2e.load_npy(work.path("o2", "s.npy")),
             mc_e2e.to_numpy(want_s), RTOL, ATOL)

    res = mc_e2e.run([prog, "--help"], check=False)
    ck.check("PROG --help lists the entries", res.returncode == 0 and
             "entries: encode score double" in res.stdout, res.stdout.strip())
    # an entry loads only the weights it uses: none here, so no file at all
    # (the compile-time default is ignored because the file is gone)
    os.rename(weights, weights + ".moved")
    mc_e2e.run([prog, "double", "x=" + x1s, "-o", work.path("o6")])
    ck.close("entry double (no weights): d", mc_e2e.load_npy(work.path("o6", "d.npy")),
             mc_e2e.to_numpy(2 * x1), 0, 0)
    os.rename(weights + ".moved", weights)
    res = mc_e2e.run([prog, "decode", "x=" + xs, "-o", work.path("o3")], check=False)
    ck.command_failed_cleanly("unknown entry", res)
    ck.check("unknown entry: named", "unknown entry 'decode'" in res.stderr, res.stderr.strip())
    ck.check("unknown entry: nothing written", not os.path.exists(work.path("o3")))
    res = mc_e2e.run([prog, "x=" + xs, "-o", work.path("o4")], check=False)
    ck.command_failed_cleanly("no entry given", res)

    # --entry NAME: a single-entry program, no entry argument
    one = mc_e2e.compile_model(model, work.path("score_only"), weights=weights,
                               extra=["--entry", "score"])
    _, out = mc_e2e.run_program(one, {"x": x1s, "k": ks}, work.path("o5"), work)
    ck.close("--entry score: s", out.get("s"), mc_e2e.to_numpy(want_s), RTOL, ATOL)
    res = mc_e2e.run(mc_e2e.compile_args(model, work.path("nope"), extra=["--entry", "nope"]),
                     check=False)
    ck.command_failed_cleanly("--entry of an unknown entry", res)

    # inspect lists the entries with their interfaces
    import yaml
    info = yaml.safe_load(mc_e2e.run([mc_e2e.modelc(), "inspect", model]).stdout)
    names = [e["name"] for e in info.get("entries", [])]
    ck.check("inspect: entries encode, score, double",
             names == ["encode", "score", "double"], str(names))
    ck.check("inspect: score's inputs x, k",
             [i["name"] for i in info["entries"][1]["inputs"]] == ["x", "k"])

    # --emit c: one header, one run function per entry, warning-free
    cdir = work.path("c")
    mc_e2e.run(mc_e2e.compile_args(model, cdir, emit="c"))
    header = open(os.path.join(cdir, "two.h")).read()
    for decl in ("two_model *two_open(", "int two_encode(two_model *m, int64_t B,",
                 "int two_score(two_model *m, int64_t K,",
                 "extern const McModelInfo *const two_entries[3];"):
        ck.check("header declares %s" % decl, decl in header)
    for cc in ("gcc", "clang"):
        res = subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-c",
                              os.path.join(cdir, "two.c"), "-o", work.path("two_%s.o" % cc)],
                             capture_output=True, text=True)
        ck.check("%s -Wall -Wextra -Werror two.c" % cc, res.returncode == 0, res.stderr.strip())


if __name__ == "__main__":
    mc_e2e.main("test_entries", body)
