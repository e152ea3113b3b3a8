/* Natural batching (DESIGN.md "Egress and batching"): each message joins its channel's open
 * packet; a packet that is full is queued at once, and at the end of every loop iteration
 * gw_packetizer_close_open() closes what is still open. A quiet feed therefore goes out
 * immediately and a busy one fills packets up to the payload budget. The queued sends of
 * all channels and lines go to egress together, so one flush is one submission. */
#include "gateway.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int gw_pool_init(gw_pool_t *p, uint32_t n, uint32_t size)
{
    memset(p, 0, sizeof(*p));
    p->pkts = calloc(n, sizeof(*p->pkts));
    /* Cache-line aligned buffers: the kernel copies from them on every send. */
    size_t stride = (size + 63u) & ~(size_t)63u;
    p->mem = aligned_alloc(64, stride * n);
    if (!p->pkts || !p->mem) {
        gw_pool_close(p);
        return -ENOMEM;
    }
    p->n = n;
    p->size = size;
    p->stride = stride;
    /* Test hook: a buffer handed back while the kernel still reads it would show up as
     * corrupted datagrams at the receiver. */
    const char *sc = getenv("MDCAST_TEST_SCRIBBLE_RELEASED");
    p->scribble = sc && strcmp(sc, "1") == 0;
    for (uint32_t i = n; i-- > 0;) {
        p->pkts[i].buf = p->mem + stride * i;
        gw_pool_put(p, &p->pkts[i]);
    }
    return 0;
}

void gw_pool_close(gw_pool_t *p)
{
    free(p->pkts);
    free(p->mem);
    memset(p, 0, sizeof(*p));
}

gw_packet_t *gw_pool_get(gw_pool_t *p)
{
    gw_packet_t *pkt = p->free;
    if (!pkt)
        return NULL;
    p->free = pkt->next_free;
    p->free_count--;
    pkt->next_free = NULL;
    pkt->refs = 0;
    pkt->len = 0;
    pkt->count = 0;
    pkt->first_arrival_ns = 0;
    return pkt;
}

void gw_pool_put(gw_pool_t *p, gw_packet_t *pkt)
{
    if (p->scribble)
        memset(pkt->buf, 0xA5, p->size);
    pkt->next_free = p->free;
    p->free = pkt;
    p->free_count++;
}

int gw_packetizer_init(gw_packetizer_t *pz, gw_pool_t *pool, const gw_config_t *cfg,
                       unsigned max_pending)
{
    memset(pz, 0, sizeof(*pz));
    pz->pool = pool;
    pz->nchannels = cfg->nchannels;
    pz->max_pending = max_pending;
    pz->pending = calloc(max_pending, sizeof(*pz->pending));
    if (!pz->pending)
        return -ENOMEM;
    for (int i = 0; i < cfg->nchannels; i++) {
        pz->nlines[i] = cfg->channels[i].nlines;
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
}

static gw_packet_t *get_buffer(gw_packetizer_t *pz)
{
    gw_packet_t *pkt = gw_pool_get(pz->pool);
    if (!pkt && pz->need_buffer) {
        pz->need_buffer(pz); /* submits what is queued and reaps completions */
        pkt = gw_pool_get(pz->pool);
    }
    return pkt;
}

/* Queues `pkt` on every line of channel `ch`: one reference per send. */
static void queue_packet(gw_packetizer_t *pz, int ch, gw_packet_t *pkt)
{
    if (pz->npending + (unsigned)pz->nlines[ch] > pz->max_pending && pz->submit)
        pz->submit(pz);
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

unsigned gw_packetizer_close_open(gw_packetizer_t *pz)
{
    unsigned n = 0;
    for (int ch = 0; ch < pz->nchannels; ch++)
        if (pz->chans[ch].open) {
            close_packet(pz, ch);
            n++;
        }
    return n;
}

int gw_packetizer_header(gw_packetizer_t *pz, int ch, const char *session, uint64_t seq,
                         uint16_t count)
{
    gw_packet_t *pkt = get_buffer(pz);
    if (!pkt)
        return -ENOBUFS;
    pkt->len = (uint32_t)mdfeed_mold_header_encode(pkt->buf, session, seq, count);
    pkt->count = 0;
    queue_packet(pz, ch, pkt);
    return 0;
}
