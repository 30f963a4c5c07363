"""Trains the demo's word segmenter: a byte-level BiLSTM-CRF that re-inserts
the spaces of English text written without them, on the licenses every Debian
machine has (/usr/share/common-licenses), with Debian's python3-torch. Writes
models/demo/segmenter.safetensors with the weight names and layouts of
models/bilstm_crf.model, compiled at

    -D n_vocab=256 -D n_embd=32 -D n_hidden=64 -D n_tags=4

    /usr/bin/python3 models/train/train_segmenter.py [--epochs N]

Data: the licenses' paragraphs split into sentences (after . ! ? ; :), long
ones cut into pieces of at most 20 words, duplicates removed; a piece whose
CRC-32 ends in 0 (mod 10) is held out (tests/e2e/test_segmenter.py reads the
same split through held_out_pieces()). Each piece loses its spaces and every
byte is tagged B, M, E or S (models/demo/segment.py). Training minimises the
CRF's negative log-likelihood (the forward algorithm) with Adam; the LSTM
reads packed sequences, as the compiled model does. Seeded: the same machine
and torch version give the same weights. About 5 minutes on 2 busy cores
(one torch thread: more made it several times slower there).
"""
import argparse
import glob
import os
import re
import sys
import time
import zlib

import numpy as np
import torch

import safetensors_io

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "demo"))
import segment  # noqa: E402

CONFIG = dict(n_vocab=256, n_embd=32, n_hidden=64, n_tags=4)
MAX_WORDS = 20


def pieces():
    """The corpus: sorted unique pieces of text, words separated by one space."""
    paths = sorted(p for p in glob.glob("/usr/share/common-licenses/*")
                   if os.path.isfile(p) and not os.path.islink(p))
    found = set()
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for paragraph in re.split(r"\n\s*\n", text):
            for sentence in re.split(r"(?<=[.!?;:])\s+", " ".join(paragraph.split())):
                words = sentence.split()
                for i in range(0, len(words), MAX_WORDS):
                    if len(words[i:i + MAX_WORDS]) >= 2:
                        found.add(" ".join(words[i:i + MAX_WORDS]))
    return sorted(found)


def is_held_out(piece):
    return zlib.crc32(piece.encode("utf-8")) % 10 == 0


def held_out_pieces():
    return [p for p in pieces() if is_held_out(p)]


def example(piece):
    """(bytes without spaces, their B/M/E/S tags) of a piece."""
    words = [w.encode("utf-8") for w in piece.split()]
    return b"".join(words), segment.tags_of(words)


def batch_arrays(examples):
    """tokens, lengths, tags as int64 tensors; padding holds 0."""
    T = max(len(data) for data, _ in examples)
    tokens = np.zeros((len(examples), T), np.int64)
    tags = np.zeros((len(examples), T), np.int64)
    for b, (data, tag) in enumerate(examples):
        tokens[b, :len(data)] = np.frombuffer(data, np.uint8)
        tags[b, :len(data)] = tag
    lengths = np.array([len(data) for data, _ in examples], np.int64)
    return torch.from_numpy(tokens), torch.from_numpy(lengths), torch.from_numpy(tags)


class BiLstmCrf(torch.nn.Module):
    """models/bilstm_crf.model in PyTorch, with its state_dict() names."""

    def __init__(self, n_vocab, n_embd, n_hidden, n_tags):
        super().__init__()
        self.embedding = torch.nn.Embedding(n_vocab, n_embd)
        self.lstm = torch.nn.LSTM(n_embd, n_hidden, bidirectional=True, batch_first=True)
        self.hidden2tag = torch.nn.Linear(2 * n_hidden, n_tags)
        self.crf = torch.nn.Module()
        self.crf.start_transitions = torch.nn.Parameter(torch.zeros(n_tags))
        self.crf.end_transitions = torch.nn.Parameter(torch.zeros(n_tags))
        # transitions[i, j] scores a move from tag i to tag j.
        self.crf.transitions = torch.nn.Parameter(torch.zeros(n_tags, n_tags))

    def emissions(self, tokens, lengths):
        rnn = torch.nn.utils.rnn
        packed = rnn.pack_padded_sequence(self.embedding(tokens), lengths,
                                          batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = rnn.pad_packed_sequence(out, batch_first=True,
                                         total_length=tokens.shape[1])
        return self.hidden2tag(out)

    def nll(self, tokens, lengths, tags):
        """[B]: log Z - score(tags), as the model's nll entry."""
        e = self.emissions(tokens, lengths)
        B, T, _ = e.shape
        crf = self.crf
        mask = torch.arange(T)[None, :] < lengths[:, None]
        rows = torch.arange(B)
        alpha = crf.start_transitions + e[:, 0]
        score = crf.start_transitions[tags[:, 0]] + e[rows, 0, tags[:, 0]]
        for t in range(1, T):
            nxt = torch.logsumexp(alpha[:, :, None] + crf.transitions, dim=1) + e[:, t]
            alpha = torch.where(mask[:, t, None], nxt, alpha)
            step = crf.transitions[tags[:, t - 1], tags[:, t]] + e[rows, t, tags[:, t]]
            score = score + torch.where(mask[:, t], step, torch.zeros_like(step))
        score = score + crf.end_transitions[tags[rows, lengths - 1]]
        return torch.logsumexp(alpha + crf.end_transitions, dim=1) - score

    @torch.no_grad()
    def decode(self, tokens, lengths):
        """Viterbi paths, a list of lists of tags."""
        e = self.emissions(tokens, lengths)
        crf = self.crf
        paths = []
        for b in range(e.shape[0]):
            score, backpointers = crf.start_transitions + e[b, 0], []
            for t in range(1, int(lengths[b])):
                score, bp = (score[:, None] + crf.transitions).max(dim=0)
                score = score + e[b, t]
                backpointers.append(bp)
            path = [int((score + crf.end_transitions).argmax())]
            for bp in reversed(backpointers):
                path.append(int(bp[path[-1]]))
            paths.append(path[::-1])
        return paths


def boundaries(tags):
    """The positions before which a word starts (a space goes), but 0."""
    return {i for i, t in enumerate(tags) if i > 0 and t in (segment.B, segment.S)}


def score(gold_tags, got_tags):
    """(tag accuracy, boundary precision, recall, F1, sentences all right)."""
    right = total = tp = n_gold = n_got = exact = 0
    for gold, got in zip(gold_tags, got_tags):
        right += sum(g == h for g, h in zip(gold, got))
        total += len(gold)
        g, h = boundaries(gold), boundaries(got)
        tp += len(g & h)
        n_gold += len(g)
        n_got += len(h)
        exact += g == h
    p, r = tp / max(n_got, 1), tp / max(n_gold, 1)
    return right / total, p, r, 2 * p * r / max(p + r, 1e-12), exact / len(gold_tags)


def evaluate(model, examples, batch_size=64):
    got = []
    for i in range(0, len(examples), batch_size):
        got += model.decode(*batch_arrays(examples[i:i + batch_size])[:2])
    return score([tag for _, tag in examples], got)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    # One thread: on busy cores two threads made an epoch 8x slower.
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "demo", "segmenter.safetensors"))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(1)
    corpus = pieces()
    train = [example(p) for p in corpus if not is_held_out(p)]
    held = [example(p) for p in corpus if is_held_out(p)]
    print("%d pieces for training (%d bytes), %d held out" % (
        len(train), sum(len(d) for d, _ in train), len(held)), flush=True)
    model = BiLstmCrf(**CONFIG)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    steps = args.epochs * -(-len(train) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps,
                                                pct_start=0.1)
    start = time.time()
    for epoch in range(args.epochs):
        # Batches of similar lengths waste less time on padding.
        order = np.argsort([len(d) + rng.uniform(0, 20) for d, _ in train])
        batches = [order[i:i + args.batch] for i in range(0, len(order), args.batch)]
        total = 0.0
        for k in rng.permutation(len(batches)):
            tokens, lengths, tags = batch_arrays([train[i] for i in batches[k]])
            loss = model.nll(tokens, lengths, tags).sum() / lengths.sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += loss.item() * len(batches[k])
        line = "epoch %2d  nll/byte %.4f" % (epoch, total / len(train))
        if epoch % 5 == 4 or epoch == args.epochs - 1:
            acc, p, r, f1, exact = evaluate(model, held)
            line += "  held out: tags %.4f  boundary F1 %.4f  sentences %.3f" % (acc, f1, exact)
        print(line + "  (%.0f s)" % (time.time() - start), flush=True)
    acc, p, r, f1, exact = evaluate(model, held)
    print("held out (%d pieces): tag accuracy %.4f, boundary precision %.4f recall %.4f "
          "F1 %.4f, pieces segmented exactly %.3f" % (len(held), acc, p, r, f1, exact))
    tensors = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    safetensors_io.save(args.out, tensors, metadata={
        "format": "pt", "trained_on": "/usr/share/common-licenses",
        "config": " ".join("-D %s=%d" % kv for kv in CONFIG.items())})
    print("wrote %s (%d tensors, %.2f MB)" % (args.out, len(tensors), os.path.getsize(args.out) / 1e6))


if __name__ == "__main__":
    main()
