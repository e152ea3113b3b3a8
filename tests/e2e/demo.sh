#!/usr/bin/env bash
# The README demo: the whole path, for a person to watch, in well under a minute.
#
#   tests/e2e/demo.sh BUILD_DIR [--loopback]        (scripts/demo.sh builds and runs it)
#
# As root it builds the local EKS + TGW stand-in (docs/TESTBED.md): three nodes, a gateway pod
# and two consumer pods whose net1 comes through host-device + eni-ipam + tuning, a publisher pod,
# a VM with plain socat and a VM that joins nothing; 5% loss towards consumer c2. Without root
# (or with --loopback) it runs the same programs on `lo` with multicast loop, and says so.
# It shows the gateway's log, mdfeed-tap's interval statistics, a few decoded ITCH 5.0 messages
# and a closing summary, then removes everything it made.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/flow.sh"

build=${1:-}
if [ -z "$build" ] || [ ! -d "$build" ] || [ $# -gt 2 ] || { [ $# -eq 2 ] && [ "$2" != --loopback ]; }; then
  echo "usage: demo.sh BUILD_DIR [--loopback]   (build it first: scripts/build.sh BUILD_DIR)" >&2
  exit 2
fi
mode=netns
[ "${2:-}" = --loopback ] && mode=loopback
[ "$(id -u)" -eq 0 ] || mode=loopback
ITCH_N=$(flow_env_int DEMO_ITCH_MESSAGES 100000 10000000)
ITCH_RATE=$(flow_env_int DEMO_ITCH_RATE 25000 10000000)
TS_N=$(flow_env_int DEMO_TS_MESSAGES 20000 10000000)
TS_RATE=$(flow_env_int DEMO_TS_RATE 10000 10000000)
LOSS=$(flow_env_percent DEMO_LOSS 5%)
TOTAL=$((ITCH_N + TS_N))

SHOW_PIDS=()
# shellcheck disable=SC2317 # called by the trap
on_exit() {
  local rc=$? p
  flow_cleanup
  for p in "${SHOW_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ]; then
    echo "demo: failed (exit $rc); logs:" >&2
    for p in "$W"/*.log "$W"/*.err; do [ -s "$p" ] && { echo "---- ${p#"$W"/}"; tail -n 8 "$p"; } >&2; done
  fi
  rm -rf "$W"
}
W=$(mktemp -d /tmp/mdcast-demo.XXXXXX)
trap on_exit EXIT
# A signal ends the script through exit, so the EXIT trap cleans up then too.
trap 'exit 130' INT
trap 'exit 143' TERM
flow_init "$build" "$W" "$mode"
missing=$(flow_missing)
[ -z "$missing" ] || { echo "demo: cannot run, missing: $missing (build it: scripts/build.sh $build)" >&2; exit 1; }


say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# show PID PREFIX FILE [GREP]: print FILE's lines (matching GREP) with PREFIX while PID runs.
show() {
  local pid=$1 prefix=$2 file=$3 pat=${4:-.}
  touch "$file"
  tail --pid="$pid" -n +1 -f "$file" 2>/dev/null | grep --line-buffered -E "$pat" |
    sed -u -E 's/^\{"ts":"[^T]*T([0-9:]{8}\.[0-9]{3})[0-9]*Z","level":"([a-z]+)","msg":"(.*)"\}$/\1 \2  \3/; s/^/'"$prefix"'/' &
  SHOW_PIDS+=($!)
}

start_s=$(date +%s)
say "mdcast demo: SoupBinTCP in -> mdcast-gateway -> MoldUDP64 multicast out -> libmdfeed consumers"
if [ "$mode" = netns ]; then
  echo "On the local EKS + Transit Gateway stand-in (network namespaces, 198.18.0.0/15, groups 239/8)."
else
  echo "NOT ROOT (or --loopback): no namespaces, so no TGW, CNI or loss. Running the same programs"
  echo "on loopback with multicast loop on: gateway, two consumers, a plain socat client."
fi

say "ITCH 5.0 data from itchgen"
"$ITCHGEN_BIN" --count "$ITCH_N" --seed 2026 --symbols 12 --out "$W/feed.itch"

if [ "$mode" = netns ]; then
  say "Testbed: 3 nodes, TGW bridge (IGMPv2 snooping + querier), VPC bridge, 2 VMs"
  flow_up 2>"$W/testbed.log"
  # eni-ipam's own log lines (stderr; stdout carries only the CNI result).
  grep -o '"msg":"ADD: [^"]*' "$W/testbed.log" | sed 's/^"msg":"/  eni-ipam | /' || true
  echo "pod gw  net1 $FLOW_NET1_GW  (node1's ENI, address from eni-ipam via the node's mock IMDSv2)"
  echo "pod c1  net1 $FLOW_NET1_C1  (node2's ENI)"
  echo "pod c2  net1 $FLOW_NET1_C2  (node3's ENI)"
  echo "pod pub eth0 only (unicast, VPC); vm1 joins with socat; vm2 joins nothing"
  how="tc netem"
  [ -n "$("$TB" netem c2 loss "$LOSS" 2>&1)" ] && how="nftables: this kernel has no sch_netem"
  echo "loss $LOSS on the TGW port towards c2 ($how)"
fi

say "Gateway (mdcast-gateway in pod gw; JSON log lines shortened)"
flow_gateway_start
show "$FLOW_GW_PID" "  gw | " "$W/gw.log"
sleep 0.3

say "Consumers (mdfeed-tap --stats 1 in c1 and c2, lines A+B), the VM, and the replay"
flow_taps_start --start-seq 1 --count "$TOTAL" --timeout 45 --stats 1 --latency --format none --json
show "${FLOW_TAP_PID[c1]}" "  c1 | " "$W/c1.out" '^\['
show "${FLOW_TAP_PID[c2]}" "  c2 | " "$W/c2.out" '^\['
# A third, short consumer in c1 prints the first messages decoded.
flow_spawn c1 timeout 30 "$TAP_BIN" --group "$FLOW_LINE_A" --interface "$FLOW_MC_IF" \
  --session "$FLOW_SESSION" --retransmit "$FLOW_GW_ADDR:$FLOW_RETRANSMIT_PORT" --start-seq 1 \
  --count 6 --timeout 30 --format itch >"$W/itch.out" 2>"$W/itch.err" &
itch_pid=$!
FLOW_PIDS+=("$itch_pid")
flow_legacy_start
flow_wait_joins
flow_publish pub --itch "$W/feed.itch" --rate "$ITCH_RATE"
flow_publish bench --timestamps --count "$TS_N" --rate "$TS_RATE" --size 40
flow_wait "${FLOW_TAP_PID[c1]}" 30 || true
flow_wait "${FLOW_TAP_PID[c2]}" 30 || true
flow_wait "$itch_pid" 5 || true
served=$(flow_http /metrics 2>/dev/null | awk '/^mdcast_rerequests_total\{.*result="served"/ {print $2}')
flow_gateway_stop || true
sleep 0.5

say "The first messages, decoded (mdfeed-tap --format itch)"
sed 's/^/  /' "$W/itch.out"

kill -TERM "$FLOW_VM_PID" 2>/dev/null || true
flow_wait "$FLOW_VM_PID" 5 || true
idle=n/a
if [ "$mode" = netns ]; then
  kill -TERM "$FLOW_IDLE_PID" 2>/dev/null || true
  flow_wait "$FLOW_IDLE_PID" 5 || true
  idle="$(cat "$W/vm2.count") multicast frames"
fi

say "Summary"
sum_args=(--pub "$W/pub.out" --bench "$W/bench.out" --tap "c1 (clean port)=$W/c1.out" --served "${served:-0}")
if [ "$mode" = netns ]; then
  sum_args+=(--tap "c2 ($LOSS loss: $("$TB" loss-count c2) dropped)=$W/c2.out" --idle "$idle")
else
  sum_args+=(--tap "c2=$W/c2.out")
fi
python3 "$here/mold_verify.py" --itch "$W/feed.itch" --mold-stream "$W/vm1.mold" --extra-ok --json \
  >"$W/vm1.verify" 2>/dev/null || true
sum_rc=0
python3 "$here/demo_summary.py" "${sum_args[@]}" --vm "$W/vm1.verify" || sum_rc=$?

if [ "$mode" = netns ]; then
  say "Teardown: CNI DEL returns each ENI to its node; namespaces removed"
  flow_teardown 2>>"$W/testbed.log"
  "$TB" down
fi
echo "demo: done in $(($(date +%s) - start_s)) s"
exit $sum_rc
