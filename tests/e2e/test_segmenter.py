"""The demo's word segmenter: models/bilstm_crf.model compiled with the shipped
weights models/demo/segmenter.safetensors (trained by
models/train/train_segmenter.py) at the sizes the demo uses, run as
`PROG decode tokens=... lengths=...` on held-out pieces of the licenses in
/usr/share/common-licenses with their spaces removed.

Checks: the weights file holds exactly the model's tensors at these sizes; the
program's tags equal a float64 PyTorch Viterbi on the same weights exactly
(the Reference of test_bilstm_crf.py; -1 at padded positions); against the
true word boundaries, tag accuracy >= 0.95 and boundary F1 >= 0.93 (the
shipped weights measure about 0.98 and 0.97, so damaged or untrained weights
fail); models/demo/segment.py rebuilds every piece from its true tags, and its
command line (encode, then decode the program's tags) reproduces the
in-process result.
"""
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mc_e2e  # noqa: E402
import test_bilstm_crf  # noqa: E402

sys.path.insert(0, os.path.join(mc_e2e.MODELS_DIR, "train"))
sys.path.insert(0, os.path.join(mc_e2e.MODELS_DIR, "demo"))

CONFIG = {"n_vocab": 256, "n_embd": 32, "n_hidden": 64, "n_tags": 4}
WEIGHTS = os.path.join(mc_e2e.MODELS_DIR, "demo", "segmenter.safetensors")
SEGMENT = os.path.join(mc_e2e.MODELS_DIR, "demo", "segment.py")
PIECES = 50
MIN_TAG_ACCURACY = 0.95
MIN_BOUNDARY_F1 = 0.93


def read_safetensors(path):
    """{name: float32 array} of a safetensors file of F32 tensors."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError("%s: dtype %s, expected F32" % (name, info["dtype"]))
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], "<f4").reshape(info["shape"])
    return tensors


def expected_shapes():
    v, d, h, k = (CONFIG[n] for n in ("n_vocab", "n_embd", "n_hidden", "n_tags"))
    shapes = {"embedding.weight": [v, d], "hidden2tag.weight": [k, 2 * h],
              "hidden2tag.bias": [k], "crf.start_transitions": [k],
              "crf.end_transitions": [k], "crf.transitions": [k, k]}
    for sfx in ("l0", "l0_reverse"):
        shapes.update({"lstm.weight_ih_" + sfx: [4 * h, d],
                       "lstm.weight_hh_" + sfx: [4 * h, h],
                       "lstm.bias_ih_" + sfx: [4 * h], "lstm.bias_hh_" + sfx: [4 * h]})
    return shapes


def body(ck, work):
    torch = mc_e2e.import_torch()
    import segment
    import train_segmenter

    state = read_safetensors(WEIGHTS)
    shapes = {name: list(a.shape) for name, a in state.items()}
    ck.check("%s holds the model's tensors at %s" % (os.path.basename(WEIGHTS), CONFIG),
             shapes == expected_shapes(), "got %s" % shapes)
    ck.check("the weights are finite",
             all(bool(np.isfinite(a).all()) for a in state.values()))

    # Held-out pieces, spread over the whole held-out set.
    held = train_segmenter.held_out_pieces()
    pieces = [held[i] for i in np.linspace(0, len(held) - 1, PIECES).astype(int)]
    examples = [train_segmenter.example(p) for p in pieces]
    lengths = np.array([len(data) for data, _ in examples], np.int32)
    tokens = np.full((len(pieces), lengths.max()), -1, np.int32)  # -1: padding
    for b, (data, _) in enumerate(examples):
        tokens[b, :lengths[b]] = np.frombuffer(data, np.uint8)
    print("%d of %d held-out pieces, %d to %d bytes, %d bytes in all" % (
        len(pieces), len(held), lengths.min(), lengths.max(), lengths.sum()))
    ck.check("segment.py rebuilds every piece from its true tags",
             all(segment.insert_spaces(data, tags) == p
                 for p, (data, tags) in zip(pieces, examples)))

    prog = mc_e2e.compile_model(mc_e2e.model_path("bilstm_crf.model"),
                                work.path("segmenter"), defines=CONFIG,
                                weights=WEIGHTS, opt=2)
    res, out = test_bilstm_crf.run_entry(prog, "decode", {"tokens": tokens, "lengths": lengths},
                                         work.path("out"), work, WEIGHTS)
    ok = res.returncode == 0 and "tags" in out
    if not ck.check("PROG decode ran on [%d, %d] tokens" % tokens.shape, ok,
                    "" if ok else res.describe()):
        return
    got = out["tags"]

    ref = test_bilstm_crf.Reference(
        torch, {k: torch.from_numpy(v.copy()) for k, v in state.items()},
        *(CONFIG[n] for n in ("n_vocab", "n_embd", "n_hidden", "n_tags")))
    e = ref.emissions(np.where(tokens < 0, 0, tokens), lengths)
    want = np.full(tokens.shape, -1, np.int32)
    for b in range(len(pieces)):
        want[b, :lengths[b]] = ref.viterbi(e[b], int(lengths[b]))
    test_bilstm_crf.check_paths(ck, "decode equals the float64 PyTorch Viterbi", got, want,
                                ref, e, lengths)

    acc, p, r, f1, exact = train_segmenter.score(
        [tags for _, tags in examples], [got[b, :lengths[b]].tolist() for b in range(len(pieces))])
    detail = "precision %.4f recall %.4f, %.0f%% of pieces exactly right" % (p, r, 100 * exact)
    ck.check("tag accuracy %.4f >= %g" % (acc, MIN_TAG_ACCURACY), acc >= MIN_TAG_ACCURACY)
    ck.check("boundary F1 %.4f >= %g" % (f1, MIN_BOUNDARY_F1), f1 >= MIN_BOUNDARY_F1, detail)
    for b in range(3):
        print("  %s\n  -> %s" % (pieces[b], segment.insert_spaces(examples[b][0], got[b])))

    # The demo's path: segment.py encode, the program, segment.py decode.
    text = pieces[0]
    enc = mc_e2e.run(["/usr/bin/python3", SEGMENT, "encode", text, "-o", work.path("demo", "in")])
    mc_e2e.run([prog, "decode", "--weights", WEIGHTS,
                "tokens=" + work.path("demo", "in", "tokens.npy"),
                "lengths=" + work.path("demo", "in", "lengths.npy"),
                "-o", work.path("demo", "out")])
    dec = mc_e2e.run(["/usr/bin/python3", SEGMENT, "decode",
                      work.path("demo", "out", "tags.npy"), enc.stdout.strip()])
    ck.check("segment.py encode | PROG decode | segment.py decode gives the in-process result",
             dec.stdout.strip() == segment.insert_spaces(examples[0][0], got[0]),
             "%r -> %r" % (enc.stdout.strip(), dec.stdout.strip()))


if __name__ == "__main__":
    mc_e2e.main("test_segmenter", body)
