"""Row 7 of the benchmark: the machine, measured before the cases.

 - STREAM triad bandwidth: bench/triad.c compiled here with -O2
   -march=native -pthread, a[i] = b[i] + s*c[i] over three 256 MiB float
   arrays (--quick: 64 MiB), best of 10 (--quick: 3), 12 bytes per element.
   The activation chain and the decoding bound are rated against it, measured
   again right before and after modelc's runs of the case (their mean): on
   this kind of VM the 2-thread triad moved between 40 and 60 GB/s within
   minutes (bench/probe.h times it from the threads' own clocks).
 - Read bandwidth: bench/read.c compiled the same way (with
   -ffp-contract=fast), a sum over 256 MiB (--quick: 64) of floats in 8
   independent vector accumulators, best of 10 (--quick: 3): the floor of a
   decoding step is its weight bytes at this bandwidth (it reads them and
   writes almost nothing).
 - Float peak: bench/peak.c compiled here with -O2 -march=native
   -ffp-contract=fast, 16 independent multiply-adds of 64-byte float
   vectors per loop iteration on each thread, best of 5: the GFLOP/s no
   program exceeds. A case that counts FLOPs states the floor of its ratio,
   the time its FLOPs take at this peak / torch's time.
 - OpenBLAS sgemm GFLOP/s at 1024 (torch.matmul in a child process) under
   every BLAS setting tried (measure.py); the fastest valid ones are the
   settings the cases' torch side then runs under.
 - The size of the runtime a generated program links: GPT-2 generation's
   program (it calls the most of the runtime) compiled and linked with
   modelc's flags (unused functions dropped by --gc-sections); the runtime
   objects' .text sections the link keeps, from the linker map; target
   <= 64 KB.
Also the header of the report: CPU, ISA flags, C compiler, thread counts,
the BLAS environment variables and torch's build.
"""
import json
import os
import platform
import re
import shutil
import subprocess

from cases import GPT2_QUICK, HERE, SOURCE_DIR
from measure import blas_settings, run_torch, setting_label, setting_valid

# codegen/c_build.c's flags (the runtime's files at -O2, the model's at -O3)
# and the files it leaves out of a program
CFLAGS = ["-std=c11", "-O2", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math",
          "-pthread",
          "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections"]
LIBRARY_ONLY = ("mc_bpe.c", "mc_bpe_load.c", "mc_unicode_tables.c")
# compiled -Os by modelc (codegen/c_build.c, is_cold)
COLD = ("mc_main.c", "mc_model.c", "mc_npy.c", "mc_prepared.c", "mc_runtime.c",
        "mc_safetensors.c", "mc_st_write.c", "mc_train.c", "mc_weights.c")
RUNTIME_TEXT_TARGET = 64 * 1024


def c_compiler():
    return os.environ.get("CC", "cc")


def cpu_info():
    model, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.processor()):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = " " + line.split(":", 1)[1].strip() + " "
    except OSError:
        pass
    return model, flags


def build_probe(root, name, flags=()):
    """(path, the -march flag used) of bench/NAME.c compiled into root."""
    exe = os.path.join(root, name)
    src = os.path.join(HERE, name + ".c")
    cc = c_compiler()
    for extra in (["-march=native"], []):
        p = subprocess.run([cc, "-std=c11", "-O2"] + extra + list(flags) +
                           ["-pthread", src, "-o", exe], capture_output=True, text=True)
        if p.returncode == 0:
            return exe, " ".join(extra)
    raise RuntimeError("cannot compile bench/%s.c: %s" % (name, p.stderr))


def run_probe(exe, *args):
    """The number a probe prints last (triad: GB/s; peak: GFLOP/s)."""
    out = subprocess.run([exe] + [str(a) for a in args], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[2])


def run_triad(exe, threads, mib, reps):
    return run_probe(exe, threads, mib, reps)


def runtime_text(modelc, root, model, defines):
    """(.text bytes of the runtime in a linked program, {file: .text bytes},
    the whole program's .text) for models/<model>, compiled and linked as
    modelc does (-ffunction-sections, --gc-sections), stripped. The bytes
    per file come from the linker's map of the kept sections."""
    out = os.path.join(root, "rt_c")
    shutil.rmtree(out, ignore_errors=True)
    defines = [a for k, v in defines.items() for a in ("-D", "%s=%s" % (k, v))]
    subprocess.run([modelc, "compile", os.path.join(SOURCE_DIR, "models", model)]
                   + defines + ["--emit", "c", "-o", out], check=True, capture_output=True)
    cc = c_compiler()
    extra = os.environ.get("MC_CFLAGS", "").split()
    objs = []
    for f in sorted(os.listdir(out)):
        if f.endswith(".c") and f not in LIBRARY_ONLY:
            objs.append(os.path.join(out, f[:-2] + ".o"))
            opt = ["-Os"] if f in COLD else [] if f.startswith("mc_") else ["-O3"]
            subprocess.run([cc] + CFLAGS + opt + extra + ["-c", os.path.join(out, f), "-o",
                                                          objs[-1]],
                           check=True, capture_output=True)
    exe, link_map = os.path.join(out, "prog"), os.path.join(out, "prog.map")
    subprocess.run([cc] + CFLAGS + objs + ["-Wl,-Map=" + link_map, "-lm", "-o", exe],
                   check=True, capture_output=True)
    subprocess.run(["strip", exe], check=False, capture_output=True)
    with open(link_map) as f:
        kept = f.read().split("Linker script and memory map", 1)[-1]
    per = {}
    for m in re.finditer(r"^ (\.text\S*)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+\.o)$", kept, re.M):
        name = os.path.basename(m.group(3))
        if name.startswith("mc_"):
            per[name[:-2] + ".c"] = per.get(name[:-2] + ".c", 0) + int(m.group(2), 16)
    sa = subprocess.run(["size", "-A", exe], check=True, capture_output=True, text=True).stdout
    whole = sum(int(m.group(1)) for m in re.finditer(r"^\.text\S*\s+(\d+)", sa, re.M))
    shutil.rmtree(out, ignore_errors=True)
    return sum(per.values()), dict(sorted(per.items())), whole


def environment(flags_line, threads):
    lines = []
    model, flags = flags_line
    lines.append("CPU: %s, %d logical cores" % (model, os.cpu_count() or 0))
    isa = [x for x in ("sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni")
           if (" %s " % x) in flags]
    lines.append("ISA flags: %s (modelc builds the model's C at -O3 -march=native, the "
                 "runtime's at -O2 (-Os for its once-per-run files), no -march: "
                 "codegen/c_build.c; all with -std=c11 -ffp-contract=off -fno-fast-math "
                 "-fno-trapping-math%s)" % (
                     " ".join(isa),
                     (" " + os.environ["MC_CFLAGS"]) if os.environ.get("MC_CFLAGS") else ""))
    cc = shutil.which(c_compiler())
    if cc:
        v = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
        lines.append("C compiler: %s" % v.splitlines()[0])
    lines.append("threads: %s; modelc via MC_THREADS=n; torch via torch.set_num_threads(n), "
                 "OMP_NUM_THREADS=n" % ",".join(map(str, threads)))
    lines.append("environment: OPENBLAS_CORETYPE=%s OPENBLAS_NUM_THREADS=%s OMP_NUM_THREADS=%s "
                 "MC_THREADS=%s" % tuple(os.environ.get(v, "(unset)") for v in (
                     "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                     "MC_THREADS")))
    try:
        import torch
        cfg = torch.__config__.show().replace(",", " ").split()
        blas = [w for w in cfg if w.startswith(("BLAS_INFO=", "USE_MKLDNN=", "USE_OPENMP="))]
        lib = "/usr/lib/%s-linux-gnu/libblas.so.3" % platform.machine()
        if os.path.exists(lib):
            blas.append("libblas.so.3 -> %s" % os.path.realpath(lib))
        lines.append("torch %s (%s)" % (torch.__version__, ", ".join(blas)))
    except Exception as e:  # the rows then fail with the reason
        lines.append("torch: not available (%s)" % e)
    return lines




# ---- row 7 ------------------------------------------------------------------------

def measure_triad(root, cfg, threads_list, machine):
    """{threads: triad GB/s}; appends the rows to machine."""
    exe, march = build_probe(root, "triad")
    triad = {}
    for n in threads_list:
        triad[n] = run_triad(exe, n, cfg["triad_mib"], cfg["triad_reps"])
        print("  triad bandwidth, %d thread(s): %.2f GB/s (3 x %d MiB float arrays, best "
              "of %d, cc -O2 %s)" % (n, triad[n], cfg["triad_mib"], cfg["triad_reps"],
                                     march), flush=True)
        machine.append(dict(row=7, key="triad", case="triad bandwidth GB/s", threads=n,
                            metric="%.2f GB/s" % triad[n], triad_gbs=triad[n]))
    return triad


def measure_read(root, cfg, threads_list, machine):
    """{threads: read GB/s}; appends the rows to machine."""
    exe, march = build_probe(root, "read", ["-ffp-contract=fast"])
    read = {}
    for n in threads_list:
        read[n] = run_probe(exe, n, cfg["triad_mib"], cfg["triad_reps"])
        print("  read bandwidth, %d thread(s): %.2f GB/s (a sum over %d MiB, best of %d, "
              "cc -O2 %s)" % (n, read[n], cfg["triad_mib"], cfg["triad_reps"], march),
              flush=True)
        machine.append(dict(row=7, key="read", case="read bandwidth GB/s", threads=n,
                            metric="%.2f GB/s" % read[n], read_gbs=read[n]))
    return read


def measure_peak(root, threads_list, machine):
    """{threads: FMA peak GFLOP/s}; appends the rows to machine."""
    exe, march = build_probe(root, "peak", ["-ffp-contract=fast"])
    peak = {}
    for n in threads_list:
        peak[n] = run_probe(exe, n, 5)
        print("  float peak, %d thread(s): %.1f GFLOP/s (16 independent multiply-adds of "
              "64-byte vectors, best of 5, cc -O2 %s -ffp-contract=fast)" % (
                  n, peak[n], march), flush=True)
        machine.append(dict(row=7, key="fma_peak", case="float peak GFLOP/s", threads=n,
                            metric="%.1f GFLOP/s" % peak[n], peak_gflops=peak[n]))
    return peak


def calibrate_blas(root, threads_list, runs, quick, flags, machine):
    """({threads: the BLAS settings the cases try}, {threads: the best valid
    setting's GFLOP/s}), from sgemm 1024 through torch.matmul under every
    setting; appends the rows to machine."""
    settings = blas_settings(flags)
    calib_dir = os.path.join(root, "calibrate")
    os.makedirs(calib_dir)
    with open(os.path.join(calib_dir, "case.json"), "w") as f:
        json.dump({"n": 1024}, f)
    candidates, best = {}, {}
    print("  OpenBLAS sgemm 1024 through torch.matmul (GFLOP/s; cpu/wall = CPU time / "
          "wall time; obt = OPENBLAS_NUM_THREADS):", flush=True)
    for n in threads_list:
        results = []
        for s in settings:
            if s["blas_threads"] == "unset" and n == (os.cpu_count() or 1):
                print("    t=%d %-28s same as obt=match at the core count" % (
                    n, setting_label(s)))
                continue
            try:
                r = run_torch("calibrate", calib_dir, n, max(runs, 5), False, s,
                              verbose=True)
            except RuntimeError as e:
                print("    t=%d %-28s failed: %s" % (n, setting_label(s), e))
                continue
            gf = 2 * 1024 ** 3 / r["main"] / 1e9
            valid = setting_valid(s, n)
            results.append((gf, s, valid))
            print("    t=%d %-28s %7.1f GFLOP/s  cpu/wall %.2f  OpenBLAS core %s%s" % (
                n, setting_label(s), gf, r["cpu_wall"], r["core"] or "?",
                "" if valid else "  (not an n-thread setting: never wins)"), flush=True)
            machine.append(dict(row=7, key="openblas_sgemm_1024", threads=n,
                                case="OpenBLAS sgemm 1024 GFLOP/s (torch)",
                                torch_setting=setting_label(s), pt_gflops=gf,
                                torch_cpu_wall=r["cpu_wall"],
                                metric="core %s%s" % (r["core"] or "?",
                                                      "" if valid else ", invalid")))
        valid = sorted([x for x in results if x[2]], key=lambda x: -x[0])
        if not valid:
            raise RuntimeError("torch could not run under any BLAS setting")
        candidates[n] = [x[1] for x in valid if x[0] >= 0.9 * valid[0][0]][:1 if quick else 2]
        best[n] = valid[0][0]
        print("  t=%d: best %s (%.1f GFLOP/s); cases try: %s" % (
            n, setting_label(valid[0][1]), valid[0][0],
            ", ".join(setting_label(s) for s in candidates[n])), flush=True)
    return candidates, best


# The programs that link the most of the runtime: GPT-2 generation (tiny
# sizes: the code is the same) and a training program (the trainer and the
# safetensors writer).
RUNTIME_TEXT_PROGRAMS = (("GPT-2 generation", "gpt2_generate.model", GPT2_QUICK, ""),
                         ("BiLSTM-CRF training", "train_bilstm_crf.model", {}, "_train"))


def report_runtime_text(modelc, root, machine):
    for label, model, defines, key in RUNTIME_TEXT_PROGRAMS:
        try:
            text, per, berkeley = runtime_text(modelc, root, model, defines)
        except (subprocess.CalledProcessError, OSError) as e:
            print("  runtime size (%s): failed: %s" % (label, e))
            continue
        met = "yes" if text <= RUNTIME_TEXT_TARGET else "no"
        print("  runtime linked by %s's program: .text %.1f KB (target <= %d KB: %s), the "
              "whole program's .text %.1f KB; %s" % (
                  label, text / 1024, RUNTIME_TEXT_TARGET // 1024, met, berkeley / 1024,
                  " ".join("%s %.1f" % (f[3:-2], v / 1024) for f, v in per.items())))
        machine.append(dict(row=7, key="runtime_text" + key,
                            case="runtime .text KB, %s" % label,
                            metric="%.1f KB" % (text / 1024), target="<=64 KB",
                            target_met=met))


def measure_machine(modelc, root, cfg, threads_list, runs, quick, flags):
    """Row 7, printed: a dict of what the cases are rated against, each by
    thread count: "triad" and "read" (GB/s), "peak" (FMA GFLOP/s), "blas" (the best
    OpenBLAS sgemm 1024 GFLOP/s), "candidates" (the BLAS settings the cases
    try); and the CSV rows."""
    machine = []
    print("machine (row 7):", flush=True)
    triad = measure_triad(root, cfg, threads_list, machine)
    read = measure_read(root, cfg, threads_list, machine)
    peak = measure_peak(root, threads_list, machine)
    candidates, blas = calibrate_blas(root, threads_list, runs, quick, flags, machine)
    report_runtime_text(modelc, root, machine)
    print(flush=True)
    return dict(triad=triad, read=read, peak=peak, blas=blas, candidates=candidates), machine
