/* Sequencer stage: one MoldUDP64 sequence space per channel. Messages of every publisher of
 * a channel merge in arrival order; each gets the next number, is kept in the channel's
 * store for retransmission and joins the channel's open packet. Calls go down only: to the
 * store and the packetizer. */
#ifndef GW_SEQUENCER_H
#define GW_SEQUENCER_H

#include "config.h"
#include "packetizer.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const gw_config_t *cfg;
    gw_store_t *stores; /* one per channel, owned by the wiring */
    gw_packetizer_t *pz;
    uint64_t next_seq[GW_MAX_CHANNELS]; /* sequence number the next message gets */
} gw_sequencer_t;

/* Every channel starts at sequence number 1. */
void gw_sequencer_init(gw_sequencer_t *sq, const gw_config_t *cfg, gw_store_t *stores,
                       gw_packetizer_t *pz);
/* The general path of gw_sequence(). Returns the sequence number, or 0 on failure (logged). */
uint64_t gw_sequence_slow(gw_sequencer_t *sq, int ch, const void *msg, size_t len,
                          uint64_t arrival_ns);
/* Store part of the slow path: gw_store_append() with its failure logged. */
void gw_sequence_store_slow(gw_sequencer_t *sq, int ch, uint64_t seq, const void *msg, size_t len);
/* Gives the message the channel's next sequence number, stores it and appends it to the
 * open packet. Returns the sequence number, or 0 when it could not be sequenced (logged;
 * the message is refused whole, never half-sequenced). Inline so that a message that fits
 * the open packet and the ring's tail costs no call beyond its two memcpy. */
static inline __attribute__((always_inline)) uint64_t
gw_sequence(gw_sequencer_t *sq, int ch, const void *msg, size_t len, uint64_t arrival_ns)
{
    uint64_t seq = sq->next_seq[ch];
    if (!gw_packetizer_append_fast(sq->pz, ch, msg, len))
        return gw_sequence_slow(sq, ch, msg, len, arrival_ns);
    if (!gw_store_append_fast(&sq->stores[ch], seq, msg, len))
        gw_sequence_store_slow(sq, ch, seq, msg, len);
    sq->next_seq[ch] = seq + 1;
    return seq;
}
/* Sequence number the next message of channel `ch` gets. */
static inline uint64_t gw_sequencer_next(const gw_sequencer_t *sq, int ch)
{
    return sq->next_seq[ch];
}
/* Continues channel `ch` at `seq` (> the next one): a connect-mode upstream that cannot
 * replay what was missed. What is queued goes out under the old numbering first; the ring
 * starts over at `seq` (a ring holds one contiguous run). */
void gw_sequencer_skip_to(gw_sequencer_t *sq, int ch, uint64_t seq);

#endif /* GW_SEQUENCER_H */
