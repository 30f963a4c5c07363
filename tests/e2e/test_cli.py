"""The command line: inspect, --config with -D precedence, the IR text round
trip through `modelc opt`, and the emitted C compiled warning-free by gcc and
clang (-Wall -Wextra -Werror). Output is deterministic: emitting twice gives
the same bytes. The cache of compiled runtime objects (MODELC_CACHE_DIR).
"""
import collections
import filecmp
import os
import re
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

GPT2_TINY = {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_vocab": 100, "n_ctx": 32}

# A build configuration: the keys of the command-line flags.
CONFIG = """\
defines:
  n_in: 5
  n_hidden: 9
  n_out: 3
weights: {weights}
"""
CONFIG_UNKNOWN_KEY = "defines:\n  n_in: 5\nbogus: 1\n"          # line 3, column 1
CONFIG_WRONG_TYPE = "defines:\n  n_in: hello\n"                 # line 2


def as_table(node):
    """inspect's sections as {name: entry}: accepts a mapping name -> entry or
    a list of entries that carry a `name`."""
    if isinstance(node, dict):
        return node
    if isinstance(node, list):
        return {e["name"]: e for e in node}
    raise ValueError("expected a mapping or a list, got %r" % (node,))


def field(entry, key):
    """entry[key] if entry is a mapping, else entry itself (name -> value)."""
    if isinstance(entry, dict):
        return entry.get(key)
    return entry


def as_shape(node):
    """A shape as a list of strings: [100, "T"] and "[100, T]" both give ['100', 'T']."""
    if isinstance(node, dict):
        node = node.get("shape")
    if isinstance(node, str):
        node = [d for d in re.split(r"[\s,\[\]]+", node) if d]
    return [str(d).replace(" ", "") for d in node]


def inspect(ck, work, yaml):
    # GPT-2 at a tiny -D configuration
    argv = [mc_e2e.modelc(), "inspect", mc_e2e.model_path("gpt2.model")]
    for kv in GPT2_TINY.items():
        argv += ["-D", "%s=%d" % kv]
    res = mc_e2e.run(argv)
    doc = yaml.safe_load(res.stdout)
    print("inspect gpt2.model (tiny):\n" + "\n".join(res.stdout.splitlines()[:12]) + "\n...")
    ck.check("inspect: a YAML mapping with constants, inputs, outputs, weights",
             isinstance(doc, dict) and all(k in doc for k in
                                           ("constants", "inputs", "outputs", "weights")),
             "keys: %s" % (sorted(doc) if isinstance(doc, dict) else type(doc).__name__))
    constants = as_table(doc["constants"])
    for name, value in GPT2_TINY.items():
        ck.check("inspect: constant %s = %d (-D)" % (name, value),
                 field(constants.get(name), "value") == value, "%r" % constants.get(name))
    eps = field(constants.get("eps"), "value")
    ck.check("inspect: constant eps = 1e-5", isinstance(eps, float) and abs(eps - 1e-5) < 1e-12,
             "%r" % eps)
    tokens = as_table(doc["inputs"]).get("tokens")
    ck.check("inspect: input tokens: i32[T]",
             field(tokens, "dtype") == "i32" and as_shape(tokens) == ["T"], "%r" % tokens)
    logits = as_table(doc["outputs"]).get("logits")
    ck.check("inspect: output logits: f32[T, 100]",
             field(logits, "dtype") == "f32" and as_shape(logits) == ["T", "100"], "%r" % logits)
    weights = as_table(doc["weights"])
    ck.check("inspect: 28 weights (2 + 12 per layer + 2)", len(weights) == 28,
             "%d weights%s" % (len(weights), "" if len(weights) == 28 else ": %s" % sorted(weights)))
    for name, shape in (("wte.weight", [100, 64]), ("wpe.weight", [32, 64]),
                        ("h.1.attn.c_attn.weight", [64, 192]), ("h.0.mlp.c_fc.weight", [64, 256]),
                        ("h.0.mlp.c_proj.weight", [256, 64]), ("ln_f.bias", [64])):
        got = weights.get(name)
        ck.check("inspect: weight %s %s" % (name, shape),
                 got is not None and as_shape(got) == [str(d) for d in shape], "%r" % got)

    # GPT-2 small by default: no -D
    res = mc_e2e.run([mc_e2e.modelc(), "inspect", mc_e2e.model_path("gpt2.model")])
    doc = yaml.safe_load(res.stdout)
    weights = as_table(doc["weights"])
    ck.check("inspect defaults: GPT-2 small, 148 weights, wte [50257, 768]",
             len(weights) == 148 and as_shape(weights.get("wte.weight", [])) == ["50257", "768"],
             "%d weights, wte %r" % (len(weights), weights.get("wte.weight")))

    # The encoder: symbolic B and T, the optional bool mask
    res = mc_e2e.run([mc_e2e.modelc(), "inspect", mc_e2e.model_path("transformer_encoder.model"),
                      "-D", "num_layers=3"])
    doc = yaml.safe_load(res.stdout)
    inputs = as_table(doc["inputs"])
    ck.check("inspect encoder: x: f32[B, T, 64]",
             field(inputs.get("x"), "dtype") == "f32"
             and as_shape(inputs.get("x")) == ["B", "T", "64"], "%r" % inputs.get("x"))
    ck.check("inspect encoder: pad: bool[B, T]",
             field(inputs.get("pad"), "dtype") == "bool"
             and as_shape(inputs.get("pad")) == ["B", "T"], "%r" % inputs.get("pad"))
    weights = as_table(doc["weights"])
    ck.check("inspect encoder: 36 weights for num_layers=3, in_proj [192, 64]",
             len(weights) == 36 and as_shape(weights.get("layers.2.self_attn.in_proj_weight", []))
             == ["192", "64"], "%d weights" % len(weights))


def config(ck, work, torch):
    """--config gives constants and weights; -D on the command line wins."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(collections.OrderedDict([
        ("fc1", torch.nn.Linear(5, 7)), ("act", torch.nn.GELU()), ("fc2", torch.nn.Linear(7, 3))]))
    weights = work.path("config", "mlp.safetensors")
    mc_e2e.write_safetensors(weights, net.state_dict())
    cfg = work.path("config", "build.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(weights=weights))
    prog = work.path("config", "mlp")
    # The file says n_hidden: 9; the weights are for 7, which -D gives.
    mc_e2e.run(mc_e2e.compile_args(mc_e2e.model_path("mlp.model"), prog, config=cfg,
                                   defines={"n_hidden": 7}))
    x = torch.randn(4, 5)
    with torch.no_grad():
        want = mc_e2e.to_numpy(net(x))
    _, out = mc_e2e.run_program(prog, {"x": mc_e2e.to_numpy(x)}, work.path("config", "out"),
                                work, weights=weights)
    if ck.check("--config + -D n_hidden=7: program runs", "y" in out):
        ck.close("--config + -D n_hidden=7: y", out["y"], want, 1e-5, 1e-5)

    for name, text, line, col in (("unknown key", CONFIG_UNKNOWN_KEY, 3, 1),
                                  ("wrong type", CONFIG_WRONG_TYPE, 2, None)):
        bad = work.path("config", name.replace(" ", "_") + ".yaml")
        with open(bad, "w") as f:
            f.write(text)
        out = work.path("config", "bad_" + name.replace(" ", "_"))
        res = mc_e2e.run(mc_e2e.compile_args(mc_e2e.model_path("mlp.model"), out, config=bad),
                         check=False)
        if ck.command_failed_cleanly("--config with %s: fails cleanly" % name, res):
            m = re.search(r"%s:(\d+):(\d+): error: (.*)" % re.escape(os.path.basename(bad)),
                          res.stderr)
            ok = m is not None and int(m.group(1)) == line and (col is None or
                                                                int(m.group(2)) == col)
            ck.check("--config with %s: located at line %d%s" % (
                name, line, "" if col is None else ", column %d" % col), ok,
                res.stderr.strip().splitlines()[0])


def ir_round_trip(ck, work):
    """--emit ir, read back by `modelc opt`, printed again: the same text."""
    for model, defines in (("mlp.model", None), ("gpt2.model", GPT2_TINY),
                           ("transformer_encoder.model", None), ("activations.model", None)):
        base = model.split(".")[0]
        ir = work.path("ir", base + ".ir")
        mc_e2e.run(mc_e2e.compile_args(mc_e2e.model_path(model), ir, defines=defines, emit="ir"))
        text = open(ir).read()
        stdout = mc_e2e.run(mc_e2e.compile_args(mc_e2e.model_path(model), "-", defines=defines,
                                                emit="ir")).stdout
        ck.check("%s: --emit ir to a file and to stdout agree" % base, stdout == text,
                 "%d lines of IR" % text.count("\n"))
        again = mc_e2e.run([mc_e2e.modelc(), "opt", ir, "--passes=verify"]).stdout
        ck.check("%s: opt --passes=verify prints the IR it read" % base, again == text,
                 "" if again == text else first_difference(text, again))
        opt = mc_e2e.run([mc_e2e.modelc(), "opt", ir, "--passes=fold_constants,cse,dce",
                          "--print-after=cse"])
        ck.check("%s: opt --passes=fold_constants,cse,dce --print-after=cse" % base,
                 opt.stdout.strip() != "", "%d lines out" % opt.stdout.count("\n"))
        optimized = work.path("ir", base + ".opt.ir")
        with open(optimized, "w") as f:
            f.write(mc_e2e.run([mc_e2e.modelc(), "opt", ir,
                                "--passes=fold_constants,cse,dce"]).stdout)
        back = mc_e2e.run([mc_e2e.modelc(), "opt", optimized, "--passes=verify"]).stdout
        ck.check("%s: optimized IR reads back unchanged" % base, back == open(optimized).read())


def first_difference(a, b):
    for n, (x, y) in enumerate(zip(a.splitlines(), b.splitlines())):
        if x != y:
            return "line %d: %r vs %r" % (n + 1, x, y)
    return "lengths %d vs %d lines" % (a.count("\n"), b.count("\n"))


def emitted_c(ck, work, torch):
    """--emit c: deterministic, warning-free under gcc and clang; linked by hand
    (when the runtime's main is among the files) it computes what --emit exe does.
    The runtime's files are compiled with the first model only: the others'
    must be the same bytes."""
    runtime = None
    for model, defines in (("mlp.model", None), ("activations.model", None),
                           ("transformer_encoder.model", None), ("gpt2.model", GPT2_TINY)):
        base = model.split(".")[0]
        out = work.path("c", base, "a")
        out2 = work.path("c", base, "b")
        for d in (out, out2):
            mc_e2e.run(mc_e2e.compile_args(mc_e2e.model_path(model), d, defines=defines,
                                           emit="c", opt=2))
        files = sorted(os.listdir(out))
        expected = {base + ".h", base + ".c", "mc_runtime.h", "mc_runtime.c"}
        ck.check("%s: --emit c writes %s" % (base, ", ".join(sorted(expected))),
                 expected <= set(files), "got %s" % ", ".join(files))
        same = filecmp.cmpfiles(out, out2, files, shallow=False)[0]
        ck.check("%s: emitting twice gives the same bytes" % base, sorted(same) == files)
        sources = [f for f in files if f.endswith(".c")]
        if runtime is None:
            runtime = (out, [f for f in files if f.startswith("mc_")])
        else:
            same = filecmp.cmpfiles(runtime[0], out, runtime[1], shallow=False)[0]
            ck.check("%s: the runtime's files are the first model's" % base,
                     sorted(same) == sorted(runtime[1]) and
                     set(runtime[1]) == {f for f in files if f.startswith("mc_")})
            sources = [f for f in sources if not f.startswith("mc_")]
        for cc in ("gcc", "clang"):
            if not shutil.which(cc):
                ck.check("%s is installed" % cc, False)
                continue
            objdir = work.path("c", base, cc)
            os.makedirs(objdir, exist_ok=True)
            ok = True
            messages = ""
            for src in sources:
                res = mc_e2e.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-c",
                                  os.path.join(out, src), "-o",
                                  os.path.join(objdir, src[:-2] + ".o")], check=False)
                ok = ok and res.returncode == 0
                messages += res.stderr
            ck.check("%s: %s -Wall -Wextra -Werror compiles %s" % (base, cc, " ".join(sources)),
                     ok, messages.strip()[:400])
        if base == "mlp" and "mc_main.c" in files:
            link_and_run(ck, work, out, torch)


def every_model_warning_free(ck, work):
    """Every shipped model (GPT-2 generation also with 16-bit weights): the
    model's emitted C passes gcc and clang -Wall -Wextra -Wpedantic -Wshadow
    -Werror -fsyntax-only."""
    models = sorted(f for f in os.listdir(os.path.dirname(mc_e2e.model_path("mlp.model")))
                    if f.endswith(".model"))
    builds = [(m, []) for m in models] + [("gpt2_generate.model", ["--weight-dtype", "f16"])]
    for model, extra in builds:
        base = model.split(".")[0]
        out = work.path("all", base + "".join(extra[1:]))
        mc_e2e.run(mc_e2e.compile_args(mc_e2e.model_path(model), out, emit="c", opt=2,
                                       extra=extra))
        for cc in ("gcc", "clang"):
            res = mc_e2e.run([cc, "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow",
                              "-Werror", "-fsyntax-only", os.path.join(out, base + ".c")],
                             check=False)
            ck.check("%s%s: %s warning-free" % (base, " " + " ".join(extra) if extra else "", cc),
                     res.returncode == 0, res.stderr.strip()[:400])


def link_and_run(ck, work, csrc, torch):
    prog = work.path("c", "mlp", "by-hand")
    objs = [os.path.join(work.path("c", "mlp", "gcc"), f[:-2] + ".o")
            for f in os.listdir(csrc) if f.endswith(".c")]
    res = mc_e2e.run(["gcc"] + objs + ["-o", prog, "-lm", "-lpthread"], check=False)
    if not ck.check("mlp: emitted C links into a program", res.returncode == 0, res.stderr[:300]):
        return
    torch.manual_seed(5)
    net = torch.nn.Sequential(collections.OrderedDict([
        ("fc1", torch.nn.Linear(16, 64)), ("act", torch.nn.GELU()), ("fc2", torch.nn.Linear(64, 8))]))
    weights = work.path("c", "mlp", "mlp.safetensors")
    mc_e2e.write_safetensors(weights, net.state_dict())
    x = torch.randn(3, 16)
    with torch.no_grad():
        want = mc_e2e.to_numpy(net(x))
    _, out = mc_e2e.run_program(prog, {"x": mc_e2e.to_numpy(x)}, work.path("c", "mlp", "out"),
                                work, weights=weights)
    if ck.check("mlp: hand-built program writes y", "y" in out):
        ck.close("mlp: hand-built program: y", out["y"], want, 1e-5, 1e-5)
    st = work.path("c", "mlp", "out.safetensors")
    res = mc_e2e.run([prog, "--weights", weights,
                      "x=" + mc_e2e.save_npy(work.path("c", "mlp", "x.npy"), mc_e2e.to_numpy(x)),
                      "-o", st], check=False)
    if ck.check("mlp: -o OUT.safetensors runs", res.returncode == 0, res.stderr[:300]):
        got, meta = mc_e2e.read_safetensors(st)
        ck.check("mlp: OUT.safetensors holds y, with torch's metadata",
                 list(got) == ["y"] and meta == {"format": "pt"}, "%s %s" % (list(got), meta))
        if "y" in got and "y" in out:
            ck.check("mlp: OUT.safetensors's y = y.npy, bit for bit",
                     got["y"].tobytes() == out["y"].tobytes())


def runtime_cache(ck, work):
    """The cache of compiled runtime objects (MODELC_CACHE_DIR): two builds
    with the same flags share one entry and give the same program; other
    MC_CFLAGS make another entry; an entry missing an object, or a leftover
    staging directory, is not used and the build succeeds; `off` writes no
    cache anywhere; an unwritable cache still builds. At -O0 and without
    sanitizers, whatever the build: each miss compiles the runtime (1-2 s
    so, 12 s and more under ASan) and the cache's logic is the same for any
    flags."""
    model = mc_e2e.model_path("mlp.model")
    rng = np.random.default_rng(11)
    tensors = {"fc1.weight": (64, 16), "fc1.bias": (64,), "fc2.weight": (8, 64),
               "fc2.bias": (8,)}
    weights = work.path("cache", "mlp.safetensors")
    mc_e2e.write_safetensors(weights, {k: rng.standard_normal(v).astype(np.float32)
                                       for k, v in tensors.items()})
    x = rng.standard_normal((3, 16)).astype(np.float32)
    cache = work.path("cache", "dir")

    def build(name, cache_dir=cache, cflags="", env_extra=None):
        env = dict(os.environ)
        env["MC_CFLAGS"] = cflags
        if cache_dir is None:
            env.pop("MODELC_CACHE_DIR", None)
        else:
            env["MODELC_CACHE_DIR"] = cache_dir
        env.update(env_extra or {})
        prog = work.path("cache", "programs", name)
        argv = mc_e2e.compile_args(model, prog, opt=0)
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, env=env, timeout=mc_e2e.TIMEOUT)
        ok = ck.check("runtime cache: %s: builds" % name,
                      proc.returncode == 0 and os.path.isfile(prog),
                      "exit %d %s" % (proc.returncode, proc.stderr.strip()[:400]))
        return prog if ok else None

    def output(prog):
        if prog is None:
            return None
        _, out = mc_e2e.run_program(prog, {"x": x}, work.path("cache", "out",
                                                              os.path.basename(prog)),
                                    work, weights=weights)
        return out.get("y")

    def entries(d):
        return sorted(e for e in os.listdir(d) if e.startswith("runtime-")) \
            if os.path.isdir(d) else []

    first = build("first")
    after_first = entries(cache)
    second = build("second")
    # a build keeps two entries: the runtime's files compiled -O2, and its
    # once-per-run files compiled -Os (codegen/c_build.c)
    per_build = 2
    ck.check("runtime cache: two builds with the same flags make the same entries",
             len(after_first) == per_build and entries(cache) == after_first,
             "%s, then %s" % (after_first, entries(cache)))
    want = output(first)
    ck.check("runtime cache: the programs are the same bytes",
             first and second and filecmp.cmp(first, second, shallow=False))
    ck.bits_equal("runtime cache: the second program's y", output(second), want)

    build("other-flags", cflags="-DMC_CACHE_TEST=1")
    ck.check("runtime cache: other MC_CFLAGS make other entries",
             len(entries(cache)) == 2 * per_build and
             set(after_first) < set(entries(cache)),
             "%s" % entries(cache))

    # an entry missing an object, and a complete-looking leftover of a killed
    # build under a staging name
    entry = os.path.join(cache, after_first[0])
    shutil.copytree(entry, os.path.join(cache, "tmp-leftover"))
    removed = sorted(f for f in os.listdir(entry) if f.endswith(".o"))[0]
    os.remove(os.path.join(entry, removed))
    broken = build("broken-entry")
    ck.bits_equal("runtime cache: with a broken entry, y", output(broken), want)
    ck.check("runtime cache: the broken entry is whole again",
             os.path.isfile(os.path.join(entry, removed)) and
             len(entries(cache)) == 2 * per_build,
             "%s" % sorted(os.listdir(entry)))

    # off: nothing in $MODELC_CACHE_DIR's stead ($XDG_CACHE_HOME, $HOME)
    home, xdg = work.path("cache", "home"), work.path("cache", "xdg")
    os.makedirs(home)
    os.makedirs(xdg)
    off = build("off", cache_dir="off", env_extra={"HOME": home, "XDG_CACHE_HOME": xdg})
    ck.bits_equal("runtime cache: off: y", output(off), want)
    ck.check("runtime cache: off writes no cache", os.listdir(home) == [] and
             os.listdir(xdg) == [], "%s %s" % (os.listdir(home), os.listdir(xdg)))

    # unset: $XDG_CACHE_HOME/modelc
    default = build("default", cache_dir=None, env_extra={"HOME": home, "XDG_CACHE_HOME": xdg})
    ck.check("runtime cache: by default in $XDG_CACHE_HOME/modelc",
             default and len(entries(os.path.join(xdg, "modelc"))) == per_build and
             os.listdir(home) == [], "%s" % os.listdir(xdg))

    # a cache that cannot be created (under a regular file: even for root)
    blocker = work.path("cache", "a-file")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    unwritable = build("unwritable", cache_dir=os.path.join(blocker, "cache"))
    ck.bits_equal("runtime cache: unwritable: y", output(unwritable), want)
    if os.geteuid() != 0:  # permissions do not stop root
        readonly = work.path("cache", "read-only")
        os.makedirs(readonly)
        os.chmod(readonly, 0o555)
        build("read-only", cache_dir=readonly)
        ck.check("runtime cache: a read-only directory stays empty",
                 os.listdir(readonly) == [])
        os.chmod(readonly, 0o755)


def cpu_targets(ck, work):
    """--cpu: the default (this machine's -march) and generic programs give
    the same bits for every activation, the float-rounding one included
    (vector width changes no IEEE operation: no contraction, no fast-math);
    a --cpu that is no CPU name is refused before any compile."""
    model = mc_e2e.model_path("activations.model")
    x = np.concatenate([np.linspace(-30, 30, 20001, dtype=np.float32),
                        np.array([0.0, -0.0, 1e-40, -1e-40, np.inf, -np.inf, np.nan],
                                 np.float32)])
    outs = {}
    for cpu in ("native", "generic"):
        prog = work.path("cpu", "prog_" + cpu)
        mc_e2e.compile_model(model, prog, extra=["--cpu", cpu])
        _, outs[cpu] = mc_e2e.run_program(prog, {"x": x}, work.path("cpu", "out_" + cpu), work)
    ck.check("--cpu native and generic: the same outputs",
             sorted(outs["native"]) == sorted(outs["generic"]) and len(outs["native"]) > 10)
    for name in sorted(outs["native"]):
        ck.bits_equal("--cpu native vs generic: %s" % name, outs["native"][name],
                      outs["generic"].get(name))
    bad = subprocess.run(mc_e2e.compile_args(model, work.path("cpu", "bad"),
                                             extra=["--cpu", "x;rm"]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ck.check("--cpu 'x;rm' is refused",
             bad.returncode != 0 and "--cpu must be native, generic or a CPU name" in bad.stderr,
             bad.stderr[-300:])


def prepared_weights(ck, work):
    """--prepare-weights: the weights as the program keeps them, computed at
    compile time (a frozen spectral normalization's W / sigma, kept packed
    for the GEMM; an MLP's matrices in f16), opened without computing
    anything: the same bits as from the original weights, on both backends;
    a file prepared for another build is refused with a clear message."""
    rng = np.random.default_rng(3)
    sn = work.path("prep", "sn.safetensors")
    mc_e2e.write_safetensors(sn, {
        "sn_linear.weight_orig": rng.standard_normal((16, 8)).astype(np.float32),
        "sn_linear.weight_u": rng.standard_normal(16).astype(np.float32),
        "sn_linear.bias": rng.standard_normal(16).astype(np.float32)})
    mlp = work.path("prep", "mlp.safetensors")
    mc_e2e.write_safetensors(mlp, {
        "fc1.weight": rng.standard_normal((64, 16)).astype(np.float32),
        "fc1.bias": rng.standard_normal(64).astype(np.float32),
        "fc2.weight": rng.standard_normal((8, 64)).astype(np.float32),
        "fc2.bias": rng.standard_normal(8).astype(np.float32)})
    cases = [("sn", "losses.model", sn, ["--entry", "spectral_linear"], "prepared.0",
              {"x": rng.standard_normal((5, 8)).astype(np.float32)}),
             ("mlp-f16", "mlp.model", mlp, ["--weight-dtype", "f16"], "fc1.weight",
              {"x": rng.standard_normal((3, 16)).astype(np.float32)})]
    for name, model, weights, extra, tensor, x in cases:
        for backend in ("c", "llvm"):
            tag = "%s-%s" % (name, backend)
            prepared = work.path("prep", tag + ".safetensors")
            prog = mc_e2e.compile_model(mc_e2e.model_path(model), work.path("prep", tag),
                                        weights=weights,
                                        extra=extra + ["--backend", backend,
                                                       "--prepare-weights", prepared])
            _, plain = mc_e2e.run_program(prog, x, work.path("prep", tag + "-out", "plain"),
                                          work, weights=weights)
            _, mapped = mc_e2e.run_program(prog, x, work.path("prep", tag + "-out", "mapped"),
                                           work)
            got, meta = mc_e2e.read_safetensors(prepared)
            ck.check("--prepare-weights %s: the file holds %s as kept (%s), marked as "
                     "prepared" % (tag, tensor, got[tensor].dtype if tensor in got else "-"),
                     tensor in got and meta["format"].startswith("modelc:prepared:"),
                     "%s %s" % (sorted(got), meta))
            out = "y" if "y" in plain else sorted(plain)[0]
            ck.bits_equal("--prepare-weights %s: %s from the prepared file (the program's "
                          "default) = from the weights" % (tag, out), mapped.get(out),
                          plain[out])
    # the f16 MLP's file, given to an f32 build of the MLP
    prog = mc_e2e.compile_model(mc_e2e.model_path("mlp.model"), work.path("prep", "mlp-f32"))
    res, _ = mc_e2e.run_program(prog, cases[1][5], work.path("prep", "bad"), work,
                                weights=work.path("prep", "mlp-f16-c.safetensors"), check=False)
    ck.check("a file prepared for another build is refused",
             res.returncode == 1 and "prepared for another build" in res.stderr,
             res.stderr[-300:])
    ck.check("and nothing is written", not os.path.exists(work.path("prep", "bad", "y.npy")))
    res = subprocess.run(mc_e2e.compile_args(mc_e2e.model_path("mlp.model"),
                                             work.path("prep", "none"),
                                             extra=["--prepare-weights", work.path("p.st")]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ck.check("--prepare-weights without --weights is an error",
             res.returncode != 0 and "--prepare-weights needs the weights" in res.stderr,
             res.stderr[-300:])


def body(ck, work):
    torch = mc_e2e.import_torch()
    try:
        import yaml
    except ImportError as e:
        raise RuntimeError("python3-yaml is required: %s" % e)
    inspect(ck, work, yaml)
    config(ck, work, torch)
    ir_round_trip(ck, work)
    emitted_c(ck, work, torch)
    runtime_cache(ck, work)
    cpu_targets(ck, work)
    prepared_weights(ck, work)
    every_model_warning_free(ck, work)


if __name__ == "__main__":
    mc_e2e.main("test_cli", body)
