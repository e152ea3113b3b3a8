#!/usr/bin/env bash
# The example consumer builds against the INSTALLED library through pkg-config (cmake
# --install into a temporary prefix, then the example's Makefile), and receives a feed from
# mold-send in a network namespace this test creates.
source "$MDCAST_SOURCE_DIR/tests/common/lib.sh"
need_cmd pkg-config
need_cmd make
B=$MDCAST_BUILD_DIR
work=$(mktemp -d)
ns=""
cleanup() {
  [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cmake --install "$B" --prefix "$work/prefix" >/dev/null
# shellcheck disable=SC2016 # a literal ${prefix} in the .pc file
libdir=$(sed -n 's/^libdir=\${prefix}\///p' "$work/prefix"/lib*/pkgconfig/mdfeed.pc)
pc="$work/prefix/$libdir/pkgconfig"
[ -f "$pc/mdfeed.pc" ] || fail "mdfeed.pc not installed"
[ -f "$work/prefix/include/mdfeed/mdfeed.h" ] || fail "mdfeed.h not installed"
cp -r "$MDCAST_SOURCE_DIR/feedhandler/examples" "$work/ex"
# A sanitizer build installs an instrumented library; the example must link the runtime too.
cflags="-O2 -Wall -Wextra -Werror"
cc=cc
if grep -q '^MDCAST_SANITIZE:BOOL=ON' "$B/CMakeCache.txt"; then
  cflags="$cflags -fsanitize=address,undefined"
  cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$B/CMakeCache.txt")
fi
# mdfeed.pc names the configured prefix; a relocated install overrides it, as packagers do.
PKG_CONFIG_PATH="$pc" make -s -C "$work/ex" CC="$cc" CFLAGS="$cflags" \
  PKG_CONFIG="pkg-config --define-variable=prefix=$work/prefix" consumer \
  || fail "the example did not build against the installed library"
# It links the installed shared library, not the build tree's.
# (ldd's output is captured first: `ldd | grep -q` under pipefail fails when grep exits early.)
linked=$(LD_LIBRARY_PATH="$work/prefix/$libdir" ldd "$work/ex/consumer")
grep -q "$work/prefix/$libdir/libmdfeed.so" <<<"$linked" \
  || fail "the example is not linked to the installed libmdfeed: $linked"
# Usage errors exit 2 (not just "not 0": a crash is not 0 either).
for args in "" "239.9.9.9:19009 lo abc" "239.9.9.9:19009 lo -1" "239.9.9.9:19009 lo 0"; do
  rc=0
  # shellcheck disable=SC2086 # the words of $args are the arguments
  LD_LIBRARY_PATH="$work/prefix/$libdir" "$work/ex/consumer" $args >/dev/null 2>"$work/err" || rc=$?
  [ "$rc" = 2 ] || fail "consumer $args: exit $rc, want 2 (usage): $(cat "$work/err")"
  grep -q '^usage: ' "$work/err" || fail "consumer $args: no usage line"
done

need_root
ns=fe$(test_tag)
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" env LD_LIBRARY_PATH="$work/prefix/$libdir" "$work/ex/consumer" \
  239.9.9.9:19009 lo 500 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do grep -q warning "$work/err" 2>/dev/null && break; sleep 0.05; done
ip netns exec "$ns" "$B/tests/mold-send" --group 239.9.9.9:19009 --timestamps 500 --linger 50 >/dev/null
rc=0; wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "example exited $rc: $(cat "$work/err")"
grep -q '^received 500 messages, 0 duplicates, 0 gaps, 0 recovered, 0 lost' "$work/out" \
  || fail "example summary: $(tail -n1 "$work/out")"
[ "$(grep -c '^message ' "$work/out")" = 500 ] || fail "example did not print 500 messages"
echo "test_example: built against the installed library and received 500 messages"
