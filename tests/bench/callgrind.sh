#!/usr/bin/env bash
# Gateway instructions per message (deterministic: callgrind counts instructions, not time).
# The gateway runs under valgrind --tool=callgrind in a namespace of its own (loopback only,
# egress on a veth with a 198.18.0.0/15 address, io sendmmsg), gateway_bench_tool publishes
# COUNT 40-byte messages over loopback, then SIGTERM; the whole-process total (start-up and
# shutdown included) divided by COUNT is the figure docs/GATEWAY.md tracks.
# Usage: MDCAST_BUILD_DIR=build-rel MDCAST_SOURCE_DIR=. bash tests/bench/callgrind.sh [COUNT]   (root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091  # tests/common/lib.sh
source "$here/../common/lib.sh"
need_root
need_cmd valgrind "apt-get install valgrind"
B=${MDCAST_BUILD_DIR:?set MDCAST_BUILD_DIR to a release build}
GW=$B/gateway/mdcast-gateway
TOOL=$B/tests/gateway_bench_tool
COUNT=${1:-300000}
[ -x "$GW" ] && [ -x "$TOOL" ] || fail "build $GW and $TOOL first"
tag=$(test_tag)
NS=${tag}cg
work=$(mktemp -d)
cleanup() {
  set +e
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add "${tag}a" type veth peer name "${tag}b"
ip -n "$NS" addr add 198.18.9.1/24 dev "${tag}a"
ip -n "$NS" link set "${tag}a" up
ip -n "$NS" link set "${tag}b" up
cat >"$work/gw.json" <<JSON
{"ingress": {"listen": "127.0.0.1:7000", "users": [{"username": "pub1", "password": "pw",
  "channel": "c1"}]},
 "egress": {"interface": "198.18.9.1", "io": "sendmmsg", "ttl": 1},
 "channels": [{"name": "c1", "session": "CALLGRIND1", "lines": ["239.18.9.1:30001"],
  "retransmit_port": 31001}],
 "retransmit": {"address": "127.0.0.1"},
 "metrics": {"listen": "127.0.0.1:9109"}, "log_level": "warn"}
JSON
ip netns exec "$NS" valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
  "$GW" --config "$work/gw.json" 2>"$work/vg.log" &
vg=$!
for _ in $(seq 1 100); do
  ip netns exec "$NS" bash -c 'exec 3<>/dev/tcp/127.0.0.1/7000' 2>/dev/null && break
  sleep 0.2
done
ip netns exec "$NS" "$TOOL" pub --connect 127.0.0.1:7000 --count "$COUNT" --size 40 \
  --user pub1 --pass pw >"$work/pub.log"
sleep 1
kill -TERM "$vg"
wait "$vg" || true
total=$(awk '/^summary:/ {print $2}' "$work/cg.out")
[ -n "$total" ] || { cat "$work/vg.log" >&2; fail "no callgrind summary"; }
echo "callgrind: $total instructions, $COUNT messages, $((total / COUNT)) instructions/message"
