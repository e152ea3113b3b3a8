#!/usr/bin/env bash
# eni-ipam error paths, run through the real binary: every bad input of issue 3 gets its code
# and a message naming the problem, as exactly one JSON object on stdout (logs on stderr are
# JSON lines); DEL succeeds whatever happens; CHECK, STATUS, GC, VERSION; the IMDS failure
# modes of the mock map to 11 or to the plugin's own codes; proxies in the environment are
# ignored; the IPv6 endpoint form works.
#
# eni-ipam runs in a throwaway "node" namespace with CNI_NETNS pointing at that same
# namespace and CNI_IFNAME=eth1 (a veth with a known MAC), the mock IMDS on its loopback.
source "$MDCAST_SOURCE_DIR/tests/common/lib.sh"
source "$MDCAST_SOURCE_DIR/tests/integration/ipam/common.sh"

ipam_setup
ipam_mock_start ok
NS=/run/netns/$IPAM_NODE
OUT=$IPAM_TMP/out.json
ERR=$IPAM_TMP/err.log
passed=0

# conf VERSION [ipam-json-fragment]: a host-device style config for the mock.
conf() {
    printf '{"cniVersion":"%s","name":"mc","type":"host-device","device":"eth1","ipam":{"type":"eni-ipam","imds_endpoint":"%s","imds_timeout_ms":300,"imds_retries":1%s}}' \
        "$1" "$IPAM_ENDPOINT" "${2:-}"
}

# run STDIN-FILE [VAR=value ...]: eni-ipam in the node namespace with a valid default
# environment, overridden by the arguments (VAR= unsets nothing; use -u VAR to unset).
run() {
    local input=$1 unset=() assign=()
    shift
    while [ $# -gt 0 ]; do
        if [ "$1" = -u ]; then unset+=(-u "$2"); shift 2; else assign+=("$1"); shift; fi
    done
    set +e
    # env applies the -u options to the variables set before them on its command line only
    # when they come from the inherited environment, so the defaults go in a first env.
    ip netns exec "$IPAM_NODE" env -i CNI_COMMAND=ADD CNI_CONTAINERID=errtest CNI_NETNS="$NS" \
        CNI_IFNAME=eth1 CNI_PATH=/nonexistent env "${unset[@]}" "${assign[@]}" "$IPAM_BIN" \
        <"$input" >"$OUT" 2>"$ERR"
    RC=$?
    set -e
}

# check_streams NAME: every stderr line must be a JSON object with ts/level/msg, stdout at
# most one line of JSON; prints "code<TAB>msg" of that object (empty when stdout is empty).
check_streams() {
    python3 - "$OUT" "$ERR" <<'EOF2' || fail "$1: stdout/stderr not as the spec wants"
import json, sys
out = open(sys.argv[1]).read()
assert out.count("\n") <= 1, "stdout has more than one line: %r" % out
for line in open(sys.argv[2]):
    obj = json.loads(line)
    assert {"ts", "level", "msg"} <= obj.keys(), line
if out.strip():
    d = json.loads(out)
    if "code" in d:
        assert isinstance(d["cniVersion"], str) and "details" in d, out
    print("%s\t%s" % (d.get("code", ""), d.get("msg", "")))
EOF2
}

# expect_error NAME CODE NEEDLE: the last run failed with CODE and a msg containing NEEDLE.
expect_error() {
    local got code msg
    got=$(check_streams "$1")
    [ "$RC" -ne 0 ] || fail "$1: exit 0, wanted error $2 (stdout: $(cat "$OUT"))"
    code=${got%%$'\t'*}
    msg=${got#*$'\t'}
    [ "$code" = "$2" ] || fail "$1: code '$code', wanted $2 ($msg)"
    case "$msg" in *"$3"*) ;; *) fail "$1: msg '$msg' does not mention '$3'" ;; esac
    passed=$((passed + 1))
    echo "ok $1: code $code: $msg"
}

expect_ok() {
    check_streams "$1" >/dev/null
    [ "$RC" -eq 0 ] || fail "$1: exit $RC: $(cat "$OUT") $(tail -2 "$ERR")"
    passed=$((passed + 1))
    echo "ok $1"
}

good=$IPAM_TMP/good.json
conf 1.0.0 >"$good"

# --- the happy path, for reference
run "$good"
expect_ok "ADD"
[ "$(json_get "$OUT" 'd["ips"][0]["address"]')" = "$IPAM_ADDR/$IPAM_PREFIX" ] || fail "ADD address"

# --- environment (code 4)
run "$good" -u CNI_COMMAND
expect_error "no CNI_COMMAND" 4 "CNI_COMMAND is not set"
run "$good" CNI_COMMAND=ATTACH
expect_error "unknown CNI_COMMAND" 4 "unknown"
run "$good" CNI_IFNAME=averyveryverylong0
expect_error "CNI_IFNAME over 15 bytes" 4 "at most 15"
run "$good" CNI_IFNAME=net/1
expect_error "CNI_IFNAME with /" 4 "invalid character"
run "$good" -u CNI_IFNAME
expect_error "no CNI_IFNAME" 4 "CNI_IFNAME is not set"
run "$good" -u CNI_CONTAINERID
expect_error "no CNI_CONTAINERID" 4 "CNI_CONTAINERID is not set"
run "$good" 'CNI_CONTAINERID=x;reboot'
expect_error "CNI_CONTAINERID with ;" 4 "CNI_CONTAINERID"
run "$good" -u CNI_NETNS
expect_error "no CNI_NETNS" 4 "CNI_NETNS is not set"
run "$good" CNI_NETNS=/etc/hostname
expect_error "CNI_NETNS a plain file" 4 "not a namespace"
run "$good" CNI_NETNS=/proc/self/ns/uts
expect_error "CNI_NETNS a UTS namespace" 4 "not a network namespace"
run "$good" CNI_NETNS=/run/netns/does-not-exist
expect_error "CNI_NETNS missing" 4 "No such file"
run "$good" CNI_ARGS='K8S_POD_NAME'
expect_error "CNI_ARGS malformed" 4 "KEY=VALUE"

# --- stdin (code 6) and versions (code 1)
printf '{"cniVersion": "1.0.0", "ipam": ' >"$IPAM_TMP/trunc.json"
run "$IPAM_TMP/trunc.json"
expect_error "truncated JSON" 6 "not valid JSON"
run /dev/null
expect_error "empty stdin" 6 "no network configuration"
head -c 1100000 /dev/zero | tr '\0' ' ' >"$IPAM_TMP/big.json"
run "$IPAM_TMP/big.json"
expect_error "stdin over 1 MiB" 6 "larger than"
printf '\xff\xfe\x00garbage' >"$IPAM_TMP/bin.json"
run "$IPAM_TMP/bin.json"
expect_error "binary stdin" 6 "not valid JSON"
conf 0.2.0 >"$IPAM_TMP/v020.json"
run "$IPAM_TMP/v020.json"
expect_error "cniVersion 0.2.0" 1 "not supported"
printf '{"ipam":{"type":"eni-ipam"}}' >"$IPAM_TMP/nover.json"
run "$IPAM_TMP/nover.json"
expect_error "no cniVersion" 1 "cniVersion missing"

# --- bad ipam values (code 7), each naming its key
i=0
for frag in ',"imds_timeout_ms":-5' ',"imds_retries":"3"' ',"routes":[{"dst":"224.0.0.0/40"}]' \
    ',"log_level":"loud"' ',"imds_endpoint_typo":1' ',"log_file":"rel/x.log"'; do
    key=$(printf '%s' "$frag" | sed 's/^,"\([a-z_]*\)".*/\1/')
    printf '{"cniVersion":"1.0.0","name":"mc","ipam":{"type":"eni-ipam"%s}}' "$frag" >"$IPAM_TMP/bad$i.json"
    run "$IPAM_TMP/bad$i.json"
    expect_error "ipam $key" 7 "$key"
    i=$((i + 1))
done
printf '{"cniVersion":"1.0.0","ipam":{"type":"eni-ipam","imds_endpoint":"https://[fd00:ec2::254]"}}' >"$IPAM_TMP/https.json"
run "$IPAM_TMP/https.json"
expect_error "https endpoint" 7 "imds_endpoint"
conf 1.0.0 ',"imds_retries":5' >"$IPAM_TMP/dup.json"
run "$IPAM_TMP/dup.json"
expect_error "duplicate key" 7 "imds_retries"

# --- the link (own code 101)
run "$good" CNI_IFNAME=eth9
expect_error "link not found" 101 'link "eth9" not found'

# --- IMDS failure modes
for m in "404 11 freshly attached" "500 11 server error" "throttle 11 throttled" \
    "slow 11 Timeout" "close 11 nothing" "garbage 102 not an IPv4 address" \
    "badprefix 103 out of range" "outside 103 outside its subnet" "huge 104 larger than" \
    "notoken 105 403"; do
    read -r mode code needle <<<"$m"
    ipam_mock_start "$mode" --slow-ms 2000
    conf 1.0.0 >"$IPAM_TMP/mode.json"
    run "$IPAM_TMP/mode.json"
    expect_error "IMDS $mode" "$code" "$needle"
done
ipam_mock_stop
run "$good"
expect_error "IMDS down" 11 "Couldn't connect"

# --- DEL always succeeds, prints nothing
for case in "ok:$good:" "down:$good:" "garbage stdin:$IPAM_TMP/bin.json:" \
    "no netns:$good:-u CNI_NETNS" "vanished netns:$good:CNI_NETNS=/run/netns/gone" \
    "bad ifname:$good:CNI_IFNAME=x/y" "bad version:$IPAM_TMP/v020.json:"; do
    IFS=: read -r name input extra <<<"$case"
    # shellcheck disable=SC2086 # extra is a word list on purpose
    run "$input" CNI_COMMAND=DEL $extra
    expect_ok "DEL ($name)"
    [ ! -s "$OUT" ] || fail "DEL ($name) printed: $(cat "$OUT")"
done

# --- CHECK against the address on the link
ipam_mock_start ok
ip -n "$IPAM_NODE" addr add "$IPAM_ADDR/$IPAM_PREFIX" dev eth1
prev() {
    python3 -c 'import json,sys; c=json.loads(sys.argv[1]); c["prevResult"]={"cniVersion":c["cniVersion"],"ips":[{"address":sys.argv[2]}]}; print(json.dumps(c))' \
        "$(conf "$1")" "$2"
}
prev 1.0.0 "$IPAM_ADDR/$IPAM_PREFIX" >"$IPAM_TMP/check-ok.json"
run "$IPAM_TMP/check-ok.json" CNI_COMMAND=CHECK
expect_ok "CHECK (address present)"
prev 1.0.0 "198.18.1.99/24" >"$IPAM_TMP/check-bad.json"
run "$IPAM_TMP/check-bad.json" CNI_COMMAND=CHECK
expect_error "CHECK (address absent)" 107 "does not carry 198.18.1.99/24"
prev 1.0.0 "$IPAM_ADDR/16" >"$IPAM_TMP/check-prefix.json"
run "$IPAM_TMP/check-prefix.json" CNI_COMMAND=CHECK
expect_error "CHECK (wrong prefix)" 107 "it has: $IPAM_ADDR/$IPAM_PREFIX"
prev 0.3.1 "$IPAM_ADDR/$IPAM_PREFIX" >"$IPAM_TMP/check-old.json"
run "$IPAM_TMP/check-old.json" CNI_COMMAND=CHECK
expect_error "CHECK (0.3.1)" 1 "0.4.0"
run "$good" CNI_COMMAND=CHECK
expect_error "CHECK (no prevResult)" 7 "prevResult"

# --- VERSION, STATUS, GC
run /dev/null CNI_COMMAND=VERSION -u CNI_CONTAINERID -u CNI_NETNS -u CNI_IFNAME
expect_ok "VERSION"
[ "$(json_get "$OUT" 'd["supportedVersions"]')" = "['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']" ] ||
    fail "VERSION lists $(cat "$OUT")"
conf 1.1.0 >"$IPAM_TMP/v110.json"
for c in STATUS GC; do
    run "$IPAM_TMP/v110.json" CNI_COMMAND=$c -u CNI_CONTAINERID -u CNI_NETNS -u CNI_IFNAME
    expect_ok "$c (1.1.0)"
    run "$good" CNI_COMMAND=$c
    expect_error "$c (1.0.0)" 1 "1.1.0"
done

# --- 1.1.0 ADD, proxies in the environment ignored, the log file written
run "$IPAM_TMP/v110.json" http_proxy=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9
expect_ok "ADD 1.1.0 with proxy variables set"
[ "$(json_get "$OUT" 'd["cniVersion"]')" = 1.1.0 ] || fail "1.1.0 result version"
conf 1.0.0 ",\"log_file\":\"$IPAM_TMP/file.log\",\"log_level\":\"debug\"" >"$IPAM_TMP/logfile.json"
run "$IPAM_TMP/logfile.json"
expect_ok "ADD with log_file"
grep -q "has MAC $IPAM_MAC" "$IPAM_TMP/file.log" || fail "debug line missing from log_file"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$IPAM_TMP/file.log" ||
    fail "log_file is not JSON lines"

# --- the IPv6 endpoint form (IMDS's fd00:ec2::254), here against the mock on [::1]
if ip netns exec "$IPAM_NODE" python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null; then
    ipam_mock_stop
    ip netns exec "$IPAM_NODE" python3 "$IPAM_MOCK" --listen '[::1]:0' --macs "$IPAM_TMP/macs.json" \
        >"$IPAM_TMP/mock6.out" 2>&1 &
    IPAM_MOCK_PID=$!
    for _ in $(seq 100); do grep -q '^listening on ' "$IPAM_TMP/mock6.out" && break; sleep 0.05; done
    IPAM_ENDPOINT="http://$(sed -n 's/^listening on //p' "$IPAM_TMP/mock6.out")"
    conf 1.0.0 >"$IPAM_TMP/v6.json"
    run "$IPAM_TMP/v6.json"
    expect_ok "ADD via IPv6 endpoint $IPAM_ENDPOINT"
else
    echo "note: IPv6 loopback unavailable in the namespace; IPv6 endpoint run left out"
fi

echo "$passed passed, 0 failed"
echo "PASS ipam_errors"
