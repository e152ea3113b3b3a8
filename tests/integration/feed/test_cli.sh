#!/usr/bin/env bash
# mdfeed-tap and mdcast-pub end to end, in a network namespace this test creates:
#  - flags, usage errors and exit codes of both CLIs;
#  - an ITCH file (plain and gzip) replayed by mdcast-pub arrives byte-identical at a
#    SoupBinTCP sink; a wrong password exits 3 with a clear message;
#  - MoldUDP64 from mold-send arrives byte-identical at mdfeed-tap (--format hex), on one
#    line, on A+B with complementary drops (no gap, nothing lost), and with drops recovered
#    through --retransmit; without a server the loss is reported (exit 3, "lost" in --json);
#  - --format itch prints decoded ITCH lines; --latency reports percentiles; --stats prints
#    interval lines; --json is the last stdout line.
source "$MDCAST_SOURCE_DIR/tests/common/lib.sh"
need_root
need_cmd ip iproute2
need_cmd python3
need_cmd gzip

B=$MDCAST_BUILD_DIR
TAP=$B/feedhandler/tools/mdfeed-tap
PUB=$B/feedhandler/tools/mdcast-pub
SINK=$B/tests/soup-sink
SEND=$B/tests/mold-send
ITCHGEN=$B/tests/tools/itchgen
for x in "$TAP" "$PUB" "$SINK" "$SEND"; do [ -x "$x" ] || fail "missing $x (build first)"; done

source "$MDCAST_SOURCE_DIR/tests/integration/feed/netns.sh"
feed_netns fd

# Exit code of a command, without tripping `set -e`.
rc_of() { local rc=0; "$@" >"$work/out" 2>"$work/err" || rc=$?; echo "$rc"; }
expect_rc() {
  local want=$1; shift
  local got; got=$(rc_of "$@")
  [ "$got" = "$want" ] || { cat "$work/err" >&2; fail "'$*' exited $got, want $want"; }
}
json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

echo "== usage and exit codes"
expect_rc 0 "$TAP" --help
grep -q -- '--group-b' "$work/out" || fail "tap --help lacks --group-b"
expect_rc 2 "$TAP"
grep -q 'required' "$work/err" || fail "tap without args names what is required"
expect_rc 2 "$TAP" --group 239.1.1.1:5000 --interface lo --format bogus
grep -q "invalid value for --format" "$work/err" || fail "bad --format not named"
expect_rc 2 "$TAP" --group 198.18.0.1:5000 --interface lo
grep -qi 'multicast' "$work/err" || fail "non-multicast group not explained"
expect_rc 1 inns "$TAP" --group 239.1.1.1:5000 --interface nosuchif0
expect_rc 0 "$PUB" --help
expect_rc 2 "$PUB" --count 5
expect_rc 2 "$PUB" --connect 127.0.0.1:1 --count abc
expect_rc 2 "$PUB" --connect 127.0.0.1:1 --count 0
expect_rc 2 "$PUB" --connect 127.0.0.1:1 --timestamps --size 8
expect_rc 2 "$PUB" --connect 127.0.0.1:1 --speed 2
# Nothing listens: bounded reconnects, then exit 1 with the reason.
expect_rc 1 inns "$PUB" --connect 127.0.0.1:9 --count 1 --timeout 3
grep -q 'login to 127.0.0.1:9 failed' "$work/err" || fail "connect failure not explained"
# --count not reached before --timeout: exit 1; nothing sent at all.
expect_rc 1 inns "$TAP" --group 239.1.1.9:5009 --interface lo --count 5 --timeout 0.3 --json
grep -q '"received":0' "$work/out" || fail "timeout summary missing"

echo "== the ITCH file"
if [ -x "$ITCHGEN" ]; then
  "$ITCHGEN" --count 3000 --seed 7 --out "$work/day.itch" >/dev/null
else # the layout is what matters here: 2-byte big-endian length, then the bytes
  python3 -c '
import random,struct,sys
r=random.Random(7); out=open(sys.argv[1],"wb")
for i in range(3000):
    n=r.choice([12,20,36,40]); out.write(struct.pack(">H",n)+bytes(r.randrange(256) for _ in range(n)))' "$work/day.itch"
fi
gzip -c "$work/day.itch" >"$work/day.itch.gz"
nmsg=$(python3 -c '
import sys; d=open(sys.argv[1],"rb").read(); p=n=0
while p<len(d): p+=2+int.from_bytes(d[p:p+2],"big"); n+=1
print(n)' "$work/day.itch")
[ "$nmsg" -eq 3000 ] || fail "ITCH file has $nmsg messages"

echo "== bad values and broken files: a clear error and exit code, nothing sent"
expect_rc 2 "$PUB" --connect 127.0.0.1:1 --count -1
expect_rc 2 "$PUB" --connect 127.0.0.1:1 --count " -1" # strtoull would wrap it to 2^64-1
grep -q "invalid value for --count: ' -1'" "$work/err" || fail "--count ' -1' not named"
expect_rc 2 "$PUB" --connect 127.0.0.1:1 --size 0
expect_rc 2 "$PUB" --connect 127.0.0.1:1 --size 65535
expect_rc 2 "$PUB" --connect 127.0.0.1:1 --rate nan
expect_rc 2 "$PUB" --connect 127.0.0.1 --count 1
expect_rc 2 "$TAP" --group 239.1.1.1 --interface lo
grep -q "invalid value for --group: '239.1.1.1'" "$work/err" || fail "--group without a port"
expect_rc 2 "$TAP" --group 239.1.1.1:5000 --group-b 239.1.1.2 --interface lo
grep -q "invalid value for --group-b" "$work/err" || fail "bad --group-b blamed on: $(cat "$work/err")"
expect_rc 2 "$TAP" --group 239.1.1.1:5000 --retransmit "127.0.0.1: 9" --interface lo
grep -q "invalid value for --retransmit" "$work/err" || fail "bad --retransmit not named"
expect_rc 2 "$TAP" --group 239.1.1.1:5000 --interface lo --count " -1"
expect_rc 2 "$TAP" --group 239.1.1.1:5000 --interface lo --timeout inf
# Port 9 has no listener: a file broken at its start must fail on the file, before a login.
head -c 20 "$work/day.itch.gz" >"$work/garbage.gz"
head -c 3000 /dev/urandom >>"$work/garbage.gz"
expect_rc 1 inns "$PUB" --connect 127.0.0.1:9 --itch "$work/garbage.gz" --timeout 5
grep -q 'not valid gzip data' "$work/err" || fail "corrupt gzip not explained: $(cat "$work/err")"
grep -q 'login' "$work/err" && fail "corrupt gzip: tried to log in first"
printf '\000\100abc' >"$work/short.itch" # announces 64 bytes, holds 3
expect_rc 1 inns "$PUB" --connect 127.0.0.1:9 --itch "$work/short.itch" --timeout 5
grep -q 'truncated message (3 of 64 bytes) at message 1' "$work/err" \
  || fail "truncated ITCH not explained: $(cat "$work/err")"
printf '\000\000' >"$work/zero.itch"
expect_rc 1 inns "$PUB" --connect 127.0.0.1:9 --itch "$work/zero.itch" --timeout 5
grep -q 'zero-length message' "$work/err" || fail "zero-length ITCH message not explained"

start_sink() { # start_sink OUTFILE [args...] -> sets sink_port, appends the pid
  local out=$1; shift
  rm -f "$work/sink.log" # a stale "listening on" line would name the previous sink's port
  ip netns exec "$ns" "$SINK" --out "$out" --timeout 20 "$@" >"$work/sink.log" 2>&1 &
  pids+=($!)
  sink_pid=$!
  for _ in $(seq 100); do
    sink_port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/sink.log" 2>/dev/null || true)
    [ -n "$sink_port" ] && return 0
    sleep 0.05
  done
  fail "soup-sink did not start"
}

echo "== mdcast-pub replays the file byte-identical (plain, gzip paced)"
for src in day.itch day.itch.gz; do
  start_sink "$work/got.bin" --user feed1 --password pw
  extra=()
  [ "$src" = day.itch.gz ] && extra=(--rate 20000)
  out=$(inns "$PUB" --connect "127.0.0.1:$sink_port" --user feed1 --password pw \
        --itch "$work/$src" --json --timeout 30 "${extra[@]}")
  wait "$sink_pid"
  cmp "$work/day.itch" "$work/got.bin" || fail "$src: the sink did not get the file byte for byte"
  js=$(tail -n1 <<<"$out")
  [ "$(json_field "$js" sent)" = 3000 ] || fail "$src: --json sent is not 3000: $js"
  [ "$(json_field "$js" ok)" = True ] || fail "$src: --json ok is not true"
done
# --rate 20000 over 3000 messages takes at least 0.14 s: pacing is real.
el=$(json_field "$js" elapsed_s)
python3 -c "import sys; sys.exit(0 if float('$el') >= 0.14 else 1)" || fail "--rate not honoured ($el s)"

# A file cut inside a message: the whole messages before the cut are delivered (flushed,
# logged out), then exit 1 naming the cut.
head -c 1001 "$work/day.itch" >"$work/cut.itch"
gzip -c "$work/day.itch" | head -c 4000 >"$work/cut.itch.gz" # a gzip stream cut short
for src in cut.itch cut.itch.gz; do
  start_sink "$work/cut.bin"
  expect_rc 1 inns "$PUB" --connect "127.0.0.1:$sink_port" --itch "$work/$src" --json --timeout 10
  wait "$sink_pid" || fail "$src: the sink saw no logout"
  grep -q 'truncated .* after [0-9]* messages' "$work/err" || fail "$src: $(cat "$work/err")"
  js=$(tail -n1 "$work/out")
  [ "$(json_field "$js" ok)" = False ] || fail "$src: --json ok is not false"
  python3 -c '
import sys
got=open(sys.argv[1],"rb").read(); day=open(sys.argv[2],"rb").read()
p=n=0
while p+2<=len(got): p+=2+int.from_bytes(got[p:p+2],"big"); n+=1
assert p==len(got) and n==int(sys.argv[3]) and n>0, (p,len(got),n,sys.argv[3])
assert day.startswith(got)
if sys.argv[4]=="cut.itch": # 1001 bytes hold exactly the messages that end by then
    q=m=0
    while q+2<=1001 and q+2+int.from_bytes(day[q:q+2],"big")<=1001: q+=2+int.from_bytes(day[q:q+2],"big"); m+=1
    assert n==m, (n,m)' "$work/cut.bin" "$work/day.itch" "$(json_field "$js" sent)" "$src" \
    || fail "$src: the sink did not get exactly the whole messages before the cut"
done

if [ -x "$ITCHGEN" ]; then
  echo "== mdcast-pub --speed: paced by the file's own timestamps"
  # The file spans this many nanoseconds of market time; --speed compresses it to ~0.4 s.
  span=$(python3 -c '
import sys; d=open(sys.argv[1],"rb").read(); p=0; ts=[]
while p<len(d):
    n=int.from_bytes(d[p:p+2],"big"); ts.append(int.from_bytes(d[p+7:p+13],"big")); p+=2+n
print(ts[-1]-ts[0])' "$work/day.itch")
  speed=$(python3 -c "print($span / 0.4e9)")
  start_sink "$work/paced.bin"
  out=$(inns "$PUB" --connect "127.0.0.1:$sink_port" --itch "$work/day.itch" --speed "$speed" --json)
  wait "$sink_pid"
  cmp "$work/day.itch" "$work/paced.bin" || fail "--speed replay not byte-identical"
  el=$(json_field "$(tail -n1 <<<"$out")" elapsed_s)
  python3 -c "import sys; sys.exit(0 if 0.35 <= float('$el') < 10 else 1)" \
    || fail "--speed $speed: replay took $el s, want about 0.4 s"
fi

echo "== mdcast-pub: generated messages, --count, --size, --timestamps"
start_sink "$work/gen.bin"
inns "$PUB" --connect "127.0.0.1:$sink_port" --count 500 --size 40 --timestamps --json >"$work/out"
wait "$sink_pid"
[ "$(stat -c %s "$work/gen.bin")" -eq $((500 * 42)) ] || fail "500 x 40-byte messages not received"
magic=$(head -c 6 "$work/gen.bin" | tail -c 4)
[ "$magic" = MDTS ] || fail "benchmark message magic missing: '$magic'"

echo "== mdcast-pub: login rejected -> exit 3"
start_sink "$work/rej.bin" --user feed1 --password right
expect_rc 3 inns "$PUB" --connect "127.0.0.1:$sink_port" --user feed1 --password wrong --count 5
grep -q 'rejected: not authorized' "$work/err" || fail "rejection not explained: $(cat "$work/err")"
wait "$sink_pid" || true

# start_tap NAME ARGS... : runs mdfeed-tap in the namespace, waits until it joined.
start_tap() {
  local name=$1; shift
  ip netns exec "$ns" "$TAP" --interface lo --timeout 20 "$@" >"$work/$name.out" \
    2>"$work/$name.err" &
  tap_pid=$!
  pids+=("$tap_pid")
  for _ in $(seq 100); do
    grep -q "^mdfeed-tap: joined" "$work/$name.err" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "mdfeed-tap $name did not join: $(cat "$work/$name.err")"
}
wait_tap() { rc=0; wait "$tap_pid" || rc=$?; }
unhex() { # seq hex lines -> the length-prefixed file
  python3 -c '
import sys
out=open(sys.argv[2],"wb"); prev=0
for line in open(sys.argv[1]):
    f=line.split()
    if len(f)!=2 or not f[0].isdigit(): continue
    s=int(f[0]); b=bytes.fromhex(f[1])
    assert s==prev+1, "sequence %d after %d" % (s, prev); prev=s
    out.write(len(b).to_bytes(2,"big")+b)' "$1" "$2"
}

G=239.7.1.1:17001
GB=239.7.1.2:17002
echo "== mdfeed-tap: one line, byte-identical"
start_tap one --group $G --format hex --count 3000 --json
inns "$SEND" --group $G --in "$work/day.itch" --linger 100 >/dev/null
wait_tap; [ "$rc" = 0 ] || fail "tap exited $rc: $(cat "$work/one.err")"
unhex "$work/one.out" "$work/one.bin"
cmp "$work/day.itch" "$work/one.bin" || fail "tap output differs from the file"
js=$(tail -n1 "$work/one.out")
[ "$(json_field "$js" received)" = 3000 ] || fail "--json received: $js"
if [ "$(json_field "$js" first_seq)" != 1 ] || [ "$(json_field "$js" last_seq)" != 3000 ]; then
  fail "seq range: $js"
fi

echo "== mdfeed-tap: A and B, each dropping every 3rd packet (different phases)"
# --start-seq 1: line A drops the very first packet, so a live start would begin at the 2nd.
start_tap ab --group $G --group-b $GB --format hex --json --gap-timeout 50 --start-seq 1
inns "$SEND" --group $G --group-b $GB --in "$work/day.itch" --drop-a 3 --drop-b 3 --eos \
  --linger 200 >/dev/null
wait_tap; [ "$rc" = 0 ] || fail "A/B tap exited $rc: $(cat "$work/ab.err")"
unhex "$work/ab.out" "$work/ab.bin"
cmp "$work/day.itch" "$work/ab.bin" || fail "A/B: output differs from the file"
js=$(tail -n1 "$work/ab.out")
for k in gaps lost; do [ "$(json_field "$js" $k)" = 0 ] || fail "A/B: $k not 0: $js"; done
[ "$(json_field "$js" ended)" = True ] || fail "A/B: end of session not seen: $js"
[ "$(json_field "$js" duplicates)" -gt 0 ] || fail "A/B: no duplicates dropped: $js"

echo "== mdfeed-tap: drops recovered through --retransmit"
start_tap rt --start-seq 1 --group $G --retransmit 127.0.0.1:17003 --format none --count 3000 --json --stats 0.2
ip netns exec "$ns" "$SEND" --group $G --in "$work/day.itch" --drop-a 5 --retransmit-port 17003 \
  --linger 1000 >/dev/null &
send_pid=$!; pids+=("$send_pid")
wait_tap; [ "$rc" = 0 ] || fail "retransmit tap exited $rc: $(cat "$work/rt.err")"
js=$(tail -n1 "$work/rt.out")
[ "$(json_field "$js" lost)" = 0 ] || fail "retransmit: lost: $js"
[ "$(json_field "$js" recovered)" -gt 0 ] || fail "retransmit: nothing recovered: $js"
[ "$(json_field "$js" received)" = 3000 ] || fail "retransmit: received: $js"
grep -q 'msgs/s' "$work/rt.out" || fail "--stats printed no interval line"
wait "$send_pid" # its heartbeats must not reach the next tap

echo "== mdfeed-tap: loss without a server -> reported, exit 3"
start_tap loss --group $G --format none --json --gap-timeout 20
inns "$SEND" --group $G --in "$work/day.itch" --drop-a 7 --eos --linger 200 >/dev/null
wait_tap; [ "$rc" = 3 ] || fail "loss: tap exited $rc, want 3: $(grep -v "gap:" "$work/loss.err")"
js=$(tail -n1 "$work/loss.out")
[ "$(json_field "$js" lost)" -gt 0 ] || fail "loss: not reported: $js"
grep -q 'LOST' "$work/loss.err" || fail "loss: no LOST line on stderr"

echo "== mdfeed-tap --format itch and --latency"
if [ -x "$ITCHGEN" ]; then
  start_tap itch --group $G --format itch --count 50
  inns "$SEND" --group $G --in "$work/day.itch" --linger 50 >/dev/null
  wait_tap; [ "$rc" = 0 ] || fail "itch tap exited $rc"
  [ "$(grep -c '^[0-9]* [A-Z]' "$work/itch.out")" -eq 50 ] || fail "--format itch: not 50 lines"
  grep -q '[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.' "$work/itch.out" || fail "--format itch: no time of day"
fi
# --format text, with the interface named by its address (the tap adds --interface lo first;
# the later --interface wins).
start_tap txt --group $G --interface 127.0.0.1 --format text --count 5
inns "$SEND" --group $G --timestamps 5 --size 24 --linger 50 >/dev/null
wait_tap; [ "$rc" = 0 ] || fail "text tap exited $rc: $(cat "$work/txt.err")"
[ "$(grep -c '^[1-5] A 24 "MDTS' "$work/txt.out")" = 5 ] || fail "--format text: $(cat "$work/txt.out")"
grep -q 'joined 239.7.1.1:17001 on 127.0.0.1' "$work/txt.err" || fail "interface by address"

start_tap lat --group $G --format none --latency --count 2000 --json
inns "$SEND" --group $G --timestamps 2000 --size 24 --linger 50 >/dev/null
wait_tap; [ "$rc" = 0 ] || fail "latency tap exited $rc"
grep -q '^latency: samples 2000 ' "$work/lat.out" || fail "--latency line missing"
js=$(tail -n1 "$work/lat.out")
python3 -c '
import json,sys; j=json.loads(sys.argv[1]); l=j["latency_ns"]
assert l["samples"]==2000 and 0<l["p50"]<=l["p99"]<=l["p99_9"]<=l["max"]<5e9, l' "$js" \
  || fail "latency percentiles inconsistent: $js"
echo "test_cli: all passed"
