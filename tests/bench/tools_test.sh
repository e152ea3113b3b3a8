#!/usr/bin/env bash
# The benchmark tools measure what they claim (label `bench`, seconds): in a throwaway namespace
# on loopback, the sink counts every message of a blaster run and no gap; when the blaster leaves
# out every 10th datagram it reports exactly those gaps and that loss; paced stamped messages
# give sane percentiles;
# tcp_fanout delivers every message to each consumer and writes N times what it read.
. "$MDCAST_SOURCE_DIR/tests/common/lib.sh"
need_root
B=$MDCAST_BUILD_DIR/tests/bench
for p in blaster sink bench_pub tcp_fanout; do [ -x "$B/$p" ] || fail "$B/$p not built"; done

ns=$(test_tag)-bt
work=$(mktemp -d)
cleanup() {
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" route add 239.0.0.0/8 dev lo
in_ns() { timeout 30 ip netns exec "$ns" "$@"; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
lat() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["latency_us"][sys.argv[2]])' "$1" "$2"; }

# sink_and_blast SINK_ARGS -- BLASTER_ARGS: prints the sink's JSON.
sink_and_blast() {
  local sargs=()
  while [ "$1" != -- ]; do sargs+=("$1"); shift; done
  shift
  in_ns "$B/sink" --mold 239.9.0.1:6001 --interface 127.0.0.1 --json --idle 500 --timeout 10 \
    --ready-file "$work/ready" "${sargs[@]}" >"$work/sink.json" 2>/dev/null &
  local spid=$!
  for _ in $(seq 100); do [ -e "$work/ready" ] && break; sleep 0.05; done
  in_ns "$B/blaster" --dest 239.9.0.1:6001 --interface 127.0.0.1 "$@" >/dev/null 2>&1 || fail "blaster failed"
  wait "$spid" || fail "sink failed"
  rm -f "$work/ready"
  cat "$work/sink.json"
}

# 1. Every message, contiguous, budget respected.
j=$(sink_and_blast --count 64000 -- --count 64000 --size 1400)
[ "$(field "$j" messages)" = 64000 ] || fail "sink counted $(field "$j" messages) of 64000: $j"
if [ "$(field "$j" lost)" != 0 ] || [ "$(field "$j" gaps)" != 0 ] || [ "$(field "$j" malformed)" != 0 ]; then
  fail "clean run reported loss: $j"
fi
[ "$(field "$j" max_datagram)" -le 1400 ] || fail "datagram over the budget: $j"
[ "$(field "$j" first_seq)" = 1 ] || fail "first sequence not 1: $j"

# 2. Loss is seen, exactly: 2000 datagrams of 32 messages, every 10th left out (this kernel has
# no netem, and a deterministic gap makes an exact check possible). The last one is among them:
# only the end of session's sequence number reveals that gap.
j=$(sink_and_blast --count 64000 -- --count 64000 --size 1400 --drop-every 10)
[ "$(field "$j" gaps)" = 200 ] || fail "expected 200 gaps: $j"
[ "$(field "$j" gap_messages)" = 6400 ] || fail "expected 6400 messages in gaps: $j"
if [ "$(field "$j" messages)" != 57600 ] || [ "$(field "$j" lost)" != 6400 ]; then
  fail "loss accounting: $j"
fi

# 3. Latency of paced, stamped messages: every one sampled, percentiles ordered and positive.
j=$(sink_and_blast --count 2000 --latency -- --count 2000 --rate 20000 --timestamps)
[ "$(lat "$j" samples)" = 2000 ] || fail "latency samples: $j"
python3 - "$j" <<'PY' || fail "latency percentiles out of order: $j"
import json, sys
l = json.loads(sys.argv[1])["latency_us"]
assert 0 < l["p50"] <= l["p99"] <= l["p99.9"] <= l["max"] < 1e6, l
PY

# 4. TCP fan-out: two consumers each get all 5000 messages; 2x the bytes read go out.
in_ns "$B/tcp_fanout" --feed 127.0.0.1:6101 --serve 127.0.0.1:6102 --consumers 2 --timeout 20 \
  --json --ready-file "$work/fready" >"$work/fan.json" 2>/dev/null &
fpid=$!
for _ in $(seq 100); do [ -e "$work/fready" ] && break; sleep 0.05; done
tpids=()
for i in 1 2; do
  in_ns "$B/sink" --tcp 127.0.0.1:6102 --count 5000 --json --timeout 20 >"$work/t$i.json" 2>/dev/null &
  tpids+=($!)
done
in_ns "$B/bench_pub" --connect 127.0.0.1:6101 --count 5000 --rate 100000 >/dev/null 2>&1 ||
  fail "bench_pub failed"
for pid in "${tpids[@]}" "$fpid"; do wait "$pid" || fail "a fan-out process failed"; done
f=$(cat "$work/fan.json")
for i in 1 2; do
  t=$(cat "$work/t$i.json")
  if [ "$(field "$t" messages)" != 5000 ] || [ "$(field "$t" gaps)" != 0 ]; then
    fail "TCP consumer $i: $t"
  fi
done
[ "$(field "$f" messages)" = 5000 ] || fail "tcp_fanout counted: $f"
[ "$(field "$f" bytes_out)" = $((2 * $(field "$f" bytes_in))) ] || fail "tcp_fanout bytes: $f"
echo "bench tools: ok"
