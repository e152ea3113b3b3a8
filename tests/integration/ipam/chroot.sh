#!/usr/bin/env bash
# eni-ipam is self-contained: installed with its bundle step
#   cmake --install <build> --component eni-ipam --prefix <root>/opt/cni
# into an empty root that then receives only glibc's own files (the libc6 package's shared
# objects and loader), it runs under chroot: VERSION, and an ADD against the mock IMDSv2 on
# loopback (numeric endpoint: the chroot has no resolver configuration).
#
# The chroot gets /proc mounted, as a node's root has it: the loader resolves $ORIGIN through
# /proc/self/exe, eni-ipam returns to its own network namespace through
# /proc/thread-self/ns/net, and ASan builds read /proc/self/maps. The mounts live in the
# private mount namespace of `ip netns exec` and vanish with it.
source "$MDCAST_SOURCE_DIR/tests/common/lib.sh"
source "$MDCAST_SOURCE_DIR/tests/integration/ipam/common.sh"

need_cmd chroot "apt-get install coreutils"
CHROOT=$(command -v chroot)
export CHROOT
need_cmd dpkg-query "a Debian system"
need_cmd cmake "apt-get install cmake"
ipam_setup
ipam_mock_start ok

root=$IPAM_TMP/root
mkdir -p "$root/proc" "$root/tmp"
touch "$root/netns"

# 1. The bundle: binary with DT_RPATH=$ORIGIN/eni-ipam.libs and its libraries, no glibc.
cmake --install "$MDCAST_BUILD_DIR" --component eni-ipam --prefix "$root/opt/cni" >"$IPAM_TMP/install.log" ||
    fail "install failed: $(tail -5 "$IPAM_TMP/install.log")"
plugin=$root/opt/cni/bin/eni-ipam
[ -x "$plugin" ] || fail "no installed plugin at $plugin"
# shellcheck disable=SC2016 # a literal $ORIGIN
readelf -d "$plugin" | grep -q '(RPATH).*\$ORIGIN/eni-ipam.libs' || fail "installed binary lacks DT_RPATH \$ORIGIN/eni-ipam.libs"
if readelf -d "$plugin" | grep -q '(RUNPATH)'; then fail "installed binary has DT_RUNPATH (transitive deps would not be found)"; fi
nlibs=$(find "$root/opt/cni/bin/eni-ipam.libs" -name '*.so*' -type f | wc -l)
[ "$nlibs" -gt 0 ] || fail "empty bundle"
if find "$root/opt/cni/bin/eni-ipam.libs" -regextype egrep \
    -regex '.*/((libc|libm|libpthread|libdl|librt|libresolv)\.so.*|ld-linux.*)' | grep -q .; then
    fail "the bundle carries glibc's own libraries"
fi

# 2. glibc's files, and nothing else from the host.
# Merged-/usr systems make /lib and /lib64 symlinks: mirror those, copy files to real dirs.
for d in /lib /lib64; do
    if [ -L "$d" ]; then ln -s "$(readlink "$d")" "$root$d"; fi
done
nglibc=0
while read -r f; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    dir=$(realpath "$(dirname "$f")")
    mkdir -p "$root$dir"
    [ -e "$root$dir/$(basename "$f")" ] || [ -L "$root$dir/$(basename "$f")" ] ||
        cp -a "$f" "$root$dir/"
    nglibc=$((nglibc + 1))
done < <(dpkg-query -L libc6 | grep -E '^/(usr/)?lib(64|/x86_64-linux-gnu)?/[^/]*\.so(\.[0-9]+)*$')
[ "$nglibc" -gt 0 ] || fail "found no glibc files in dpkg's list for libc6"
echo "chroot: the plugin, $nlibs bundled libraries, $nglibc glibc files ($(du -sh "$root" | cut -f1))"

# in_chroot VAR=VALUE...: runs the installed plugin in the chroot, in the node
# namespace, with stdin from $IN; stdout to $OUT.
in_chroot() {
    export BIN
    set +e
    # shellcheck disable=SC2016 # expanded by the inner sh
    ip netns exec "$IPAM_NODE" sh -c '
        root=$1 netns=$2; shift 2
        mount -t proc proc "$root/proc" || exit 90
        mount --bind "$netns" "$root/netns" || exit 91
        exec env -i "$@" "$CHROOT" "$root" "${BIN:-/opt/cni/bin/eni-ipam}"' \
        sh "$root" "/run/netns/$IPAM_NODE" "$@" <"$IN" >"$OUT" 2>"$IPAM_TMP/chroot.err"
    RC=$?
    set -e
}

OUT=$IPAM_TMP/out.json
IN=/dev/null
in_chroot CNI_COMMAND=VERSION
[ "$RC" -eq 0 ] || fail "VERSION in the chroot: exit $RC: $(cat "$IPAM_TMP/chroot.err")"
[ "$(json_get "$OUT" 'd["supportedVersions"][-1]')" = 1.1.0 ] || fail "VERSION output: $(cat "$OUT")"
echo "ok VERSION in the chroot: $(cat "$OUT")"

IN=$IPAM_TMP/add.json
printf '{"cniVersion":"1.0.0","name":"mc","type":"host-device","ipam":{"type":"eni-ipam","imds_endpoint":"%s"}}' \
    "$IPAM_ENDPOINT" >"$IN"
in_chroot CNI_COMMAND=ADD CNI_CONTAINERID=chroot CNI_NETNS=/netns CNI_IFNAME=eth1
[ "$RC" -eq 0 ] || fail "ADD in the chroot: exit $RC: $(cat "$OUT") $(cat "$IPAM_TMP/chroot.err")"
[ "$(json_get "$OUT" 'd["ips"][0]["address"]')" = "$IPAM_ADDR/$IPAM_PREFIX" ] || fail "ADD output: $(cat "$OUT")"
echo "ok ADD in the chroot: $(cat "$OUT")"

# Control: the same binary without its bundle beside it must not start in this root, or the
# chroot would prove nothing.
mkdir -p "$root/bare"
cp "$IPAM_BIN" "$root/bare/eni-ipam"
IN=/dev/null
BIN=/bare/eni-ipam in_chroot CNI_COMMAND=VERSION
[ "$RC" -ne 0 ] || fail "the unbundled binary ran in the chroot: it is not as empty as it should be"
grep -q 'cannot open shared object' "$IPAM_TMP/chroot.err" || fail "control: $(cat "$IPAM_TMP/chroot.err")"
echo "ok control: without its bundle: $(head -1 "$IPAM_TMP/chroot.err")"

echo "PASS ipam_chroot"
