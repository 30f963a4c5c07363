#!/bin/sh
# build_runtime.sh CC OUT.a SOURCES...: the runtime as the driver tests link
# it (tests/CMakeLists.txt), compiled by CC into a fresh static library.
set -eu
cc=$1 out=$2
shift 2
dir=$(dirname "$out")
rm -rf "$dir" && mkdir -p "$dir"
for src in "$@"; do
  obj="$dir/$(basename "$src" .c).o"
  "$cc" -std=c11 -O2 -ffp-contract=off -fno-fast-math -pthread -c "$src" -o "$obj"
done
ar rcs "$out" "$dir"/*.o
