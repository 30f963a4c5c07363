"""GPT-2 small at the model's default constants (12 layers, 12 heads, 768,
vocabulary 50257, context 1024): a checkpoint with the exact names, shapes and
extra buffers of Hugging Face's GPT2LMHeadModel `model.safetensors`
("transformer." prefix, attn.bias / attn.masked_bias buffers, lm_head.weight)
compiles without any -D and runs unchanged. The weights are random (no
download); the reference is this suite's own PyTorch GPT-2 (test_gpt2.py).

Tolerance: |got - ref| <= 1e-4 + 1e-4 * |ref| (float32 through 12 layers and a
768-wide, 50257-way head; measured about 6e-5 absolute on logits up to ~30).
The logits on 1, 2 and 3 threads: the same bits.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mc_e2e  # noqa: E402
import test_gpt2  # noqa: E402

CONFIG = dict(n_layer=12, n_head=12, n_embd=768, n_vocab=50257, n_ctx=1024)
RTOL = 1e-4
ATOL = 1e-4


def body(ck, work):
    torch = mc_e2e.import_torch()
    torch.manual_seed(0)
    w = test_gpt2.random_weights(torch, **CONFIG)
    tensors = test_gpt2.checkpoint_lmhead(torch, w, **CONFIG)
    weights = work.path("model.safetensors")
    mc_e2e.write_safetensors(weights, tensors, metadata={"format": "pt"})
    prog = mc_e2e.compile_model(mc_e2e.model_path("gpt2.model"), work.path("gpt2"),
                                weights=weights, opt=2)
    tokens = torch.randint(0, CONFIG["n_vocab"], (12,), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = mc_e2e.to_numpy(test_gpt2.reference_logits(torch, w, tokens, **CONFIG))
    _, out = mc_e2e.run_program(prog, {"tokens": mc_e2e.to_numpy(tokens).astype(np.int64)},
                                work.path("out"), work)
    if ck.check("GPT-2 small: logits present", "logits" in out, "outputs %s" % sorted(out)):
        ck.close("GPT-2 small: logits [12, 50257]", out["logits"], want, RTOL, ATOL)
    mc_e2e.check_threads(ck, "GPT-2 small", prog,
                         {"tokens": mc_e2e.to_numpy(tokens).astype(np.int64)}, work)


if __name__ == "__main__":
    mc_e2e.main("test_gpt2_small", body)
