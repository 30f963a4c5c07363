"""models/seq2seq.model (BiLSTM encoder, LSTM decoder with Luong "general"
attention and input feeding; greedy and beam-search entries) against a plain
PyTorch implementation of the same model and the same two searches.

Reference model: nn.Embedding, nn.LSTM(bidirectional=True, batch_first=True)
on pack_padded_sequence, the tanh bridges, nn.LSTMCell, the attention and the
output layer, run one source row and one hypothesis at a time. Reference
searches, written plainly over Python lists of hypotheses:
- greedy: the most probable token (equal log-probs: the lower id) until eos
  or max_len; score = sum of log-probs.
- beam: candidates k * V + v of live beams scored logp_k + logp(v); a
  finished beam is one candidate at k * V + eos with its score unchanged;
  the best `beam` by (score descending, candidate index ascending); stop
  when all beams are finished or after max_len steps; the answer is the
  beam with the best logp / ((5 + n) / 6)^alpha (equal: the lower beam).

Models: 8 configurations (-D: vocabularies of 11..40, hidden sizes 8..24,
beam widths 1..5, max_len 3..12, eos and bos at various ids; one at -O0),
each compiled once and given 3 random weight sets (seeded) with an eos bias
that makes hypotheses end at various steps: 24 models, each run on 2 batches
(B 1..6, S 1..10, lengths random, always including 1 and S, junk ids in the
padding), greedy, and beam search with alpha 0, 0.6 (also as the default)
and 1.3. Plus one model per configuration with a zero output layer (all
log-probs equal, -log V): every decision is an exact tie, so the tie order
(lower candidate index, lower beam) is checked exactly.

Checks: tokens and n identical, every token after a hypothesis' end is 0;
scores |got - ref| <= 1e-4 * max(1, |ref|); beam = 1 gives greedy's tokens
and, with alpha = 0, greedy's scores bit for bit.
Near ties: the searches are discontinuous, so a row whose reference search
took a decision (an argmax, the boundary of a top-k, the final choice) by a
margin under 1e-5 * max(1, |score|) can go either way in float32 with
another summation order; such rows are still compared and reported (SKIP
... equal anyway / differs) but cannot fail, and their count must stay
under 5% of the rows so that the test cannot pass vacuously. The output
layer's weights are scaled by 4 so that next-token distributions are
peaked, as a trained model's are (torch's default init gives nearly
uniform ones, where permutations of the same tokens tie within float error).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

SCORE_TOL = 1e-4
TIE_MARGIN = 1e-5      # relative; the scores' errors stay under 1e-6
N_CONFIGS = 8          # compiled programs (sizes, beam, max_len, eos)
N_WEIGHTS = 3          # random models per program: 24 models
# Under the sanitizers (10x slower programs, slower compiles) a subset runs:
# config 3 (beam 4) and config 5 (beam 1, compiled at -O0), one random model each
# (and the ties model); the unsanitized build runs everything.
SANITIZED_CONFIGS = (3, 5)
SANITIZED_WEIGHTS = 1
N_BATCHES = 2
ALPHAS = (0.0, 0.6, 1.3)
DEFAULT_ALPHA = 0.6
EOS_BIASES = (0.0, 1.0, 2.0, 3.0)
OUT_SCALE = 4.0


class Reference:
    """The PyTorch model: one source row, one hypothesis at a time."""

    def __init__(self, torch, n_src, n_tgt, n_embd, n_hidden, eos_bias, eos):
        nn = torch.nn
        self.torch = torch
        h = n_hidden
        self.mods = nn.ModuleDict({
            "src_embed": nn.Embedding(n_src, n_embd),
            "encoder": nn.LSTM(n_embd, h, bidirectional=True, batch_first=True),
            "bridge_h": nn.Linear(2 * h, h),
            "bridge_c": nn.Linear(2 * h, h),
            "tgt_embed": nn.Embedding(n_tgt, n_embd),
            "decoder": nn.LSTMCell(n_embd + h, h),
            "attn": nn.Linear(2 * h, h, bias=False),
            "attn_out": nn.Linear(3 * h, h, bias=False),
            "out": nn.Linear(h, n_tgt),
        }).eval()
        with torch.no_grad():
            # torch's default init gives nearly uniform next-token
            # distributions, where hypotheses with the same tokens in another
            # order tie within float error; sharper ones, as a trained model
            # has, leave fewer near ties
            self.mods["out"].weight *= OUT_SCALE
            self.mods["out"].bias[eos] += eos_bias    # hypotheses end sooner

    def make_uniform(self):
        """A zero output layer: every token has log-prob -log V at every step,
        so every candidate ties with others and only the tie order decides."""
        with self.torch.no_grad():
            self.mods["out"].weight.zero_()
            self.mods["out"].bias.zero_()

    def state_dict(self):
        return {k: v.contiguous() for k, v in self.mods.state_dict().items()}

    def encode(self, src, length):
        """src: ids [S] (padding after length): enc [1, S, 2H], keys, mask,
        the decoder's initial (h, c) [1, H]."""
        torch, m = self.torch, self.mods
        S = src.shape[0]
        x = m["src_embed"](torch.from_numpy(src.astype(np.int64))[None])
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.tensor([int(length)]), batch_first=True, enforce_sorted=False)
        out, (h_n, c_n) = m["encoder"](packed)
        enc, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=True, total_length=S)
        h0 = torch.tanh(m["bridge_h"](torch.cat([h_n[0], h_n[1]], dim=-1)))
        c0 = torch.tanh(m["bridge_c"](torch.cat([c_n[0], c_n[1]], dim=-1)))
        mask = torch.arange(S)[None] < int(length)
        return (enc, m["attn"](enc), mask), (h0, c0, torch.zeros_like(h0))

    def step(self, memory, state, tok):
        """One decoder step: the new (h, c, feed) and log-probs [V]."""
        torch, m = self.torch, self.mods
        enc, keys, mask = memory
        h, c, feed = state
        x = torch.cat([m["tgt_embed"](torch.tensor([tok])), feed], dim=-1)
        h, c = m["decoder"](x, (h, c))
        score = torch.bmm(keys, h[:, :, None])[:, :, 0]           # [1, S]
        score = score.masked_fill(~mask, float("-inf"))
        ctx = torch.bmm(torch.softmax(score, dim=-1)[:, None], enc)[:, 0]
        feed = torch.tanh(m["attn_out"](torch.cat([ctx, h], dim=-1)))
        return (h, c, feed), torch.log_softmax(m["out"](feed), dim=-1)[0]


def sorted_desc(torch, x):
    """Values and indices of x [N], descending, equal values by lower index."""
    return torch.sort(x, descending=True, stable=True)


def margin_at(values, k):
    """The gap between the k-th and (k+1)-th of sorted values, relative to
    max(1, |value|) (inf if there is none or the latter is -inf: no decision
    was taken there)."""
    if k >= len(values) or values[k] == float("-inf"):
        return float("inf")
    a, b = float(values[k - 1]), float(values[k])
    return (a - b) / max(1.0, abs(a))


def ref_greedy(torch, ref, src, length, max_len, bos, eos):
    """(tokens, score, smallest decision margin)."""
    memory, state = ref.encode(src, length)
    tokens, score, margin, tok = [], torch.zeros(()), float("inf"), bos
    for _ in range(max_len):
        state, logp = ref.step(memory, state, tok)
        values, order = sorted_desc(torch, logp)
        margin = min(margin, margin_at(values, 1))
        tok = int(order[0])
        score = score + values[0]
        tokens.append(tok)
        if tok == eos:
            break
    return tokens, float(score), margin


def ref_beam(torch, ref, src, length, max_len, bos, eos, beam, alpha, n_vocab):
    """(tokens, penalized score, smallest decision margin)."""
    memory, state = ref.encode(src, length)
    ninf = torch.tensor(float("-inf"))
    # a hypothesis: [tokens, cumulative log-prob (f32 tensor), finished, state]
    hyps = [[[], torch.zeros(()), False, state]] + \
        [[[], ninf, False, state] for _ in range(beam - 1)]
    margin = float("inf")
    for _ in range(max_len):
        if all(h[2] for h in hyps):
            break
        values, sources = [], []      # candidate k * V + v
        for k, (toks, logp, fin, st) in enumerate(hyps):
            if fin:
                cand = torch.full((n_vocab,), float("-inf"))
                cand[eos] = logp
                new_state = st
            else:
                new_state, logp_t = ref.step(memory, st, toks[-1] if toks else bos)
                cand = logp + logp_t
            values.append(cand)
            sources.append(new_state)
        top, index = sorted_desc(torch, torch.cat(values))
        margin = min(margin, margin_at(top, beam))
        new = []
        for j in range(beam):
            parent, tok = divmod(int(index[j]), n_vocab)
            toks, _, fin, _ = hyps[parent]
            if fin:
                new.append([toks, top[j], True, sources[parent]])
            else:
                new.append([toks + [tok], top[j], tok == eos, sources[parent]])
        hyps = new
    penalized = torch.stack([h[1] / ((5 + torch.tensor(float(len(h[0])))) / 6)
                             ** torch.tensor(alpha, dtype=torch.float32)
                             for h in hyps])
    values, order = sorted_desc(torch, penalized)
    margin = min(margin, margin_at(values, 1))
    best = int(order[0])
    return hyps[best][0], float(values[0]), margin


def random_config(rng, index):
    """A model size and search setting: -D defines and the reference's knobs."""
    n_tgt = int(rng.integers(11, 41))
    cfg = {
        "n_src_vocab": int(rng.integers(11, 41)),
        "n_tgt_vocab": n_tgt,
        "n_embd": int(rng.integers(8, 25)),
        "n_hidden": int(rng.integers(8, 25)),
        "max_len": int(rng.integers(3, 13)),
        "bos": int(rng.integers(0, n_tgt)),
        "eos": [2, 0, n_tgt - 1][index % 3],
        "beam": 1 + index % 5,
    }
    if index < 2:       # the extremes of the ranges
        cfg.update(n_src_vocab=[11, 40][index], n_tgt_vocab=[11, 40][index],
                   n_embd=[8, 24][index], n_hidden=[8, 24][index],
                   max_len=[3, 12][index], bos=1)
        cfg["eos"] = [2, 0][index]
    return cfg


def random_batch(rng, n_src):
    batch = int(rng.integers(1, 7))
    steps = int(rng.integers(1, 11))
    lengths = rng.integers(1, steps + 1, size=batch)
    rows = rng.permutation(batch)
    lengths[rows[0]] = steps
    if batch > 1:
        lengths[rows[1]] = 1
    src = rng.integers(0, n_src, size=(batch, steps)).astype(np.int32)
    return src, lengths.astype(np.int32)


class Tally:
    def __init__(self):
        self.rows = 0
        self.ambiguous = 0
        self.score_err = 0.0
        self.finished_early = 0
        self.ambiguous_equal = 0


def compare_row(ck, tally, tag, got_tokens, got_n, got_score, ref_tokens,
                ref_score, margin, max_len):
    """One row: tokens, n, zeros after the end, score; near ties excluded."""
    tally.rows += 1
    err = abs(float(got_score) - ref_score)
    tol = SCORE_TOL * max(1.0, abs(ref_score))
    want = np.zeros(max_len, np.int32)
    want[:len(ref_tokens)] = ref_tokens
    ok = (np.array_equal(got_tokens, want) and int(got_n) == len(ref_tokens)
          and err <= tol)
    if margin < TIE_MARGIN:
        tally.ambiguous += 1
        tally.ambiguous_equal += ok
        print("SKIP %s: a decision within %.2g of a tie (%s)" % (
            tag, margin, "equal anyway" if ok else "differs"))
        return
    tally.score_err = max(tally.score_err, err / max(1.0, abs(ref_score)))
    if len(ref_tokens) < max_len:
        tally.finished_early += 1
    if not ok:
        ck.check(tag, False, "tokens %s n %d score %.7g; want %s n %d score %.7g" % (
            got_tokens.tolist(), int(got_n), float(got_score), want.tolist(),
            len(ref_tokens), ref_score))
    return ok


def body(ck, work):
    torch = mc_e2e.import_torch()
    rng = np.random.default_rng(2024)
    model = mc_e2e.model_path("seq2seq.model")
    greedy_tally, beam_tally = Tally(), Tally()
    beam1_rows = 0
    n_models = 0
    n_weights = SANITIZED_WEIGHTS if mc_e2e.SANITIZE else N_WEIGHTS
    for index in range(N_CONFIGS):
        cfg = random_config(rng, index)
        if mc_e2e.SANITIZE and index not in SANITIZED_CONFIGS:
            continue
        label = "config%d" % index
        prog = None
        for w in range(n_weights + 1):
            # every weight set is another random model of this size; the
            # program is compiled once and given each one with --weights
            eos_bias = EOS_BIASES[(index + w) % len(EOS_BIASES)]
            torch.manual_seed(100 * index + w)
            ref = Reference(torch, cfg["n_src_vocab"], cfg["n_tgt_vocab"], cfg["n_embd"],
                            cfg["n_hidden"], eos_bias, cfg["eos"])
            ties = w == n_weights
            if ties:
                ref.make_uniform()
            name = "%s.%s" % (label, "ties" if ties else "w%d" % w)
            weights = work.path(label, "w%d.safetensors" % w)
            mc_e2e.write_safetensors(weights, ref.state_dict())
            if prog is None:
                prog = mc_e2e.compile_model(model, work.path(label, "s2s"), defines=cfg,
                                            weights=weights, opt=0 if index == 5 else None)
            n_models += not ties
            print("%s: %s eos_bias %g" % (name, cfg, 0 if ties else eos_bias))
            failed_before = len(ck.failures)
            beam1_rows += check_model(ck, torch, ref, cfg, name, prog, weights, rng, work,
                                      Tally() if ties else greedy_tally,
                                      Tally() if ties else beam_tally, ties)
            ck.check("%s: greedy and beam search as the reference" % name,
                     len(ck.failures) == failed_before)

    for name, t in (("greedy", greedy_tally), ("beam", beam_tally)):
        ck.check("%s, %d models: %d rows compared, %d near ties left out (%d of them "
                 "equal anyway), %d ended before max_len; max score error %.3g "
                 "(relative to max(1, |ref|))" % (
                     name, n_models, t.rows - t.ambiguous, t.ambiguous, t.ambiguous_equal,
                     t.finished_early, t.score_err),
                 t.ambiguous <= 0.05 * t.rows and t.finished_early > 0)
    ck.check("beam=1 compared with greedy on %d rows" % beam1_rows, beam1_rows > 0)


def check_model(ck, torch, ref, cfg, label, prog, weights, rng, work, greedy_tally,
                beam_tally, ties):
    """Greedy and beam search of one model on N_BATCHES batches; returns the
    number of rows where beam = 1 was compared with greedy. ties: every
    decision is an exact tie, which both sides must break the same way."""
    beam1_rows = 0

    def run(entry, inputs, name):
        paths = ["%s=%s" % (k, mc_e2e.save_npy(work.next_input_path(k), v))
                 for k, v in inputs.items()]
        out = work.path(label, name)
        mc_e2e.run([prog, entry, "--weights", weights] + paths + ["-o", out])
        return {f[:-4]: mc_e2e.load_npy(os.path.join(out, f))
                for f in os.listdir(out) if f.endswith(".npy")}

    for b in range(N_BATCHES):
        src, lengths = random_batch(rng, cfg["n_src_vocab"])
        rows = range(len(lengths))
        inputs = {"src": src, "lengths": lengths}
        greedy = run("greedy", inputs, "greedy%d" % b)
        ck.check("%s batch %d: greedy output shapes" % (label, b),
                 greedy["tokens"].shape == (len(lengths), cfg["max_len"])
                 and greedy["scores"].shape == (len(lengths),)
                 and greedy["n"].shape == (len(lengths),))
        with torch.no_grad():
            refs = [ref_greedy(torch, ref, src[r], lengths[r], cfg["max_len"],
                               cfg["bos"], cfg["eos"]) for r in rows]
        for r, (toks, score, margin) in enumerate(refs):
            margin = float("inf") if ties else margin
            compare_row(ck, greedy_tally, "%s batch %d row %d greedy" % (label, b, r),
                        greedy["tokens"][r], greedy["n"][r], greedy["scores"][r],
                        toks, score, margin, cfg["max_len"])
        for alpha in ALPHAS:
            out = run("beam_search", dict(inputs, alpha=np.float32(alpha)),
                      "beam%d_%g" % (b, alpha))
            with torch.no_grad():
                brefs = [ref_beam(torch, ref, src[r], lengths[r], cfg["max_len"],
                                  cfg["bos"], cfg["eos"], cfg["beam"], alpha,
                                  cfg["n_tgt_vocab"]) for r in rows]
            for r, (toks, score, margin) in enumerate(brefs):
                margin = float("inf") if ties else margin
                compare_row(ck, beam_tally, "%s batch %d row %d beam alpha=%g" % (
                    label, b, r, alpha), out["tokens"][r], out["n"][r],
                    out["scores"][r], toks, score, margin, cfg["max_len"])
            if alpha == DEFAULT_ALPHA and b == 0:
                default = run("beam_search", inputs, "beam%d_default" % b)
                ck.check("%s: alpha defaults to %g" % (label, DEFAULT_ALPHA),
                         all(np.array_equal(default[k], out[k]) for k in out))
            if cfg["beam"] == 1 and alpha == 0.0:
                clear = [r for r in rows if ties or refs[r][2] >= TIE_MARGIN]
                beam1_rows += len(clear)
                ck.check("%s batch %d: beam=1 alpha=0 is greedy (%d rows)" % (
                    label, b, len(clear)),
                    np.array_equal(out["tokens"][clear], greedy["tokens"][clear])
                    and np.array_equal(out["n"][clear], greedy["n"][clear])
                    and np.array_equal(out["scores"][clear].view(np.uint32),
                                       greedy["scores"][clear].view(np.uint32)))
    for entry in ("greedy", "beam_search"):
        mc_e2e.check_threads(ck, "%s %s" % (label, entry), prog, inputs, work,
                             weights=weights, entry=entry)
    return beam1_rows


if __name__ == "__main__":
    mc_e2e.main("test_seq2seq", body)
