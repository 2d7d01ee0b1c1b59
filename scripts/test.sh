#!/usr/bin/env bash
# Builds strata and runs the whole test suite with ctest.
# SANITIZE=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer instead
# (in build-asan). Fixtures are read from tests/fixtures, or $STRATA_FIXTURES;
# STRATA_REQUIRE_FIXTURES=1 (.ci/run sets it) fails a fixture test that would skip.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
if [[ ${SANITIZE:-0} == 1 ]]; then
  build_dir=${BUILD_DIR:-build-asan}
  options=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE=ON)
else
  build_dir=${BUILD_DIR:-build}
  options=(-DCMAKE_BUILD_TYPE=Release)
fi
cmake -S . -B "$build_dir" "${options[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
cd "$build_dir"
ctest --output-on-failure -j"$(nproc)"
