/* Natural batching (DESIGN.md "Egress and batching"): each message joins its channel's open
 * packet; a packet that is full is queued at once, and at the end of every loop iteration
 * gw_packetizer_flush() closes what is still open. A quiet feed therefore goes out
 * immediately and a busy one fills packets up to the payload budget. The queued sends of
 * all channels and lines go to egress together, so one flush is one submission. */
#include "packetizer.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int gw_packetizer_init(gw_packetizer_t *pz, gw_pool_t *pool, gw_egress_t *egress,
                       const gw_config_t *cfg, unsigned max_pending)
{
    memset(pz, 0, sizeof(*pz));
    pz->pool = pool;
    pz->egress = egress;
    pz->cfg = cfg;
    pz->nchannels = cfg->nchannels;
    pz->max_pending = max_pending;
    pz->pending = calloc(max_pending, sizeof(*pz->pending));
    if (!pz->pending)
        return -ENOMEM;
    uint64_t now = uv_hrtime();
    for (int i = 0; i < cfg->nchannels; i++) {
        pz->nlines[i] = cfg->channels[i].nlines;
        pz->next_seq[i] = pz->flushed_seq[i] = pz->last_flush_seq[i] = 1;
        pz->last_send_ns[i] = now;
        /* The builder's buffer is re-pointed at each packet's buffer when it opens. */
        int rc = mdfeed_mold_builder_init(&pz->chans[i].builder, pool->mem, cfg->payload_budget,
                                          cfg->channels[i].session);
        if (rc)
            return rc;
    }
    return 0;
}

void gw_packetizer_close(gw_packetizer_t *pz)
{
    for (int i = 0; i < pz->nchannels; i++)
        if (pz->chans[i].open) {
            gw_pool_put(pz->pool, pz->chans[i].open);
            pz->chans[i].open = NULL;
        }
    free(pz->pending);
    pz->pending = NULL;
    /* Held sends never went out: their buffers go back with the pool. */
    free(pz->held);
    pz->held = NULL;
    pz->held_len = 0;
}

static bool releasable(const gw_packetizer_t *pz, const gw_send_t *s)
{
    const gw_packet_t *p = s->pkt;
    return p->count == 0 || p->seq + p->count <= pz->release_seq[p->channel];
}

/* Submits the held sends, oldest first, up to the first that must still wait. */
static void submit_released(gw_packetizer_t *pz)
{
    while (pz->held_len && releasable(pz, &pz->held[pz->held_head])) {
        unsigned n = 0;
        /* A contiguous run of the FIFO, at most max_pending, in one submission. */
        while (n < pz->held_len && n < pz->max_pending && pz->held_head + n < pz->held_cap &&
               releasable(pz, &pz->held[pz->held_head + n])) {
            const gw_packet_t *p = pz->held[pz->held_head + n].pkt;
            if (p->count && p->seq + p->count > pz->flushed_seq[p->channel])
                pz->flushed_seq[p->channel] = p->seq + p->count;
            n++;
        }
        gw_egress_submit(pz->egress, &pz->held[pz->held_head], n);
        pz->held_head = (pz->held_head + n) % pz->held_cap;
        pz->held_len -= n;
    }
}

static void submit_pending(gw_packetizer_t *pz)
{
    unsigned n = pz->npending;
    pz->npending = 0;
    if (!pz->gated) {
        gw_egress_submit(pz->egress, pz->pending, n);
        return;
    }
    /* Every send references a pool buffer, so the FIFO (sized pool x lines) cannot fill. */
    for (unsigned i = 0; i < n; i++)
        pz->held[(pz->held_head + pz->held_len++) % pz->held_cap] = pz->pending[i];
    submit_released(pz);
}

int gw_packetizer_gate(gw_packetizer_t *pz)
{
    pz->held_cap = pz->pool->n * GW_MAX_LINES;
    pz->held = calloc(pz->held_cap, sizeof(*pz->held));
    if (!pz->held)
        return -ENOMEM;
    pz->gated = true;
    for (int ch = 0; ch < pz->nchannels; ch++)
        pz->release_seq[ch] = pz->next_seq[ch];
    return 0;
}

void gw_packetizer_release(gw_packetizer_t *pz, int ch, uint64_t seq)
{
    if (seq > pz->release_seq[ch])
        pz->release_seq[ch] = seq;
    submit_released(pz);
}

/* Every buffer in flight or held: submit what is queued and wait (bounded) for completions,
 * then for the journal. */
static gw_packet_t *get_buffer(gw_packetizer_t *pz)
{
    gw_packet_t *pkt = gw_pool_get(pz->pool);
    if (!pkt) {
        submit_pending(pz);
        gw_egress_drain(pz->egress, 100);
        pkt = gw_pool_get(pz->pool);
    }
    if (!pkt && pz->held_len && pz->need_release) {
        pz->need_release(pz->data);
        gw_egress_drain(pz->egress, 100);
        pkt = gw_pool_get(pz->pool);
    }
    return pkt;
}

/* Queues `pkt` on every line of channel `ch`: one reference per send. */
static void queue_packet(gw_packetizer_t *pz, int ch, gw_packet_t *pkt)
{
    if (pz->npending + (unsigned)pz->nlines[ch] > pz->max_pending)
        submit_pending(pz);
    pkt->channel = ch;
    for (int l = 0; l < pz->nlines[ch]; l++) {
        pkt->refs++;
        pz->pending[pz->npending++] = (gw_send_t){pkt, (uint16_t)gw_egress_sock(ch, l), 0};
    }
}

static void close_packet(gw_packetizer_t *pz, int ch)
{
    gw_chan_packer_t *cp = &pz->chans[ch];
    gw_packet_t *pkt = cp->open;
    pkt->count = cp->builder.count;
    pz->next_seq[ch] = cp->builder.seq + cp->builder.count;
    pkt->len = (uint32_t)mdfeed_mold_builder_finish(&cp->builder);
    cp->open = NULL;
    queue_packet(pz, ch, pkt);
}

int gw_packetizer_append(gw_packetizer_t *pz, int ch, uint64_t seq, const void *msg, size_t len,
                         uint64_t arrival_ns)
{
    gw_chan_packer_t *cp = &pz->chans[ch];
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!cp->open) {
            cp->open = get_buffer(pz);
            if (!cp->open)
                return -ENOBUFS;
            cp->open->first_arrival_ns = arrival_ns;
            cp->open->seq = seq;
            cp->builder.buf = cp->open->buf;
            mdfeed_mold_builder_open(&cp->builder, seq);
        }
        int rc = mdfeed_mold_builder_append(&cp->builder, msg, len);
        if (rc != MDFEED_EFULL)
            return rc;
        close_packet(pz, ch);
    }
    return MDFEED_ETOOBIG;
}

static void close_open(gw_packetizer_t *pz)
{
    for (int ch = 0; ch < pz->nchannels; ch++)
        if (pz->chans[ch].open)
            close_packet(pz, ch);
}

unsigned gw_packetizer_flush(gw_packetizer_t *pz)
{
    close_open(pz);
    if (pz->npending == 0)
        return 0;
    uint64_t now = uv_hrtime();
    for (int ch = 0; ch < pz->nchannels; ch++)
        if (pz->last_flush_seq[ch] != pz->next_seq[ch]) {
            pz->last_flush_seq[ch] = pz->next_seq[ch];
            if (!pz->gated)
                pz->flushed_seq[ch] = pz->next_seq[ch]; /* gated: set as sends are released */
            pz->last_send_ns[ch] = now;
        }
    unsigned n = pz->npending;
    submit_pending(pz);
    return n;
}

void gw_packetizer_set_next(gw_packetizer_t *pz, int ch, uint64_t seq)
{
    gw_packetizer_flush(pz);
    /* Held sends are released by the old numbering: let them go first. */
    if (pz->held_len && pz->need_release)
        pz->need_release(pz->data);
    if (pz->held_len)
        gw_log(GW_LOG_ERROR, "channel %d renumbered with %u sends still held for the journal", ch,
               pz->held_len);
    pz->next_seq[ch] = pz->last_flush_seq[ch] = pz->flushed_seq[ch] = seq;
    pz->release_seq[ch] = seq;
}

void gw_packetizer_set_session(gw_packetizer_t *pz, int ch,
                               const char session[MDFEED_MOLD_SESSION_LEN])
{
    gw_packetizer_set_next(pz, ch, 1);
    memcpy(pz->chans[ch].builder.session, session, MDFEED_MOLD_SESSION_LEN);
}

/* Queues a bare header (heartbeat: count 0, end of session: 0xFFFF) on each line of `ch`. */
static int queue_header(gw_packetizer_t *pz, int ch, uint16_t count)
{
    gw_packet_t *pkt = get_buffer(pz);
    if (!pkt)
        return -ENOBUFS;
    pkt->len = (uint32_t)mdfeed_mold_header_encode(pkt->buf, pz->cfg->channels[ch].session,
                                                   pz->next_seq[ch], count);
    pkt->count = 0;
    queue_packet(pz, ch, pkt);
    return 0;
}

/* MoldUDP64 heartbeats on every line of a channel without data for mold_heartbeat_ms. */
static void on_heartbeat_timer(uv_timer_t *t)
{
    gw_packetizer_t *pz = t->data;
    uint64_t now = uv_hrtime();
    uint64_t period = (uint64_t)pz->cfg->mold_heartbeat_ms * 1000000u;
    for (int ch = 0; ch < pz->nchannels; ch++)
        if (now - pz->last_send_ns[ch] >= period) {
            gw_packetizer_flush(pz); /* nothing may overtake data still queued */
            if (queue_header(pz, ch, MDFEED_MOLD_COUNT_HEARTBEAT) == 0)
                pz->stats.heartbeats[ch]++;
            pz->last_send_ns[ch] = now;
        }
    if (pz->npending)
        submit_pending(pz);
}

void gw_packetizer_start_heartbeats(gw_packetizer_t *pz, uv_loop_t *loop)
{
    uint64_t tick = pz->cfg->mold_heartbeat_ms / 4 ? pz->cfg->mold_heartbeat_ms / 4 : 1;
    uv_timer_init(loop, &pz->hb_timer);
    pz->hb_timer.data = pz;
    uv_timer_start(&pz->hb_timer, on_heartbeat_timer, tick, tick);
    pz->hb_started = true;
}

void gw_packetizer_stop_heartbeats(gw_packetizer_t *pz)
{
    if (!pz->hb_started)
        return;
    pz->hb_started = false;
    uv_timer_stop(&pz->hb_timer);
    uv_close((uv_handle_t *)&pz->hb_timer, NULL);
}

void gw_packetizer_end_session(gw_packetizer_t *pz)
{
    gw_packetizer_flush(pz);
    /* End of session a few times: a receiver that misses one still learns the end. */
    for (uint32_t r = 0; r < pz->cfg->end_of_session_repeats; r++)
        for (int ch = 0; ch < pz->nchannels; ch++)
            if (queue_header(pz, ch, MDFEED_MOLD_COUNT_END) == 0)
                pz->stats.ends[ch]++;
    if (pz->npending)
        submit_pending(pz);
}
