"""Shared helpers of the end-to-end tests: compile a model with modelc, run the
program it emits, compare its outputs with a PyTorch/numpy reference.

The tests run under Debian's /usr/bin/python3 (it sees python3-torch and
python3-numpy) with this environment, set by tests/CMakeLists.txt:
  MODELC          path of the compiler under test (build/modelc)
  MC_SOURCE_DIR   the repository (models/ lives there)
  MC_SANITIZE     ON: the generated programs are built with ASan+UBSan too,
                  through MC_CFLAGS, which modelc adds to its C compiler call.
Optional: MC_E2E_KEEP=1 keeps the work directories of passing tests.
MC_VALGRIND=1 (an unsanitized build only: valgrind and ASan do not mix) runs
the first run of each program under valgrind's memcheck (programs built for
x86-64-v3: valgrind 3.19 has no AVX-512): any error or leak it reports fails
the test (scripts/valgrind.sh).

A test builds its checks with a Checker and ends with `sys.exit(ck.finish())`.
Every model family's test also runs its program on 1, 2 and 3 threads with
every loop cut into pieces (check_threads): the outputs must keep their bits.
Every comparison prints what it measured, pass or fail. A missing torch or
numpy is a failure, never a skip.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

SOURCE_DIR = os.environ.get(
    "MC_SOURCE_DIR",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODELS_DIR = os.path.join(SOURCE_DIR, "models")
SANITIZE = os.environ.get("MC_SANITIZE", "OFF").upper() in ("ON", "1", "TRUE", "YES")
# -g1: line tables, all a sanitizer's report needs; full -g made gcc's
# variable tracking take 5x as long on a model's long run function
SANITIZER_CFLAGS = "-fsanitize=address,undefined -fno-omit-frame-pointer -g1"
# Generous: a sanitized C compile of the runtime plus a model takes seconds.
TIMEOUT = 600
VALGRIND = os.environ.get("MC_VALGRIND") == "1"
VALGRIND_ARGV = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                 "--errors-for-leak-kinds=definite,indirect",
                 "--show-leak-kinds=definite,indirect"]
valgrind_runs = {}  # program -> memcheck's report ("" if clean)


def modelc():
    path = os.environ.get("MODELC")
    if not path:
        raise RuntimeError("MODELC is not set: run the tests through ctest, "
                           "or set MODELC=build/modelc")
    return path


def model_path(name):
    return os.path.join(MODELS_DIR, name)


def import_torch():
    """torch, or an exception that fails the test: references are never skipped."""
    try:
        import torch
    except ImportError as e:
        raise RuntimeError("PyTorch is required for this test (Debian package "
                           "python3-torch, run with /usr/bin/python3): %s" % e)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return torch


# ---- files --------------------------------------------------------------

_ST_DTYPES = {
    np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
    np.dtype(np.float16): "F16", np.dtype(np.int32): "I32",
    np.dtype(np.int64): "I64", np.dtype(np.int8): "I8",
    np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL",
}


def to_numpy(t):
    """A numpy array from a numpy array or a (CPU) torch tensor."""
    if isinstance(t, np.ndarray):
        return t
    if hasattr(t, "detach"):
        return t.detach().cpu().contiguous().numpy()
    return np.asarray(t)


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: array or tensor} in the safetensors format: an 8-byte
    little-endian header length, a JSON header (padded with spaces to a
    multiple of 8), then the tensors' bytes in name order."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(to_numpy(tensors[name]))
        if a.dtype not in _ST_DTYPES:
            raise ValueError("%s: dtype %s has no safetensors name" % (name, a.dtype))
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _ST_DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    write_safetensors_raw(path, header, b"".join(blobs))


def read_safetensors(path):
    """({name: array}, metadata) of a safetensors file, checked as strictly
    as the format asks: a JSON header within the file, padded to 8 bytes,
    offsets that tile the data exactly in the order given."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    assert n % 8 == 0 and 8 + n <= len(blob), "header length %d" % n
    header = json.loads(blob[8:8 + n].decode())
    meta = header.pop("__metadata__", None)
    names = {v: k for k, v in _ST_DTYPES.items()}
    out, end = {}, 0
    for name, e in header.items():
        begin, stop = e["data_offsets"]
        assert begin == end, "%s: not contiguous" % name
        dt = names[e["dtype"]].newbyteorder("<")
        a = np.frombuffer(blob[8 + n + begin:8 + n + stop], dtype=dt)
        out[name] = a.reshape(e["shape"])
        end = stop
    assert 8 + n + end == len(blob), "trailing bytes"
    return out, meta


def write_safetensors_raw(path, header, data):
    """Writes a header dict and a data blob as given, valid or not (for tests
    of the loader's validation)."""
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)


def save_npy(path, array):
    np.save(path, to_numpy(array), allow_pickle=False)
    return path


def load_npy(path):
    return np.load(path, allow_pickle=False)


# ---- running modelc and the programs -------------------------------------

class Work:
    """A work directory for one test, under the build directory (next to
    modelc), removed at the end unless the test failed or MC_E2E_KEEP is set."""

    def __init__(self, test_name):
        base = os.path.join(os.path.dirname(os.path.abspath(modelc())), "e2e-work")
        os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix=test_name + "-", dir=base)
        self.inputs_written = 0

    def path(self, *parts):
        p = os.path.join(self.dir, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def next_input_path(self, name):
        """A fresh path for an input .npy file, apart from any output directory."""
        self.inputs_written += 1
        return self.path("program-inputs", "%d" % self.inputs_written, name + ".npy")

    def cleanup(self, failed):
        if failed or os.environ.get("MC_E2E_KEEP"):
            print("work directory kept: %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def tool_env():
    env = dict(os.environ)
    if SANITIZE:
        env["MC_CFLAGS"] = (env.get("MC_CFLAGS", "") + " " + SANITIZER_CFLAGS).strip()
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


class Result:
    def __init__(self, argv, proc):
        self.argv = argv
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def describe(self):
        return "$ %s\nexit %d\n--- stdout\n%s--- stderr\n%s" % (
            " ".join(self.argv), self.returncode, self.stdout, self.stderr)


def run(argv, check=True, cwd=None, env=None):
    """Runs a command (with env's variables added), returns a Result; with
    check, raises on a non-zero exit."""
    argv = [str(a) for a in argv]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=dict(tool_env(), **(env or {})),
                          cwd=cwd, timeout=TIMEOUT)
    res = Result(argv, proc)
    if check and res.returncode != 0:
        raise RuntimeError("command failed\n" + res.describe())
    return res


def compile_args(model, out, defines=None, weights=None, opt=None, emit="exe",
                 config=None, extra=()):
    argv = [modelc(), "compile", model]
    for name, value in (defines or {}).items():
        argv += ["-D", "%s=%s" % (name, value)]
    if config:
        argv += ["--config", config]
    if weights:
        argv += ["--weights", weights]
    if emit:
        argv += ["--emit", emit]
    if opt is not None:
        argv.append("-O%d" % opt)
    argv += list(extra)
    if VALGRIND and emit in ("exe", None) and "--cpu" not in extra:
        argv += ["--cpu", "x86-64-v3"]
    argv += ["-o", out]
    return argv


def compile_model(model, out, **kw):
    """modelc compile ...; returns OUT. Raises with the compiler's output on failure."""
    run(compile_args(model, out, **kw))
    return out


def run_program(prog, inputs, outdir, work, weights=None, check=True, entry=None,
                threads=None, env=None):
    """Runs an emitted program (its entry `entry`, on `threads` threads when
    given). inputs: {name: array} (saved as .npy, dtype kept) or {name:
    path}. Returns (Result, {output name: array})."""
    argv = [prog]
    if entry:
        argv.append(entry)
    if threads:
        argv += ["--threads", str(threads)]
    if weights:
        argv += ["--weights", weights]
    for name, value in inputs.items():
        if isinstance(value, str):
            path = value
        else:
            path = save_npy(work.next_input_path(name), value)
        argv.append("%s=%s" % (name, path))
    argv += ["-o", outdir]
    if VALGRIND and prog not in valgrind_runs:
        res = run(VALGRIND_ARGV + argv, check=False, env=env)
        valgrind_runs[prog] = res.stderr if res.returncode == 99 else ""
        print("valgrind %s: %s" % (os.path.basename(prog),
                                   "errors" if valgrind_runs[prog] else "clean"))
        if check and res.returncode != 0:
            raise RuntimeError("command failed\n" + res.describe())
    else:
        res = run(argv, check=check, env=env)
    outputs = {}
    if os.path.isdir(outdir):
        for f in sorted(os.listdir(outdir)):
            if f.endswith(".npy"):
                outputs[f[:-4]] = load_npy(os.path.join(outdir, f))
    return res, outputs


def check_threads(ck, name, prog, inputs, work, weights=None, entry=None, base=None):
    """Runs prog on 1, 2 and 3 threads with MC_SPLIT_ALL=1 (every loop in as
    many pieces as threads, however small: the test models are): every
    output has the same bits on each. Under the sanitizers, where a run
    costs more, only on 3 threads against `base` (the outputs of the test's
    own run, on every core, without the switch), or on 1 and 3 without it."""
    if SANITIZE and base:
        counts, runs = (3,), [base]
        names = ["the test's run", "3 threads"]
    else:
        counts = (1, 3) if SANITIZE else (1, 2, 3)
        runs = []
        names = ["%d thread%s" % (t, "s" if t > 1 else "") for t in counts]
    for t in counts:
        outdir = work.path("threads", "%s-%d" % (re.sub(r"\W+", "_", name), t))
        runs.append(run_program(prog, inputs, outdir, work, weights=weights, entry=entry,
                                threads=t, env={"MC_SPLIT_ALL": "1"})[1])
    same = bool(runs[0]) and all(sorted(r) == sorted(runs[0]) for r in runs)
    ck.check("%s: the same outputs on %s" % (name, ", ".join(names)), same,
             ", ".join(sorted(runs[0])) if same else "%s" % [sorted(r) for r in runs])
    for out in sorted(runs[0]):
        for what, r in zip(names[1:], runs[1:]):
            if out in r:
                ck.bits_equal("%s: %s on %s = on %s" % (name, out, what, names[0]), r[out],
                              runs[0][out])


# ---- comparing -----------------------------------------------------------

def errors(got, want, floor=None):
    """(max abs error, max relative error) over finite reference values. The
    relative error is taken where |want| >= floor (default: the smallest
    normal float32; the checks pass their absolute tolerance): near zero
    only the absolute error means something."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    finite = np.isfinite(want)
    if not finite.any():
        return 0.0, 0.0
    diff = np.abs(got[finite] - want[finite])
    mag = np.abs(want[finite])
    floor = np.finfo(np.float32).tiny if floor is None else floor
    big = mag >= floor
    rel = diff[big] / mag[big] if big.any() else np.zeros(1)
    return float(np.nan_to_num(diff.max(), nan=np.inf)), \
        float(np.nan_to_num(rel.max(), nan=np.inf))


class Checker:
    """Collects named checks; each prints one line. finish() returns the exit code."""

    def __init__(self, test_name):
        self.test_name = test_name
        self.failures = []
        self.count = 0

    def check(self, name, ok, detail=""):
        self.count += 1
        print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail else ""))
        sys.stdout.flush()
        if not ok:
            self.failures.append(name)
        return ok

    def close(self, name, got, want, rtol, atol):
        """|got - want| <= atol + rtol * |want| elementwise; same shape; the
        reference's non-finite values (inf, nan) must be matched exactly."""
        got = np.asarray(got)
        want = np.asarray(want)
        if got.shape != want.shape:
            return self.check(name, False, "shape %s, expected %s" % (got.shape, want.shape))
        if got.dtype != want.dtype:
            return self.check(name, False, "dtype %s, expected %s" % (got.dtype, want.dtype))
        g = got.astype(np.float64)
        w = want.astype(np.float64)
        nonfinite_ok = bool(np.array_equal(np.isnan(g), np.isnan(w)) and
                            np.array_equal(g[np.isinf(w)], w[np.isinf(w)]) and
                            not np.isinf(g[np.isfinite(w)]).any())
        fin = np.isfinite(w)
        within = np.abs(g[fin] - w[fin]) <= atol + rtol * np.abs(w[fin])
        ok = nonfinite_ok and bool(within.all())
        floor = atol if atol > 0 else None
        abs_err, rel_err = errors(g, w, floor)
        detail = "shape %s max_abs=%.3g max_rel=%.3g where |ref|>=%.3g (tol: atol=%g + rtol=%g*|ref|)" % (
            tuple(got.shape), abs_err, rel_err, floor or 0, atol, rtol)
        if not within.all():
            bad = np.argwhere(~within)[0]
            idx = tuple(np.argwhere(fin)[bad[0]]) if got.ndim else ()
            detail += "; first bad element %s: got %r want %r" % (idx, g[idx], w[idx])
        if not nonfinite_ok:
            detail += "; inf/nan positions differ"
        return self.check(name, ok, detail)

    def bits_equal(self, name, got, want):
        """Bit-for-bit equality of two arrays of the same dtype (floats,
        integers or bools)."""
        got = np.asarray(got)
        want = np.asarray(want)
        if got.shape != want.shape or got.dtype != want.dtype:
            return self.check(name, False, "got %s %s, expected %s %s" % (
                got.dtype, got.shape, want.dtype, want.shape))
        bits = np.dtype("u%d" % got.dtype.itemsize)
        gb = got.view(bits)
        wb = want.view(bits)
        differ = int((gb != wb).sum())
        detail = "%d of %d elements differ in their bits" % (differ, got.size)
        if differ:
            i = int(np.argmax(gb != wb))
            detail += "; first at %d: got %r (0x%x) want %r (0x%x)" % (
                i, got.flat[i], gb.flat[i], want.flat[i], wb.flat[i])
        return self.check(name, differ == 0, detail)

    def command_failed_cleanly(self, name, res):
        """A command that must fail: non-zero exit, a message, no crash and no
        sanitizer report."""
        crashed = res.returncode < 0 or res.returncode >= 128
        sanitizer = ("AddressSanitizer" in res.stderr or "runtime error:" in res.stderr
                     or "LeakSanitizer" in res.stderr)
        ok = res.returncode != 0 and not crashed and not sanitizer and res.stderr.strip() != ""
        first = res.stderr.strip().splitlines()[0] if res.stderr.strip() else "(no message)"
        return self.check(name, ok, "exit %d, %s" % (res.returncode, first))

    def finish(self):
        print("%s: %d checks, %d failed" % (self.test_name, self.count, len(self.failures)))
        return 1 if self.failures or self.count == 0 else 0


def main(test_name, body):
    """Runs body(checker, work); any exception fails the test with its text."""
    print("%s: modelc=%s sanitize=%s" % (test_name, os.environ.get("MODELC"), SANITIZE))
    ck = Checker(test_name)
    work = None
    try:
        work = Work(test_name)
        body(ck, work)
    except Exception as e:  # noqa: BLE001 - report any failure, then fail
        import traceback
        traceback.print_exc()
        ck.check("test ran to completion", False, "%s: %s" % (type(e).__name__, e))
    for prog, report in sorted(valgrind_runs.items()):
        name = os.path.relpath(prog, work.dir) if work else prog
        ck.check("valgrind: %s is clean" % name, not report,
                 report.strip()[-2000:])
    code = ck.finish()
    if work:
        work.cleanup(code != 0)
    sys.exit(code)
