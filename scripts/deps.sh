#!/usr/bin/env bash
# Installs the Debian 12 packages modelc needs, and only those missing.
#
#   bash scripts/deps.sh          # to build and run the demo
#   bash scripts/deps.sh --test   # also what the tests need (PyTorch, numpy, ...)
#
# Non-interactive; runs apt-get as root, or through sudo when not root.
set -euo pipefail

build_packages=(build-essential cmake pkg-config llvm-14-dev clang-14 libyaml-dev
                re2c lemon libcriterion-dev)
test_packages=(python3-torch python3-numpy python3-yaml libopenblas0 clang)

wanted=("${build_packages[@]}")
if [[ "${1:-}" == "--test" ]]; then
  wanted+=("${test_packages[@]}")
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
  exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
