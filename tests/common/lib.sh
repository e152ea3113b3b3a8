# Shared helpers for shell tests. Source it; it sets `set -euo pipefail`.
# Exit code 77 = skipped (CTest SKIP_RETURN_CODE), always with a printed reason.
set -euo pipefail

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || skip "needs '$1' (${2:-install it})"; }
# Unique, short tag for namespace/link names so parallel tests never collide.
test_tag() { printf 'm%x%x' "$$" "$((RANDOM % 256))"; }
: "${MDCAST_BUILD_DIR:?MDCAST_BUILD_DIR must be set (CTest sets it)}"
: "${MDCAST_SOURCE_DIR:?MDCAST_SOURCE_DIR must be set (CTest sets it)}"
