# shellcheck shell=bash
# The end-to-end flow on the testbed, shared by test_e2e.sh (asserts) and demo.sh (shows).
# Source it with bash; it defines functions and settings, runs nothing.
#
#   flow_init BUILD_DIR WORK_DIR [netns|loopback]
#                                    pick a tag, set the paths and the addresses of the mode
#   flow_up                          testbed, pods gw c1 c2 (net1 via CNI) and pub (eth0 only)
#   flow_gateway_start               mdcast-gateway in gw, waits for /readyz
#   flow_taps_start ARGS...          mdfeed-tap in c1 and c2 on lines A+B (ARGS appended)
#   flow_legacy_start                socat joined on line A in vm1; packet counter in vm2
#   flow_wait_joins                  until the TGW learnt every join
#   flow_publish NAME ARGS...        mdcast-pub in pub (ARGS appended), summary in NAME.json
#   flow_gateway_stop                SIGUSR1 (end of session), then SIGTERM (drain); its exit code
#   flow_wait PID SECONDS            bounded wait for a background program, returns its code
#   flow_teardown                    CNI DEL for each pod, ENI back on its node, down, check
#   flow_cleanup                     kill what we started (by pid), down; for trap EXIT
#
# Every program runs under `timeout`, every wait is bounded in count and time.
#
# Mode netns (root): the testbed, as above. Mode loopback (for a user who cannot make
# namespaces): the same programs in the caller's namespace on `lo` with multicast loop on;
# there is no TGW, no CNI, no loss and no "host that did not join".

FLOW_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FLOW_SRC=$(cd "$FLOW_HERE/../.." && pwd)
TB="$FLOW_SRC/tests/testbed/testbed.sh"

FLOW_SESSION=MDCAST0001
FLOW_USER=pub1
FLOW_PASSWORD=secret1
# flow_env_int NAME DEFAULT MAX: prints $NAME (a whole number 1..MAX), or DEFAULT when unset;
# anything else ends the script with exit 2 naming the variable. Use as x=$(flow_env_int ...)
# under `set -e`.
flow_env_int() {
  local v=${!1:-$2}
  [[ $v =~ ^[1-9][0-9]{0,9}$ && $v -le $3 ]] || {
    echo "e2e: $1='$v' is not a whole number in 1..$3" >&2
    exit 2
  }
  echo "$v"
}

# flow_env_percent NAME DEFAULT: prints $NAME (like 5% or 0.5%, at most 100%), or DEFAULT.
flow_env_percent() {
  local v=${!1:-$2}
  if ! [[ $v =~ ^[0-9]{1,3}(\.[0-9]+)?%$ ]] || [ "${v%%[.%]*}" -gt 100 ]; then
    echo "e2e: $1='$v' is not a percentage (like 5%)" >&2
    exit 2
  fi
  echo "$v"
}

FLOW_LIMIT_S=$(flow_env_int FLOW_LIMIT_S 60 3600) # upper bound of any one program's life

FLOW_PIDS=()
declare -gA FLOW_TAP_PID=() # pid of the tap in each consumer pod

flow_log() { echo "e2e: $*" >&2; }

flow_init() {
  FLOW_B=$(cd "${1:?build dir}" && pwd)
  FLOW_W=${2:?work dir}
  FLOW_MODE=${3:-netns}
  mkdir -p "$FLOW_W"
  GW_BIN=$FLOW_B/gateway/mdcast-gateway
  TAP_BIN=$FLOW_B/feedhandler/tools/mdfeed-tap
  PUB_BIN=$FLOW_B/feedhandler/tools/mdcast-pub
  ITCHGEN_BIN=$FLOW_B/tests/tools/itchgen
  IPAM_BIN=$FLOW_B/ipam/eni-ipam
  if [ "$FLOW_MODE" = netns ]; then
    export TB_BUILD_DIR=$FLOW_B
    export TB_STATE_ROOT=$FLOW_W/testbed
    export TB_TAG; TB_TAG=$(printf 'e%x%02x' "$$" "$((RANDOM % 256))")
    # The testbed's addresses (tests/testbed/testbed.sh): pods .101, .102, ... in creation order.
    FLOW_GW_ADDR=198.18.0.101   # gw's eth0: ingress, metrics, retransmission (a Service)
    FLOW_MC_IF=net1             # the ENI that host-device moved into the pod
    FLOW_VM_IF=eth0
    FLOW_LOOP=false
    FLOW_LINE_A=239.18.1.1:30001
    FLOW_LINE_B=239.18.2.1:30001
    FLOW_INGRESS_PORT=7000 FLOW_METRICS_PORT=9100 FLOW_RETRANSMIT_PORT=31001
  else
    # Loopback is shared with everything else on the machine: ports and groups from the pid,
    # so two demos (or a test) at once do not hear each other.
    local k=$(($$ % 200))
    FLOW_GW_ADDR=127.0.0.1
    FLOW_MC_IF=lo FLOW_VM_IF=lo FLOW_LOOP=true
    FLOW_LINE_A=239.18.$((k + 1)).1:$((40000 + k))
    FLOW_LINE_B=239.18.$((k + 1)).2:$((40000 + k))
    FLOW_INGRESS_PORT=$((41000 + k)) FLOW_METRICS_PORT=$((42000 + k)) FLOW_RETRANSMIT_PORT=$((43000 + k))
  fi
}

# flow_spawn HOST CMD...: CMD inside HOST's namespace (netns mode) or here (loopback mode).
# It execs, so use it only in the background (`flow_spawn gw prog &`, then $! is prog) or in a
# subshell.
flow_spawn() {
  local h=$1; shift
  if [ "$FLOW_MODE" = netns ]; then exec ip netns exec "$TB_TAG-$h" "$@"; else exec "$@"; fi
}

# Prints what is missing to run the flow (empty when nothing is).
flow_missing() {
  local m=() f
  local need=("$GW_BIN" "$TAP_BIN" "$PUB_BIN" "$ITCHGEN_BIN" "$IPAM_BIN")
  [ "$FLOW_MODE" = loopback ] && unset 'need[4]' # no CNI on loopback
  for f in "${need[@]}"; do
    [ -x "$f" ] || m+=("${f#"$FLOW_B"/}")
  done
  command -v socat >/dev/null || m+=(socat)
  if [ "$FLOW_MODE" = loopback ]; then echo "${m[*]}"; return; fi
  [ -f "$FLOW_SRC/deploy/k8s/base/hostdevice-multicast-network.json" ] ||
    m+=(deploy/k8s/base/hostdevice-multicast-network.json)
  [ -f "$FLOW_SRC/tests/tools/mock_imds.py" ] || m+=(tests/tools/mock_imds.py)
  for f in host-device tuning; do [ -x "/usr/lib/cni/$f" ] || m+=("/usr/lib/cni/$f"); done
  echo "${m[*]}"
}

flow_up() {
  "$TB" up --nodes 3 --vms 2 >/dev/null
  local p
  for p in gw c1 c2 pub; do "$TB" pod "$p" >/dev/null; done
  # Each pod gets its node's ENI through host-device + eni-ipam + tuning (the deploy JSON).
  # shellcheck disable=SC2034 # the addresses are for the caller
  {
    FLOW_NET1_GW=$("$TB" attach gw node1)
    FLOW_NET1_C1=$("$TB" attach c1 node2)
    FLOW_NET1_C2=$("$TB" attach c2 node3)
  }
}

flow_gateway_config() {
  cat <<EOF
{
  "log_level": "info",
  "ingress": {
    "listen": "$FLOW_GW_ADDR:$FLOW_INGRESS_PORT", "heartbeat_ms": 1000, "idle_timeout_ms": 15000,
    "users": [{"username": "$FLOW_USER", "password": "$FLOW_PASSWORD", "channel": "itch"}]
  },
  "egress": {
    "interface": "$FLOW_MC_IF", "ttl": 8, "loop": $FLOW_LOOP, "payload_budget": 1400, "io": "auto",
    "heartbeat_ms": 1000, "end_of_session_repeats": 3
  },
  "channels": [{
    "name": "itch", "session": "$FLOW_SESSION", "lines": ["$FLOW_LINE_A", "$FLOW_LINE_B"],
    "retransmit_port": $FLOW_RETRANSMIT_PORT, "ring_messages": 1048576, "ring_bytes": 67108864
  }],
  "retransmit": {
    "address": "0.0.0.0", "max_messages_per_request": 1000,
    "rate_messages_per_s": 200000, "burst_messages": 50000
  },
  "metrics": {"listen": "$FLOW_GW_ADDR:$FLOW_METRICS_PORT"},
  "journal": {"dir": "$FLOW_W/journal", "fsync": "interval", "fsync_interval_ms": 10}
}
EOF
}

# flow_http PATH: GET on the gateway's metrics address, from the publisher pod over the VPC.
flow_http() {
  (flow_spawn pub timeout 5 python3 -c '
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
    sys.stdout.write(r.read().decode())' "http://$FLOW_GW_ADDR:$FLOW_METRICS_PORT$1")
}

# flow_gateway_start [LOG_FILTER_CMD]: the gateway's stderr (JSON log lines) goes to gw.log.
flow_gateway_start() {
  flow_gateway_config >"$FLOW_W/gateway.json"
  "$GW_BIN" --config "$FLOW_W/gateway.json" --check >/dev/null 2>"$FLOW_W/gw-check.log" ||
    { cat "$FLOW_W/gw-check.log" >&2; return 1; }
  flow_spawn gw timeout "$FLOW_LIMIT_S" "$GW_BIN" --config "$FLOW_W/gateway.json" \
    >"$FLOW_W/gw.out" 2>"$FLOW_W/gw.log" &
  FLOW_GW_PID=$!
  FLOW_PIDS+=("$FLOW_GW_PID")
  local t
  for ((t = 0; t < 100; t++)); do
    flow_alive "$FLOW_GW_PID" || { flow_log "gateway exited at start"; cat "$FLOW_W/gw.log" >&2; return 1; }
    flow_http /readyz >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  flow_log "gateway not ready within 10 s"
  return 1
}

# flow_taps_start ARGS...: one mdfeed-tap per consumer pod on lines A and B, re-requests to the
# gateway's retransmission port over eth0 (the VPC), as a pod would reach a Service.
flow_taps_start() {
  local c
  for c in c1 c2; do
    flow_spawn "$c" timeout "$FLOW_LIMIT_S" "$TAP_BIN" --group "$FLOW_LINE_A" \
      --group-b "$FLOW_LINE_B" --interface "$FLOW_MC_IF" --session "$FLOW_SESSION" \
      --retransmit "$FLOW_GW_ADDR:$FLOW_RETRANSMIT_PORT" "$@" >"$FLOW_W/$c.out" 2>"$FLOW_W/$c.err" &
    FLOW_PIDS+=($!)
    # shellcheck disable=SC2034 # read by the caller
    FLOW_TAP_PID[$c]=$!
  done
}

# The VM is a legacy EC2 client: plain socat, no project code. It binds the group's address so
# that, on a shared loopback, it hears line A only. vm2 joins nothing and counts every multicast
# UDP frame that reaches its link (netns mode only).
flow_legacy_start() {
  flow_spawn vm1 timeout "$FLOW_LIMIT_S" socat -u \
    "UDP4-RECV:${FLOW_LINE_A#*:},bind=${FLOW_LINE_A%:*},reuseaddr,ip-add-membership=${FLOW_LINE_A%:*}:$FLOW_VM_IF,rcvbuf=4194304" \
    "OPEN:$FLOW_W/vm1.mold,creat,trunc" 2>"$FLOW_W/vm1.err" &
  FLOW_VM_PID=$!
  FLOW_PIDS+=("$FLOW_VM_PID")
  [ "$FLOW_MODE" = netns ] || return 0
  flow_spawn vm2 python3 "$FLOW_SRC/tests/testbed/mcount.py" --iface eth0 \
    --duration "$FLOW_LIMIT_S" --ready-file "$FLOW_W/vm2.ready" >"$FLOW_W/vm2.count" &
  FLOW_IDLE_PID=$!
  FLOW_PIDS+=("$FLOW_IDLE_PID")
}

# Until the bridge's group table shows every join and vm2's counter listens (bounded: 10 s).
flow_wait_joins() {
  if [ "$FLOW_MODE" = loopback ]; then
    # No bridge to ask: wait for the taps' "joined" line and give socat a moment.
    local t
    for ((t = 0; t < 100; t++)); do
      grep -q joined "$FLOW_W/c1.err" 2>/dev/null && grep -q joined "$FLOW_W/c2.err" 2>/dev/null && break
      sleep 0.1
    done
    sleep 0.3
    return 0
  fi
  local want=("node2 grp ${FLOW_LINE_A%:*}" "node2 grp ${FLOW_LINE_B%:*}"
              "node3 grp ${FLOW_LINE_A%:*}" "node3 grp ${FLOW_LINE_B%:*}" "vm1 grp ${FLOW_LINE_A%:*}")
  local t w mdb ok
  for ((t = 0; t < 100; t++)); do
    mdb=$(bridge -n "$TB_TAG-tgw" mdb show)
    ok=1
    for w in "${want[@]}"; do grep -q "port $w" <<<"$mdb" || ok=0; done
    [ -e "$FLOW_W/vm2.ready" ] || ok=0 # vm2's counter listens before anything is sent
    [ $ok -eq 1 ] && return 0
    sleep 0.1
  done
  flow_log "the TGW did not learn every join within 10 s:"; echo "$mdb" >&2
  return 1
}

# flow_publish NAME ARGS...: mdcast-pub from the publisher pod, over TCP on the VPC.
flow_publish() {
  local name=$1; shift
  (flow_spawn pub timeout "$FLOW_LIMIT_S" "$PUB_BIN" \
    --connect "$FLOW_GW_ADDR:$FLOW_INGRESS_PORT" --user "$FLOW_USER" --password "$FLOW_PASSWORD" \
    --json "$@" >"$FLOW_W/$name.out" 2>"$FLOW_W/$name.err")
}

# flow_wait PID SECONDS: wait for a background program, at most SECONDS; returns its exit code
# (124 when it had to be stopped).
# A child that ended stays a zombie until waited for, and kill -0 still finds it: read its state.
flow_alive() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

flow_wait() {
  local pid=$1 limit=$2 t
  for ((t = 0; t < limit * 10; t++)); do
    flow_alive "$pid" || break
    sleep 0.1
  done
  if flow_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 124
  fi
  local rc=0
  wait "$pid" || rc=$?
  return $rc
}

flow_gateway_stop() {
  # SIGTERM to the gateway itself, not to the `timeout` around it: timeout would forward it to
  # the child and also to its process group, so the gateway would get it twice and a second
  # SIGTERM during the graceful shutdown may end it at once (exit 143, no end of session).
  local gw_pid
  gw_pid=$(pgrep -P "$FLOW_GW_PID" | head -n1 || true)
  # With a journal SIGTERM leaves the session open for the next start: the end of the
  # trading day is its own act.
  kill -USR1 "${gw_pid:-$FLOW_GW_PID}" 2>/dev/null || true
  sleep 0.5
  kill -TERM "${gw_pid:-$FLOW_GW_PID}" 2>/dev/null || true
  flow_wait "$FLOW_GW_PID" 10
}

# The last line of a program's stdout: its --json summary.
flow_json() { tail -n 1 "$FLOW_W/$1.out"; }
# flow_field NAME KEY: one value of that summary (KEY may be dotted: first_arrivals.b).
flow_field() {
  flow_json "$1" | python3 -c '
import json, sys
v = json.loads(sys.stdin.read())
for k in sys.argv[1].split("."):
    v = v[k]
print(v)' "$2"
}

flow_teardown() {
  local pod node
  for pod in c2 c1 gw; do
    case $pod in gw) node=node1 ;; c1) node=node2 ;; c2) node=node3 ;; esac
    "$TB" detach "$pod" "$node" || return 1
  done
}

flow_cleanup() {
  local p
  for p in "${FLOW_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${FLOW_PIDS[@]}"; do flow_wait "$p" 3 >/dev/null 2>&1 || true; done
  if [ "${FLOW_MODE:-}" = netns ] && [ -n "${TB_TAG:-}" ]; then "$TB" down >/dev/null 2>&1 || true; fi
}
