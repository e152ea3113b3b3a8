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
 * A send's buffer (gw_packet_t) is released only from its CQE.
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
 * A full interface queue (qdisc) is what flow control cannot see: with IP_RECVERR (egress.c)
 * the send fails with ENOBUFS, inline at submit, while the later sends of the same socket in
 * the same submission would still run and overtake it. So a socket's sends in one submission
 * form one IOSQE_IO_LINK chain (their SQEs are staged per socket and prepared contiguously
 * just before the submit): a failure cancels the rest of the chain (-ECANCELED), nothing
 * after it reaches the wire. The failed send and the cancelled ones go back, in issue order,
 * to the FRONT of the socket's backlog, which then waits for a short libuv timer
 * (eg->retry_backoff_ms; POLLOUT says nothing about the qdisc) while later sends queue behind
 * them. Sends of a socket are issued only when none of an earlier submission is pending, so
 * chains never run side by side. Retries are counted by reason; nothing is dropped. Chosen
 * over serialising each socket (one send in flight) because a chain keeps the one-submit-per-
 * flush batching; the chain's continuation runs as task work, which the submit below runs
 * right away (DEFER_TASKRUN: submit-and-wait for the linked count with a zero timeout).
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
#include "egress_backend.h"

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
    unsigned last_sub;  /* submission (u->sub_no) its latest send belongs to */
    bool hold;          /* the qdisc refused a send: the backlog waits for the retry timer */
    unsigned nrequeued; /* refused sends of submission requeue_sub at the backlog's front */
    unsigned requeue_sub;
    uint32_t stage_head, stage_tail; /* slots staged for the next submit, in order */
    unsigned nstage;
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
    uint32_t retry[URING_SLOTS]; /* slots refused in this reap, back to their backlogs */
    uint32_t stage_next[URING_SLOTS];
    uint64_t issue_no[URING_SLOTS]; /* issue order (requeued sends keep their order) */
    unsigned slot_sub[URING_SLOTS]; /* the submission the slot's send went in */
    uint64_t issue_ctr;
    uint16_t staged_socks[GW_MAX_SOCKETS]; /* sockets with staged slots, first-staged first */
    unsigned nstaged_socks, nstaged;
    unsigned sub_no; /* bumped at every submit */
    uv_timer_t retry_timer;
    bool timer_init;
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
                   iov.iov_len, gw_strerror(-rc));
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
            eg->stats.send_errors++;
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
    if (u->timer_init) {
        u->open_handles++;
        u->retry_timer.data = u;
        uv_timer_stop(&u->retry_timer);
        uv_close((uv_handle_t *)&u->retry_timer, on_handle_closed);
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
    if ((rc = uv_timer_init(eg->loop, &u->retry_timer)) != 0)
        goto fail;
    u->timer_init = true;
    u->retry_timer.data = eg;
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

/* Queues slot `s` as an SQE; the caller guarantees an SQE is free. `link`: the next SQE
 * (the same socket's next send) runs only if this one succeeds. */
static void prep_slot(uring_t *u, uint32_t s, bool link)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    const gw_send_t *snd = &u->slots[s];
    gw_egress_t *eg = u->eg;
    if (snd->pkt->len < eg->zc_min_len) {
        io_uring_prep_send(sqe, snd->sock, snd->pkt->buf, snd->pkt->len, 0);
    } else if (eg->fixed_bufs) {
        io_uring_prep_send_zc_fixed(sqe, snd->sock, snd->pkt->buf, snd->pkt->len, 0,
                                    IORING_SEND_ZC_REPORT_USAGE, 0);
        eg->stats.zc_sends++;
    } else {
        io_uring_prep_send_zc(sqe, snd->sock, snd->pkt->buf, snd->pkt->len, 0,
                              IORING_SEND_ZC_REPORT_USAGE);
        eg->stats.zc_sends++;
    }
    sqe->flags |= IOSQE_FIXED_FILE | (link ? IOSQE_IO_LINK : 0);
    io_uring_sqe_set_data64(sqe, s);
}

/* Prepares the staged sends, each socket's as one contiguous linked chain. Returns the
 * number of SQEs that wait on an earlier one (the chains' continuations). */
static unsigned prep_staged(uring_t *u)
{
    unsigned linked = 0;
    for (unsigned i = 0; i < u->nstaged_socks; i++) {
        sock_fc_t *fc = &u->fc[u->staged_socks[i]];
        uint32_t s = fc->stage_head;
        for (unsigned k = 0; k < fc->nstage; k++, s = u->stage_next[s])
            prep_slot(u, s, k + 1 < fc->nstage);
        linked += fc->nstage - 1;
        fc->nstage = 0;
    }
    u->nstaged_socks = 0;
    u->nstaged = 0;
    return linked;
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
    eg->stats.zc_notifs++;
    if ((uint32_t)res & IORING_NOTIF_USAGE_ZC_COPIED)
        eg->stats.zc_copied++;
    if (u->zc_early_release)
        return; /* the deliberate bug: the slot was already released with its result */
    if (--u->notifs[s] == 0 && u->done[s])
        release_slot(eg, u, s);
}

/* Sorts the refused slots in issue order (insertion sort: they come nearly sorted). */
static void sort_by_issue(uint32_t *v, unsigned n, const uint64_t *issue_no)
{
    for (unsigned i = 1; i < n; i++) {
        uint32_t x = v[i];
        unsigned j = i;
        for (; j > 0 && issue_no[v[j - 1]] > issue_no[x]; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

/* Inserts a refused send of submission `sub` into the socket's backlog: after the refused
 * sends of the same submission already put back (a chain's cancellations may be reaped
 * after its failure), before everything else there, which all came later. */
static void insert_refused(sock_fc_t *fc, const gw_send_t *snd, unsigned sub)
{
    if (fc->requeue_sub != sub || fc->nrequeued > fc->blen) {
        fc->requeue_sub = sub;
        fc->nrequeued = 0;
    }
    fc->bhead = (fc->bhead + BACKLOG_CAP - 1) % BACKLOG_CAP;
    for (unsigned j = 0; j < fc->nrequeued; j++)
        fc->backlog[(fc->bhead + j) % BACKLOG_CAP] = fc->backlog[(fc->bhead + j + 1) % BACKLOG_CAP];
    fc->backlog[(fc->bhead + fc->nrequeued) % BACKLOG_CAP] = *snd;
    fc->nrequeued++;
    fc->blen++;
}

static void on_retry_timer(uv_timer_t *t);

/* Puts the sends refused in this reap (u->retry) back at the front of their sockets'
 * backlogs, in their issue order, and holds those sockets until the retry timer. Only sends
 * of one submission can be pending on a socket (has_room), and a chain's results come in
 * chain order, so refused sends of later reaps follow those of earlier ones. */
static void requeue_refused(gw_egress_t *eg, uring_t *u)
{
    bool again = false;
    sort_by_issue(u->retry, u->nretry, u->issue_no);
    for (unsigned i = 0; i < u->nretry; i++) {
        uint32_t s = u->retry[i];
        gw_send_t *snd = &u->slots[s];
        sock_fc_t *fc = &u->fc[snd->sock];
        if (!fc->backlog && !(fc->backlog = malloc(BACKLOG_CAP * sizeof(*fc->backlog)))) {
            snd->pkt->refs++;
            gw_egress_complete(eg, snd, -ENOMEM); /* counted and logged there */
        } else {
            again |= snd->attempts > 0;
            if (snd->attempts < UINT16_MAX)
                snd->attempts++;
            /* The backlog can hold them: at most one send per packet of the pool per socket
             * is outstanding, fewer than BACKLOG_CAP. */
            insert_refused(fc, snd, u->slot_sub[s]);
            u->backlogged++;
            fc->hold = true;
            snd->pkt->refs++; /* the backlog's reference; the slot's goes with the slot */
        }
        u->done[s] = true;
        if (u->notifs[s] == 0)
            release_slot(eg, u, s);
    }
    u->nretry = 0;
    gw_egress_backoff_update(eg, again);
    if (!uv_is_active((uv_handle_t *)&u->retry_timer))
        uv_timer_start(&u->retry_timer, on_retry_timer, eg->retry_backoff_ms, 0);
}

/* Processes every CQE there is; sends refused for now go back to their backlogs. */
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
        sock_fc_t *fc = &u->fc[snd->sock];
        fc->pending--;
        if (fc->pending == 0 && fc->blen)
            u->kick = true;
        if (short_send || gw_send_should_retry(res) || res == -ECANCELED) {
            gw_egress_count_retry(eg, res, short_send);
            u->retry[u->nretry++] = s; /* back to the backlog after this reap */
            continue;
        }
        if (snd->attempts > 0)
            gw_egress_backoff_update(eg, false); /* a refused send went: the qdisc has room */
        /* The send is complete (metrics, latency); the slot's own reference keeps the buffer
         * until the last notification of its (possibly retried) zero-copy sends. */
        snd->pkt->refs++;
        gw_egress_complete(eg, snd, res);
        u->done[s] = true;
        if (u->notifs[s] == 0)
            release_slot(eg, u, s);
    }
    io_uring_cq_advance(&u->ring, seen);
    if (u->nretry)
        requeue_refused(eg, u);
}

/* Submits what is staged and reaps; waits for `wait_nr` completions. */
static void submit_and_reap(gw_egress_t *eg, uring_t *u, unsigned wait_nr)
{
    unsigned linked = prep_staged(u);
    int rc;
    if (wait_nr) {
        rc = io_uring_submit_and_wait(&u->ring, wait_nr);
    } else if (linked && u->defer) {
        /* A chain's next send is task work that DEFER_TASKRUN runs only when asked to: ask
         * for as many events as there are continuations, without waiting for any. */
        struct __kernel_timespec zero = {0, 0};
        struct io_uring_cqe *cqe;
        rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, linked, &zero, NULL);
        if (rc == -ETIME)
            rc = 0;
    } else {
        rc = io_uring_submit(&u->ring);
    }
    u->sub_no++;
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        gw_log(GW_LOG_ERROR, "io_uring_submit: %s", gw_strerror(-rc));
    reap(eg, u);
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
    if (fc->hold)
        return false; /* the qdisc refused a send: the retry timer releases the socket */
    if (u->no_flow_control)
        return true;
    if (fc->pending > 0 && fc->last_sub != u->sub_no)
        return false; /* an earlier submission's send is still pending: keep the order */
    if (fc->gen != u->gen) {
        int outq = 0;
        fc->gen = u->gen;
        if (ioctl(eg->fds[fc->sock], SIOCOUTQ, &outq) != 0)
            outq = 0;
        fc->room = fc->sndbuf > 0 ? fc->sndbuf - outq : LONG_MAX / 2;
    }
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

/* Makes room for one more staged send in the SQ and the slot table. Call it BEFORE deciding
 * whether a send may go (has_room): the submit it may do reaps, and a refused send puts its
 * socket on hold and its followers back in the backlog. */
static void make_room(gw_egress_t *eg, uring_t *u)
{
    while (u->nfree == 0 || io_uring_sq_space_left(&u->ring) <= u->nstaged)
        submit_and_reap(eg, u, u->nfree == 0 ? 1 : 0);
}

/* Stages one send for the next submit (prep_staged); make_room() came first. */
static void issue(gw_egress_t *eg, uring_t *u, const gw_send_t *snd)
{
    uint32_t s = u->free_slots[--u->nfree];
    sock_fc_t *fc = &u->fc[snd->sock];
    u->slots[s] = *snd;
    u->notifs[s] = 0;
    u->done[s] = false;
    u->issue_no[s] = ++u->issue_ctr;
    u->slot_sub[s] = u->sub_no;
    fc->pending++;
    fc->last_sub = u->sub_no;
    eg->inflight++;
    if (fc->nstage++ == 0) {
        fc->stage_head = s;
        u->staged_socks[u->nstaged_socks++] = (uint16_t)snd->sock;
    } else {
        u->stage_next[fc->stage_tail] = s;
    }
    fc->stage_tail = s;
    u->nstaged++;
}

static bool defer(gw_egress_t *eg, uring_t *u, sock_fc_t *fc, const gw_send_t *snd)
{
    if (!fc->backlog && !(fc->backlog = malloc(BACKLOG_CAP * sizeof(*fc->backlog))))
        return false;
    if (fc->blen == BACKLOG_CAP)
        return false;
    fc->backlog[(fc->bhead + fc->blen++) % BACKLOG_CAP] = *snd;
    u->backlogged++;
    eg->stats.congestion_waits++;
    return true;
}

/* Issues, in order, what the backlogs can send now; watches POLLOUT where room is missing. */
static void drain_backlogs(gw_egress_t *eg, uring_t *u)
{
    u->kick = false;
    for (unsigned i = 0; i < eg->nfds && u->backlogged; i++) {
        sock_fc_t *fc = &u->fc[i];
        while (fc->blen) {
            make_room(eg, u);
            if (!fc->blen || !has_room(u, eg, fc, fc->backlog[fc->bhead].pkt))
                break;
            gw_send_t snd = fc->backlog[fc->bhead];
            fc->bhead = (fc->bhead + 1) % BACKLOG_CAP;
            fc->blen--;
            if (fc->nrequeued)
                fc->nrequeued--; /* reissued: a new submission, a new run of refusals */
            u->backlogged--;
            issue(eg, u, &snd);
        }
        /* Waiting for room: POLLOUT. Waiting for a pending send: its CQE kicks us. Held for
         * the qdisc: the retry timer. */
        watch_writable(u, eg, fc, fc->blen > 0 && fc->pending == 0 && !fc->hold);
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
        make_room(eg, u);
        if (fc->blen == 0 && has_room(u, eg, fc, sends[i].pkt)) {
            issue(eg, u, &sends[i]);
        } else if (defer(eg, u, fc, &sends[i])) {
            watch_writable(u, eg, fc, fc->pending == 0 && !fc->hold);
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
        gw_log(GW_LOG_WARN, "eventfd read: %s", gw_strerror(errno));
    if (u->defer)
        (void)io_uring_get_events(&u->ring); /* runs the deferred task work: posts the CQEs */
    unsigned before = eg->inflight;
    reap(eg, u);
    eg->stats.async_completions += before - eg->inflight;
    flush_backlogs(eg, u);
}

static void on_retry_timer(uv_timer_t *t)
{
    gw_egress_t *eg = t->data;
    uring_t *u = eg->backend;
    gw_egress_drain_errqueue(eg);
    for (unsigned i = 0; i < eg->nfds; i++)
        u->fc[i].hold = false;
    u->kick = true;
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
        for (unsigned i = 0; i < eg->nfds; i++)
            u->fc[i].hold = false; /* this loop waits between rounds itself */
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
