#!/usr/bin/env bash
# testbed.sh: the local stand-in for EKS + a Transit Gateway multicast domain (DESIGN.md,
# "The local testbed"; docs/TESTBED.md has the picture). Everything lives in network
# namespaces named "<tag>-<host>"; no link, address or route is added to the root namespace.
#
#   testbed.sh up [--tag T] [--nodes N] [--vms M]   build TGW, VPC, nodes, VMs; prints the tag
#   testbed.sh pod NAME                             an empty pod with eth0 on the VPC bridge
#   testbed.sh vm                                   one more VM on the TGW bridge; prints its name
#   testbed.sh attach POD NODE                      CNI ADD: NODE's eth1 -> POD's net1
#   testbed.sh detach POD NODE                      CNI DEL: net1 goes back to NODE as eth1
#   testbed.sh check-attach POD NODE                CNI CHECK
#   testbed.sh netem HOST off|NETEM-ARGS...         tc netem on HOST's TGW port (no sch_netem: loss via nftables)
#   testbed.sh loss-count HOST                      frames the loss dropped on that port
#   testbed.sh igmpv3-count                         IGMPv3 reports the TGW ignored (dropped)
#   testbed.sh imds-log NODE                        requests NODE's mock IMDSv2 answered
#   testbed.sh exec HOST CMD...                     run CMD inside HOST's namespace
#   testbed.sh verify                               multicast delivery follows joins (socat)
#   testbed.sh status | down | check                show | remove everything | prove it is gone
#   testbed.sh list                                 tags with something left (for down --tag)
#
# Every command except `up` takes the tag from --tag or $TB_TAG. `attach`, `check-attach` and
# `detach` need $TB_BUILD_DIR (the build dir that holds ipam/eni-ipam).
#
# Addressing (NETWORK RULE: 198.18.0.0/15 only, groups 239.0.0.0/8):
#   VPC (eth0, unicast)   198.18.0.0/24: node i = .(10+i), pods = .(100+k)
#   TGW (multicast ENIs)  198.18.1.0/24: bridge/querier = .1, node i's ENI = .(10+i), VM j = .(200+j)
set -euo pipefail

TB_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TB_SRC=$(cd "$TB_HERE/../.." && pwd)
TB_STATE_ROOT=${TB_STATE_ROOT:-/run/mdcast-testbed}
TB_IMDS_PORT=${TB_IMDS_PORT:-1338}
TB_NETCONF=$TB_SRC/deploy/k8s/base/hostdevice-multicast-network.json
TB_CNI_SYS=${TB_CNI_SYS:-/usr/lib/cni}
TB_VPC_NET=198.18.0
TB_TGW_NET=198.18.1
TB_MTU=8500

log() { echo "testbed: $*" >&2; }
die() { echo "testbed: error: $*" >&2; exit 1; }

ns() { echo "$TB_TAG-$1"; }
nsx() { local h=$1; shift; ip netns exec "$(ns "$h")" "$@"; }
state() { echo "$TB_STATE_ROOT/$TB_TAG"; }
have_ns() { [ -e "/var/run/netns/$(ns "$1")" ]; }

# The fixed MAC of node i's multicast ENI: 02 (locally administered), c6:12 (198.18), 01, i.
node_mac() { printf '02:00:c6:12:01:%02x' "$1"; }
node_index() { [[ $1 =~ ^node([0-9]+)$ ]] || die "'$1' is not a node name (node1, node2, ...)"; echo "${BASH_REMATCH[1]}"; }

# opt_value OPTION ARGS...: dies unless OPTION is followed by a non-empty value (under
# `set -u` a missing one would end the script with a shell error naming no option).
opt_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }

check_tag() {
  [ -n "${TB_TAG:-}" ] || die "no tag: pass --tag T or set TB_TAG"
  [[ $TB_TAG =~ ^[a-z][a-z0-9]{1,15}$ ]] || die "bad tag '$TB_TAG' (a-z0-9, 2-16 chars)"
}

# Host names become bridge port names (IFNAMSIZ 16 with "p-" prefix) and namespace suffixes.
check_host_name() {
  [[ $1 =~ ^[a-z][a-z0-9]{0,11}$ ]] || die "bad host name '$1' (a-z0-9, at most 12 chars)"
}

# new_ns HOST [pod]: a namespace with lo up and IPv6 off.
new_ns() {
  local h=$1 kind=${2:-host}
  have_ns "$h" && die "namespace $(ns "$h") already exists"
  ip netns add "$(ns "$h")"
  ip -n "$(ns "$h")" link set lo up
  # TGW multicast speaks IGMPv2 only (DESIGN.md "IGMP and the TGW"): nodes and VMs force it as
  # the node installer and a VM's sysctl file do. A pod keeps the kernel's defaults, as a real
  # pod does: its net1 gets IGMPv2 from the tuning plugin only.
  [ "$kind" = pod ] ||
    nsx "$h" sysctl -qw net.ipv4.conf.all.force_igmp_version=2 net.ipv4.conf.default.force_igmp_version=2
  # IPv4 only: no MLD or router solicitations in the captures and the bridge's group table.
  nsx "$h" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

# --- up ---------------------------------------------------------------------------------------

make_tgw() {
  new_ns tgw
  local n; n=$(ns tgw)
  # Snooping with an IGMPv2 querier makes the bridge forward a group only to ports that joined
  # it, like the TGW. The querier is switched on in a second command: set together with the
  # intervals, the bridge kept flooding for about 10 s (NOTES.md).
  ip -n "$n" link add br0 mtu $TB_MTU type bridge mcast_snooping 1 mcast_igmp_version 2 \
    mcast_query_use_ifaddr 1 mcast_startup_query_interval 100 mcast_query_response_interval 100
  # The querier needs a source address (mcast_query_use_ifaddr): the bridge gets .1.
  ip -n "$n" addr add $TB_TGW_NET.1/24 dev br0
  ip -n "$n" link set br0 up
  ip -n "$n" link set br0 type bridge mcast_querier 1
  TB_QUERIER_SINCE=$(date +%s%N)
  # The TGW understands IGMPv2 only: an IGMPv3 report is not a join there. The Linux bridge
  # would snoop it, so it is dropped before snooping sees it. A host that does not force v2
  # then stays unregistered until it answers a (v2) query, as on AWS; the pods rely on the
  # tuning plugin's force_igmp_version=2, and this makes the testbed prove it works.
  nsx tgw nft 'add table bridge tgw; add chain bridge tgw joins { type filter hook prerouting priority -200; policy accept; }'
  nsx tgw nft add rule bridge tgw joins igmp type membership-report-v3 counter drop comment '"igmpv3"'
}

# Until the querier has existed for one query response interval (1 s here), the bridge cannot
# trust its group table and floods multicast only to ports with mcast_flood on, i.e. to none:
# members would get nothing (br_multicast_querier_exists() in the kernel's bridge code).
wait_querier() {
  local ms=$(((TB_QUERIER_SINCE - $(date +%s%N)) / 1000000 + 1200))
  [ "$ms" -gt 0 ] && sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  return 0
}

make_vpc() {
  new_ns vpc
  ip -n "$(ns vpc)" link add br0 type bridge mcast_snooping 0
  ip -n "$(ns vpc)" link set br0 up
}

# tgw_port HOST IFNAME [MAC]: a veth from a new TGW bridge port named HOST to IFNAME in HOST.
tgw_port() {
  local h=$1 ifname=$2 mac=${3:-}
  local peer=(name "$ifname" mtu "$TB_MTU")
  [ -n "$mac" ] && peer+=(address "$mac")
  ip -n "$(ns tgw)" link add "$h" mtu $TB_MTU type veth peer "${peer[@]}" netns "$(ns "$h")"
  ip -n "$(ns tgw)" link set "$h" master br0 up
  # Unknown multicast must not reach a port that did not join (kernel bridge docs).
  bridge -n "$(ns tgw)" link set dev "$h" mcast_flood off
}

# vpc_port HOST ADDR: eth0 in HOST on the VPC bridge with ADDR/24.
vpc_port() {
  local h=$1 addr=$2
  ip -n "$(ns vpc)" link add "p-$h" type veth peer name eth0 netns "$(ns "$h")"
  ip -n "$(ns vpc)" link set "p-$h" master br0 up
  ip -n "$(ns "$h")" addr add "$addr/24" dev eth0
  ip -n "$(ns "$h")" link set eth0 up
}

make_node() {
  local i=$1 h="node$1"
  new_ns "$h"
  vpc_port "$h" "$TB_VPC_NET.$((10 + i))"
  # eth1 stands for the node's multicast ENI: fixed MAC (IMDS answers for it), MTU 8500 and no
  # address, as the node installer leaves it for host-device to move into a pod.
  tgw_port "$h" eth1 "$(node_mac "$i")"
  ip -n "$(ns "$h")" link set eth1 up
  echo "$h" >>"$(state)/nodes"
}

make_vm() {
  local j=$1 h="vm$1"
  new_ns "$h"
  tgw_port "$h" eth0
  ip -n "$(ns "$h")" addr add "$TB_TGW_NET.$((200 + j))/24" dev eth0
  ip -n "$(ns "$h")" link set eth0 up
  ip -n "$(ns "$h")" route add 224.0.0.0/4 dev eth0
  echo "$h" >>"$(state)/vms"
}

cmd_up() {
  local nodes=3 vms=2
  while [ $# -gt 0 ]; do
    case $1 in
      --tag) opt_value "$@"; TB_TAG=$2; shift 2 ;;
      --nodes) opt_value "$@"; nodes=$2; shift 2 ;;
      --vms) opt_value "$@"; vms=$2; shift 2 ;;
      *) die "up: unknown argument '$1'" ;;
    esac
  done
  [[ $nodes =~ ^[0-9]+$ && $nodes -ge 1 && $nodes -le 8 ]] || die "--nodes must be 1..8"
  [[ $vms =~ ^[0-9]+$ && $vms -le 8 ]] || die "--vms must be 0..8"
  TB_TAG=${TB_TAG:-$(printf 'tb%x%02x' "$$" "$((RANDOM % 256))")}
  check_tag
  [ -e "$(state)" ] && die "testbed '$TB_TAG' already exists (down it first)"
  mkdir -p "$(state)"
  : >"$(state)/nodes"; : >"$(state)/vms"; : >"$(state)/pods"
  # A half-built testbed is removed at once: nothing is left behind when a step fails.
  # shellcheck disable=SC2154 # rc is assigned inside the trap string
  trap 'rc=$?; [ $rc -eq 0 ] || { log "up failed, removing what was built"; cmd_down >/dev/null 2>&1 || true; }' EXIT
  make_tgw
  make_vpc
  local i
  for ((i = 1; i <= nodes; i++)); do make_node "$i"; done
  for ((i = 1; i <= vms; i++)); do make_vm "$i"; done
  wait_querier
  trap - EXIT
  log "up: tag $TB_TAG, $nodes node(s), $vms VM(s)"
  echo "$TB_TAG"
}

# --- pods and the CNI chain -------------------------------------------------------------------

cmd_pod() {
  local p=${1:?pod NAME}
  check_host_name "$p"
  case $p in tgw | vpc | node* | vm*) die "'$p' is reserved for the testbed's own hosts" ;; esac
  [ -d "$(state)" ] || die "no testbed '$TB_TAG'"
  local k; k=$(($(wc -l <"$(state)/pods") + 1))
  [ "$k" -le 100 ] || die "too many pods"
  new_ns "$p" pod
  vpc_port "$p" "$TB_VPC_NET.$((100 + k))"
  echo "$p $TB_VPC_NET.$((100 + k))" >>"$(state)/pods"
  echo "$TB_VPC_NET.$((100 + k))"
}

cmd_vm() {
  [ -d "$(state)" ] || die "no testbed '$TB_TAG'"
  local j; j=$(($(wc -l <"$(state)/vms") + 1))
  [ "$j" -le 8 ] || die "at most 8 VMs"
  make_vm "$j"
  echo "vm$j"
}

# The mock IMDSv2 of a node runs on that node's loopback and answers for its ENI's MAC only.
start_imds() {
  local node=$1 i; i=$(node_index "$node")
  local pidf; pidf="$(state)/imds-$node.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then return 0; fi
  local mock=$TB_SRC/tests/tools/mock_imds.py
  [ -f "$mock" ] || die "mock IMDS $mock is missing (branch ipam)"
  local macs; macs="$(state)/imds-$node.json"
  printf '{"%s": {"local-ipv4s": ["%s"], "subnet-ipv4-cidr-block": "%s"}}\n' \
    "$(node_mac "$i")" "$TB_TGW_NET.$((10 + i))" "$TB_TGW_NET.0/24" >"$macs"
  local out; out="$(state)/imds-$node.log"
  ip netns exec "$(ns "$node")" python3 "$mock" --listen "127.0.0.1:$TB_IMDS_PORT" --macs "$macs" \
    --log "$(state)/imds-$node.requests" >"$out" 2>&1 &
  echo $! >"$pidf"
  local t
  for ((t = 0; t < 100; t++)); do
    grep -qs "listening on" "$out" && return 0
    kill -0 "$(cat "$pidf")" 2>/dev/null || die "mock IMDS on $node exited: $(cat "$out")"
    sleep 0.05
  done
  die "mock IMDS on $node did not say 'listening on' within 5 s"
}

# run_cni VERB POD NODE: the network's plugin list run as libcni runs it, inside NODE: the
# deploy JSON as the NAD embeds it, with one override, the IMDS endpoint: the mock on the node's
# loopback (NETWORK RULE: never the real metadata address in tests).
run_cni() {
  local verb=$1 pod=$2 node=$3
  : "${TB_BUILD_DIR:?TB_BUILD_DIR must name the build dir that holds ipam/eni-ipam}"
  [ -x "$TB_BUILD_DIR/ipam/eni-ipam" ] || die "$TB_BUILD_DIR/ipam/eni-ipam is missing (build it)"
  [ -f "$TB_NETCONF" ] || die "network config $TB_NETCONF is missing"
  [ "$verb" = DEL ] || start_imds "$node"
  nsx "$node" python3 "$TB_HERE/cni_run.py" "$verb" --conflist "$TB_NETCONF" \
    --netns "/var/run/netns/$(ns "$pod")" --ifname net1 --container-id "$TB_TAG-$pod" \
    --cache-dir "$(state)/cni" --cni-path "$(cd "$TB_BUILD_DIR/ipam" && pwd):$TB_CNI_SYS" \
    --set "ipam.imds_endpoint=http://127.0.0.1:$TB_IMDS_PORT"
}

cmd_attach() {
  local pod=${1:?attach POD NODE} node=${2:?attach POD NODE}
  have_ns "$pod" || die "no pod '$pod'"
  have_ns "$node" || die "no node '$node'"
  ip -n "$(ns "$node")" link show eth1 >/dev/null 2>&1 || die "$node has no eth1 (attached elsewhere?)"
  run_cni ADD "$pod" "$node" >"$(state)/cni-$pod.result"
  echo "$pod $node" >>"$(state)/attachments"
  # The pod must now hold net1 with the ENI's MAC; say which address it got.
  local mac; mac=$(ip -n "$(ns "$pod")" -o link show net1 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
  [ "$mac" = "$(node_mac "$(node_index "$node")")" ] || die "net1 in $pod has MAC '$mac', not $node's ENI"
  ip -n "$(ns "$pod")" -4 -o addr show dev net1 | awk '{print $4}'
}

cmd_check_attach() {
  local pod=${1:?check-attach POD NODE} node=${2:?check-attach POD NODE}
  run_cni CHECK "$pod" "$node"
}

cmd_detach() {
  local pod=${1:?detach POD NODE} node=${2:?detach POD NODE}
  run_cni DEL "$pod" "$node"
  if [ -f "$(state)/attachments" ]; then
    grep -v "^$pod $node\$" "$(state)/attachments" >"$(state)/attachments.new" || true
    mv "$(state)/attachments.new" "$(state)/attachments"
  fi
  # host-device moves the ENI back under its old name; prove it.
  local mac; mac=$(ip -n "$(ns "$node")" -o link show eth1 2>/dev/null | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
  [ "$mac" = "$(node_mac "$(node_index "$node")")" ] || die "eth1 did not come back to $node"
}

# IGMPv3 reports the TGW stand-in dropped: hosts that did not force IGMPv2.
cmd_igmpv3_count() {
  { nsx tgw nft list chain bridge tgw joins 2>/dev/null || true; } |
    awk '/comment "igmpv3"/ {for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1)}' | grep . || echo 0
}

# imds-log NODE: the requests the node's mock IMDSv2 answered, one a line (METHOD PATH STATUS ...).
cmd_imds_log() {
  local node=${1:?imds-log NODE}
  cat "$(state)/imds-$node.requests" 2>/dev/null || true
}

# --- netem --------------------------------------------------------------------------------------

# The TGW port behind HOST: a node or VM is its own port; a pod's net1 sits behind its node's.
port_of() {
  local h=$1
  if [ -f "$(state)/attachments" ]; then
    local n; n=$(awk -v p="$h" '$1 == p {print $2}' "$(state)/attachments" | head -n1)
    [ -n "$n" ] && { echo "$n"; return; }
  fi
  ip -n "$(ns tgw)" link show "$h" >/dev/null 2>&1 || die "'$h' has no TGW port"
  echo "$h"
}

have_netem() {
  # This machine's kernel may lack sch_netem (this project's CI VM does): probe on the TGW's
  # loopback-free bridge port by adding and removing a netem qdisc on br0's own queue.
  tc -n "$(ns tgw)" qdisc add dev br0 root netem delay 0ms 2>/dev/null || return 1
  tc -n "$(ns tgw)" qdisc del dev br0 root 2>/dev/null || true
}

# Loss without sch_netem: an nftables bridge-family rule drops a random share of the UDP frames
# forwarded out of the port. IGMP is spared so the port's joins stay stable.
nft_loss() {
  local port=$1 pct=$2
  [[ $pct =~ ^([0-9]+)(\.([0-9]{1,2}))?%$ ]] || die "netem: loss must look like 5% or 0.25% (got '$pct')"
  local per10k=$((10#${BASH_REMATCH[1]} * 100 + 10#$(printf '%-2s' "${BASH_REMATCH[3]}" | tr ' ' 0)))
  [ "$per10k" -le 10000 ] || die "netem: loss above 100%"
  nsx tgw nft add table bridge tbloss
  nsx tgw nft 'add chain bridge tbloss drops { type filter hook forward priority 0; policy accept; }'
  nft_loss_off "$port"
  local pick=(numgen random mod 10000 "<" "$per10k")
  [ "$per10k" -eq 10000 ] && pick=()
  nsx tgw nft add rule bridge tbloss drops oifname "$port" ip protocol udp \
    "${pick[@]}" counter drop comment "\"loss $port\""
}

nft_loss_off() {
  local port=$1 h
  nsx tgw nft list table bridge tbloss >/dev/null 2>&1 || return 0
  for h in $(nsx tgw nft -a list chain bridge tbloss drops | awk -v c="\"loss $port\"" \
      'index($0, "comment " c) {print $NF}'); do
    nsx tgw nft delete rule bridge tbloss drops handle "$h"
  done
}

cmd_netem() {
  local h=${1:?netem HOST off|ARGS...}; shift
  local port; port=$(port_of "$h")
  if [ "${1:-}" = off ]; then
    tc -n "$(ns tgw)" qdisc del dev "$port" root 2>/dev/null || true
    nft_loss_off "$port"
    return 0
  fi
  [ $# -gt 0 ] || die "netem: give netem arguments (e.g. loss 5%) or off"
  if have_netem; then
    # Egress of the bridge port = traffic towards the host: it acts on what the host receives.
    tc -n "$(ns tgw)" qdisc replace dev "$port" root netem "$@"
  elif [ $# -eq 2 ] && [ "$1" = loss ]; then
    log "netem: no sch_netem in this kernel; loss $2 on $port through nftables instead"
    nft_loss "$port" "$2"
  else
    die "netem: this kernel has no sch_netem; only 'loss P%' can be emulated (nftables)"
  fi
}

# Frames dropped on HOST's port by the loss (tc netem's drop counter, or the nftables rule's).
cmd_loss_count() {
  local port; port=$(port_of "${1:?loss-count HOST}")
  if tc -n "$(ns tgw)" qdisc show dev "$port" | grep -q netem; then
    tc -n "$(ns tgw)" -s qdisc show dev "$port" | grep -o 'dropped [0-9]*' | head -n1 | cut -d' ' -f2
    return
  fi
  { nsx tgw nft list chain bridge tbloss drops 2>/dev/null || true; } |
    awk -v c="\"loss $port\"" 'index($0, "comment " c) {for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1)}' |
    grep . || echo 0
}

# --- verify: delivery follows joins -------------------------------------------------------------

# verify [GROUP PORT COUNT]: the first VM joins GROUP with plain socat, the last VM sends COUNT
# datagrams from its TGW port; the joined VM must get all of them, every other VM and every
# node's eth1 none (counted on the link with a packet socket, so a flooded frame would show).
cmd_verify() {
  local group=${1:-239.18.0.9} port=${2:-5999} count=${3:-200}
  local vms; mapfile -t vms <"$(state)/vms"
  [ "${#vms[@]}" -ge 2 ] || die "verify needs two VMs (up --vms 2)"
  local joined=${vms[0]} sender=${vms[-1]} idle=("${vms[@]:1:${#vms[@]}-2}")
  local out; out="$(state)/verify.$joined.bin"
  local rx_pid counters=() hosts=()
  # Legacy client: plain socat joins the group on eth0 (NOTES.md).
  # Background jobs run `ip netns exec` directly (no function, no subshell) so that $! is the
  # program itself after exec and a kill reaches it.
  ip netns exec "$(ns "$joined")" timeout 20 socat -u "UDP4-RECV:$port,ip-add-membership=$group:eth0,rcvbuf=1048576" \
    "OPEN:$out,creat,trunc" &
  rx_pid=$!
  # The idle VM and every node's eth1 count what reaches their link, joined or not.
  local h ifn
  for h in "${idle[@]}" $(cat "$(state)/nodes"); do
    ifn=eth0; [[ $h == node* ]] && ifn=eth1
    ip -n "$(ns "$h")" link show "$ifn" >/dev/null 2>&1 || continue
    rm -f "$(state)/verify.$h.ready"
    ip netns exec "$(ns "$h")" python3 "$TB_HERE/mcount.py" --iface "$ifn" --group "$group" --port "$port" \
      --duration 20 --ready-file "$(state)/verify.$h.ready" >"$(state)/verify.$h.count" &
    counters+=($!); hosts+=("$h")
  done
  # Wait (bounded) until the bridge has learnt the join on the joined VM's port.
  local t
  for ((t = 0; t < 100; t++)); do
    bridge -n "$(ns tgw)" mdb show | grep -q "port $joined grp $group" && break
    sleep 0.1
  done
  if [ "$t" -ge 100 ]; then
    kill "$rx_pid" "${counters[@]}" 2>/dev/null || true
    die "bridge never learnt $joined's join of $group"
  fi
  # Every counter must be listening before the first datagram, or its 0 would prove nothing.
  for h in "${hosts[@]}"; do
    for ((t = 0; t < 100; t++)); do
      [ -e "$(state)/verify.$h.ready" ] && break
      sleep 0.1
    done
    if [ "$t" -ge 100 ]; then
      kill "$rx_pid" "${counters[@]}" 2>/dev/null || true
      die "the packet counter on $h did not start within 10 s"
    fi
  done
  sleep 0.2 # socat joined (the bridge learnt it); give its socket the same head start
  # The sender sits on a port, as a publisher would: frames the bridge itself sends ignore
  # mcast_flood and would prove less.
  local i saddr
  saddr=$(ip -n "$(ns "$sender")" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
  # Paced in bursts of 20 so a busy machine cannot overflow the receiver's socket buffer.
  for ((i = 0; i < count; i++)); do
    printf 'mdcast-testbed-%06d' "$i"
    if [ $((i % 20)) -eq 19 ]; then sleep 0.01; fi
  done |
    nsx "$sender" socat -u -b 21 STDIN \
      "UDP4-DATAGRAM:$group:$port,ip-multicast-if=$saddr,ip-multicast-ttl=4"
  local want=$((count * 21)) got=0
  for ((t = 0; t < 50; t++)); do
    got=$(stat -c %s "$out" 2>/dev/null || echo 0)
    [ "$got" -ge "$want" ] && break
    sleep 0.1
  done
  sleep 0.3 # anything flooded would have arrived by now
  kill "$rx_pid" "${counters[@]}" 2>/dev/null || true
  wait "$rx_pid" "${counters[@]}" 2>/dev/null || true
  local bad=0 c
  if [ "$got" -eq "$want" ]; then
    log "verify: joined $joined got $((got / 21))/$count datagrams of $group:$port"
  else
    log "verify: FAIL: joined $joined got $got of $want bytes"; bad=1
  fi
  for h in "${hosts[@]}"; do
    c=$(cat "$(state)/verify.$h.count")
    if [ "$c" = 0 ]; then log "verify: non-member $h got 0"
    else log "verify: FAIL: non-member $h got ${c:-no count}"; bad=1; fi
  done
  return $bad
}

# --- status, down, check ------------------------------------------------------------------------

our_namespaces() { ip netns list | awk '{print $1}' | grep "^$TB_TAG-" || true; }

cmd_status() {
  [ -d "$(state)" ] || log "no state dir for '$TB_TAG'"
  local n
  for n in $(our_namespaces); do
    echo "== $n"
    ip -n "$n" -br addr | grep -v '^lo ' | sed 's/^/   /'
    local p; p=$(ip netns pids "$n" | tr '\n' ' ')
    [ -n "$p" ] && echo "   pids: $p"
  done
  if have_ns tgw; then
    echo "== TGW multicast groups (bridge mdb)"; bridge -n "$(ns tgw)" mdb show | sed 's/^/   /'
    echo "== loss per port (tc netem, or the nftables rules)"
    tc -n "$(ns tgw)" qdisc show | grep netem | sed 's/^/   /' || true
    { nsx tgw nft list chain bridge tbloss drops 2>/dev/null || true; } | grep 'comment "loss' |
      sed 's/^[[:space:]]*/   /' || true
  fi
  [ -f "$(state)/attachments" ] && { echo "== attachments (pod node)"; sed 's/^/   /' "$(state)/attachments"; }
  return 0
}

kill_ns_processes() {
  local n=$1 p t
  local pids; pids=$(ip netns pids "$n" 2>/dev/null || true)
  [ -z "$pids" ] && return 0
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for ((t = 0; t < 30; t++)); do
    pids=$(ip netns pids "$n" 2>/dev/null || true)
    [ -z "$pids" ] && return 0
    sleep 0.1
  done
  for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
  sleep 0.1
}

cmd_down() {
  check_tag
  local n
  # Processes first: a namespace lives on while a process is still inside it.
  for n in $(our_namespaces); do kill_ns_processes "$n"; done
  # Pods before nodes before bridges: a pod's net1 is a veth and goes with the pod.
  for n in $(our_namespaces); do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$(state)"
  rmdir "$TB_STATE_ROOT" 2>/dev/null || true
  cmd_check
}

# Tags that have a TGW namespace or a state directory: what `down --tag T` would remove (after
# a run that was killed with SIGKILL, which no trap can catch).
cmd_list() {
  { ip netns list | awk '{print $1}' | sed -n 's/-tgw$//p'
    ls "$TB_STATE_ROOT" 2>/dev/null || true; } | sort -u
}

# Exits non-zero when anything of the tag is left: namespace, root-namespace link, process, state.
cmd_check() {
  check_tag
  local left=0 n
  n=$(our_namespaces)
  [ -z "$n" ] || { log "left behind: namespaces $n"; left=1; }
  if ip -o link show | grep -q -- "$TB_TAG"; then log "left behind: links in the root namespace"; left=1; fi
  if [ -e "$(state)" ]; then log "left behind: $(state)"; left=1; fi
  # Processes in a deleted namespace are invisible to `ip netns pids`; look for the tag instead.
  if pgrep -f -- "$TB_STATE_ROOT/$TB_TAG/" >/dev/null; then log "left behind: processes using $(state)"; left=1; fi
  [ $left -eq 0 ] && log "check: nothing of '$TB_TAG' is left"
  return $left
}

main() {
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
  local cmd=${1:-}; shift || true
  local rest=()
  while [ $# -gt 0 ]; do
    if [ "$1" = --tag ] && [ "$cmd" != up ]; then
      opt_value "$@"; TB_TAG=$2; shift 2
    else
      rest+=("$1"); shift
    fi
  done
  [[ $TB_IMDS_PORT =~ ^[1-9][0-9]{0,4}$ && $TB_IMDS_PORT -le 65535 ]] ||
    die "TB_IMDS_PORT '$TB_IMDS_PORT' is not a port (1..65535)"
  set -- "${rest[@]+"${rest[@]}"}"
  case $cmd in
    up) cmd_up "$@" ;;
    pod) check_tag; cmd_pod "$@" ;;
    vm) check_tag; cmd_vm ;;
    attach) check_tag; cmd_attach "$@" ;;
    check-attach) check_tag; cmd_check_attach "$@" ;;
    detach) check_tag; cmd_detach "$@" ;;
    netem) check_tag; cmd_netem "$@" ;;
    loss-count) check_tag; cmd_loss_count "$@" ;;
    imds-log) check_tag; cmd_imds_log "$@" ;;
    igmpv3-count) check_tag; cmd_igmpv3_count ;;
    exec) check_tag; local h=${1:?exec HOST CMD...}; shift; nsx "$h" "$@" ;;
    verify) check_tag; cmd_verify "$@" ;;
    status) check_tag; cmd_status ;;
    down) cmd_down ;;
    check) cmd_check ;;
    list) cmd_list ;;
    ''|-h|--help) sed -n '2,30p' "$0" ;;
    *) die "unknown command '$cmd' (up, pod, attach, detach, netem, exec, verify, status, down, check)" ;;
  esac
}

main "$@"
