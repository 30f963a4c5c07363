"""Trains the demo's byte-level GPT-2 on the licenses every Debian machine
has (/usr/share/common-licenses), with Debian's python3-torch, and writes
models/demo/gpt2_bytes.safetensors in Hugging Face's GPT-2 layout.

    /usr/bin/python3 models/train/train_gpt2.py [--steps N]

The architecture is GPT-2's (models/gpt2.model) at a small size: vocabulary
256 (one token per byte, so no tokenizer files are needed), context 128,
3 layers, 4 heads, width 128. Seeded: the same machine and torch version give
the same weights. About 15 minutes on 2 cores.
"""
import argparse
import glob
import math
import os
import time

import numpy as np
import torch

import safetensors_io

CONFIG = dict(n_layer=3, n_head=4, n_embd=128, n_vocab=256, n_ctx=128)
HERE = os.path.dirname(os.path.abspath(__file__))


def corpus():
    paths = sorted(p for p in glob.glob("/usr/share/common-licenses/*")
                   if os.path.isfile(p) and not os.path.islink(p))
    return b"\n".join(open(p, "rb").read() for p in paths)


class GPT2(torch.nn.Module):
    """GPT-2 with Conv1D weights stored [in, out] as Hugging Face does."""

    def __init__(self, n_layer, n_head, n_embd, n_vocab, n_ctx):
        super().__init__()
        self.n_head = n_head
        p = torch.nn.Parameter
        self.wte = torch.nn.Embedding(n_vocab, n_embd)
        self.wpe = torch.nn.Embedding(n_ctx, n_embd)
        self.h = torch.nn.ModuleList()
        for _ in range(n_layer):
            blk = torch.nn.Module()
            blk.ln_1 = torch.nn.LayerNorm(n_embd)
            blk.ln_2 = torch.nn.LayerNorm(n_embd)
            blk.attn = torch.nn.Module()
            blk.attn.c_attn = torch.nn.Module()
            blk.attn.c_attn.weight = p(torch.randn(n_embd, 3 * n_embd) * 0.02)
            blk.attn.c_attn.bias = p(torch.zeros(3 * n_embd))
            blk.attn.c_proj = torch.nn.Module()
            blk.attn.c_proj.weight = p(torch.randn(n_embd, n_embd) * 0.02 / math.sqrt(2 * n_layer))
            blk.attn.c_proj.bias = p(torch.zeros(n_embd))
            blk.mlp = torch.nn.Module()
            blk.mlp.c_fc = torch.nn.Module()
            blk.mlp.c_fc.weight = p(torch.randn(n_embd, 4 * n_embd) * 0.02)
            blk.mlp.c_fc.bias = p(torch.zeros(4 * n_embd))
            blk.mlp.c_proj = torch.nn.Module()
            blk.mlp.c_proj.weight = p(torch.randn(4 * n_embd, n_embd) * 0.02 / math.sqrt(2 * n_layer))
            blk.mlp.c_proj.bias = p(torch.zeros(n_embd))
            self.h.append(blk)
        self.ln_f = torch.nn.LayerNorm(n_embd)
        torch.nn.init.normal_(self.wte.weight, std=0.02)
        torch.nn.init.normal_(self.wpe.weight, std=0.01)

    def forward(self, tokens):  # [B, T] -> [B, T, vocab]
        B, T = tokens.shape
        x = self.wte(tokens) + self.wpe(torch.arange(T))
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        for blk in self.h:
            a = blk.ln_1(x)
            qkv = a @ blk.attn.c_attn.weight + blk.attn.c_attn.bias
            q, k, v = qkv.split(x.shape[-1], dim=-1)
            q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
            s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            s = s.masked_fill(~causal, float("-inf"))
            a = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, -1)
            x = x + a @ blk.attn.c_proj.weight + blk.attn.c_proj.bias
            m = blk.ln_2(x) @ blk.mlp.c_fc.weight + blk.mlp.c_fc.bias
            m = torch.nn.functional.gelu(m, approximate="tanh")
            x = x + m @ blk.mlp.c_proj.weight + blk.mlp.c_proj.bias
        return self.ln_f(x) @ self.wte.weight.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "demo", "gpt2_bytes.safetensors"))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    data = torch.tensor(np.frombuffer(corpus(), dtype=np.uint8).astype(np.int64))
    model = GPT2(**CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(1)
    T, B = CONFIG["n_ctx"], 8
    start = time.time()
    for step in range(args.steps):
        lr = 3e-3 * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, len(data) - T - 1, (B,), generator=g)
        batch = torch.stack([data[i:i + T + 1] for i in idx])
        logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            print("step %5d  loss %.3f  (%.0f s)" % (step, loss.item(), time.time() - start), flush=True)
    tensors = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    safetensors_io.save(args.out, tensors, metadata={"format": "pt", "trained_on": "/usr/share/common-licenses"})
    print("wrote %s (%d tensors, %.1f MB)" % (args.out, len(tensors), os.path.getsize(args.out) / 1e6))


if __name__ == "__main__":
    main()
