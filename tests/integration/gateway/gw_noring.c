/* Runs a program with io_uring refused by a seccomp filter, the way containerd 2.x's default
 * profile refuses it: io_uring_setup, io_uring_enter and io_uring_register fail with EPERM.
 *   gw_noring PROGRAM [ARGS...]
 * Raw BPF via prctl (no libseccomp needed). */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "unsupported architecture"
#endif

#define DENY(nr)                                                                                   \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),                                               \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gw_noring PROGRAM [ARGS...]\n");
        return 2;
    }
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        DENY(__NR_io_uring_setup),
        DENY(__NR_io_uring_enter),
        DENY(__NR_io_uring_register),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "gw_noring: seccomp: %s\n", strerror(errno));
        return 1;
    }
    /* Proof that the filter holds before handing over. */
    if (syscall(__NR_io_uring_setup, 1, NULL) != -1 || errno != EPERM) {
        fprintf(stderr, "gw_noring: io_uring_setup was not refused\n");
        return 1;
    }
    execv(argv[1], argv + 1);
    fprintf(stderr, "gw_noring: exec %s: %s\n", argv[1], strerror(errno));
    return 127;
}
