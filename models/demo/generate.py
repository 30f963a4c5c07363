"""The GPT-2 demo's text <-> tokens: one token per byte (the demo model's
vocabulary is the 256 byte values; see models/train/train_gpt2.py).

    generate.py encode TEXT OUT.npy          # int32 [len(TEXT bytes)]
    generate.py decode TOKENS.npy N.npy      # prints the first N tokens as text
"""
import sys

import numpy as np


def main(argv):
    if len(argv) == 4 and argv[1] == "encode":
        np.save(argv[3], np.frombuffer(argv[2].encode(), dtype=np.uint8).astype(np.int32))
        return 0
    if len(argv) == 4 and argv[1] == "decode":
        tokens = np.load(argv[2])[:int(np.load(argv[3]))]
        sys.stdout.write(bytes(tokens.astype(np.uint8).tolist()).decode(errors="replace"))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
