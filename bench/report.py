"""The benchmark's report: each case's metric, target and check, the table
and the CSV.

Metric: GFLOP/s where the case counts FLOPs (the prompts: also the best
OpenBLAS sgemm 1024 GFLOP/s of row 7 and modelc's share of it); decoding:
the bandwidth bound (weight bytes per token / triad bandwidth) and the share
of it each side reaches; the activation chain: 8 bytes per element / time,
against triad.
Target: met or not (see the rows in cases.py); none when below timing noise.
Check: modelc's outputs against torch's: floats by max|mc - pt| / max|pt|
<= 1e-3; integer outputs (tags, tokens) equal (Viterbi: >= 99% of positions,
for float32 near-ties); the check column says WARN otherwise.
CSV (--csv, default bench/results.csv): the machine rows (row 7), then one
row per case and thread count with every measured column.
"""
import csv
import math
import os

import numpy as np

from cases import gpt2_token_bytes, target_of

FLOAT_TOL = 1e-3
# Weights of at least this many bytes per token stream from memory (twice
# the largest last-level caches here): a decoding row's floor is stated from
# this size on (GPT-2 small: 247 MB in 16 bits)
STREAMED_BYTES = 64 << 20
# 16-bit weights: the cost is printed; more than this is a failure
HALF_TOL = 5e-2


# ---- checks ---------------------------------------------------------------------

def compare(case, mc_dir, pt_dir):
    """(ok, text): modelc's outputs against torch's."""
    notes, ok, worst = [], True, None
    for f in sorted(os.listdir(pt_dir)):
        name = f[:-4]
        ref = np.load(os.path.join(pt_dir, f))
        path = os.path.join(mc_dir, f)
        if not os.path.exists(path):
            return False, "WARN no output %s" % name
        got = np.load(path)
        half = case.get("weight_dtype")
        if case["kind"] == "decode":
            n = int(np.load(os.path.join(mc_dir, "n_tokens.npy")))
            got = got[:n]
            same = 0
            while same < min(len(got), len(ref)) and got[same] == ref[same]:
                same += 1
            if same == len(ref) == len(got):
                notes.append("%d/%d tokens" % (same, len(ref)))
            elif half:  # rounded weights may change a greedy choice
                notes.append("%s: tokens as f32 torch's for %d of %d" % (half, same, len(ref)))
            else:
                ok = False
                notes.append("WARN tokens equal up to %d of %d" % (same, len(ref)))
            continue
        if got.shape != ref.shape:
            return False, "WARN %s shape %s vs %s" % (name, got.shape, ref.shape)
        if np.issubdtype(ref.dtype, np.floating):
            scale = float(np.max(np.abs(ref))) if ref.size else 0.0
            err = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
            if not np.all(np.isfinite(got) == np.isfinite(ref)):
                err = math.inf
            rel = err / scale if scale > 0 else err
            if half:  # the accuracy cost of 16-bit weights, against f32 torch
                notes.append("%s cost: max|d%s| %.2g = %.2g of max|%s|" % (
                    half, name, err, rel, name))
                ok = ok and rel <= HALF_TOL
                continue
            if rel <= FLOAT_TOL:
                worst = rel if worst is None else max(worst, rel)
            else:
                ok = False
                notes.append("WARN %s err %.1e" % (name, rel))
        else:
            frac = float(np.mean(got == ref)) if ref.size else 1.0
            need = 0.99 if case["key"] == "bilstm_crf" else 1.0
            if frac >= need:
                notes.append("%.1f%% eq" % (100 * frac))
            else:
                ok = False
                notes.append("WARN %s %.1f%% equal" % (name, 100 * frac))
    if worst is not None:
        notes.insert(0, "err %.0e" % worst)
    text = " ".join(notes)
    return ok, ("ok " + text) if ok else text


# ---- metric and target ------------------------------------------------------------

def rate(case, row, mc_s, pt_s, triad_gbs, machine, noise):
    """Fills row's metric columns, floor and target_met (row["ratio"] is
    set); machine: row 7's figures at the row's thread count ("blas":
    OpenBLAS sgemm 1024 GFLOP/s, "peak": the float peak, "read": GB/s)."""
    blas_gflops = machine["blas"]
    metric, met = "", ""
    target = None if noise else target_of(case, row["threads"])
    kind, tv = target or (None, None)
    if noise:
        metric = "below timing noise"
    elif case["flops"]:
        row["mc_gflops"] = case["flops"] / mc_s / 1e9 if mc_s > 0 else math.inf
        row["pt_gflops"] = case["flops"] / pt_s / 1e9
        # the lowest ratio any program reaches: its FLOPs at the float peak
        row["floor"] = case["flops"] / (machine["peak"] * 1e9) / pt_s
        metric = "GF/s mc %.1f pt %.1f" % (row["mc_gflops"], row["pt_gflops"])
    if case["kind"] == "decode" and not noise:
        bound = gpt2_token_bytes(case["cfg"], case.get("weight_dtype")) / (triad_gbs * 1e9)
        row["bound_ms"] = 1e3 * bound
        row["triad_gbs"] = triad_gbs
        row["bound_share"] = bound / mc_s if mc_s > 0 else math.inf
        # the lowest ratio any program reaches: the bytes at read bandwidth,
        # where they are far larger than the caches (not --quick's)
        nbytes = gpt2_token_bytes(case["cfg"], case.get("weight_dtype"))
        if nbytes >= STREAMED_BYTES:
            row["floor"] = nbytes / (machine["read"] * 1e9) / pt_s
        metric = "bound %.1f ms (%.0f GB/s) mc %.0f%% pt %.0f%%" % (
            1e3 * bound, triad_gbs, 100 * row["bound_share"], 100 * bound / pt_s)
    if case["kind"] == "train" and not noise:
        metric = "steps/s mc %.2f pt %.2f" % (1 / mc_s if mc_s > 0 else math.inf, 1 / pt_s)
    if case.get("bytes") and not noise:
        row["mc_gbs"] = case["bytes"] / mc_s / 1e9 if mc_s > 0 else math.inf
        row["pt_gbs"] = case["bytes"] / pt_s / 1e9
        row["triad_gbs"] = triad_gbs
        metric = "GB/s mc %.2f (%.0f%% of triad %.0f) pt %.2f" % (
            row["mc_gbs"], 100 * row["mc_gbs"] / triad_gbs, triad_gbs, row["pt_gbs"])
    if kind == "ratio":
        met = row["ratio"] <= tv
    elif kind == "gemm":
        met = row["ratio"] <= 1 / tv
        metric += " (%.0f%%)" % (100 / row["ratio"])
    elif kind == "triad":
        met = row["mc_gbs"] >= tv * triad_gbs
    elif kind == "ms":
        met = row["modelc_ms"] <= tv
    also = case.get("target_also") if kind else None
    if also and also[0] == "blas":
        row["blas_gflops"] = blas_gflops
        metric += " BLAS %.0f (%.0f%%)" % (blas_gflops, 100 * row["mc_gflops"] / blas_gflops)
        met = met and row["mc_gflops"] >= also[1] * blas_gflops
    elif also and also[0] == "bound":
        met = met and row["bound_share"] >= also[1]
    row["target_met"] = "" if met == "" else ("yes" if met else "no")
    row["metric"] = metric


# ---- the table and the CSV --------------------------------------------------------

def fmt_ms(v):
    if v == "" or v is None:
        return "-"
    return "%.3f" % v if v < 10 else "%.1f" % v


def print_table(rows, failures):
    print()
    head = ("#", "case", "thr", "modelc ms", "llvm/c", "torch ms", "torch setting", "mc/pt",
            "floor", "target", "met", "metric", "RSS mc", "budget", "RSS pt", "wts MB", "arena",
            "/live", "check")
    fmt = "%-2s %-40s %3s %9s %6s %9s %-15s %6s %5s %-20s %3s %-40s %6s %10s %6s %7s %6s %5s  %s"
    print(fmt % head)
    for r in rows:
        print(fmt % (r["row"], r["case"][:40], r["threads"], fmt_ms(r["modelc_ms"]),
                     "%.2f" % r["llvm_vs_c"] if r.get("llvm_vs_c") else "-",
                     fmt_ms(r["torch_ms"]), r["torch_setting"],
                     "%.2f" % r["ratio"] if r["ratio"] != "" else "-",
                     "%.2f" % r["floor"] if r.get("floor") else "-",
                     r["target"], r["target_met"] or "-", r["metric"][:40],
                     "%.0f" % r["rss_mc_mb"],
                     "%.0f %s" % (r["rss_budget_mb"], r["rss_ok"]) if "rss_ok" in r else "-",
                     "%.0f" % r["rss_pt_mb"],
                     "%.1f" % r["weights_mb"],
                     "%.1f" % r["arena_mb"] if r["arena_mb"] != "" else "?",
                     "%.2f" % r["arena_vs_live"] if r["arena_vs_live"] != "" else "-",
                     r["check"]))
    print("ms: per run (decoding: per token). mc/pt: modelc time / torch time at the same "
          "thread count (lower is better for modelc).\nfloor: the lowest mc/pt any program "
          "reaches, the case's FLOPs at row 7's float peak (decoding: its weight bytes at row 7's read "
          "bandwidth) / torch time.\ntorch setting: OPENBLAS_CORETYPE "
          "(auto = unset) and OPENBLAS_NUM_THREADS (n = the thread count, - = unset). "
          "metric: GFLOP/s (prompts: also OpenBLAS sgemm 1024's, row 7, and\nmodelc's share); "
          "decoding: the bandwidth bound (weight bytes per token / triad bandwidth) and the "
          "share of it each side\nreaches; activation chain: 8 bytes per "
          "element / time. RSS: peak MB\n(GNU time). wts MB: the safetensors weights and the "
          "ones the program computes from them when it loads them\n(prepared); arena: "
          "MiB of the planned arena of intermediates; /live: arena / the most bytes of "
          "intermediates live at one step\n(the lower bound; target <= 1.2). budget: the "
          "peak RSS target, wts MB + "
          "arena + the program's\ninputs and outputs + 16 MB, and whether RSS mc is within "
          "it.\nllvm/c: the LLVM backend's program (--backend llvm) / the C backend's, same "
          "inputs and threads; - where the LLVM backend\ndoes not compile the model's ops "
          "yet.")
    for key, msg in failures:
        print("FAILED %s: %s" % (key, msg))
    warn = [r for r in rows if not r["check_ok"] or r.get("llvm_check_ok") is False]
    if warn:
        print("WARNING: modelc and torch disagree on: %s" % ", ".join(
            "%s t=%d (%s)" % (r["key"], r["threads"], r["check"]) for r in warn))


def write_csv(path, rows):
    fields = ["row", "key", "case", "threads", "modelc_ms", "torch_ms", "ratio", "target",
              "target_met", "metric", "torch_setting", "check_ok", "check"]
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=fields)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: ("%.6g" % v if isinstance(v, float) else v) for k, v in r.items()})
