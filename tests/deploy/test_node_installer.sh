#!/usr/bin/env bash
# The node installer (deploy/k8s/base/node-installer/install.sh) run for real in a throwaway
# "node" network namespace: it installs the eni-ipam bundle (the real one, from this build's
# CMake install component, when built) and the seccomp profile atomically into stand-in host
# directories, forces IGMPv2 in the namespace, renames the multicast ENI (a veth with a known
# MAC, left as net1 as after a vanished pod) to eth1 with MTU 8500, does nothing while a "pod"
# holds the ENI, renames it again when it comes back as net1, finds the ENI's MAC through an
# IMDSv2 mock by device index, is idempotent, and refuses bad settings clearly.
# shellcheck source=tests/common/lib.sh
source "$(dirname "$0")/../common/lib.sh"
need_root
need_cmd ip "iproute2"
need_cmd python3

installer=$MDCAST_SOURCE_DIR/deploy/k8s/base/node-installer/install.sh
profile=$MDCAST_SOURCE_DIR/deploy/k8s/base/seccomp/mdcast-gateway.json
tag=$(test_tag)
node=${tag}node pod=${tag}pod
MAC=02:00:5e:c0:ff:01
work=$(mktemp -d)
mock_pid=

cleanup() {
  [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null
  ip netns del "$node" 2>/dev/null || true
  ip netns del "$pod" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$node"
ip netns add "$pod"
ip -n "$node" link set lo up
# The multicast ENI as the kernel hands it back from a vanished pod: named net1, a known MAC.
ip -n "$node" link add net1 address "$MAC" type veth peer name "${tag}p"
ip -n "$node" link add "${tag}x" address 02:00:5e:c0:ff:99 type veth peer name "${tag}y"
ip -n "$node" link set net1 up

# The eni-ipam bundle as the image carries it: the real CMake install component when built.
src=$work/image/opt/mdcast/cni
if [ -x "$MDCAST_BUILD_DIR/ipam/eni-ipam" ]; then
  cmake --install "$MDCAST_BUILD_DIR" --component eni-ipam --prefix "$src" >/dev/null ||
    fail "cmake --install --component eni-ipam failed"
else
  echo "note: eni-ipam not built; using a stand-in bundle"
  mkdir -p "$src/bin/eni-ipam.libs"
  printf '#!/bin/sh\necho stand-in\n' >"$src/bin/eni-ipam"
  echo lib >"$src/bin/eni-ipam.libs/libstandin.so.1"
fi
[ -f "$src/bin/eni-ipam" ] || fail "no eni-ipam in the bundle"
mkdir -p "$work/host/opt/cni/bin" "$work/host/seccomp"
echo "other plugin" >"$work/host/opt/cni/bin/host-device"

# run_installer [VAR=value ...] -- ARGS: runs the installer inside the node namespace with the
# stand-in host paths; output in $out, exit status in $rc.
run_installer() {
  local envs=()
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  rc=0
  out=$(ip netns exec "$node" env CNI_BIN_DIR="$work/host/opt/cni/bin" ENI_IPAM_SRC="$src/bin" \
    SECCOMP_SRC="$profile" SECCOMP_DIR="$work/host/seccomp" SECCOMP_PROFILE=profiles/mdcast-gateway.json \
    ENI_MAC="$MAC" "${envs[@]}" timeout 60 bash "$installer" "$@" 2>&1) || rc=$?
}
link_name() { ip -n "$node" -o link | awk -v m="$MAC" '$0 ~ "link/ether " m { sub(/:$/, "", $2); sub(/@.*/, "", $2); print $2 }'; }
sysctl_in() { ip netns exec "$node" cat "/proc/sys/net/ipv4/conf/$1/force_igmp_version"; }

echo "1. first round: install, IGMPv2, rename net1 -> eth1, MTU 8500"
run_installer -- --once
[ "$rc" -eq 0 ] || fail "installer exit $rc: $out"
[ "$(link_name)" = eth1 ] || fail "ENI is named '$(link_name)', expected eth1: $out"
ip -n "$node" -o link show eth1 | grep -q 'mtu 8500' || fail "MTU not 8500: $(ip -n "$node" -o link show eth1)"
ip -n "$node" -o link show "${tag}x" | grep -q "${tag}x" || fail "the other link was touched"
[ "$(sysctl_in all)" = 2 ] || fail "all.force_igmp_version not 2"
[ "$(sysctl_in default)" = 2 ] || fail "default.force_igmp_version not 2"
cmp -s "$src/bin/eni-ipam" "$work/host/opt/cni/bin/eni-ipam" || fail "eni-ipam not installed"
[ -x "$work/host/opt/cni/bin/eni-ipam" ] || fail "eni-ipam not executable"
while IFS= read -r -d '' f; do
  rel=${f#"$src/bin/"}
  cmp -s "$f" "$work/host/opt/cni/bin/$rel" || fail "bundle file $rel not installed"
done < <(find "$src/bin" -type f -print0)
cmp -s "$profile" "$work/host/seccomp/profiles/mdcast-gateway.json" || fail "seccomp profile not installed"
[ "$(cat "$work/host/opt/cni/bin/host-device")" = "other plugin" ] || fail "another plugin was touched"
[ -z "$(find "$work/host" -name '*.tmp.*')" ] || fail "temporary files left behind"
grep -q '"msg":"renamed net1' <<<"$out" || fail "rename not logged: $out"
if [ -x "$MDCAST_BUILD_DIR/ipam/eni-ipam" ]; then
  # The installed plugin answers VERSION from the node's CNI dir (its libraries beside it).
  CNI_COMMAND=VERSION "$work/host/opt/cni/bin/eni-ipam" </dev/null | grep -q '"supportedVersions"' ||
    fail "installed eni-ipam does not answer VERSION"
fi

echo "2. second round: nothing to do, nothing logged as changed"
run_installer -- --once
[ "$rc" -eq 0 ] || fail "second round exit $rc: $out"
grep -q 'installed\|renamed\|set ' <<<"$out" && fail "second round changed something: $out"

echo "3. while a pod holds the ENI the installer leaves it alone; back as net1, renamed again"
ip -n "$node" link set eth1 netns "$pod"
ip -n "$pod" link set eth1 name net1
run_installer -- --once
[ "$rc" -eq 0 ] || fail "round with the ENI in a pod: exit $rc: $out"
ip -n "$pod" link show net1 >/dev/null 2>&1 || fail "the pod's net1 was touched"
ip -n "$pod" link set net1 mtu 1500
ip -n "$pod" link set net1 netns "$node"
[ "$(link_name)" = net1 ] || fail "setup: ENI should be back as net1"
run_installer -- --once
[ "$(link_name)" = eth1 ] || fail "returned ENI not renamed to eth1: $out"
ip -n "$node" -o link show eth1 | grep -q 'mtu 8500' || fail "returned ENI's MTU not restored"

echo "4. the ENI's MAC found through IMDSv2 by device index"
ip -n "$node" link set eth1 name net1
ip netns exec "$node" python3 "$MDCAST_SOURCE_DIR/tests/deploy/mock_imds_devices.py" --listen 127.0.0.1:0 \
  --devices "{\"02:00:5e:c0:ff:00\": 0, \"$MAC\": 1}" >"$work/mock.out" 2>&1 &
mock_pid=$!
for _ in $(seq 50); do grep -q '^listening on' "$work/mock.out" && break; sleep 0.1; done
endpoint=http://$(awk '/^listening on/ {print $3}' "$work/mock.out")
[ "$endpoint" != http:// ] || fail "mock IMDS did not start: $(cat "$work/mock.out")"
run_installer ENI_MAC= IMDS_ENDPOINT="$endpoint" -- --once
[ "$rc" -eq 0 ] || fail "installer with IMDS discovery: exit $rc: $out"
grep -q "multicast ENI is $MAC (device index 1)" <<<"$out" || fail "MAC not discovered: $out"
[ "$(link_name)" = eth1 ] || fail "ENI found through IMDS not renamed"
run_installer ENI_MAC= IMDS_ENDPOINT="$endpoint" ENI_DEVICE_INDEX=2 -- --once
[ "$rc" -eq 1 ] || fail "no ENI at index 2 should fail the round, got $rc"
grep -q 'no ENI at device index 2' <<<"$out" || fail "missing ENI not reported: $out"
kill "$mock_pid"; wait "$mock_pid" 2>/dev/null || true; mock_pid=
run_installer ENI_MAC= IMDS_ENDPOINT="$endpoint" -- --once
[ "$rc" -eq 1 ] || fail "IMDS down: exit $rc"
grep -q 'IMDSv2 token request' <<<"$out" || fail "IMDS down not reported: $out"

echo "5. a name conflict is reported, not forced"
ip -n "$node" link set eth1 name net1
ip -n "$node" link set "${tag}x" name eth1
run_installer -- --once
[ "$rc" -eq 1 ] || fail "name conflict: exit $rc"
grep -q 'another link already has that name' <<<"$out" || fail "conflict not reported: $out"
[ "$(link_name)" = net1 ] || fail "ENI renamed despite the conflict"
ip -n "$node" link del eth1

echo "6. bad settings are refused with the variable named"
for bad in ENI_MTU=abc ENI_MTU=9500 ENI_NAME=way-too-long-name0 ENI_MAC=zz:00 RECONCILE_INTERVAL=0 \
           SECCOMP_PROFILE=../../etc/x ENI_DEVICE_INDEX=0; do
  run_installer "$bad" -- --once
  [ "$rc" -eq 1 ] || fail "$bad accepted (exit $rc)"
  grep -q "${bad%%=*}=" <<<"$out" || fail "$bad: error does not name it: $out"
done
run_installer ENI_MAC= IMDS_ENDPOINT= -- --once
grep -q 'neither ENI_MAC nor IMDS_ENDPOINT' <<<"$out" || fail "missing ENI identity not reported: $out"
run_installer ENI_IPAM_SRC="$work/nothing" -- --once
grep -q 'eni-ipam not found in the image' <<<"$out" || fail "missing bundle not reported: $out"
run_installer -- --bogus
[ "$rc" -eq 1 ] || fail "bad argument accepted (exit $rc)"
grep -q usage <<<"$out" || fail "bad argument: no usage line: $out"

echo "7. the loop: bounded rounds, and SIGTERM ends it at once"
run_installer RECONCILE_INTERVAL=1 RECONCILE_ROUNDS=2 --
[ "$rc" -eq 0 ] || fail "two rounds: exit $rc: $out"
ip netns exec "$node" env CNI_BIN_DIR="$work/host/opt/cni/bin" ENI_IPAM_SRC="$src/bin" SECCOMP_SRC="$profile" \
  SECCOMP_DIR="$work/host/seccomp" ENI_MAC="$MAC" RECONCILE_INTERVAL=60 bash "$installer" 2>"$work/loop.err" &
loop=$!
sleep 1
start=$SECONDS
kill -TERM "$loop"
wait "$loop" || fail "installer exit $? on SIGTERM"
[ $((SECONDS - start)) -le 3 ] || fail "SIGTERM took $((SECONDS - start)) s"
grep -q '"msg":"stopping"' "$work/loop.err" || fail "no stop log"

echo "PASS: node installer"
