#!/usr/bin/env bash
# Configures and builds into a build directory.
# Usage: scripts/build.sh <build-dir> [release|sanitize]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?build dir}
mode=${2:-release}
args=(-S "$here" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo)
case "$mode" in
  release) ;;
  # The test build uses clang so the libFuzzer targets build in the same tree, with
  # ASan + UBSan on everything.
  sanitize) args+=(-DCMAKE_C_COMPILER=clang -DMDCAST_SANITIZE=ON -DMDCAST_FUZZ=ON) ;;
  *) echo "usage: $0 <dir> [release|sanitize]" >&2; exit 2 ;;
esac
cmake "${args[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
