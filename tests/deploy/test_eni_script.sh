#!/usr/bin/env bash
# deploy/aws/attach-multicast-enis.sh against a fake `aws` on PATH (tests/deploy/fake_aws.py):
# creates and attaches one ENI per node with the no_manage tag at creation, is idempotent,
# --dry-run changes nothing, reuses an ENI left by an interrupted run, and reports bad input,
# foreign ENIs, wrong AZs and API errors clearly with the documented exit codes.
# shellcheck source=tests/common/lib.sh
source "$(dirname "$0")/../common/lib.sh"
need_cmd python3

script=$MDCAST_SOURCE_DIR/deploy/aws/attach-multicast-enis.sh
fake=$MDCAST_SOURCE_DIR/tests/deploy/fake_aws.py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin"
# The interpreter itself, not a version-manager shim: the script makes dozens of aws calls.
py=$(python3 -c 'import sys; print(sys.executable)')
printf '#!/bin/sh\nexec %q %q "$@"\n' "$py" "$fake" >"$work/bin/aws"
chmod +x "$work/bin/aws"
export FAKE_AWS_STATE=$work/state.json FAKE_AWS_LOG=$work/calls.log
export PATH=$work/bin:$PATH

SUBNET=subnet-0aa11 SG=sg-0bb22
base_args=(--cluster md --nodegroup mcast --subnet-id "$SUBNET" --security-group-id "$SG")

# write_state [extra python that edits `s`]: three running nodes in us-east-1a, no ENIs yet.
write_state() {
  python3 - "$FAKE_AWS_STATE" "${1:-}" <<'EOF'
import json, sys
s = {"subnets": {"subnet-0aa11": {"az": "us-east-1a"}, "subnet-0cc33": {"az": "us-east-1a"}},
     "security_groups": {"sg-0bb22": {"igmp_cidrs": ["0.0.0.0/32"]}},
     "instances": [
       {"id": "i-001", "az": "us-east-1a", "tags": {"eks:nodegroup-name": "mcast", "eks:cluster-name": "md"}},
       {"id": "i-002", "az": "us-east-1a", "tags": {"eks:nodegroup-name": "mcast", "eks:cluster-name": "md"}},
       {"id": "i-003", "az": "us-east-1a",
        "tags": {"alpha.eksctl.io/nodegroup-name": "mcast", "alpha.eksctl.io/cluster-name": "md"}},
       {"id": "i-900", "az": "us-east-1a", "tags": {"eks:nodegroup-name": "other", "eks:cluster-name": "md"}},
       {"id": "i-901", "az": "us-east-1a", "state": "terminated",
        "tags": {"eks:nodegroup-name": "mcast", "eks:cluster-name": "md"}}],
     "enis": [], "stacks": {}}
exec(sys.argv[2])
json.dump(s, open(sys.argv[1], "w"))
EOF
  : >"$FAKE_AWS_LOG"
}

# calls OP: how many times the script called that aws operation since the last write_state.
calls() { grep -c "\"$1\"" "$FAKE_AWS_LOG" || true; }

# state_check PYTHON-EXPR: asserts an expression over the fake's state `s`.
state_check() {
  python3 - "$FAKE_AWS_STATE" "$1" <<'EOF' || fail "state check failed: $1"
import json, sys
s = json.load(open(sys.argv[1]))
enis = s["enis"]
if not eval(sys.argv[2]):
    print(json.dumps(s, indent=1), file=sys.stderr)
    sys.exit(1)
EOF
}

run() { # run EXPECTED_RC ARGS...: runs the script, keeps its output in $out.
  local want=$1 rc=0
  shift
  out=$("$script" "$@" 2>&1) || rc=$?
  [ "$rc" -eq "$want" ] || fail "exit $rc, expected $want for: $*"$'\n'"$out"
}

echo "1. fresh nodegroup: one ENI per node, tagged at creation, attached at index 1"
write_state
run 0 "${base_args[@]}"
[ "$(calls create-network-interface)" -eq 3 ] || fail "expected 3 creates"$'\n'"$out"
[ "$(calls attach-network-interface)" -eq 3 ] || fail "expected 3 attaches"
[ "$(calls modify-network-interface-attribute)" -eq 3 ] || fail "expected DeleteOnTermination on 3"
state_check 'len(enis) == 3'
state_check 'all(e["tags"].get("node.k8s.amazonaws.com/no_manage") == "true" for e in enis)'
state_check 'sorted(e["attachment"]["instance"] for e in enis) == ["i-001", "i-002", "i-003"]'
state_check 'all(e["attachment"]["index"] == 1 and e["attachment"]["delete_on_termination"] for e in enis)'
state_check 'all(e["subnet"] == "subnet-0aa11" and e["groups"] == ["sg-0bb22"] for e in enis)'
# The tag must be in the create call itself, not added afterwards.
grep '"create-network-interface"' "$FAKE_AWS_LOG" | grep -q 'node.k8s.amazonaws.com/no_manage,Value=true' ||
  fail "no_manage tag not set at creation"
[ "$(calls create-tags)" -eq 0 ] || fail "tags added after creation"
grep -q '3 nodes checked' <<<"$out" || fail "no summary line: $out"
grep -q 'warning' <<<"$out" && fail "warning with a correct security group: $out"

echo "2. second run: idempotent, nothing created or attached"
: >"$FAKE_AWS_LOG"
run 0 "${base_args[@]}"
[ "$(calls create-network-interface)" -eq 0 ] || fail "second run created ENIs"
[ "$(calls attach-network-interface)" -eq 0 ] || fail "second run attached ENIs"
[ "$(grep -c 'skipped' <<<"$out")" -eq 3 ] || fail "expected 3 skipped nodes: $out"
state_check 'len(enis) == 3'

echo "3. --dry-run: prints the commands, changes nothing"
write_state
run 0 "${base_args[@]}" --dry-run
[ "$(calls create-network-interface)" -eq 0 ] || fail "dry run created ENIs"
[ "$(calls attach-network-interface)" -eq 0 ] || fail "dry run attached ENIs"
[ "$(calls modify-network-interface-attribute)" -eq 0 ] || fail "dry run modified ENIs"
[ "$(grep -c 'would run: aws ec2 create-network-interface' <<<"$out")" -eq 3 ] || fail "dry run output: $out"
grep -q 'no_manage' <<<"$out" || fail "dry run does not show the tag: $out"
state_check 'len(enis) == 0'

echo "4. an ENI left unattached by an interrupted run is reused"
write_state 's["enis"].append({"id": "eni-0dead", "subnet": "subnet-0aa11", "status": "available",
  "tags": {"mdcast.io/instance-id": "i-002", "node.k8s.amazonaws.com/no_manage": "true"}, "attachment": None})'
run 0 "${base_args[@]}"
[ "$(calls create-network-interface)" -eq 2 ] || fail "expected 2 creates with one reusable ENI"
state_check 'next(e for e in enis if e["id"] == "eni-0dead")["attachment"]["instance"] == "i-002"'
grep -q 'reusing eni-0dead' <<<"$out" || fail "reuse not reported: $out"

echo "5. a foreign ENI at device index 1 and a node in another AZ: reported, others still done"
write_state 's["enis"].append({"id": "eni-0cni", "subnet": "subnet-0cc33", "status": "in-use", "tags": {},
  "attachment": {"id": "eni-attach-0cni", "instance": "i-001", "index": 1, "delete_on_termination": True}})
s["instances"][1]["az"] = "us-east-1b"'
run 1 "${base_args[@]}"
grep -q 'i-001: device index 1 holds eni-0cni' <<<"$out" || fail "foreign ENI not reported: $out"
grep -q 'i-002 is in us-east-1b' <<<"$out" || fail "wrong AZ not reported: $out"
grep -q '2 of 3 nodes have no multicast ENI' <<<"$out" || fail "no failure summary: $out"
state_check 'sum(1 for e in enis if e["attachment"] and e["attachment"]["instance"] == "i-003") == 1'

echo "6. API errors are reported with the node"
write_state 's["fail"] = {"create-network-interface": "not allowed to ec2:CreateNetworkInterface"}'
run 1 "${base_args[@]}"
grep -q 'i-001: creating the ENI failed' <<<"$out" || fail "create error not reported: $out"
grep -q 'UnauthorizedOperation' <<<"$out" || fail "aws error text not shown: $out"

echo "7. --stack reads the subnet and security group from the stack outputs; --region reaches every call"
write_state 's["stacks"] = {"mdcast-network": {"MulticastSubnetId": "subnet-0aa11", "MulticastSecurityGroupId": "sg-0bb22"}}'
FAKE_AWS_REQUIRE_REGION=eu-west-1 run 0 --cluster md --nodegroup mcast --stack mdcast-network --region eu-west-1
state_check 'len(enis) == 3 and all(e["groups"] == ["sg-0bb22"] for e in enis)'
write_state
run 1 --cluster md --nodegroup mcast --stack missing
grep -q "cannot read stack 'missing'" <<<"$out" || fail "missing stack not reported: $out"

echo "8. a security group without the IGMP rule is named in a warning; nodes are still done"
write_state 's["security_groups"]["sg-0bb22"]["igmp_cidrs"] = ["198.18.0.0/15"]'
run 0 "${base_args[@]}"
grep -q 'warning: security group sg-0bb22 admits no IGMP (protocol 2) from 0.0.0.0/32' <<<"$out" ||
  fail "missing IGMP rule not reported: $out"
state_check 'len(enis) == 3'
write_state
run 1 --cluster md --nodegroup mcast --subnet-id "$SUBNET" --security-group-id sg-0ffff
grep -q 'cannot describe security group sg-0ffff' <<<"$out" || fail "unknown security group not reported: $out"

echo "9. bad input: usage errors exit 2 and name the problem; no nodes or no aws exit 1"
write_state
run 2 --nodegroup mcast --subnet-id "$SUBNET" --security-group-id "$SG"
grep -q -- '--cluster is required' <<<"$out" || fail "$out"
run 2 --cluster md --nodegroup mcast --subnet-id bogus --security-group-id "$SG"
grep -q "is not a subnet ID" <<<"$out" || fail "$out"
run 2 "${base_args[@]}" --device-index x
run 2 "${base_args[@]}" --stack s
run 2 "${base_args[@]}" --bogus
run 2 --cluster
[ "$(wc -l <"$FAKE_AWS_LOG")" -eq 0 ] || fail "usage errors still called aws"
run 1 --cluster md --nodegroup nosuch --subnet-id "$SUBNET" --security-group-id "$SG"
grep -q "no pending or running instances of nodegroup 'nosuch'" <<<"$out" || fail "$out"
run 1 --cluster md --nodegroup mcast --subnet-id subnet-0ffff --security-group-id "$SG"
grep -q 'cannot describe subnet subnet-0ffff' <<<"$out" || fail "$out"
# Only where no real aws CLI sits in /usr/bin or /bin: the test must never reach a real one.
if ! PATH=/usr/bin:/bin command -v aws >/dev/null; then
  PATH=/usr/bin:/bin run 1 "${base_args[@]}"
  grep -q 'aws CLI is not on PATH' <<<"$out" || fail "$out"
fi

echo "PASS: attach-multicast-enis.sh"
