#!/usr/bin/env bash
# deploy/vm: the systemd unit passes `systemd-analyze verify` and passes mdfeed-tap only flags it
# has; the sysctl drop-in applied in a throwaway namespace forces IGMPv2 (the kernel then joins
# with IGMPv2, /proc/net/igmp says V2); join_group.py, the plain-socket join, receives MoldUDP64
# datagrams sent to the group from a second namespace over a veth.
# shellcheck source=tests/common/lib.sh
source "$(dirname "$0")/../common/lib.sh"
need_cmd python3
vm=$MDCAST_SOURCE_DIR/deploy/vm
tap=$MDCAST_BUILD_DIR/feedhandler/tools/mdfeed-tap
work=$(mktemp -d)
tag=$(test_tag)
snd=${tag}s rcv=${tag}r
cleanup() {
  ip netns del "$snd" 2>/dev/null || true
  ip netns del "$rcv" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "1. the unit: systemd-analyze verify, and every flag is one mdfeed-tap has"
unit=$work/mdfeed-tap@itch.service
exe=/bin/true
[ -x "$tap" ] && exe=$tap
sed "s|/usr/local/bin/mdfeed-tap|$exe|" "$vm/mdfeed-tap@.service" >"$unit"
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze verify "$unit" >"$work/verify.out" 2>&1 || fail "systemd-analyze verify: $(cat "$work/verify.out")"
  # Unknown keys or sections are only warnings there: refuse any output about this unit.
  ! grep -q "$(basename "$unit")" "$work/verify.out" || fail "systemd-analyze: $(cat "$work/verify.out")"
else
  echo "note: systemd-analyze not installed; unit not verified"
fi
grep -q '^ExecStart=/usr/local/bin/mdfeed-tap ' "$vm/mdfeed-tap@.service" || fail "ExecStart is not mdfeed-tap"
# shellcheck disable=SC1090,SC1091
(set -a; source "$vm/mdfeed-tap-itch.env"; set +a
 [ -n "${MDFEED_GROUP:-}" ] && [ -n "${MDFEED_INTERFACE:-}" ]) || fail "env file lacks the required settings"
flags=$( (grep '^ExecStart=' "$vm/mdfeed-tap@.service"; grep '^MDFEED_ARGS=' "$vm/mdfeed-tap-itch.env") |
  grep -o -- '--[a-z-]*' | sort -u)
if [ -x "$tap" ]; then
  help=$(ASAN_OPTIONS=detect_leaks=0 "$tap" --help 2>&1 || true)
  for f in $flags; do
    grep -q -- "$f " <<<"$help" || fail "mdfeed-tap has no flag $f (used by the unit or its env file)"
  done
else
  echo "note: mdfeed-tap not built; flags not checked against it"
fi

need_root
need_cmd ip iproute2
echo "2. the sysctl drop-in forces IGMPv2; the plain-socket join receives the group"
ip netns add "$snd"
ip netns add "$rcv"
ip -n "$snd" link add "${tag}a" type veth peer name "${tag}b" netns "$rcv"
ip -n "$snd" addr add 198.18.200.1/24 dev "${tag}a"
ip -n "$rcv" addr add 198.18.200.2/24 dev "${tag}b"
ip -n "$snd" link set "${tag}a" up
ip -n "$rcv" link set "${tag}b" up
ip netns exec "$rcv" sysctl -q -p "$vm/60-mdcast-igmp.conf" || fail "sysctl -p of the drop-in failed"
for k in all default; do
  [ "$(ip netns exec "$rcv" cat /proc/sys/net/ipv4/conf/$k/force_igmp_version)" = 2 ] || fail "$k not forced to IGMPv2"
done

ip netns exec "$rcv" timeout 20 python3 "$vm/join_group.py" --group 239.192.10.1:31001 \
  --interface "${tag}b" --count 3 --timeout 15 >"$work/recv.out" 2>&1 &
recv=$!
# Joined when the group shows in /proc/net/igmp (239.192.10.1 is 010AC0EF there).
for _ in $(seq 50); do ip netns exec "$rcv" grep -q 010AC0EF /proc/net/igmp && break; sleep 0.1; done
# shellcheck disable=SC2016 # awk's own $2/$5, not the shell's
ip netns exec "$rcv" awk -v d="${tag}b" '$2 == d { print $5 }' /proc/net/igmp | grep -qx V2 ||
  fail "the join did not use IGMPv2: $(ip netns exec "$rcv" cat /proc/net/igmp)"
ip netns exec "$snd" python3 - <<'PY'
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("198.18.200.1"))
msg = b"A" * 36
for seq, count, body in ((1, 2, struct.pack("!H", 36) + msg + struct.pack("!H", 36) + msg),
                         (3, 0, b""), (3, 0xFFFF, b"")):
    s.sendto(b"MDCAST0001" + struct.pack("!QH", seq, count) + body, ("239.192.10.1", 31001))
PY
wait "$recv" || fail "join_group.py exit $?: $(cat "$work/recv.out")"
grep -q 'session=MDCAST0001 seq=1 2 messages (96 bytes)' "$work/recv.out" || fail "data packet: $(cat "$work/recv.out")"
grep -q 'seq=3 heartbeat' "$work/recv.out" || fail "heartbeat: $(cat "$work/recv.out")"
grep -q 'seq=3 end-of-session' "$work/recv.out" || fail "end of session: $(cat "$work/recv.out")"
rc=0
ip netns exec "$rcv" python3 "$vm/join_group.py" --group 198.18.0.1:1 --interface "${tag}b" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "a unicast --group was accepted (exit $rc)"
echo "PASS: deploy/vm"
