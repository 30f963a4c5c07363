#!/usr/bin/python3
"""modelc against PyTorch, side by side in one run (run it through bench/run.sh).

For each case: random weights and inputs (seeded), the shipped model compiled
with build/modelc at -O2 (--emit exe), and the same computation in PyTorch
eager (torch.no_grad(), torch.set_num_threads(1) and (2)). Prints a table
and writes bench/results.csv.

What is timed (read the table with this in mind):
  modelc  the median wall time of N whole runs of the generated program:
          process start, weights mmap'd from safetensors, inputs read from
          .npy, the model, outputs written as .npy (to a tmpfs when there is
          one). The program is single-threaded.
  torch   the median of N calls of the forward in an already warm process
          (one warm-up call first): no interpreter start, weight load or I/O.
So small cases overstate modelc's time; the "overhead" column is the
program's time on the case's smallest input, an upper bound of that fixed
cost. Peak RSS is the maximum resident set of the program's process (wait4)
and of the torch subprocess (its getrusage, including the torch import).

Usage: bench.py [--quick] [--runs N] [--cases a,b] [--csv PATH]
       bench.py --torch-child CASE ... (internal: one torch measurement)
"""
import argparse
import csv
import json
import math
import os
import re
import platform
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "e2e"))
from mc_e2e import write_safetensors  # noqa: E402

MODELS = os.path.join(SOURCE_DIR, "models")

NOT_YET = [
    ("GPT-2 small decoding, ms/token with the KV cache",
     "the language has no state carried between calls (no KV cache) yet"),
    ("BiLSTM-CRF decoding (vocab 5000, hidden 128x2, 9 tags, B 32, T 50)",
     "needs the sequences issue (scan for the LSTM, CRF Viterbi decoding), not merged yet"),
    ("modelc with 2 threads", "no --threads / thread pool in the runtime yet"),
    ("GEMM vs OpenBLAS at 1 and 2 threads",
     "only torch.mm is measured here (it is OpenBLAS when torch links it)"),
]


# ---- cases ------------------------------------------------------------------
# Each case: name, model file, -D defines, a maker of (weights, inputs) from a
# numpy Generator, the FLOPs of one run (or None), and the smallest inputs
# (the fixed-cost run); torch_forward() has the torch side by key.

def make_encoder(rng, d=512, heads=8, ffn=2048, batch=8, t=128):
    s = 1.0 / math.sqrt(d)
    p = "layers.0."
    w = {
        p + "self_attn.in_proj_weight": rng.uniform(-s, s, (3 * d, d)),
        p + "self_attn.in_proj_bias": rng.uniform(-s, s, (3 * d,)),
        p + "self_attn.out_proj.weight": rng.uniform(-s, s, (d, d)),
        p + "self_attn.out_proj.bias": rng.uniform(-s, s, (d,)),
        p + "linear1.weight": rng.uniform(-s, s, (ffn, d)),
        p + "linear1.bias": rng.uniform(-s, s, (ffn,)),
        p + "linear2.weight": rng.uniform(-1 / math.sqrt(ffn), 1 / math.sqrt(ffn), (d, ffn)),
        p + "linear2.bias": rng.uniform(-s, s, (d,)),
        p + "norm1.weight": 1 + 0.1 * rng.standard_normal(d),
        p + "norm1.bias": 0.1 * rng.standard_normal(d),
        p + "norm2.weight": 1 + 0.1 * rng.standard_normal(d),
        p + "norm2.bias": 0.1 * rng.standard_normal(d),
    }
    w = {k: v.astype(np.float32) for k, v in w.items()}
    x = rng.standard_normal((batch, t, d)).astype(np.float32)
    return w, {"x": x}


def encoder_flops(d=512, ffn=2048, batch=8, t=128):
    tokens = batch * t
    return 2 * tokens * (4 * d * d + 2 * d * ffn) + 4 * batch * t * t * d


def make_gpt2(rng, t):
    n_layer, d, vocab, ctx = 12, 768, 50257, 1024
    w = {"wte.weight": 0.02 * rng.standard_normal((vocab, d), dtype=np.float32),
         "wpe.weight": 0.01 * rng.standard_normal((ctx, d), dtype=np.float32),
         "ln_f.weight": np.ones(d, np.float32), "ln_f.bias": np.zeros(d, np.float32)}
    for i in range(n_layer):
        p = "h.%d." % i
        for name, shape in (("attn.c_attn", (d, 3 * d)), ("attn.c_proj", (d, d)),
                            ("mlp.c_fc", (d, 4 * d)), ("mlp.c_proj", (4 * d, d))):
            w[p + name + ".weight"] = 0.02 * rng.standard_normal(shape, dtype=np.float32)
            w[p + name + ".bias"] = np.zeros(shape[1], np.float32)
        for name in ("ln_1", "ln_2"):
            w[p + name + ".weight"] = np.ones(d, np.float32)
            w[p + name + ".bias"] = np.zeros(d, np.float32)
    tokens = rng.integers(0, vocab, t).astype(np.int32)
    return w, {"tokens": tokens}


def gpt2_flops(t, n_layer=12, d=768, vocab=50257):
    per_layer = 2 * t * (12 * d * d) + 2 * t * t * d  # GEMMs + causal attention
    return n_layer * per_layer + 2 * t * d * vocab


def make_activations(rng, n):
    return {}, {"x": (4 * rng.standard_normal(n)).astype(np.float32)}


def make_sgemm(rng, n):
    return {}, {"a": rng.standard_normal((n, n), dtype=np.float32),
                "b": rng.standard_normal((n, n), dtype=np.float32)}


def cases(quick):
    out = [dict(name="transformer encoder layer d512 h8 ffn2048 B8 T128",
                key="encoder", model="transformer_encoder.model",
                defines=dict(d_model=512, nhead=8, dim_feedforward=2048, num_layers=1),
                make=make_encoder, flops=encoder_flops(),
                small={"x": np.zeros((1, 1, 512), np.float32)})]
    for t in ((128,) if quick else (128, 512)):
        out.append(dict(name="GPT-2 small forward, prompt %d" % t, key="gpt2_%d" % t,
                        model="gpt2.model", defines={},
                        make=lambda rng, t=t: make_gpt2(rng, t), flops=gpt2_flops(t),
                        small={"tokens": np.zeros(1, np.int32)}))
    n_act = 1 << 24
    out.append(dict(name="activations.model, all 14 outputs, 16M floats",
                    key="activations", model="activations.model", defines={},
                    make=lambda rng: make_activations(rng, n_act), flops=None,
                    small={"x": np.zeros(1, np.float32)}))
    for n in ((256, 1024) if quick else (256, 512, 1024, 2048)):
        out.append(dict(name="sgemm %dx%d" % (n, n), key="sgemm_%d" % n,
                        model=os.path.join(HERE, "sgemm.model"), defines={},
                        make=lambda rng, n=n: make_sgemm(rng, n), flops=2 * n ** 3,
                        small={"a": np.ones((1, 1), np.float32), "b": np.ones((1, 1), np.float32)}))
    return out


# ---- torch side (runs in a child process) -------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data, np.float32, (b - a) // 4, 8 + n + a).reshape(info["shape"])
    return out


def torch_forward(torch, key, weights, inputs):
    """A no-argument function computing the case in torch eager."""
    F = torch.nn.functional
    if key == "encoder":
        layer = torch.nn.TransformerEncoderLayer(512, 8, 2048, dropout=0.0, batch_first=True)
        layer.load_state_dict({k[len("layers.0."):]: v for k, v in weights.items()})
        layer.eval()
        x = inputs["x"]
        return lambda: layer(x)
    if key.startswith("gpt2"):
        w = weights
        tokens = inputs["tokens"].long()
        t, d, n_head = tokens.shape[0], 768, 12
        causal = torch.tril(torch.ones(t, t, dtype=torch.bool))

        def forward():
            def ln(x, p):
                return F.layer_norm(x, (d,), w[p + ".weight"], w[p + ".bias"], 1e-5)

            def conv1d(x, p):
                return torch.addmm(w[p + ".bias"], x, w[p + ".weight"])

            h = w["wte.weight"][tokens] + w["wpe.weight"][:t]
            for i in range(12):
                p = "h.%d." % i
                q, k, v = conv1d(ln(h, p + "ln_1"), p + "attn.c_attn").split(d, dim=-1)
                q, k, v = (z.view(t, n_head, d // n_head).transpose(0, 1) for z in (q, k, v))
                s = (q @ k.transpose(-1, -2) / math.sqrt(d // n_head)).masked_fill(~causal, -math.inf)
                a = (s.softmax(dim=-1) @ v).transpose(0, 1).reshape(t, d)
                h = h + conv1d(a, p + "attn.c_proj")
                m = F.gelu(conv1d(ln(h, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh")
                h = h + conv1d(m, p + "mlp.c_proj")
            return ln(h, "ln_f") @ w["wte.weight"].T
        return forward
    if key == "activations":
        t = inputs["x"]

        def activations():
            return [F.relu(t), torch.sigmoid(t), torch.tanh(t), F.leaky_relu(t, 0.01),
                    F.elu(t), F.selu(t), F.softplus(t), F.softsign(t), F.silu(t),
                    F.mish(t), F.gelu(t), F.gelu(t, approximate="tanh"),
                    F.hardsigmoid(t), t * 2.0 ** -140 * 2.0 ** 70 * 2.0 ** 70]
        return activations
    if key.startswith("sgemm"):
        a, b = inputs["a"], inputs["b"]
        return lambda: torch.mm(a, b)
    raise ValueError(key)


def torch_child(args):
    import torch
    torch.set_num_threads(args.threads)
    weights = {}
    if os.path.exists(os.path.join(args.dir, "w.safetensors")):
        weights = {k: torch.from_numpy(v.copy())
                   for k, v in read_safetensors(os.path.join(args.dir, "w.safetensors")).items()}
    inputs = {}
    for f in sorted(os.listdir(args.dir)):
        if f.startswith("in_") and f.endswith(".npy"):
            inputs[f[3:-4]] = torch.from_numpy(np.load(os.path.join(args.dir, f)))
    with torch.no_grad():
        fn = torch_forward(torch, args.torch_child, weights, inputs)
        fn()
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"median": statistics.median(times), "rss_kb": rss}))


def run_torch(key, workdir, threads, runs):
    # OpenBLAS (pthread build) has its own pool: give it the same count.
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-child", key,
           "--threads", str(threads), "--dir", workdir, "--runs", str(runs)]
    rss_file = os.path.join(workdir, "torch_rss.txt")
    use_time = os.access(GNU_TIME, os.X_OK)  # see run_program: RSS floor
    if use_time:
        cmd = [GNU_TIME, "-f", "%M", "-o", rss_file] + cmd
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if use_time:
        with open(rss_file) as f:
            result["rss_kb"] = int(f.read().split()[-1])
    return result


# ---- modelc side -------------------------------------------------------------

def write_case(workdir, weights, inputs):
    os.makedirs(workdir, exist_ok=True)
    if weights:
        write_safetensors(os.path.join(workdir, "w.safetensors"), weights)
    args = []
    for name, arr in inputs.items():
        path = os.path.join(workdir, "in_%s.npy" % name)
        np.save(path, arr)
        args.append("%s=%s" % (name, path))
    return args


def compile_case(modelc, case, workdir):
    model = case["model"] if os.path.isabs(case["model"]) else os.path.join(MODELS, case["model"])
    prog = os.path.join(workdir, "prog")
    cmd = [modelc, "compile", model, "-O2", "--emit", "exe", "-o", prog]
    for k, v in case["defines"].items():
        cmd += ["-D", "%s=%s" % (k, v)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return prog, time.perf_counter() - t0


def arena_bytes(modelc, case, workdir, inputs):
    """The arena the generated program allocates for these inputs: the model
    emitted as C with its symbols bound to the inputs' sizes, where the
    layout comment states it ("Arena: N bytes"). None when unknown."""
    model = case["model"] if os.path.isabs(case["model"]) else os.path.join(MODELS, case["model"])
    defines = ["-D%s=%s" % kv for kv in case["defines"].items()]
    spec = subprocess.run([modelc, "inspect", model] + defines, capture_output=True,
                          text=True).stdout.split("\noutputs:")[0]
    symbols = {}
    for name, shape in re.findall(r"- name: (\w+)\n  dtype: \w+\n  shape: \[([^\]]*)\]", spec):
        for dim, size in zip(shape.split(","), inputs[name].shape if name in inputs else ()):
            if re.fullmatch(r"[A-Za-z_]\w*", dim.strip()):
                symbols[dim.strip()] = size
    out = os.path.join(workdir, "c")
    cmd = [modelc, "compile", model, "-O2", "--emit", "c", "-o", out]
    for k, v in list(case["defines"].items()) + list(symbols.items()):
        cmd += ["-D", "%s=%s" % (k, v)]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return None
    text = "".join(open(os.path.join(out, f)).read() for f in os.listdir(out)
                   if f.endswith(".c") and not f.startswith("mc_"))
    if "Workspace of" not in text:
        return 0
    sizes = re.findall(r"Arena: (\d+) bytes", text)
    return sum(int(n) for n in sizes) if sizes else None


GNU_TIME = "/usr/bin/time"


def run_program(prog, workdir, in_args, has_weights, outdir):
    """Wall time (measured here) and peak RSS in KiB of one run of prog.
    The RSS comes from GNU time when it is installed: a child forked from
    this (large) Python process would report Python's RSS as its own floor."""
    cmd = [prog] + (["--weights", os.path.join(workdir, "w.safetensors")] if has_weights else [])
    cmd += in_args + ["-o", outdir]
    rss_file = os.path.join(workdir, "rss.txt")
    use_time = os.access(GNU_TIME, os.X_OK)
    full = [GNU_TIME, "-f", "%M", "-o", rss_file] + cmd if use_time else cmd
    t0 = time.perf_counter()
    p = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    err = p.stderr.read().decode()
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), err))
    rss = usage.ru_maxrss
    if use_time:
        with open(rss_file) as f:
            rss = int(f.read().split()[-1])
    return elapsed, rss


def time_program(prog, workdir, in_args, has_weights, runs, outroot):
    times, rss = [], 0
    for i in range(runs):
        outdir = os.path.join(outroot, "out")
        shutil.rmtree(outdir, ignore_errors=True)
        os.makedirs(outdir)
        t, r = run_program(prog, workdir, in_args, has_weights, outdir)
        times.append(t)
        rss = max(rss, r)
    shutil.rmtree(os.path.join(outroot, "out"), ignore_errors=True)
    return statistics.median(times), rss


# ---- the environment ----------------------------------------------------------

def environment():
    lines = []
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    lines.append("CPU: %s, %d logical cores" % (cpu, os.cpu_count() or 0))
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l for l in f if l.startswith("flags")), "")
    except OSError:
        pass
    isa = [x for x in ("avx2", "fma", "avx512f") if (" %s " % x) in flags + " "]
    lines.append("ISA: %s (the generated C is compiled without -march: SSE2 code)" % " ".join(isa))
    lines.append("OPENBLAS_CORETYPE=%s" % os.environ.get("OPENBLAS_CORETYPE", "(unset)"))
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc:
        v = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
        lines.append("C compiler: %s (-std=c11 -O2 -ffp-contract=off)" % v.splitlines()[0])
    try:
        import torch
        cfg = torch.__config__.show().replace(",", " ").split()
        blas = [w for w in cfg if w.startswith(("BLAS_INFO=", "USE_MKLDNN="))]
        lib = "/usr/lib/%s-linux-gnu/libblas.so.3" % platform.machine()
        if os.path.exists(lib):
            blas.append("libblas.so.3 -> %s" % os.path.realpath(lib))
        lines.append("torch %s (%s); OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set "
                     "to torch's thread count" % (torch.__version__, ", ".join(blas)))
    except Exception as e:  # the table still says torch is missing
        lines.append("torch: not available (%s)" % e)
    return lines


def tmp_root():
    for d in ("/dev/shm", None):
        if d is None or (os.path.isdir(d) and os.access(d, os.W_OK)
                         and shutil.disk_usage(d).free > (3 << 30)):
            return tempfile.mkdtemp(prefix="mc_bench_", dir=d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch-child")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dir")
    ap.add_argument("--runs", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="fewer and smaller cases")
    ap.add_argument("--cases", help="comma-separated case keys (encoder, gpt2_128, ...)")
    ap.add_argument("--csv", default=os.path.join(HERE, "results.csv"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if args.torch_child:
        return torch_child(args)

    modelc = os.environ.get("MODELC", os.path.join(SOURCE_DIR, "build", "modelc"))
    runs = args.runs or (3 if args.quick else 5)
    print("modelc benchmark, %s" % time.strftime("%Y-%m-%d %H:%M"))
    for line in environment():
        print("  " + line)
    print("  modelc: %s; modelc time = median of %d whole-process runs (start, weight "
          "mmap, .npy in/out, 1 thread); torch time = median of %d warm forward calls "
          "(no process start, no I/O); peak RSS of the program from %s" % (
              modelc, runs, runs, GNU_TIME if os.access(GNU_TIME, os.X_OK)
              else "wait4 (floor: this script's RSS)"))
    print()

    root = tmp_root()
    rows = []
    selected = cases(args.quick)
    if args.cases:
        keys = args.cases.split(",")
        selected = [c for c in selected if c["key"] in keys]
    try:
        for i, case in enumerate(selected):
            rng = np.random.default_rng(1234 + i)
            work = os.path.join(root, case["key"])
            weights, inputs = case["make"](rng)
            in_args = write_case(work, weights, inputs)
            prog, compile_s = compile_case(modelc, case, work)
            arena = arena_bytes(modelc, case, work, inputs)
            weight_bytes = sum(v.nbytes for v in weights.values())
            t_prog, rss_prog = time_program(prog, work, in_args, bool(weights), runs, work)
            # the fixed cost: same weights, the smallest inputs
            small_dir = os.path.join(work, "small")
            small_args = write_case(small_dir, {}, case["small"])
            if weights:
                os.symlink(os.path.join(work, "w.safetensors"),
                           os.path.join(small_dir, "w.safetensors"))
            t_small, _ = time_program(prog, small_dir, small_args, bool(weights),
                                      runs, small_dir)
            torch1 = run_torch(case["key"], work, 1, runs)
            torch2 = run_torch(case["key"], work, 2, runs)
            best = min(torch1["median"], torch2["median"])
            row = dict(case=case["name"], key=case["key"],
                       modelc_s=t_prog, modelc_overhead_s=t_small,
                       modelc_rss_mb=rss_prog / 1024.0,
                       weights_mb=weight_bytes / 2.0 ** 20,
                       arena_mb=arena / 2.0 ** 20 if arena is not None else "",
                       torch1_s=torch1["median"], torch2_s=torch2["median"],
                       torch_best_threads=1 if torch1["median"] <= torch2["median"] else 2,
                       torch_rss_mb=max(torch1["rss_kb"], torch2["rss_kb"]) / 1024.0,
                       ratio_t1=t_prog / torch1["median"], ratio_t2=t_prog / torch2["median"],
                       ratio_best=t_prog / best,
                       modelc_gflops=(case["flops"] / t_prog / 1e9) if case["flops"] else "",
                       torch_best_gflops=(case["flops"] / best / 1e9) if case["flops"] else "",
                       compile_s=compile_s)
            rows.append(row)
            print("done: %-50s modelc %.3fs, torch %.3fs / %.3fs" % (
                case["name"], t_prog, torch1["median"], torch2["median"]), flush=True)
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    print()
    head = ("case", "modelc s", "overhead s", "torch1 s", "torch2 s", "x t1", "x t2",
            "x best", "GFLOP/s mc", "GFLOP/s pt", "RSS mc MB", "wts+arena", "RSS pt MB")
    fmt = "%-50s %9s %10s %9s %9s %6s %6s %6s %10s %10s %9s %9s %9s"
    print(fmt % head)
    for r in rows:
        g = (lambda v: "%.1f" % v if v != "" else "-")
        print(fmt % (r["case"], "%.4f" % r["modelc_s"], "%.4f" % r["modelc_overhead_s"],
                     "%.4f" % r["torch1_s"], "%.4f" % r["torch2_s"], "%.2f" % r["ratio_t1"],
                     "%.2f" % r["ratio_t2"], "%.2f" % r["ratio_best"], g(r["modelc_gflops"]),
                     g(r["torch_best_gflops"]), "%.0f" % r["modelc_rss_mb"],
                     "%.0f+%s" % (r["weights_mb"], "%.0f" % r["arena_mb"]
                                  if r["arena_mb"] != "" else "?"),
                     "%.0f" % r["torch_rss_mb"]))
    print("x t1 / x t2 / x best: modelc time / torch time at 1 / 2 / its best thread "
          "count (lower is better for modelc). overhead: the program on the smallest "
          "input of the case (process start, weight mmap, I/O). wts+arena: MiB of "
          "weights + the planned arena of intermediates (RSS also holds the outputs, "
          "inputs and the runtime).")
    print()
    for what, why in NOT_YET:
        print("not yet measurable: %s: %s" % (what, why))
    if rows:
        with open(args.csv, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            wr.writeheader()
            wr.writerows(rows)
        print("\nwrote %s" % args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
