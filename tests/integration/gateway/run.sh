#!/usr/bin/env bash
# Runs one gateway integration scenario (see gwtest.py) in its own network namespace.
# Usage: run.sh SCENARIO
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091  # tests/common/lib.sh
source "$here/../../common/lib.sh"
need_root
need_cmd python3 "apt-get install python3"
need_cmd ip "apt-get install iproute2"
exec python3 "$here/gwtest.py" "${1:?scenario}"
