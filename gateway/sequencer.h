/* Sequencer stage: one MoldUDP64 sequence space per channel. Messages of every publisher of
 * a channel merge in arrival order; each gets the next number, is kept in the channel's
 * store for retransmission and joins the channel's open packet. Calls go down only: to the
 * store and the packetizer. */
#ifndef GW_SEQUENCER_H
#define GW_SEQUENCER_H

#include "config.h"
#include "journal.h"
#include "packetizer.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const gw_config_t *cfg;
    gw_store_t *stores; /* one per channel, owned by the wiring */
    gw_packetizer_t *pz;
    gw_journal_t *journal;              /* NULL: no journal */
    uint64_t next_seq[GW_MAX_CHANNELS]; /* sequence number the next message gets */
    /* Per publisher (cfg.users index): its messages sequenced in this session, i.e. the
     * number of its latest one (docs/GATEWAY.md, "Acknowledged publishing"). */
    uint64_t user_seq[GW_MAX_USERS];
    bool journal_throttled; /* the journal's backlog passed its high-water mark */
} gw_sequencer_t;

/* Every channel starts at sequence number 1; `journal` may be NULL. */
void gw_sequencer_init(gw_sequencer_t *sq, const gw_config_t *cfg, gw_store_t *stores,
                       gw_packetizer_t *pz, gw_journal_t *journal);
/* Where a channel continues after recovery: next sequence number, and per user of the
 * channel the number of its latest message held. */
void gw_sequencer_resume(gw_sequencer_t *sq, int ch, uint64_t next_seq);
/* Channel `ch` starts a new session: numbering from 1 for it and each of its publishers
 * (the packetizer and the journal are told by the wiring). */
void gw_sequencer_new_session(gw_sequencer_t *sq, int ch);
/* The general path of gw_sequence(). Returns the sequence number, or 0 on failure (logged). */
uint64_t gw_sequence_slow(gw_sequencer_t *sq, int ch, int user, const void *msg, size_t len,
                          uint64_t arrival_ns);
/* Store part of the slow path: gw_store_append() with its failure logged. */
void gw_sequence_store_slow(gw_sequencer_t *sq, int ch, uint64_t seq, const void *msg, size_t len);
/* Gives the message of publisher `user` (-1: an upstream) the channel's next sequence
 * number, journals it (when there is a journal), stores it and appends it to the open packet.
 * Returns the sequence number, or 0 when it could not be sequenced (logged; the message is
 * refused whole, never half-sequenced). Inline so that a message that fits the open packet
 * and the ring's tail costs no call beyond its two memcpy; with a journal the general path
 * takes every message. */
static inline __attribute__((always_inline)) uint64_t
gw_sequence(gw_sequencer_t *sq, int ch, int user, const void *msg, size_t len, uint64_t arrival_ns)
{
    uint64_t seq = sq->next_seq[ch];
    if (sq->journal || !gw_packetizer_append_fast(sq->pz, ch, msg, len))
        return gw_sequence_slow(sq, ch, user, msg, len, arrival_ns);
    if (!gw_store_append_fast(&sq->stores[ch], seq, msg, len))
        gw_sequence_store_slow(sq, ch, seq, msg, len);
    sq->next_seq[ch] = seq + 1;
    if (user >= 0)
        sq->user_seq[user]++;
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
