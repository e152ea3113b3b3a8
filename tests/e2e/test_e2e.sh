#!/usr/bin/env bash
# The seed's walkthrough, automated (issue 6, steps 1-5; docs/TESTBED.md says what is asserted):
# three nodes, a gateway pod and two consumer pods whose net1 comes through host-device +
# eni-ipam + tuning, a publisher pod on unicast only, a VM with plain socat, a VM that joins
# nothing; an ITCH 5.0 file replayed through the gateway arrives whole, in order and
# byte-identical everywhere it was asked for, nowhere else; with loss on one consumer's port it
# still arrives whole there; CNI DEL returns every ENI; nothing is left behind.
. "$(dirname "$0")/../common/lib.sh"
need_root
need_cmd socat "apt-get install socat"
need_cmd bridge "apt-get install iproute2"
need_cmd nft "apt-get install nftables"
. "$MDCAST_SOURCE_DIR/tests/e2e/flow.sh"

N=$(flow_env_int E2E_MESSAGES 20000 10000000)
LOSS=$(flow_env_percent E2E_LOSS 20%)

echo "-- 0. bad settings of the demo: a usage error before anything is built"
demo_rc() { local rc=0; "$MDCAST_SOURCE_DIR/tests/e2e/demo.sh" "$@" 2>"$W0/err" >/dev/null || rc=$?; echo $rc; }
W0=$(mktemp -d)
[ "$(DEMO_ITCH_MESSAGES=abc demo_rc "$MDCAST_BUILD_DIR")" = 2 ] || fail "DEMO_ITCH_MESSAGES=abc accepted"
grep -q "DEMO_ITCH_MESSAGES='abc'" "$W0/err" || fail "bad DEMO_ITCH_MESSAGES not named: $(cat "$W0/err")"
[ "$(DEMO_LOSS=150% demo_rc "$MDCAST_BUILD_DIR")" = 2 ] || fail "DEMO_LOSS=150% accepted"
[ "$(FLOW_LIMIT_S=-1 demo_rc "$MDCAST_BUILD_DIR")" = 2 ] || fail "FLOW_LIMIT_S=-1 accepted"
[ "$(demo_rc "$MDCAST_BUILD_DIR" --bogus)" = 2 ] || fail "demo.sh accepted --bogus"
rm -rf "$W0"

on_exit() {
  local rc=$?
  flow_cleanup
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    local f
    for f in "$W"/*.log "$W"/*.err; do
      [ -s "$f" ] && { echo "---- ${f#"$W"/} (last 15 lines)"; tail -n 15 "$f"; }
    done
  fi
  if [ -n "${TB_TAG:-}" ] && ! "$TB" check >/dev/null 2>&1; then
    echo "FAIL: the testbed left something behind" >&2
  fi
  if [ -n "${MDCAST_KEEP:-}" ]; then echo "kept $W"; else rm -rf "$W"; fi
}
W=$(mktemp -d /tmp/mdcast-e2e.XXXXXX)
trap on_exit EXIT
# A signal ends the script through exit, so the EXIT trap cleans up then too.
trap 'exit 130' INT
trap 'exit 143' TERM
flow_init "$MDCAST_BUILD_DIR" "$W"
missing=$(flow_missing)
[ -z "$missing" ] || skip "not built or not merged yet: $missing"

"$ITCHGEN_BIN" --count "$N" --seed 6 --symbols 8 --out "$W/feed.itch" >/dev/null

echo "-- 1. nodes, pods, net1 through host-device + eni-ipam + tuning"
flow_up
[ "$FLOW_NET1_GW $FLOW_NET1_C1 $FLOW_NET1_C2" = "198.18.1.11/24 198.18.1.12/24 198.18.1.13/24" ] ||
  fail "net1 addresses '$FLOW_NET1_GW $FLOW_NET1_C1 $FLOW_NET1_C2' are not the ENIs' (IMDS)"
for pc in gw:node1 c1:node2 c2:node3; do
  pod=${pc%:*} node=${pc#*:}
  "$TB" check-attach "$pod" "$node" || fail "CNI CHECK failed for $pod"
  ip -n "$TB_TAG-$pod" link show net1 | grep -q 'mtu 8500' || fail "$pod net1 MTU is not 8500 (tuning)"
  ip -n "$TB_TAG-$pod" route show 224.0.0.0/4 | grep -q 'dev net1' || fail "$pod has no 224.0.0.0/4 route on net1"
  v=$(ip netns exec "$TB_TAG-$pod" sysctl -n net.ipv4.conf.net1.force_igmp_version)
  [ "$v" = 2 ] || fail "$pod net1 force_igmp_version=$v (tuning should set 2)"
  if ip -n "$TB_TAG-$node" link show eth1 >/dev/null 2>&1; then fail "$node still has eth1"; fi
  # eni-ipam asked the node's mock IMDSv2, with a token, for this node's ENI.
  mac=$(printf '02:00:c6:12:01:%02x' "${node#node}")
  "$TB" imds-log "$node" | grep -q "^PUT /latest/api/token 200" || fail "$node: no IMDSv2 token PUT"
  "$TB" imds-log "$node" | grep -q "^GET .*/macs/$mac/local-ipv4s 200 token=yes" ||
    fail "$node: eni-ipam did not read local-ipv4s of $mac with a token: $("$TB" imds-log "$node")"
done
if ip -n "$TB_TAG-pub" link show net1 >/dev/null 2>&1; then fail "the publisher pod has net1"; fi

echo "-- 2. gateway in gw, consumers, legacy VM; loss $LOSS towards c2"
"$TB" netem c2 loss "$LOSS" 2>/dev/null
flow_gateway_start || fail "gateway did not start"
# --start-seq 1: the consumers joined before the session began and want all of it, even when
# the first packet is lost on both lines.
flow_taps_start --start-seq 1 --count "$N" --timeout 45 --format hex --json
flow_legacy_start
flow_wait_joins || fail "joins not learnt"
# Paced so the plain-socat VM, which has no recovery, keeps up on a loaded CI machine.
flow_publish pub --itch "$W/feed.itch" --rate 50000 || fail "mdcast-pub failed: $(cat "$W/pub.err")"
[ "$(flow_field pub sent)" = "$N" ] || fail "mdcast-pub sent $(flow_field pub sent), not $N"

echo "-- 3. every consumer gets everything, in order, byte-identical"
for c in c1 c2; do
  rc=0; flow_wait "${FLOW_TAP_PID[$c]}" 45 || rc=$?
  [ $rc -eq 0 ] || fail "mdfeed-tap in $c exited $rc: $(tail -n 3 "$W/$c.err")"
  python3 "$FLOW_HERE/mold_verify.py" --itch "$W/feed.itch" --tap-hex "$W/$c.out" ||
    fail "$c did not get the file, in order, byte-identical"
  [ "$(flow_field "$c" lost)" = 0 ] || fail "$c declared loss"
done
metrics=$(flow_http /metrics) || fail "cannot scrape /metrics"
served=$(awk '/^mdcast_rerequests_total\{.*result="served"/ {print $2}' <<<"$metrics")
rc=0; flow_gateway_stop || rc=$?
[ $rc -eq 0 ] || fail "gateway exited $rc on SIGTERM, not 0 (124: still running after 10 s)"
sleep 0.5 # the end-of-session packets reach the VM
kill -TERM "$FLOW_VM_PID" "$FLOW_IDLE_PID" 2>/dev/null || true
flow_wait "$FLOW_VM_PID" 5 || true
flow_wait "$FLOW_IDLE_PID" 5 || true
python3 "$FLOW_HERE/mold_verify.py" --itch "$W/feed.itch" --mold-stream "$W/vm1.mold" \
  --session "$FLOW_SESSION" --json >"$W/vm1.verify" || fail "the VM's socat capture is not the file"
grep -q '"end_of_session": [1-9]' "$W/vm1.verify" || fail "the VM saw no end of session"
[ "$(cat "$W/vm2.count")" = 0 ] || fail "vm2 joined nothing but got $(cat "$W/vm2.count") multicast frames"

echo "-- 4. loss towards c2: recovered by arbitration and re-requests"
dropped=$("$TB" loss-count c2)
[ "$dropped" -gt 0 ] || fail "the loss rule dropped nothing"
b_first=$(flow_field c2 first_arrivals.b)
recovered=$(flow_field c2 recovered)
rerequested=$(flow_field c2 first_arrivals.retransmit)
[ "$b_first" -gt 0 ] || fail "c2: line B never filled a hole of line A"
{ [ "$recovered" -gt 0 ] && [ "$rerequested" -gt 0 ]; } ||
  fail "c2: no recovery through re-requests (recovered $recovered, retransmitted $rerequested)"
[ "${served:-0}" -gt 0 ] || fail "the gateway served no re-request"

echo "-- 5. CNI DEL returns every ENI; nothing left"
flow_teardown || fail "CNI DEL failed"
"$TB" down >/dev/null
"$TB" check || fail "left behind"
echo "sent $N; c1 $(flow_field c1 received); c2 $(flow_field c2 received) with $dropped frames" \
  "dropped, $b_first first from line B, $recovered recovered by $rerequested re-requested," \
  "$served re-requests served; vm1 all; vm2 0"
echo "PASS"
