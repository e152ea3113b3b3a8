#!/usr/bin/env python3
"""A fake `aws` CLI for tests/deploy/test_eni_script.sh: no network, no credentials.

It answers the EC2 and CloudFormation calls deploy/aws/attach-multicast-enis.sh makes, from a
JSON state file (FAKE_AWS_STATE) that it also updates (created ENIs, attachments), and appends
each call's argv as one JSON line to FAKE_AWS_LOG. Answers are what the real CLI prints for the
same --query with --output text. A call it does not know, or a --query other than the one the
script is expected to send, fails loudly (exit 254), so a drift between script and fake shows.

State: {"subnets": {"subnet-..": {"az": ".."}},
        "security_groups": {"sg-..": {"igmp_cidrs": ["0.0.0.0/32"]}},
        "instances": [{"id": "i-..", "az": "..", "state": "running", "tags": {k: v}}],
        "enis": [{"id": "eni-..", "subnet": "..", "status": "available|in-use", "tags": {},
                  "attachment": {"id": "eni-attach-..", "instance": "i-..", "index": 1,
                                 "delete_on_termination": false}}],
        "stacks": {"name": {"OutputKey": "value"}},
        "fail": {"create-network-interface": "message"}}
"""
import json
import os
import re
import sys


def die(code, msg):
    sys.stderr.write(msg + "\n")
    sys.exit(code)


def aws_error(code, msg):
    # The real CLI prints "An error occurred (Code) when calling the X operation: ..." and exits 254
    # (v2) or 255 (v1); the script must only rely on the non-zero status.
    die(255, "\nAn error occurred (%s): %s" % (code, msg))


def parse(argv):
    """Returns (region, service, op, opts) with opts[name] = list of values."""
    region = None
    args = list(argv)
    if "--region" in args:
        i = args.index("--region")
        region = args[i + 1]
        del args[i:i + 2]
    if len(args) < 2:
        die(254, "fake aws: expected SERVICE OPERATION, got %r" % argv)
    service, op, rest = args[0], args[1], args[2:]
    opts = {}
    key = None
    for a in rest:
        if a.startswith("--"):
            key = a[2:]
            opts.setdefault(key, [])
        elif key is None:
            die(254, "fake aws: stray argument %r" % a)
        else:
            opts[key].append(a)
    return region, service, op, opts


def one(opts, name):
    vals = opts.get(name)
    if not vals or len(vals) != 1:
        die(254, "fake aws: --%s needs exactly one value, got %r" % (name, vals))
    return vals[0]


def expect_query(opts, want):
    got = one(opts, "query")
    if got != want:
        die(254, "fake aws: unexpected --query %r (expected %r)" % (got, want))
    if one(opts, "output") != "text":
        die(254, "fake aws: expected --output text")


def filters(opts):
    out = {}
    for f in opts.get("filters", []):
        m = re.fullmatch(r"Name=([^,]+),Values=(.+)", f)
        if not m:
            die(254, "fake aws: bad filter %r" % f)
        out[m.group(1)] = m.group(2).split(",")
    return out


def text_rows(rows):
    return "".join("\t".join(str(c) for c in r) + "\n" for r in rows)


def describe_security_groups(state, opts):
    expect_query(opts, "SecurityGroups[0].IpPermissions[?IpProtocol=='2' || IpProtocol=='-1'].IpRanges[].CidrIp")
    sg = one(opts, "group-ids")
    groups = state.get("security_groups", {})
    if sg not in groups:
        aws_error("InvalidGroup.NotFound", "The security group '%s' does not exist" % sg)
    return "\t".join(groups[sg].get("igmp_cidrs", [])) + "\n"


def describe_instances(state, opts):
    expect_query(opts, "Reservations[].Instances[].[InstanceId,Placement.AvailabilityZone]")
    flt = filters(opts)
    rows = []
    for inst in state["instances"]:
        ok = True
        for name, values in flt.items():
            if name.startswith("tag:"):
                ok &= inst["tags"].get(name[4:]) in values
            elif name == "instance-state-name":
                ok &= inst.get("state", "running") in values
            else:
                die(254, "fake aws: unknown instance filter %r" % name)
        if ok:
            rows.append((inst["id"], inst["az"]))
    return text_rows(rows)


def describe_subnets(state, opts):
    expect_query(opts, "Subnets[0].AvailabilityZone")
    sid = one(opts, "subnet-ids")
    if sid not in state["subnets"]:
        aws_error("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist" % sid)
    return state["subnets"][sid]["az"] + "\n"


def describe_network_interfaces(state, opts):
    flt = filters(opts)
    if set(flt) == {"attachment.instance-id", "attachment.device-index"}:
        expect_query(opts, "NetworkInterfaces[].[NetworkInterfaceId,SubnetId]")
        rows = [(e["id"], e["subnet"]) for e in state["enis"]
                if e.get("attachment")
                and e["attachment"]["instance"] in flt["attachment.instance-id"]
                and str(e["attachment"]["index"]) in flt["attachment.device-index"]]
        return text_rows(rows)
    if set(flt) == {"tag:mdcast.io/instance-id", "status", "subnet-id"}:
        expect_query(opts, "NetworkInterfaces[0].NetworkInterfaceId")
        for e in state["enis"]:
            if (e["tags"].get("mdcast.io/instance-id") in flt["tag:mdcast.io/instance-id"]
                    and e["status"] in flt["status"] and e["subnet"] in flt["subnet-id"]):
                return e["id"] + "\n"
        return "None\n"
    die(254, "fake aws: unexpected ENI filters %r" % sorted(flt))


def new_id(state, prefix):
    state["next_id"] = state.get("next_id", 0) + 1
    return "%s-%08x" % (prefix, 0xa0000000 + state["next_id"])


def create_network_interface(state, opts):
    expect_query(opts, "NetworkInterface.NetworkInterfaceId")
    if "create-network-interface" in state.get("fail", {}):
        aws_error("UnauthorizedOperation", state["fail"]["create-network-interface"])
    subnet = one(opts, "subnet-id")
    if subnet not in state["subnets"]:
        aws_error("InvalidSubnetID.NotFound", subnet)
    one(opts, "groups")
    spec = one(opts, "tag-specifications")
    m = re.fullmatch(r"ResourceType=network-interface,Tags=\[(.*)\]", spec)
    if not m:
        die(254, "fake aws: bad --tag-specifications %r" % spec)
    tags = dict(re.findall(r"\{Key=([^,}]+),Value=([^}]*)\}", m.group(1)))
    eni = {"id": new_id(state, "eni"), "subnet": subnet, "status": "available", "tags": tags,
           "groups": opts["groups"], "attachment": None}
    state["enis"].append(eni)
    return eni["id"] + "\n"


def attach_network_interface(state, opts):
    expect_query(opts, "AttachmentId")
    eni_id = one(opts, "network-interface-id")
    inst = one(opts, "instance-id")
    index = int(one(opts, "device-index"))
    eni = next((e for e in state["enis"] if e["id"] == eni_id), None)
    if eni is None:
        aws_error("InvalidNetworkInterfaceID.NotFound", eni_id)
    if eni["status"] != "available":
        aws_error("InvalidNetworkInterface.InUse", eni_id)
    for e in state["enis"]:
        a = e.get("attachment")
        if a and a["instance"] == inst and a["index"] == index:
            aws_error("InvalidParameterValue", "device index %d is in use" % index)
    eni["status"] = "in-use"
    eni["attachment"] = {"id": new_id(state, "eni-attach"), "instance": inst, "index": index,
                         "delete_on_termination": False}
    return eni["attachment"]["id"] + "\n"


def modify_network_interface_attribute(state, opts):
    eni_id = one(opts, "network-interface-id")
    m = re.fullmatch(r"AttachmentId=([^,]+),DeleteOnTermination=(true|false)", one(opts, "attachment"))
    if not m:
        die(254, "fake aws: bad --attachment %r" % opts["attachment"])
    eni = next((e for e in state["enis"] if e["id"] == eni_id), None)
    if eni is None or not eni.get("attachment") or eni["attachment"]["id"] != m.group(1):
        aws_error("InvalidAttachmentID.NotFound", m.group(1))
    eni["attachment"]["delete_on_termination"] = m.group(2) == "true"
    return ""


def describe_stacks(state, opts):
    name = one(opts, "stack-name")
    q = one(opts, "query")
    m = re.fullmatch(r"Stacks\[0\]\.Outputs\[\?OutputKey=='(\w+)'\]\.OutputValue", q)
    if not m:
        die(254, "fake aws: unexpected --query %r" % q)
    if name not in state.get("stacks", {}):
        aws_error("ValidationError", "Stack with id %s does not exist" % name)
    value = state["stacks"][name].get(m.group(1))
    return (value + "\n") if value else "\n"


HANDLERS = {
    ("ec2", "describe-instances"): describe_instances,
    ("ec2", "describe-subnets"): describe_subnets,
    ("ec2", "describe-security-groups"): describe_security_groups,
    ("ec2", "describe-network-interfaces"): describe_network_interfaces,
    ("ec2", "create-network-interface"): create_network_interface,
    ("ec2", "attach-network-interface"): attach_network_interface,
    ("ec2", "modify-network-interface-attribute"): modify_network_interface_attribute,
    ("cloudformation", "describe-stacks"): describe_stacks,
}


def main():
    state_path = os.environ["FAKE_AWS_STATE"]
    with open(os.environ["FAKE_AWS_LOG"], "a") as log:
        log.write(json.dumps(sys.argv[1:]) + "\n")
    region, service, op, opts = parse(sys.argv[1:])
    want_region = os.environ.get("FAKE_AWS_REQUIRE_REGION")
    if want_region and region != want_region:
        die(254, "fake aws: call without --region %s: %r" % (want_region, sys.argv[1:]))
    handler = HANDLERS.get((service, op))
    if handler is None:
        die(254, "fake aws: unknown call %s %s" % (service, op))
    with open(state_path) as f:
        state = json.load(f)
    out = handler(state, opts)
    with open(state_path + ".tmp", "w") as f:
        json.dump(state, f, indent=1)
    os.replace(state_path + ".tmp", state_path)
    sys.stdout.write(out)


if __name__ == "__main__":
    main()
