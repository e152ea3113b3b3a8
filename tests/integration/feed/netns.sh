# shellcheck shell=bash
# Sourced by the feed integration tests (after tests/common/lib.sh): a throwaway network
# namespace with lo up and a work directory, both removed on exit together with every process
# whose pid the test appended to `pids`.
#   feed_netns PREFIX   sets ns (PREFIX + a per-run tag), work, pids; installs the EXIT trap
#   inns CMD...         runs CMD in the namespace (start background processes with
#                       `ip netns exec "$ns" ...` directly so that $! is the process itself)
feed_netns() {
  ns=$1$(test_tag)
  work=$(mktemp -d)
  pids=()
  trap feed_netns_cleanup EXIT
  ip netns add "$ns"
  ip -n "$ns" link set lo up
}

feed_netns_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}

inns() { ip netns exec "$ns" "$@"; }
