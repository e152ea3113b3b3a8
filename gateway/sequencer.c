/* Sequencer: the general path of gw_sequence() (sequencer.h takes the common case inline). */
#include "sequencer.h"

#include "log.h"

#include <errno.h>
#include <string.h>

void gw_sequencer_init(gw_sequencer_t *sq, const gw_config_t *cfg, gw_store_t *stores,
                       gw_packetizer_t *pz)
{
    memset(sq, 0, sizeof(*sq));
    sq->cfg = cfg;
    sq->stores = stores;
    sq->pz = pz;
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

uint64_t gw_sequence_slow(gw_sequencer_t *sq, int ch, const void *msg, size_t len,
                          uint64_t arrival_ns)
{
    uint64_t seq = sq->next_seq[ch];
    int rc = gw_packetizer_append(sq->pz, ch, seq, msg, len, arrival_ns);
    if (rc != 0) {
        /* Ingress bounds frames by the payload budget, so this is a broken invariant or a
         * pool that stayed exhausted: the message is refused, never half-sequenced. */
        gw_log(GW_LOG_ERROR, "channel %s: cannot sequence a %zu-byte message: %s",
               sq->cfg->channels[ch].name, len, mdfeed_strerror(rc));
        return 0;
    }
    if (!gw_store_append_fast(&sq->stores[ch], seq, msg, len))
        gw_sequence_store_slow(sq, ch, seq, msg, len);
    sq->next_seq[ch] = seq + 1;
    return seq;
}

void gw_sequencer_skip_to(gw_sequencer_t *sq, int ch, uint64_t seq)
{
    if (seq <= sq->next_seq[ch])
        return;
    gw_packetizer_set_next(sq->pz, ch, seq);
    gw_store_reset(&sq->stores[ch], seq);
    sq->next_seq[ch] = seq;
}
