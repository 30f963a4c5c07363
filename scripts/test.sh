#!/usr/bin/env bash
# Runs every test: installs what is missing (with the test dependencies),
# builds build/ (RelWithDebInfo) and build-san/ (AddressSanitizer and
# UndefinedBehaviorSanitizer, also applied to the programs the end-to-end
# tests generate) and runs the whole ctest suite in both. build-san is the
# authoritative run. Exits non-zero on any failure.
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
  if ! (cd "$dir" && ctest --output-on-failure -j2); then
    echo "=== $dir: FAILED"
    status=1
  fi
done

if [[ $status -eq 0 ]]; then
  echo "=== all tests passed (build, build-san)"
fi
exit $status
