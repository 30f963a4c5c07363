#!/usr/bin/env bash
# Runs every test: installs what is missing (with the test dependencies),
# builds build/ (RelWithDebInfo) and build-san/ (AddressSanitizer and
# UndefinedBehaviorSanitizer, also applied to the programs the end-to-end
# tests generate). build-san runs the whole suite but GPT-2 small (500 MB of
# weights through ASan adds minutes and no coverage the tiny GPT-2 lacks);
# build/ runs the unit tests but those that compile programs by the dozen
# (test_codegen, test_codegen_data, test_decode_ops: their sanitized runs
# check the same code and more), and the end-to-end tests whose point is the optimized,
# unsanitized build: bit-exact activations at -O0/-O2, GPT-2 small, the demo
# GPT-2's generation and decoding with 16-bit weights (the sanitized runs of
# seq2seq and gpt2_generate cover fewer configurations), the LLVM backend's
# optimized programs and JIT against the C backend's, bit for bit, the
# gradients' -O2 programs of both backends (build-san checks their unfused
# C kernels), and test_valgrind (generated programs under valgrind:
# unsanitized only). test_cli runs once, in build-san: it checks modelc's
# command line, whose code the sanitizers watch there.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh --test

status=0
for dir in build build-san; do
  san=OFF
  [[ $dir == build-san ]] && san=ON
  echo "=== $dir (MC_SANITIZE=$san)"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMC_SANITIZE=$san >/dev/null
  cmake --build "$dir" -j2
  if [[ $dir == build ]]; then
    select=(-E '^(e2e_|test_codegen$|test_codegen_data$|test_decode_ops$)')
    extra=(-R '^e2e_test_(activations|gpt2_small|gpt2_generate|grad|llvm|valgrind)$')
  else
    select=(-E '^e2e_test_gpt2_small$')
    extra=()
  fi
  if ! (cd "$dir" && ctest --output-on-failure -j2 "${select[@]}" &&
        { [[ ${#extra[@]} -eq 0 ]] || ctest --output-on-failure -j2 "${extra[@]}"; }); then
    echo "=== $dir: FAILED"
    status=1
  fi
done

if [[ $status -eq 0 ]]; then
  echo "=== all tests passed (build, build-san)"
fi
exit $status
