#!/bin/sh
# Checks that each function of runtime/mc_vmath.h vectorizes in the loop
#   for (i = 0; i < n; i++) y[i] = f(x[i]);
# under gcc (-fopt-info-vec-optimized) and clang (-Rpass=loop-vectorize), for
# SSE2 (the x86-64 baseline), x86-64-v3 (AVX2) and AVX-512, at -O3 and at
# -O2 -ftree-vectorize, all with -ffp-contract=off. Prints one line per
# compiler and flags; exits 1 if a loop is not vectorized. Run by hand:
#   sh tests/tools/vmath_vectorize.sh [gcc-binary] [clang-binary]
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
gcc=${1:-gcc}
clang=${2:-clang}
functions="mc_expf mc_expm1f mc_logf mc_log1pf mc_tanhf mc_sigmoidf mc_erff"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# one loop per line, so the reports name the function by line number
{
  echo '#include "mc_vmath.h"'
  echo '#include <stddef.h>'
  for f in $functions; do
    echo "void loop_$f(const float *restrict x, float *restrict y, size_t n);"
  done
  for f in $functions; do
    echo "void loop_$f(const float *restrict x, float *restrict y, size_t n) { for (size_t i = 0; i < n; i++) y[i] = $f(x[i]); }"
  done
} >"$tmp/loops.c"
first_line=$((3 + $(echo $functions | wc -w)))

status=0
check() { # compiler-kind compiler flags...
  kind=$1
  cc=$2
  shift 2
  if [ "$kind" = gcc ]; then
    report="-fopt-info-vec-optimized"
    pattern="loop vectorized"
  else
    report="-Rpass=loop-vectorize"
    pattern="vectorized loop"
  fi
  "$cc" -std=c11 -ffp-contract=off -Wall -Wextra -Wpedantic -Werror \
    -I"$root/runtime" "$@" $report -c "$tmp/loops.c" -o "$tmp/loops.o" \
    2>"$tmp/report" || { echo "$cc $*: does not compile"; status=1; return; }
  line=$first_line
  missing=""
  for f in $functions; do
    grep -q "loops.c:$line:.*$pattern" "$tmp/report" || missing="$missing $f"
    line=$((line + 1))
  done
  if [ -z "$missing" ]; then
    echo "$cc $*: all 7 vectorized"
  else
    echo "$cc $*: NOT vectorized:$missing"
    status=1
  fi
}

for isa in "" "-march=x86-64-v3" "-mavx512f"; do
  for opt in "-O3" "-O2 -ftree-vectorize"; do
    check gcc "$gcc" $opt $isa
    check clang "$clang" $opt $isa
  done
done
exit $status
