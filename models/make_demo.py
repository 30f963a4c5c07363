"""Makes the demo's weights and input (run by hand; the outputs are committed):

  /usr/bin/python3 models/make_demo.py

models/demo/transformer_encoder.safetensors  a small torch.nn.TransformerEncoder
                                             (d_model=32, nhead=4, dim_feedforward=64,
                                             num_layers=2), seeded
models/demo/x.npy                            an input batch [2, 5, 32]
models/demo/y_ref.npy                        PyTorch's output on it, for scripts/demo.sh

The demo compiles models/transformer_encoder.model with the same -D values
(scripts/demo.sh lists them). Deterministic: the same files on every run.
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from mc_e2e import write_safetensors  # noqa: E402

CONFIG = {"d_model": 32, "nhead": 4, "dim_feedforward": 64, "num_layers": 2}
BATCH, LENGTH = 2, 5


def main():
    torch.manual_seed(20240)
    torch.set_num_threads(1)
    layer = torch.nn.TransformerEncoderLayer(CONFIG["d_model"], CONFIG["nhead"],
                                             CONFIG["dim_feedforward"], dropout=0.0,
                                             batch_first=True)
    encoder = torch.nn.TransformerEncoder(layer, CONFIG["num_layers"],
                                          enable_nested_tensor=False).eval()
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.2, 0.2)
        x = torch.randn(BATCH, LENGTH, CONFIG["d_model"])
        y = encoder(x)

    out = os.path.join(HERE, "demo")
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "transformer_encoder.safetensors"),
                      encoder.state_dict(),
                      metadata={"made_by": "models/make_demo.py",
                                "config": " ".join("%s=%d" % kv for kv in CONFIG.items())})
    np.save(os.path.join(out, "x.npy"), x.numpy())
    np.save(os.path.join(out, "y_ref.npy"), y.numpy())
    for f in sorted(os.listdir(out)):
        print("%-36s %7d bytes" % (os.path.join("models/demo", f),
                                   os.path.getsize(os.path.join(out, f))))


if __name__ == "__main__":
    main()
