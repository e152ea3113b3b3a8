#!/usr/bin/env bash
# Quick gateway benchmark (issue 4): 40-byte messages, one publisher -> gateway -> one receiver,
# each in its own network namespace (veth, 198.18.0.0/15, group 239.0.0.0/8), zero loss
# checked by the receiver (contiguous MoldUDP64 sequence numbers). In the same run, beside it:
# a raw sendmmsg blaster of the same datagrams (the ceiling) and a socat TCP->multicast relay
# (the naive baseline, which keeps no message framing). The gateway runs in three egress
# variants -- io_uring plain IORING_OP_SEND, io_uring SEND_ZC on registered buffers, sendmmsg --
# for payload budgets 1400 and 8472 (BENCH_BUDGETS), with the gateway's CPU per message.
# Then the gateway's own arrival->send histogram at 100 k msg/s gives p99, and RSS is read
# before and after. Figures are medians of REPEAT runs; ratios are within this run only.
# Runs only on request:  MDCAST_BENCH=1 ctest -L bench   (or MDCAST_BENCH=1 bash gateway_bench.sh)
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091  # tests/common/lib.sh
source "$here/../common/lib.sh"
[ "${MDCAST_BENCH:-0}" = 1 ] || skip "benchmark: run with MDCAST_BENCH=1 (ctest -L bench)"
need_root
need_cmd socat "apt-get install socat"
need_cmd python3 "apt-get install python3"

B=$MDCAST_BUILD_DIR
GW=$B/gateway/mdcast-gateway
TOOL=$B/tests/gateway_bench_tool
if [ ! -x "$GW" ] || [ ! -x "$TOOL" ]; then fail "build $GW and $TOOL first"; fi
COUNT=${BENCH_COUNT:-2000000}
REPEAT=${BENCH_REPEAT:-3}
PACED_RATE=${BENCH_PACED_RATE:-100000}
PACED_COUNT=$((PACED_RATE * 2))
if grep -q "MDCAST_SANITIZE:BOOL=ON" "$B/CMakeCache.txt" 2>/dev/null; then
  echo "NOTE: $B is a sanitizer build; figures are not representative"
fi

tag=$(test_tag)
P=${tag}p G=${tag}g R=${tag}r
work=$(mktemp -d)
cleanup() {
  # Never stop half way: a failing kill or grep must not leave namespaces behind.
  set +e +o pipefail
  grep -h '"level":"\(warn\|error\)"' "$work"/gw-*.log 2>/dev/null | sed 's/^/  gateway log: /'
  for ns in $P $G $R; do ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null; done
  for ns in $P $G $R; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$P"; ip netns add "$G"; ip netns add "$R"
ip link add "${tag}a" netns "$P" type veth peer name "${tag}b" netns "$G"
ip link add "${tag}c" netns "$G" type veth peer name "${tag}d" netns "$R"
for ns in $P $G $R; do ip -n "$ns" link set lo up; done
ip -n "$P" addr add 198.18.1.2/24 dev "${tag}a"; ip -n "$P" link set "${tag}a" up
ip -n "$G" addr add 198.18.1.1/24 dev "${tag}b"; ip -n "$G" link set "${tag}b" up
ip -n "$G" addr add 198.18.2.1/24 dev "${tag}c"; ip -n "$G" link set "${tag}c" up
ip -n "$R" addr add 198.18.2.2/24 dev "${tag}d"; ip -n "$R" link set "${tag}d" up
# Budget 8472 needs the TGW's MTU (8500) on the egress link.
ip -n "$G" link set "${tag}c" mtu 9000; ip -n "$R" link set "${tag}d" mtu 9000
for ns in $G $R; do ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.force_igmp_version=2; done
ip netns exec "$G" sysctl -qw "net.ipv4.conf.${tag}c.force_igmp_version=2"

# Both gateways run side by side (one per backend) and every round measures all four senders
# in turn, so slow drift of this shared machine's load hits each of them alike.
# Fixed placement (BENCH_PIN=0 turns it off): the relay under test (gateway, blaster, socat)
# on CPU 0, publisher and receiver on CPU 1, so the scheduler cannot reshuffle them per run.
PIN_RELAY=() PIN_ENDS=()
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_RELAY=(taskset -c 0) PIN_ENDS=(taskset -c 1)
fi
# Gateway variants: VARIANT-BUDGET, VARIANT one of
#   uring  io=io_uring, zerocopy off (plain IORING_OP_SEND on fixed files)
#   zc     io=io_uring, zerocopy on for every data packet, pool registered (SEND_ZC fixed)
#   mmsg   io=sendmmsg
read -r -a BUDGETS <<< "${BENCH_BUDGETS:-1400 8472}"
GWS=()
for b in "${BUDGETS[@]}"; do for v in uring zc mmsg; do GWS+=("$v-$b"); done; done
declare -A GROUPOF=([blaster]=239.18.1.3:30003 [socat]=239.18.1.4:30004)
declare -A PORTOF MPORTOF GWPID
i=0
for g in "${GWS[@]}"; do
  GROUPOF[gateway-$g]=239.18.2.$((10 + i)):$((30010 + i))
  PORTOF[$g]=$((7000 + i)); MPORTOF[$g]=$((9100 + i)); i=$((i + 1))
done

egress_json() { # variant budget
  case $1 in
    uring) echo "\"io\":\"io_uring\",\"zerocopy\":\"off\",\"payload_budget\":$2" ;;
    zc) echo "\"io\":\"io_uring\",\"zerocopy\":\"on\",\"zerocopy_threshold\":64,\"registered_buffers\":true,\"payload_budget\":$2" ;;
    mmsg) echo "\"io\":\"sendmmsg\",\"payload_budget\":$2" ;;
    auto) echo "\"io\":\"auto\",\"zerocopy\":\"auto\",\"zerocopy_threshold\":1024,\"payload_budget\":$2" ;;
  esac
}

start_gw() { # variant-budget [ingress-port metrics-port group]
  local g=$1 n=${2:-${PORTOF[$1]}} mp=${3:-${MPORTOF[$1]}} grp=${4:-${GROUPOF[gateway-$1]}}
  cat > "$work/gw-$g.json" <<JSON
{"ingress":{"listen":"198.18.1.1:$n","users":[{"username":"pub1","password":"pw1","channel":"bench"}]},
 "egress":{"interface":"${tag}c","ttl":4,$(egress_json "${g%-*}" "${g##*-}")},
 "channels":[{"name":"bench","session":"BENCH","lines":["$grp"],
              "retransmit_port":$((n + 24000)),"ring_messages":262144,"ring_bytes":16777216}],
 "metrics":{"listen":"127.0.0.1:$mp"}}
JSON
  # BENCH_RT=1 runs the gateway SCHED_FIFO, as a pinned/dedicated-core deployment would see it.
  local rt=(); [ "${BENCH_RT:-0}" = 1 ] && rt=(chrt -f 20)
  ip netns exec "$G" "${PIN_RELAY[@]}" "${rt[@]}" "$GW" --config "$work/gw-$g.json" --log-level info \
    2>"$work/gw-$g.log" &
  GWPID[$g]=$!
  for _ in $(seq 100); do
    http_get "$mp" /healthz >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  cat "$work/gw-$g.log"; fail "gateway ($g) did not start"
}
stop_gw() { # io
  kill -TERM "${GWPID[$1]}"; wait "${GWPID[$1]}" || fail "gateway ($1) exit status $?"
  unset "GWPID[$1]"
}
# GET http://127.0.0.1:PORT/PATH inside the gateway namespace (python3: no curl needed).
http_get() { # port path
  ip netns exec "$G" python3 -c '
import sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:%s%s" % (sys.argv[1], sys.argv[2]), timeout=5) as r:
    sys.stdout.write(r.read().decode())' "$1" "$2"
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/${GWPID[$1]}/status"; }
# CPU time (user + system, clock ticks) the gateway has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/${GWPID[$1]}/stat"; }
TCK=$(getconf CLK_TCK)
scrape() { http_get "${MPORTOF[$1]}" /metrics; }

# One measured transfer: rx in R, sender command in P or G. Prints the rx line.
measure() { # name count raw(0/1) sender-ns sender-args...
  local name=$1 count=$2 raw=$3 sns=$4; shift 4
  local rxflags=(--budget 1400); [ "$raw" = 1 ] && rxflags=(--raw)
  [[ $name == gateway-* ]] && rxflags=(--budget "${name##*-}")
  ip netns exec "$R" "${PIN_ENDS[@]}" "$TOOL" rx --group "${GROUPOF[$name]}" --ifaddr 198.18.2.2 --count "$count" \
    "${rxflags[@]}" > "$work/rx.out" &
  local rxpid=$!
  for _ in $(seq 100); do grep -q "rx ready" "$work/rx.out" 2>/dev/null && break; sleep 0.02; done
  local pin=("${PIN_ENDS[@]}"); [ "$sns" = "$G" ] && pin=("${PIN_RELAY[@]}")
  ip netns exec "$sns" "${pin[@]}" "$TOOL" "$@" --count "$count" > "$work/tx.out" ||
    fail "$name: sender failed"
  wait "$rxpid" || true
  grep "^rx messages" "$work/rx.out"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

sender_args() { # name -> "ns raw args..."
  case $1 in
    blaster) echo "$G 0 blast --group ${GROUPOF[blaster]} --ifaddr 198.18.2.1 --size 40 --budget 1400" ;;
    socat) echo "$P 1 pub --connect 198.18.1.1:8000 --raw --size 40" ;;
    gateway-*) echo "$P 0 pub --connect 198.18.1.1:${PORTOF[${1#gateway-}]} --size 40" ;;
  esac
}

ip netns exec "$G" "${PIN_RELAY[@]}" socat -b 1400 -u TCP4-LISTEN:8000,bind=198.18.1.1,reuseaddr,fork \
  "UDP4-DATAGRAM:${GROUPOF[socat]},ip-multicast-if=198.18.2.1,ip-multicast-ttl=4" &
socatpid=$!
# What `auto` (io and zerocopy) picks on this machine for each budget: start, read the
# probe lines, stop. (The probe sends to a loopback socket of its own.)
for b in "${BUDGETS[@]}"; do
  start_gw "auto-$b" 6990 9090 239.18.1.9:30009
  grep -h "probe" "$work/gw-auto-$b.log" | sed -n 's/.*"msg":"\(.*\)".*/  auto, budget '"$b"': \1/p'
  stop_gw "auto-$b"
done

declare -A RSS0 RSSR
for g in "${GWS[@]}"; do start_gw "$g"; RSS0[$g]=$(rss_kb "$g"); done
sleep 0.3

DEFAULT_NAMES="blaster socat"
for g in "${GWS[@]}"; do DEFAULT_NAMES+=" gateway-$g"; done
read -r -a NAMES <<< "${BENCH_SENDERS:-$DEFAULT_NAMES}"
declare -A RATES LOSS CPUNS
echo "gateway benchmark: $COUNT x 40-byte messages per run, $REPEAT rounds of all ${#NAMES[@]} senders"
for r in $(seq "$REPEAT"); do
  for name in "${NAMES[@]}"; do
    read -r sns raw args <<< "$(sender_args "$name")"
    io=${name#gateway-}
    [ "$io" != "$name" ] && c0=$(cpu_ticks "$io")
    # shellcheck disable=SC2086
    line=$(measure "$name" "$COUNT" "$raw" "$sns" $args)
    if [ "$io" != "$name" ]; then
      # The gateway's own CPU per message: independent of which end of the pipe is the limit.
      ns=$(awk -v t=$(( $(cpu_ticks "$io") - c0 )) -v hz="$TCK" -v n="$COUNT" \
           'BEGIN { printf "%.1f", t / hz * 1e9 / n }')
      CPUNS[$name]+="$ns "
      line="$line gateway_cpu_ns_per_msg=$ns"
    fi
    echo "  round $r $name: $line"
    RATES[$name]+="$(echo "$line" | field rate) "
    LOSS[$name]=$(( ${LOSS[$name]:-0} + $(echo "$line" | field lost) + $(echo "$line" | field gaps) +
                    $(echo "$line" | field bad) + $(echo "$line" | field oversize) ))
  done
  for g in "${GWS[@]}"; do RSSR[$g]+="$(rss_kb "$g") "; done
done
kill "$socatpid" 2>/dev/null; wait "$socatpid" 2>/dev/null || true
declare -A RATE
# shellcheck disable=SC2086  # RATES holds space-separated figures
for name in "${NAMES[@]}"; do RATE[$name]=$(printf '%s\n' ${RATES[$name]} | median); done

declare -A P99 MEAN
read -r -a PACED <<< "${BENCH_PACED:-uring-1400 zc-1400 mmsg-1400}"
for g in "${GWS[@]}"; do
  if [[ " ${PACED[*]} " != *" $g "* ]]; then
    RSSR[$g]+="$(rss_kb "$g")"; scrape "$g" > "$work/m1-$g"; stop_gw "$g"; continue
  fi
  # Latency at a steady 100 k msg/s, from the gateway's own histogram (difference of scrapes).
  scrape "$g" > "$work/m0"
  line=$(measure "gateway-$g" "$PACED_COUNT" 0 "$P" pub --connect "198.18.1.1:${PORTOF[$g]}" \
         --size 40 --rate "$PACED_RATE")
  echo "  gateway-$g paced ${PACED_RATE}/s: $line"
  scrape "$g" > "$work/m1-$g"
  read -r p99 mean < <(awk '
    FNR == 1 { f++ }
    /^mdcast_arrival_to_send_seconds_bucket/ { match($0, /le="[^"]*"/); le = substr($0, RSTART+4, RLENGTH-5);
      if (f == 1) b0[le] = $2; else { b1[le] = $2; order[++n] = le } }
    /^mdcast_arrival_to_send_seconds_sum/ { s[f] = $2 }
    /^mdcast_arrival_to_send_seconds_count/ { c[f] = $2 }
    END { tot = c[2] - c[1]; for (i = 1; i <= n; i++) { le = order[i];
            if (b1[le] - b0[le] >= 0.99 * tot) { p = le; break } }
          printf "%s %.1f\n", (p == "+Inf" ? p : p * 1e6), (s[2] - s[1]) / tot * 1e6 }' "$work/m0" "$work/m1-$g")
  P99[$g]=$p99; MEAN[$g]=$mean
  RSSR[$g]+="$(rss_kb "$g")"
  stop_gw "$g"
done
for g in "${GWS[@]}"; do
  m=$work/m1-$g
  want=io_uring; [ "${g%-*}" = mmsg ] && want=sendmmsg
  grep -q "backend=\"$want\"" "$m" || fail "gateway $g did not run backend $want"
  zc=$(awk '/^mdcast_egress_zerocopy_sends_total/ {print $2}' "$m")
  [ "${g%-*}" = zc ] && { [ "${zc:-0}" -gt 0 ] || fail "gateway $g sent nothing zero-copy"; }
  echo "  gateway-$g: send retries $(awk '/^mdcast_send_retries_total/ {print $2}' "$m"), errors $(awk '/^mdcast_send_errors_total/ {print $2}' "$m"), zero-copy sends ${zc:-0}, of which the kernel copied $(awk '/^mdcast_egress_zerocopy_copied_total/ {print $2}' "$m"), registered buffers $(awk '/^mdcast_egress_registered_buffers/ {print $2}' "$m")"
done

ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }' || echo "-"; }
echo
echo "results (median of $REPEAT rounds, messages/s at the receiver; lost includes gaps, bad and oversize datagrams):"
printf '  %-20s %12s %8s %12s  %s\n' "sender" "msg/s" "lost" "gw ns/msg" "ratio to socat relay / to raw blaster"
declare -A CPU
for n in "${NAMES[@]}"; do
  # shellcheck disable=SC2086
  [ -n "${CPUNS[$n]:-}" ] && CPU[$n]=$(printf '%s\n' ${CPUNS[$n]} | median)
  printf '  %-20s %12.0f %8s %12s  %s / %s\n' "$n" "${RATE[$n]}" "${LOSS[$n]}" "${CPU[$n]:-}" \
    "$(ratio "${RATE[$n]}" "${RATE[socat]:-}")" "$(ratio "${RATE[$n]}" "${RATE[blaster]:-}")"
done
for b in "${BUDGETS[@]}"; do
  u=gateway-uring-$b z=gateway-zc-$b m=gateway-mmsg-$b
  echo "  budget $b, vs io_uring plain send: throughput send_zc $(ratio "${RATE[$z]:-}" "${RATE[$u]:-}"), sendmmsg $(ratio "${RATE[$m]:-}" "${RATE[$u]:-}"); gateway CPU/msg send_zc $(ratio "${CPU[$z]:-}" "${CPU[$u]:-}"), sendmmsg $(ratio "${CPU[$m]:-}" "${CPU[$u]:-}")"
done
for g in "${PACED[@]}"; do
  [ -n "${P99[$g]:-}" ] || continue
  echo "  gateway-$g at ${PACED_RATE} msg/s: arrival->send p99 <= ${P99[$g]} us (histogram bucket bound), mean ${MEAN[$g]} us"
done
for g in "${GWS[@]}"; do
  echo "  gateway-$g RSS (kB): ${RSS0[$g]} at start; after each round and at the end: ${RSSR[$g]} (ring: 262144 msgs / 16 MiB)"
done
echo "  (socat keeps no framing: its datagrams cut messages at arbitrary bytes; counted as bytes / 43)"
bad=0
for g in "${GWS[@]}"; do [ "${LOSS[gateway-$g]:-0}" = 0 ] || bad=1; done
[ "$bad" = 0 ] || fail "the gateway lost messages"
echo "PASS: gateway benchmark"
