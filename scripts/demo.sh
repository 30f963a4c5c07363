#!/usr/bin/env bash
# The quick start: installs what is missing, builds modelc into build/,
# compiles models/transformer_encoder.model with the demo weights into a
# standalone program, runs it on the demo input and prints the result; then
# compiles models/bilstm_crf.model with the segmenter's weights and has it put
# the spaces back into a sentence written without them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2

# The demo weights were made by models/make_demo.py with this configuration.
config=(-D d_model=32 -D nhead=4 -D dim_feedforward=64 -D num_layers=2)
weights=models/demo/transformer_encoder.safetensors
mkdir -p build/demo
rm -rf build/demo/out

set -x
build/modelc compile models/transformer_encoder.model "${config[@]}" \
  --weights "$weights" --emit exe -O2 -o build/demo/transformer_encoder
build/demo/transformer_encoder --weights "$weights" x=models/demo/x.npy -o build/demo/out
set +x

# Print y.npy without any Python: a .npy file is a magic string, a header
# length (2 bytes, little endian, format 1.0), a text header with the shape,
# then the float32 values.
y=build/demo/out/y.npy
header_len=$(od -A n -t u2 -j 8 -N 2 "$y" | tr -d ' ')
shape=$(head -c $((10 + header_len)) "$y" | tail -c "$header_len" | sed -n "s/.*'shape': (\([^)]*\)).*/\1/p")
echo "y: float32 [${shape}]"
echo "first values:"
od -A n -t f4 -j $((10 + header_len)) -N 32 -w16 "$y"

# With numpy at hand (the test dependencies), compare with PyTorch's output.
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  /usr/bin/python3 - "$y" models/demo/y_ref.npy <<'PY'
import sys
import numpy as np
y, ref = np.load(sys.argv[1]), np.load(sys.argv[2])
print("max |y - PyTorch| = %.3g over %d values" % (np.abs(y - ref).max(), y.size))
PY
fi

# ---- Word segmentation with a BiLSTM-CRF ---------------------------------
# models/train/train_segmenter.py trained a byte-level BiLSTM-CRF on
# /usr/share/common-licenses to tag each byte of text without spaces B, M, E
# or S (begins, continues or ends a word, or is a word of one byte). The
# sentence below is not in the licenses. models/demo/segment.py turns text
# into tokens.npy and lengths.npy, and the tags back into text with spaces.
sentence="Nothing in this license prevents you from selling copies of the program for a fee."
seg_config=(-D n_vocab=256 -D n_embd=32 -D n_hidden=64 -D n_tags=4)
seg_weights=models/demo/segmenter.safetensors
rm -rf build/demo/segment
echo

set -x
build/modelc compile models/bilstm_crf.model "${seg_config[@]}" \
  --weights "$seg_weights" --emit exe -O2 -o build/demo/bilstm_crf
squeezed=$(/usr/bin/python3 models/demo/segment.py encode "$sentence" -o build/demo/segment)
build/demo/bilstm_crf decode --weights "$seg_weights" tokens=build/demo/segment/tokens.npy \
  lengths=build/demo/segment/lengths.npy -o build/demo/segment/out
set +x
echo "input:  $squeezed"
echo "output: $(/usr/bin/python3 models/demo/segment.py decode build/demo/segment/out/tags.npy "$squeezed")"
