/* sendmmsg(2) egress: the fallback (and a baseline). Synchronous: every packet has been
 * handed to the kernel (or has failed) when submit returns, so buffers are free at once.
 * One sendmmsg per socket per flush; a partial batch is resent from where it stopped
 * (libuv uv__udp_sendmsgv semantics); ENOBUFS/EAGAIN wait briefly for room and retry,
 * counted, at most GW_SEND_MAX_ATTEMPTS times before the packet counts as an error. */
#include "gateway.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#define MMSG_BATCH 256

static int mmsg_init(gw_egress_t *eg)
{
    eg->backend = NULL;
    return 0;
}

/* Sends sends[0..n) (all on one socket) in order. */
static void send_socket(gw_egress_t *eg, const gw_send_t *sends, unsigned n)
{
    struct mmsghdr msgs[MMSG_BATCH];
    struct iovec iov[MMSG_BATCH];
    int fd = eg->fds[sends[0].sock];
    unsigned done = 0, attempts = 0;
    while (done < n) {
        unsigned k = n - done < MMSG_BATCH ? n - done : MMSG_BATCH;
        memset(msgs, 0, sizeof(msgs[0]) * k);
        for (unsigned i = 0; i < k; i++) {
            iov[i].iov_base = sends[done + i].pkt->buf;
            iov[i].iov_len = sends[done + i].pkt->len;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int rc = sendmmsg(fd, msgs, k, 0);
        eg->now_ns = uv_hrtime();
        if (rc > 0) {
            for (int i = 0; i < rc; i++)
                gw_egress_complete(eg, &sends[done + (unsigned)i], (int)msgs[i].msg_len);
            done += (unsigned)rc;
            attempts = 0;
            continue;
        }
        int err = rc < 0 ? -errno : -EAGAIN;
        if (gw_send_should_retry(err) && ++attempts < GW_SEND_MAX_ATTEMPTS) {
            eg->retries++;
            gw_metrics.send_retries++;
            if (err != -EINTR) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                (void)poll(&pfd, 1, 1); /* wait for socket buffer room, 1 ms at most */
            }
            continue;
        }
        gw_egress_complete(eg, &sends[done], err); /* counted and logged there */
        done++;
        attempts = 0;
    }
}

static int mmsg_submit(gw_egress_t *eg, const gw_send_t *sends, unsigned n)
{
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
                        send_socket(eg, group, g);
                        g = 0;
                    }
                }
            if (g)
                send_socket(eg, group, g);
        }
        off += chunk;
    }
    return 0;
}

static void mmsg_drain(gw_egress_t *eg, int timeout_ms)
{
    (void)eg;
    (void)timeout_ms; /* nothing is ever in flight */
}

static void mmsg_close(gw_egress_t *eg)
{
    (void)eg;
}

const gw_egress_ops_t gw_egress_mmsg_ops = {
    .name = "sendmmsg",
    .init = mmsg_init,
    .submit = mmsg_submit,
    .drain = mmsg_drain,
    .close = mmsg_close,
};
