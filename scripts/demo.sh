#!/usr/bin/env bash
# The quick start: installs what is missing, builds modelc into build/, then
#  1. compiles models/gpt2_generate.model with the weights of a small GPT-2
#     trained on this machine's licenses (models/train/train_gpt2.py) and has
#     it continue a prompt, one byte per token, greedily and sampled;
#  2. compiles models/transformer_encoder.model with the demo weights, runs it
#     on the demo input and compares with PyTorch's output;
#  3. compiles models/bilstm_crf.model with the segmenter's weights and has it
#     put the spaces back into a sentence written without them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2

# ---- Text generation with GPT-2 -------------------------------------------
# The architecture of GPT-2 (models/lib/gpt2.model) at 3 layers, width 128,
# vocabulary 256 (one token per byte), trained for a few minutes on
# /usr/share/common-licenses. Each new token costs one step through the
# layers: keys and values of earlier tokens stay in a cache.
prompt="This program is free software; you can"
gpt_config=(-D n_layer=3 -D n_head=4 -D n_embd=128 -D n_vocab=256 -D n_ctx=128 -D max_new=80)
gpt_weights=models/demo/gpt2_bytes.safetensors
mkdir -p build/demo
rm -rf build/demo/gpt2
set -x
build/modelc compile models/gpt2_generate.model "${gpt_config[@]}" \
  --weights "$gpt_weights" --emit exe -O2 -o build/demo/gpt2_generate
/usr/bin/python3 models/demo/generate.py encode "$prompt" build/demo/prompt.npy
build/demo/gpt2_generate generate prompt=build/demo/prompt.npy -o build/demo/gpt2/greedy
/usr/bin/python3 -c 'import numpy as np; np.save("build/demo/t.npy", np.float32(0.8)); np.save("build/demo/seed.npy", np.int64(7))'
build/demo/gpt2_generate generate prompt=build/demo/prompt.npy temperature=build/demo/t.npy \
  seed=build/demo/seed.npy -o build/demo/gpt2/sampled
set +x
for how in greedy sampled; do
  printf '%-8s %s' "$how:" "$prompt"
  /usr/bin/python3 models/demo/generate.py decode build/demo/gpt2/$how/tokens.npy \
    build/demo/gpt2/$how/n_tokens.npy | tr '\n' ' '
  echo
done
echo

# ---- A Transformer encoder, compared with PyTorch ---------------------------
# The demo weights were made by models/make_demo.py with this configuration.
config=(-D d_model=32 -D nhead=4 -D dim_feedforward=64 -D num_layers=2)
weights=models/demo/transformer_encoder.safetensors
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

# Compare with PyTorch's output, saved by models/make_demo.py.
/usr/bin/python3 - "$y" models/demo/y_ref.npy <<'PY'
import sys
import numpy as np
y, ref = np.load(sys.argv[1]), np.load(sys.argv[2])
print("max |y - PyTorch| = %.3g over %d values" % (np.abs(y - ref).max(), y.size))
PY

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

# The same model through the LLVM backend's JIT: compiled in memory, no C
# compiler involved, the same tags bit for bit.
set -x
build/modelc run models/bilstm_crf.model "${seg_config[@]}" decode \
  --weights "$seg_weights" tokens=build/demo/segment/tokens.npy \
  lengths=build/demo/segment/lengths.npy -o build/demo/segment/out_jit
set +x
if cmp -s build/demo/segment/out/tags.npy build/demo/segment/out_jit/tags.npy; then
  echo "modelc run (LLVM JIT): the same tags"
else
  echo "modelc run (LLVM JIT): the tags differ" >&2
  exit 1
fi
