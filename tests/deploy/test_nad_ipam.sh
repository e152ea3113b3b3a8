#!/usr/bin/env bash
# The NAD's ipam section is a config the real eni-ipam accepts: run as host-device would call it
# (the plugin's config with the list's cniVersion and name), ADD gets past config validation to
# the link look-up (code 101 for a link that does not exist) and never reaches the metadata
# service; the same config with a bad value is refused with code 7 naming the key.
# shellcheck source=tests/common/lib.sh
source "$(dirname "$0")/../common/lib.sh"
ipam=$MDCAST_BUILD_DIR/ipam/eni-ipam
[ -x "$ipam" ] || skip "eni-ipam not built in $MDCAST_BUILD_DIR"
need_root
need_cmd python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

python3 - "$MDCAST_SOURCE_DIR/deploy/k8s/base/hostdevice-multicast-network.json" "$work" <<'PY'
import json, sys
conf = json.load(open(sys.argv[1]))
hd = next(p for p in conf["plugins"] if p["type"] == "host-device")
plugin = dict(hd, cniVersion=conf["cniVersion"], name=conf["name"])
json.dump(plugin, open(sys.argv[2] + "/good.json", "w"))
plugin["ipam"] = dict(plugin["ipam"], imds_retries="three")
json.dump(plugin, open(sys.argv[2] + "/bad.json", "w"))
PY

# add CONFIG: runs ADD against a link name that does not exist in this namespace.
add() {
  rc=0
  out=$(CNI_COMMAND=ADD CNI_CONTAINERID=deploy-nad-check CNI_NETNS=/proc/self/ns/net \
    CNI_IFNAME="m$$x" CNI_PATH=/usr/lib/cni timeout 20 "$ipam" <"$1" 2>"$work/stderr") || rc=$?
}
add "$work/good.json"
[ "$rc" -ne 0 ] || fail "ADD succeeded on a link that does not exist: $out"
code=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["code"])' "$out")
[ "$code" -gt 100 ] || fail "the NAD's ipam config was refused (code $code): $out"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(d["cniVersion"] != "1.0.0")' "$out" ||
  fail "error JSON does not carry the config's cniVersion: $out"
add "$work/bad.json"
code=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["code"])' "$out")
[ "$code" -eq 7 ] || fail "a bad ipam value was not refused with code 7: $out"
grep -q imds_retries <<<"$out" || fail "the error does not name the key: $out"
echo "PASS: eni-ipam accepts the NAD's ipam config"
