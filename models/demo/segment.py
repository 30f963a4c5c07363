"""Text <-> .npy for the word-segmentation demo (models/bilstm_crf.model with
models/demo/segmenter.safetensors, trained by models/train/train_segmenter.py).

The tagger reads text with its spaces removed, one token per byte of UTF-8
(n_vocab = 256), and tags each byte B, M, E or S (0..3): the beginning, the
middle or the end of a word of several bytes, or a word of a single byte. A
space goes back in before every B and S but the first.

    segment.py encode TEXT [-o DIR]   # writes DIR/tokens.npy (int32 [1, T]) and
                                      # DIR/lengths.npy (int32 [1]) for TEXT
                                      # without its whitespace, and prints that
    segment.py decode TAGS.npy TEXT   # prints TEXT (whitespace removed) with a
                                      # space before each B or S

Needs numpy only; run it with Debian's /usr/bin/python3.
"""
import argparse
import os
import sys

import numpy as np

TAGS = "BMES"
B, M, E, S = range(4)


def squeeze(text):
    """The bytes of text (a str) without whitespace."""
    return "".join(text.split()).encode("utf-8")


def tags_of(words):
    """The B/M/E/S tag of every byte of the concatenated words (bytes)."""
    tags = []
    for w in words:
        if len(w) == 1:
            tags.append(S)
        else:
            tags += [B] + [M] * (len(w) - 2) + [E]
    return tags


def insert_spaces(data, tags):
    """data (bytes) with a space before every byte tagged B or S but the
    first; tags holds at least len(data) values."""
    out = bytearray()
    for i, byte in enumerate(data):
        if i > 0 and tags[i] in (B, S):
            out += b" "
        out.append(byte)
    return out.decode("utf-8", errors="replace")


def encode(args):
    data = squeeze(args.text)
    if not data:
        sys.exit("segment.py: the text has nothing but whitespace")
    os.makedirs(args.o, exist_ok=True)
    tokens = np.frombuffer(data, dtype=np.uint8).astype(np.int32)[None, :]
    np.save(os.path.join(args.o, "tokens.npy"), tokens)
    np.save(os.path.join(args.o, "lengths.npy"), np.array([len(data)], np.int32))
    print(data.decode("utf-8", errors="replace"))


def decode(args):
    data = squeeze(args.text)
    tags = np.load(args.tags, allow_pickle=False)
    if tags.ndim != 2 or tags.shape[0] != 1 or tags.shape[1] < len(data):
        sys.exit("segment.py: %s has shape %s, expected [1, %d]"
                 % (args.tags, tags.shape, len(data)))
    print(insert_spaces(data, tags[0].tolist()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode", help="text -> tokens.npy, lengths.npy")
    enc.add_argument("text")
    enc.add_argument("-o", default=".", help="output directory (default .)")
    dec = sub.add_parser("decode", help="tags.npy + text -> text with spaces")
    dec.add_argument("tags")
    dec.add_argument("text")
    args = ap.parse_args()
    if args.command == "encode":
        encode(args)
    else:
        decode(args)


if __name__ == "__main__":
    main()
