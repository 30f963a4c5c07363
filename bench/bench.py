#!/usr/bin/python3
"""modelc against PyTorch, side by side in one run (run it through bench/run.sh).

Each case is one of the shipped models compiled by modelc (-O2 --emit exe)
and the same computation in PyTorch eager, with the same seeded random
weights and inputs, at each of --threads. Rows of the table:
 1 GPT-2 small prompt logits (128, 512 tokens)   target modelc/torch <= 0.4 and
                                                  >= 80% of OpenBLAS's GFLOP/s
                                                  (2 threads)
 2 GPT-2 small KV-cache decoding, ms/token        <= 0.26 and >= 85% of the
                                                  bandwidth bound
 3 a Transformer encoder layer                    <= 0.6
 4 BiLSTM-CRF Viterbi decoding                    <= 0.2
 5 an activation chain over 16M floats            >= 80% of triad bandwidth
 6 sgemm 256 to 2048                              >= 0.9 x OpenBLAS GFLOP/s
 7 the machine: triad bandwidth, OpenBLAS sgemm under each BLAS setting,
   the size of the runtime a generated program links (<= 64 KB)
The run: the machine first (it picks PyTorch's BLAS settings), then each
case (compile, time modelc, time torch under its candidate settings, check
the outputs agree), then the table and the CSV.

Where the details are:
  cases.py    the cases, their sizes (and --quick's), targets, PyTorch code
  measure.py  what is timed and how: threads, runs, the BLAS settings tried,
              modelc's whole-program runs minus a small-input run, torch's
              warm calls in a child process, peak RSS, the arena
  machine.py  row 7 and the environment header
  report.py   metrics, targets, the output check, the table and the CSV

Usage: bench.py [--quick] [--runs N] [--cases a,b] [--threads 1,2]
                [--csv PATH] [--keep]
       bench.py --torch-child KEY ... (internal: one torch measurement)
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from cases import SOURCE_DIR, HERE, cases, configs, make_gpt2_weights, target_text
from machine import cpu_info, environment, measure_machine, run_triad
from measure import (GNU_TIME, arena_bytes, compile_case, has_gnu_time, setting_label,
                     time_modelc, time_torch, torch_child, write_inputs)
from report import compare, print_table, rate, write_csv

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "e2e"))
from mc_e2e import write_safetensors  # noqa: E402


def tmp_root():
    for d in ("/dev/shm", None):
        if d is None or (os.path.isdir(d) and os.access(d, os.W_OK)
                         and shutil.disk_usage(d).free > (4 << 30)):
            return tempfile.mkdtemp(prefix="mc_bench_", dir=d)


def run_case(case, idx, modelc, root, threads_list, runs, explicit, rated, triad_now, progs,
             gpt2_weights):
    """The case's rows, one per thread count; rated: what measure_machine
    measured (the BLAS settings torch tries, OpenBLAS's and the float peak's
    GFLOP/s, the read bandwidth)."""
    rows = []
    # rated against the triad: measured next to the case (before and after
    # modelc's runs), as this VM's bandwidth moves by 2x within minutes
    by_triad = case["kind"] == "decode" or bool(case.get("bytes"))
    work = os.path.join(root, case["key"])
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(1234 + idx)
    weights, inputs = case["make"](rng)
    if callable(case["flops"]):
        case = dict(case, flops=case["flops"](inputs))
    wpath = os.path.join(work, "w.safetensors")
    if weights == "gpt2":
        os.symlink(gpt2_weights(), wpath)
        weight_bytes = os.path.getsize(wpath)
    elif weights:
        write_safetensors(wpath, weights)
        weight_bytes = sum(v.nbytes for v in weights.values())
    else:
        weight_bytes = 0
    wargs = ["--weights", wpath] if weight_bytes else []
    with open(os.path.join(work, "case.json"), "w") as f:
        json.dump(case["cfg"], f)
    big_args = wargs + write_inputs(work, inputs)
    prog, compile_s = compile_case(modelc, case, os.path.join(root, "progs"), progs)
    # the LLVM backend's program, where it compiles the model's ops
    llvm_case = dict(case, key=case["key"] + "_llvm",
                     compile_args=case.get("compile_args", []) + ["--backend", "llvm"])
    try:
        llvm_prog, _ = compile_case(modelc, llvm_case, os.path.join(root, "progs"), progs)
    except RuntimeError as e:
        llvm_prog, llvm_why = None, str(e).strip().splitlines()[-1]
    arena, arena_low, prepared = arena_bytes(modelc, case, work)
    weight_bytes += prepared or 0  # what the program keeps
    saved = False
    for n in threads_list:
        row = dict(row=case["row"], key=case["key"], case=case["name"], threads=n,
                   target=target_text(case, n), weights_mb=weight_bytes / 2 ** 20,
                   arena_mb="" if arena is None else arena / 2 ** 20,
                   arena_vs_live="" if not arena_low else arena / arena_low,
                   compile_s=compile_s)
        triad_before = triad_now(n) if by_triad else None
        mc_s, columns, mc_out = time_modelc(case, prog, big_args, work, n, runs)
        triad_gbs = (triad_before + triad_now(n)) / 2 if by_triad else None
        row.update(columns)
        # the peak RSS target: weights + arena + 16 MB, plus the program's
        # own inputs and outputs (a prompt's logits are 25-98 MB)
        io = sum(np.asarray(v).nbytes for v in inputs.values()) + sum(
            os.path.getsize(os.path.join(mc_out, f)) for f in os.listdir(mc_out)
            if f.endswith(".npy"))
        row["io_mb"] = io / 2 ** 20
        if row["arena_mb"] != "":  # unknown for a training program
            row["rss_budget_mb"] = row["weights_mb"] + row["arena_mb"] + row["io_mb"] + 16
            row["rss_ok"] = "yes" if row["rss_mc_mb"] <= row["rss_budget_mb"] else "no"
        if llvm_prog:  # right after the C program's, as torch's threads may linger
            os.makedirs(os.path.join(work, "llvm"), exist_ok=True)
            llvm_s, _, llvm_out = time_modelc(case, llvm_prog, big_args,
                                              os.path.join(work, "llvm"), n, runs)
        pt_s, s, r = time_torch(case, work, n, runs, explicit, rated["candidates"][n],
                                 save=not saved)
        saved = True
        noise = mc_s <= 0 or pt_s <= 0  # decoding: t(64) - t(1) within noise
        row.update(torch_ms=1e3 * pt_s, torch_setting=setting_label(s),
                   torch_runs=r.get("runs", ""), torch_cpu_wall=r.get("cpu_wall", ""),
                   rss_pt_mb=r["rss_kb"] / 1024.0, ratio="" if noise else mc_s / pt_s)
        rate(case, row, mc_s, pt_s, triad_gbs,
             {k: rated[k][n] for k in ("blas", "peak", "read")}, noise)
        ok, text = compare(case, mc_out, os.path.join(work, "torch_out"))
        row["check_ok"], row["check"] = ok, text
        if llvm_prog:
            ok, text = compare(case, llvm_out, os.path.join(work, "torch_out"))
            row.update(llvm_ms=1e3 * llvm_s, llvm_vs_c=llvm_s / mc_s, llvm_check_ok=ok,
                       llvm_check=text)
        else:
            row.update(llvm_ms="", llvm_vs_c="", llvm_note=llvm_why)
        rows.append(row)
        print("  %-44s t=%d modelc %9.2f ms  torch %9.2f ms (%s)  %s" % (
            case["key"], n, row["modelc_ms"], row["torch_ms"], row["torch_setting"], text),
            flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--torch-child")
    ap.add_argument("--dir")
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--explicit-runs", action="store_true")
    ap.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    ap.add_argument("--runs", type=int, default=0, help="timed runs per measurement")
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 run: a smoke check")
    ap.add_argument("--cases", help="comma-separated case keys or row numbers (gpt2_128, "
                    "gpt2_512, gpt2_decode, gpt2_decode_f16, encoder, bilstm_crf, bilstm_crf_train, act_chain, "
                    "sgemm_1024, "
                    "activations_all, 6, ...)")
    ap.add_argument("--csv", default=os.path.join(HERE, "results.csv"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if args.torch_child:
        args.threads = int(args.threads)
        return torch_child(args)

    threads_list = [int(x) for x in args.threads.split(",") if x]
    explicit = args.runs > 0
    runs = args.runs or (1 if args.quick else 5)
    cfg = configs(args.quick)
    modelc = os.environ.get("MODELC", os.path.join(SOURCE_DIR, "build", "modelc"))
    cpu = cpu_info()
    t_start = time.perf_counter()
    print("modelc benchmark, %s%s" % (time.strftime("%Y-%m-%d %H:%M"),
                                       " (--quick: small sizes)" if args.quick else ""))
    for line in environment(cpu, threads_list):
        print("  " + line)
    print("  modelc: %s" % modelc)
    print("  timing: modelc = median of the program's own timer (PROG --time R: the model "
          "alone, after a warm-up run); decoding = (t(%d new) - t(1 new)) / %d on both "
          "sides (modelc: median of 3 process pairs); torch = median warm call; %d run(s) (short runs repeated); RSS from %s" % (
              cfg["decode_new"], cfg["decode_new"] - 1, runs,
              GNU_TIME if has_gnu_time() else "wait4 (floor: python's RSS)"))
    print(flush=True)

    every = cases(cfg)
    selected = [c for c in every if not c.get("optional")]
    if args.cases:
        want = args.cases.split(",")
        selected = [c for c in every if c["key"] in want or str(c["row"]) in want]
        unknown = [w for w in want if not any(c["key"] == w or str(c["row"]) == w
                                              for c in every)]
        if unknown:
            print("unknown case(s): %s" % ", ".join(unknown))
            return 2

    root = tmp_root()
    rows, machine, failures = [], [], []
    try:
        rated, machine = measure_machine(modelc, root, cfg, threads_list, runs, args.quick,
                                         cpu[1])
        gpt2_path = os.path.join(root, "gpt2_weights.safetensors")

        def gpt2_weights():
            if not os.path.exists(gpt2_path):
                print("  (writing GPT-2 weights)", flush=True)
                write_safetensors(gpt2_path, make_gpt2_weights(np.random.default_rng(99),
                                                               cfg["gpt2"]))
            return gpt2_path

        progs = {}

        def triad_now(n):
            return run_triad(os.path.join(root, "triad"), n, cfg["triad_mib"], cfg["triad_reps"])

        print("cases:", flush=True)
        for i, case in enumerate(selected):
            try:
                rows += run_case(case, i, modelc, root, threads_list, runs, explicit,
                                 rated, triad_now, progs, gpt2_weights)
            except Exception as e:  # noqa: BLE001 - the other rows still run
                msg = str(e).strip().replace("\n", " ")[:600]
                failures.append((case["key"], msg))
                print("  %-44s FAILED: %s" % (case["key"], msg), flush=True)
                shutil.rmtree(os.path.join(root, case["key"]), ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print("work directory kept: %s" % root)

    print_table(rows, failures)
    if machine + rows:
        write_csv(args.csv, machine + rows)
        print("\nwrote %s (%.0f s in all)" % (args.csv, time.perf_counter() - t_start))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
