#!/usr/bin/env python3
"""Runs a CNI network configuration list the way libcni (and so Multus) runs it.

ADD runs the plugins in order, each one getting the previous one's result as `prevResult`;
the final result is cached. CHECK runs them in order and DEL in reverse order, each with the
cached result as `prevResult`. Each plugin receives its own entry of the list plus the list's
`name` and `cniVersion`, and the CNI_* variables. No cnitool exists in Debian 12, so the
testbed carries this small runner; it runs the JSON that deploy/ ships, with overrides given
on the command line only (--set, --set-json).

Usage: cni_run.py ADD|CHECK|DEL --conflist FILE --netns PATH --ifname IF --container-id ID
                  --cni-path DIRS --cache-dir DIR [--set key.path=VALUE] [--set-json key.path=JSON]
"""
import argparse
import copy
import json
import os
import subprocess
import sys

PLUGIN_TIMEOUT_S = 30


def apply_override(plugins, path, value):
    """Sets a dotted key in every plugin whose config has the key's first component."""
    keys = path.split(".")
    hits = 0
    for p in plugins:
        node = p
        if keys[0] not in node:
            continue
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
        hits += 1
    if hits == 0:
        sys.exit(f"cni_run: override '{path}' matches no plugin in the list")


def find_plugin(name, cni_path):
    for d in cni_path.split(":"):
        exe = os.path.join(d, name)
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
    sys.exit(f"cni_run: plugin '{name}' not found in CNI_PATH {cni_path}")


def run_plugin(verb, conf, env, cni_path):
    exe = find_plugin(conf["type"], cni_path)
    stdin = json.dumps(conf).encode()
    try:
        proc = subprocess.run([exe], input=stdin, env=env, stdout=subprocess.PIPE,
                              timeout=PLUGIN_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        sys.exit(f"cni_run: {conf['type']} {verb} did not answer within {PLUGIN_TIMEOUT_S} s")
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        sys.stderr.write(f"cni_run: {conf['type']} {verb} failed (exit {proc.returncode}): {out}\n")
        sys.exit(1)
    if verb == "ADD":
        try:
            return json.loads(out)
        except json.JSONDecodeError:
            sys.exit(f"cni_run: {conf['type']} ADD printed no JSON result: {out!r}")
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("verb", choices=["ADD", "CHECK", "DEL"])
    ap.add_argument("--conflist", required=True)
    ap.add_argument("--netns", required=True)
    ap.add_argument("--ifname", required=True)
    ap.add_argument("--container-id", required=True)
    ap.add_argument("--cni-path", required=True)
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--set", action="append", default=[], help="key.path=STRING")
    ap.add_argument("--set-json", action="append", default=[], help="key.path=JSON")
    args = ap.parse_args()

    with open(args.conflist, encoding="utf-8") as f:
        conflist = json.load(f)
    for key in ("cniVersion", "name", "plugins"):
        if key not in conflist:
            sys.exit(f"cni_run: {args.conflist} has no '{key}' (not a plugin list)")
    plugins = copy.deepcopy(conflist["plugins"])
    for item in args.set:
        k, _, v = item.partition("=")
        apply_override(plugins, k, v)
    for item in args.set_json:
        k, _, v = item.partition("=")
        apply_override(plugins, k, json.loads(v))

    env = dict(os.environ, CNI_COMMAND=args.verb, CNI_CONTAINERID=args.container_id,
               CNI_NETNS=args.netns, CNI_IFNAME=args.ifname, CNI_PATH=args.cni_path, CNI_ARGS="")
    os.makedirs(args.cache_dir, exist_ok=True)
    cache = os.path.join(args.cache_dir, f"{conflist['name']}-{args.container_id}-{args.ifname}.json")

    def plugin_conf(p, prev):
        conf = dict(p, name=conflist["name"], cniVersion=conflist["cniVersion"])
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    if args.verb == "ADD":
        prev = None
        for p in plugins:
            prev = run_plugin("ADD", plugin_conf(p, prev), env, args.cni_path)
        with open(cache, "w", encoding="utf-8") as f:
            json.dump(prev, f)
        print(json.dumps(prev))
        return
    cached = None
    if os.path.exists(cache):
        with open(cache, encoding="utf-8") as f:
            cached = json.load(f)
    elif args.verb == "CHECK":
        sys.exit("cni_run: CHECK needs the cached ADD result, and there is none")
    order = plugins if args.verb == "CHECK" else list(reversed(plugins))
    for p in order:
        run_plugin(args.verb, plugin_conf(p, cached), env, args.cni_path)
    if args.verb == "DEL" and os.path.exists(cache):
        os.unlink(cache)


if __name__ == "__main__":
    main()
