"""models/transformer_encoder.model against torch.nn.TransformerEncoder.

Reference: TransformerEncoder(TransformerEncoderLayer(d_model, nhead,
dim_feedforward, dropout=0.0, batch_first=True), num_layers).eval() under
no_grad, with enable_nested_tensor=False so that padded query rows are
computed, not zero-filled (the nested-tensor fast path returns 0 there; the
non-padded rows are checked against that path too).
Tolerance: |got - ref| <= 1e-4 + 1e-5 * |ref| (float32; outputs are layer
normalized, O(1)).
Two configurations (the model's defaults, and a -D one), each without the pad
input (absent = nothing padded) and with a key padding mask; with the mask,
-O2 (attention leaves out each sequence's padded tail) equals -O0 bit for bit,
on 1, 2 and 3 threads.
"""
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402

RTOL = 1e-5
ATOL = 1e-4


def torch_encoder(torch, d_model, nhead, dim_feedforward, num_layers, seed,
                  nested=False):
    torch.manual_seed(seed)
    layer = torch.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward,
                                             dropout=0.0, batch_first=True)
    enc = torch.nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=nested)
    # Non-trivial biases and norm parameters, so every weight matters.
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.2, 0.2)
            elif "norm" in name:
                p.uniform_(0.5, 1.5)
    return enc.eval()


def padding_mask(batch, length):
    """Sequence b has its last 2*b tokens padded (never all of them)."""
    pad = np.zeros((batch, length), dtype=np.bool_)
    for b in range(1, batch):
        pad[b, length - min(2 * b, length - 1):] = True
    return pad


def body(ck, work):
    torch = mc_e2e.import_torch()
    warnings.filterwarnings("ignore", message=".*nested tensors.*")
    model = mc_e2e.model_path("transformer_encoder.model")
    configs = [
        # label, -D defines, (d_model, nhead, dim_feedforward, num_layers), (B, T)
        ("default", None, (64, 4, 128, 2), (2, 7)),
        ("small", {"d_model": 32, "nhead": 2, "dim_feedforward": 48, "num_layers": 3},
         (32, 2, 48, 3), (3, 5)),
    ]
    for seed, (label, defines, dims, (batch, length)) in enumerate(configs):
        enc = torch_encoder(torch, *dims, seed=seed)
        weights = work.path(label, "encoder.safetensors")
        state = enc.state_dict()
        mc_e2e.write_safetensors(weights, state)
        print("config %s: d_model=%d nhead=%d dim_feedforward=%d num_layers=%d; "
              "x [%d, %d, %d]; %d tensors" % (label, *dims, batch, length, dims[0], len(state)))

        prog = mc_e2e.compile_model(model, work.path(label, "encoder"), defines=defines,
                                    weights=weights, opt=2)
        x = torch.randn(batch, length, dims[0])
        pad = padding_mask(batch, length)
        with torch.no_grad():
            want_plain = mc_e2e.to_numpy(enc(x))
            want_pad = mc_e2e.to_numpy(enc(x, src_key_padding_mask=torch.from_numpy(pad)))
            nested = torch_encoder(torch, *dims, seed=seed, nested=True)
            nested.load_state_dict(state)
            want_nested = mc_e2e.to_numpy(
                nested(x, src_key_padding_mask=torch.from_numpy(pad)))
        x = mc_e2e.to_numpy(x)

        _, out = mc_e2e.run_program(prog, {"x": x}, work.path(label, "out"), work,
                                    weights=weights)
        if ck.check("%s: no pad input: output y present" % label, "y" in out):
            ck.close("%s: no pad input: y" % label, out["y"], want_plain, RTOL, ATOL)

        _, out = mc_e2e.run_program(prog, {"x": x, "pad": pad}, work.path(label, "out_pad"),
                                    work, weights=weights)
        if ck.check("%s: with pad (%d of %d padded): output y present"
                    % (label, pad.sum(), pad.size), "y" in out):
            ck.close("%s: with pad: y" % label, out["y"], want_pad, RTOL, ATOL)
            keep = ~pad
            ck.close("%s: with pad: y at non-padded positions vs the nested-tensor path"
                     % label, out["y"][keep], want_nested[keep], RTOL, ATOL)
        mc_e2e.check_threads(ck, label + " with pad", prog, {"x": x, "pad": pad}, work,
                             weights=weights, base=out)
        # -O0 computes every key's score, masked; -O2's attention leaves out
        # each sequence's padded tail: the same bits
        o0 = mc_e2e.compile_model(model, work.path(label, "encoder_O0"), defines=defines,
                                  weights=weights, opt=0)
        _, out_o0 = mc_e2e.run_program(o0, {"x": x, "pad": pad}, work.path(label, "out_O0"),
                                       work, weights=weights)
        if "y" in out_o0 and "y" in out:
            ck.bits_equal("%s: with pad: -O2 y = -O0's" % label, out["y"], out_o0["y"])

        # An all-false mask given explicitly equals the absent input.
        _, out = mc_e2e.run_program(prog, {"x": x, "pad": np.zeros_like(pad)},
                                    work.path(label, "out_nopad"), work, weights=weights)
        if ck.check("%s: all-false pad: output y present" % label, "y" in out):
            ck.close("%s: all-false pad: y" % label, out["y"], want_plain, RTOL, ATOL)


if __name__ == "__main__":
    mc_e2e.main("test_transformer_encoder", body)
