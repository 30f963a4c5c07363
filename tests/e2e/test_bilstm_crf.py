"""models/bilstm_crf.model (embedding -> BiLSTM -> linear -> linear-chain
CRF; entries `decode` and `nll`) against a PyTorch reference written out
below (float64: nn.Embedding, nn.LSTM on packed sequences, nn.Linear, then
the CRF's forward algorithm, path score and Viterbi with backtracking, one
row at a time) and, on tiny cases (K = 3 tags, T <= 4), against brute-force
enumeration of every tag path (log Z = logsumexp of all path scores; the
decoded path is the best-scoring one).

Tolerances: Viterbi paths exactly equal (-1 at padded positions); NLL
|got - ref| <= 1e-4 * |ref| (the program computes in float32, the
reference in float64 on the same weights). The NLL of the decoded path
itself (log Z - best score, near 0 while both terms are large) is checked
to 1e-5 + 2e-6 * |log Z| + 1e-4 * |ref|: float32 rounding of log Z.
Covers: random weights (several draws per build: weights are read at run
time), random lengths with a row of length 1 and a row of full length,
junk (-1) in the padded positions of tokens and tags; long sequences
(T = 200, also with emissions of magnitude ~100, where exp of a path score
overflows any float) stay finite and match the float64 reference.
Builds: `modelc compile --entry decode` / `--entry nll` (programs of one
entry, no entry argument), and the two-entry program (`PROG decode ...`,
`PROG nll ...`), whose outputs must equal the single-entry builds' bits.
"""
import itertools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

NLL_RTOL = 1e-4
ENTRIES = ("decode", "nll")


# ---- the PyTorch reference ------------------------------------------------

class Reference:
    """The model in float64 PyTorch, built from the float32 weights given to
    the program (so both see the same numbers)."""

    def __init__(self, torch, state, n_vocab, n_embd, n_hidden, n_tags):
        nn = torch.nn
        self.torch = torch
        self.embedding = nn.Embedding(n_vocab, n_embd).double()
        self.lstm = nn.LSTM(n_embd, n_hidden, bidirectional=True,
                            batch_first=True).double()
        self.hidden2tag = nn.Linear(2 * n_hidden, n_tags).double()
        with torch.no_grad():
            self.embedding.weight.copy_(state["embedding.weight"])
            for k, v in self.lstm.state_dict().items():
                v.copy_(state["lstm." + k])
            self.hidden2tag.weight.copy_(state["hidden2tag.weight"])
            self.hidden2tag.bias.copy_(state["hidden2tag.bias"])
        self.start = state["crf.start_transitions"].double()
        self.end = state["crf.end_transitions"].double()
        self.trans = state["crf.transitions"].double()   # [from, to]

    def emissions(self, tokens, lengths):
        """[B, T, K] float64; tokens [B, T] (valid ids), lengths [B]."""
        torch = self.torch
        rnn = torch.nn.utils.rnn
        with torch.no_grad():
            x = self.embedding(torch.from_numpy(tokens.astype(np.int64)))
            packed = rnn.pack_padded_sequence(
                x, torch.from_numpy(lengths.astype(np.int64)),
                batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = rnn.pad_packed_sequence(out, batch_first=True,
                                             total_length=tokens.shape[1])
            return self.hidden2tag(out)

    def path_score(self, e, path):
        """Score of tags `path` (a sequence of L ints) over e [L', K]."""
        s = self.start[path[0]] + e[0, path[0]]
        for t in range(1, len(path)):
            s = s + self.trans[path[t - 1], path[t]] + e[t, path[t]]
        return s + self.end[path[-1]]

    def log_partition(self, e, length):
        """The forward algorithm in log space over steps 0 .. length-1."""
        torch = self.torch
        alpha = self.start + e[0]
        for t in range(1, length):
            alpha = torch.logsumexp(alpha[:, None] + self.trans, dim=0) + e[t]
        return torch.logsumexp(alpha + self.end, dim=0)

    def viterbi(self, e, length):
        """The best path over steps 0 .. length-1: max-product forward pass
        keeping backpointers, then the walk back from the best last tag."""
        score = self.start + e[0]
        backpointers = []
        for t in range(1, length):
            cand = score[:, None] + self.trans            # [from, to]
            score, bp = cand.max(dim=0)
            score = score + e[t]
            backpointers.append(bp)
        path = [int((score + self.end).argmax())]
        for bp in reversed(backpointers):
            path.append(int(bp[path[-1]]))
        return path[::-1]


def reference_outputs(ref, e, lengths, tags):
    """(Viterbi tags [B, T] with -1 padding, nll [B], log Z [B]) by the
    reference."""
    B, T, _ = e.shape
    decoded = np.full((B, T), -1, dtype=np.int32)
    nll = np.zeros(B)
    log_z = np.zeros(B)
    for b in range(B):
        L = int(lengths[b])
        decoded[b, :L] = ref.viterbi(e[b], L)
        log_z[b] = float(ref.log_partition(e[b], L))
        nll[b] = log_z[b] - float(ref.path_score(e[b], [int(y) for y in tags[b, :L]]))
    return decoded, nll, log_z


def brute_force(ref, e, lengths, tags, n_tags):
    """The same by enumerating all n_tags^L paths of each row."""
    torch = ref.torch
    B, T, _ = e.shape
    decoded = np.full((B, T), -1, dtype=np.int32)
    nll = np.zeros(B)
    for b in range(B):
        L = int(lengths[b])
        paths = list(itertools.product(range(n_tags), repeat=L))
        scores = torch.stack([ref.path_score(e[b], p) for p in paths])
        decoded[b, :L] = paths[int(scores.argmax())]
        gold = ref.path_score(e[b], [int(y) for y in tags[b, :L]])
        nll[b] = float(torch.logsumexp(scores, dim=0) - gold)
    return decoded, nll


# ---- weights and inputs ---------------------------------------------------

def random_state(torch, dims, emit_scale, trans_scale):
    """float32 weights named as the model wants them. emit_scale multiplies
    the linear layer (the size of the emissions), trans_scale the CRF's."""
    n_vocab, n_embd, n_hidden, n_tags = dims
    nn = torch.nn
    state = {"embedding.weight": nn.Embedding(n_vocab, n_embd).weight}
    lstm = nn.LSTM(n_embd, n_hidden, bidirectional=True, batch_first=True)
    state.update({"lstm." + k: v for k, v in lstm.state_dict().items()})
    lin = nn.Linear(2 * n_hidden, n_tags)
    state["hidden2tag.weight"] = lin.weight * emit_scale
    state["hidden2tag.bias"] = lin.bias * emit_scale
    state["crf.start_transitions"] = torch.randn(n_tags) * trans_scale
    state["crf.end_transitions"] = torch.randn(n_tags) * trans_scale
    state["crf.transitions"] = torch.randn(n_tags, n_tags) * trans_scale
    return {k: v.detach().float().contiguous() for k, v in state.items()}


def random_batch(rng, batch, steps, n_vocab, n_tags):
    """tokens, lengths (a row of T and, when B > 1, a row of 1), gold tags;
    padded positions of tokens and tags hold -1, which the model ignores."""
    lengths = rng.integers(1, steps + 1, size=batch)
    rows = rng.permutation(batch)
    lengths[rows[0]] = steps
    if batch > 1:
        lengths[rows[1]] = 1
    pad = np.arange(steps)[None, :] >= lengths[:, None]
    tokens = rng.integers(0, n_vocab, size=(batch, steps))
    tags = rng.integers(0, n_tags, size=(batch, steps))
    tokens[pad] = -1
    tags[pad] = -1
    return (tokens.astype(np.int32), lengths.astype(np.int32),
            tags.astype(np.int32))


# ---- running the programs -------------------------------------------------

def run_entry(prog, entry, inputs, outdir, work, weights):
    """Runs `PROG [ENTRY] --weights W name=FILE.npy ... -o OUTDIR`; entry
    None for a program of one entry. Returns (Result, {output name: array})."""
    argv = [prog] + ([entry] if entry else []) + ["--weights", weights]
    for name, value in inputs.items():
        argv.append("%s=%s" % (name, mc_e2e.save_npy(
            work.next_input_path(name), value)))
    res = mc_e2e.run(argv + ["-o", outdir], check=False)
    outputs = {}
    if res.returncode == 0 and os.path.isdir(outdir):
        outputs = {f[:-4]: mc_e2e.load_npy(os.path.join(outdir, f))
                   for f in sorted(os.listdir(outdir)) if f.endswith(".npy")}
    return res, outputs


class Builds:
    """The model compiled as two one-entry programs and one two-entry one."""

    def __init__(self, work, label, defines, weights, opt):
        model = mc_e2e.model_path("bilstm_crf.model")
        self.single = {
            entry: mc_e2e.compile_model(
                model, work.path(label, "crf_" + entry), defines=defines,
                weights=weights, opt=opt, extra=("--entry", entry))
            for entry in ENTRIES}
        self.both = mc_e2e.compile_model(model, work.path(label, "crf"),
                                         defines=defines, weights=weights,
                                         opt=opt)
        self.runs = 0

    def run(self, ck, work, tag, weights, tokens, lengths, tags):
        """decode and nll by the one-entry programs; the two-entry program
        must give the same bits. Returns (decoded tags, nll)."""
        self.runs += 1
        d = work.path("runs", str(self.runs))
        inputs = {"decode": {"tokens": tokens, "lengths": lengths},
                  "nll": {"tokens": tokens, "lengths": lengths, "tags": tags}}
        got = {}
        for entry in ENTRIES:
            res, out = run_entry(self.single[entry], None, inputs[entry],
                                 os.path.join(d, entry), work, weights)
            if res.returncode != 0:
                raise RuntimeError("--entry %s program failed\n%s" % (
                    entry, res.describe()))
            res, both = run_entry(self.both, entry, inputs[entry],
                                  os.path.join(d, "both_" + entry), work, weights)
            name = "tags" if entry == "decode" else "nll"
            ck.check("%s: --entry %s gives output %s" % (tag, entry, name),
                     name in out, "outputs: %s" % sorted(out))
            if ck.check("%s: two-entry program, %s, gives output %s" % (
                    tag, entry, name), name in both,
                    "outputs: %s" % sorted(both) if res.returncode == 0 else
                    "exit %d: %s" % (res.returncode,
                                      (res.stderr.strip().splitlines() or [""])[0])):
                if name in out:
                    if entry == "decode":
                        ck.check("%s: two-entry decode equals --entry decode" % tag,
                                 np.array_equal(both[name], out[name]))
                    else:
                        ck.bits_equal("%s: two-entry nll equals --entry nll" % tag,
                                      both[name], out[name])
            got[entry] = out.get(name)
        return got["decode"], got["nll"]

    def check_threads(self, ck, work, tag, weights, tokens, lengths, tags):
        """The two-entry program's outputs on 1, 2 and 3 threads (1 and 3
        under the sanitizers)."""
        inputs = {"tokens": tokens, "lengths": lengths}
        for entry in ENTRIES:
            mc_e2e.check_threads(ck, "%s %s" % (tag, entry), self.both,
                                 dict(inputs, tags=tags) if entry == "nll" else inputs,
                                 work, weights=weights, entry=entry)


def check_paths(ck, name, got, want, ref=None, e=None, lengths=None):
    """Exact equality of decoded tags; on a mismatch, the reference's score
    gap between the two paths of the first differing row."""
    got = np.asarray(got)
    ok = got.shape == want.shape and got.dtype == want.dtype and \
        np.array_equal(got, want)
    detail = "%d rows, %d valid positions" % (want.shape[0], int((want >= 0).sum()))
    if not ok and got.shape == want.shape:
        rows = np.nonzero((got != want).any(axis=1))[0]
        b = int(rows[0])
        detail += "; %d rows differ, first %d: got %s want %s" % (
            len(rows), b, got[b].tolist(), want[b].tolist())
        L = int(lengths[b])
        if ref is not None and ((got[b, :L] >= 0) & (got[b, :L] < e.shape[2])).all():
            gap = float(ref.path_score(e[b], [int(y) for y in want[b, :L]]) -
                        ref.path_score(e[b], [int(y) for y in got[b, :L]]))
            detail += " (reference score gap %.3g)" % gap
    elif not ok:
        detail += "; got %s %s" % (got.dtype, got.shape)
    return ck.check(name, ok, detail)


# ---- the checks -----------------------------------------------------------

def body(ck, work):
    torch = mc_e2e.import_torch()
    torch.set_default_dtype(torch.float32)
    rng = np.random.default_rng(3)

    # Tiny: K = 3, T <= 4, against brute force and the reference.
    tiny = {"n_vocab": 11, "n_embd": 4, "n_hidden": 5, "n_tags": 3}
    dims = (11, 4, 5, 3)
    weights = work.path("tiny", "w.safetensors")
    mc_e2e.write_safetensors(weights, random_state(torch, dims, 1.0, 1.0))
    builds = Builds(work, "tiny", tiny, weights, opt=0)
    worst = {"brute": 0.0, "ref": 0.0}
    for draw in range(8):
        torch.manual_seed(100 + draw)
        state = random_state(torch, dims, 2.0, 1.5)
        weights = work.path("tiny", "w%d.safetensors" % draw)
        mc_e2e.write_safetensors(weights, state)
        ref = Reference(torch, state, *dims)
        steps = 1 + draw % 4
        tokens, lengths, tags = random_batch(rng, 6, steps, dims[0], dims[3])
        tag = "tiny draw %d B=6 T=%d" % (draw, steps)
        print("%s: lengths %s" % (tag, lengths.tolist()))
        e = ref.emissions(np.where(tokens < 0, 0, tokens), lengths)
        bf_tags, bf_nll = brute_force(ref, e, lengths, tags, dims[3])
        ref_tags, ref_nll, ref_log_z = reference_outputs(ref, e, lengths, tags)
        got_tags, got_nll = builds.run(ck, work, tag, weights, tokens, lengths, tags)
        ck.check("%s: reference Viterbi equals brute force" % tag,
                 np.array_equal(ref_tags, bf_tags))
        ck.close("%s: reference nll equals brute force" % tag, ref_nll, bf_nll,
                 1e-12, 0)
        check_paths(ck, "%s: decode equals brute force" % tag, got_tags,
                    bf_tags, ref, e, lengths)
        ck.close("%s: nll equals brute force" % tag, got_nll, bf_nll.astype(np.float32),
                 NLL_RTOL, 0)
        if got_nll is not None:
            worst["brute"] = max(worst["brute"], mc_e2e.errors(got_nll, bf_nll)[1])

    # Default sizes, several draws, and long sequences.
    dims = (100, 16, 16, 5)
    weights = work.path("default", "w.safetensors")
    mc_e2e.write_safetensors(weights, random_state(torch, dims, 1.0, 1.0))
    builds = Builds(work, "default", None, weights, opt=2)
    cases = [(draw, 8, 12, 2.0, 1.0) for draw in range(6)]
    cases += [(10, 4, 200, 2.0, 1.0), (11, 4, 200, 300.0, 5.0)]
    for draw, batch, steps, emit_scale, trans_scale in cases:
        torch.manual_seed(200 + draw)
        state = random_state(torch, dims, emit_scale, trans_scale)
        weights = work.path("default", "w%d.safetensors" % draw)
        mc_e2e.write_safetensors(weights, state)
        ref = Reference(torch, state, *dims)
        tokens, lengths, tags = random_batch(rng, batch, steps, dims[0], dims[3])
        tag = "default draw %d B=%d T=%d emissions x%g" % (draw, batch, steps,
                                                           emit_scale)
        print("%s: lengths %s" % (tag, lengths.tolist()))
        e = ref.emissions(np.where(tokens < 0, 0, tokens), lengths)
        ref_tags, ref_nll, ref_log_z = reference_outputs(ref, e, lengths, tags)
        got_tags, got_nll = builds.run(ck, work, tag, weights, tokens, lengths, tags)
        if draw == 0:
            builds.check_threads(ck, work, tag, weights, tokens, lengths, tags)
        print("%s: |emissions| <= %.3g, reference nll %s" % (
            tag, float(e.abs().max()), np.array2string(ref_nll, precision=6)))
        check_paths(ck, "%s: decode equals the reference" % tag, got_tags,
                    ref_tags, ref, e, lengths)
        if got_nll is not None:
            ck.check("%s: nll finite" % tag, bool(np.isfinite(got_nll).all()))
        ck.close("%s: nll equals the float64 reference" % tag, got_nll,
                 ref_nll.astype(np.float32), NLL_RTOL, 0)
        if got_nll is not None:
            worst["ref"] = max(worst["ref"], mc_e2e.errors(got_nll, ref_nll)[1])
        # The decoded path's nll is the smallest: log Z - best score. It is
        # a small difference of two large sums, so float32 gets it to a
        # fraction of |log Z|, not of itself.
        _, best_nll = builds.run(ck, work, tag + " (decoded tags)", weights,
                                 tokens, lengths, got_tags)
        _, ref_best, _ = reference_outputs(ref, e, lengths, ref_tags)
        ck.close("%s: nll of the decoded path equals the reference (|log Z| "
                 "<= %.3g)" % (tag, np.abs(ref_log_z).max()), best_nll,
                 ref_best.astype(np.float32), NLL_RTOL,
                 1e-5 + 2e-6 * np.abs(ref_log_z).max())
        ck.check("%s: the decoded path has the least nll" % tag,
                 bool((best_nll <= got_nll).all()))
    print("largest relative nll error: %.3g vs brute force, %.3g vs the float64 "
          "reference" % (worst["brute"], worst["ref"]))


if __name__ == "__main__":
    mc_e2e.main("test_bilstm_crf", body)
