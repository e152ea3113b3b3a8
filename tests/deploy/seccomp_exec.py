#!/usr/bin/env python3
"""Runs a command under an OCI seccomp profile, the way runc applies a pod's Localhost profile:
the profile's default action, every named syscall this kernel knows with its action, argument
conditions (SCMP_CMP_MASKED_EQ takes `value` as the mask and `valueTwo` as the expected value,
as runc passes them), loaded with no_new_privs just before execve. For tests only; it uses the
system's libseccomp (libseccomp2, a dependency of apt on Debian) through ctypes.

Usage: seccomp_exec.py PROFILE.json [--drop NAME ...] -- COMMAND [ARGS...]
  --drop NAME   leave NAME out of the profile's allow rules (to show what the profile buys)
Exit status: the command's, or 125 when the profile cannot be loaded (77 without libseccomp).
"""
import ctypes
import ctypes.util
import json
import os
import sys

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_LOG = 0x7FFC0000
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
       "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def action(name, errno_ret):
    if name == "SCMP_ACT_ALLOW":
        return SCMP_ACT_ALLOW
    if name == "SCMP_ACT_LOG":
        return SCMP_ACT_LOG
    if name == "SCMP_ACT_ERRNO":
        return 0x00050000 | (errno_ret & 0xFFFF)
    raise SystemExit("seccomp_exec: action %s not supported here" % name)


def die(msg, code=125):
    sys.stderr.write("seccomp_exec: %s\n" % msg)
    sys.exit(code)


def main():
    argv = sys.argv[1:]
    if "--" not in argv or len(argv) < 3:
        die(__doc__.strip().splitlines()[-4], 2)
    sep = argv.index("--")
    opts, cmd = argv[:sep], argv[sep + 1:]
    profile_path, drop = opts[0], set()
    i = 1
    while i < len(opts):
        if opts[i] == "--drop" and i + 1 < len(opts):
            drop.add(opts[i + 1])
            i += 2
        else:
            die("unknown option %r" % opts[i], 2)
    lib_name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(lib_name, use_errno=True)
    except OSError:
        print("SKIP: libseccomp not found")
        sys.exit(77)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]

    prof = json.load(open(profile_path))
    default = action(prof["defaultAction"], prof.get("defaultErrnoRet", 1))
    ctx = lib.seccomp_init(default)
    if not ctx:
        die("seccomp_init failed")
    rules = 0
    for rule in prof.get("syscalls", []):
        act = action(rule["action"], rule.get("errnoRet", 1))
        conds = rule.get("args") or []
        arr = (ArgCmp * max(1, len(conds)))()
        for k, a in enumerate(conds):
            if a["op"] == "SCMP_CMP_MASKED_EQ":
                arr[k] = ArgCmp(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0))
            else:
                arr[k] = ArgCmp(a["index"], OPS[a["op"]], a["value"], 0)
        for name in rule["names"]:
            if name in drop:
                continue
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                continue  # not a syscall of this architecture; runc skips these too
            rc = lib.seccomp_rule_add_array(ctx, act, nr, len(conds), arr)
            if rc < 0:
                die("rule for %s: %s" % (name, os.strerror(-rc)))
            rules += 1
    rc = lib.seccomp_load(ctx)
    if rc < 0:
        die("seccomp_load: %s" % os.strerror(-rc))
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        die("exec %s: %s" % (cmd[0], e), 126)


if __name__ == "__main__":
    main()
