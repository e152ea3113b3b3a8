/* sendmmsg(2) egress: the fallback where io_uring is refused (the default seccomp profile of
 * containerd 2.x), so the production path in many clusters. One sendmmsg per socket per
 * flush; a partial batch continues from where it stopped (libuv uv__udp_sendmsgv semantics).
 * When a socket buffer is full (EAGAIN) the rest of that socket's sends wait, in order, in a
 * backlog until libuv reports the socket writable. When the interface's queue (qdisc) is
 * full the send fails with ENOBUFS (IP_RECVERR is set, egress.c); writability says nothing
 * about the qdisc (the socket buffer is empty then), so those sends wait in the same backlog
 * for a short timer instead (eg->retry_backoff_ms, doubling while the qdisc stays full).
 * Either way the loop never blocks on a slow link, nothing is dropped, order is kept (sendmmsg
 * stops at the first failure), and the packet buffers held by the backlog make ingress pause
 * (backpressure in main.c) until the link catches up. */
#include "egress_backend.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MMSG_BATCH  256
#define BACKLOG_CAP 4096 /* per socket; more than the pool holds packets x lines */

typedef struct mmsg mmsg_t;

typedef struct {
    mmsg_t *m;
    gw_egress_t *eg;
    unsigned sock;
    gw_send_t *q; /* FIFO of waiting sends, allocated on first use */
    unsigned head, len;
    uv_poll_t writable;
    bool writable_init, writable_on;
    bool hold; /* ENOBUFS: the backlog waits for the retry timer, not for POLLOUT */
} mmsg_fc_t;

struct mmsg {
    mmsg_fc_t fc[GW_MAX_SOCKETS];
    unsigned waiting; /* sends in all backlogs */
    int open_handles;
    uv_timer_t retry_timer; /* backoff after ENOBUFS */
    bool timer_init;
};

static int mmsg_init(gw_egress_t *eg)
{
    mmsg_t *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    for (unsigned i = 0; i < GW_MAX_SOCKETS; i++) {
        m->fc[i].m = m;
        m->fc[i].eg = eg;
        m->fc[i].sock = i;
    }
    eg->backend = m;
    if (uv_timer_init(eg->loop, &m->retry_timer) == 0) {
        m->timer_init = true;
        m->retry_timer.data = eg;
    }
    return m->timer_init ? 0 : -ENOMEM;
}

/* Sends sends[0..n) (one socket) in order. Returns how many were handed to the kernel or
 * failed for good; stops early, without waiting, when the socket buffer or the interface's
 * queue is full (*stop = -EAGAIN or -ENOBUFS; 0 when all went). */
static unsigned send_some(gw_egress_t *eg, int fd, const gw_send_t *sends, unsigned n, int *stop)
{
    *stop = 0;
    struct mmsghdr msgs[MMSG_BATCH];
    struct iovec iov[MMSG_BATCH];
    unsigned done = 0;
    while (done < n) {
        unsigned k = n - done < MMSG_BATCH ? n - done : MMSG_BATCH;
        memset(msgs, 0, sizeof(msgs[0]) * k);
        for (unsigned i = 0; i < k; i++) {
            iov[i].iov_base = sends[done + i].pkt->buf;
            iov[i].iov_len = sends[done + i].pkt->len;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int rc = sendmmsg(fd, msgs, k, MSG_DONTWAIT);
        eg->now_ns = uv_hrtime();
        if (rc > 0) {
            for (int i = 0; i < rc; i++)
                gw_egress_complete(eg, &sends[done + (unsigned)i], (int)msgs[i].msg_len);
            done += (unsigned)rc;
            /* A batch cut short: the next datagram was refused, and sendmmsg does not say
             * why (the next call usually does). Counted; it is sent again right away. */
            if ((unsigned)rc < k)
                gw_egress_count_retry(eg, 0, true);
            continue;
        }
        int err = rc < 0 ? -errno : -EAGAIN;
        if (err == -EINTR)
            continue;
        if (gw_send_should_retry(err)) {
            gw_egress_count_retry(eg, err, false);
            *stop = err;
            return done; /* full: the caller queues the rest */
        }
        gw_egress_complete(eg, &sends[done], err); /* counted and logged there */
        done++;
    }
    return done;
}

static void on_writable(uv_poll_t *h, int status, int events);
static void on_retry_timer(uv_timer_t *t);

/* The socket's backlog waits for the retry timer: the qdisc refused a send. */
static void hold_for_timer(mmsg_fc_t *fc, bool failed_again)
{
    fc->hold = true;
    gw_egress_backoff_update(fc->eg, failed_again);
    if (fc->m->timer_init && !uv_is_active((uv_handle_t *)&fc->m->retry_timer))
        uv_timer_start(&fc->m->retry_timer, on_retry_timer, fc->eg->retry_backoff_ms, 0);
}

/* What the socket waits for after send_some stopped with `stop`. */
static void wait_after(mmsg_fc_t *fc, int stop, bool failed_again);

static void watch_writable(mmsg_fc_t *fc, bool on)
{
    if (on == fc->writable_on)
        return;
    if (on && !fc->writable_init) {
        if (uv_poll_init(fc->eg->loop, &fc->writable, fc->eg->fds[fc->sock]) != 0)
            return;
        fc->writable_init = true;
        fc->writable.data = fc;
    }
    if (on)
        uv_poll_start(&fc->writable, UV_WRITABLE, on_writable);
    else
        uv_poll_stop(&fc->writable);
    fc->writable_on = on;
}

/* Appends to the socket's backlog. False when it is full (or cannot be allocated). */
static bool enqueue(mmsg_fc_t *fc, const gw_send_t *snd)
{
    if (!fc->q && !(fc->q = malloc(BACKLOG_CAP * sizeof(*fc->q))))
        return false;
    if (fc->len == BACKLOG_CAP)
        return false;
    fc->q[(fc->head + fc->len++) % BACKLOG_CAP] = *snd;
    fc->m->waiting++;
    fc->eg->stats.congestion_waits++;
    return true;
}

/* Sends what the backlog can send now, in order. `after_timer`: this is the retry of a
 * send the qdisc refused (its failing again grows the backoff). */
static void drain_one(mmsg_fc_t *fc, bool after_timer)
{
    int fd = fc->eg->fds[fc->sock], stop = 0;
    unsigned sent = 0;
    while (fc->len) {
        unsigned contiguous = BACKLOG_CAP - fc->head < fc->len ? BACKLOG_CAP - fc->head : fc->len;
        unsigned k = send_some(fc->eg, fd, &fc->q[fc->head], contiguous, &stop);
        fc->head = (fc->head + k) % BACKLOG_CAP;
        fc->len -= k;
        fc->m->waiting -= k;
        sent += k;
        if (k < contiguous)
            break; /* still full */
    }
    if (after_timer && sent)
        gw_egress_backoff_update(fc->eg, false);
    wait_after(fc, fc->len ? stop : 0, after_timer && sent == 0);
}

static void wait_after(mmsg_fc_t *fc, int stop, bool failed_again)
{
    if (stop == -ENOBUFS)
        hold_for_timer(fc, failed_again);
    watch_writable(fc, fc->len > 0 && !fc->hold);
}

static void on_retry_timer(uv_timer_t *t)
{
    gw_egress_t *eg = t->data;
    mmsg_t *m = eg->backend;
    gw_egress_drain_errqueue(eg);
    for (unsigned i = 0; i < eg->nfds; i++)
        if (m->fc[i].hold) {
            m->fc[i].hold = false;
            drain_one(&m->fc[i], true);
        }
}

static void on_writable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    drain_one(h->data, false);
}

/* Blocks (at most ~10 ms) for room when even the backlog is full: memory stays bounded. */
static void send_blocking(mmsg_fc_t *fc, const gw_send_t *snd)
{
    int fd = fc->eg->fds[fc->sock];
    for (int i = 0; i < 10; i++) {
        int stop;
        if (send_some(fc->eg, fd, snd, 1, &stop) == 1)
            return;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        (void)poll(&p, 1, 1);
    }
    gw_egress_complete(fc->eg, snd, -EAGAIN);
}

static void send_socket(gw_egress_t *eg, mmsg_t *m, const gw_send_t *sends, unsigned n)
{
    mmsg_fc_t *fc = &m->fc[sends[0].sock];
    int stop = 0;
    /* A socket with a backlog (or held for the timer) sends nothing new before it: order. */
    unsigned k = fc->len ? 0 : send_some(eg, eg->fds[fc->sock], sends, n, &stop);
    for (unsigned i = k; i < n; i++)
        if (!enqueue(fc, &sends[i]))
            send_blocking(fc, &sends[i]);
    wait_after(fc, stop, false);
}

static int mmsg_submit(gw_egress_t *eg, const gw_send_t *sends, unsigned n)
{
    mmsg_t *m = eg->backend;
    /* Group by socket, keeping each socket's packets in order. */
    gw_send_t group[MMSG_BATCH];
    bool taken[1024];
    unsigned off = 0;
    while (off < n) {
        unsigned chunk = n - off < 1024 ? n - off : 1024;
        memset(taken, 0, chunk);
        for (unsigned i = 0; i < chunk; i++) {
            if (taken[i])
                continue;
            unsigned g = 0;
            uint16_t sock = sends[off + i].sock;
            for (unsigned j = i; j < chunk; j++)
                if (!taken[j] && sends[off + j].sock == sock) {
                    taken[j] = true;
                    group[g++] = sends[off + j];
                    if (g == MMSG_BATCH) {
                        send_socket(eg, m, group, g);
                        g = 0;
                    }
                }
            if (g)
                send_socket(eg, m, group, g);
        }
        off += chunk;
    }
    return 0;
}

/* Waits (at most `timeout_ms`) until the backlogs are sent: shutdown and buffer shortage. */
static void mmsg_drain(gw_egress_t *eg, int timeout_ms)
{
    mmsg_t *m = eg->backend;
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    while (m->waiting && uv_hrtime() < deadline) {
        for (unsigned i = 0; i < eg->nfds; i++)
            if (m->fc[i].len) {
                m->fc[i].hold = false; /* this loop sleeps between rounds itself */
                drain_one(&m->fc[i], false);
            }
        if (m->waiting)
            (void)nanosleep(&(struct timespec){0, 1000 * 1000}, NULL); /* room to come */
    }
    if (m->waiting)
        gw_log(GW_LOG_WARN, "sendmmsg: %u sends still waiting after %d ms", m->waiting, timeout_ms);
}

static void free_state(mmsg_t *m)
{
    for (unsigned i = 0; i < GW_MAX_SOCKETS; i++)
        free(m->fc[i].q);
    free(m);
}

static void on_closed(uv_handle_t *h)
{
    mmsg_t *m = h->data;
    if (--m->open_handles == 0)
        free_state(m);
}

static void mmsg_close(gw_egress_t *eg)
{
    mmsg_t *m = eg->backend;
    if (!m)
        return;
    eg->backend = NULL;
    m->open_handles = 1;
    if (m->timer_init) {
        m->open_handles++;
        m->retry_timer.data = m;
        uv_timer_stop(&m->retry_timer);
        uv_close((uv_handle_t *)&m->retry_timer, on_closed);
    }
    for (unsigned i = 0; i < GW_MAX_SOCKETS; i++) {
        mmsg_fc_t *fc = &m->fc[i];
        /* Sends still waiting go down with the gateway: release their buffers, counted. */
        for (; fc->len; fc->len--, fc->head = (fc->head + 1) % BACKLOG_CAP) {
            eg->stats.send_errors++;
            if (--fc->q[fc->head].pkt->refs == 0)
                gw_pool_put(eg->pool, fc->q[fc->head].pkt);
        }
        if (fc->writable_init) {
            m->open_handles++;
            fc->writable.data = m;
            uv_poll_stop(&fc->writable);
            uv_close((uv_handle_t *)&fc->writable, on_closed);
        }
    }
    if (--m->open_handles == 0)
        free_state(m);
}

const gw_egress_ops_t gw_egress_mmsg_ops = {
    .name = "sendmmsg",
    .init = mmsg_init,
    .submit = mmsg_submit,
    .drain = mmsg_drain,
    .close = mmsg_close,
};
