/* The egress backends' side of egress.c: the ops table a backend fills and the helpers
 * every backend shares. Included by egress.c, egress_uring.c and egress_mmsg.c only. */
#ifndef GW_EGRESS_BACKEND_H
#define GW_EGRESS_BACKEND_H

#include "egress.h"
#include "log.h"

#include <errno.h>
#include <stdbool.h>

/* The backend table (libuv/liburing style feature detection): egress.c picks one. */
struct gw_egress_ops {
    const char *name;
    /* Sets the backend up over eg->fds. Returns 0 or -errno (the caller may fall back). */
    int (*init)(gw_egress_t *eg);
    /* Sends `n` packets; takes one packet reference per send and releases it through
     * gw_egress_complete(). Returns 0 or -errno for a broken backend. */
    int (*submit)(gw_egress_t *eg, const gw_send_t *sends, unsigned n);
    /* Waits (at most `timeout_ms`) until no send is in flight. */
    void (*drain)(gw_egress_t *eg, int timeout_ms);
    void (*close)(gw_egress_t *eg);
};

extern const gw_egress_ops_t gw_egress_uring_ops;
extern const gw_egress_ops_t gw_egress_mmsg_ops;

/* Called by backends once per finished send (res = bytes or -errno): counts it, reports it
 * and drops the packet reference. */
void gw_egress_complete(gw_egress_t *eg, const gw_send_t *send, int res);
/* Counts one retry of a send that got `res` (bytes or -errno; `short_send` when res is a
 * byte count below the datagram's length). */
void gw_egress_count_retry(gw_egress_t *eg, int res, bool short_send);
/* Backoff after ENOBUFS: POLLOUT says nothing about the qdisc, so a refused send waits on a
 * timer, GW_RETRY_MIN_MS doubling while retries keep failing, up to GW_RETRY_MAX_MS. */
#define GW_RETRY_MIN_MS 1
#define GW_RETRY_MAX_MS 16
/* A send refused with backoff has failed again (grow the wait) or gone out (reset it). */
void gw_egress_backoff_update(gw_egress_t *eg, bool failed_again);
/* True when a retry is worth it for this send result. */
static inline bool gw_send_should_retry(int res)
{
    return res == -ENOBUFS || res == -EAGAIN || res == -EINTR;
}
#define GW_SEND_MAX_ATTEMPTS 64

#endif /* GW_EGRESS_BACKEND_H */
