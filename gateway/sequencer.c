/* Sequencer: one MoldUDP64 sequence space per channel, starting at 1. Messages of every
 * publisher of a channel merge in arrival order; each gets the next number, is kept in the
 * channel's store for retransmission and joins the channel's open packet. */
#include "gateway.h"

#include <errno.h>
#include <string.h>

void gw_sequence_store_slow(gw_t *gw, int ch, uint64_t seq, const void *msg, size_t len)
{
    int rc = gw_store_append(&gw->chans[ch].store, seq, msg, len);
    if (rc != 0)
        gw_log(GW_LOG_ERROR, "channel %s: store append of seq %llu failed: %s",
               gw->cfg.channels[ch].name, (unsigned long long)seq, strerror(-rc));
}

/* The general path (gw_sequence() in gateway.h takes the common case inline). */
uint64_t gw_sequence_slow(gw_t *gw, int ch, const void *msg, size_t len, uint64_t arrival_ns)
{
    gw_channel_t *c = &gw->chans[ch];
    uint64_t seq = c->next_seq;
    int rc = gw_packetizer_append(&gw->pz, ch, seq, msg, len, arrival_ns);
    if (rc != 0) {
        /* Ingress bounds frames by the payload budget, so this is a broken invariant or a
         * pool that stayed exhausted: the message is refused, never half-sequenced. */
        gw_log(GW_LOG_ERROR, "channel %s: cannot sequence a %zu-byte message: %s",
               gw->cfg.channels[ch].name, len, mdfeed_strerror(rc));
        return 0;
    }
    if (!gw_store_append_fast(&c->store, seq, msg, len))
        gw_sequence_store_slow(gw, ch, seq, msg, len);
    c->next_seq++;
    return seq;
}

void gw_flush(gw_t *gw)
{
    gw_packetizer_close_open(&gw->pz);
    if (gw->pz.npending == 0)
        return;
    uint64_t now = uv_hrtime();
    for (int ch = 0; ch < gw->cfg.nchannels; ch++)
        if (gw->chans[ch].flushed_seq != gw->chans[ch].next_seq) {
            gw->chans[ch].flushed_seq = gw->chans[ch].next_seq;
            gw->chans[ch].last_send_ns = now;
        }
    unsigned n = gw->pz.npending;
    gw->pz.npending = 0;
    gw_egress_submit(&gw->egress, gw->pz.pending, n);
}
