#!/usr/bin/env python3
"""The NetworkAttachmentDefinition embeds exactly deploy/k8s/base/hostdevice-multicast-network.json
(the file the end-to-end testbed runs for real), and that JSON is the plugin list DESIGN.md and the
contracts fix: cniVersion 1.0.0, host-device moving eth1 with eni-ipam, then tuning with MTU 8500 and
IGMPv2 forced on net1. Needs no kubectl."""
import json
import os

from deploylib import Checks, K8S_BASE, NAD_JSON, NAD_NAME, load_yaml_docs, read

IPAM_KEYS = {"type", "imds_endpoint", "imds_timeout_ms", "imds_retries", "routes", "log_level", "log_file"}


def main():
    c = Checks("check_nad")
    text = read(NAD_JSON)
    conf = json.loads(text)

    nads = [d for d in load_yaml_docs(os.path.join(K8S_BASE, "nad.yaml"))
            if d.get("kind") == "NetworkAttachmentDefinition"]
    c.equal(len(nads), 1, "one NetworkAttachmentDefinition in nad.yaml")
    nad = nads[0]
    c.equal(nad["apiVersion"], "k8s.cni.cncf.io/v1", "NAD apiVersion")
    c.equal(nad["metadata"]["name"], NAD_NAME, "NAD name")
    embedded = nad["spec"]["config"]
    c.ok(embedded == text, "spec.config is byte-for-byte %s" % os.path.basename(NAD_JSON))
    c.equal(json.loads(embedded), conf, "spec.config parses to the same JSON")

    c.equal(conf.get("cniVersion"), "1.0.0", "cniVersion (Debian's host-device understands <= 1.0.0)")
    c.equal(conf.get("name"), NAD_NAME, "network name")
    plugins = conf.get("plugins", [])
    c.equal([p.get("type") for p in plugins], ["host-device", "tuning"], "plugin chain")
    if len(plugins) == 2:
        hd, tuning = plugins
        c.equal(hd.get("device"), "eth1", "host-device moves the node's eth1")
        ipam = hd.get("ipam", {})
        c.equal(ipam.get("type"), "eni-ipam", "host-device's ipam")
        c.ok(set(ipam) <= IPAM_KEYS, "ipam keys %s are all eni-ipam keys" % sorted(ipam))
        # The metadata endpoint is eni-ipam's default; tests override it to reach their mock.
        c.ok("169.254" not in json.dumps(ipam), "no metadata address hard-coded in the NAD")
        for r in ipam.get("routes", []):
            c.ok("gw" not in r, "route %r has no gateway (host-device would make it the next hop)" % r)
        if "routes" in ipam:
            c.ok({"dst": "224.0.0.0/4"} in ipam["routes"], "multicast route 224.0.0.0/4 on net1")
        c.equal(tuning.get("mtu"), 8500, "tuning MTU (the TGW's limit)")
        c.equal(tuning.get("sysctl"), {"net.ipv4.conf.net1.force_igmp_version": "2"},
                "tuning forces IGMPv2 on net1 (the TGW ignores IGMPv3)")
    c.finish()


if __name__ == "__main__":
    main()
