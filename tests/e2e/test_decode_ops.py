"""The decoding builtins (LANGUAGE.md, "Decoding") against PyTorch/numpy,
compiled at -O0 and -O2:

- topk (values bit-exact with torch.topk; indices equal to torch.sort(
  descending=True, stable=True)[:k], i.e. ties by lower index - torch.topk's
  own tie order is unspecified), on inputs full of ties, with NaN;
- take_along_axis against torch.gather (bit-exact), cumsum against
  torch.cumsum (f32 accumulates in double on CPU: bit-exact);
- uniform() against a Python reimplementation of the generator of
  runtime/mc_decode.c, bit for bit, and categorical() against an inverse-CDF
  reference in float64;
- a scan with until=true that writes a row per step into a carried cache
  (dynamic_update_slice, updated in place), reads it back (dynamic_slice),
  draws per step and stops early: outputs, zero rows after the exit, the
  step count;
- a start outside the tensor is a clean run-time error.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def uniform_ref(state, n, f64=False):
    """The n draws from an i64 state, and the next state (runtime/mc_decode.c)."""
    s = state & MASK
    key = mix(s)
    out = []
    for i in range(n):
        z = mix((key + (i + 1) * GOLDEN) & MASK)
        out.append((z >> 11) * 2.0 ** -53 if f64 else (z >> 40) * 2.0 ** -24)
    nxt = (s + GOLDEN) & MASK
    if nxt >= 1 << 63:
        nxt -= 1 << 64
    return np.array(out, dtype=np.float64 if f64 else np.float32), np.int64(nxt)


def categorical_ref(p, u):
    """First j with u * total < cumsum(w)[j], w = p where p > 0 else 0 (in
    float64, index order); the last positive index if none."""
    out = []
    for row, uu in zip(p.reshape(-1, p.shape[-1]), u.reshape(-1)):
        w = np.where(row > 0, row, 0).astype(np.float64)
        c = np.cumsum(w)
        target = np.float64(uu) * c[-1]
        hit = np.nonzero(target < c)[0]
        pos = np.nonzero(w > 0)[0]
        out.append(hit[0] if len(hit) else (pos[-1] if len(pos) else 0))
    return np.array(out, dtype=np.int32).reshape(u.shape)


OPS_MODEL = """
const n = 7
const k = 4
input x: f32[B, n]
input xi: i32[B, n]
input idx: i64[B, 3]
input seed: i64[]

vals, ind = topk(x, k)
output vals = vals
output ind = ind
ivals, iind = topk(xi, n, axis=-1)
output ivals = ivals
output iind = iind
cvals, cind = topk(x, 2, axis=0)
output cvals = cvals
output cind = cind
output gathered = take_along_axis(x, idx, axis=1)
output cs = cumsum(x, axis=1)
output cs0 = cumsum(xi, axis=0)
u, s1 = uniform(seed, [B])
u2, s2 = uniform(s1, [B, 3])
d, s3 = uniform(s2, [5], dtype=f64)
output u = u
output u2 = u2
output d = d
output s3 = s3
p = softmax(x)
output p = p
output sample = categorical(p, u)
output sample_logits = categorical(x, u, logits=true)
"""

SCAN_MODEL = """
const d = 3
input cache0: f32[L, N, d]
input rows: f32[T, d]
input seed: i64[]
input stop_at: i32[]

# one step of a decoder: write row t of layer 1 of the cache, read it back
# with the row before it, draw two numbers, stop after step stop_at
fn step(cache, s, row_t, t) {
  c2 = dynamic_update_slice(cache, row_t[None, None, :], [1, t, 0])
  prev = dynamic_slice(c2, [1, maximum(t - 1, 0), 0], [1, 2, d])
  u, s2 = uniform(s, [2])
  return c2, s2, t >= stop_at, sum(prev), u
}

cache, s_end, got, us, steps = scan(step, [cache0, seed], rows, index=true,
                                    until=true)
output cache = cache
output s_end = s_end
output got = got
output us = us
output steps = steps
"""


def body(ck, work):
    torch = mc_e2e.import_torch()
    rng = np.random.default_rng(7)
    ops_src = work.path("ops", "decode_ops.model")
    scan_src = work.path("scan", "decode_scan.model")
    with open(ops_src, "w") as f:
        f.write(OPS_MODEL)
    with open(scan_src, "w") as f:
        f.write(SCAN_MODEL)
    for opt in (0, 2):
        prog = mc_e2e.compile_model(ops_src, work.path("ops", "prog%d" % opt), opt=opt)
        B = 5
        x = rng.integers(-3, 4, size=(B, 7)).astype(np.float32)  # many ties
        x[1, 2] = np.nan
        x[3] = 1.5                                           # a row all equal
        x[4] = rng.standard_normal(7).astype(np.float32)
        xi = rng.integers(-2, 3, size=(B, 7)).astype(np.int32)
        idx = rng.integers(0, 7, size=(B, 3)).astype(np.int64)
        seed = np.int64(-1234567890123)
        _, got = mc_e2e.run_program(
            prog, {"x": x, "xi": xi, "idx": idx, "seed": seed},
            work.path("ops", "out%d" % opt), work)
        tag = "-O%d" % opt
        t = torch.from_numpy(x)
        ti = torch.from_numpy(xi)
        sv, si = torch.sort(t, dim=1, descending=True, stable=True)
        tv, _ = torch.topk(t, 4, dim=1)
        ck.bits_equal(tag + ": topk values == torch.topk values", got["vals"], tv.numpy())
        ck.check(tag + ": topk indices == stable descending sort (ties: lower index)",
                 np.array_equal(got["ind"], si[:, :4].numpy().astype(np.int32)),
                 "got %s want %s" % (got["ind"].tolist(), si[:, :4].tolist()))
        iv, ii = torch.sort(ti, dim=1, descending=True, stable=True)
        ck.check(tag + ": topk of i32, k = n, is the stable sort",
                 np.array_equal(got["ivals"], iv.numpy()) and
                 np.array_equal(got["iind"], ii.numpy().astype(np.int32)))
        cv, ci = torch.sort(t, dim=0, descending=True, stable=True)
        ck.check(tag + ": topk along axis 0",
                 np.array_equal(got["cind"], ci[:2].numpy().astype(np.int32)) and
                 np.array_equal(got["cvals"], cv[:2].numpy(), equal_nan=True))
        ck.bits_equal(tag + ": take_along_axis == torch.gather", got["gathered"],
                      torch.gather(t, 1, torch.from_numpy(idx)).numpy())
        ck.bits_equal(tag + ": cumsum f32 == torch.cumsum",
                      got["cs"], torch.cumsum(t, 1).numpy())
        ck.check(tag + ": cumsum i32 (wrapping, dtype kept) == torch.cumsum",
                 np.array_equal(got["cs0"], torch.cumsum(ti, 0).numpy().astype(np.int32)))
        u, s1 = uniform_ref(int(seed), B)
        u2, s2 = uniform_ref(int(s1), B * 3)
        dd, s3 = uniform_ref(int(s2), 5, f64=True)
        ck.bits_equal(tag + ": uniform f32 == Python SplitMix64 reference", got["u"], u)
        ck.bits_equal(tag + ": second draw from the advanced state", got["u2"],
                      u2.reshape(B, 3))
        ck.check(tag + ": uniform f64 and the state after three draws",
                 np.array_equal(got["d"], dd) and got["s3"] == s3,
                 "state %r want %r" % (got["s3"], s3))
        ck.check(tag + ": categorical == inverse CDF reference",
                 np.array_equal(got["sample"], categorical_ref(got["p"], got["u"])),
                 "got %s" % got["sample"].tolist())
        ck.check(tag + ": categorical(logits=true) == categorical(softmax)",
                 np.array_equal(got["sample_logits"], got["sample"]))

        prog = mc_e2e.compile_model(scan_src, work.path("scan", "prog%d" % opt), opt=opt)
        L, N, T = 2, 6, 5
        cache0 = rng.standard_normal((L, N, 3)).astype(np.float32)
        rows = rng.standard_normal((T, 3)).astype(np.float32)
        for stop_at in (2, 10):
            _, got = mc_e2e.run_program(
                prog, {"cache0": cache0, "rows": rows, "seed": np.int64(99),
                       "stop_at": np.int32(stop_at)},
                work.path("scan", "out%d_%d" % (opt, stop_at)), work)
            n = min(stop_at + 1, T)
            cache = cache0.copy()
            want_got = np.zeros(T, np.float32)
            want_us = np.zeros((T, 2), np.float32)
            s = 99
            for t_ in range(n):
                cache[1, t_] = rows[t_]
                a = max(t_ - 1, 0)
                want_got[t_] = cache[1, a:a + 2].astype(np.float32).sum(dtype=np.float64)
                want_us[t_], s = uniform_ref(s, 2)
                s = int(s)
            tag2 = "%s stop_at=%d" % (tag, stop_at)
            ck.check(tag2 + ": steps run", int(got["steps"]) == n,
                     "got %s want %d" % (got["steps"], n))
            ck.bits_equal(tag2 + ": cache carried and updated", got["cache"], cache)
            ck.close(tag2 + ": dynamic_slice reads (rows after the exit are 0)",
                     got["got"], want_got, 1e-6, 1e-6)
            ck.bits_equal(tag2 + ": draws per step, zeros after the exit",
                          got["us"], want_us)
            ck.check(tag2 + ": final state", int(got["s_end"]) == s)
        bad = np.zeros((L, 2, 3), np.float32)  # N = 2 < T: row t=2 is outside
        res, _ = mc_e2e.run_program(
            prog, {"cache0": bad, "rows": rows, "seed": np.int64(1),
                   "stop_at": np.int32(10)},
            work.path("scan", "bad%d" % opt), work, check=False)
        ck.command_failed_cleanly(tag + ": a start outside the cache is an error", res)
        ck.check(tag + ": the error names the op and the line",
                 "dynamic_update_slice start 2 of axis 1 is outside [0, 1]" in res.stderr and
                 "decode_scan.model:11:8" in res.stderr, res.stderr.strip())


if __name__ == "__main__":
    mc_e2e.main("test_decode_ops", body)
