#!/usr/bin/env python3
"""docs/DEPLOY.md and deploy/ agree: every deploy/ path the walkthrough names exists, every file
under deploy/ is named by the walkthrough or pulled in by a kustomization, and the
troubleshooting section covers the failure modes issue 8 lists."""
import os
import re

from deploylib import DEPLOY, SOURCE_DIR, Checks, load_yaml_docs, read

DOC = os.path.join(SOURCE_DIR, "docs", "DEPLOY.md")
FAILURE_MODES = {
    "multicast leaving via eth0": r"\*\*Multicast leaves through `eth0`",
    "IGMPv3 reports ignored": r"\*\*IGMPv3 reports ignored",
    "ENI taken over by the VPC CNI": r"\*\*The ENI was taken over by the VPC CNI",
    "ENI returning as net1": r"\*\*The ENI came back to the node as `net1`",
    "fragments dropped": r"\*\*Fragments dropped",
    "io_uring refused by seccomp": r"\*\*io_uring refused by seccomp",
    "TGW quotas": r"\*\*TGW quotas.*one source per group.*100 members.*1 Gbps",
}


def main():
    c = Checks("check_docs")
    doc = read(DOC)
    named = set(re.findall(r"deploy/(?:aws|eks|k8s|docker|vm)(?:/[\w.@-]+)*[\w@]", doc))
    for p in sorted(named):
        c.ok(os.path.exists(os.path.join(SOURCE_DIR, p)), "DEPLOY.md names %s, which exists" % p)
    # Files pulled in by kustomizations count as documented through their kustomization.
    pulled = set()
    for root, _, files in os.walk(DEPLOY):
        if "kustomization.yaml" in files:
            k = load_yaml_docs(os.path.join(root, "kustomization.yaml"))[0]
            refs = list(k.get("resources", []))
            for g in k.get("configMapGenerator", []):
                refs += g.get("files", [])
            for r in refs:
                pulled.add(os.path.normpath(os.path.join(root, r)))
    for root, _, files in os.walk(DEPLOY):
        for f in files:
            full = os.path.join(root, f)
            rel = os.path.relpath(full, SOURCE_DIR)
            if f in (".yamllint", "kustomization.yaml", "Dockerfile.dockerignore"):
                continue
            c.ok(rel in named or full in pulled or any(rel.startswith(n.rstrip("/") + "/") for n in named),
                 "%s is named in DEPLOY.md or used by a kustomization" % rel)
    trouble = doc.split("## Troubleshooting", 1)[-1]
    c.ok("## Troubleshooting" in doc, "DEPLOY.md has a troubleshooting section")
    for mode, pattern in FAILURE_MODES.items():
        c.ok(re.search(pattern, trouble, re.S | re.I) is not None, "troubleshooting covers: %s" % mode)
    steps = re.findall(r"^## (\d+)\. ", doc, re.M)
    c.equal([int(s) for s in steps], list(range(len(steps))), "walkthrough steps numbered in order")
    c.finish()


if __name__ == "__main__":
    main()
