/* Ingress stage: SoupBinTCP 3.0 in. Listen mode (ingress.c): a server for publishers, who log
 * in and send unsequenced data. Connect mode (ingress_connect.c): a client of an upstream
 * server per channel, taking its sequenced data. Both hand each message to the sequencer;
 * the wiring pauses and resumes them (back-pressure) and reads their public stats. */
#ifndef GW_INGRESS_H
#define GW_INGRESS_H

#include "config.h"
#include "sequencer.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Reasons a publisher connection is closed (index into gw_ingress_stats_t.rejected). */
enum {
    GW_CLOSE_GARBAGE = 0, /* unknown or unexpected packet type */
    GW_CLOSE_OVERSIZE,
    GW_CLOSE_EMPTY,
    GW_CLOSE_BEFORE_LOGIN,
    GW_CLOSE_SECOND_LOGIN,
    GW_CLOSE_BAD_LOGIN,
    GW_CLOSE_IDLE,
    GW_CLOSE_OTHER,
    GW_CLOSE_NREASONS
};
extern const char *const gw_close_reason_names[GW_CLOSE_NREASONS];

typedef struct {
    uint64_t messages_in[GW_MAX_USERS];
    uint64_t bytes_in[GW_MAX_USERS];
    uint64_t rejected[GW_CLOSE_NREASONS]; /* publisher connections closed, by reason */
    uint64_t publishers;                  /* logged in now (a gauge) */
    uint64_t acks_sent;                   /* messages acknowledged to their publishers */
    uint64_t acks_dropped;                /* acks not sent: the publisher does not read them */
} gw_ingress_stats_t;

typedef struct {
    uint64_t messages[GW_MAX_CHANNELS];   /* sequenced messages taken */
    uint64_t duplicates[GW_MAX_CHANNELS]; /* already had them (replay after a reconnect) */
    uint64_t skipped[GW_MAX_CHANNELS];    /* upstream could not replay them: a gap */
    uint64_t connects[GW_MAX_CHANNELS];   /* logins accepted */
    uint64_t connected[GW_MAX_CHANNELS];  /* 1 while logged in (a gauge) */
} gw_upstream_stats_t;

typedef struct gw_ingress gw_ingress_t;
typedef struct gw_upstreams gw_upstreams_t;

/* Listen mode. Counts into `stats` (owned by the caller, outliving the ingress). Returns 0,
 * or -1 (logged); *out is set either way and must be stopped. */
int gw_ingress_start(gw_ingress_t **out, uv_loop_t *loop, const gw_config_t *cfg,
                     gw_sequencer_t *sq, gw_ingress_stats_t *stats);
/* Closes every publisher and the listener; the memory goes with the last close callback. */
void gw_ingress_stop(gw_ingress_t *in);
/* Stops or resumes reading from every publisher (TCP flow control pushes back on them). */
void gw_ingress_set_paused(gw_ingress_t *in, bool paused);
/* Acknowledged publishing (docs/GATEWAY.md): with `deferred`, a message is acknowledged
 * only when gw_ingress_ack() says its channel sequence number is durable (the journal);
 * without, as soon as it is sequenced. Call once after start (it takes the recovered counts
 * as acknowledged). */
void gw_ingress_set_deferred_acks(gw_ingress_t *in, bool deferred);
/* Channel `ch` is durable up to `durable_seq`: acknowledge what that covers. */
void gw_ingress_ack(gw_ingress_t *in, int ch, uint64_t durable_seq);
/* Closes every publisher (they log in again to the new session) and restarts every user's
 * numbering: the end of a session. */
void gw_ingress_logout_all(gw_ingress_t *in, const char *why);

/* Connect mode: one SoupBinTCP client per channel with an upstream (none: *out = NULL). */
int gw_upstream_start(gw_upstreams_t **out, uv_loop_t *loop, const gw_config_t *cfg,
                      gw_sequencer_t *sq, gw_upstream_stats_t *stats);
void gw_upstream_stop(gw_upstreams_t *ups);
/* After the loop has run the close callbacks (the handles live in the array). */
void gw_upstream_free(gw_upstreams_t *ups);
void gw_upstream_set_paused(gw_upstreams_t *ups, bool paused);

#endif /* GW_INGRESS_H */
