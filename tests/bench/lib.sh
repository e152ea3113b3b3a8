# shellcheck shell=bash
# Helpers of the benchmark harness (tests/bench/run.sh): the namespace topology, process
# bookkeeping, readiness waits and the per-process counters the figures come from.
# Source it after setting TAG (unique per run); every name created carries TAG.
#
# Topology (DESIGN.md "The local testbed", reduced to what the benchmarks need):
#
#   ${TAG}-pub  (198.18.0.1)  publishers: bench_pub, blaster for "direct multicast"
#   ${TAG}-gw   (198.18.0.2)  the system under test: mdcast-gateway, socat relay, tcp_fanout,
#                             blaster for the kernel limit
#   ${TAG}-c1..cK (198.18.0.11..)  consumers: sink, mdfeed-tap
#   ${TAG}-br   a Linux bridge standing for the TGW: IGMP snooping, an IGMPv2 querier,
#               no flooding of unknown multicast, so only hosts that joined receive.
# Each host has one veth `eth0` (MTU 9000, so 8472-byte payloads pass unfragmented) on the
# bridge; unicast (TCP) and multicast share it. Addresses from 198.18.0.0/15 only.

BENCH_SUBNET_PREFIX=198.18.0
BENCH_PUB_ADDR=$BENCH_SUBNET_PREFIX.1
BENCH_GW_ADDR=$BENCH_SUBNET_PREFIX.2
BENCH_BR_ADDR=$BENCH_SUBNET_PREFIX.254
BENCH_MTU=9000
BENCH_PIDS=()

ns_pub() { echo "${TAG}-pub"; }
ns_gw() { echo "${TAG}-gw"; }
ns_br() { echo "${TAG}-br"; }
ns_cons() { echo "${TAG}-c$1"; }
cons_addr() { echo "$BENCH_SUBNET_PREFIX.$((10 + $1))"; }

# Adds host namespace $1 with address $2 on the bridge (bridge port named $3).
topo_add_host() {
  local ns=$1 addr=$2 port=$3 br
  br=$(ns_br)
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$br" link add "$port" mtu $BENCH_MTU type veth peer name eth0 netns "$ns"
  ip -n "$br" link set "$port" master br0
  # Unregistered groups are not flooded to this port: only joins open it (as on a TGW).
  ip netns exec "$br" bridge link set dev "$port" mcast_flood off 2>/dev/null || true
  ip -n "$br" link set "$port" up
  ip -n "$ns" link set eth0 mtu $BENCH_MTU
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add 239.0.0.0/8 dev eth0
  # The TGW speaks IGMPv2 only; the testbed does the same so joins look alike.
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.force_igmp_version=2 \
    net.ipv4.conf.default.force_igmp_version=2 net.ipv4.conf.eth0.force_igmp_version=2
}

# topo_up CONSUMERS: creates the bridge, the publisher, gateway and CONSUMERS consumer hosts.
topo_up() {
  local nc=$1 br i
  br=$(ns_br)
  ip netns add "$br"
  ip -n "$br" link set lo up
  # Intervals first, querier in a separate command: NOTES.md saw flooding for ~10 s otherwise.
  ip -n "$br" link add br0 mtu $BENCH_MTU type bridge mcast_snooping 1 mcast_igmp_version 2 \
    mcast_query_use_ifaddr 1 mcast_startup_query_interval 100 mcast_query_response_interval 100
  ip -n "$br" addr add "$BENCH_BR_ADDR/24" dev br0
  ip -n "$br" link set br0 up
  ip -n "$br" link set br0 type bridge mcast_querier 1
  topo_add_host "$(ns_pub)" "$BENCH_PUB_ADDR" pub
  topo_add_host "$(ns_gw)" "$BENCH_GW_ADDR" gw
  for ((i = 1; i <= nc; i++)); do
    topo_add_host "$(ns_cons "$i")" "$(cons_addr "$i")" "c$i"
  done

}

# Kills what this run started (by pid) and removes its namespaces. Safe to call twice.
topo_down() {
  local pid ns
  for pid in "${BENCH_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${BENCH_PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  done
  BENCH_PIDS=()
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${TAG}-" || true); do
    # Anything still running inside (a stray helper) goes with its namespace.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -9 "$pid" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
  done
}

# spawn NS OUTFILE ERRFILE CMD...: starts CMD in NS in the background; its pid is in BG_PID.
spawn() {
  local ns=$1 out=$2 err=$3
  shift 3
  ip netns exec "$ns" "$@" >"$out" 2>"$err" &
  BG_PID=$!
  BENCH_PIDS+=("$BG_PID")
}

# forget PID: drops PID from the cleanup list once it has been waited for.
forget() {
  local keep=() p
  for p in "${BENCH_PIDS[@]}"; do
    [ "$p" = "$1" ] || keep+=("$p")
  done
  BENCH_PIDS=("${keep[@]}")
}

# wait_pid PID SECONDS: waits for PID to exit, at most SECONDS, then kills it. Returns its
# exit status (or 124 on timeout).
wait_pid() {
  local pid=$1 limit=$2 i rc=0
  for ((i = 0; i < limit * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
    return 124
  fi
  wait "$pid" 2>/dev/null || rc=$?
  forget "$pid"
  return $rc
}

# wait_file FILE SECONDS: waits until FILE exists.
wait_file() {
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    [ -e "$1" ] && return 0
    sleep 0.05
  done
  return 1
}

# wait_tcp NS ADDR PORT SECONDS: waits until something listens on ADDR:PORT inside NS.
wait_tcp() {
  local i
  for ((i = 0; i < $4 * 20; i++)); do
    ip netns exec "$1" ss -Hltn "src $2:$3" 2>/dev/null | grep -q . && return 0
    sleep 0.05
  done
  return 1
}

# CPU time of PID (all its threads) in nanoseconds, from /proc/<pid>/task/*/schedstat
# (scheduler run time, ns precision); falls back to utime+stime ticks.
cpu_ns() {
  local pid=$1 f total=0 v
  if [ -r "/proc/$pid/schedstat" ]; then
    for f in /proc/"$pid"/task/*/schedstat; do
      read -r v _ <"$f" 2>/dev/null || continue
      total=$((total + v))
    done
    echo "$total"
    return
  fi
  awk -v hz="$(getconf CLK_TCK)" '{printf "%d\n", ($14 + $15) * 1e9 / hz}' "/proc/$pid/stat"
}

# Resident set size of PID in KiB (0 when gone).
rss_kb() {
  awk '/^VmRSS:/ {print $2; found=1} END {if (!found) print 0}' "/proc/$1/status" 2>/dev/null || echo 0
}

# Bytes sent by eth0 inside NS.
tx_bytes() {
  ip netns exec "$1" cat /sys/class/net/eth0/statistics/tx_bytes
}

# wait_join PORT GROUP SECONDS: waits until the bridge has learnt (IGMP snooping) that the host
# on bridge port PORT joined GROUP; before that the bridge would drop the group's traffic.
wait_join() {
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    ip netns exec "$(ns_br)" bridge mdb show dev br0 port "$1" grp "$2" 2>/dev/null | grep -q "$2" && return 0
    sleep 0.05
  done
  return 1
}

# topo_wait_forwarding BENCH_BIN_DIR: waits (at most ~15 s) until the bridge forwards a joined
# group. Until its own IGMP querier counts as present (about one query response interval after
# it was switched on) the bridge treats every group as unregistered, and with mcast_flood off it
# then delivers nothing at all.
topo_wait_forwarding() {
  local bin=$1 i out probe=239.1.255.1:5999
  for ((i = 0; i < 15; i++)); do
    out=$(mktemp)
    ip netns exec "$(ns_cons 1)" "$bin/sink" --mold "$probe" --interface "$(cons_addr 1)" \
      --count 1 --timeout 1 --json >"$out" 2>/dev/null &
    local spid=$!
    wait_join c1 "${probe%:*}" 1 || true
    ip netns exec "$(ns_gw)" "$bin/blaster" --dest "$probe" --interface "$BENCH_GW_ADDR" \
      --count 1 >/dev/null 2>&1 || true
    wait "$spid" 2>/dev/null || true
    if grep -q '"lost": 0,' "$out"; then
      rm -f "$out"
      return 0
    fi
    rm -f "$out"
  done
  return 1
}
