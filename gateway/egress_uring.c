/* io_uring egress, used the way it pays (DESIGN.md "Egress and batching"):
 * - connected UDP sockets and IORING_OP_SEND (no msghdr, no per-datagram address),
 * - the sockets registered as fixed files (no fd table look-up and refcount per send),
 * - SINGLE_ISSUER | DEFER_TASKRUN where the kernel has them (6.1+), falling back to
 *   COOP_TASKRUN and then to plain setup flags,
 * - one io_uring_submit() per flush for every channel and line,
 * - completions reaped from the CQ ring right after the submit (UDP sends to a socket with
 *   buffer room complete inline, so this costs no syscall); the eventfd that wakes the libuv
 *   loop is switched off during the submit (IORING_CQ_EVENTFD_DISABLED) and on again only
 *   while sends remain in flight, so inline completions cause no wake-up and no read().
 * A send's buffer (gw_packet_t) is released only from its CQE. ENOBUFS/EAGAIN and short
 * sends are resubmitted, counted in send_retries, up to GW_SEND_MAX_ATTEMPTS.
 *
 * Registered buffers are not used: IORING_OP_SEND takes no fixed buffer in liburing 2.3 /
 * the kernels we target; only IORING_OP_SEND_ZC does, and zero-copy for datagrams of at most
 * 1400 bytes costs page pinning and a second notification CQE per send. */
#include "gateway.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define URING_ENTRIES 256
#define URING_SLOTS   512 /* the CQ size: in-flight sends never overflow the CQ */

typedef struct {
    struct io_uring ring;
    bool ring_ok;
    int efd;
    uv_poll_t poll;
    bool poll_ok;
    bool defer;
    gw_send_t slots[URING_SLOTS];
    uint32_t free_slots[URING_SLOTS];
    unsigned nfree;
    uint32_t retry[URING_SLOTS]; /* slots to resubmit after a reap */
    unsigned nretry;
} uring_t;

static void on_eventfd(uv_poll_t *h, int status, int events);

static int setup_ring(uring_t *u)
{
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int rc = -EINVAL;
    /* MDCAST_URING_SETUP=coop|plain skips the stronger flag sets (troubleshooting, benchmarks). */
    const char *force = getenv("MDCAST_URING_SETUP");
    size_t first = force && strcmp(force, "coop") == 0 ? 1 : force && strcmp(force, "plain") == 0 ? 2 : 0;
    for (size_t i = first; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = flag_sets[i];
        p.flags |= IORING_SETUP_CQSIZE;
        p.cq_entries = URING_SLOTS;
        rc = io_uring_queue_init_params(URING_ENTRIES, &u->ring, &p);
        if (rc == 0) {
            u->defer = (flag_sets[i] & IORING_SETUP_DEFER_TASKRUN) != 0;
            gw_log(GW_LOG_INFO, "io_uring set up with flags 0x%x (defer_taskrun=%d)", p.flags,
                   u->defer);
            return 0;
        }
        if (rc != -EINVAL)
            return rc; /* EPERM (seccomp, io_uring_disabled), ENOSYS, ENOMEM: give up */
    }
    return rc;
}

static int check_opcodes(uring_t *u)
{
    struct io_uring_probe *probe = io_uring_get_probe_ring(&u->ring);
    if (!probe)
        return -ENOSYS;
    bool ok = io_uring_opcode_supported(probe, IORING_OP_SEND);
    io_uring_free_probe(probe);
    return ok ? 0 : -EOPNOTSUPP;
}

static void free_state(uv_handle_t *h)
{
    uring_t *u = h->data;
    if (u->efd >= 0)
        close(u->efd);
    free(u);
}

static void uring_close(gw_egress_t *eg)
{
    uring_t *u = eg->backend;
    if (!u)
        return;
    eg->backend = NULL;
    u->poll.data = u; /* free_state() finds the state through the handle */
    if (u->ring_ok)
        io_uring_queue_exit(&u->ring);
    if (u->poll_ok) {
        uv_poll_stop(&u->poll);
        uv_close((uv_handle_t *)&u->poll, free_state);
    } else {
        free_state((uv_handle_t *)&u->poll);
    }
}

static int uring_init(gw_egress_t *eg)
{
    uring_t *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->efd = -1;
    eg->backend = u;
    int rc = setup_ring(u);
    if (rc)
        goto fail;
    u->ring_ok = true;
    if ((rc = check_opcodes(u)) != 0)
        goto fail;
    if ((rc = io_uring_register_files(&u->ring, eg->fds, eg->nfds)) != 0)
        goto fail;
    u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (u->efd < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = io_uring_register_eventfd(&u->ring, u->efd)) != 0)
        goto fail;
    if ((rc = uv_poll_init(eg->loop, &u->poll, u->efd)) != 0)
        goto fail;
    u->poll_ok = true;
    u->poll.data = eg;
    if ((rc = uv_poll_start(&u->poll, UV_READABLE, on_eventfd)) != 0)
        goto fail;
    u->poll.data = eg;
    for (unsigned i = 0; i < URING_SLOTS; i++)
        u->free_slots[i] = URING_SLOTS - 1 - i;
    u->nfree = URING_SLOTS;
    return 0;
fail:
    uring_close(eg);
    return rc;
}

/* Queues slot `s` as an SQE; the caller guarantees an SQE is free. */
static void prep_slot(uring_t *u, uint32_t s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    const gw_send_t *snd = &u->slots[s];
    io_uring_prep_send(sqe, snd->sock, snd->pkt->buf, snd->pkt->len, 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, s);
}

/* Processes every CQE there is; failed-but-retryable sends go to u->retry. */
static void reap(gw_egress_t *eg, uring_t *u)
{
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    eg->now_ns = uv_hrtime();
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        uint32_t s = (uint32_t)cqe->user_data;
        int res = cqe->res;
        gw_send_t *snd = &u->slots[s];
        seen++;
        bool short_send = res >= 0 && (uint32_t)res < snd->pkt->len;
        if ((short_send || gw_send_should_retry(res)) && ++snd->attempts < GW_SEND_MAX_ATTEMPTS) {
            eg->retries++;
            gw_metrics.send_retries++;
            u->retry[u->nretry++] = s;
            continue;
        }
        if (short_send)
            res = -EMSGSIZE;
        eg->inflight--;
        gw_egress_complete(eg, snd, res);
        u->free_slots[u->nfree++] = s;
    }
    io_uring_cq_advance(&u->ring, seen);
}

/* Submits what is queued (plus any retries) and reaps; waits for `wait_nr` completions. */
static void submit_and_reap(gw_egress_t *eg, uring_t *u, unsigned wait_nr)
{
    for (int round = 0; round < GW_SEND_MAX_ATTEMPTS; round++) {
        int rc = wait_nr ? io_uring_submit_and_wait(&u->ring, wait_nr) : io_uring_submit(&u->ring);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            gw_log(GW_LOG_ERROR, "io_uring_submit: %s", strerror(-rc));
        reap(eg, u);
        if (u->nretry == 0)
            return;
        /* Resend what ENOBUFS/EAGAIN refused, in order, as one more submission. */
        unsigned n = u->nretry;
        u->nretry = 0;
        for (unsigned i = 0; i < n; i++)
            prep_slot(u, u->retry[i]);
        wait_nr = 0;
    }
}

static void enable_wakeups(gw_egress_t *eg, uring_t *u)
{
    if (eg->inflight == 0)
        return;
    /* Sends still in flight (the socket was full): let their CQEs wake the loop. Completions
     * that raced with the switch are collected right away. */
    io_uring_cq_eventfd_toggle(&u->ring, true);
    if (u->defer)
        (void)io_uring_get_events(&u->ring);
    reap(eg, u);
    if (u->nretry)
        submit_and_reap(eg, u, 0);
}

static int uring_submit(gw_egress_t *eg, const gw_send_t *sends, unsigned n)
{
    uring_t *u = eg->backend;
    io_uring_cq_eventfd_toggle(&u->ring, false);
    for (unsigned i = 0; i < n; i++) {
        /* Out of slots or SQEs: submit what we have and wait for one completion. */
        while (u->nfree == 0 || io_uring_sq_space_left(&u->ring) <= u->nretry)
            submit_and_reap(eg, u, u->nfree == 0 ? 1 : 0);
        uint32_t s = u->free_slots[--u->nfree];
        u->slots[s] = sends[i];
        u->slots[s].attempts = 0;
        eg->inflight++;
        prep_slot(u, s);
    }
    submit_and_reap(eg, u, 0);
    enable_wakeups(eg, u);
    return 0;
}

static void on_eventfd(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    gw_egress_t *eg = h->data;
    uring_t *u = eg->backend;
    uint64_t v;
    if (read(u->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        gw_log(GW_LOG_WARN, "eventfd read: %s", strerror(errno));
    if (u->defer)
        (void)io_uring_get_events(&u->ring); /* runs the deferred task work: posts the CQEs */
    reap(eg, u);
    if (u->nretry)
        submit_and_reap(eg, u, 0);
}

static void uring_drain(gw_egress_t *eg, int timeout_ms)
{
    uring_t *u = eg->backend;
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    while (eg->inflight > 0 && uv_hrtime() < deadline) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
        struct io_uring_cqe *cqe;
        (void)io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        reap(eg, u);
        if (u->nretry)
            submit_and_reap(eg, u, 0);
    }
    if (eg->inflight > 0)
        gw_log(GW_LOG_WARN, "io_uring: %u sends still in flight after %d ms", eg->inflight,
               timeout_ms);
}

const gw_egress_ops_t gw_egress_uring_ops = {
    .name = "io_uring",
    .init = uring_init,
    .submit = uring_submit,
    .drain = uring_drain,
    .close = uring_close,
};
