#!/usr/bin/env bash
# Runs every model family's end-to-end test with its generated programs
# under valgrind's memcheck (MC_VALGRIND=1, tests/e2e/mc_e2e.py: the first
# run of each program, built for x86-64-v3; any error or definite/indirect
# leak fails the test): activations, MLP, LSTM/GRU, stacked RNNs, the
# Transformer encoder, GPT-2 (tiny) and its generation, BiLSTM-CRF, seq2seq
# and the losses. Uses the unsanitized build/ (valgrind and ASan do not
# mix), building it if needed. Takes several minutes; CI runs the cheap
# e2e_test_valgrind instead.
#   bash scripts/valgrind.sh [CTEST-REGEX]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind.sh: install valgrind (scripts/deps.sh --test)" >&2; exit 1; }
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMC_SANITIZE=OFF >/dev/null
cmake --build build -j2
families='^e2e_test_(activations|mlp|rnn|lstm_stack|transformer_encoder|gpt2|gpt2_generate|bilstm_crf|seq2seq|losses|valgrind)$'
cd build
MC_VALGRIND=1 ctest --output-on-failure -j2 -R "${1:-$families}"
