#!/usr/bin/env bash
# mdcast node installer: runs on every multicast node (DaemonSet, host network, privileged) and
# keeps the node ready for pods that attach the multicast ENI through host-device + eni-ipam.
#
#   1. installs eni-ipam (and whatever its bundle ships beside it) into the node's CNI bin dir,
#      atomically, so a CNI call never runs a half-written binary;
#   2. installs the gateway's seccomp profile (allows io_uring, which containerd 2.x's default
#      profile blocks) where the kubelet looks for Localhost profiles;
#   3. forces IGMPv2 on the node (net.ipv4.conf.{all,default}.force_igmp_version=2): the TGW
#      speaks IGMPv2 only and ignores IGMPv3 reports;
#   4. gives the multicast ENI (found by MAC) the stable name the NetworkAttachmentDefinition
#      names (eth1) and MTU 8500 (the TGW's limit) — AL2023 calls it ens6 or similar;
#   5. renames it back when it returned to the node under another name: when a pod's network
#      namespace vanishes without a CNI DEL (node reboot of the runtime, a crashed sandbox), the
#      kernel hands the physical device back to the root namespace still called net1.
# Steps 3-5 are repeated every RECONCILE_INTERVAL seconds; each round is guarded, so one failed
# round is logged and the next one tries again.
#
# Usage: install.sh [--once]     (--once: install and reconcile one round, then exit)
# Environment (defaults are the DaemonSet's paths):
#   CNI_BIN_DIR        node's /opt/cni/bin as mounted here          (/host/opt/cni/bin)
#   ENI_IPAM_SRC       directory holding eni-ipam's bundle           (/opt/mdcast/cni/bin)
#   SECCOMP_SRC        the profile to install                        (/etc/mdcast/installer/mdcast-gateway.json)
#   SECCOMP_DIR        kubelet's seccomp root as mounted here        (/host/var/lib/kubelet/seccomp)
#   SECCOMP_PROFILE    path under SECCOMP_DIR; pods name it as their localhostProfile
#                                                                     (profiles/mdcast-gateway.json)
#   SYSCTL_ROOT        /proc/sys of the node's network namespace     (/proc/sys)
#   ENI_NAME, ENI_MTU  stable name and MTU of the multicast ENI      (eth1, 8500)
#   ENI_MAC            the ENI's MAC; when empty, found through IMDSv2 as the interface at
#                      ENI_DEVICE_INDEX (1, where attach-multicast-enis.sh attaches it)
#   IMDS_ENDPOINT      IMDSv2 base URL; required when ENI_MAC is empty (no default on purpose)
#   RECONCILE_INTERVAL seconds between rounds (10); RECONCILE_ROUNDS: stop after N rounds (0 = never)
set -euo pipefail

CNI_BIN_DIR=${CNI_BIN_DIR:-/host/opt/cni/bin}
ENI_IPAM_SRC=${ENI_IPAM_SRC:-/opt/mdcast/cni/bin}
SECCOMP_SRC=${SECCOMP_SRC:-/etc/mdcast/installer/mdcast-gateway.json}
SECCOMP_DIR=${SECCOMP_DIR:-/host/var/lib/kubelet/seccomp}
SECCOMP_PROFILE=${SECCOMP_PROFILE:-profiles/mdcast-gateway.json}
SYSCTL_ROOT=${SYSCTL_ROOT:-/proc/sys}
ENI_NAME=${ENI_NAME:-eth1}
ENI_MTU=${ENI_MTU:-8500}
ENI_MAC=${ENI_MAC:-}
ENI_DEVICE_INDEX=${ENI_DEVICE_INDEX:-1}
IMDS_ENDPOINT=${IMDS_ENDPOINT:-}
RECONCILE_INTERVAL=${RECONCILE_INTERVAL:-10}
RECONCILE_ROUNDS=${RECONCILE_ROUNDS:-0}

# One JSON object a line on stderr, like the gateway's logs. Messages are plain ASCII we write
# ourselves; quotes and backslashes are escaped anyway.
log() {
  local level=$1 msg=$2 esc
  esc=${msg//\\/\\\\}
  esc=${esc//\"/\\\"}
  printf '{"ts":"%s","level":"%s","component":"node-installer","msg":"%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$level" "$esc" >&2
}
die() { log error "$1"; exit 1; }

# uint_in VALUE MIN MAX: VALUE is a decimal integer within MIN..MAX.
uint_in() {
  [[ $1 =~ ^[0-9]{1,9}$ ]] || return 1
  ((10#$1 >= $2 && 10#$1 <= $3))
}

check_config() {
  uint_in "$ENI_MTU" 1280 9001 || die "ENI_MTU=$ENI_MTU: expected an integer in 1280..9001"
  uint_in "$RECONCILE_INTERVAL" 1 86400 ||
    die "RECONCILE_INTERVAL=$RECONCILE_INTERVAL: expected seconds in 1..86400"
  uint_in "$RECONCILE_ROUNDS" 0 999999999 ||
    die "RECONCILE_ROUNDS=$RECONCILE_ROUNDS: expected an integer (0 = run until stopped)"
  uint_in "$ENI_DEVICE_INDEX" 1 31 || die "ENI_DEVICE_INDEX=$ENI_DEVICE_INDEX: expected 1..31"
  # Interface names: at most 15 bytes, no '/' or whitespace (IFNAMSIZ).
  [[ $ENI_NAME =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || die "ENI_NAME=$ENI_NAME: not a valid interface name"
  [[ $SECCOMP_PROFILE != /* && $SECCOMP_PROFILE != *..* ]] ||
    die "SECCOMP_PROFILE=$SECCOMP_PROFILE: must be a relative path below SECCOMP_DIR"
  if [[ -n $ENI_MAC ]]; then
    ENI_MAC=${ENI_MAC,,}
    [[ $ENI_MAC =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || die "ENI_MAC=$ENI_MAC: not a MAC address"
  elif [[ -z $IMDS_ENDPOINT ]]; then
    die "neither ENI_MAC nor IMDS_ENDPOINT is set: cannot identify the multicast ENI"
  fi
  [[ -f $ENI_IPAM_SRC/eni-ipam ]] || die "$ENI_IPAM_SRC/eni-ipam not found in the image"
  [[ -f $SECCOMP_SRC ]] || die "seccomp profile $SECCOMP_SRC not found"
}

# install_file SRC DEST MODE: copies SRC next to DEST, then renames it over DEST, so readers see
# the old file or the new one, never a partial one. Does nothing when DEST already matches.
install_file() {
  local src=$1 dest=$2 mode=$3 tmp
  if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
    return 0
  fi
  mkdir -p "$(dirname "$dest")"
  tmp=$(mktemp "$dest.tmp.XXXXXX")
  if ! cp "$src" "$tmp" || ! chmod "$mode" "$tmp" || ! mv -f "$tmp" "$dest"; then
    rm -f "$tmp"
    log error "could not install $dest"
    return 1
  fi
  log info "installed $dest"
}

# eni-ipam's bundle: the plugin itself plus anything shipped beside it (e.g. its own libraries
# in a subdirectory found through an rpath). The libraries go first and the plugin last, so the
# plugin never runs against libraries it was not built with.
install_eni_ipam() {
  local entry rel
  while IFS= read -r -d '' entry; do
    rel=${entry#"$ENI_IPAM_SRC"/}
    [[ $rel == eni-ipam ]] && continue
    install_file "$entry" "$CNI_BIN_DIR/$rel" 0755 || return 1
  done < <(find "$ENI_IPAM_SRC" -mindepth 1 -type f -print0)
  install_file "$ENI_IPAM_SRC/eni-ipam" "$CNI_BIN_DIR/eni-ipam" 0755
}

install_seccomp_profile() {
  install_file "$SECCOMP_SRC" "$SECCOMP_DIR/$SECCOMP_PROFILE" 0644
}

set_sysctl() {
  local key=$1 want=$2 path have
  path=$SYSCTL_ROOT/${key//.//}
  have=$(cat "$path" 2>/dev/null) || { log error "cannot read $path"; return 1; }
  [[ $have == "$want" ]] && return 0
  if ! printf '%s\n' "$want" >"$path"; then
    log error "cannot set $key=$want"
    return 1
  fi
  log info "set $key=$want (was $have)"
}

force_igmpv2() {
  set_sysctl net.ipv4.conf.all.force_igmp_version 2 &&
    set_sysctl net.ipv4.conf.default.force_igmp_version 2
}

imds_get() {
  curl -sf --noproxy '*' --connect-timeout 2 --max-time 5 \
    -H "X-aws-ec2-metadata-token: $1" "$IMDS_ENDPOINT/latest/meta-data/$2"
}

# Finds the MAC of the ENI at ENI_DEVICE_INDEX through IMDSv2 (token, then each MAC's
# device-number). Sets ENI_MAC once found; the MAC of an attached ENI never changes.
discover_eni_mac() {
  local token macs mac idx
  token=$(curl -sf --noproxy '*' --connect-timeout 2 --max-time 5 -X PUT \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS_ENDPOINT/latest/api/token") ||
    { log warn "IMDSv2 token request to $IMDS_ENDPOINT failed"; return 1; }
  macs=$(imds_get "$token" network/interfaces/macs/) ||
    { log warn "IMDS: cannot list network interfaces"; return 1; }
  for mac in $macs; do
    mac=${mac%/}
    [[ ${mac,,} =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || continue
    idx=$(imds_get "$token" "network/interfaces/macs/$mac/device-number") || continue
    if [[ $idx == "$ENI_DEVICE_INDEX" ]]; then
      ENI_MAC=${mac,,}
      log info "multicast ENI is $ENI_MAC (device index $ENI_DEVICE_INDEX)"
      return 0
    fi
  done
  log warn "no ENI at device index $ENI_DEVICE_INDEX yet (run attach-multicast-enis.sh)"
  return 1
}

# Prints the name of the link in this namespace whose MAC is $1, or nothing.
link_by_mac() {
  ip -o link show | awk -v mac="$1" '
    { for (i = 1; i < NF; i++) if ($i == "link/ether" && tolower($(i + 1)) == mac) {
        name = $2; sub(/:$/, "", name); sub(/@.*/, "", name); print name; exit } }'
}

link_mtu() {
  ip -o link show dev "$1" | awk '{ for (i = 1; i < NF; i++) if ($i == "mtu") { print $(i + 1); exit } }'
}

# Gives the ENI its stable name and MTU. While a pod holds it, it is not in this namespace and
# there is nothing to do.
name_eni() {
  local cur mtu
  cur=$(link_by_mac "$ENI_MAC")
  if [[ -z $cur ]]; then
    return 0
  fi
  if [[ $cur != "$ENI_NAME" ]]; then
    if ip link show dev "$ENI_NAME" >/dev/null 2>&1; then
      log error "cannot rename $cur ($ENI_MAC) to $ENI_NAME: another link already has that name"
      return 1
    fi
    # A link must be down to be renamed. It stays down on the node: the node itself does not use
    # the multicast ENI, and host-device brings it up inside the pod.
    if ! ip link set dev "$cur" down || ! ip link set dev "$cur" name "$ENI_NAME"; then
      log error "renaming $cur to $ENI_NAME failed"
      return 1
    fi
    log info "renamed $cur ($ENI_MAC) to $ENI_NAME"
  fi
  mtu=$(link_mtu "$ENI_NAME")
  if [[ $mtu != "$ENI_MTU" ]]; then
    ip link set dev "$ENI_NAME" mtu "$ENI_MTU" ||
      { log error "setting MTU $ENI_MTU on $ENI_NAME failed"; return 1; }
    log info "set MTU $ENI_MTU on $ENI_NAME (was $mtu)"
  fi
}

# One round; every step runs even when an earlier one failed. Returns 1 if any step failed.
reconcile() {
  local rc=0
  force_igmpv2 || rc=1
  install_eni_ipam || rc=1
  install_seccomp_profile || rc=1
  if [[ -z $ENI_MAC ]]; then
    discover_eni_mac || return 1
  fi
  name_eni || rc=1
  return $rc
}

sleep_pid=
main() {
  local once=0 round=0
  case ${1:-} in
    --once) once=1 ;;
    "") ;;
    *) die "usage: $0 [--once]" ;;
  esac
  check_config
  trap 'log info "stopping"; [[ -n $sleep_pid ]] && kill "$sleep_pid" 2>/dev/null; exit 0' TERM INT
  while :; do
    round=$((round + 1))
    if ! reconcile; then
      log warn "round $round incomplete; retrying in ${RECONCILE_INTERVAL}s"
      ((once)) && exit 1
    fi
    ((once)) && exit 0
    ((RECONCILE_ROUNDS > 0 && round >= RECONCILE_ROUNDS)) && exit 0
    # sleep in the background so SIGTERM is handled at once, not after the sleep.
    sleep "$RECONCILE_INTERVAL" &
    sleep_pid=$!
    wait "$sleep_pid" || true
    sleep_pid=
  done
}

main "$@"
