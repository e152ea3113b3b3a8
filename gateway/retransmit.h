/* Retransmission server: per channel, unicast UDP on the channel's retransmission port. It
 * reads the stores (and the packetizer's flushed watermark, so nothing is answered before it
 * went out on the lines); nothing in the pipeline calls it. */
#ifndef GW_RETRANSMIT_H
#define GW_RETRANSMIT_H

#include "config.h"
#include "journal.h"
#include "store.h"

#include <stdint.h>
#include <uv.h>

typedef struct {
    uint64_t served[GW_MAX_CHANNELS];       /* requests answered */
    uint64_t messages[GW_MAX_CHANNELS];     /* messages resent */
    uint64_t ignored[GW_MAX_CHANNELS];      /* wrong session, zero count, not yet sent, partial */
    uint64_t limited[GW_MAX_CHANNELS];      /* refused by the requester's token bucket */
    uint64_t unservable[GW_MAX_CHANNELS];   /* messages no longer in the ring (nor journal) */
    uint64_t from_journal[GW_MAX_CHANNELS]; /* messages resent from the journal */
    uint64_t send_errors;                   /* answers the socket refused */
} gw_retransmit_stats_t;

/* The per-requester token bucket: `rate` messages per second up to `burst`, a table of
 * GW_RR_REQUESTERS addresses where the least recently seen is replaced. */
#define GW_RR_REQUESTERS 256
typedef struct {
    uint32_t addr;
    double tokens;
    uint64_t last_ns;
} gw_rr_bucket_t;
typedef struct {
    double rate, burst;
    gw_rr_bucket_t buckets[GW_RR_REQUESTERS];
} gw_rr_limiter_t;

void gw_rr_limiter_init(gw_rr_limiter_t *lim, double rate, double burst);
/* How many of `want` messages requester `addr` may have now (0: refused). */
uint64_t gw_rr_limiter_allow(gw_rr_limiter_t *lim, uint32_t addr, uint64_t want, uint64_t now_ns);
/* Charges what was answered; an empty answer costs one token (requests are work too). */
void gw_rr_limiter_charge(gw_rr_limiter_t *lim, uint32_t addr, uint64_t sent);

typedef struct gw_retransmit gw_retransmit_t;

/* Binds one socket per channel. `stores` and `flushed_seq` (per channel: messages below it
 * went out) are read at each request. Returns 0 or -1 (logged); *out must be stopped. */
/* `journal` (may be NULL) serves what the rings no longer hold. */
int gw_retransmit_start(gw_retransmit_t **out, uv_loop_t *loop, const gw_config_t *cfg,
                        const gw_store_t *stores, const uint64_t *flushed_seq,
                        gw_journal_t *journal, gw_retransmit_stats_t *stats);
void gw_retransmit_stop(gw_retransmit_t *rt);

#endif /* GW_RETRANSMIT_H */
