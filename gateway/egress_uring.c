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
 * Order on the wire: a send that finds its socket buffer full does not fail in io_uring, it
 * waits (internal poll) and completes later, while a later SQE for the same socket may find
 * room and overtake it; receivers would see a gap and a late packet. sendmmsg cannot reorder
 * (it stops at the first failure). So each socket is flow-controlled here: a send is issued
 * only when the socket buffer has room for it (SO_SNDBUF minus SIOCOUTQ, one ioctl per socket
 * per flush, with a conservative per-datagram overhead) and no earlier send of that socket is
 * still pending; otherwise it waits, in order, in the socket's backlog until POLLOUT (libuv)
 * or the pending completion (eventfd). Deferred sends are counted in congestion_waits.
 *
 * Zero copy (egress.zerocopy, packets of at least eg->zc_min_len bytes): IORING_OP_SEND_ZC,
 * on the packet pool registered as one fixed buffer (egress.registered_buffers) so the pages
 * are pinned once at start instead of per send. IORING_OP_SEND takes no fixed buffer, so the
 * pool is registered only when zero copy may be used. A SEND_ZC completes twice: first the
 * result (flag IORING_CQE_F_MORE announces a notification), then the notification
 * (IORING_CQE_F_NOTIF, same user_data) once the kernel no longer reads the buffer — after a
 * qdisc or the NIC let go of it. The result is accounted as the send's completion (metrics,
 * flow control, retries), but the packet buffer is handed back only with the notification:
 * until then the slot keeps an extra packet reference. IORING_SEND_ZC_REPORT_USAGE makes the
 * notification say whether the kernel copied after all (counted in zc_copied). */
#include "gateway.h"

#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define URING_ENTRIES 256
#define URING_SLOTS   512 /* in-flight sends; the CQ holds two CQEs for each (zero copy) */
/* Kernel memory charged per datagram beyond its payload (sk_buff, shared info, headroom and
 * slab rounding): an upper estimate, so the room check errs on the side of waiting. */
#define SKB_OVERHEAD 1024
#define BACKLOG_CAP  4096 /* per socket; more sends than the pool holds packets x lines */
#define ZC_PAGE      4096u
/* Kernel 6.2+ UAPI, missing from liburing 2.3's copy of io_uring.h. */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

typedef struct uring uring_t;

/* Flow control of one socket. */
typedef struct {
    uring_t *u;
    gw_egress_t *eg;
    unsigned sock;
    long sndbuf;        /* SO_SNDBUF as the kernel applies it */
    long room;          /* estimate for the flush `gen` */
    unsigned gen;       /* flush generation the room estimate belongs to */
    unsigned pending;   /* sends of this socket in io_uring (prepared, not completed) */
    unsigned carried;   /* of those, still pending when this flush began */
    gw_send_t *backlog; /* FIFO of deferred sends, allocated on first use */
    unsigned bhead, blen;
    uv_poll_t writable;
    bool writable_init, writable_on;
} sock_fc_t;

struct uring {
    gw_egress_t *eg;
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
    /* Zero-copy notifications still due for the slot: +1 per result CQE flagged F_MORE, -1
     * per notification. Signed, so the count is right whichever of the two is reaped first. */
    int16_t notifs[URING_SLOTS];
    bool done[URING_SLOTS]; /* the slot's send has its final result */
    bool zc_early_release;  /* MDCAST_TEST_ZC_EARLY_RELEASE=1: a deliberate bug (tests) */
    unsigned nretry;
    unsigned gen;         /* bumped at every flush */
    unsigned backlogged;  /* sends waiting in socket backlogs */
    bool kick;            /* a socket became sendable during a reap: drain the backlogs */
    bool no_flow_control; /* MDCAST_URING_FLOW_CONTROL=off: tests of the async path only */
    int open_handles;     /* eventfd poll + socket pollers still to close */
    sock_fc_t fc[GW_MAX_SOCKETS];
};

static void on_eventfd(uv_poll_t *h, int status, int events);
static void submit_and_reap(gw_egress_t *eg, uring_t *u, unsigned wait_nr);
static void enable_wakeups(gw_egress_t *eg, uring_t *u);

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
    size_t first = force && strcmp(force, "coop") == 0    ? 1
                   : force && strcmp(force, "plain") == 0 ? 2
                                                          : 0;
    for (size_t i = first; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = flag_sets[i];
        p.flags |= IORING_SETUP_CQSIZE;
        p.cq_entries = 2 * URING_SLOTS; /* a zero-copy send posts two CQEs */
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

/* Zero copy needs IORING_OP_SEND_ZC (6.0+); without it every packet goes as a plain send.
 * The pool is registered only for zero copy: a failed registration (RLIMIT_MEMLOCK) leaves
 * SEND_ZC pinning the pages per send. */
static void setup_zerocopy(gw_egress_t *eg, uring_t *u)
{
    eg->fixed_bufs = false;
    if (eg->zc_min_len == UINT32_MAX)
        return;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&u->ring);
    bool ok = probe && io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
    if (probe)
        io_uring_free_probe(probe);
    if (!ok) {
        gw_log(GW_LOG_WARN, "io_uring: IORING_OP_SEND_ZC not supported; zero copy off");
        eg->zc_min_len = UINT32_MAX;
        return;
    }
    if (eg->want_fixed_bufs) {
        struct iovec iov = {.iov_base = eg->pool->mem, .iov_len = eg->pool->stride * eg->pool->n};
        int rc = io_uring_register_buffers(&u->ring, &iov, 1);
        if (rc == 0)
            eg->fixed_bufs = true;
        else
            gw_log(GW_LOG_WARN,
                   "io_uring: registering %zu bytes of packet buffers: %s; zero "
                   "copy pins pages per send",
                   iov.iov_len, strerror(-rc));
    }
    const char *early = getenv("MDCAST_TEST_ZC_EARLY_RELEASE");
    u->zc_early_release = early && strcmp(early, "1") == 0;
    if (u->zc_early_release)
        gw_log(GW_LOG_WARN, "io_uring: TEST ONLY: zero-copy buffers released before the "
                            "notification (MDCAST_TEST_ZC_EARLY_RELEASE)");
}

static void free_state(uring_t *u)
{
    for (unsigned i = 0; i < GW_MAX_SOCKETS; i++)
        free(u->fc[i].backlog);
    if (u->efd >= 0)
        close(u->efd);
    free(u);
}

/* libuv runs close callbacks in its own order: free after the last one. */
static void on_handle_closed(uv_handle_t *h)
{
    uring_t *u = h->data;
    if (--u->open_handles == 0)
        free_state(u);
}

static void uring_close(gw_egress_t *eg)
{
    uring_t *u = eg->backend;
    if (!u)
        return;
    eg->backend = NULL;
    /* Sends still in a backlog are dropped with the gateway: release their buffers. */
    for (unsigned i = 0; i < GW_MAX_SOCKETS; i++) {
        sock_fc_t *fc = &u->fc[i];
        for (; fc->blen; fc->blen--, fc->bhead = (fc->bhead + 1) % BACKLOG_CAP) {
            gw_metrics.send_errors++;
            if (--fc->backlog[fc->bhead].pkt->refs == 0)
                gw_pool_put(eg->pool, fc->backlog[fc->bhead].pkt);
        }
    }
    if (u->ring_ok)
        io_uring_queue_exit(&u->ring);
    u->open_handles = 1; /* this function's own reference */
    if (u->poll_ok) {
        u->open_handles++;
        u->poll.data = u;
        uv_poll_stop(&u->poll);
        uv_close((uv_handle_t *)&u->poll, on_handle_closed);
    }
    for (unsigned i = 0; i < GW_MAX_SOCKETS; i++)
        if (u->fc[i].writable_init) {
            u->open_handles++;
            u->fc[i].writable.data = u;
            uv_poll_stop(&u->fc[i].writable);
            uv_close((uv_handle_t *)&u->fc[i].writable, on_handle_closed);
        }
    if (--u->open_handles == 0)
        free_state(u);
}

static int uring_init(gw_egress_t *eg)
{
    uring_t *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->efd = -1;
    u->eg = eg;
    eg->backend = u;
    int rc = setup_ring(u);
    if (rc)
        goto fail;
    u->ring_ok = true;
    if ((rc = check_opcodes(u)) != 0)
        goto fail;
    if ((rc = io_uring_register_files(&u->ring, eg->fds, eg->nfds)) != 0)
        goto fail;
    setup_zerocopy(eg, u);
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
    /* Off only to exercise io_uring's own waiting (and the eventfd path) in tests: without
     * flow control a full socket buffer can reorder datagrams. */
    const char *fcenv = getenv("MDCAST_URING_FLOW_CONTROL");
    u->no_flow_control = fcenv && strcmp(fcenv, "off") == 0;
    if (u->no_flow_control)
        gw_log(GW_LOG_WARN, "io_uring: per-socket flow control off (MDCAST_URING_FLOW_CONTROL)");
    for (unsigned i = 0; i < eg->nfds; i++) {
        sock_fc_t *fc = &u->fc[i];
        int v = 0;
        socklen_t vl = sizeof(v);
        fc->u = u;
        fc->eg = eg;
        fc->sock = i;
        if (eg->fds[i] >= 0 && getsockopt(eg->fds[i], SOL_SOCKET, SO_SNDBUF, &v, &vl) == 0)
            fc->sndbuf = v;
    }
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
    gw_egress_t *eg = u->eg;
    if (snd->pkt->len < eg->zc_min_len) {
        io_uring_prep_send(sqe, snd->sock, snd->pkt->buf, snd->pkt->len, 0);
    } else if (eg->fixed_bufs) {
        io_uring_prep_send_zc_fixed(sqe, snd->sock, snd->pkt->buf, snd->pkt->len, 0,
                                    IORING_SEND_ZC_REPORT_USAGE, 0);
        eg->zc_sends++;
    } else {
        io_uring_prep_send_zc(sqe, snd->sock, snd->pkt->buf, snd->pkt->len, 0,
                              IORING_SEND_ZC_REPORT_USAGE);
        eg->zc_sends++;
    }
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, s);
}

/* The slot's send is over and the kernel holds none of its buffer: hand both back. */
static void release_slot(gw_egress_t *eg, uring_t *u, uint32_t s)
{
    gw_packet_t *pkt = u->slots[s].pkt;
    eg->inflight--;
    u->free_slots[u->nfree++] = s;
    if (--pkt->refs == 0)
        gw_pool_put(eg->pool, pkt);
}

/* A zero-copy notification: the kernel is done with the buffer of slot `s`. */
static void on_notification(gw_egress_t *eg, uring_t *u, uint32_t s, int res)
{
    eg->zc_notifs++;
    if ((uint32_t)res & IORING_NOTIF_USAGE_ZC_COPIED)
        eg->zc_copied++;
    if (u->zc_early_release)
        return; /* the deliberate bug: the slot was already released with its result */
    if (--u->notifs[s] == 0 && u->done[s])
        release_slot(eg, u, s);
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
        if (cqe->flags & IORING_CQE_F_NOTIF) {
            on_notification(eg, u, s, res);
            continue;
        }
        if ((cqe->flags & IORING_CQE_F_MORE) && !u->zc_early_release)
            u->notifs[s]++; /* a notification follows: the buffer stays the kernel's */
        bool short_send = res >= 0 && (uint32_t)res < snd->pkt->len;
        if ((short_send || gw_send_should_retry(res)) && ++snd->attempts < GW_SEND_MAX_ATTEMPTS) {
            eg->retries++;
            gw_metrics.send_retries++;
            u->retry[u->nretry++] = s;
            continue;
        }
        if (short_send)
            res = -EMSGSIZE;
        sock_fc_t *fc = &u->fc[snd->sock];
        fc->pending--;
        if (fc->carried > fc->pending)
            fc->carried = fc->pending;
        if (fc->pending == 0 && fc->blen)
            u->kick = true;
        /* The send is complete (metrics, latency); the slot's own reference keeps the buffer
         * until the last notification of its (possibly retried) zero-copy sends. */
        snd->pkt->refs++;
        gw_egress_complete(eg, snd, res);
        u->done[s] = true;
        if (u->notifs[s] == 0)
            release_slot(eg, u, s);
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

/* Socket buffer bytes a send of `pkt` will take. A zero-copy datagram's pages are charged
 * to the socket page-aligned (the zero-copy test saw SEND_ZC overrun the plain estimate,
 * wait inside io_uring and come out reordered), so its cost is the pages it spans. */
static long send_cost(const gw_egress_t *eg, const gw_packet_t *pkt)
{
    if (pkt->len < eg->zc_min_len)
        return (long)pkt->len + SKB_OVERHEAD;
    uintptr_t off = (uintptr_t)pkt->buf & (ZC_PAGE - 1);
    return (long)((off + pkt->len + ZC_PAGE - 1) & ~(uintptr_t)(ZC_PAGE - 1)) + SKB_OVERHEAD;
}

/* True when `pkt` may go to this socket in the current flush without waiting. */
static bool has_room(uring_t *u, gw_egress_t *eg, sock_fc_t *fc, const gw_packet_t *pkt)
{
    if (u->no_flow_control)
        return true;
    if (fc->gen != u->gen) {
        int outq = 0;
        fc->gen = u->gen;
        fc->carried = fc->pending;
        if (ioctl(eg->fds[fc->sock], SIOCOUTQ, &outq) != 0)
            outq = 0;
        fc->room = fc->sndbuf > 0 ? fc->sndbuf - outq : LONG_MAX / 2;
    }
    if (fc->carried > 0)
        return false; /* an earlier send of this socket is still pending: keep the order */
    long cost = send_cost(eg, pkt);
    /* One datagram always goes to an empty socket, however small its buffer. */
    if (fc->room < cost && fc->room < fc->sndbuf)
        return false;
    fc->room -= cost;
    return true;
}

/* Turns POLLOUT watching of a socket on or off. */
static void on_writable(uv_poll_t *h, int status, int events);
static void watch_writable(uring_t *u, gw_egress_t *eg, sock_fc_t *fc, bool on)
{
    if (on == fc->writable_on)
        return;
    if (on && !fc->writable_init) {
        if (uv_poll_init(eg->loop, &fc->writable, eg->fds[fc->sock]) != 0)
            return;
        fc->writable_init = true;
        fc->writable.data = fc;
    }
    if (on)
        uv_poll_start(&fc->writable, UV_WRITABLE, on_writable);
    else
        uv_poll_stop(&fc->writable);
    fc->writable_on = on;
    (void)u;
}

/* Prepares one send as an SQE, making room in the SQ and the slot table first. */
static void issue(gw_egress_t *eg, uring_t *u, const gw_send_t *snd)
{
    while (u->nfree == 0 || io_uring_sq_space_left(&u->ring) <= u->nretry)
        submit_and_reap(eg, u, u->nfree == 0 ? 1 : 0);
    uint32_t s = u->free_slots[--u->nfree];
    u->slots[s] = *snd;
    u->slots[s].attempts = 0;
    u->notifs[s] = 0;
    u->done[s] = false;
    u->fc[snd->sock].pending++;
    eg->inflight++;
    prep_slot(u, s);
}

static bool defer(gw_egress_t *eg, uring_t *u, sock_fc_t *fc, const gw_send_t *snd)
{
    if (!fc->backlog && !(fc->backlog = malloc(BACKLOG_CAP * sizeof(*fc->backlog))))
        return false;
    if (fc->blen == BACKLOG_CAP)
        return false;
    fc->backlog[(fc->bhead + fc->blen++) % BACKLOG_CAP] = *snd;
    u->backlogged++;
    eg->congestion_waits++;
    return true;
}

/* Issues, in order, what the backlogs can send now; watches POLLOUT where room is missing. */
static void drain_backlogs(gw_egress_t *eg, uring_t *u)
{
    u->kick = false;
    for (unsigned i = 0; i < eg->nfds && u->backlogged; i++) {
        sock_fc_t *fc = &u->fc[i];
        while (fc->blen && has_room(u, eg, fc, fc->backlog[fc->bhead].pkt)) {
            gw_send_t snd = fc->backlog[fc->bhead];
            fc->bhead = (fc->bhead + 1) % BACKLOG_CAP;
            fc->blen--;
            u->backlogged--;
            issue(eg, u, &snd);
        }
        /* Waiting for room: POLLOUT. Waiting for a pending send: its CQE kicks us. */
        watch_writable(u, eg, fc, fc->blen > 0 && fc->carried == 0);
    }
}

static void flush_backlogs(gw_egress_t *eg, uring_t *u)
{
    for (int round = 0; round < 8 && u->kick && u->backlogged; round++) {
        u->gen++;
        io_uring_cq_eventfd_toggle(&u->ring, false);
        drain_backlogs(eg, u);
        submit_and_reap(eg, u, 0);
        enable_wakeups(eg, u);
    }
}

static int uring_submit(gw_egress_t *eg, const gw_send_t *sends, unsigned n)
{
    uring_t *u = eg->backend;
    u->gen++;
    io_uring_cq_eventfd_toggle(&u->ring, false);
    if (u->backlogged)
        drain_backlogs(eg, u); /* older sends first */
    for (unsigned i = 0; i < n; i++) {
        sock_fc_t *fc = &u->fc[sends[i].sock];
        if (fc->blen == 0 && has_room(u, eg, fc, sends[i].pkt)) {
            issue(eg, u, &sends[i]);
        } else if (defer(eg, u, fc, &sends[i])) {
            watch_writable(u, eg, fc, fc->carried == 0);
        } else {
            issue(eg, u, &sends[i]); /* backlog full: io_uring's own wait takes over */
        }
    }
    submit_and_reap(eg, u, 0);
    enable_wakeups(eg, u);
    flush_backlogs(eg, u);
    return 0;
}

static void on_writable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    sock_fc_t *fc = h->data;
    fc->u->kick = true;
    flush_backlogs(fc->eg, fc->u);
    if (fc->blen == 0)
        watch_writable(fc->u, fc->eg, fc, false);
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
    unsigned before = eg->inflight;
    reap(eg, u);
    eg->async_completions += before - eg->inflight;
    if (u->nretry)
        submit_and_reap(eg, u, 0);
    flush_backlogs(eg, u);
}

static void uring_drain(gw_egress_t *eg, int timeout_ms)
{
    uring_t *u = eg->backend;
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    while ((eg->inflight > 0 || u->backlogged > 0) && uv_hrtime() < deadline) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 1000 * 1000};
        struct io_uring_cqe *cqe;
        if (eg->inflight > 0)
            (void)io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        else
            (void)nanosleep(&(struct timespec){0, 1000 * 1000}, NULL); /* room to come */
        reap(eg, u);
        if (u->nretry)
            submit_and_reap(eg, u, 0);
        u->kick = true;
        flush_backlogs(eg, u);
    }
    if (eg->inflight > 0 || u->backlogged > 0)
        gw_log(GW_LOG_WARN, "io_uring: %u sends in flight and %u waiting after %d ms", eg->inflight,
               u->backlogged, timeout_ms);
}

const gw_egress_ops_t gw_egress_uring_ops = {
    .name = "io_uring",
    .init = uring_init,
    .submit = uring_submit,
    .drain = uring_drain,
    .close = uring_close,
};
