#!/usr/bin/python3
"""Golden diagnostics: each tests/diagnostics/*.model is a malformed model
whose expected messages are written inline, MLIR style:

    y = x + bias  # expected-error {{unknown name 'bias'}}
    # expected-error@+1:13 {{did you mean 'bias'}}
    # expected-note@-2 {{first declared here}}
    # expected-error@inc/bad.model:3 {{...}}   (a message in another file;
                                              line 0: the file, no line)
    # expected-error@none {{...}}             (a message without location)

`@+N` / `@-N` are relative to the comment's line, `@N` absolute, no `@` the
comment's own line; `:COL` (optional) checks the column too; a count before
the braces (`expected-note@+1 2 {{...}}`) expects that many identical
messages. `{{text}}` must be a substring of the message. A line `# args: ...` adds modelc arguments
(split like a shell would not: on spaces; `{out}` is the output path).

The runner compiles each file with `modelc compile FILE --emit ir -o OUT`
from inside tests/diagnostics, then checks that
  - every expected message was reported, and every reported error, warning
    and note was expected (so no message goes unnoticed);
  - each located message in a file is followed by that file's source line
    and a caret line whose `^` sits under the reported column;
  - the exit status is non-zero exactly when an error is expected, and a
    failed run leaves no output file behind;
  - there is no sanitizer report.
Usage: run_diagnostics.py MODELC [FILE.model ...]   (default: all)
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECT = re.compile(
    r"expected-(error|warning|note)"
    r"(?:@(none|[+-]\d+|\d+|[\w./-]+:\d+))?(?::(\d+))?"
    r"(?:\s+(\d+))?\s*\{\{(.*?)\}\}")
REPORT = re.compile(
    r"^(?:(.+?):(\d+):(\d+)|(.+?)): (error|warning|note): (.*)$")


def parse_expectations(name, text):
    exps, args = [], []
    for i, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*#\s*args:\s*(.*)$", line)
        if m:
            args += m.group(1).split()
        for e in EXPECT.finditer(line):
            sev, where, col, count, msg = e.groups()
            if where is None:
                fname, at = name, i
            elif where == "none":
                fname, at = None, None
            elif where[0] in "+-":
                fname, at = name, i + int(where)
            elif where.isdigit():
                fname, at = name, int(where)
            else:
                fname, _, num = where.rpartition(":")
                at = int(num)
            for _ in range(int(count) if count else 1):
                exps.append({"sev": sev, "file": fname, "line": at,
                             "col": int(col) if col else None, "msg": msg,
                             "src": i, "seen": False})
    return exps, args


def source_lines(path):
    if not os.path.isfile(os.path.join(HERE, path)):
        return None
    try:
        with open(os.path.join(HERE, path), encoding="utf-8",
                  errors="replace") as f:
            return f.read().split("\n")
    except OSError:
        return None


def check_one(modelc, name):
    problems = []
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        text = f.read()
    exps, args = parse_expectations(name, text)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.ir")
        args = [a.replace("{out}", out) for a in args]
        cmd = [modelc, "compile", name, "--emit", "ir", "-o", out] + args
        res = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True,
                             errors="replace", timeout=120)
        left = os.path.exists(out)
    lines = res.stderr.split("\n")
    reports = []
    i = 0
    while i < len(lines):
        m = REPORT.match(lines[i])
        if m:
            f, ln, col, fonly, sev, msg = m.groups()
            if fonly and fonly != "modelc":
                f, ln = fonly, "0"  # a file without a line
            rep = {"sev": sev, "file": f, "line": int(ln) if ln else None,
                   "col": int(col) if col else None, "msg": msg,
                   "text": lines[i]}
            reports.append(rep)
            src = source_lines(f) if f and rep["line"] else None
            if src is not None and rep["col"] and rep["line"] <= len(src):
                want = src[rep["line"] - 1].rstrip("\r")
                got = lines[i + 1] if i + 1 < len(lines) else ""
                caret = lines[i + 2] if i + 2 < len(lines) else ""
                if got != want:
                    problems.append(f"{lines[i]!r}: source line not quoted "
                                    f"(got {got!r})")
                elif caret.find("^") != min(rep["col"] - 1, len(want)):
                    problems.append(f"{lines[i]!r}: caret at column "
                                    f"{caret.find('^') + 1}: {caret!r}")
                i += 3
                continue
        elif "Sanitizer" in lines[i] or "runtime error:" in lines[i]:
            problems.append("sanitizer report: " + lines[i])
        elif lines[i].strip() and "too many errors" not in lines[i]:
            problems.append("unrecognized stderr line: " + lines[i])
        i += 1
    for rep in reports:
        match = None
        for e in exps:
            if (not e["seen"] and e["sev"] == rep["sev"]
                    and e["file"] == rep["file"] and e["line"] == rep["line"]
                    and (e["col"] is None or e["col"] == rep["col"])
                    and e["msg"] in rep["msg"]):
                match = e
                break
        if match:
            match["seen"] = True
        else:
            problems.append("unexpected: " + rep["text"])
    for e in exps:
        if not e["seen"]:
            where = "none" if e["file"] is None else f"{e['file']}:{e['line']}"
            col = f":{e['col']}" if e["col"] else ""
            problems.append(f"line {e['src']}: expected {e['sev']} at "
                            f"{where}{col} {{{{{e['msg']}}}}} not reported")
    want_fail = any(e["sev"] == "error" for e in exps)
    if res.returncode < 0 or res.returncode > 2:
        problems.append(f"exit status {res.returncode}")
    elif want_fail != (res.returncode != 0):
        problems.append(f"exit status {res.returncode} but errors were "
                        f"{'' if want_fail else 'not '}expected")
    if want_fail and left:
        problems.append("a failed run left its output file behind")
    return problems, res.stderr


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    modelc = os.path.abspath(sys.argv[1])
    names = [os.path.basename(n) for n in sys.argv[2:]] or sorted(
        n for n in os.listdir(HERE) if n.endswith(".model"))
    failed = 0
    for name in names:
        problems, stderr = check_one(modelc, name)
        if problems:
            failed += 1
            print(f"FAIL {name}")
            for p in problems:
                print("  " + p)
            print("  --- stderr ---")
            print("  " + stderr.replace("\n", "\n  "))
        else:
            print(f"ok   {name}")
    print(f"{len(names) - failed}/{len(names)} diagnostic tests passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
