#!/bin/bash
# shellcheck disable=all # the seed, kept verbatim as the baseline
# The seed's bash IPAM plugin (shared/seed, "Step 7"), kept as the benchmark baseline for
# tests/bench/ipam_bench.sh. Copied as published except for one change: its hard-coded
# metadata address is replaced by ${SEED_IMDS_ENDPOINT}, which the benchmark points at the mock
# IMDSv2 on loopback (the NETWORK RULE: tests never reach the real metadata address).
: "${SEED_IMDS_ENDPOINT:?SEED_IMDS_ENDPOINT must point at the mock IMDS (http://127.0.0.1:PORT)}"
# need to grant execute permissions with chmod +x.
# When configuring, it needs to be placed in the CNI plugin directory (typically /opt/cni/bin/).
# Logging function
log() {
echo "{\"timestamp\":\"$(date -u '+%Y-%m-%dT%H:%M:%SZ')\",\"message\":\"$1\"}" >&2
}
# Function to get the EC2 subnet CIDR.
get_ec2_interface_info() {
local mac=$1
# Get IMDSv2 token
local token=$(curl -s -X PUT "${SEED_IMDS_ENDPOINT}/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 21600")
if [ -z "$token" ]; then
log "Failed to get IMDSv2 token"
exit 1
fi
# Get the IP address corresponding to this MAC address (local-ipv4s may return multiple IPs, take the first one)
local ip=$(curl -s -H "X-aws-ec2-metadata-token: $token" ${SEED_IMDS_ENDPOINT}/latest/meta-data/network/interfaces/macs/${mac}/local-ipv4s | head -n 1)
if [ -z "$ip" ]; then
log "Failed to get IP for MAC $mac"
exit 1
fi
# Get subnet CIDR
local cidr=$(curl -s -H "X-aws-ec2-metadata-token: $token" ${SEED_IMDS_ENDPOINT}/latest/meta-data/network/interfaces/macs/${mac}/subnet-ipv4-cidr-block)
if [ -z "$cidr" ]; then
log "Failed to get subnet CIDR from metadata service"
exit 1
fi
local mask=$(echo "$cidr" | cut -d'/' -f2)
echo "$ip/$mask"
}
# get the MAC address of the container
get_container_mac() {
local ifname=$1
local netns_path=$2
local netns=$(basename "$netns_path")
# Get the MAC address in the container network namespace
local mac=$(ip netns exec "$netns" ip link show "$ifname" | grep ether | awk '{print $2}')
if [ -z "$mac" ]; then
log "Failed to get MAC address for interface $ifname"
exit 1
fi
echo $mac
}
# Process CNI commands
case "$CNI_COMMAND" in
ADD)
# Verify required environment variables
if [ -z "$CNI_IFNAME" ] || [ -z "$CNI_NETNS" ]; then
log "Missing required CNI variables"
exit 1
fi
log "Processing ADD for interface $CNI_IFNAME in netns $CNI_NETNS"
# get container mac
mac_addr=$(get_container_mac "$CNI_IFNAME" "$CNI_NETNS")
log "Got container MAC address: $mac_addr"
# Get the EC2 IP
iface_ip=$(get_ec2_interface_info $mac_addr)
log "Got Interface IP: $iface_ip"
# Construct the CNI return result
cat << EOF
{
"cniVersion": "0.3.1",
"interfaces": [
{
"name": "$CNI_IFNAME"
}
],
"ips": [
{
"version": "4",
"address": "$iface_ip"
}
]
}
EOF
;;
DEL)
# For DELETE operations, simply return success.
log "Processing DEL for interface $CNI_IFNAME"
cat << EOF
{
"cniVersion": "0.3.1"
}
EOF
;;
*)
log "Unsupported CNI command: $CNI_COMMAND"
exit 1
;;
esac
exit 0
