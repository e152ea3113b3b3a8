#!/usr/bin/env python3
"""Renders every kustomization under deploy/k8s with `kubectl kustomize` (offline) and checks
that the rendered objects agree with each other and with the rest of deploy/:

- every pod that names the multicast network in its Multus annotation names a NAD that exists
  in its own namespace, on the interface the NAD's tuning sysctl and the gateway config use;
- one multicast pod per node: each such pod carries the attachment label, selects the multicast
  nodes, tolerates the nodegroup's taint, and has a required anti-affinity on the hostname that
  matches its own label; Deployments that attach it use Recreate;
- the seccomp profile the pods name is the file the node installer writes, and the profile in
  the installer's ConfigMap is deploy/k8s/base/seccomp/mdcast-gateway.json and allows io_uring;
- the installer writes eni-ipam into the node's /opt/cni/bin and runs on the multicast nodes;
- the gateway: probes on /readyz and /healthz at the metrics port, a preStop hook, Guaranteed
  QoS, config mounted from the generated ConfigMap at the path its --config names, non-root;
- Services select existing pods and target ports those pods declare, and the ports agree with
  the gateway config and the security group's port ranges in deploy/aws/mdcast-network.yaml;
- workload selectors match their templates' labels.
Usage: check_k8s.py [KUSTOMIZATION_DIR ...]   (default: deploy/k8s/base and every overlay)
"""
import glob
import json
import os
import shutil
import subprocess
import sys

from deploylib import (ATTACH_LABEL, DEPLOY, K8S_BASE, KUBELET_SECCOMP_ROOT, NAD_NAME, NODE_LABEL,
                       SKIP, Checks, all_containers, env_of, load_json, load_yaml_docs,
                       multus_networks, pod_meta, pod_spec, port_of, read)


def kubectl_kustomize_major(kubectl):
    """Major version of kubectl's built-in kustomize (0 when kubectl does not say: before 1.24)."""
    try:
        out = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True,
                             text=True, timeout=30, env=dict(os.environ, KUBECONFIG=os.devnull)).stdout
        ver = json.loads(out).get("kustomizeVersion", "v0")
        return int(ver.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


def render(kdir):
    kubectl = shutil.which("kubectl")
    if kubectl and kubectl_kustomize_major(kubectl) < 4:
        # Debian 12's kubernetes-client (1.20) embeds kustomize 2, which predates directories in
        # `resources:`; use a standalone kustomize if there is one.
        if not shutil.which("kustomize"):
            print("SKIP: kubectl's built-in kustomize is older than v4 and no kustomize is installed")
            sys.exit(SKIP)
        kubectl = None
    if kubectl:
        cmd = [kubectl, "kustomize", kdir]
    elif shutil.which("kustomize"):
        cmd = [shutil.which("kustomize"), "build", kdir]
    else:
        print("SKIP: needs kubectl (Debian package kubernetes-client) or kustomize to render deploy/k8s")
        sys.exit(SKIP)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, KUBECONFIG=os.devnull))
    if res.returncode != 0:
        print("FAIL: %s failed:\n%s" % (" ".join(cmd), res.stderr), file=sys.stderr)
        sys.exit(1)
    return load_yaml_docs(res.stdout, is_text=True)


def nodegroup_taints():
    docs = load_yaml_docs(os.path.join(DEPLOY, "eks", "multicast-nodegroup.yaml"))
    ng = docs[0]["managedNodeGroups"][0]
    return ng.get("labels", {}), ng.get("taints", [])


def cfn_port_ranges():
    tpl = load_yaml_docs(os.path.join(DEPLOY, "aws", "mdcast-network.yaml"))[0]
    p = tpl["Parameters"]
    return ((p["GroupPortFrom"]["Default"], p["GroupPortTo"]["Default"]),
            (p["RetransmitPortFrom"]["Default"], p["RetransmitPortTo"]["Default"]))


def tolerates(spec, taint):
    for t in spec.get("tolerations") or []:
        if t.get("operator") == "Exists" and not t.get("key"):
            return True
        if t.get("key") != taint["key"] or t.get("effect", taint["effect"]) != taint["effect"]:
            continue
        if t.get("operator") == "Exists" or t.get("value") == taint.get("value"):
            return True
    return False


def label_selected(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_tree(c, kdir, objs):
    tag = os.path.relpath(kdir, DEPLOY)
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    ns_of = lambda o: o["metadata"].get("namespace", "default")  # noqa: E731
    nads = {(ns_of(n), n["metadata"]["name"]): n for n in by_kind.get("NetworkAttachmentDefinition", [])}
    c.equal(len(nads), 1, "%s: one NetworkAttachmentDefinition" % tag)
    nad_text = read(os.path.join(K8S_BASE, "hostdevice-multicast-network.json"))
    for n in nads.values():
        c.ok(n["spec"]["config"] == nad_text, "%s: rendered NAD config is hostdevice-multicast-network.json" % tag)
    cms = {(ns_of(m), m["metadata"]["name"]): m for m in by_kind.get("ConfigMap", [])}
    namespaces = {n["metadata"]["name"]: n for n in by_kind.get("Namespace", [])}
    ng_labels, ng_taints = nodegroup_taints()
    c.equal(ng_labels.get(NODE_LABEL[0]), NODE_LABEL[1], "nodegroup labels its nodes %s=%s" % NODE_LABEL)
    (grp_lo, grp_hi), (rt_lo, rt_hi) = cfn_port_ranges()

    nad_json = load_json(os.path.join(K8S_BASE, "hostdevice-multicast-network.json"))
    tuned_if = None
    for p in nad_json["plugins"]:
        for key in (p.get("sysctl") or {}):
            if key.startswith("net.ipv4.conf.") and key.endswith(".force_igmp_version"):
                tuned_if = key.split(".")[3]

    workloads = [o for o in objs if pod_spec(o) is not None]
    c.ok(len(workloads) >= 3, "%s: installer, gateway and consumer workloads rendered" % tag)
    for o in workloads:
        name = "%s %s/%s" % (o["kind"], ns_of(o), o["metadata"]["name"])
        spec, meta = pod_spec(o), pod_meta(o)
        labels = meta.get("labels") or {}
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            c.ok(label_selected(o["spec"]["selector"].get("matchLabels"), labels),
                 "%s: selector matches its template's labels" % name)
        c.ok(ns_of(o) in namespaces, "%s: namespace %s is created by this tree" % (name, ns_of(o)))

        # Every Localhost seccomp profile named anywhere must be the installer's.
        for ctx in [spec.get("securityContext") or {}] + [k.get("securityContext") or {} for k in all_containers(spec)]:
            prof = ctx.get("seccompProfile") or {}
            if prof.get("type") == "Localhost":
                c.ok(prof.get("localhostProfile") == installer_profile_rel(by_kind),
                     "%s: Localhost profile %r is the one the node installer writes" % (name, prof.get("localhostProfile")))

        nets = multus_networks(meta)
        if not nets:
            c.ok(labels.get(ATTACH_LABEL[0]) != ATTACH_LABEL[1] or o["kind"] == "DaemonSet",
                 "%s: attachment label without a Multus annotation" % name)
            continue
        for ns, net, ifname in nets:
            c.ok((ns or ns_of(o), net) in nads, "%s: annotation names NAD %s/%s, which exists" % (name, ns or ns_of(o), net))
            c.equal(net, NAD_NAME, "%s: network name" % name)
            c.equal(ifname, tuned_if, "%s: interface pinned to the one the NAD's tuning sysctl names" % name)
        # One multicast pod per node.
        c.equal(labels.get(ATTACH_LABEL[0]), ATTACH_LABEL[1], "%s: carries the attachment label" % name)
        c.equal((spec.get("nodeSelector") or {}).get(NODE_LABEL[0]), NODE_LABEL[1], "%s: selects multicast nodes" % name)
        for t in ng_taints:
            c.ok(tolerates(spec, t), "%s: tolerates the nodegroup taint %s" % (name, t))
        terms = (((spec.get("affinity") or {}).get("podAntiAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        repels_self = [t for t in terms if t.get("topologyKey") == "kubernetes.io/hostname"
                       and label_selected((t.get("labelSelector") or {}).get("matchLabels"), labels)
                       and (t.get("labelSelector") or {}).get("matchLabels", {}).get(ATTACH_LABEL[0]) == ATTACH_LABEL[1]]
        c.ok(bool(repels_self), "%s: required anti-affinity on hostname against every multicast pod" % name)
        if o["kind"] == "Deployment":
            c.equal(o["spec"].get("strategy", {}).get("type"), "Recreate",
                    "%s: Recreate (old and new pod never hold/send at once)" % name)

    check_installer(c, by_kind, cms, tag)
    gw = check_gateway(c, by_kind, cms, tag, tuned_if, grp_lo, grp_hi, rt_lo, rt_hi)
    check_services(c, by_kind, workloads, tag, gw)
    check_consumer(c, by_kind, gw, tag)


def installer_ds(by_kind):
    ds = [d for d in by_kind.get("DaemonSet", []) if d["metadata"]["name"] == "mdcast-node-installer"]
    return ds[0] if ds else None


def installer_profile_rel(by_kind):
    """The localhostProfile that names the file the installer writes, derived from the DaemonSet:
    its SECCOMP_DIR must be a mount of the kubelet's seccomp root."""
    ds = installer_ds(by_kind)
    if ds is None:
        return None
    spec = pod_spec(ds)
    ctr = spec["containers"][0]
    env = env_of(ctr)
    vols = {v["name"]: v for v in spec.get("volumes") or []}
    for m in ctr.get("volumeMounts") or []:
        if m["mountPath"] == env.get("SECCOMP_DIR"):
            host = (vols[m["name"]].get("hostPath") or {}).get("path")
            if host == KUBELET_SECCOMP_ROOT:
                return env.get("SECCOMP_PROFILE")
    return None


def check_installer(c, by_kind, cms, tag):
    ds = installer_ds(by_kind)
    if not c.ok(ds is not None, "%s: node installer DaemonSet rendered" % tag):
        return
    spec = pod_spec(ds)
    c.equal((spec.get("nodeSelector") or {}).get(NODE_LABEL[0]), NODE_LABEL[1], "%s: installer on multicast nodes" % tag)
    c.ok(spec.get("hostNetwork") is True, "%s: installer on the host network (renames the node's links)" % tag)
    ctr = spec["containers"][0]
    env = env_of(ctr)
    c.ok(bool(installer_profile_rel(by_kind)),
         "%s: installer's SECCOMP_DIR is a mount of the kubelet's %s" % (tag, KUBELET_SECCOMP_ROOT))
    vols = {v["name"]: v for v in spec.get("volumes") or []}
    mounts = {m["mountPath"]: vols[m["name"]] for m in ctr.get("volumeMounts") or []}
    c.equal((mounts.get(env.get("CNI_BIN_DIR"), {}).get("hostPath") or {}).get("path"), "/opt/cni/bin",
            "%s: installer's CNI_BIN_DIR is the node's /opt/cni/bin" % tag)
    # The script and the profile come from the generated ConfigMap, identical to the repo files.
    cm_vol = mounts.get(os.path.dirname(env.get("SECCOMP_SRC", "")))
    cm_name = (cm_vol or {}).get("configMap", {}).get("name")
    cm = cms.get((ds["metadata"]["namespace"], cm_name))
    if c.ok(cm is not None, "%s: installer ConfigMap %r exists" % (tag, cm_name)):
        data = cm.get("data", {})
        prof_file = os.path.join(K8S_BASE, "seccomp", "mdcast-gateway.json")
        c.ok(data.get(os.path.basename(env["SECCOMP_SRC"])) == read(prof_file),
             "%s: ConfigMap profile is deploy/k8s/base/seccomp/mdcast-gateway.json" % tag)
        c.ok(data.get("install.sh") == read(os.path.join(K8S_BASE, "node-installer", "install.sh")),
             "%s: ConfigMap install.sh is the repo's script" % tag)
        cmd = " ".join(ctr.get("command", []) + ctr.get("args", []))
        c.ok(os.path.join(os.path.dirname(env["SECCOMP_SRC"]), "install.sh") in cmd,
             "%s: installer runs the ConfigMap's install.sh" % tag)
        prof = json.loads(data.get(os.path.basename(env["SECCOMP_SRC"]), "{}"))
        allowed = set()
        for rule in prof.get("syscalls", []):
            if rule.get("action") == "SCMP_ACT_ALLOW" and not rule.get("args"):
                allowed.update(rule["names"])
        c.ok({"io_uring_setup", "io_uring_enter", "io_uring_register"} <= allowed,
             "%s: seccomp profile allows io_uring" % tag)


def gateway_deploy(by_kind):
    gws = [d for d in by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
           if d["metadata"]["name"] == "mdcast-gateway"]
    return gws[0] if gws else None


def check_gateway(c, by_kind, cms, tag, tuned_if, grp_lo, grp_hi, rt_lo, rt_hi):
    gw = gateway_deploy(by_kind)
    if not c.ok(gw is not None, "%s: gateway workload rendered" % tag):
        return None
    spec = pod_spec(gw)
    c.ok(gw["spec"].get("replicas", 1) == 1, "%s: one gateway pod per group (TGW: one source per group)" % tag)
    ctr = [k for k in spec["containers"] if k["name"] == "gateway"][0]
    ports = {p["name"]: p for p in ctr.get("ports", [])}
    # Guaranteed QoS: every container's requests equal its limits, for cpu and memory.
    for k in all_containers(spec):
        r = k.get("resources", {})
        for res in ("cpu", "memory"):
            c.ok(res in r.get("limits", {}) and r.get("requests", {}).get(res) == r["limits"][res],
                 "%s: gateway container %s: %s requests == limits (Guaranteed QoS)" % (tag, k["name"], res))
    c.ok(spec.get("securityContext", {}).get("runAsNonRoot") is True
         and spec["securityContext"].get("runAsUser", 0) != 0, "%s: gateway runs as non-root" % tag)
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        hg = (ctr.get(probe) or {}).get("httpGet") or {}
        c.equal(hg.get("path"), path, "%s: gateway %s path" % (tag, probe))
        c.equal(hg.get("port"), "metrics", "%s: gateway %s port" % (tag, probe))
    c.ok(bool(((ctr.get("lifecycle") or {}).get("preStop"))), "%s: gateway has a preStop hook" % tag)
    c.ok(spec.get("terminationGracePeriodSeconds", 30) >= 10,
         "%s: grace period leaves time for preStop and end of session" % tag)
    # The config: --config names a file mounted from an existing ConfigMap.
    args = ctr.get("command", []) + ctr.get("args", [])
    cfg_path = args[args.index("--config") + 1] if "--config" in args else None
    vols = {v["name"]: v for v in spec.get("volumes") or []}
    cfg = None
    for m in ctr.get("volumeMounts") or []:
        if cfg_path and cfg_path.startswith(m["mountPath"].rstrip("/") + "/"):
            cm_name = vols[m["name"]].get("configMap", {}).get("name")
            cm = cms.get((gw["metadata"]["namespace"], cm_name))
            key = cfg_path[len(m["mountPath"].rstrip("/")) + 1:]
            if c.ok(cm is not None and key in cm.get("data", {}),
                    "%s: --config %s comes from ConfigMap %s" % (tag, cfg_path, cm_name)):
                cfg = json.loads(cm["data"][key])
                c.ok(cm["data"][key] == read(os.path.join(K8S_BASE, "gateway", "gateway.json")),
                     "%s: ConfigMap config is deploy/k8s/base/gateway/gateway.json" % tag)
    if not c.ok(cfg is not None, "%s: gateway config found through --config" % tag):
        return None
    c.equal(cfg["egress"]["interface"], tuned_if, "%s: gateway sends on the attached interface" % tag)
    c.ok(cfg["egress"].get("payload_budget", 1400) <= 8472, "%s: payload budget keeps datagrams <= 8500" % tag)
    c.equal(ports.get("metrics", {}).get("containerPort"), port_of(cfg["metrics"]["listen"]),
            "%s: metrics containerPort == config metrics.listen" % tag)
    c.equal(ports.get("soupbintcp", {}).get("containerPort"), port_of(cfg["ingress"]["listen"]),
            "%s: soupbintcp containerPort == config ingress.listen" % tag)
    for ch in cfg["channels"]:
        c.equal(ports.get("retransmit", {}).get("containerPort"), ch["retransmit_port"],
                "%s: retransmit containerPort == channel %s retransmit_port" % (tag, ch["name"]))
        c.equal(ports.get("retransmit", {}).get("protocol"), "UDP", "%s: retransmit port is UDP" % tag)
        c.ok(rt_lo <= ch["retransmit_port"] <= rt_hi,
             "%s: retransmit port %d inside the security group's range" % (tag, ch["retransmit_port"]))
        groups = [g.split(":")[0] for g in ch["lines"]]
        c.equal(len(set(groups)), len(groups), "%s: lines A and B on distinct groups" % tag)
        for line in ch["lines"]:
            ip, port = line.rsplit(":", 1)
            c.ok(ip.startswith("239."), "%s: group %s in 239.0.0.0/8" % (tag, ip))
            c.ok(grp_lo <= int(port) <= grp_hi, "%s: group port %s inside the security group's range" % (tag, port))
    return {"obj": gw, "cfg": cfg}


def check_services(c, by_kind, workloads, tag, gw):
    svcs = by_kind.get("Service", [])
    c.ok(len(svcs) >= 2, "%s: Services for ingress and metrics" % tag)
    for s in svcs:
        sel = s["spec"].get("selector") or {}
        name = "%s: Service %s" % (tag, s["metadata"]["name"])
        targets = [w for w in workloads if w["metadata"].get("namespace") == s["metadata"].get("namespace")
                   and label_selected(sel, pod_meta(w).get("labels") or {})]
        if not c.ok(bool(targets), "%s selects a pod template" % name):
            continue
        for p in s["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            found = any((cp.get("name") == tp or cp.get("containerPort") == tp)
                        and cp.get("protocol", "TCP") == p.get("protocol", "TCP")
                        for w in targets for k in pod_spec(w)["containers"] for cp in k.get("ports", []))
            c.ok(found, "%s port %s targets a declared container port with its protocol" % (name, tp))
    if gw:
        names = {s["metadata"]["name"] for s in svcs}
        c.ok({"mdcast-gateway-ingress", "mdcast-gateway-metrics"} <= names, "%s: gateway ingress and metrics Services" % tag)


def check_consumer(c, by_kind, gw, tag):
    cons = [d for d in by_kind.get("Deployment", []) if d["metadata"]["name"] == "mdfeed-consumer"]
    if not c.ok(bool(cons), "%s: example consumer rendered" % tag) or not gw:
        return
    ctr = pod_spec(cons[0])["containers"][0]
    cmd = " ".join(ctr.get("command", []) + ctr.get("args", []))
    c.ok("mdfeed-tap" in cmd, "%s: consumer runs mdfeed-tap (libmdfeed)" % tag)
    for line in gw["cfg"]["channels"][0]["lines"]:
        c.ok(line in cmd, "%s: consumer joins the gateway's line %s" % (tag, line))
    c.ok("--interface %s" % gw["cfg"]["egress"]["interface"] in cmd, "%s: consumer joins on net1" % tag)


def main():
    dirs = sys.argv[1:] or [K8S_BASE] + sorted(
        os.path.dirname(p) for p in glob.glob(os.path.join(DEPLOY, "k8s", "overlays", "*", "kustomization.yaml")))
    c = Checks("check_k8s")
    for d in dirs:
        check_tree(c, d, render(d))
    c.finish()


if __name__ == "__main__":
    main()
