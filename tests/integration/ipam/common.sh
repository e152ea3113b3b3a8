# shellcheck shell=bash
# Shared set-up for the eni-ipam integration tests. Source it after tests/common/lib.sh.
#
# ipam_setup creates, with a per-run tag: a "node" namespace holding veth eth1 (MAC
# $IPAM_MAC, the multicast ENI stand-in; its peer stays down in the node) and a "pod"
# namespace; a temp dir with CNI_PATH=$IPAM_TMP/bin (eni-ipam linked in) and the mock's MAC
# table. ipam_mock_start MODE starts tests/tools/mock_imds.py on 127.0.0.1 inside the node
# namespace (where eni-ipam runs) and sets $IPAM_ENDPOINT. Everything goes on EXIT.

IPAM_MAC=02:00:00:00:00:01
IPAM_ADDR=198.18.1.10
IPAM_PREFIX=24
IPAM_BIN=$MDCAST_BUILD_DIR/ipam/eni-ipam
IPAM_MOCK=$MDCAST_SOURCE_DIR/tests/tools/mock_imds.py
IPAM_MOCK_PID=

ipam_cleanup() {
    [ -n "$IPAM_MOCK_PID" ] && kill "$IPAM_MOCK_PID" 2>/dev/null && wait "$IPAM_MOCK_PID" 2>/dev/null
    [ -n "${IPAM_NODE:-}" ] && ip netns del "$IPAM_NODE" 2>/dev/null
    [ -n "${IPAM_POD:-}" ] && ip netns del "$IPAM_POD" 2>/dev/null
    [ -n "${IPAM_TMP:-}" ] && rm -rf "$IPAM_TMP"
    return 0
}

ipam_setup() {
    need_root
    need_cmd python3 "apt-get install python3"
    need_cmd ip "apt-get install iproute2"
    [ -x "$IPAM_BIN" ] || fail "$IPAM_BIN not built"
    local tag
    tag=$(test_tag)
    IPAM_NODE=${tag}node
    IPAM_POD=${tag}pod
    IPAM_TMP=$(mktemp -d "/tmp/ipam-${tag}.XXXXXX")
    trap ipam_cleanup EXIT
    ip netns add "$IPAM_NODE"
    ip netns add "$IPAM_POD"
    ip -n "$IPAM_NODE" link set lo up
    ip -n "$IPAM_POD" link set lo up
    ip -n "$IPAM_NODE" link add eth1 address "$IPAM_MAC" type veth peer name "${tag}pe"
    mkdir -p "$IPAM_TMP/bin"
    ln -s "$IPAM_BIN" "$IPAM_TMP/bin/eni-ipam"
    printf '{"%s": {"local-ipv4s": ["%s", "198.18.1.11"], "subnet-ipv4-cidr-block": "198.18.1.0/%s"}}\n' \
        "$IPAM_MAC" "$IPAM_ADDR" "$IPAM_PREFIX" >"$IPAM_TMP/macs.json"
}

ipam_mock_stop() {
    if [ -n "$IPAM_MOCK_PID" ]; then
        kill "$IPAM_MOCK_PID" 2>/dev/null || true
        wait "$IPAM_MOCK_PID" 2>/dev/null || true
    fi
    IPAM_MOCK_PID=
}

# ipam_mock_start MODE [extra mock args...]
ipam_mock_start() {
    local mode=$1
    shift
    ipam_mock_stop
    : >"$IPAM_TMP/mock.out"
    ip netns exec "$IPAM_NODE" python3 "$IPAM_MOCK" --listen 127.0.0.1:0 \
        --macs "$IPAM_TMP/macs.json" --mode "$mode" --log "$IPAM_TMP/requests.log" "$@" \
        >"$IPAM_TMP/mock.out" 2>>"$IPAM_TMP/mock.err" &
    IPAM_MOCK_PID=$!
    for _ in $(seq 100); do
        grep -q '^listening on ' "$IPAM_TMP/mock.out" && break
        sleep 0.05
    done
    grep -q '^listening on ' "$IPAM_TMP/mock.out" || fail "mock IMDS did not start: $(cat "$IPAM_TMP/mock.err")"
    IPAM_ENDPOINT="http://$(sed -n 's/^listening on //p' "$IPAM_TMP/mock.out")"
}

# ipam_plugin_conf VERSION [ENDPOINT] [PREVRESULT-FILE]: the host-device entry of
# config/eni-ipam.conflist.json as libcni hands it to the plugin (cniVersion and name copied
# in), with ipam.imds_endpoint pointed at the mock and the log file in the temp dir.
ipam_plugin_conf() {
    python3 - "$MDCAST_SOURCE_DIR/config/eni-ipam.conflist.json" "$1" "${2:-$IPAM_ENDPOINT}" \
        "$IPAM_TMP/eni-ipam.log" "${3:-}" <<'EOF'
import json, sys
conflist, version, endpoint, log, prev = sys.argv[1:6]
with open(conflist) as f:
    lst = json.load(f)
conf = dict(lst["plugins"][0])
conf["cniVersion"] = version
conf["name"] = lst["name"]
conf["ipam"] = dict(conf["ipam"], imds_endpoint=endpoint, log_file=log, imds_timeout_ms=500,
                    imds_retries=2)
if prev:
    with open(prev) as f:
        conf["prevResult"] = json.load(f)
print(json.dumps(conf))
EOF
}

# json_get FILE EXPR: prints a Python expression evaluated on the JSON document `d`.
json_get() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
