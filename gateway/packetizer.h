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
    uint64_t last_flush_seq[GW_MAX_CHANNELS]; /* next_seq at the last flush with data */
    uint64_t last_send_ns[GW_MAX_CHANNELS];   /* last flush with data, or heartbeat */
    gw_send_t *pending;
    unsigned npending;
    unsigned max_pending; /* submit early when this many sends are queued */
    uv_timer_t hb_timer;
    bool hb_started;
    gw_packetizer_stats_t stats;
    /* Gated (a journal): a data packet goes to egress only once every message in it is below
     * release_seq (journaled); sends wait in order in `held`, headers behind them. */
    bool gated;
    uint64_t release_seq[GW_MAX_CHANNELS];
    gw_send_t *held;
    unsigned held_head, held_len, held_cap;
    /* Called when every buffer is held back and none is in flight: the wiring waits for the
     * journal (bounded) and calls gw_packetizer_release(). */
    void (*need_release)(void *data);
    void *data;
} gw_packetizer_t;

/* Sets the packetizer up over `pool`, handing its sends to `egress` (which must be set up
 * before the first message arrives). Every channel starts at sequence number 1. */
int gw_packetizer_init(gw_packetizer_t *pz, gw_pool_t *pool, gw_egress_t *egress,
                       const gw_config_t *cfg, unsigned max_pending);
void gw_packetizer_close(gw_packetizer_t *pz);
/* Holds data back until gw_packetizer_release() lets it go (the journal's written mark). */
int gw_packetizer_gate(gw_packetizer_t *pz);
/* Messages of channel `ch` below `seq` may go out: submits what waited, in order. */
void gw_packetizer_release(gw_packetizer_t *pz, int ch, uint64_t seq);
/* Sends held back now (a gauge). */
static inline unsigned gw_packetizer_held(const gw_packetizer_t *pz)
{
    return pz->held_len;
}
/* Where channel `ch` continues (a recovered journal, a connect-mode upstream that skipped
 * ahead): flushes first, so what is queued keeps its numbering. */
void gw_packetizer_set_next(gw_packetizer_t *pz, int ch, uint64_t seq);
/* Channel `ch` continues in a new session from sequence number 1 (after its end of
 * session); the caller updated cfg's session the headers read. */
void gw_packetizer_set_session(gw_packetizer_t *pz, int ch,
                               const char session[MDFEED_MOLD_SESSION_LEN]);
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
