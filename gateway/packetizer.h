/* Packetizer stage: natural batching (DESIGN.md "Egress and batching"). Each message joins
 * its channel's open packet; a full packet is queued at once on every line of its channel,
 * and gw_packetizer_flush() -- at the end of every loop iteration -- closes what is still
 * open and hands everything queued to egress in one submission. Heartbeats and end of
 * session are queued here too, behind the data: "when do packets leave?" is answered in
 * packetizer.c alone. */
#ifndef GW_PACKETIZER_H
#define GW_PACKETIZER_H

#include "config.h"
#include "egress.h"
#include "packet.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Per channel: the open packet, into which messages are appended until it is full. */
typedef struct {
    mdfeed_mold_builder_t builder;
    gw_packet_t *open; /* NULL when none */
} gw_chan_packer_t;

typedef struct {
    uint64_t heartbeats[GW_MAX_CHANNELS]; /* MoldUDP64 heartbeats queued */
    uint64_t ends[GW_MAX_CHANNELS];       /* end-of-session packets queued */
} gw_packetizer_stats_t;

typedef struct gw_packetizer {
    gw_pool_t *pool;
    gw_egress_t *egress;
    const gw_config_t *cfg;
    gw_chan_packer_t chans[GW_MAX_CHANNELS];
    int nchannels;
    int nlines[GW_MAX_CHANNELS];
    /* Per channel: the sequence number after the newest closed packet's last message (what
     * a heartbeat announces), and the one below which everything went to egress (what the
     * retransmission server may answer). */
    uint64_t next_seq[GW_MAX_CHANNELS];
    uint64_t flushed_seq[GW_MAX_CHANNELS];
    uint64_t last_send_ns[GW_MAX_CHANNELS]; /* last flush with data, or heartbeat */
    gw_send_t *pending;
    unsigned npending;
    unsigned max_pending; /* submit early when this many sends are queued */
    uv_timer_t hb_timer;
    bool hb_started;
    gw_packetizer_stats_t stats;
} gw_packetizer_t;

/* Sets the packetizer up over `pool`, handing its sends to `egress` (which must be set up
 * before the first message arrives). Every channel starts at sequence number 1. */
int gw_packetizer_init(gw_packetizer_t *pz, gw_pool_t *pool, gw_egress_t *egress,
                       const gw_config_t *cfg, unsigned max_pending);
void gw_packetizer_close(gw_packetizer_t *pz);
/* Where channel `ch` continues (a recovered journal, a connect-mode upstream that skipped
 * ahead): flushes first, so what is queued keeps its numbering. */
void gw_packetizer_set_next(gw_packetizer_t *pz, int ch, uint64_t seq);
/* Appends message `seq` of channel `ch`. Returns 0, MDFEED_ETOOBIG, or -ENOBUFS when no
 * buffer could be had. */
int gw_packetizer_append(gw_packetizer_t *pz, int ch, uint64_t seq, const void *msg, size_t len,
                         uint64_t arrival_ns);
/* Hot path of gw_packetizer_append(): appends to the channel's open packet when there is one
 * and the message fits it, by the library's own append rule. False: nothing written, take
 * the full path (which opens or closes packets). */
static inline bool gw_packetizer_append_fast(gw_packetizer_t *pz, int ch, const void *msg,
                                             size_t len)
{
    gw_chan_packer_t *cp = &pz->chans[ch];
    return cp->open && mdfeed_mold_builder_try_append(&cp->builder, msg, len);
}
/* The one hand-off to egress: closes every open packet, submits everything queued in one
 * submission, and stamps the channels that sent data. Returns the sends submitted. */
unsigned gw_packetizer_flush(gw_packetizer_t *pz);
/* Starts the heartbeat timer: a channel with nothing sent for mold_heartbeat_ms gets a
 * heartbeat (count 0) on each line. */
void gw_packetizer_start_heartbeats(gw_packetizer_t *pz, uv_loop_t *loop);
void gw_packetizer_stop_heartbeats(gw_packetizer_t *pz);
/* End of session on every line of every channel, end_of_session_repeats times, after
 * whatever data is still queued. */
void gw_packetizer_end_session(gw_packetizer_t *pz);

#endif /* GW_PACKETIZER_H */
