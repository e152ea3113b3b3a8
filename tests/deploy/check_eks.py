#!/usr/bin/env python3
"""deploy/eks: the eksctl configs agree with each other and with issue 8: a private cluster,
nodes in one AZ (the control plane's second-AZ subnet used by no nodegroup), the multicast
nodegroup on Nitro instance types with the mdcast.io/multicast=true label, its taint and an SSH
key, and WARM_ENI_TARGET=0 for aws-node both as the vpc-cni add-on setting and as the patch for
a self-managed aws-node."""
import json
import os
import re

from deploylib import DEPLOY, NODE_LABEL, Checks, load_yaml_docs

EKS = os.path.join(DEPLOY, "eks")
# Nitro: every current-generation family from the 5th generation on (c5, m6i, c6in, c7g ...).
NITRO = re.compile(r"^[a-z]+([5-9])[a-z-]*\.[0-9a-z]+$")


def main():
    c = Checks("check_eks")
    cluster = load_yaml_docs(os.path.join(EKS, "cluster.yaml"))[0]
    ngcfg = load_yaml_docs(os.path.join(EKS, "multicast-nodegroup.yaml"))[0]
    for doc in (cluster, ngcfg):
        c.equal((doc["apiVersion"], doc["kind"]), ("eksctl.io/v1alpha5", "ClusterConfig"), "eksctl ClusterConfig")
    c.equal(ngcfg["metadata"]["name"], cluster["metadata"]["name"], "nodegroup config names the cluster")
    c.equal(ngcfg["metadata"]["region"], cluster["metadata"]["region"], "same region")
    c.ok(cluster.get("privateCluster", {}).get("enabled") is True, "private cluster")
    private = cluster["vpc"]["subnets"]["private"]
    c.equal(len(private), 2, "cluster subnets in two AZs (EKS requires two for the control plane)")
    node_az = None
    for ng in cluster.get("managedNodeGroups", []) + ngcfg.get("managedNodeGroups", []):
        name = ng["name"]
        c.ok(ng.get("privateNetworking") is True, "%s: private networking" % name)
        azs = {az for az, s in private.items() for sid in ng.get("subnets", []) if s["id"] == sid}
        c.equal(len(azs), 1, "%s: in one AZ" % name)
        node_az = node_az or next(iter(azs), None)
        c.equal(next(iter(azs), None), node_az, "%s: in the same AZ as the other nodes" % name)
        c.ok(ng.get("disableIMDSv1") is True, "%s: IMDSv2 only" % name)
    mng = [ng for ng in ngcfg["managedNodeGroups"] if ng["name"] == "multicast"]
    if c.ok(len(mng) == 1, "a multicast nodegroup"):
        ng = mng[0]
        types = ng.get("instanceTypes") or [ng.get("instanceType")]
        for t in types:
            c.ok(bool(t) and NITRO.match(t) is not None, "%s is a Nitro instance type" % t)
        c.equal(ng.get("labels", {}).get(NODE_LABEL[0]), NODE_LABEL[1], "multicast nodegroup label")
        c.ok(bool(ng.get("ssh", {}).get("publicKeyName")) and ng["ssh"].get("allow") is True, "SSH key set")
        c.ok({"key": NODE_LABEL[0], "value": NODE_LABEL[1], "effect": "NoSchedule"} in ng.get("taints", []),
             "multicast nodes tainted so other pods stay off")
    addons = {a["name"]: a for a in cluster.get("addons", [])}
    env = json.loads(addons.get("vpc-cni", {}).get("configurationValues", "{}")).get("env", {})
    c.equal(env.get("WARM_ENI_TARGET"), "0", "vpc-cni add-on WARM_ENI_TARGET")
    c.ok(int(env.get("WARM_IP_TARGET", "0")) > 0, "vpc-cni add-on keeps an IP target with WARM_ENI_TARGET=0")
    patch = load_yaml_docs(os.path.join(EKS, "aws-node-warm-eni-target.yaml"))[0]
    ctr = [k for k in patch["spec"]["template"]["spec"]["containers"] if k["name"] == "aws-node"]
    penv = {e["name"]: e["value"] for e in ctr[0]["env"]} if ctr else {}
    c.equal(penv, env, "aws-node patch sets the same environment as the add-on")
    c.finish()


if __name__ == "__main__":
    main()
