#!/usr/bin/env python3
"""Renders deploy/k8s/agent (kubectl kustomize, offline) and checks the agent layout of issue 13:

- the mdcast-agent DaemonSet attaches the multicast NAD on net1 (the interface its --interface
  names), carries the attachment label with the one-ENI-per-node anti-affinity, runs on the
  multicast nodes (tolerating their taint), mounts hostPath /run/mdcast where its --socket lives,
  and has readiness and liveness probes on /healthz at the port its --metrics names;
- the consumer Deployment has several replicas, no Multus annotation and no attachment label,
  runs on the same nodes, mounts the same hostPath, and its --agent names the agent's socket;
  its --group/--group-b are 239.0.0.0/8 groups;
- the base's own ENI consumer is scaled to zero (it would compete with the agent for the ENI).
Usage: check_agent_k8s.py [KUSTOMIZATION_DIR]   (default: deploy/k8s/agent)
"""
import os
import re
import sys

from check_k8s import label_selected, nodegroup_taints, render, tolerates
from deploylib import (ATTACH_LABEL, DEPLOY, NAD_NAME, NODE_LABEL, Checks, multus_networks,
                       pod_meta, pod_spec)

SOCKET_DIR = "/run/mdcast"


def flag(args, name):
    """Value of --name in an argv list or in a shell command string."""
    text = " ".join(args)
    m = re.search(r"--%s[ =](\S+)" % re.escape(name), text)
    return m.group(1) if m else None


def argv_of(ctr):
    return [str(x) for x in (ctr.get("command") or []) + (ctr.get("args") or [])]


def host_mount(spec, ctr, host_path):
    """mountPath of the container's mount of hostPath `host_path`, or None."""
    vols = {v["name"]: v for v in spec.get("volumes") or []}
    for m in ctr.get("volumeMounts") or []:
        hp = (vols.get(m["name"], {}).get("hostPath") or {}).get("path")
        if hp == host_path:
            return m["mountPath"]
    return None


def on_multicast_nodes(c, name, spec, taints):
    c.equal((spec.get("nodeSelector") or {}).get(NODE_LABEL[0]), NODE_LABEL[1], "%s: on multicast nodes" % name)
    for t in taints:
        c.ok(tolerates(spec, t), "%s: tolerates %s" % (name, t["key"]))


def check_agent(c, ds, taints):
    name = "DaemonSet mdcast-agent"
    spec, meta = pod_spec(ds), pod_meta(ds)
    labels = meta.get("labels") or {}
    ctr = spec["containers"][0]
    argv = argv_of(ctr)
    nets = multus_networks(meta)
    c.equal([(n, i) for _, n, i in nets], [(NAD_NAME, flag(argv, "interface"))],
            "%s: attaches the NAD on the interface --interface names" % name)
    c.equal(labels.get(ATTACH_LABEL[0]), ATTACH_LABEL[1], "%s: carries the attachment label" % name)
    terms = (((spec.get("affinity") or {}).get("podAntiAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or [])
    c.ok(any(t.get("topologyKey") == "kubernetes.io/hostname" and
             label_selected((t.get("labelSelector") or {}).get("matchLabels"), labels) for t in terms),
         "%s: one ENI per node (anti-affinity on hostname)" % name)
    on_multicast_nodes(c, name, spec, taints)
    mount = host_mount(spec, ctr, SOCKET_DIR)
    sock = flag(argv, "socket")
    c.ok(mount is not None and sock is not None and os.path.dirname(sock) == mount,
         "%s: --socket %s lies in the hostPath %s mount (%s)" % (name, sock, SOCKET_DIR, mount))
    c.ok(flag(argv, "ring-bytes") is not None, "%s: --ring-bytes set" % name)
    metrics = flag(argv, "metrics") or ""
    mport = int(metrics.rsplit(":", 1)[1]) if ":" in metrics else None
    ports = {p.get("name"): p["containerPort"] for p in ctr.get("ports") or []}
    for probe in ("readinessProbe", "livenessProbe"):
        get = (ctr.get(probe) or {}).get("httpGet") or {}
        port = ports.get(get.get("port"), get.get("port"))
        c.equal((get.get("path"), port), ("/healthz", mport), "%s: %s on /healthz at --metrics port" % (name, probe))
    return sock


def check_consumer(c, dep, taints, sock):
    name = "Deployment %s" % dep["metadata"]["name"]
    spec, meta = pod_spec(dep), pod_meta(dep)
    ctr = spec["containers"][0]
    argv = argv_of(ctr)
    c.ok((dep["spec"].get("replicas") or 1) > 1, "%s: many replicas per node" % name)
    c.equal(multus_networks(meta), [], "%s: no Multus annotation" % name)
    c.ok((meta.get("labels") or {}).get(ATTACH_LABEL[0]) != ATTACH_LABEL[1], "%s: no attachment label" % name)
    on_multicast_nodes(c, name, spec, taints)
    mount = host_mount(spec, ctr, SOCKET_DIR)
    agent = flag(argv, "agent")
    c.ok(mount is not None and agent is not None and
         os.path.join(mount, os.path.basename(sock or "")) == agent,
         "%s: --agent %s is the agent's socket in its %s mount" % (name, agent, SOCKET_DIR))
    c.ok(flag(argv, "interface") is None, "%s: no --interface (no multicast interface)" % name)
    for g in ("group", "group-b"):
        v = flag(argv, g) or ""
        c.ok(re.match(r"^239\.\d+\.\d+\.\d+:\d+$", v) is not None, "%s: --%s %s in 239.0.0.0/8" % (name, g, v))


def main():
    kdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(DEPLOY, "k8s", "agent")
    objs = render(kdir)
    c = Checks("check_agent_k8s")
    _, taints = nodegroup_taints()
    ds = [o for o in objs if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "mdcast-agent"]
    if not c.ok(len(ds) == 1, "the agent DaemonSet is rendered"):
        c.finish()
    sock = check_agent(c, ds[0], taints)
    deps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Deployment"}
    c.ok("mdfeed-agent-consumer" in deps, "the agent consumer Deployment is rendered")
    if "mdfeed-agent-consumer" in deps:
        check_consumer(c, deps["mdfeed-agent-consumer"], taints, sock)
    base = deps.get("mdfeed-consumer")
    c.ok(base is None or base["spec"].get("replicas") == 0, "the base's ENI consumer is scaled to zero")
    c.finish()


if __name__ == "__main__":
    main()
