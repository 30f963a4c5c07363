"""How the benchmark times modelc and PyTorch, and under which settings.

Threads: every row at each of --threads (default 1,2): modelc with the
environment variable MC_THREADS=n (a program that has no threads ignores it),
torch with torch.set_num_threads(n) and OMP_NUM_THREADS=n.

PyTorch's BLAS setting: OpenBLAS reads OPENBLAS_CORETYPE and
OPENBLAS_NUM_THREADS when it loads, so each setting is a child process. The
settings tried: OPENBLAS_CORETYPE as in the environment (set or unset), the
other of set/unset when the environment sets it, and the core type the CPU
flags imply (SkylakeX with avx512f, Haswell with avx2): on a VM whose CPU
model name is generic OpenBLAS can fall back to old (Prescott) kernels. Each
with OPENBLAS_NUM_THREADS=n ("matching") and unset. Unset lets OpenBLAS use
every core, so at n below the core count it is no n-thread measurement and
never wins; at n = the core count it is the same as matching and is not
repeated. The machine row measures sgemm 1024 under each setting
(machine.py); each case then runs torch under the settings within 10% of the
best one (--quick: the best only) and keeps the fastest; the table says which
won.

What is timed:
  modelc  the generated program's own timer (PROG --time R, runtime/
          mc_main.c): it loads the weights and inputs, runs the model once,
          then R more times and prints the median wall time of those R runs,
          the model alone: no process start, weight loading or .npy I/O
          (each run writes into the first run's output buffers, as a caller
          of NAME_run does; fresh ones cost the kernel a pass clearing
          pages: 64 MB took the activation chain from 18 to 28 ms).
          Short runs are repeated to fill about 1 s (at most 200 runs: a
          9 ms model at 2 threads gave medians of 20 runs 20% apart).
          Decoding: see row 2 in cases.py.
  torch   the median of warm calls of the forward in a running process (one
          warm-up call first); no interpreter start, weight load or I/O.
Runs: --runs N (default 5; 1 with --quick). A torch run shorter than 0.25 s
is repeated up to 20 times (or 1 s); without an explicit --runs a run longer
than 5 s is repeated 3 times only.
Peak RSS: GNU time's maximum resident set of the program and of the torch
child (which includes the interpreter, torch and the weights). Arena: the
layout comment of the C that `modelc compile --emit c` writes with the
case's symbolic sizes fixed by -D ("Arena: N bytes").
"""
import json
import os
import re
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import time

import numpy as np

from cases import HERE, model_path, per_token, torch_case

GNU_TIME = "/usr/bin/time"


# ---- repeated runs ----------------------------------------------------------------

def timed_runs(fn, runs, explicit):
    """Median seconds of calls of fn (after one warm-up call), the CPU time
    per wall time of those calls, their number and the last call's result."""
    fn()
    times = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    total = 0.0
    while True:
        t0 = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t0)
        total += times[-1]
        if not more_runs(times, total, runs, explicit):
            break
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return statistics.median(times), cpu / max(total, 1e-9), len(times), last


def more_runs(times, total, runs, explicit):
    n = len(times)
    want = runs
    if times[0] < 0.25:
        want = max(runs, 20 if total < 1.0 else n)
        if total >= 1.0:
            return n < runs
    elif times[0] > 5.0 and not explicit:
        want = min(runs, 3)
    return n < want


def has_gnu_time():
    return os.access(GNU_TIME, os.X_OK)


def with_gnu_time(cmd, rss_file):
    """cmd under GNU time, which writes the peak RSS (KiB) to rss_file, when
    it is installed: a child forked from this (large) Python process would
    report Python's RSS as its own floor. (command, whether under GNU time)"""
    if not has_gnu_time():
        return cmd, False
    return [GNU_TIME, "-f", "%M", "-o", rss_file] + cmd, True


def read_rss(rss_file):
    with open(rss_file) as f:
        return int(f.read().split()[-1])


# ---- PyTorch's BLAS settings ------------------------------------------------------

def flag_coretype(flags):
    if " avx512f " in flags:
        return "SkylakeX"
    if " avx2 " in flags:
        return "Haswell"
    return None


def blas_settings(flags):
    env = os.environ.get("OPENBLAS_CORETYPE") or None
    cores = [env]
    if env is not None:
        cores.append(None)
    implied = flag_coretype(flags)
    if implied and implied not in cores:
        cores.append(implied)
    return [dict(coretype=c, blas_threads=bt) for c in cores for bt in ("match", "unset")]


def setting_valid(s, threads):
    """unset OPENBLAS_NUM_THREADS: OpenBLAS uses every core. An n-thread
    measurement only when n is the core count (and then it equals match)."""
    return s["blas_threads"] == "match" or threads == (os.cpu_count() or 1)


def blas_env(setting, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    for var, value in (("OPENBLAS_CORETYPE", setting["coretype"]),
                       ("OPENBLAS_NUM_THREADS",
                        str(threads) if setting["blas_threads"] == "match" else None)):
        if value is None:
            env.pop(var, None)
        else:
            env[var] = value
    return env


def setting_label(s):
    """core type (auto: unset, OpenBLAS detects) and OPENBLAS_NUM_THREADS
    (n: the thread count, -: unset)."""
    return "%s,obt=%s" % (s["coretype"] or "auto", "n" if s["blas_threads"] == "match" else "-")


# ---- the torch side ---------------------------------------------------------------

def load_safetensors_torch(torch, path):
    """{name: float32 tensor}, each read straight into its tensor (no second
    copy of the file in memory, so the child's RSS is the weights once)."""
    out = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]
                                 if kv[0] != "__metadata__" else -1):
            if name == "__metadata__":
                continue
            assert info["dtype"] == "F32", name
            t = torch.empty(info["shape"], dtype=torch.float32)
            f.seek(8 + n + info["data_offsets"][0])
            f.readinto(memoryview(t.numpy()).cast("B"))
            out[name] = t
    return out


def torch_child(args):
    import torch
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.dir, "case.json")) as f:
        cfg = json.load(f)
    w = {}
    wpath = os.path.join(args.dir, "w.safetensors")
    if os.path.exists(wpath):
        w = load_safetensors_torch(torch, wpath)
    inputs = {}
    for f in sorted(os.listdir(args.dir)):
        if f.startswith("in_") and f.endswith(".npy"):
            inputs[f[3:-4]] = torch.from_numpy(np.load(os.path.join(args.dir, f)))
    if args.torch_child == "calibrate":
        n = cfg["n"]
        g = torch.Generator().manual_seed(0)
        inputs = {"a": torch.randn(n, n, generator=g), "b": torch.randn(n, n, generator=g)}
    result = {}
    with torch.no_grad():
        fns = torch_case(torch, args.torch_child, cfg, w, inputs)
        for name, fn in fns.items():
            med, cpu_wall, n, last = timed_runs(fn, args.runs, args.explicit_runs)
            result[name] = med
            if name == "main":
                result["cpu_wall"] = cpu_wall
                result["runs"] = n
                outputs = last
        if args.save:
            outdir = os.path.join(args.dir, "torch_out")
            os.makedirs(outdir, exist_ok=True)
            for name, t in outputs.items():
                np.save(os.path.join(outdir, name + ".npy"), t.contiguous().numpy())
    result["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result))


def run_torch(key, workdir, threads, runs, explicit, setting, save=False, verbose=False):
    env = blas_env(setting, threads)
    if verbose:
        env["OPENBLAS_VERBOSE"] = "2"
    cmd = [sys.executable, os.path.join(HERE, "bench.py"), "--torch-child", key,
           "--threads", str(threads), "--dir", workdir, "--runs", str(runs)]
    if explicit:
        cmd.append("--explicit-runs")
    if save:
        cmd.append("--save")
    rss_file = os.path.join(workdir, "torch_rss.txt")
    cmd, use_time = with_gnu_time(cmd, rss_file)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError("torch child %s failed: %s" % (key, p.stderr.strip()[-2000:]))
    result = json.loads(p.stdout.strip().splitlines()[-1])
    if use_time:
        result["rss_kb"] = read_rss(rss_file)
    core = re.findall(r"Core: (\w+)", p.stderr)
    result["core"] = core[-1] if core else ""
    return result


# ---- the modelc side --------------------------------------------------------------

def write_inputs(workdir, inputs, prefix="in_"):
    os.makedirs(workdir, exist_ok=True)
    args = []
    for name, arr in inputs.items():
        path = os.path.join(workdir, "%s%s.npy" % (prefix, name))
        np.save(path, arr)
        args.append("%s=%s" % (name, path))
    return args


def modelc_compile_cmd(modelc, case, emit, out, defines):
    cmd = [modelc, "compile", model_path(case), "-O2", "--emit", emit, "-o", out]
    cmd += case.get("compile_args", [])
    if case["entry"]:
        cmd += ["--entry", case["entry"]]
    for k, v in defines:
        cmd += ["-D", "%s=%s" % (k, v)]
    return cmd


def compile_case(modelc, case, outdir, cache):
    cache_key = (model_path(case), tuple(sorted(case["defines"].items())), case["entry"],
                 tuple(case.get("compile_args", [])))
    if cache_key in cache:
        return cache[cache_key], 0.0
    os.makedirs(outdir, exist_ok=True)
    prog = os.path.join(outdir, "prog_" + case["key"])
    cmd = modelc_compile_cmd(modelc, case, "exe", prog, case["defines"].items())
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("modelc compile failed: %s" % (p.stderr.strip()[-2000:]))
    cache[cache_key] = prog
    return prog, time.perf_counter() - t0


def arena_bytes(modelc, case, workdir):
    """(arena, lower bound, prepared): the arena the generated program plans
    for the case's sizes, the most bytes of intermediates live at one step
    (the issue's lower bound; the target is arena <= 1.2 x that) and the
    bytes of the weights the program computes from the file's when it loads
    them (prepared params, such as the tables of an embedding times an
    input projection). The C of `modelc compile --emit c` with the symbolic
    sizes fixed by -D states the first two in the comment of each workspace
    ("Workspace of NAME ... Arena: N bytes; the most bytes live at one step:
    L") and lists the prepared weights ("McPreparedSpec NAME_prepared[n] =
    {{weight, floats, ...}, ...}"). Arena and bound are (0, 0) when there is
    no workspace, None when unknown (e.g. a run-time plan); None for all
    three when the C cannot be made."""
    out = os.path.join(workdir, "emit_c")
    cmd = modelc_compile_cmd(modelc, case, "c", out, list(case["defines"].items())
                             + list(case["arena_defines"].items()))
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return None, None, None
    text = "".join(open(os.path.join(out, f)).read() for f in sorted(os.listdir(out))
                   if f.endswith(".c") and not f.startswith("mc_"))
    shutil.rmtree(out, ignore_errors=True)
    prepared = 0
    for table in re.findall(r"McPreparedSpec \w+\[\d+\] = \{(.*?)\n\};", text, re.S):
        prepared += 4 * sum(int(f) for f in re.findall(r"\{\s*\d+,\s*(\d+),", table))
    return plan_of(case, text) + (prepared,)


def plan_of(case, text):
    """(arena, lower bound) of arena_bytes, from the program's C."""
    spaces = {}
    for chunk in text.split("/* Workspace of ")[1:]:
        comment = chunk.split("*/")[0]
        name = re.match(r"(\w+)", comment).group(1)
        m = re.search(r"Arena: (\d+) bytes; the most bytes live at one\s+(?:\* )?step: (\d+)",
                      comment)
        spaces[name] = (int(m.group(1)), int(m.group(2))) if m else None
    if not spaces:
        return 0, 0
    if len(spaces) == 1:
        return list(spaces.values())[0] or (None, None)
    if case["entry"]:
        for name, size in spaces.items():
            if name.endswith("_" + case["entry"]):
                return size or (None, None)
    return None, None


def run_program(prog, args, outdir, threads, rss_file, runs):
    """One process of prog that runs the model 1 + runs times (--time runs):
    (the median wall time of the last runs as the program measures it, in
    seconds, and the process's peak RSS in KiB, see with_gnu_time)."""
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    cmd = [prog] + args + ["--time", str(runs), "-o", outdir]
    full, use_time = with_gnu_time(cmd, rss_file)
    env = dict(os.environ, MC_THREADS=str(threads))
    p = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    err = p.stderr.read().decode()
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), err.strip()[-2000:]))
    m = re.search(r"time: median ([0-9.]+) ms", err)
    if not m:
        raise RuntimeError("%s printed no time: %s" % (" ".join(cmd), err.strip()[-2000:]))
    return float(m.group(1)) / 1e3, read_rss(rss_file) if use_time else usage.ru_maxrss


def run_enough(prog, args, outdir, threads, rss_file, runs):
    """run_program, again with more runs when they are short (about 1 s of
    them, at most 200): (median seconds, peak RSS KiB, runs)."""
    t, rss = run_program(prog, args, outdir, threads, rss_file, runs)
    more = min(200, int(1.0 / max(t, 1e-4)))
    if more > runs:
        t, rss2 = run_program(prog, args, outdir, threads, rss_file, more)
        return t, max(rss, rss2), more
    return t, rss, runs


# ---- one case at one thread count -------------------------------------------------

def train_run(prog, args, steps, threads, rss_file):
    """One process of a training program (its one entry) for `steps` steps:
    (wall seconds, peak RSS KiB, the first step's loss)."""
    cmd = [prog] + args + ["--steps", str(steps), "-o",
                                    os.path.join(os.path.dirname(rss_file), "trained.safetensors")]
    full, use_time = with_gnu_time(cmd, rss_file)
    env = dict(os.environ, MC_THREADS=str(threads))
    t0 = time.perf_counter()
    p = subprocess.run(full, capture_output=True, text=True, env=env)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), p.stderr.strip()[-2000:]))
    m = re.match(r"step 1 loss (\S+)", p.stdout)
    if not m:
        raise RuntimeError("%s printed no loss: %s" % (" ".join(cmd), p.stdout[:500]))
    return t, read_rss(rss_file) if use_time else 0, float(m.group(1))


def time_training(case, prog, args, work, threads, runs):
    """time_modelc of a training case: seconds per step from the median wall
    times of `runs` processes of 1 and of 1 + S steps (the load cancels)."""
    rss_file = os.path.join(work, "rss.txt")
    data = []  # the inputs as --data options, the weights as they are
    for a in args:
        data += ["--data", a] if "=" in a else [a]
    data += ["--batch", str(case["cfg"]["batch"]), "--threads", str(threads)]
    S = case["steps"]
    one = [train_run(prog, data, 1, threads, rss_file) for _ in range(runs)]
    many = [train_run(prog, data, 1 + S, threads, rss_file) for _ in range(runs)]
    mc_s = (statistics.median(r[0] for r in many) - statistics.median(r[0] for r in one)) / S
    mc_out = os.path.join(work, "out")
    os.makedirs(mc_out, exist_ok=True)
    np.save(os.path.join(mc_out, "loss.npy"), np.float32(one[0][2]))
    rss = max(r[1] for r in many)
    return mc_s, dict(modelc_ms=1e3 * mc_s, modelc_runs=runs, rss_mc_mb=rss / 1024.0), mc_out


DECODE_PAIRS = 3


def time_modelc(case, prog, args, work, threads, runs):
    """(seconds of the case's work (decoding: per token; training: per
    step), the row's modelc columns, the output dir of the real input)."""
    if case["kind"] == "train":
        return time_training(case, prog, args, work, threads, runs)
    mc_out, rss_file = os.path.join(work, "out"), os.path.join(work, "rss.txt")
    t, rss, nr = run_enough(prog, args, mc_out, threads, rss_file, runs)
    mc_s = t
    if case["kind"] == "decode":
        # all new tokens, then the same program stopping after the first; in
        # DECODE_PAIRS processes of each, alternated, and the median per-token
        # time of the pairs: where a process's memory lands moved GEMV-bound
        # times by up to 1.6x from one process to the next
        first = int(np.load(os.path.join(mc_out, "tokens.npy"))[0])
        stop_args = args + write_inputs(work, {"stop": np.array(first, np.int32)},
                                        prefix="stop_")
        one_out = os.path.join(work, "out_one")
        pairs = []
        for i in range(DECODE_PAIRS):
            if i:
                t, rss2, _ = run_enough(prog, args, mc_out, threads, rss_file, runs)
                rss = max(rss, rss2)
            t_one, _, _ = run_enough(prog, stop_args, one_out, threads, rss_file, runs)
            n_one = int(np.load(os.path.join(one_out, "n_tokens.npy")))
            if n_one != 1:
                raise RuntimeError("generate with stop=first token made %d tokens" % n_one)
            pairs.append(per_token(case, t, t_one))
        mc_s = statistics.median(pairs)
    return mc_s, dict(modelc_ms=1e3 * mc_s, modelc_runs=nr, rss_mc_mb=rss / 1024.0), mc_out


def time_torch(case, work, threads, runs, explicit, settings, save):
    """torch under every candidate setting, the fastest wins: (its seconds
    (decoding: per token), its setting, its child's result). save: the
    first child writes its outputs to work/torch_out."""
    best = None
    for s in settings:
        r = run_torch(case.get("torch_key", case["key"]), work, threads, runs, explicit, s,
                      save=save)
        save = False
        t = per_token(case, r["main"], r["one"]) if case["kind"] == "decode" else r["main"]
        if best is None or t < best[0]:
            best = (t, s, r)
    return best
