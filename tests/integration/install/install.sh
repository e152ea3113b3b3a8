#!/usr/bin/env bash
# Install: `cmake --install` of the build into a throwaway prefix, then a small program built
# against it with nothing but `pkg-config --cflags --libs mdfeed`, linked dynamically (run
# with LD_LIBRARY_PATH) and statically, and run. Also: every installed header compiles on its
# own (C11 and C++), and the shared library exports only mdfeed_ symbols.
# shellcheck source=tests/common/lib.sh
source "$MDCAST_SOURCE_DIR/tests/common/lib.sh"
need_cmd pkg-config "apt-get install pkg-config"

cc=${MDCAST_TEST_CC:-cc}
read -r -a cflags <<<"${MDCAST_TEST_CFLAGS:-}"
here="$MDCAST_SOURCE_DIR/tests/integration/install"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# DESTDIR keeps even an absolute install destination of another component inside $stage.
prefix=/opt/mdcast-install-test
DESTDIR="$stage" cmake --install "$MDCAST_BUILD_DIR" --prefix "$prefix" >"$stage/install.log" ||
  fail "cmake --install failed: $(cat "$stage/install.log")"
root="$stage$prefix"
pc=$(find "$root" -name mdfeed.pc -path '*/pkgconfig/*' -print -quit)
[ -n "$pc" ] || fail "mdfeed.pc was not installed under $root"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
for h in mdfeed.h moldudp64.h soupbintcp.h itch.h; do
  [ -f "$root/include/mdfeed/$h" ] || fail "header mdfeed/$h was not installed"
done

# The .pc must point into the staged prefix, not at the configure-time one.
read -r -a pc_cflags <<<"$(pkg-config --cflags mdfeed)"
read -r -a pc_libs <<<"$(pkg-config --libs mdfeed)"
libdir=$(pkg-config --variable=libdir mdfeed)
[ "$(cd "$libdir" && pwd -P)" = "$(cd "$(dirname "$pc")/.." && pwd -P)" ] ||
  fail "pkg-config libdir $libdir is not where mdfeed.pc was installed"
ls "$libdir"/libmdfeed.so* >/dev/null 2>&1 || fail "no shared libmdfeed in $libdir"
[ -f "$libdir/libmdfeed.a" ] || fail "no static libmdfeed.a in $libdir"

# Only the public API leaves the shared library (built with -fvisibility=hidden).
if command -v nm >/dev/null; then
  leaked=$(nm -D --defined-only "$libdir/libmdfeed.so" | awk '$2 ~ /[TDBR]/ { print $3 }' |
           grep -v '^mdfeed_' || true)
  [ -z "$leaked" ] || fail "libmdfeed.so exports non-API symbols: $leaked"
fi

# Each public header compiles alone, as C11 with warnings as errors and as C++.
for h in mdfeed.h moldudp64.h soupbintcp.h itch.h; do
  printf '#include <mdfeed/%s>\nint mdfeed_header_test_(void);\nint mdfeed_header_test_(void) { return 0; }\n' \
    "$h" >"$stage/h.c"
  "$cc" -std=c11 -Wall -Wextra -Werror -pedantic "${pc_cflags[@]}" -c "$stage/h.c" \
    -o "$stage/h.o" || fail "mdfeed/$h does not compile on its own"
  if command -v c++ >/dev/null; then
    c++ -x c++ -Wall -Wextra -Werror "${pc_cflags[@]}" -c "$stage/h.c" -o "$stage/h.o" ||
      fail "mdfeed/$h does not compile as C++"
  fi
done

expect='seq 7: Order Delete 00:00:00.000000001 ref=42; login frame 49 bytes;'

# Dynamic: found through LD_LIBRARY_PATH, and really the staged copy.
"$cc" -std=c11 "${cflags[@]}" "${pc_cflags[@]}" "$here/hello_mdfeed.c" -o "$stage/hello_dyn" \
  "${pc_libs[@]}" || fail "dynamic link against the installed library failed"
out=$(LD_LIBRARY_PATH="$libdir" "$stage/hello_dyn") || fail "hello_dyn failed: $out"
[[ "$out" == *"$expect"* ]] || fail "hello_dyn printed: $out"
# (ldd's output is captured first: `ldd | grep -q` can fail under pipefail when grep exits
# early and ldd gets SIGPIPE.)
if command -v ldd >/dev/null; then
  deps=$(LD_LIBRARY_PATH="$libdir" ldd "$stage/hello_dyn")
  [[ "$deps" == *"$libdir/libmdfeed.so"* ]] || fail "hello_dyn did not load the installed libmdfeed: $deps"
fi

# Static: the archive, with whatever the .pc lists for static linking.
read -r -a pc_static <<<"$(pkg-config --libs --static mdfeed)"
"$cc" -std=c11 "${cflags[@]}" "${pc_cflags[@]}" "$here/hello_mdfeed.c" -o "$stage/hello_static" \
  -Wl,-Bstatic "${pc_static[@]}" -Wl,-Bdynamic || fail "static link against the installed library failed"
if command -v ldd >/dev/null; then
  deps=$(ldd "$stage/hello_static" || true) # "not a dynamic executable" is fine too
  [[ "$deps" != *libmdfeed* ]] || fail "hello_static still needs the shared libmdfeed: $deps"
fi
out=$(env -u LD_LIBRARY_PATH "$stage/hello_static") || fail "hello_static failed: $out"
[[ "$out" == *"$expect"* ]] || fail "hello_static printed: $out"
echo "install: headers, libmdfeed.so and libmdfeed.a installed under a temporary prefix;"
echo "  dynamic and static builds via pkg-config run: $out"
