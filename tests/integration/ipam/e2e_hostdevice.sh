#!/usr/bin/env bash
# eni-ipam end to end with the REAL host-device plugin (Debian's containernetworking-plugins),
# run exactly as Multus runs it: in the node's namespace, CNI_NETNS = the pod, CNI_IFNAME =
# net1, the host-device entry of config/eni-ipam.conflist.json on stdin (imds_endpoint
# pointed at the mock IMDSv2 on loopback in the node namespace).
#
# For every cniVersion 0.3.0, 0.3.1, 0.4.0, 1.0.0:
#   ADD  -> net1 in the pod carries 198.18.1.10/24 (the mock's first local-ipv4s line and the
#           subnet's prefix), has the ENI's MAC, and a "224.0.0.0/4 dev net1" route with no
#           gateway; the result names the same address and no gateway; eth1 left the node
#   CHECK (0.4.0+) -> passes
#   DEL  -> eth1 is back in the node under its old name, net1 gone from the pod
#   DEL again -> eni-ipam's DEL succeeds (host-device's own second DEL fails upstream with
#           "Link not found"; that is asserted on nothing)
# Then ADD with the IMDS down -> code 11; the runtime's DEL after it brings eth1 back.
source "$MDCAST_SOURCE_DIR/tests/common/lib.sh"
source "$MDCAST_SOURCE_DIR/tests/integration/ipam/common.sh"

HOSTDEV=/usr/lib/cni/host-device
[ -x "$HOSTDEV" ] || skip "needs $HOSTDEV (apt-get install containernetworking-plugins)"
ipam_setup
ipam_mock_start ok

# run_hostdev COMMAND CONF-FILE OUT-FILE: host-device in the node namespace; returns its code.
run_hostdev() {
    ip netns exec "$IPAM_NODE" env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID="c$IPAM_NODE" \
        CNI_NETNS="/run/netns/$IPAM_POD" CNI_IFNAME=net1 CNI_PATH="$IPAM_TMP/bin" \
        CNI_ARGS="IgnoreUnknown=true;K8S_POD_NAMESPACE=md;K8S_POD_NAME=e2e" \
        "$HOSTDEV" <"$2" >"$3" 2>>"$IPAM_TMP/hostdev.err"
}

# run_ipam COMMAND CONF-FILE OUT-FILE: eni-ipam alone, as host-device would call it.
run_ipam() {
    ip netns exec "$IPAM_NODE" env -i CNI_COMMAND="$1" CNI_CONTAINERID="c$IPAM_NODE" \
        CNI_NETNS="/run/netns/$IPAM_POD" CNI_IFNAME=net1 CNI_PATH="$IPAM_TMP/bin" \
        "$IPAM_BIN" <"$2" >"$3" 2>>"$IPAM_TMP/ipam.err"
}

assert_eth1_in_node() {
    ip -n "$IPAM_NODE" link show eth1 >/dev/null 2>&1 || fail "$1: eth1 is not in the node"
    [ "$(ip -n "$IPAM_NODE" -o link show eth1 | grep -o 'link/ether [0-9a-f:]*')" = "link/ether $IPAM_MAC" ] ||
        fail "$1: eth1 in the node lost its MAC"
    if ip -n "$IPAM_POD" link show net1 >/dev/null 2>&1; then fail "$1: net1 still in the pod"; fi
}

for ver in 0.3.0 0.3.1 0.4.0 1.0.0; do
    conf=$IPAM_TMP/conf-$ver.json
    ipam_plugin_conf "$ver" >"$conf"

    # ADD
    run_hostdev ADD "$conf" "$IPAM_TMP/add.json" ||
        fail "$ver: host-device ADD failed: $(cat "$IPAM_TMP/add.json") $(tail -3 "$IPAM_TMP/hostdev.err")"
    [ "$(json_get "$IPAM_TMP/add.json" 'd["cniVersion"]')" = "$ver" ] || fail "$ver: result cniVersion"
    addr=$(json_get "$IPAM_TMP/add.json" '[i["address"] for i in d["ips"]]')
    [ "$addr" = "['$IPAM_ADDR/$IPAM_PREFIX']" ] || fail "$ver: result ips $addr"
    [ "$(json_get "$IPAM_TMP/add.json" '[k for i in d["ips"] for k in i if k == "gateway"]')" = "[]" ] ||
        fail "$ver: result carries a gateway"
    ip -n "$IPAM_POD" -4 -o addr show dev net1 | grep -q "inet $IPAM_ADDR/$IPAM_PREFIX " ||
        fail "$ver: net1 lacks $IPAM_ADDR/$IPAM_PREFIX: $(ip -n "$IPAM_POD" -4 -o addr show dev net1)"
    ip -n "$IPAM_POD" -o link show net1 | grep -q "link/ether $IPAM_MAC" || fail "$ver: net1 MAC"
    route=$(ip -n "$IPAM_POD" -4 route show 224.0.0.0/4)
    [ "$route" != "" ] || fail "$ver: no 224.0.0.0/4 route in the pod"
    case "$route" in
        *via*) fail "$ver: multicast route has a gateway: $route" ;;
        "224.0.0.0/4 dev net1"*) ;;
        *) fail "$ver: unexpected multicast route: $route" ;;
    esac
    if ip -n "$IPAM_NODE" link show eth1 >/dev/null 2>&1; then fail "$ver: eth1 still in the node"; fi
    echo "ok $ver ADD: net1 $IPAM_ADDR/$IPAM_PREFIX, route '$route'"

    # CHECK (the spec has it from 0.4.0 on)
    if [ "$ver" != 0.3.0 ] && [ "$ver" != 0.3.1 ]; then
        ipam_plugin_conf "$ver" "$IPAM_ENDPOINT" "$IPAM_TMP/add.json" >"$IPAM_TMP/check.json"
        run_hostdev CHECK "$IPAM_TMP/check.json" "$IPAM_TMP/check.out" ||
            fail "$ver: CHECK failed: $(cat "$IPAM_TMP/check.out")"
        grep -q '"cmd":"CHECK".*carries' "$IPAM_TMP/eni-ipam.log" || fail "$ver: eni-ipam saw no CHECK"
        echo "ok $ver CHECK"
    fi

    # DEL returns the ENI to the node under its old name.
    run_hostdev DEL "$conf" "$IPAM_TMP/del.out" || fail "$ver: DEL failed: $(cat "$IPAM_TMP/del.out")"
    assert_eth1_in_node "$ver DEL"
    echo "ok $ver DEL: eth1 back in the node"

    # DEL again: host-device 1.1.1 fails its own second DEL (upstream); ours must succeed.
    dels_before=$(grep -c '"cmd":"DEL"' "$IPAM_TMP/eni-ipam.log" || true)
    if run_hostdev DEL "$conf" "$IPAM_TMP/del2.out"; then hd=0; else hd=$?; fi
    run_ipam DEL "$conf" "$IPAM_TMP/ipam-del2.out" || fail "$ver: eni-ipam second DEL failed"
    [ ! -s "$IPAM_TMP/ipam-del2.out" ] || fail "$ver: DEL printed $(cat "$IPAM_TMP/ipam-del2.out")"
    dels_after=$(grep -c '"cmd":"DEL"' "$IPAM_TMP/eni-ipam.log")
    [ "$dels_after" -gt "$dels_before" ] || fail "$ver: eni-ipam logged no second DEL"
    assert_eth1_in_node "$ver DEL again"
    echo "ok $ver DEL again: eni-ipam 0 (host-device's own second DEL: exit $hd)"
done

# ADD with the IMDS down: code 11 (try again later).
ipam_mock_stop
conf=$IPAM_TMP/conf-down.json
ipam_plugin_conf 1.0.0 >"$conf"
if run_hostdev ADD "$conf" "$IPAM_TMP/down.json"; then fail "ADD succeeded with the IMDS down"; fi
code=$(json_get "$IPAM_TMP/down.json" 'd["code"]')
[ "$code" = 11 ] || fail "IMDS down: code $code, wanted 11: $(cat "$IPAM_TMP/down.json")"
# host-device 1.1.1 leaves the ENI in the pod when its IPAM fails; the runtime answers a failed
# ADD with DEL (kubelet tears the sandbox down), which must bring eth1 home for the retry.
run_hostdev DEL "$conf" "$IPAM_TMP/down-del.out" || fail "DEL after the failed ADD failed"
assert_eth1_in_node "DEL after the failed ADD"
echo "ok IMDS down: code 11 ($(json_get "$IPAM_TMP/down.json" 'd["msg"]')); DEL brought eth1 back"

# The mock saw only token-carrying metadata GETs, never a proxy-form request.
grep -q 'local-ipv4s 200 token=yes proxy=no' "$IPAM_TMP/requests.log" || fail "no token-carrying GET"
if grep -q 'proxy=yes\|token=no.*meta-data' "$IPAM_TMP/requests.log"; then
    fail "a metadata request came without token or via a proxy"
fi
echo "PASS ipam_e2e_hostdevice"
