#!/usr/bin/env bash
# The testbed itself: up builds the TGW stand-in; multicast delivery follows joins (a joined VM
# gets every datagram, the non-members 0); the check can fail (a non-member made a multicast
# router port must be reported); IGMPv3 joins are ignored as on the TGW; loss on a port takes
# effect and comes off; pods get eth0 on the VPC and reach a node; down leaves nothing and
# `check` proves it.
. "$(dirname "$0")/../common/lib.sh"
need_root
need_cmd socat "apt-get install socat"
need_cmd bridge "apt-get install iproute2"
need_cmd tc "apt-get install iproute2"

TB="$MDCAST_SOURCE_DIR/tests/testbed/testbed.sh"
export TB_TAG; TB_TAG=$(test_tag)
export TB_STATE_ROOT; TB_STATE_ROOT=$(mktemp -d /tmp/mdcast-tb.XXXXXX)
cleanup() {
  "$TB" down >/dev/null 2>&1 || true
  rm -rf "$TB_STATE_ROOT"
}
trap cleanup EXIT
# A signal ends the script through exit, so the EXIT trap cleans up then too.
trap 'exit 130' INT
trap 'exit 143' TERM

echo "-- bad arguments: a clear error, nothing built"
bad_args() { # bad_args ARGS...: must fail with a "testbed: error:" line
  if "$TB" "$@" 2>"$TB_STATE_ROOT/arg.err"; then fail "testbed.sh $* succeeded"; fi
  grep -q '^testbed: error: ' "$TB_STATE_ROOT/arg.err" || fail "testbed.sh $*: $(cat "$TB_STATE_ROOT/arg.err")"
}
bad_args up --nodes
bad_args up --nodes 0
bad_args up --nodes x
bad_args up --vms 9
bad_args up --tag
bad_args status --tag
bad_args up --tag "bad tag"
TB_IMDS_PORT=x bad_args status
TB_IMDS_PORT=70000 bad_args status
grep -q "TB_IMDS_PORT '70000'" "$TB_STATE_ROOT/arg.err" || fail "a bad TB_IMDS_PORT is not named"
[ -z "$(ip netns list | grep "^$TB_TAG-" || true)" ] || fail "bad arguments left namespaces"

"$TB" up --nodes 2 --vms 3 >/dev/null
[ "$(ip netns list | grep -c "^$TB_TAG-")" -eq 7 ] || fail "expected 7 namespaces (tgw vpc 2 nodes 3 VMs)"
# Nothing of the testbed may appear in the root namespace.
if ip -o link show | grep -q "$TB_TAG"; then fail "testbed added a link to the root namespace"; fi
for n in node1 node2; do
  mac=$(ip -n "$TB_TAG-$n" -o link show eth1 | grep -o 'link/ether [0-9a-f:]*')
  [ "$mac" = "link/ether 02:00:c6:12:01:0${n#node}" ] || fail "$n eth1 has '$mac'"
done
bridge -n "$TB_TAG-tgw" -d link show dev vm1 | grep -q 'mcast_flood off' || fail "mcast_flood is on"

echo "-- delivery follows joins"
"$TB" verify 239.18.0.9 5999 300 || fail "verify failed on a fresh testbed"

echo "-- the same check must fail when a non-member port gets the group"
# A permanent multicast-router port receives every group, joined or not.
bridge -n "$TB_TAG-tgw" link set dev node1 mcast_router 2
if "$TB" verify 239.18.0.10 5998 50 2>"$TB_STATE_ROOT/neg.log"; then
  fail "verify passed on a flooding bridge: the check proves nothing"
fi
grep -q "FAIL: non-member node1 got 50" "$TB_STATE_ROOT/neg.log" || { cat "$TB_STATE_ROOT/neg.log"; fail "no leak reported"; }

echo "-- the TGW ignores IGMPv3 reports, as AWS's does"
# A host sends IGMPv3 unless forced to v2 or it has heard a v2 query lately; the bridge's
# queries are v2, so this test keeps them away from a new VM (nftables on its port, put there
# before the VM exists) to see what a host that never heard one does.
ip netns exec "$TB_TAG-tgw" nft 'add table bridge t; add chain bridge t out { type filter hook forward priority 0; policy accept; }; add chain bridge t own { type filter hook output priority 0; policy accept; }'
for c in out own; do
  ip netns exec "$TB_TAG-tgw" nft add rule bridge t "$c" oifname vm4 igmp type membership-query drop
done
vm=$("$TB" vm)
[ "$vm" = vm4 ] || fail "the new VM is '$vm', not vm4"
# join GROUP: vm4 joins GROUP for 2 s; prints the bridge's group table as it was then.
join() {
  ip netns exec "$TB_TAG-vm4" timeout 2 socat -u "UDP4-RECV:5995,ip-add-membership=$1:eth0" OPEN:/dev/null &
  local pid=$! t
  for ((t = 0; t < 15; t++)); do
    bridge -n "$TB_TAG-tgw" mdb show | grep -q "port vm4 grp $1" && break
    sleep 0.1
  done
  bridge -n "$TB_TAG-tgw" mdb show
  wait "$pid" 2>/dev/null || true
}
ip netns exec "$TB_TAG-vm4" sysctl -qw net.ipv4.conf.all.force_igmp_version=0 net.ipv4.conf.eth0.force_igmp_version=0
v3_before=$("$TB" igmpv3-count)
if join 239.18.0.13 | grep -q "port vm4 grp 239.18.0.13"; then fail "the TGW learnt an IGMPv3 join"; fi
[ "$("$TB" igmpv3-count)" -gt "$v3_before" ] || fail "vm4 sent no IGMPv3 report, or it was not dropped"
# The same host forced to IGMPv2 (what tuning does for net1 in a pod) is learnt at once.
ip netns exec "$TB_TAG-vm4" sysctl -qw net.ipv4.conf.eth0.force_igmp_version=2
join 239.18.0.14 | grep -q "port vm4 grp 239.18.0.14" || fail "the IGMPv2 join of vm4 was not learnt"

echo "-- loss on a port (tc netem, or nftables where the kernel has no sch_netem)"
bridge -n "$TB_TAG-tgw" link set dev node1 mcast_router 0
"$TB" netem vm1 loss 100%
if "$TB" verify 239.18.0.11 5997 40 2>"$TB_STATE_ROOT/loss.log"; then
  fail "verify passed with 100% loss on the joined VM's port"
fi
grep -q "FAIL: joined vm1 got 0 of" "$TB_STATE_ROOT/loss.log" || { cat "$TB_STATE_ROOT/loss.log"; fail "loss not applied"; }
if ! tc -n "$TB_TAG-tgw" qdisc show dev vm1 | grep -q netem; then
  [ "$("$TB" loss-count vm1)" -eq 40 ] || fail "nftables loss rule counted $("$TB" loss-count vm1), not 40"
fi
"$TB" netem vm1 off
"$TB" verify 239.18.0.12 5996 40 || fail "verify failed after netem off"

echo "-- pods on the VPC"
ip_a=$("$TB" pod pa)
ip_b=$("$TB" pod pb)
{ [ "$ip_a" = 198.18.0.101 ] && [ "$ip_b" = 198.18.0.102 ]; } || fail "pod addresses $ip_a $ip_b"
# reach FROM TO ADDR: a line sent over TCP from host FROM arrives at host TO listening on ADDR.
reach() {
  local out="$TB_STATE_ROOT/reach.$2"
  ip netns exec "$TB_TAG-$2" timeout 5 socat -u "TCP4-LISTEN:7000,bind=$3,reuseaddr" "OPEN:$out,creat,trunc" &
  local lpid=$! t
  for ((t = 0; t < 50; t++)); do
    echo "hello from $1" | "$TB" exec "$1" socat -u STDIN "TCP4:$3:7000,connect-timeout=1" 2>/dev/null && break
    sleep 0.1
  done
  wait "$lpid" || true
  [ "$(cat "$out" 2>/dev/null)" = "hello from $1" ]
}
reach pa node1 198.18.0.11 || fail "pod pa cannot reach node1 over the VPC"
reach pa pb "$ip_b" || fail "pod pa cannot reach pod pb over the VPC"
# The VPC and the TGW are separate networks: a pod without net1 has no route to the VMs.
if "$TB" exec pa socat -u /dev/null TCP4:198.18.1.201:7000,connect-timeout=1 2>/dev/null; then
  fail "a pod without net1 reached the TGW network"
fi
if "$TB" pod node9 2>/dev/null; then fail "a pod may not take a node's name"; fi

echo "-- down leaves nothing"
"$TB" exec vm1 sleep 30 &
sleep 0.2
"$TB" down
"$TB" check || fail "check found leftovers"
[ -z "$(ip netns list | grep "^$TB_TAG-" || true)" ] || fail "namespaces left"
echo "PASS"
