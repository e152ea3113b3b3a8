"""Shared helpers for the deploy/ checks (Python 3 standard library + python3-yaml)."""
import json
import os
import sys

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    print("SKIP: needs python3-yaml (scripts/deps.sh installs it)")
    sys.exit(77)

SKIP = 77
SOURCE_DIR = os.environ.get("MDCAST_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(SOURCE_DIR, "deploy")
K8S_BASE = os.path.join(DEPLOY, "k8s", "base")
NAD_JSON = os.path.join(K8S_BASE, "hostdevice-multicast-network.json")
NAD_NAME = "hostdevice-multicast-network"
MULTUS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
NODE_LABEL = ("mdcast.io/multicast", "true")
ATTACH_LABEL = ("mdcast.io/multicast-attachment", "true")
KUBELET_SECCOMP_ROOT = "/var/lib/kubelet/seccomp"
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


class Checks:
    """Collects failures so one run reports all of them, then exits 1 if any."""

    def __init__(self, name):
        self.name = name
        self.failures = []
        self.passed = 0

    def ok(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failures.append(what)
            print("FAIL: " + what, file=sys.stderr)
        return cond

    def equal(self, got, want, what):
        return self.ok(got == want, "%s: got %r, want %r" % (what, got, want))

    def finish(self):
        if self.failures:
            print("%s: %d checks failed, %d passed" % (self.name, len(self.failures), self.passed))
            sys.exit(1)
        print("%s: all %d checks passed" % (self.name, self.passed))
        sys.exit(0)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def load_yaml_docs(path_or_text, is_text=False):
    text = path_or_text if is_text else read(path_or_text)
    return [d for d in yaml.safe_load_all(text) if d is not None]


def load_json(path):
    return json.loads(read(path))


def pod_spec(obj):
    """The pod template's spec of a workload object, or None."""
    if obj.get("kind") in POD_KINDS:
        return obj["spec"]["template"]["spec"]
    if obj.get("kind") == "Pod":
        return obj["spec"]
    return None


def pod_meta(obj):
    if obj.get("kind") in POD_KINDS:
        return obj["spec"]["template"].get("metadata", {})
    return obj.get("metadata", {})


def multus_networks(meta):
    """[(namespace or None, name, interface or None)] from the Multus annotation."""
    ann = (meta.get("annotations") or {}).get(MULTUS_ANNOTATION)
    if not ann:
        return []
    ann = ann.strip()
    out = []
    if ann.startswith("["):
        for sel in json.loads(ann):
            out.append((sel.get("namespace"), sel["name"], sel.get("interface")))
    else:
        for item in ann.split(","):
            item = item.strip()
            ns, _, rest = item.rpartition("/")
            name, _, ifname = rest.partition("@")
            out.append((ns or None, name, ifname or None))
    return out


def all_containers(spec):
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def port_of(listen):
    """'0.0.0.0:7001' -> 7001."""
    return int(listen.rsplit(":", 1)[1])
