#!/bin/sh
# The benchmark (the equivalent of `make bench`): builds build/modelc when it
# is missing, then compares the programs modelc generates with PyTorch (eager,
# Debian's python3-torch on OpenBLAS) in one run: GPT-2 small prompt logits
# and KV-cache decoding, a Transformer encoder layer, BiLSTM-CRF decoding, an
# activation chain, square sgemm, and the machine (triad bandwidth, OpenBLAS
# sgemm, the runtime's code size). Each row at 1 and 2 threads (modelc:
# MC_THREADS; torch: set_num_threads). Prints a table, writes
# bench/results.csv. bench/bench.py's docstring gives an overview; the
# docstrings of bench/cases.py (the rows), measure.py (what is timed and how),
# machine.py (row 7) and report.py (metrics, check, CSV) the details.
#
# Arguments go to bench/bench.py:
#   --quick          small sizes, 1 run: a smoke check (about 1-2 minutes)
#   --runs N         timed runs per measurement (default 5)
#   --cases a,b      case keys or row numbers (gpt2_128, gpt2_decode, 6, ...)
#   --threads 1,2    thread counts
#   --csv PATH, --keep
# The full run takes about 10-15 minutes on 2 idle cores.
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
