"""Errors, from the user's side: every one exits non-zero with a message, never
crashes (no signal, no sanitizer report) and leaves no output behind.

- malformed model files: `file:line:col: error: ...`, then the source line,
  then a caret under column col;
- weights that do not fit the model, at compile time and at load time: the
  message names the tensor and both shapes;
- program inputs of the wrong dtype, rank or size, missing or unknown;
- corrupt safetensors headers; token ids and lengths out of range.
"""
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

# name, model source, expected line, expected column (None: not checked),
# regexes the message must match. Columns count from 1.
MODEL_ERRORS = [
    ("lexer: stray character",
     "input x: f32[N]\noutput y = x $ 2\n", 2, 14, []),
    ("syntax: operator without operand",
     "input x: f32[N]\ny = x + * 2\noutput z = y\n", 2, 9, []),
    ("syntax: unclosed parenthesis",
     "input x: f32[N]\noutput y = (x + 1\n", (2, 3), None, []),
    ("lexer: unterminated string",
     "input x: f32[4]\nparam w: f32[4] from \"w.weight\noutput y = x * w\n", 2, 22, []),
    ("unknown dtype",
     "input x: f33[N]\noutput y = x\n", 1, 10, [r"f33"]),
    ("undefined name",
     "input x: f32[N]\noutput y = x + bias\n", 2, 16, [r"bias"]),
    ("shape mismatch of constant dimensions",
     "input a: f32[3, 4]\ninput b: f32[5]\noutput y = a + b\n", 3, None,
     [r"3,\s*4", r"\b5\b"]),
    ("shape mismatch of symbolic dimensions",
     "input a: f32[T, 4]\ninput b: f32[S, 4]\noutput y = a + b\n", 3, None,
     [r"\bT\b", r"\bS\b"]),
    ("matmul inner dimensions inside a function",
     "input x: f32[B, 8]\nfn proj(x) {\n  param w: f32[4, 3] from \"w\"\n  return x @ w\n}\n"
     "output y = proj(x)\n", (4, 6), None, [r"\b8\b", r"\b4\b"]),
    ("declared output type does not match",
     "input x: f32[N]\noutput y: f32[N, 3] = x\n", 2, None, []),
    ("function called with too few arguments",
     "input x: f32[N]\nfn f(a, b) = a + b\noutput y = f(x)\n", 3, None, []),
    ("unknown name in a weight name",
     "input x: f32[4]\nparam w: f32[4] from \"layer.{j}.weight\"\noutput y = x * w\n",
     2, None, [r"\bj\b"]),
]

LOCATION = r"(?:^|[\s/]){file}:(\d+):(\d+): error: (.*)$"


def check_located(ck, name, res, filename, source, line, col, patterns):
    """Exit status, `file:line:col: error:`, the quoted source line, the caret."""
    if not ck.command_failed_cleanly(name + ": fails cleanly", res):
        return
    lines = res.stderr.splitlines()
    regex = re.compile(LOCATION.format(file=re.escape(filename)))
    found = [(i, regex.search(text)) for i, text in enumerate(lines)]
    found = [(i, m) for i, m in found if m]
    if not ck.check(name + ": located error", bool(found),
                    "" if found else "stderr: %r" % res.stderr[:300]):
        return
    i, m = found[0]
    got_line, got_col, message = int(m.group(1)), int(m.group(2)), m.group(3)
    lines_ok = got_line in line if isinstance(line, tuple) else got_line == line
    col_ok = col is None or got_col == col
    ck.check(name + ": position", lines_ok and col_ok,
             "%s:%d:%d: %s (expected line %s%s)" % (
                 filename, got_line, got_col, message, line,
                 "" if col is None else ", column %d" % col))
    for p in patterns:
        ck.check(name + ": message matches /%s/" % p, re.search(p, message) is not None,
                 message)
    src_lines = source.split("\n")
    src = src_lines[got_line - 1] if 0 < got_line <= len(src_lines) else ""
    if src.strip() == "":
        return  # an error at the end of the file has no text to quote
    quoted = lines[i + 1] if i + 1 < len(lines) else ""
    caret = lines[i + 2] if i + 2 < len(lines) else ""
    offset = quoted.find(src)
    ck.check(name + ": source line quoted", offset >= 0, "%r" % quoted)
    if offset >= 0:
        where = caret.find("^")
        ck.check(name + ": caret under the column", where - offset == got_col - 1,
                 "%r / %r" % (quoted, caret))


def no_outputs(path):
    """True if nothing was written at path: no program or file, no file at
    all in an output directory (not even a temporary one), and no temporary
    file next to it (path.tmp.<pid>)."""
    parent = os.path.dirname(path) or "."
    base = os.path.basename(path)
    if os.path.isdir(parent) and any(f.startswith(base + ".tmp")
                                     for f in os.listdir(parent)):
        return False
    if not os.path.exists(path):
        return True
    if os.path.isdir(path):
        return not os.listdir(path)
    return False


def model_errors(ck, work):
    for n, (name, source, line, col, patterns) in enumerate(MODEL_ERRORS):
        filename = "bad%d.model" % n
        path = work.path("models", filename)
        with open(path, "w") as f:
            f.write(source)
        out = work.path("models", "bad%d" % n)
        res = mc_e2e.run(mc_e2e.compile_args(path, out), check=False)
        check_located(ck, name, res, filename, source, line, col, patterns)
        ck.check(name + ": no program written", no_outputs(out))


def weight_errors(ck, work, torch):
    model = mc_e2e.model_path("mlp.model")
    good = {
        "fc1.weight": torch.randn(64, 16), "fc1.bias": torch.randn(64),
        "fc2.weight": torch.randn(8, 64), "fc2.bias": torch.randn(8),
    }
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    late = mc_e2e.compile_model(model, work.path("weights", "mlp_late"))
    cases = [
        ("transposed fc1.weight", dict(good, **{"fc1.weight": good["fc1.weight"].T.contiguous()}),
         [r"fc1\.weight", r"64,\s*16", r"16,\s*64"]),
        ("missing fc2.bias", {k: v for k, v in good.items() if k != "fc2.bias"},
         [r"fc2\.bias"]),
        ("integer fc1.bias", dict(good, **{"fc1.bias": torch.arange(64, dtype=torch.int32)}),
         [r"fc1\.bias"]),
        ("ambiguous suffix fc1.weight",
         dict({k: v for k, v in good.items() if k != "fc1.weight"},
              **{"a.fc1.weight": good["fc1.weight"], "b.fc1.weight": good["fc1.weight"]}),
         [r"fc1\.weight"]),
    ]
    for n, (name, tensors, patterns) in enumerate(cases):
        weights = work.path("weights", "bad%d.safetensors" % n)
        mc_e2e.write_safetensors(weights, tensors)
        out = work.path("weights", "prog%d" % n)
        res = mc_e2e.run(mc_e2e.compile_args(model, out, weights=weights), check=False)
        if ck.command_failed_cleanly("compile with %s: fails cleanly" % name, res):
            for p in patterns:
                ck.check("compile with %s: message matches /%s/" % (name, p),
                         re.search(p, res.stderr) is not None, res.stderr.strip()[:200])
        ck.check("compile with %s: no program written" % name, no_outputs(out))

        outdir = work.path("weights", "out%d" % n)
        res, _ = mc_e2e.run_program(late, {"x": x}, outdir, work, weights=weights, check=False)
        if ck.command_failed_cleanly("load of %s: fails cleanly" % name, res):
            for p in patterns:
                ck.check("load of %s: message matches /%s/" % (name, p),
                         re.search(p, res.stderr) is not None, res.stderr.strip()[:200])
        ck.check("load of %s: no output written" % name, no_outputs(outdir))

    good_path = work.path("weights", "good.safetensors")
    mc_e2e.write_safetensors(good_path, good)

    # tensors the model does not read (a checkpoint's buffers and heads):
    # the program is built, with one warning naming five of them
    extra = dict(good, **{"h.%d.attn.bias" % i: torch.zeros(2) for i in range(7)})
    extra_path = work.path("weights", "extra.safetensors")
    mc_e2e.write_safetensors(extra_path, extra)
    out = work.path("weights", "extra_prog")
    res = mc_e2e.run(mc_e2e.compile_args(model, out, weights=extra_path), check=False)
    warnings = [l for l in res.stderr.splitlines() if "warning" in l]
    ck.check("compile with 7 unread tensors: builds", res.returncode == 0 and
             os.path.exists(out), res.stderr.strip()[:300])
    ck.check("compile with 7 unread tensors: one warning, 5 names and '2 more'",
             len(warnings) == 1 and "7 of its 11 tensors are not read" in warnings[0]
             and warnings[0].count("attn.bias") == 5 and "and 2 more" in warnings[0],
             res.stderr.strip()[:300])
    return late, good_path, x


def input_errors(ck, work, prog, weights, x):
    res, out = mc_e2e.run_program(prog, {"x": x}, work.path("inputs", "ok"), work,
                                  weights=weights, check=False)
    ck.check("valid input runs", res.returncode == 0 and "y" in out, res.stderr.strip()[:200])
    # name, inputs, what the message must name
    cases = [
        ("int32 x", {"x": x.astype(np.int32)}, r"\bx\b"),
        ("rank-1 x", {"x": x[0]}, r"\bx\b"),
        ("x of 15 features", {"x": x[:, :15]}, r"\bx\b"),
        ("missing x", {}, r"\bx\b"),
        ("unknown input z", {"x": x, "z": x}, r"\bz\b"),
        ("x from a file that does not exist", {"x": work.path("inputs", "nowhere.npy")},
         r"nowhere\.npy"),
    ]
    for n, (name, inputs, culprit) in enumerate(cases):
        outdir = work.path("inputs", "out%d" % n)
        res, _ = mc_e2e.run_program(prog, inputs, outdir, work, weights=weights, check=False)
        if ck.command_failed_cleanly(name + ": fails cleanly", res):
            ck.check(name + ": message names it /%s/" % culprit,
                     re.search(culprit, res.stderr) is not None, res.stderr.strip()[:200])
        ck.check(name + ": no output written", no_outputs(outdir))


def safetensors_errors(ck, work, prog, x):
    """Malformed weight files: the program (--weights) and modelc compile
    --weights both refuse each with a message, and write nothing."""
    model = mc_e2e.model_path("mlp.model")

    def refused(name, path):
        outdir = work.path("safetensors", "out_" + name.replace(" ", "_"))
        res, _ = mc_e2e.run_program(prog, {"x": x}, outdir, work, weights=path, check=False)
        ck.command_failed_cleanly("safetensors with %s: fails cleanly" % name, res)
        ck.check("safetensors with %s: no output written" % name, no_outputs(outdir))
        out = work.path("safetensors", "prog_" + name.replace(" ", "_"))
        res = mc_e2e.run(mc_e2e.compile_args(model, out, weights=path), check=False)
        if ck.command_failed_cleanly("compile --weights with %s: fails cleanly" % name, res):
            ck.check("compile --weights with %s: names the file" % name,
                     os.path.basename(path) in res.stderr, res.stderr.strip()[:200])
        ck.check("compile --weights with %s: no program written" % name, no_outputs(out))

    w = np.zeros((64, 16), np.float32)
    f32 = lambda shape, a, b: {"dtype": "F32", "shape": shape, "data_offsets": [a, b]}  # noqa: E731
    ok = {"fc1.weight": f32([64, 16], 0, 4096), "fc1.bias": f32([64], 4096, 4352),
          "fc2.weight": f32([8, 64], 4352, 6400), "fc2.bias": f32([8], 6400, 6432)}
    data = bytes(6432)
    cases = [
        ("data offsets past the end", dict(ok, **{"fc2.bias": f32([8], 6400, 6464)}), data),
        ("overlapping tensors", dict(ok, **{"fc1.bias": f32([64], 3840, 4096)}), data),
        ("offsets that disagree with the shape", dict(ok, **{"fc2.bias": f32([9], 6400, 6432)}),
         data),
        ("unknown dtype", dict(ok, **{"fc2.bias": {"dtype": "Q7", "shape": [8],
                                                   "data_offsets": [6400, 6432]}}), data),
        ("a shape whose size overflows",
         dict(ok, **{"fc2.bias": f32([2 ** 32, 2 ** 32, 2 ** 32], 6400, 6432)}), data),
        ("truncated data", ok, data[:100]),
    ]
    del w
    for n, (name, header, blob) in enumerate(cases):
        path = work.path("safetensors", "bad%d.safetensors" % n)
        mc_e2e.write_safetensors_raw(path, header, blob)
        refused(name, path)

    good = work.path("safetensors", "good.safetensors")
    mc_e2e.write_safetensors_raw(good, ok, data)
    with open(good, "rb") as f:
        whole = f.read()
    header_len = 8 + int.from_bytes(whole[:8], "little")
    raws = [("header length beyond the file", b"\xff" * 8 + b"{}"),
            ("header that is not JSON", b"\x08\x00\x00\x00\x00\x00\x00\x00{{{{{{{{"),
            ("empty file", b"")]
    # cut inside the length, inside the header, one byte short
    for cut in (5, 8 + (header_len - 8) // 2, len(whole) - 1):
        raws.append(("the file cut at byte %d" % cut, whole[:cut]))
    for name, raw in raws:
        path = work.path("safetensors", name.replace(" ", "_") + ".safetensors")
        with open(path, "wb") as f:
            f.write(raw)
        refused(name, path)


def npy_header(descr, shape, fortran=False, version=1):
    """A .npy header as numpy writes it (padded to 64 bytes)."""
    text = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, "True" if fortran else "False", shape)
    pre = 10 if version == 1 else 12
    total = (pre + len(text) + 1 + 63) // 64 * 64
    text = (text + " " * (total - pre - len(text) - 1) + "\n").encode()
    size = len(text).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size + text


def npy_input_errors(ck, work):
    """A malformed second input: the program refuses it, names the file,
    exits non-zero and writes nothing (no output, no temporary file)."""
    model = work.path("npy", "two.model")
    with open(model, "w") as f:
        f.write("input a: f32[B, 4]\ninput b: f32[B, 4]\n"
                "output y = a + b\noutput z = a * b\n")
    prog = mc_e2e.compile_model(model, work.path("npy", "two"))
    a = np.ones((2, 4), np.float32)
    res, out = mc_e2e.run_program(prog, {"a": a, "b": a}, work.path("npy", "ok"), work,
                                  check=False)
    ck.check("two inputs run", res.returncode == 0 and sorted(out) == ["y", "z"],
             res.stderr.strip()[:200])
    data = a.tobytes()
    good = npy_header("<f4", "(2, 4)") + data
    cases = [
        ("big-endian", npy_header(">f4", "(2, 4)") + data),
        ("Fortran order", npy_header("<f4", "(2, 4)", fortran=True) + data),
        ("unknown dtype", npy_header("<c8", "(2, 4)") + data),
        ("a shape whose size overflows",
         npy_header("<f4", "(4294967296, 4294967296, 4294967296)") + data),
        ("a shape larger than the data", npy_header("<f4", "(3, 4)") + data),
        ("data after the array", npy_header("<f4", "(1, 4)") + data),
        ("header length past the end", good[:8] + b"\xff\x7f" + good[10:40]),
        ("a header that is not a dict", npy_header("<f4", "(2, 4)")[:10] + b"[" * 54),
        ("not an npy file", b"PK\x03\x04" + data),
        ("an empty file", b""),
    ]
    for cut in (9, 40, len(good) - 1):
        cases.append(("the file cut at byte %d" % cut, good[:cut]))
    for n, (name, raw) in enumerate(cases):
        path = work.path("npy", "bad%d.npy" % n)
        with open(path, "wb") as f:
            f.write(raw)
        outdir = work.path("npy", "out%d" % n)
        res, _ = mc_e2e.run_program(prog, {"a": a, "b": path}, outdir, work, check=False)
        if ck.command_failed_cleanly("input b %s: fails cleanly" % name, res):
            ck.check("input b %s: message names the file" % name,
                     ("bad%d.npy" % n) in res.stderr, res.stderr.strip()[:200])
        ck.check("input b %s: nothing written" % name, no_outputs(outdir))


def partial_outputs(ck, work):
    """modelc writes its outputs whole or not at all: --emit c's files all or
    none, a program only when the C compiler succeeded, no temporary files."""
    model = mc_e2e.model_path("mlp.model")
    outdir = work.path("partial", "c")
    os.makedirs(os.path.join(outdir, "mc_runtime.h"))  # a directory in a file's place
    res = mc_e2e.run(mc_e2e.compile_args(model, outdir, emit="c"), check=False)
    if ck.command_failed_cleanly("--emit c into a directory it cannot fill: fails", res):
        ck.check("--emit c: the message names the file", "mc_runtime.h" in res.stderr,
                 res.stderr.strip()[:200])
    ck.check("--emit c: no file written", os.listdir(outdir) == ["mc_runtime.h"],
             str(sorted(os.listdir(outdir))))
    for emit in ("exe", "ir"):
        out = work.path("partial", "into_a_dir_" + emit)
        os.makedirs(out)
        res = mc_e2e.run(mc_e2e.compile_args(model, out, emit=emit), check=False)
        ck.command_failed_cleanly("--emit %s onto a directory: fails" % emit, res)
        ck.check("--emit %s onto a directory: nothing written" % emit,
                 not os.listdir(out) and no_outputs(out + "x"), str(os.listdir(out)))
    out = work.path("partial", "cc_fails")
    res = mc_e2e.run(mc_e2e.compile_args(model, out), check=False,
                     env={"CC": "false", "MODELC_CACHE_DIR": "off"})
    ck.command_failed_cleanly("a C compiler that fails: modelc fails", res)
    ck.check("a C compiler that fails: no program, no temporary file", no_outputs(out))


def range_errors(ck, work, torch):
    """Token ids are range-checked by the gather; T beyond n_ctx by the slice."""
    cfg = {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_vocab": 50, "n_ctx": 8}
    weights = work.path("range", "gpt2.safetensors")
    e, v, c = cfg["n_embd"], cfg["n_vocab"], cfg["n_ctx"]
    tensors = {"wte.weight": torch.randn(v, e), "wpe.weight": torch.randn(c, e),
               "ln_f.weight": torch.ones(e), "ln_f.bias": torch.zeros(e)}
    for name, shape in (("ln_1.weight", [e]), ("ln_1.bias", [e]), ("ln_2.weight", [e]),
                        ("ln_2.bias", [e]), ("attn.c_attn.weight", [e, 3 * e]),
                        ("attn.c_attn.bias", [3 * e]), ("attn.c_proj.weight", [e, e]),
                        ("attn.c_proj.bias", [e]), ("mlp.c_fc.weight", [e, 4 * e]),
                        ("mlp.c_fc.bias", [4 * e]), ("mlp.c_proj.weight", [4 * e, e]),
                        ("mlp.c_proj.bias", [e])):
        tensors["h.0." + name] = torch.randn(*shape) * 0.1
    mc_e2e.write_safetensors(weights, tensors)
    prog = mc_e2e.compile_model(mc_e2e.model_path("gpt2.model"), work.path("range", "gpt2"),
                                defines=cfg, weights=weights)
    res, out = mc_e2e.run_program(prog, {"tokens": np.array([1, 2, 49], np.int32)},
                                  work.path("range", "ok"), work, weights=weights, check=False)
    ck.check("gpt2 with valid tokens runs", res.returncode == 0 and "logits" in out,
             res.stderr.strip()[:200])
    cases = [
        ("token id = n_vocab", np.array([1, 50, 2], np.int32)),
        ("negative token id", np.array([-1], np.int64)),
        ("T > n_ctx", np.arange(9, dtype=np.int32)),
        ("token id beyond int32", np.array([2 ** 40], np.int64)),
    ]
    for n, (name, tokens) in enumerate(cases):
        outdir = work.path("range", "out%d" % n)
        res, _ = mc_e2e.run_program(prog, {"tokens": tokens}, outdir, work, weights=weights,
                                    check=False)
        ck.command_failed_cleanly(name + ": fails cleanly", res)
        ck.check(name + ": no output written", no_outputs(outdir))


def body(ck, work):
    torch = mc_e2e.import_torch()
    model_errors(ck, work)
    prog, weights, x = weight_errors(ck, work, torch)
    input_errors(ck, work, prog, weights, x)
    safetensors_errors(ck, work, prog, x)
    npy_input_errors(ck, work)
    partial_outputs(ck, work)
    range_errors(ck, work, torch)


if __name__ == "__main__":
    mc_e2e.main("test_errors", body)
