#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, and runs the local demo.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/deps.sh" demo
"$here/scripts/build.sh" "$here/build" release
if [ -x "$here/tests/e2e/demo.sh" ]; then
  exec "$here/tests/e2e/demo.sh" "$here/build"
fi
echo "demo: the full flow arrives with the testbed; running the codec tests that exist"
cd "$here/build" && ctest --output-on-failure -L unit
