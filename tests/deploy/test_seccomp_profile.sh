#!/usr/bin/env bash
# The gateway's seccomp profile, applied for real (tests/deploy/seccomp_exec.py loads it the way
# runc does) to the real gateway in a throwaway network namespace, with the shipped config
# (deploy/k8s/base/gateway/gateway.json, addresses moved into the namespace):
#   1. under the profile the gateway (io forced to io_uring) starts, becomes ready, sends what a
#      publisher gives it over io_uring (where io_uring works here at all), exits 0 on SIGTERM;
#   2. mdfeed-tap (libmdfeed), the example consumer, receives every message under the profile;
#   3. under the same profile without the io_uring syscalls — what containerd 2.x's default
#      does — the gateway falls back to sendmmsg, says so in its metrics, and still sends;
#   4. the profile refuses what a container never needs (a new namespace).
# LeakSanitizer is off under the profile: it needs ptrace, which the profile refuses by design.
# shellcheck source=tests/common/lib.sh
source "$(dirname "$0")/../common/lib.sh"
need_root
need_cmd ip iproute2
need_cmd curl
need_cmd python3
gw=$MDCAST_BUILD_DIR/gateway/mdcast-gateway
pub=$MDCAST_BUILD_DIR/feedhandler/tools/mdcast-pub
[ -x "$gw" ] || skip "mdcast-gateway not built"
[ -x "$pub" ] || skip "mdcast-pub not built"
profile=$MDCAST_SOURCE_DIR/deploy/k8s/base/seccomp/mdcast-gateway.json
loader=$MDCAST_SOURCE_DIR/tests/deploy/seccomp_exec.py
tag=$(test_tag)
ns=${tag}sc
rx=${tag}rx
work=$(mktemp -d)
gw_pid=
cleanup() {
  [ -n "$gw_pid" ] && kill -KILL "$gw_pid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null || true
  ip netns del "$rx" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export ASAN_OPTIONS=detect_leaks=0

python3 "$loader" "$profile" -- /bin/true || skip "cannot load a seccomp filter here (exit $?)"

ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns add "$rx"
ip -n "$ns" link add "${tag}a" type veth peer name "${tag}b" netns "$rx"
ip -n "$ns" addr add 198.18.211.1/24 dev "${tag}a"
ip -n "$rx" addr add 198.18.211.2/24 dev "${tag}b"
ip -n "$ns" link set "${tag}a" up
ip -n "$rx" link set "${tag}b" up
ip netns exec "$ns" sysctl -q -w net.ipv4.conf.all.force_igmp_version=2
ip netns exec "$rx" sysctl -q -w net.ipv4.conf.all.force_igmp_version=2

python3 - "$MDCAST_SOURCE_DIR/deploy/k8s/base/gateway/gateway.json" "$work/gateway.json" "${tag}a" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["ingress"]["listen"] = "127.0.0.1:7001"
cfg["metrics"]["listen"] = "127.0.0.1:9100"
cfg["egress"]["interface"] = sys.argv[3]
# Forced, not "auto": auto measures both backends at start and may pick sendmmsg on its merits,
# which says nothing about the profile. Forced io_uring still falls back when it is refused.
cfg["egress"]["io"] = "io_uring"
json.dump(cfg, open(sys.argv[2], "w"))
PY
line_a=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["channels"][0]["lines"][0])' "$work/gateway.json")
user=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ingress"]["users"][0]["username"])' "$work/gateway.json")
pass=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ingress"]["users"][0]["password"])' "$work/gateway.json")

metric() { # metric NAME_REGEX: sum of matching samples in the scrape
  awk -v re="^$1([{ ]|$)" '$0 ~ re { s += $NF } END { print s + 0 }' "$work/metrics"
}

# run_gateway LABEL [seccomp_exec options...]: starts the gateway (under the profile when options
# are given), waits for /readyz, publishes 500 messages, scrapes /metrics, stops it with SIGTERM.
run_gateway() {
  local label=$1 rc=0
  shift
  if [ "${1:-}" = none ]; then
    ip netns exec "$ns" "$gw" --config "$work/gateway.json" 2>"$work/$label.log" &
  else
    ip netns exec "$ns" python3 "$loader" "$profile" "$@" -- "$gw" --config "$work/gateway.json" \
      2>"$work/$label.log" &
  fi
  gw_pid=$!
  for _ in $(seq 100); do
    ip netns exec "$ns" curl -sf -m 1 http://127.0.0.1:9100/readyz >/dev/null 2>&1 && break
    kill -0 "$gw_pid" 2>/dev/null || fail "$label: gateway died: $(cat "$work/$label.log")"
    sleep 0.1
  done
  ip netns exec "$ns" curl -sf -m 2 http://127.0.0.1:9100/readyz >/dev/null ||
    fail "$label: gateway not ready: $(cat "$work/$label.log")"
  ip netns exec "$ns" timeout 30 "$pub" --connect 127.0.0.1:7001 --user "$user" --password "$pass" \
    --count 500 --timeout 20 >"$work/$label.pub" 2>&1 || fail "$label: mdcast-pub failed: $(cat "$work/$label.pub")"
  sleep 0.3
  ip netns exec "$ns" curl -sf -m 2 http://127.0.0.1:9100/metrics >"$work/metrics" || fail "$label: no metrics"
  kill -TERM "$gw_pid"
  wait "$gw_pid" || rc=$?
  gw_pid=
  [ "$rc" -eq 0 ] || fail "$label: gateway exit $rc after SIGTERM: $(tail -5 "$work/$label.log")"
  [ "$(metric mdcast_messages_in_total)" -ge 500 ] || fail "$label: messages in: $(metric mdcast_messages_in_total)"
  [ "$(metric mdcast_packets_out_total)" -gt 0 ] || fail "$label: nothing sent"
  [ "$(metric mdcast_send_errors_total)" -eq 0 ] || fail "$label: send errors"
}

echo "0. baseline without a profile"
run_gateway plain none
uring_here=$(metric 'mdcast_egress_backend\{backend="io_uring"\}')

echo "1. under the shipped profile, with mdfeed-tap under it too"
tap=$MDCAST_BUILD_DIR/feedhandler/tools/mdfeed-tap
tap_pid=
if [ -x "$tap" ]; then
  ip netns exec "$rx" timeout 60 python3 "$loader" "$profile" -- "$tap" --group "$line_a" \
    --interface "${tag}b" --count 500 --timeout 40 --format none --json >"$work/tap.out" 2>"$work/tap.err" &
  tap_pid=$!
  group_hex=$(python3 -c 'import socket,sys; print(socket.inet_aton(sys.argv[1].split(":")[0])[::-1].hex().upper())' "$line_a")
  for _ in $(seq 50); do ip netns exec "$rx" grep -q "$group_hex" /proc/net/igmp && break; sleep 0.1; done
fi
run_gateway profile
if [ "$uring_here" -eq 1 ]; then
  [ "$(metric 'mdcast_egress_backend\{backend="io_uring"\}')" -eq 1 ] ||
    fail "the profile keeps the gateway off io_uring: $(grep -i uring "$work/profile.log")"
  [ "$(metric mdcast_egress_uring_fallback)" -eq 0 ] || fail "fallback reported under the profile"
else
  echo "note: io_uring does not set up on this machine even without a profile; backend not compared"
fi

if [ -n "$tap_pid" ]; then
  echo "2. mdfeed-tap under the profile received the messages"
  wait "$tap_pid" || fail "mdfeed-tap exit $? under the profile: $(tail -3 "$work/tap.err")"
  tail -1 "$work/tap.out" | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["received"] == 500 and s["lost"] == 0 else 1)' ||
    fail "mdfeed-tap summary: $(tail -1 "$work/tap.out")"
else
  echo "note: mdfeed-tap not built; consumer not run under the profile"
fi

echo "3. the profile without io_uring (containerd 2.x default): fallback to sendmmsg"
run_gateway no-uring --drop io_uring_setup --drop io_uring_enter --drop io_uring_register
[ "$(metric 'mdcast_egress_backend\{backend="sendmmsg"\}')" -eq 1 ] || fail "no sendmmsg fallback"
[ "$(metric mdcast_egress_uring_fallback)" -eq 1 ] || fail "fallback not reported in the metrics"
grep -q 'falling back to sendmmsg' "$work/no-uring.log" || fail "fallback not logged"

echo "4. what the profile refuses"
rc=0
ip netns exec "$ns" python3 "$loader" "$profile" -- unshare --net true 2>/dev/null || rc=$?
[ "$rc" -ne 0 ] || fail "a new network namespace was allowed under the profile"
ip netns exec "$ns" unshare --net true || fail "unshare fails even without the profile"
echo "PASS: seccomp profile"
