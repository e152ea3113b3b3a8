#!/usr/bin/env bash
# The README's test command: installs what is missing, builds with ASan + UBSan (clang),
# and runs every test (unit, integration, namespace end-to-end, fuzz smoke) through CTest.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/deps.sh" test
"$here/scripts/build.sh" "$here/build-test" sanitize
cd "$here/build-test"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Benchmarks (label "bench") are not tests: tests/bench/run.sh runs them.
ctest --output-on-failure -j2 -LE bench "$@"
