#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/.

Seeds are small: the shipped models, the golden IR files split at their
`// -----` separators, and tiny valid and malformed safetensors, npy and BPE
files built here byte by byte (no numpy needed). Rerun after changing it;
the output is deterministic.
"""
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def models():
    mdir = os.path.join(ROOT, "models")
    for name in sorted(os.listdir(mdir)):
        if name.endswith(".model"):
            with open(os.path.join(mdir, name), "rb") as f:
                out("fuzz_model", name, f.read())
    with open(os.path.join(mdir, "lib", "gpt2.model"), "rb") as f:
        out("fuzz_model", "lib_gpt2.model", f.read())
    snippets = {
        "consts.model": "const n = 4\nconst h = n * 2\ninput x: f32[B, n]\n"
                        "y = x + 1.0\noutput y\n",
        "fn_loop.model": "fn f(a) {\n  return a * 2.0\n}\ninput x: f32[3]\n"
                         "y = x\nfor i in 0..4 {\n  y = f(y)\n}\noutput y\n",
        "errors.model": "input x: f32[3\ny = x +\nz = foo(x)\noutput q\n",
        "entries.model": "weight w: f32[4, 4]\nentry a {\n  input x: f32[2, 4]\n"
                         "  output y = x @ w\n}\nentry b {\n  input x: f32[4]\n"
                         "  output y = relu(x)\n}\n",
        "include.model": "include \"other.model\"\ninput x: f32[2]\n"
                         "output y = x\n",
        "strings.model": "const s = \"a\\\"b\\n\"\nweight w: f32[2] = \"x.{s}\"\n",
    }
    for name, text in snippets.items():
        out("fuzz_model", name, text)


def golden_ir():
    gdir = os.path.join(ROOT, "tests", "golden")
    for sub in sorted(os.listdir(gdir)):
        for name in sorted(os.listdir(os.path.join(gdir, sub))):
            if not name.endswith(".ir"):
                continue
            with open(os.path.join(gdir, sub, name)) as f:
                text = f.read()
            for i, case in enumerate(text.split("// -----")):
                lines = [l for l in case.splitlines()
                         if not l.lstrip().startswith("// CHECK")]
                body = "\n".join(lines).strip() + "\n"
                if len(body) > 2:
                    out("fuzz_ir_reader", f"{sub}_{name[:-3]}_{i}.ir", body)


def safetensors(tensors, metadata=None, raw_header=None, tail=b""):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    h = raw_header if raw_header is not None else \
        json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data + tail


def f32(*xs):
    return struct.pack("<%df" % len(xs), *xs)


def st_seeds():
    t = "fuzz_safetensors"
    w = ("w", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6))
    b = ("b", "F16", [3], struct.pack("<3e", 0.5, -1, 2))
    ln = ("model.h.0.ln.weight", "BF16", [4], struct.pack("<4H", 0x3f80, 0x4000, 0xbf80, 0))
    out(t, "valid_all.safetensors", safetensors([w, b, ln], {"format": "pt"}))
    out(t, "valid_f64.safetensors",
        safetensors([("w", "F64", [2, 3], struct.pack("<6d", *range(6))),
                     ("b", "F32", [3], f32(1, 2, 3))]))
    out(t, "ints.safetensors",
        safetensors([("i", "I64", [2], struct.pack("<2q", 1, -1)),
                     ("j", "I32", [0], b""), ("k", "BOOL", [1], b"\x01"),
                     ("s", "F32", [], f32(7))]))
    out(t, "empty.safetensors", safetensors([]))
    out(t, "truncated.safetensors", safetensors([w])[:-5])
    out(t, "bad_json.safetensors", safetensors([], raw_header=b'{"w":{"dtype":'))
    out(t, "bad_dtype.safetensors",
        safetensors([("w", "Q4", [2], b"\0\0")]))
    out(t, "overlap.safetensors",
        safetensors([], raw_header=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                   b'"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}',
                    tail=b"\0" * 8))
    out(t, "huge_shape.safetensors",
        safetensors([], raw_header=b'{"w":{"dtype":"F32","shape":[4294967296,4294967296],'
                                   b'"data_offsets":[0,0]}}'))
    out(t, "header_len_past_end.safetensors", struct.pack("<Q", 1 << 40) + b"{}")


def npy(descr, shape, payload, fortran=False, version=1):
    shape_txt = "(" + "".join(f"{d}, " if len(shape) == 1 else f"{d}, " for d in shape)
    shape_txt = "(%s)" % (", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, "True" if fortran else "False", shape_txt)
    lenfmt = "<H" if version == 1 else "<I"
    pre = 6 + 2 + struct.calcsize(lenfmt)
    pad = 64 - (pre + len(h) + 1) % 64
    h = h + " " * pad + "\n"
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack(lenfmt, len(h)) + h.encode() + payload


def npy_seeds():
    t = "fuzz_npy"
    out(t, "f32.npy", npy("<f4", [2, 3], f32(*range(6))))
    out(t, "f16.npy", npy("<f2", [3], struct.pack("<3e", 1, 2, 3)))
    out(t, "f64_v2.npy", npy("<f8", [2], struct.pack("<2d", 1, 2), version=2))
    out(t, "i32.npy", npy("<i4", [2, 1], struct.pack("<2i", 1, 2)))
    out(t, "i64_scalar.npy", npy("<i8", [], struct.pack("<q", 9)))
    out(t, "bool.npy", npy("|b1", [3], b"\x00\x01\x01"))
    out(t, "empty.npy", npy("<f4", [0, 5], b""))
    out(t, "fortran.npy", npy("<f4", [2, 2], f32(1, 2, 3, 4), fortran=True))
    out(t, "big_endian.npy", npy(">f4", [1], b"\x3f\x80\0\0"))
    out(t, "truncated.npy", npy("<f4", [4], f32(1, 2, 3)))
    out(t, "overflow.npy", npy("<f8", [1 << 40, 1 << 40], b""))
    out(t, "bad_bool.npy", npy("|b1", [1], b"\x02"))
    out(t, "bad_magic.npy", b"\x93NUMPX\x01\x00\x10\x00{}")


def bpe_seeds():
    t = "fuzz_bpe"
    def char_of(b):
        if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or b >= 0xAE:
            return b
        n = sum(1 for k in range(b) if not (0x21 <= k <= 0x7E or 0xA1 <= k <= 0xAC or k >= 0xAE))
        return 0x100 + n
    enc = {chr(char_of(b)): b for b in range(256)}
    for i, tok in enumerate(["he", "ll", "hell", "hello", "\u0120w", "aa", "<|endoftext|>"]):
        enc[tok] = 256 + i
    vocab = "#version: 0.2\nh e\nl l\nhe ll\nhell o\n\u0120 w\na a\n"
    sep = "\n---\n"
    out(t, "tiny.bpe", json.dumps(enc) + sep + vocab)
    out(t, "tiny_ascii_escapes.bpe", json.dumps(enc, ensure_ascii=True) + sep + vocab)
    out(t, "bad_merge.bpe", json.dumps(enc) + sep + "#version: 0.2\nh zz\n")
    out(t, "no_version.bpe", json.dumps(enc) + sep + "h e\n")
    out(t, "bad_json.bpe", '{"a": 1, "b": }' + sep + "#version: 0.2\n")
    out(t, "dup_id.bpe", '{"a": 1, "b": 1}' + sep + "#version: 0.2\n")


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    models()
    golden_ir()
    st_seeds()
    npy_seeds()
    bpe_seeds()
    for target in ("fuzz_model", "fuzz_ir_reader", "fuzz_safetensors",
                   "fuzz_npy", "fuzz_bpe"):
        d = os.path.join(HERE, "regressions", target)
        os.makedirs(d, exist_ok=True)
        keep = os.path.join(d, ".gitkeep")
        if not os.listdir(d):
            open(keep, "w").close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
