#!/usr/bin/env bash
# mdcast-agent end to end on one node (issue 13): the agent in a network namespace this test
# creates (multicast over its loopback), 3 good readers, 1 reader SIGSTOPped for most of the
# run (it must lap, notice, and carry on), and hostile clients at the same time: garbage,
# a request flood, a datagram-mode client that never reads, 200 clients connecting and
# leaving in a loop. The agent must stay up and the good readers must lose nothing.
# All loops are bounded; the namespace and every process go away on exit.
set -euo pipefail
build=${MDCAST_BUILD_DIR:?}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespace)"; exit 77; }
if [ -z "${AGENT_IT_IN_NETNS:-}" ]; then
  unshare -n true 2>/dev/null || { echo "SKIP: no network namespaces here"; exit 77; }
  exec env AGENT_IT_IN_NETNS=1 unshare -n bash "$0" "$@"
fi
ip link set lo up
agent=$build/feedhandler/agent/mdcast-agent
it=$build/tests/agent-it
work=$(mktemp -d /tmp/mdcast-agent-it.XXXXXX)
sock=$work/agent.sock
group=239.3.0.1:33001
count=20000 rate=5000
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$agent" --interface lo --socket "$sock" --ring-bytes 4M --metrics 127.0.0.1:33090 \
  --log-level error 2>"$work/agent.log" &
agent_pid=$!; pids+=("$agent_pid")
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "FAIL: agent did not start"; cat "$work/agent.log"; exit 1; }

for i in 1 2 3 4; do
  "$it" read "$sock" "$group" "$count" 30 >"$work/reader$i.out" &
  pids+=("$!"); eval "reader$i=$!"
done
for i in 1 2 3 4; do
  for _ in $(seq 100); do grep -q ready "$work/reader$i.out" 2>/dev/null && break; sleep 0.05; done
  grep -q ready "$work/reader$i.out" || { echo "FAIL: reader $i not subscribed"; exit 1; }
done
kill -STOP "$reader4"
# A fifth reader only keeps the group joined after the others are done, for the metrics.
"$it" read "$sock" "$group" 1000000000 40 >"$work/reader5.out" &
keeper=$!; pids+=("$keeper")

for kind in garbage flood noread churn; do
  "$it" hostile "$sock" "$kind" 5 >"$work/hostile-$kind.out" &
  pids+=("$!")
done
"$it" send "$group" "$count" "$rate"
sleep 0.5
kill -CONT "$reader4"
for i in 1 2 3 4; do eval "wait \$reader$i"; done
sleep 0.3 # the readers' last reports reach the agent

fail=0
metrics=$(curl -s --max-time 5 http://127.0.0.1:33090/metrics)
health=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:33090/healthz)
kill -0 "$agent_pid" || { echo "FAIL: the agent died"; fail=1; }
[ "$health" = 200 ] || { echo "FAIL: /healthz $health"; fail=1; }
for i in 1 2 3; do
  r=$(tail -1 "$work/reader$i.out"); echo "good reader $i: $r"
  python3 - "$r" "$count" <<'PY' || fail=1
import json, sys
r, n = json.loads(sys.argv[1]), int(sys.argv[2])
bad = [k for k in ("gaps", "corrupt", "laps", "lapped", "disconnects") if r[k] != 0]
if r["received"] != n or r["last"] != n - 1 or bad:
    print("FAIL: good reader lost or broke something:", bad, r); sys.exit(1)
PY
done
r=$(tail -1 "$work/reader4.out"); echo "stopped reader: $r"
python3 - "$r" "$count" <<'PY' || fail=1
import json, sys
r, n = json.loads(sys.argv[1]), int(sys.argv[2])
# It was lapped, knows it, and counts every datagram either read or lost: none silent.
if r["laps"] < 1 or r["corrupt"] != 0 or r["received"] + r["lapped"] != n:
    print("FAIL: stopped reader", r); sys.exit(1)
PY
cat "$work"/hostile-*.out
echo "$metrics" | grep -E '^mdcast_agent_(packets_total|laps_total|consumers|slowest|clients_dropped)' || true
for reason in garbage rate slow; do
  v=$(echo "$metrics" | sed -n "s/^mdcast_agent_clients_dropped_total{reason=\"$reason\"} //p")
  [ "${v:-0}" -ge 1 ] || { echo "FAIL: no client dropped for $reason"; fail=1; }
done
pk=$(echo "$metrics" | sed -n "s/^mdcast_agent_packets_total{group=\"$group\"} //p")
[ "${pk:-0}" = "$count" ] || { echo "FAIL: agent received ${pk:-0} of $count"; fail=1; }
laps=$(echo "$metrics" | sed -n "s/^mdcast_agent_laps_total{group=\"$group\"} //p")
[ "${laps:-0}" -ge 1 ] || { echo "FAIL: laps not in the metrics"; fail=1; }
kill "$keeper"; wait "$keeper" || true
kill "$agent_pid"; wait "$agent_pid" || { echo "FAIL: agent exit status $?"; fail=1; }
[ ! -e "$sock" ] || { echo "FAIL: socket left behind"; fail=1; }
[ "$fail" = 0 ] && echo "PASS: agent up, 3 good readers lost nothing, stopped reader lapped and counted it"
exit "$fail"
