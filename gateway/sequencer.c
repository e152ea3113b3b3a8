/* Sequencer: the general path of gw_sequence() (sequencer.h takes the common case inline). */
#include "sequencer.h"

#include "log.h"

#include <errno.h>
#include <string.h>

void gw_sequencer_init(gw_sequencer_t *sq, const gw_config_t *cfg, gw_store_t *stores,
                       gw_packetizer_t *pz, gw_journal_t *journal)
{
    memset(sq, 0, sizeof(*sq));
    sq->cfg = cfg;
    sq->stores = stores;
    sq->pz = pz;
    sq->journal = journal;
    for (int ch = 0; ch < cfg->nchannels; ch++)
        sq->next_seq[ch] = 1;
}

void gw_sequence_store_slow(gw_sequencer_t *sq, int ch, uint64_t seq, const void *msg, size_t len)
{
    int rc = gw_store_append(&sq->stores[ch], seq, msg, len);
    if (rc != 0)
        gw_log(GW_LOG_ERROR, "channel %s: store append of seq %llu failed: %s",
               sq->cfg->channels[ch].name, (unsigned long long)seq, gw_strerror(-rc));
}

/* The journal takes the message after the packetizer did (the one step that can refuse it),
 * so what is journaled is always what is sent. Its refusal past the hard cap cannot happen
 * while the wiring pauses ingress at the high-water mark; if it does, the message still goes
 * out and the log says the journal lost it. */
static void journal_append(gw_sequencer_t *sq, int ch, int user, uint64_t seq, const void *msg,
                           size_t len)
{
    gw_journal_origin_t origin, *o = NULL;
    if (user >= 0) {
        gw_journal_origin_make(&origin, sq->cfg->users[user].username, sq->user_seq[user] + 1);
        o = &origin;
    }
    int rc = gw_journal_append(sq->journal, ch, seq, msg, len, o);
    if (rc == 1)
        sq->journal_throttled = true;
    else if (rc < 0)
        gw_log(GW_LOG_ERROR, "channel %s: journal refused seq %llu: %s", sq->cfg->channels[ch].name,
               (unsigned long long)seq, gw_strerror(rc));
}

uint64_t gw_sequence_slow(gw_sequencer_t *sq, int ch, int user, const void *msg, size_t len,
                          uint64_t arrival_ns)
{
    uint64_t seq = sq->next_seq[ch];
    if (!gw_packetizer_append_fast(sq->pz, ch, msg, len)) {
        int rc = gw_packetizer_append(sq->pz, ch, seq, msg, len, arrival_ns);
        if (rc != 0) {
            /* Ingress bounds frames by the payload budget, so this is a broken invariant or a
             * pool that stayed exhausted: the message is refused, never half-sequenced. */
            gw_log(GW_LOG_ERROR, "channel %s: cannot sequence a %zu-byte message: %s",
                   sq->cfg->channels[ch].name, len, mdfeed_strerror(rc));
            return 0;
        }
    }
    if (sq->journal)
        journal_append(sq, ch, user, seq, msg, len);
    if (!gw_store_append_fast(&sq->stores[ch], seq, msg, len))
        gw_sequence_store_slow(sq, ch, seq, msg, len);
    sq->next_seq[ch] = seq + 1;
    if (user >= 0)
        sq->user_seq[user]++;
    return seq;
}

void gw_sequencer_resume(gw_sequencer_t *sq, int ch, uint64_t next_seq)
{
    gw_packetizer_set_next(sq->pz, ch, next_seq);
    gw_store_reset(&sq->stores[ch], next_seq);
    sq->next_seq[ch] = next_seq;
}

void gw_sequencer_skip_to(gw_sequencer_t *sq, int ch, uint64_t seq)
{
    if (seq <= sq->next_seq[ch])
        return;
    gw_packetizer_set_next(sq->pz, ch, seq);
    gw_store_reset(&sq->stores[ch], seq);
    sq->next_seq[ch] = seq;
    /* The journal holds one contiguous run per segment: the skip starts a new one. */
    if (sq->journal &&
        gw_journal_begin_session(sq->journal, ch, sq->cfg->channels[ch].session, seq) < 0)
        gw_log(GW_LOG_ERROR, "channel %s: journal could not follow the skip to %llu",
               sq->cfg->channels[ch].name, (unsigned long long)seq);
}

void gw_sequencer_new_session(gw_sequencer_t *sq, int ch)
{
    gw_store_reset(&sq->stores[ch], 1);
    sq->next_seq[ch] = 1;
    for (int u = 0; u < sq->cfg->nusers; u++)
        if (sq->cfg->users[u].channel == ch)
            sq->user_seq[u] = 0;
}
