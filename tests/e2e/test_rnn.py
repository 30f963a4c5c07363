"""models/rnn.model (LSTM, reversed LSTM and GRU written with `scan`)
against torch.nn.LSTM and torch.nn.GRU (batch_first=True).

Tolerance: |got - ref| <= 1e-5 + 1e-5 * |ref| (float32; the gate sums are
accumulated in another order than PyTorch's, and the error of each step
carries into the next, so long sequences are part of the check).
Covers: the default sizes and an odd -D configuration, T = 1, a long
sequence, -O0 and -O2, the reverse direction (torch's `_reverse` weights of
a bidirectional LSTM, whose backward half runs t = T-1 .. 0).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

RTOL = 1e-5
ATOL = 1e-5


def body(ck, work):
    torch = mc_e2e.import_torch()
    model = mc_e2e.model_path("rnn.model")
    configs = [
        ("default", None, 8, 16, [(3, 5), (1, 1), (2, 40)], 2),
        ("odd", {"n_in": 5, "n_hidden": 7}, 5, 7, [(4, 9)], 0),
    ]
    for seed, (label, defines, n_in, n_hidden, shapes, opt) in enumerate(configs):
        torch.manual_seed(seed)
        lstm = torch.nn.LSTM(n_in, n_hidden, batch_first=True,
                             bidirectional=True).eval()
        gru = torch.nn.GRU(n_in, n_hidden, batch_first=True).eval()
        state = {}
        for k, v in lstm.state_dict().items():
            state["lstm_reverse." + k[:-len("_reverse")] if k.endswith("_reverse")
                  else "lstm." + k] = v
        for k, v in gru.state_dict().items():
            state["gru." + k] = v
        weights = work.path(label, "rnn.safetensors")
        mc_e2e.write_safetensors(weights, state)
        prog = mc_e2e.compile_model(model, work.path(label, "rnn"), defines=defines,
                                    weights=weights, opt=opt)
        for batch, steps in shapes:
            x = torch.randn(batch, steps, n_in)
            with torch.no_grad():
                out2, (h2, c2) = lstm(x)
                gout, gh = gru(x)
            H = n_hidden
            want = {
                "out": out2[..., :H], "h_n": h2[0:1], "c_n": c2[0:1],
                "out_reverse": out2[..., H:], "h_n_reverse": h2[1:2],
                "gru_out": gout, "gru_h_n": gh,
            }
            tag = "%s B=%d T=%d -O%d" % (label, batch, steps, opt)
            _, got = mc_e2e.run_program(prog, {"x": mc_e2e.to_numpy(x)},
                                        work.path(label, "out_%d_%d" % (batch, steps)),
                                        work, weights=weights)
            for name, ref in want.items():
                if ck.check("%s: output %s present" % (tag, name), name in got,
                            "outputs: %s" % sorted(got)):
                    ck.close("%s: %s" % (tag, name), got[name],
                             mc_e2e.to_numpy(ref.contiguous()), RTOL, ATOL)
            if (batch, steps) == shapes[0]:
                mc_e2e.check_threads(ck, tag, prog, {"x": mc_e2e.to_numpy(x)}, work,
                                     weights=weights, base=got)


if __name__ == "__main__":
    mc_e2e.main("test_rnn", body)
