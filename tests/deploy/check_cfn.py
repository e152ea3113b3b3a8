#!/usr/bin/env python3
"""deploy/aws/mdcast-network.yaml parses with a plain YAML parser (long-form intrinsics only),
every Ref/GetAtt/Sub names something defined, and it builds what issues 8, 13 and 16 ask: a TGW
with multicast support, a multicast domain with IGMPv2, the VPC attachment and a domain
association whose subnet is a subnet of that attachment (the multicast subnet), the one-AZ
subnets (plus the control plane's in a second AZ), and a security group admitting IGMP
(protocol 2) from 0.0.0.0/32, the group ports and the retransmission ports from the multicast
subnet. Options, each resource under the condition of its parameter: static group members and
sources (and StaticSourcesSupport from its parameter), a RAM share of the domain and the TGW,
and the SSM/EKS endpoints with an SSM-only bastion. The outputs the ENI script reads exist.
cfn-lint runs too where it is installed (it ships the resource specifications, so it works
offline), on the template and on variants with every option switched on."""
import os
import re
import shutil
import subprocess
import tempfile

import yaml

from deploylib import DEPLOY, Checks, load_yaml_docs, read

TEMPLATE = os.path.join(DEPLOY, "aws", "mdcast-network.yaml")
PSEUDO = {"AWS::Region", "AWS::AccountId", "AWS::StackName", "AWS::StackId", "AWS::Partition",
          "AWS::URLSuffix", "AWS::NoValue", "AWS::NotificationARNs"}


def walk(node, fn):
    fn(node)
    if isinstance(node, dict):
        for v in node.values():
            walk(v, fn)
    elif isinstance(node, list):
        for v in node:
            walk(v, fn)


def is_ref(node, name):
    return isinstance(node, dict) and node.get("Ref") == name


# Parameter values that switch every option of the template on.
OPTIONS_ON = {"StaticSourcesSupport": "enable", "StaticGroupA": "239.192.10.1", "StaticGroupB": "239.192.11.1",
              "StaticMemberNetworkInterfaceId": "eni-0123456789abcdef0",
              "StaticSourceNetworkInterfaceId": "eni-0123456789abcdef1",
              "SharePrincipals": "123456789012", "AccessPath": "ssm-bastion"}


def eval_cond(tpl, node, values):
    """Evaluates a CloudFormation condition expression with parameter values `values`."""
    if isinstance(node, dict) and len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Condition":
            return eval_cond(tpl, tpl["Conditions"][arg], values)
        if fn == "Fn::Not":
            return not eval_cond(tpl, arg[0], values)
        if fn == "Fn::And":
            return all(eval_cond(tpl, a, values) for a in arg)
        if fn == "Fn::Or":
            return any(eval_cond(tpl, a, values) for a in arg)
        if fn == "Fn::Equals":
            return eval_value(arg[0], values) == eval_value(arg[1], values)
    raise ValueError("condition not understood: %r" % (node,))


def eval_value(node, values):
    if isinstance(node, dict) and "Ref" in node:
        return values[node["Ref"]]
    if isinstance(node, dict) and "Fn::Join" in node:
        sep, items = node["Fn::Join"]
        items = eval_value(items, values)
        return sep.join(items if isinstance(items, list) else [items])
    return node


def present(tpl, values):
    """The resources that exist with these parameter values."""
    out = {}
    for k, v in tpl["Resources"].items():
        cond = v.get("Condition")
        if cond is None or eval_cond(tpl, tpl["Conditions"][cond], values):
            out[k] = v
    return out


def check_options(c, tpl, res, params, dom_name, tgw_name):
    defaults = {k: v.get("Default") for k, v in params.items()}
    for k in ("SharePrincipals",):
        defaults[k] = [x for x in str(defaults[k]).split(",") if x]
    on = dict(defaults, **OPTIONS_ON)
    on["SharePrincipals"] = OPTIONS_ON["SharePrincipals"].split(",")
    base, full = present(tpl, defaults), present(tpl, on)
    kinds = lambda rs: sorted(v["Type"] for v in rs.values())  # noqa: E731
    for t in ("AWS::EC2::TransitGatewayMulticastGroupMember", "AWS::EC2::TransitGatewayMulticastGroupSource",
              "AWS::RAM::ResourceShare", "AWS::EC2::VPCEndpoint", "AWS::EC2::Instance"):
        c.ok(t not in kinds(base), "defaults: no %s" % t)
    members = {k: v for k, v in full.items() if v["Type"] == "AWS::EC2::TransitGatewayMulticastGroupMember"}
    sources = {k: v for k, v in full.items() if v["Type"] == "AWS::EC2::TransitGatewayMulticastGroupSource"}
    for what, found, eni in (("member", members, "StaticMemberNetworkInterfaceId"),
                             ("source", sources, "StaticSourceNetworkInterfaceId")):
        groups = sorted(v["Properties"]["GroupIpAddress"].get("Ref") for v in found.values())
        c.equal(groups, ["StaticGroupA", "StaticGroupB"], "static %s resources for lines A and B when on" % what)
        for k, v in found.items():
            c.ok(is_ref(v["Properties"].get("TransitGatewayMulticastDomainId"), dom_name), "%s in the domain" % k)
            c.ok(is_ref(v["Properties"].get("NetworkInterfaceId"), eni), "%s registers %s" % (k, eni))
            c.ok(v.get("DependsOn") == "MulticastDomainAssociation", "%s waits for the subnet association" % k)
    # A static source needs StaticSourcesSupport=enable: without it, no source resource.
    no_ss = dict(on, StaticSourcesSupport="disable")
    c.ok(not any(v["Type"] == "AWS::EC2::TransitGatewayMulticastGroupSource" for v in present(tpl, no_ss).values()),
         "no static source resources while StaticSourcesSupport=disable")
    shares = [v for v in full.values() if v["Type"] == "AWS::RAM::ResourceShare"]
    if c.ok(len(shares) == 1, "a RAM resource share when SharePrincipals is set"):
        arns = shares[0]["Properties"]["ResourceArns"]
        c.ok({"Fn::GetAtt": [dom_name, "TransitGatewayMulticastDomainArn"]} in arns, "the share holds the domain")
        c.ok(any("transit-gateway/${%s}" % tgw_name in str(a) for a in arns), "the share holds the TGW")
        c.ok(is_ref(shares[0]["Properties"].get("Principals"), "SharePrincipals"), "shared with SharePrincipals")
    services = sorted(v["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[-1]
                      for v in full.values() if v["Type"] == "AWS::EC2::VPCEndpoint")
    c.equal(services, ["ec2messages", "eks", "ssm", "ssmmessages"], "ssm-bastion: the SSM and EKS interface endpoints")
    # eksctl's private cluster creates these itself; a second endpoint with private DNS would conflict.
    c.ok(not set(services) & {"ec2", "sts", "s3", "ecr", "logs"}, "no endpoint eksctl creates too")
    bastion = [v for v in full.values() if v["Type"] == "AWS::EC2::Instance"]
    if c.ok(len(bastion) == 1, "ssm-bastion: one bastion instance"):
        sg = res[bastion[0]["Properties"]["SecurityGroupIds"][0]["Ref"]]
        c.ok(not sg["Properties"].get("SecurityGroupIngress"), "the bastion admits no inbound traffic (SSM only)")
        c.equal(bastion[0]["Properties"].get("MetadataOptions", {}).get("HttpTokens"), "required", "bastion IMDSv2 only")


def main():
    c = Checks("check_cfn")
    text = read(TEMPLATE)
    c.ok(not re.search(r"^[^#]*\s!(Ref|Sub|GetAtt|Select|Cidr|Join|If|Equals|Not)\b", text, re.M),
         "only long-form intrinsics (a plain YAML parser reads the template)")
    tpl = load_yaml_docs(TEMPLATE)[0]
    c.equal(tpl.get("AWSTemplateFormatVersion"), "2010-09-09", "template format version")
    params, res = tpl.get("Parameters", {}), tpl.get("Resources", {})
    defined = set(params) | set(res) | PSEUDO

    def check_refs(node):
        if isinstance(node, dict):
            if "Ref" in node:
                c.ok(node["Ref"] in defined, "Ref %r is defined" % node["Ref"])
            if "Fn::GetAtt" in node:
                target = node["Fn::GetAtt"][0] if isinstance(node["Fn::GetAtt"], list) else node["Fn::GetAtt"].split(".")[0]
                c.ok(target in res, "GetAtt %r names a resource" % target)
            if "Fn::Sub" in node and isinstance(node["Fn::Sub"], str):
                for var in re.findall(r"\$\{([^}!]+)\}", node["Fn::Sub"]):
                    c.ok(var.split(".")[0] in defined, "Sub variable %r is defined" % var)
    walk(tpl, check_refs)

    def of_type(t):
        return {k: v for k, v in res.items() if v["Type"] == t}

    tgws = of_type("AWS::EC2::TransitGateway")
    c.equal(len(tgws), 1, "one transit gateway")
    tgw_name, tgw = next(iter(tgws.items()))
    c.equal(tgw["Properties"].get("MulticastSupport"), "enable", "TGW multicast support")

    domains = of_type("AWS::EC2::TransitGatewayMulticastDomain")
    c.equal(len(domains), 1, "one multicast domain")
    dom_name, dom = next(iter(domains.items()))
    c.ok(is_ref(dom["Properties"].get("TransitGatewayId"), tgw_name), "domain on the TGW")
    c.equal(dom["Properties"].get("Options", {}).get("Igmpv2Support"), "enable", "multicast domain IGMPv2 support")
    c.ok(is_ref(dom["Properties"]["Options"].get("StaticSourcesSupport"), "StaticSourcesSupport"),
         "static sources support comes from its parameter")
    c.equal(params.get("StaticSourcesSupport", {}).get("Default"), "disable",
            "IGMP domain by default (static sources off; members join with IGMPv2)")

    atts = of_type("AWS::EC2::TransitGatewayVpcAttachment")
    atts.update(of_type("AWS::EC2::TransitGatewayAttachment"))
    c.equal(len(atts), 1, "one VPC attachment")
    att_name, att = next(iter(atts.items()))
    subnets = of_type("AWS::EC2::Subnet")
    az_of = {k: v["Properties"]["AvailabilityZone"].get("Ref") for k, v in subnets.items()}
    c.equal(len(subnets), 3, "multicast (also the TGW attachment's), cluster and control-plane subnets")
    c.equal(sorted(az_of.values()).count("AvailabilityZone"), 2, "two subnets in the one AZ")
    att_subnets = [s.get("Ref") for s in att["Properties"]["SubnetIds"]]
    for s in att_subnets:
        c.equal(az_of.get(s), "AvailabilityZone", "attachment subnet in the one AZ")
    c.equal(len(att_subnets), len({az_of.get(s) for s in att_subnets}), "attachment: one subnet per AZ")

    assocs = of_type("AWS::EC2::TransitGatewayMulticastDomainAssociation")
    c.equal(len(assocs), 1, "one domain association")
    assoc = next(iter(assocs.values()))["Properties"]
    c.ok(is_ref(assoc.get("TransitGatewayMulticastDomainId"), dom_name), "association names the domain")
    c.ok(is_ref(assoc.get("TransitGatewayAttachmentId"), att_name), "association names the attachment")
    mc_subnet = assoc.get("SubnetId", {}).get("Ref")
    c.equal(az_of.get(mc_subnet), "AvailabilityZone", "associated (multicast) subnet in the one AZ")
    c.ok(mc_subnet in att_subnets,
         "association subnet %r is a subnet of the TGW attachment %r (AWS: associate subnets in the "
         "transit gateway VPC attachment)" % (mc_subnet, att_subnets))
    check_options(c, tpl, res, params, dom_name, tgw_name)

    sgs = {k: v for k, v in of_type("AWS::EC2::SecurityGroup").items() if "Condition" not in v}
    c.equal(len(sgs), 1, "one unconditional security group (multicast ENIs)")
    sg_name, sg = next(iter(sgs.items()))
    rules = sg["Properties"].get("SecurityGroupIngress", [])
    igmp = [r for r in rules if str(r.get("IpProtocol")) in ("2", "igmp")]
    c.equal(len(igmp), 1, "one IGMP (protocol 2) ingress rule")
    if igmp:
        c.equal(igmp[0].get("CidrIp"), "0.0.0.0/32", "IGMP admitted from 0.0.0.0/32 (the TGW's query source)")
    from_mc = lambda r: r.get("CidrIp") == {"Fn::GetAtt": [mc_subnet, "CidrBlock"]}  # noqa: E731
    udp = [r for r in rules if r.get("IpProtocol") == "udp"]
    for lo, hi, what in (("GroupPortFrom", "GroupPortTo", "group ports"),
                         ("RetransmitPortFrom", "RetransmitPortTo", "retransmission ports")):
        c.ok(any(is_ref(r.get("FromPort"), lo) and is_ref(r.get("ToPort"), hi) and from_mc(r) for r in udp),
             "UDP %s admitted from the multicast subnet" % what)
        c.ok(params[lo]["Default"] <= params[hi]["Default"], "%s range is not empty" % what)
    c.ok(not any(r.get("CidrIp") == "0.0.0.0/0" for r in rules), "nothing admitted from 0.0.0.0/0")

    outputs = tpl.get("Outputs", {})
    script = read(os.path.join(DEPLOY, "aws", "attach-multicast-enis.sh"))
    wanted = set(re.findall(r"stack_output (\w+)", script))
    c.ok(len(wanted) == 2, "the ENI script reads two stack outputs: %s" % sorted(wanted))
    for key in wanted:
        c.ok(key in outputs, "output %s (read by attach-multicast-enis.sh) exists" % key)
    c.ok(is_ref(outputs.get("MulticastSubnetId", {}).get("Value"), mc_subnet), "MulticastSubnetId is the associated subnet")
    c.ok(is_ref(outputs.get("MulticastSecurityGroupId", {}).get("Value"), sg_name), "MulticastSecurityGroupId is the SG")

    lint = shutil.which("cfn-lint")
    if lint:
        # The template as shipped, and with every option on (parameter defaults changed), so the
        # conditional resources are linted with their values too.
        with tempfile.TemporaryDirectory() as tmp:
            variant = dict(tpl, Parameters={k: dict(v) for k, v in params.items()})
            for k, v in OPTIONS_ON.items():
                variant["Parameters"][k]["Default"] = v
            vpath = os.path.join(tmp, "all-options.yaml")
            with open(vpath, "w") as f:
                yaml.safe_dump(variant, f, sort_keys=False)
            r = subprocess.run([lint, TEMPLATE, vpath], capture_output=True, text=True, timeout=300)
        c.ok(r.returncode == 0, "cfn-lint clean (as shipped and with every option on):\n" + r.stdout + r.stderr)
    else:
        print("note: cfn-lint not installed; resource properties not validated against the specification")
    c.finish()


if __name__ == "__main__":
    main()
