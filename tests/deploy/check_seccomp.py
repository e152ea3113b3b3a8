#!/usr/bin/env python3
"""The seccomp profile the gateway and consumer pods run under
(deploy/k8s/base/seccomp/mdcast-gateway.json): an allow-list (anything unlisted fails with
ENOSYS, so libraries fall back as on an old kernel), which allows io_uring — containerd 2.x's
default profile does not, and that is why the project ships this one — and every syscall the
gateway's event loop, threads and sockets use, and still refuses what a container never needs
(namespaces, mounts, module loading, ptrace, bpf, keyrings, kexec). clone is allowed only
without namespace flags, clone3 (whose flags seccomp cannot see) is left to ENOSYS so glibc
falls back to clone."""
import json
import os

from deploylib import K8S_BASE, Checks

PROFILE = os.path.join(K8S_BASE, "seccomp", "mdcast-gateway.json")
NEEDED = """io_uring_setup io_uring_enter io_uring_register
    socket bind connect listen accept4 sendto sendmsg sendmmsg recvfrom recvmsg recvmmsg
    setsockopt getsockopt getsockname getpeername shutdown epoll_create1 epoll_ctl epoll_wait
    epoll_pwait eventfd2 timerfd_create timerfd_settime read write readv writev pread64 openat
    close fstat newfstatat statx mmap munmap mprotect madvise mremap brk futex rt_sigaction
    rt_sigprocmask rt_sigreturn sigaltstack set_robust_list rseq set_tid_address getrandom
    clock_gettime clock_nanosleep nanosleep exit exit_group tgkill getpid gettid uname prlimit64
    sched_getaffinity sched_yield pipe2 dup3 fcntl ioctl lseek poll ppoll execve
    arch_prctl membarrier""".split()
REFUSED = """mount umount2 unshare setns pivot_root chroot ptrace bpf perf_event_open init_module
    finit_module delete_module kexec_load kexec_file_load reboot swapon swapoff keyctl add_key
    request_key userfaultfd open_by_handle_at process_vm_readv process_vm_writev clone3
    settimeofday clock_settime acct quotactl syslog fsopen fsmount move_mount open_tree""".split()
CLONE_NS_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET


def main():
    c = Checks("check_seccomp")
    prof = json.load(open(PROFILE))
    c.equal(prof.get("defaultAction"), "SCMP_ACT_ERRNO", "default action refuses")
    c.equal(prof.get("defaultErrnoRet"), 38, "unlisted syscalls fail with ENOSYS")
    c.ok({"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"} <= set(prof.get("architectures", [])),
         "x86_64 and arm64 (Graviton) nodes")
    plain, conditional, seen = set(), {}, []
    for rule in prof["syscalls"]:
        seen += rule["names"]
        if rule["action"] != "SCMP_ACT_ALLOW":
            continue
        if rule.get("args"):
            for n in rule["names"]:
                conditional[n] = rule["args"]
        else:
            plain.update(rule["names"])
    c.equal(len(seen), len(set(seen)), "each syscall named once")
    for n in NEEDED:
        c.ok(n in plain, "allows %s" % n)
    for n in REFUSED:
        c.ok(n not in plain and n not in conditional, "refuses %s" % n)
    args = conditional.get("clone", [])
    c.ok(len(args) == 1 and args[0] == {"index": 0, "value": CLONE_NS_FLAGS, "valueTwo": 0,
                                        "op": "SCMP_CMP_MASKED_EQ"},
         "clone allowed only without namespace flags: %r" % args)
    c.ok("clone" not in plain, "clone is not allowed unconditionally")
    c.finish()


if __name__ == "__main__":
    main()
