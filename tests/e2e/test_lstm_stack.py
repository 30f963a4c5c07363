"""models/rnn_stack.model (stacked, bidirectional LSTM and GRU on padded
batches, written with `scan`) against torch.nn.LSTM and torch.nn.GRU
(batch_first=True) run on packed sequences:
pack_padded_sequence(x, lengths, enforce_sorted=False) -> module ->
pad_packed_sequence(total_length=T). The weights are the modules'
state_dict() under "lstm." and "gru.".

Tolerance: |got - ref| <= 1e-5 + 1e-5 * |ref| (float32; the gate sums are
accumulated in another order than PyTorch's and the error of each step and
layer carries into the next).
Covers: random lengths in every batch, always with a row of length 1 and a
row of full length; T = 1; a long sequence (T = 60); 2 and 3 layers;
bidirectional and unidirectional (-D n_directions=1); -O0 and -O2.
Exact checks: outputs at padded positions are 0 (as pad_packed_sequence
gives), and the values of x at padded positions change no output bit
(padding does not leak into either direction, nor into h_n/c_n).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

RTOL = 1e-5
ATOL = 1e-5


def random_lengths(rng, batch, steps):
    """Lengths in [1, steps], with a row of full length and (when B > 1)
    another row of length 1."""
    lengths = rng.integers(1, steps + 1, size=batch)
    rows = rng.permutation(batch)
    lengths[rows[0]] = steps
    if batch > 1:
        lengths[rows[1]] = 1
    return lengths.astype(np.int32)


def torch_packed(torch, module, x, lengths):
    """The module on packed sequences: (padded outputs, final states)."""
    pack = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.from_numpy(lengths.astype(np.int64)), batch_first=True,
        enforce_sorted=False)
    with torch.no_grad():
        out, state = module(pack)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(
        out, batch_first=True, total_length=x.shape[1])
    return out, state


def body(ck, work):
    torch = mc_e2e.import_torch()
    rng = np.random.default_rng(1)
    model = mc_e2e.model_path("rnn_stack.model")
    # label, -D, n_in, n_hidden, n_layers, n_directions, [(B, T)], -O
    configs = [
        ("default", None, 8, 16, 2, 2, [(6, 9), (1, 1), (4, 1), (5, 60)], 2),
        ("odd", {"n_in": 5, "n_hidden": 7, "n_layers": 3}, 5, 7, 3, 2,
         [(7, 11)], 0),
        ("unidirectional", {"n_directions": 1}, 8, 16, 2, 1, [(5, 8)], 2),
    ]
    for seed, (label, defines, n_in, n_hidden, n_layers, n_dir, shapes,
               opt) in enumerate(configs):
        torch.manual_seed(seed)
        kw = dict(num_layers=n_layers, bidirectional=n_dir == 2,
                  batch_first=True)
        lstm = torch.nn.LSTM(n_in, n_hidden, **kw).eval()
        gru = torch.nn.GRU(n_in, n_hidden, **kw).eval()
        state = {"lstm." + k: v for k, v in lstm.state_dict().items()}
        state.update({"gru." + k: v for k, v in gru.state_dict().items()})
        weights = work.path(label, "rnn_stack.safetensors")
        mc_e2e.write_safetensors(weights, state)
        prog = mc_e2e.compile_model(model, work.path(label, "rnn_stack"),
                                    defines=defines, weights=weights, opt=opt)
        for batch, steps in shapes:
            lengths = random_lengths(rng, batch, steps)
            x = torch.randn(batch, steps, n_in)
            pad = np.arange(steps)[None, :] >= lengths[:, None]   # [B, T]
            x[torch.from_numpy(pad)] = 0.0
            out, (h_n, c_n) = torch_packed(torch, lstm, x, lengths)
            gout, gh = torch_packed(torch, gru, x, lengths)
            want = {"out": out, "h_n": h_n, "c_n": c_n, "gru_out": gout,
                    "gru_h_n": gh}
            tag = "%s B=%d T=%d -O%d" % (label, batch, steps, opt)
            print("%s: lengths %s" % (tag, lengths.tolist()))
            key = "%d_%d" % (batch, steps)
            _, got = mc_e2e.run_program(
                prog, {"x": mc_e2e.to_numpy(x), "lengths": lengths},
                work.path(label, "out_" + key), work, weights=weights)
            if (batch, steps) == shapes[0]:
                mc_e2e.check_threads(ck, tag, prog,
                                     {"x": mc_e2e.to_numpy(x), "lengths": lengths},
                                     work, weights=weights, base=got)
            for name, ref in want.items():
                if ck.check("%s: output %s present" % (tag, name), name in got,
                            "outputs: %s" % sorted(got)):
                    ck.close("%s: %s" % (tag, name), got[name],
                             mc_e2e.to_numpy(ref.contiguous()), RTOL, ATOL)
            for name in ("out", "gru_out"):
                if name in got:
                    nonzero = int(np.count_nonzero(got[name][pad]))
                    ck.check("%s: %s is 0 at the %d padded positions" % (
                        tag, name, int(pad.sum())), nonzero == 0,
                        "%d nonzero values" % nonzero)
            if not pad.any():
                continue
            # Garbage in the padding: every output keeps its bits.
            x_junk = mc_e2e.to_numpy(x).copy()
            x_junk[pad] = rng.normal(0, 100, size=(int(pad.sum()), n_in))
            _, junk = mc_e2e.run_program(
                prog, {"x": x_junk, "lengths": lengths},
                work.path(label, "junk_" + key), work, weights=weights)
            for name in want:
                if name in got and name in junk:
                    ck.bits_equal("%s: %s unchanged by junk in the padding" % (
                        tag, name), junk[name], got[name])


if __name__ == "__main__":
    mc_e2e.main("test_lstm_stack", body)
