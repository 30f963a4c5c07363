#!/bin/sh
# The benchmark (the equivalent of `make bench`): builds build/modelc when it
# is missing, then compares the programs modelc generates with PyTorch, in one
# run. Arguments go to bench/bench.py (--quick, --runs N, --cases a,b, --keep).
# Not part of the test suite; about 10 minutes on 2 cores.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
# MODELC=path/to/modelc uses that compiler instead and builds nothing.
if [ -z "${MODELC:-}" ]; then
  build=$root/build
  if [ ! -x "$build/modelc" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build "$build" -j"$(nproc)" --target modelc
  fi
  MODELC=$build/modelc
fi
export MODELC
exec /usr/bin/python3 "$root/bench/bench.py" "$@"
