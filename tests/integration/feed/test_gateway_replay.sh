#!/usr/bin/env bash
# An ITCH 5.0 file replayed through mdcast-pub and mdcast-gateway arrives byte-identical at
# mdfeed-tap (lines A and B, re-requests on), in a network namespace this test creates: a veth
# pair carries the multicast (the gateway loops it back to local members), the ingress and the
# retransmission server are on 127.0.0.1. A second tap joins late and recovers what it missed
# through the gateway's retransmission server.
source "$MDCAST_SOURCE_DIR/tests/common/lib.sh"
need_root
need_cmd ip iproute2
need_cmd python3

B=$MDCAST_BUILD_DIR
GW=$B/gateway/mdcast-gateway
TAP=$B/feedhandler/tools/mdfeed-tap
PUB=$B/feedhandler/tools/mdcast-pub
ITCHGEN=$B/tests/tools/itchgen
[ -x "$GW" ] || skip "mdcast-gateway is not built in $B"
for x in "$TAP" "$PUB" "$ITCHGEN"; do [ -x "$x" ] || fail "missing $x"; done

source "$MDCAST_SOURCE_DIR/tests/integration/feed/netns.sh"
feed_netns fg
ip -n "$ns" link add va type veth peer name vb
ip -n "$ns" addr add 198.18.0.1/24 dev va
ip -n "$ns" link set va up
ip -n "$ns" link set vb up
for k in all default va; do
  ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$k.force_igmp_version=2"
done

N=20000
"$ITCHGEN" --count $N --seed 11 --out "$work/day.itch.gz" --gzip >/dev/null
python3 -c 'import gzip,sys; open(sys.argv[2],"wb").write(gzip.open(sys.argv[1]).read())' \
  "$work/day.itch.gz" "$work/day.itch"

cat >"$work/gw.json" <<EOF
{
  "log_level": "info",
  "ingress": {"listen": "127.0.0.1:7400", "heartbeat_ms": 1000, "idle_timeout_ms": 15000,
              "users": [{"username": "pub1", "password": "pw1", "channel": "itch"}]},
  "egress": {"interface": "va", "ttl": 4, "loop": true, "payload_budget": 1400, "io": "auto",
             "heartbeat_ms": 200},
  "channels": [{"name": "itch", "session": "REPLAY01",
                "lines": ["239.77.1.1:30701", "239.77.2.1:30701"],
                "retransmit_port": 31701, "ring_messages": 100000, "ring_bytes": 16777216}],
  "retransmit": {"address": "127.0.0.1", "max_messages_per_request": 1000,
                 "rate_messages_per_s": 500000, "burst_messages": 50000},
  "metrics": {"listen": "127.0.0.1:9701"},
  "journal": {"dir": "$work/journal", "fsync": "interval", "fsync_interval_ms": 10}
}
EOF
ip netns exec "$ns" "$GW" --config "$work/gw.json" 2>"$work/gw.log" &
gw_pid=$!
pids+=("$gw_pid")
for _ in $(seq 200); do
  grep -q 'ingress listening' "$work/gw.log" 2>/dev/null && break
  kill -0 "$gw_pid" 2>/dev/null || fail "gateway exited: $(cat "$work/gw.log")"
  sleep 0.05
done
grep -q 'ingress listening' "$work/gw.log" || fail "gateway did not start: $(cat "$work/gw.log")"

start_tap() {
  local name=$1; shift
  ip netns exec "$ns" "$TAP" --interface va --session REPLAY01 --retransmit 127.0.0.1:31701 \
    --count $N --timeout 60 --format hex --json "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 100); do
    grep -q '^mdfeed-tap: joined' "$work/$name.err" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "tap $name did not join: $(cat "$work/$name.err")"
}
# Tap "ab" takes both lines from the start. Tap "late" joins line B only after the first
# 8000 messages went out and starts from sequence 1: those come only from the gateway's
# retransmission server (re-requests, bounded size, in order with the live feed).
start_tap ab --group 239.77.1.1:30701 --group-b 239.77.2.1:30701 --start-seq 1

ip netns exec "$ns" "$PUB" --connect 127.0.0.1:7400 --user pub1 --password pw1 \
  --itch "$work/day.itch.gz" --count 8000 --json >"$work/pub1.out" 2>"$work/pub1.err" \
  || fail "mdcast-pub (first part) failed: $(cat "$work/pub1.err")"
start_tap late --group 239.77.2.1:30701 --start-seq 1
ip netns exec "$ns" "$PUB" --connect 127.0.0.1:7400 --user pub1 --password pw1 \
  --itch "$work/day.itch.gz" --json >"$work/pub2.out" 2>"$work/pub2.err" \
  || fail "mdcast-pub failed: $(cat "$work/pub2.err")"
[ "$(tail -n1 "$work/pub2.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sent"])')" = $N ] \
  || fail "mdcast-pub did not send $N messages: $(tail -n1 "$work/pub2.out")"

# The second replay sent the whole file again: the taps' first N messages are the first
# 8000 messages, then the first 12000 of the second replay.
python3 - "$work/day.itch" "$work/expect.bin" $N <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
msgs, p = [], 0
while p < len(d):
    n = int.from_bytes(d[p:p + 2], "big"); msgs.append(d[p:p + 2 + n]); p += 2 + n
n = int(sys.argv[3])
open(sys.argv[2], "wb").write(b"".join((msgs[:8000] + msgs)[:n]))
EOF

for name in ab late; do
  pid_var="${name}_pid"
  rc=0; wait "${!pid_var}" || rc=$?
  [ "$rc" = 0 ] || fail "tap $name exited $rc: $(grep -v ': gap\|: recovered' "$work/$name.err")"
  python3 - "$work/$name.out" "$work/$name.bin" <<'EOF'
import sys
out, prev = open(sys.argv[2], "wb"), 0
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) != 2 or not f[0].isdigit():
        continue
    s, b = int(f[0]), bytes.fromhex(f[1])
    assert s == prev + 1, "sequence %d after %d" % (s, prev)
    prev = s
    out.write(len(b).to_bytes(2, "big") + b)
EOF
  cmp "$work/expect.bin" "$work/$name.bin" || fail "tap $name: not byte-identical to the file"
  js=$(tail -n1 "$work/$name.out")
  echo "$name: $js"
  python3 -c '
import json,sys; j=json.loads(sys.argv[1])
assert j["lost"]==0 and j["received"]==int(sys.argv[2]), j' "$js" $N || fail "tap $name summary"
done
# The late tap joined after 8000 messages: those came from the retransmission server.
python3 -c '
import json,sys; j=json.loads(sys.argv[1])
assert j["first_arrivals"]["retransmit"]>=8000 and j["recovered"]>=8000, j' "$(tail -n1 "$work/late.out")" \
  || fail "late tap did not recover the first 8000 messages through re-requests"
echo "test_gateway_replay: byte-identical through the gateway"
