#!/usr/bin/env python3
"""deploy/docker/Dockerfile, checked without a container engine:

- a multi-stage build on Debian 12: a `build` stage that installs the project's build deps with
  scripts/deps.sh and builds with the project's CMake, a final stage on bookworm-slim;
- every binary copied from the build stage is an executable target of the CMake tree (the
  add_executable in that directory's CMakeLists.txt) and, where this build dir has built it,
  exists there; the eni-ipam bundle is installed with its CMake component and copied to the
  directory the node installer reads (ENI_IPAM_SRC in the DaemonSet);
- the runtime stage installs the Debian packages that provide every shared library the copied
  binaries of this build dir need (readelf NEEDED -> ldconfig -> dpkg -S);
- the final USER is non-root and is the runAsUser of the gateway pods.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys

from deploylib import DEPLOY, K8S_BASE, SOURCE_DIR, Checks, env_of, load_yaml_docs, pod_spec, read

DOCKERFILE = os.path.join(DEPLOY, "docker", "Dockerfile")
BUILD_DIR = os.environ.get("MDCAST_BUILD_DIR", "")
# Debian packages every bookworm-slim image has (Priority: required): need no install line.
IN_BASE_IMAGE = {"libc6", "zlib1g", "libgcc-s1"}


def instructions(text):
    """[(INSTRUCTION, args)] with continuations joined and comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            word, _, rest = cur.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def stages(instrs):
    st = []
    for ins, args in instrs:
        if ins == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            st.append({"image": m.group(1), "name": m.group(2), "instrs": []})
        elif st:
            st[-1]["instrs"].append((ins, args))
    return st


def cmake_executables(subdir):
    """Names of add_executable targets in SOURCE_DIR/subdir/CMakeLists.txt, or None if absent."""
    path = os.path.join(SOURCE_DIR, subdir, "CMakeLists.txt")
    if not os.path.exists(path):
        return None
    return set(re.findall(r"add_executable\(\s*([\w.-]+)", read(path)))


def needed_packages(binary):
    """Debian packages providing the shared libraries `binary` links directly, or None."""
    if not (shutil.which("readelf") and shutil.which("ldconfig") and shutil.which("dpkg")):
        return None
    dyn = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout
    sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    pkgs = {}
    for so in sonames:
        m = re.search(r"^\s*%s \(libc6,x86-64[^)]*\) => (\S+)" % re.escape(so), cache, re.M) or \
            re.search(r"^\s*%s \([^)]*\) => (\S+)" % re.escape(so), cache, re.M)
        if not m:
            pkgs[so] = None
            continue
        path = os.path.realpath(m.group(1))
        owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if owner.returncode != 0:  # dpkg records /lib/x86_64-linux-gnu/... on merged-/usr systems
            owner = subprocess.run(["dpkg", "-S", path.replace("/usr/lib/", "/lib/", 1)],
                                   capture_output=True, text=True)
        pkgs[so] = owner.stdout.split(":")[0] if owner.returncode == 0 else None
    return pkgs


def main():
    c = Checks("check_dockerfile")
    st = stages(instructions(read(DOCKERFILE)))
    c.ok(len(st) >= 2, "multi-stage build (%d stages)" % len(st))
    for s in st:
        c.ok(re.fullmatch(r"debian:bookworm(-slim)?(@sha256:[0-9a-f]{64})?", s["image"]) is not None,
             "stage %s is Debian 12 (bookworm): %s" % (s["name"], s["image"]))
    names = {s["name"]: s for s in st if s["name"]}
    build, final = names.get("build"), st[-1]
    if not c.ok(build is not None, "a stage named build"):
        c.finish()
    c.ok(final is not build and final["image"].startswith("debian:bookworm-slim"), "final stage on bookworm-slim")
    runs = " ".join(a for i, a in build["instrs"] if i == "RUN")
    c.ok("scripts/deps.sh build" in runs, "build stage installs deps with scripts/deps.sh build")
    c.ok(re.search(r"cmake -S /src -B (\S+)", runs) is not None and "cmake --build" in runs,
         "build stage configures and builds with the project's CMake")
    build_dir = re.search(r"cmake -S /src -B (\S+)", runs).group(1) if "cmake -S" in runs else "/build"
    m = re.search(r"cmake --install \S+ --component eni-ipam --prefix (\S+)", runs)
    c.ok(m is not None, "build stage installs the eni-ipam component (its self-contained bundle)")
    ipam_prefix = m.group(1) if m else None

    # Binaries copied from the build stage exist as CMake executable targets.
    copies = []
    for ins, args in final["instrs"]:
        if ins == "COPY" and args.startswith("--from=build"):
            parts = shlex.split(args)[1:]
            copies += [(src, parts[-1]) for src in parts[:-1]]
    c.ok(len(copies) >= 4, "runtime copies the gateway, two CLIs and the eni-ipam bundle")
    binaries = []
    for src, dest in copies:
        if ipam_prefix and src == ipam_prefix:
            continue
        c.ok(src.startswith(build_dir + "/"), "%s is copied from the CMake build dir %s" % (src, build_dir))
        rel = os.path.relpath(src, build_dir)
        subdir, exe = os.path.dirname(rel), os.path.basename(rel)
        targets = cmake_executables(subdir)
        if targets is None:
            print("note: %s/CMakeLists.txt not in this tree yet; %s not checked" % (subdir, exe))
            continue
        c.ok(exe in targets, "%s is an add_executable target of %s/CMakeLists.txt" % (exe, subdir))
        built = os.path.join(BUILD_DIR, rel)
        if BUILD_DIR and os.path.exists(built):
            c.ok(os.access(built, os.X_OK), "%s built in this build dir" % rel)
            binaries.append(built)
        else:
            print("note: %s not built in %s" % (rel, BUILD_DIR or "(no build dir)"))
    c.ok(any(s == ipam_prefix for s, _ in copies), "runtime copies the eni-ipam bundle %s" % ipam_prefix)

    # The node installer reads the bundle where the image puts it.
    ds = [o for o in load_yaml_docs(os.path.join(K8S_BASE, "node-installer", "daemonset.yaml"))
          if o.get("kind") == "DaemonSet"][0]
    dest = [d for s, d in copies if s == ipam_prefix]
    if dest:
        c.equal(env_of(pod_spec(ds)["containers"][0]).get("ENI_IPAM_SRC"), dest[0].rstrip("/") + "/bin",
                "installer's ENI_IPAM_SRC is the image's eni-ipam bin dir")
    c.ok(os.path.exists(os.path.join(SOURCE_DIR, "ipam", "CMakeLists.txt")) is False or
         "COMPONENT eni-ipam" in read(os.path.join(SOURCE_DIR, "ipam", "CMakeLists.txt")),
         "ipam/CMakeLists.txt defines the eni-ipam install component")

    # Runtime packages cover the shared libraries of the binaries built here.
    apt = " ".join(a for i, a in final["instrs"] if i == "RUN" and "apt-get install" in a)
    installed = set(re.findall(r"(?<![-\w])([a-z0-9][a-z0-9.+-]+)(?![-\w])", apt.split("apt-get install", 1)[-1]))
    for b in binaries:
        pkgs = needed_packages(b)
        if pkgs is None:
            print("note: readelf/ldconfig/dpkg missing; library packages not checked")
            break
        for so, pkg in pkgs.items():
            if pkg and pkg.startswith(("libasan", "libubsan", "libclang")):
                continue  # sanitizer runtimes of a sanitize build, not of the image's release build
            c.ok(pkg in installed or pkg in IN_BASE_IMAGE,
                 "%s needs %s from package %s: installed in the runtime stage" % (os.path.basename(b), so, pkg))

    # Non-root, and the same uid as the gateway pods.
    users = [a for i, a in final["instrs"] if i == "USER"]
    uid = users[-1].split(":")[0] if users else "root"
    c.ok(uid not in ("0", "root"), "final stage runs as a non-root USER (%s)" % uid)
    last_user = max(i for i, (ins, _) in enumerate(final["instrs"]) if ins == "USER") if users else -1
    c.ok(all(ins != "RUN" for ins, _ in final["instrs"][last_user + 1:]), "nothing RUNs after USER")
    gw = [o for o in load_yaml_docs(os.path.join(K8S_BASE, "gateway", "deployment.yaml"))
          if o.get("kind") == "Deployment"][0]
    c.equal(str(pod_spec(gw)["securityContext"].get("runAsUser")), uid, "gateway pods' runAsUser is the image's USER")
    ep = " ".join(a for i, a in final["instrs"] if i in ("ENTRYPOINT", "CMD"))
    c.ok("mdcast-gateway" in ep, "the image runs the gateway by default")
    ign = os.path.join(DEPLOY, "docker", "Dockerfile.dockerignore")
    c.ok(os.path.exists(ign) and ".git" in read(ign) and "build*" in read(ign),
         "Dockerfile.dockerignore keeps .git and build trees out of the context")
    c.finish()


if __name__ == "__main__":
    sys.exit(main())
