#!/usr/bin/env python3
"""deploy/aws/mdcast-network.yaml parses with a plain YAML parser (long-form intrinsics only),
every Ref/GetAtt/Sub names something defined, and it builds what issue 8 asks: a TGW with
multicast support, a multicast domain with IGMPv2, the VPC attachment and the multicast subnet's
association, the three one-AZ subnets (plus the control plane's in a second AZ), and a security
group admitting IGMP (protocol 2) from 0.0.0.0/32, the group ports and the retransmission ports
from the multicast subnet. The outputs the ENI script reads exist. cfn-lint runs too where it is
installed (it ships the resource specifications, so it works offline)."""
import os
import re
import shutil
import subprocess

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
    c.equal(dom["Properties"]["Options"].get("StaticSourcesSupport"), "disable",
            "IGMP domain (static sources off; members join with IGMPv2)")

    atts = of_type("AWS::EC2::TransitGatewayVpcAttachment")
    atts.update(of_type("AWS::EC2::TransitGatewayAttachment"))
    c.equal(len(atts), 1, "one VPC attachment")
    att_name, att = next(iter(atts.items()))
    subnets = of_type("AWS::EC2::Subnet")
    az_of = {k: v["Properties"]["AvailabilityZone"].get("Ref") for k, v in subnets.items()}
    c.equal(len(subnets), 4, "multicast, cluster, TGW attachment and control-plane subnets")
    c.equal(sorted(az_of.values()).count("AvailabilityZone"), 3, "three subnets in the one AZ")
    for s in att["Properties"]["SubnetIds"]:
        c.equal(az_of.get(s.get("Ref")), "AvailabilityZone", "attachment subnet in the one AZ")

    assocs = of_type("AWS::EC2::TransitGatewayMulticastDomainAssociation")
    c.equal(len(assocs), 1, "one domain association")
    assoc = next(iter(assocs.values()))["Properties"]
    c.ok(is_ref(assoc.get("TransitGatewayMulticastDomainId"), dom_name), "association names the domain")
    c.ok(is_ref(assoc.get("TransitGatewayAttachmentId"), att_name), "association names the attachment")
    mc_subnet = assoc.get("SubnetId", {}).get("Ref")
    c.equal(az_of.get(mc_subnet), "AvailabilityZone", "associated (multicast) subnet in the one AZ")

    sgs = of_type("AWS::EC2::SecurityGroup")
    c.equal(len(sgs), 1, "one security group (multicast ENIs)")
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
        r = subprocess.run([lint, TEMPLATE], capture_output=True, text=True, timeout=300)
        c.ok(r.returncode == 0, "cfn-lint clean:\n" + r.stdout + r.stderr)
    else:
        print("note: cfn-lint not installed; resource properties not validated against the specification")
    c.finish()


if __name__ == "__main__":
    main()
