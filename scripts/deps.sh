#!/usr/bin/env bash
# Installs, with apt, only the Debian 12 packages that are missing. Idempotent.
# Usage: scripts/deps.sh [build|test|all]   (default: all)
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev
            libuv1-dev liburing-dev libcjson-dev libcurl4-openssl-dev
            libnl-3-dev libnl-route-3-dev zlib1g-dev)
# What the demo and the tests drive: namespaces, the real CNI plugins, Wireshark as an oracle,
# legacy clients, plots and linters.
RUN_PKGS=(iproute2 procps kmod nftables containernetworking-plugins socat iperf tshark python3 gzip
          gnuplot-nox yamllint shellcheck patchelf python3-yaml curl binutils libseccomp2)

# Static archives eni-ipam links in (ipam/CMakeLists.txt, ENI_IPAM_STATIC).
BUILD_PKGS+=(libssl-dev libbrotli-dev zlib1g-dev libidn2-dev libnghttp2-dev librtmp-dev
             libssh2-1-dev libpsl-dev libldap-dev libzstd-dev libunistring-dev)
want=("${BUILD_PKGS[@]}")
case "${1:-all}" in
  build) ;;
  test|all|demo) want+=("${RUN_PKGS[@]}") ;;
  *) echo "usage: $0 [build|test|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "deps: all ${#want[@]} packages present"; exit 0; }

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
