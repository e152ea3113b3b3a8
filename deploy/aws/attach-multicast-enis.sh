#!/usr/bin/env bash
# Gives every node of the multicast nodegroup its multicast ENI: an ENI in the multicast subnet,
# with the multicast security group, tagged node.k8s.amazonaws.com/no_manage=true AT CREATION
# (tagging it after attaching leaves a window in which the VPC CNI may take it over), attached at
# device index 1 and deleted with the instance.
#
# Idempotent: a node that already has our ENI at the device index is skipped; an ENI created for
# a node by an earlier, interrupted run (still "available") is attached instead of a new one.
# Nodes in another AZ than the subnet, or whose device index holds a foreign ENI, are reported
# and left alone. Exit 0 when every node has its ENI (or would have, with --dry-run), 1 when any
# node failed, 2 on usage errors.
#
# Usage:
#   attach-multicast-enis.sh --cluster NAME --nodegroup NAME
#                            (--stack NAME | --subnet-id ID --security-group-id ID)
#                            [--region R] [--device-index N] [--dry-run]
#   --stack reads MulticastSubnetId and MulticastSecurityGroupId from the outputs of the
#   CloudFormation stack made from deploy/aws/mdcast-network.yaml.
#   --dry-run only looks: it prints the create/attach commands it would run.
# Warns when the security group admits no IGMP from 0.0.0.0/32 (the TGW's query source).
# Needs the aws CLI (v1 or v2) with credentials allowed ec2:Describe*, ec2:CreateNetworkInterface,
# ec2:CreateTags (on create), ec2:AttachNetworkInterface, ec2:ModifyNetworkInterfaceAttribute and
# cloudformation:DescribeStacks (with --stack).
set -euo pipefail

prog=${0##*/}
cluster='' nodegroup='' stack='' subnet='' sg='' region='' device_index=1 dry_run=0

usage() {
  sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}
die_usage() { echo "$prog: $*" >&2; exit 2; }
err() { echo "$prog: error: $*" >&2; }
info() { echo "$prog: $*"; }

parse_args() {
  while (($#)); do
    case $1 in
      --cluster) cluster=${2:-}; shift 2 || die_usage "--cluster needs a value" ;;
      --nodegroup) nodegroup=${2:-}; shift 2 || die_usage "--nodegroup needs a value" ;;
      --stack) stack=${2:-}; shift 2 || die_usage "--stack needs a value" ;;
      --subnet-id) subnet=${2:-}; shift 2 || die_usage "--subnet-id needs a value" ;;
      --security-group-id) sg=${2:-}; shift 2 || die_usage "--security-group-id needs a value" ;;
      --region) region=${2:-}; shift 2 || die_usage "--region needs a value" ;;
      --device-index) device_index=${2:-}; shift 2 || die_usage "--device-index needs a value" ;;
      --dry-run) dry_run=1; shift ;;
      -h | --help) usage ;;
      *) die_usage "unknown argument '$1' (see --help)" ;;
    esac
  done
  [[ -n $cluster ]] || die_usage "--cluster is required"
  [[ -n $nodegroup ]] || die_usage "--nodegroup is required"
  [[ $device_index =~ ^[1-9][0-9]?$ ]] || die_usage "--device-index must be 1..99, got '$device_index'"
  if [[ -n $stack ]]; then
    [[ -z $subnet && -z $sg ]] || die_usage "give either --stack or --subnet-id/--security-group-id"
  else
    [[ -n $subnet && -n $sg ]] || die_usage "give --stack, or both --subnet-id and --security-group-id"
    [[ $subnet =~ ^subnet-[0-9a-f]+$ ]] || die_usage "--subnet-id '$subnet' is not a subnet ID"
    [[ $sg =~ ^sg-[0-9a-f]+$ ]] || die_usage "--security-group-id '$sg' is not a security group ID"
  fi
}

# Every aws call goes through here: one place for --region and for text output.
awsc() {
  local extra=()
  [[ -n $region ]] && extra=(--region "$region")
  aws "${extra[@]}" "$@"
}

# Runs a command that changes something. Under --dry-run it prints the command (on fd 3, the
# script's stdout, even inside $(...)) and outputs a placeholder instead of an ID.
mutate() {
  if ((dry_run)); then
    local arg line="$prog: dry-run: would run: aws"
    for arg in "$@"; do
      if [[ $arg =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then
        line+=" $arg"
      else
        line+=" '${arg//\'/\'\\\'\'}'"
      fi
    done
    echo "$line" >&3
    echo "<dry-run>"
    return 0
  fi
  awsc "$@"
}

stack_output() {
  awsc cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

resolve_network() {
  if [[ -n $stack ]]; then
    subnet=$(stack_output MulticastSubnetId) || { err "cannot read stack '$stack'"; exit 1; }
    sg=$(stack_output MulticastSecurityGroupId) || { err "cannot read stack '$stack'"; exit 1; }
    [[ $subnet =~ ^subnet-[0-9a-f]+$ && $sg =~ ^sg-[0-9a-f]+$ ]] ||
      { err "stack '$stack' has no MulticastSubnetId/MulticastSecurityGroupId outputs"; exit 1; }
  fi
  subnet_az=$(awsc ec2 describe-subnets --subnet-ids "$subnet" \
    --query 'Subnets[0].AvailabilityZone' --output text) ||
    { err "cannot describe subnet $subnet"; exit 1; }
  [[ -n $subnet_az && $subnet_az != None ]] || { err "subnet $subnet not found"; exit 1; }
  info "multicast subnet $subnet ($subnet_az), security group $sg"
  check_igmp_rule
}

# The TGW sends IGMP queries from 0.0.0.0; without an inbound IGMP rule for 0.0.0.0/32 the
# memberships expire a few minutes after each join. Warn only: the group may be managed elsewhere.
check_igmp_rule() {
  local cidrs
  cidrs=$(awsc ec2 describe-security-groups --group-ids "$sg" \
    --query "SecurityGroups[0].IpPermissions[?IpProtocol=='2' || IpProtocol=='-1'].IpRanges[].CidrIp" \
    --output text) || { err "cannot describe security group $sg"; exit 1; }
  if ! grep -qwE '0\.0\.0\.0/(32|0)' <<<"$cidrs"; then
    echo "$prog: warning: security group $sg admits no IGMP (protocol 2) from 0.0.0.0/32;" \
      "the TGW's queries will be dropped and memberships will expire" >&2
  fi
}

# Prints "instance-id az" lines for the running nodes of the nodegroup. Managed nodegroups tag
# their instances eks:nodegroup-name, eksctl's self-managed ones alpha.eksctl.io/nodegroup-name.
list_nodes() {
  local prefix
  for prefix in eks: alpha.eksctl.io/; do
    awsc ec2 describe-instances \
      --filters "Name=tag:${prefix}nodegroup-name,Values=$nodegroup" \
      "Name=tag:${prefix}cluster-name,Values=$cluster" \
      "Name=instance-state-name,Values=pending,running" \
      --query 'Reservations[].Instances[].[InstanceId,Placement.AvailabilityZone]' --output text
  done | awk 'NF == 2 && !seen[$1]++'
}

# Prints "eni-id subnet-id" of the ENI attached to instance $1 at our device index, if any.
eni_at_index() {
  awsc ec2 describe-network-interfaces \
    --filters "Name=attachment.instance-id,Values=$1" "Name=attachment.device-index,Values=$device_index" \
    --query 'NetworkInterfaces[].[NetworkInterfaceId,SubnetId]' --output text
}

# Prints the ID of an unattached ENI an earlier run created for instance $1, if any.
leftover_eni() {
  awsc ec2 describe-network-interfaces \
    --filters "Name=tag:mdcast.io/instance-id,Values=$1" "Name=status,Values=available" \
    "Name=subnet-id,Values=$subnet" \
    --query 'NetworkInterfaces[0].NetworkInterfaceId' --output text
}

create_eni() {
  local instance=$1
  mutate ec2 create-network-interface --subnet-id "$subnet" --groups "$sg" \
    --description "mdcast multicast ENI for $instance" \
    --tag-specifications "ResourceType=network-interface,Tags=[{Key=node.k8s.amazonaws.com/no_manage,Value=true},{Key=mdcast.io/instance-id,Value=$instance},{Key=Name,Value=mdcast-multicast-$instance}]" \
    --query 'NetworkInterface.NetworkInterfaceId' --output text
}

attach_eni() {
  local eni=$1 instance=$2 attachment
  attachment=$(mutate ec2 attach-network-interface --network-interface-id "$eni" \
    --instance-id "$instance" --device-index "$device_index" --query AttachmentId --output text) ||
    return 1
  [[ $attachment =~ ^eni-attach-[0-9a-f]+$ ]] || ((dry_run)) ||
    { err "$instance: attach-network-interface answered '$attachment', not an attachment ID"; return 1; }
  # The ENI lives and dies with its node, so autoscaling leaves no orphans behind.
  mutate ec2 modify-network-interface-attribute --network-interface-id "$eni" \
    --attachment "AttachmentId=$attachment,DeleteOnTermination=true" >/dev/null
}

# Handles one node; returns 1 when it could not be given its ENI.
handle_node() {
  local instance=$1 az=$2 existing eni_id eni_subnet eni
  if [[ $az != "$subnet_az" ]]; then
    err "$instance is in $az, the multicast subnet in $subnet_az: an ENI must be in the instance's AZ"
    return 1
  fi
  existing=$(eni_at_index "$instance") || { err "$instance: cannot list its ENIs"; return 1; }
  if [[ -n $existing ]]; then
    read -r eni_id eni_subnet <<<"$existing"
    if [[ $eni_subnet == "$subnet" ]]; then
      info "$instance: already has $eni_id at device index $device_index, skipped"
      return 0
    fi
    err "$instance: device index $device_index holds $eni_id from subnet $eni_subnet (not the multicast" \
      "subnet; the VPC CNI's? set WARM_ENI_TARGET=0 before the nodes start)"
    return 1
  fi
  eni=$(leftover_eni "$instance") || { err "$instance: cannot look for an earlier ENI"; return 1; }
  if [[ -n $eni && $eni != None ]]; then
    info "$instance: reusing $eni, created earlier and not attached"
  else
    eni=$(create_eni "$instance") || { err "$instance: creating the ENI failed"; return 1; }
    [[ $eni =~ ^eni-[0-9a-f]+$ ]] || ((dry_run)) ||
      { err "$instance: create-network-interface answered '$eni', not an ENI ID"; return 1; }
  fi
  attach_eni "$eni" "$instance" || { err "$instance: attaching $eni failed"; return 1; }
  if ((dry_run)); then
    info "$instance: would attach a new multicast ENI at device index $device_index"
  else
    info "$instance: attached $eni at device index $device_index"
  fi
}

main() {
  exec 3>&1
  parse_args "$@"
  command -v aws >/dev/null 2>&1 || { err "the aws CLI is not on PATH"; exit 1; }
  resolve_network
  local nodes failed=0 total=0 instance az
  nodes=$(list_nodes) || { err "cannot list the instances of nodegroup $nodegroup"; exit 1; }
  if [[ -z $nodes ]]; then
    err "no pending or running instances of nodegroup '$nodegroup' in cluster '$cluster'"
    exit 1
  fi
  while read -r instance az; do
    total=$((total + 1))
    handle_node "$instance" "$az" || failed=$((failed + 1))
  done <<<"$nodes"
  if ((failed)); then
    err "$failed of $total nodes have no multicast ENI"
    exit 1
  fi
  info "$total nodes checked; each has its multicast ENI$( ((dry_run)) && echo ' (dry run: nothing changed)')"
}

main "$@"
