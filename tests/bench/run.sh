#!/usr/bin/env bash
# The benchmark harness (issue 7; docs/BENCHMARKS.md): throughput, latency and fan-out of
# mdcast-gateway against the kernel's limit (a sendmmsg blaster), a socat TCP->multicast relay,
# a direct multicast send and a TCP fan-out server; eni-ipam against the seed's bash script;
# libmdfeed against a raw recvmmsg loop; gateway memory. All in network namespaces this script
# creates and removes; every load bounded in count and time.
#
# Usage: tests/bench/run.sh [--quick | --smoke] [--out DIR] [--build DIR] [--reps N]
#                           [--only SECTIONS]
#   --quick   smaller loads (under ~3 minutes); --smoke: seconds, one repetition (CTest)
#   --out     results folder (default: results/bench-<UTC timestamp>, git-ignored)
#   --build   release build dir with the binaries (default: build-bench, built if missing)
#   --only    comma list of: throughput,latency,fanout,ipam,consumer
# Environment: BENCH_PIN=1 pins the sender under test to CPU 0 and the rest to CPU 1;
# BENCH_TAG=<a-z0-9> names this run's namespaces (default: a unique tag).
# Prints the machine and the Markdown tables; writes results.md, results.json, raw.jsonl and
# PNG plots into the results folder.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"

mode=full out="" build="" reps=3 only="throughput,latency,fanout,ipam,consumer"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick ;;
    --smoke) mode=smoke ;;
    --out) out=${2:?--out DIR}; shift ;;
    --build) build=${2:?--build DIR}; shift ;;
    --reps) reps=${2:?--reps N}; shift ;;
    --only) only=${2:?--only SECTIONS}; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$reps" in ''|*[!0-9]*) echo "run.sh: --reps must be a number" >&2; exit 2 ;; esac

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: run.sh needs root (it creates network namespaces)"
  exit 77
fi
for cmd in ip python3 gnuplot socat ss; do
  command -v "$cmd" >/dev/null || { echo "run.sh: needs '$cmd' (scripts/deps.sh test)" >&2; exit 1; }
done

# Loads per mode. Counts are messages; every run also has a time limit (the tools' --timeout).
case "$mode" in
  full)  THR_MSGS=2000000 LAT_SECS=2 FAN_MSGS=200000 FAN_RATE=100000 ;;
  quick) THR_MSGS=600000  LAT_SECS=1 FAN_MSGS=50000  FAN_RATE=100000 ;;
  smoke) THR_MSGS=60000   LAT_SECS=0.3 FAN_MSGS=5000 FAN_RATE=50000; reps=1 ;;
esac
if [ "$mode" != smoke ] && [ "$reps" -lt 3 ]; then
  echo "run.sh: --reps must be at least 3 (figures are medians of repetitions)" >&2
  exit 2
fi
LAT_RATES=(10000 100000 1000000)
FAN_NS=(1 4 16)
THR_PUBS=(1 4)
THR_BUDGETS=(1400 8472)
THR_IOS=(io_uring sendmmsg)
NCONS=4
if [ "$mode" = smoke ]; then
  LAT_RATES=(10000) FAN_NS=(2) THR_PUBS=(1) THR_BUDGETS=(1400) THR_IOS=(sendmmsg) NCONS=2
fi

# Optional fixed CPU placement (BENCH_PIN=1): the sender under test (gateway, socat, tcp_fanout,
# blaster) on CPU 0, publishers and consumers on CPU 1, so the scheduler cannot reshuffle them
# from one repetition to the next. Off by default: on a machine shared with other work, pinned
# processes cannot escape a busy CPU, and every rate measured here halved with it on.
PIN_SUT=() PIN_ENDS=() PINNED=false
if [ "${BENCH_PIN:-0}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_SUT=(taskset -c 0) PIN_ENDS=(taskset -c 1) PINNED=true
fi

build=${build:-$src/build-bench}
if [ ! -x "$build/tests/bench/blaster" ]; then
  echo "run.sh: building $build (release)" >&2
  "$src/scripts/build.sh" "$build" release >&2
fi
B=$build/tests/bench
GATEWAY=$build/gateway/mdcast-gateway

out=${out:-$src/results/bench-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
RAW=$out/raw.jsonl
: >"$RAW"

# Unique per run so parallel runs never collide; a caller (the smoke test) may choose it.
TAG=${BENCH_TAG:-$(printf 'b%04x%02x' "$(($$ % 65536))" "$((RANDOM % 256))")}
case "$TAG" in *[!a-z0-9]*|'') echo "run.sh: BENCH_TAG must be [a-z0-9]+" >&2; exit 2 ;; esac
trap 'topo_down' EXIT
trap 'exit 130' INT TERM

note() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
json_or_null() { local l; l=$(grep '^{' "$1" 2>/dev/null | tail -n 1); echo "${l:-null}"; }

# record SECTION SYSTEM CASE PARAMS_JSON REP DATA_JSON: one line of raw.jsonl.
record() {
  printf '{"section": "%s", "system": "%s", "case": "%s", "params": %s, "rep": %s, "data": %s}\n' \
    "$1" "$2" "$3" "$4" "$5" "$6" >>"$RAW"
}

machine_json() {
  local model cores kernel load
  model=$(awk -F: '/^model name/ {gsub(/^[ \t]+/, "", $2); print $2; exit}' /proc/cpuinfo)
  cores=$(nproc)
  kernel=$(uname -r)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  printf '{"cpu": "%s", "cores": %s, "kernel": "%s", "loadavg_start": "%s", "date": "%s", "mode": "%s", "reps": %s, "git": "%s", "mem_total_kb": %s, "pinned": %s}\n' \
    "${model:-unknown}" "$cores" "$kernel" "$load" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$mode" "$reps" \
    "$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)" "$PINNED"
}

GROUP_KERNEL=239.1.0.1:5001
GROUP_SOCAT=239.1.0.2:5002
GROUP_GW=239.1.0.3:5003
GROUP_DIRECT=239.1.0.4:5004
SOCAT_PORT=7001
GW_PORT=7002
FAN_FEED_PORT=7100
FAN_SERVE_PORT=7101
C1=$(ns_cons 1)
C1_ADDR=$(cons_addr 1)
RUN_N=0

# start_sink NS ADDR MODE TARGET COUNT [EXTRA...]: starts a sink, waits until it joined or
# connected; its pid is SINK_PID, its output SINK_OUT.
start_sink() {
  local ns=$1 addr=$2 smode=$3 target=$4 count=$5
  shift 5
  RUN_N=$((RUN_N + 1))
  SINK_OUT=$out/logs/sink.$RUN_N.json
  local ready=$out/logs/sink.$RUN_N.ready
  spawn "$ns" "$SINK_OUT" "$out/logs/sink.$RUN_N.err" "${PIN_ENDS[@]}" "$B/sink" "--$smode" "$target" \
    --interface "$addr" --count "$count" --timeout "${SINK_TIMEOUT:-30}" --idle 2000 --json --ready-file "$ready" "$@"
  SINK_PID=$BG_PID
  wait_file "$ready" 10 || note "sink $RUN_N did not become ready"
  if [ "$smode" != tcp ]; then
    wait_join "${ns#"${TAG}"-}" "${target%:*}" 5 || note "sink $RUN_N: the bridge did not learn its join of ${target%:*}"
  fi
}

# ---------------------------------------------------------------------------------------------
# The gateway: one process per configuration (backend x budget); RSS read at start and after
# every run it serves.
GW_PID=""
gw_config() { # IO BUDGET FILE
  cat >"$3" <<EOF
{
  "comment": "benchmark gateway (tests/bench/run.sh)",
  "ingress": {
    "listen": "$BENCH_GW_ADDR:$GW_PORT",
    "heartbeat_ms": 1000,
    "idle_timeout_ms": 15000,
    "users": [
      {"username": "pub1", "password": "bench", "channel": "bench"},
      {"username": "pub2", "password": "bench", "channel": "bench"},
      {"username": "pub3", "password": "bench", "channel": "bench"},
      {"username": "pub4", "password": "bench", "channel": "bench"}
    ]
  },
  "egress": {"interface": "eth0", "ttl": 4, "loop": false, "payload_budget": $2, "io": "$1"},
  "channels": [
    {"name": "bench", "session": "BENCH", "lines": ["$GROUP_GW"], "retransmit_port": 7003,
     "ring_messages": 1048576, "ring_bytes": 67108864}
  ],
  "metrics": {"listen": "$BENCH_GW_ADDR:9100"},
  "log_level": "warn"
}
EOF
}

gw_start() { # IO BUDGET
  local cfg=$out/logs/gateway-$1-$2.json
  gw_config "$1" "$2" "$cfg"
  spawn "$(ns_gw)" "$out/logs/gateway-$1-$2.out" "$out/logs/gateway-$1-$2.log" \
    "${PIN_SUT[@]}" "$GATEWAY" --config "$cfg" --log-level warn
  GW_PID=$BG_PID
  local i up=no
  for ((i = 0; i < 100; i++)); do # 10 s at most, less when the gateway exits (a bad config)
    if ip netns exec "$(ns_gw)" ss -Hltn "src $BENCH_GW_ADDR:$GW_PORT" 2>/dev/null | grep -q .; then
      up=yes
      break
    fi
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$up" = no ]; then
    note "gateway ($1, $2) did not start: $(tail -n 3 "$out/logs/gateway-$1-$2.log" 2>/dev/null)"
    gw_stop
    return 1
  fi
  record memory gateway "$1 $2" "{\"io\": \"$1\", \"budget\": $2, \"when\": \"start\"}" 0 \
    "{\"rss_kb\": $(rss_kb "$GW_PID")}"
}

gw_stop() {
  [ -n "$GW_PID" ] || return 0
  kill -TERM "$GW_PID" 2>/dev/null || true
  wait_pid "$GW_PID" 10 || true
  GW_PID=""
}

# gw_scrape FILE: the gateway's /metrics into FILE (empty when it does not answer).
gw_scrape() {
  timeout 5 ip netns exec "$(ns_gw)" python3 -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' \
    "http://$BENCH_GW_ADDR:9100/metrics" >"$1" 2>/dev/null || : >"$1"
}

# gw_metrics_diff BEFORE AFTER: JSON of what the gateway itself counted during one run.
gw_metrics_diff() {
  python3 "$here/promdiff.py" "$1" "$2" 2>/dev/null || echo null
}

gw_rss_after() { # CASE PARAMS_WHEN
  record memory gateway "$1" "$2" 0 "{\"rss_kb\": $(rss_kb "$GW_PID")}"
}

# publish_to ADDR PORT PUBS COUNT_EACH RATE_EACH LOGIN(yes|no): runs PUBS bench_pub processes
# from the publisher namespace and waits for them.
publish_to() {
  local addr=$1 port=$2 pubs=$3 count=$4 rate=$5 login=$6 i pids=() rc=0
  for ((i = 1; i <= pubs; i++)); do
    local args=(--connect "$addr:$port" --count "$count" --rate "$rate" --id "$i" --duration 60 --json)
    [ "$login" = yes ] && args+=(--login "pub$i:bench")
    spawn "$(ns_pub)" "$out/logs/pub.$RUN_N.$i.json" "$out/logs/pub.$RUN_N.$i.err" \
      "${PIN_ENDS[@]}" "$B/bench_pub" "${args[@]}"
    pids+=("$BG_PID")
  done
  for i in "${pids[@]}"; do
    wait_pid "$i" 90 || rc=$?
  done
  return $rc
}

# ---------------------------------------------------------------------------------------------
# 1. Throughput.
thr_kernel() { # BUDGET REP
  local count=$((THR_MSGS * 2))
  start_sink "$C1" "$C1_ADDR" mold "$GROUP_KERNEL" "$count"
  local bout=$out/logs/blaster.$RUN_N.json
  spawn "$(ns_gw)" "$bout" "$out/logs/blaster.$RUN_N.err" "${PIN_SUT[@]}" "$B/blaster" --dest "$GROUP_KERNEL" \
    --interface "$BENCH_GW_ADDR" --size "$1" --count "$count" --duration 30 --json
  wait_pid "$BG_PID" 60 || true
  wait_pid "$SINK_PID" 60 || true
  record throughput kernel "blaster $1" "{\"budget\": $1, \"pubs\": 1}" "$2" \
    "{\"sender\": $(json_or_null "$bout"), \"sink\": $(json_or_null "$SINK_OUT")}"
}

# The socat relay reads the TCP stream in chunks of at most BUDGET bytes and sends each chunk as
# one datagram: message framing is not kept (a message may straddle two datagrams).
socat_start() { # BUDGET
  spawn "$(ns_gw)" /dev/null "$out/logs/socat.$RUN_N.err" "${PIN_SUT[@]}" socat -u -b "$1" \
    "TCP4-LISTEN:$SOCAT_PORT,bind=$BENCH_GW_ADDR,reuseaddr" \
    "UDP4-DATAGRAM:${GROUP_SOCAT%:*}:${GROUP_SOCAT#*:},ip-multicast-if=$BENCH_GW_ADDR,ip-multicast-ttl=4"
  SOCAT_PID=$BG_PID
  wait_tcp "$(ns_gw)" "$BENCH_GW_ADDR" "$SOCAT_PORT" 10
}

thr_socat() { # BUDGET REP
  start_sink "$C1" "$C1_ADDR" stream "$GROUP_SOCAT" "$THR_MSGS"
  socat_start "$1" || { note "socat did not start"; return 0; }
  publish_to "$BENCH_GW_ADDR" "$SOCAT_PORT" 1 "$THR_MSGS" 0 no || true
  wait_pid "$SINK_PID" 60 || true
  wait_pid "$SOCAT_PID" 10 || true
  record throughput socat "socat $1" "{\"budget\": $1, \"pubs\": 1}" "$2" \
    "{\"sender\": $(json_or_null "$out/logs/pub.$RUN_N.1.json"), \"sink\": $(json_or_null "$SINK_OUT")}"
}

# One gateway run at full speed; when the consumer saw loss, retried paced at 80 % of what
# arrived (twice at most), so the figure is the highest rate that had zero loss.
thr_gateway() { # IO BUDGET PUBS REP
  local io=$1 budget=$2 pubs=$3 rep=$4 each=$((THR_MSGS / $3)) rate=0 attempt lost=1 cpu0 cpu1
  for attempt in 1 2 3; do
    start_sink "$C1" "$C1_ADDR" mold "$GROUP_GW" "$((each * pubs))"
    gw_scrape "$out/logs/metrics.$RUN_N.before"
    cpu0=$(cpu_ns "$GW_PID")
    publish_to "$BENCH_GW_ADDR" "$GW_PORT" "$pubs" "$each" "$rate" yes || true
    wait_pid "$SINK_PID" 60 || true
    cpu1=$(cpu_ns "$GW_PID")
    gw_scrape "$out/logs/metrics.$RUN_N.after"
    lost=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "null") or {}; print(int(d.get("lost",1))+int(d.get("gaps",0)))' \
      "$(json_or_null "$SINK_OUT")")
    record throughput gateway "gateway $io $budget ${pubs}p" \
      "{\"io\": \"$io\", \"budget\": $budget, \"pubs\": $pubs, \"attempt\": $attempt, \"paced_each\": $rate}" "$rep" \
      "{\"sink\": $(json_or_null "$SINK_OUT"), \"gw_cpu_ns\": $((cpu1 - cpu0)), \"gw_metrics\": $(gw_metrics_diff "$out/logs/metrics.$RUN_N.before" "$out/logs/metrics.$RUN_N.after")}"
    [ "$lost" -eq 0 ] && break
    rate=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(max(1000, int(d["msgs_per_s"]*0.8/int(sys.argv[2]))))' \
      "$(json_or_null "$SINK_OUT")" "$pubs" 2>/dev/null || echo 100000)
    note "gateway $io $budget ${pubs}p: loss at full speed, retrying paced at $rate msg/s per publisher"
  done
  gw_rss_after "$io $budget" "{\"io\": \"$io\", \"budget\": $budget, \"when\": \"after throughput ${pubs}p rep $rep\"}"
}

# Repetitions are interleaved (every system once per round) so a drift in the machine's load
# hits all systems alike instead of biasing whichever ran last.
section_throughput() {
  local b r io p
  [ -x "$GATEWAY" ] || {
    note "throughput: $GATEWAY not built: gateway rows missing"
    record throughput gateway missing '{}' 0 '{"missing": "mdcast-gateway not built"}'
  }
  for ((r = 1; r <= reps; r++)); do
    note "throughput round $r/$reps: kernel blaster, socat relay, gateway"
    for b in "${THR_BUDGETS[@]}"; do thr_kernel "$b" "$r"; done
    for b in "${THR_BUDGETS[@]}"; do thr_socat "$b" "$r"; done
    [ -x "$GATEWAY" ] || continue
    for io in "${THR_IOS[@]}"; do
      for b in "${THR_BUDGETS[@]}"; do
        gw_start "$io" "$b" || continue
        for p in "${THR_PUBS[@]}"; do thr_gateway "$io" "$b" "$p" "$r"; done
        gw_stop
      done
    done
  done
}

# ---------------------------------------------------------------------------------------------
# 2. Latency: publisher-stamped messages, paced, to consumer receipt.
lat_count() { python3 -c "import sys; print(max(1000, int(float(sys.argv[1])*float(sys.argv[2]))))" "$1" "$LAT_SECS"; }

lat_direct() { # RATE REP
  local count; count=$(lat_count "$1")
  start_sink "$C1" "$C1_ADDR" mold "$GROUP_DIRECT" "$count" --latency
  spawn "$(ns_pub)" "$out/logs/blaster.$RUN_N.json" "$out/logs/blaster.$RUN_N.err" "${PIN_SUT[@]}" "$B/blaster" \
    --dest "$GROUP_DIRECT" --interface "$BENCH_PUB_ADDR" --rate "$1" --count "$count" --timestamps \
    --duration 60 --json
  wait_pid "$BG_PID" 90 || true
  wait_pid "$SINK_PID" 60 || true
  record latency direct "direct $1" "{\"rate\": $1}" "$2" "{\"sink\": $(json_or_null "$SINK_OUT")}"
}

lat_socat() { # RATE REP
  local count; count=$(lat_count "$1")
  start_sink "$C1" "$C1_ADDR" stream "$GROUP_SOCAT" "$count" --latency
  socat_start 1400 || { note "socat did not start"; return 0; }
  publish_to "$BENCH_GW_ADDR" "$SOCAT_PORT" 1 "$count" "$1" no || true
  wait_pid "$SINK_PID" 60 || true
  wait_pid "$SOCAT_PID" 10 || true
  record latency socat "socat $1" "{\"rate\": $1}" "$2" "{\"sink\": $(json_or_null "$SINK_OUT")}"
}

lat_gateway() { # RATE REP
  local count; count=$(lat_count "$1")
  start_sink "$C1" "$C1_ADDR" mold "$GROUP_GW" "$count" --latency
  gw_scrape "$out/logs/metrics.$RUN_N.before"
  publish_to "$BENCH_GW_ADDR" "$GW_PORT" 1 "$count" "$1" yes || true
  wait_pid "$SINK_PID" 60 || true
  gw_scrape "$out/logs/metrics.$RUN_N.after"
  record latency gateway "gateway $1" "{\"rate\": $1}" "$2" \
    "{\"sink\": $(json_or_null "$SINK_OUT"), \"gw_metrics\": $(gw_metrics_diff "$out/logs/metrics.$RUN_N.before" "$out/logs/metrics.$RUN_N.after")}"
  gw_rss_after "auto 1400" "{\"io\": \"auto\", \"budget\": 1400, \"when\": \"after latency $1 rep $2\"}"
}

section_latency() {
  local rate r have_gw=no
  if [ -x "$GATEWAY" ] && gw_start auto 1400; then have_gw=yes; fi
  [ "$have_gw" = yes ] || record latency gateway missing '{}' 0 '{"missing": "mdcast-gateway not built or did not start"}'
  for rate in "${LAT_RATES[@]}"; do
    note "latency: $rate msg/s"
    for ((r = 1; r <= reps; r++)); do
      lat_direct "$rate" "$r"
      lat_socat "$rate" "$r"
      [ "$have_gw" = no ] || lat_gateway "$rate" "$r"
    done
  done
  [ "$have_gw" = no ] || gw_stop
}

# ---------------------------------------------------------------------------------------------
# 3. Fan-out: N consumers spread over the consumer namespaces (one bridge port each).
# start_fan_sinks N MODE TARGET [EXTRA...]: FAN_PIDS and FAN_OUTS.
start_fan_sinks() {
  local n=$1 smode=$2 target=$3 i k
  shift 3
  FAN_PIDS=() FAN_OUTS=()
  for ((i = 0; i < n; i++)); do
    k=$((i % NCONS + 1))
    start_sink "$(ns_cons "$k")" "$(cons_addr "$k")" "$smode" "$target" "$FAN_MSGS" --latency --label "c$i" "$@"
    FAN_PIDS+=("$SINK_PID") FAN_OUTS+=("$SINK_OUT")
  done
}

fan_collect() { # -> JSON array of the sinks' objects
  local f sep="" s="["
  for f in "$@"; do s+="$sep$(json_or_null "$f")"; sep=", "; done
  echo "$s]"
}

fan_multicast() { # N REP
  local p tx0 tx1 cpu0 cpu1
  start_fan_sinks "$1" mold "$GROUP_GW"
  gw_scrape "$out/logs/metrics.$RUN_N.before"
  tx0=$(tx_bytes "$(ns_gw)")
  cpu0=$(cpu_ns "$GW_PID")
  publish_to "$BENCH_GW_ADDR" "$GW_PORT" 1 "$FAN_MSGS" "$FAN_RATE" yes || true
  for p in "${FAN_PIDS[@]}"; do wait_pid "$p" 60 || true; done
  cpu1=$(cpu_ns "$GW_PID")
  tx1=$(tx_bytes "$(ns_gw)")
  gw_scrape "$out/logs/metrics.$RUN_N.after"
  record fanout multicast "multicast $1" "{\"n\": $1, \"rate\": $FAN_RATE}" "$2" \
    "{\"messages\": $FAN_MSGS, \"sender_cpu_ns\": $((cpu1 - cpu0)), \"sender_tx_bytes\": $((tx1 - tx0)), \"gw_metrics\": $(gw_metrics_diff "$out/logs/metrics.$RUN_N.before" "$out/logs/metrics.$RUN_N.after"), \"sinks\": $(fan_collect "${FAN_OUTS[@]}")}"
  gw_rss_after "auto 1400" "{\"io\": \"auto\", \"budget\": 1400, \"when\": \"after fan-out $1 rep $2\"}"
}

fan_tcp() { # N REP
  local p tx0 tx1 fout=$out/logs/fanout.$RUN_N.json ready=$out/logs/fanout.$RUN_N.ready
  spawn "$(ns_gw)" "$fout" "$out/logs/fanout.$RUN_N.err" "${PIN_SUT[@]}" "$B/tcp_fanout" \
    --feed "$BENCH_GW_ADDR:$FAN_FEED_PORT" --serve "$BENCH_GW_ADDR:$FAN_SERVE_PORT" \
    --consumers "$1" --timeout 60 --json --ready-file "$ready"
  local fpid=$BG_PID
  wait_file "$ready" 10 || note "tcp_fanout did not become ready"
  start_fan_sinks "$1" tcp "$BENCH_GW_ADDR:$FAN_SERVE_PORT"
  tx0=$(tx_bytes "$(ns_gw)")
  publish_to "$BENCH_GW_ADDR" "$FAN_FEED_PORT" 1 "$FAN_MSGS" "$FAN_RATE" no || true
  for p in "${FAN_PIDS[@]}"; do wait_pid "$p" 60 || true; done
  wait_pid "$fpid" 10 || true
  tx1=$(tx_bytes "$(ns_gw)")
  local fj cpu
  fj=$(json_or_null "$fout")
  cpu=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]) or {}; print(int(d.get("cpu_s",0)*1e9))' "$fj")
  record fanout tcp "tcp $1" "{\"n\": $1, \"rate\": $FAN_RATE}" "$2" \
    "{\"messages\": $FAN_MSGS, \"sender_cpu_ns\": $cpu, \"sender_tx_bytes\": $((tx1 - tx0)), \"server\": $fj, \"sinks\": $(fan_collect "${FAN_OUTS[@]}")}"
}

section_fanout() {
  local n r have_gw=no
  if [ -x "$GATEWAY" ] && gw_start auto 1400; then have_gw=yes; fi
  [ "$have_gw" = yes ] || record fanout multicast missing '{}' 0 '{"missing": "mdcast-gateway not built or did not start"}'
  for n in "${FAN_NS[@]}"; do
    note "fan-out: $n consumers"
    for ((r = 1; r <= reps; r++)); do
      [ "$have_gw" = no ] || fan_multicast "$n" "$r"
      fan_tcp "$n" "$r"
    done
  done
  [ "$have_gw" = no ] || gw_stop
}

# ---------------------------------------------------------------------------------------------
# 4. and 5.: the other engineers' benchmarks, called as they ship them; their last JSON line is
# recorded as is and summarised by report.py.
section_external() { # SECTION PROGRAM [ARGS...]: PROGRAM is a script (run with bash) or a binary
  local section=$1 prog=$2
  shift 2
  if [ ! -e "$prog" ]; then
    note "$section: $prog not present"
    record "$section" external missing '{}' 0 "{\"missing\": \"$(basename "$prog") not present\"}"
    return 0
  fi
  note "$section: $(basename "$prog")"
  local rc=0 log=$out/logs/$section.out runner=()
  case "$prog" in *.sh) runner=(bash) ;; esac
  MDCAST_BUILD_DIR=$build MDCAST_SOURCE_DIR=$src BENCH_REPS=$reps BENCH_MODE=$mode \
    timeout 600 "${runner[@]}" "$prog" "$@" >"$log" 2>"$out/logs/$section.err" || rc=$?
  record "$section" external "$(basename "$prog")" "{\"exit\": $rc}" 0 "$(json_or_null "$log")"
}

# ---------------------------------------------------------------------------------------------
machine_json >"$out/machine.json"
note "machine: $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("%s cores, %s, kernel %s, load %s" % (m["cores"], m["cpu"], m["kernel"], m["loadavg_start"]))' "$out/machine.json")"
note "mode $mode, $reps repetitions, results in $out"
topo_up "$NCONS"
topo_wait_forwarding "$B" || { note "the bridge never forwarded multicast: giving up"; exit 1; }
want throughput && section_throughput
want latency && section_latency
want fanout && section_fanout
topo_down
if [ "$mode" != smoke ]; then
  want ipam && section_external ipam "$here/ipam_bench.sh"
  # libmdfeed's owner ships the consumer benchmark as a program built into tests/ (or a script).
  consumer_prog=$build/tests/consumer_bench
  [ -x "$consumer_prog" ] || consumer_prog=$here/consumer_bench.sh
  want consumer && section_external consumer "$consumer_prog"
fi
python3 "$here/report.py" --raw "$RAW" --machine "$out/machine.json" --out "$out"
cat "$out/results.md"
