#!/usr/bin/env bash
# The gateway config the Kubernetes manifests ship (the mdcast-gateway-config ConfigMap, as
# kustomize renders it) passes `mdcast-gateway --check`; the same config with the walkthrough's
# group 224.0.0.13 (the link-local control block) is refused with exit 2, so the check is real.
# shellcheck source=tests/common/lib.sh
source "$(dirname "$0")/../common/lib.sh"
gw=$MDCAST_BUILD_DIR/gateway/mdcast-gateway
[ -x "$gw" ] || skip "mdcast-gateway not built in $MDCAST_BUILD_DIR"
need_cmd python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

# The config as the pod sees it: from the rendered ConfigMap when kubectl is here, else the file
# the ConfigMap is generated from (deploy_k8s_render checks the two are identical).
if command -v kubectl >/dev/null 2>&1; then
  KUBECONFIG=/dev/null kubectl kustomize "$MDCAST_SOURCE_DIR/deploy/k8s/base" >"$work/rendered.yaml"
  python3 - "$work/rendered.yaml" "$work/gateway.json" <<'PY'
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("mdcast-gateway-config"):
        open(sys.argv[2], "w").write(d["data"]["gateway.json"])
        break
else:
    sys.exit("no mdcast-gateway-config ConfigMap rendered")
PY
else
  cp "$MDCAST_SOURCE_DIR/deploy/k8s/base/gateway/gateway.json" "$work/gateway.json"
fi

"$gw" --config "$work/gateway.json" --check || fail "shipped gateway config fails --check"

sed 's/239\.192\.10\.1:/224.0.0.13:/' "$work/gateway.json" >"$work/bad.json"
cmp -s "$work/gateway.json" "$work/bad.json" && fail "could not make the bad config"
rc=0
"$gw" --config "$work/bad.json" --check 2>"$work/err" || rc=$?
[ "$rc" -eq 2 ] || fail "config with group 224.0.0.13: exit $rc, expected 2"
grep -q 'lines' "$work/err" || fail "the error does not name the key: $(cat "$work/err")"
echo "PASS: deploy gateway config passes --check; a 224.0.0.x group is refused"
