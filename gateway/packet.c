/* The datagram buffer pool (packet.h): fixed-size, cache-line aligned buffers on a free
 * list, so the hot path never allocates. */
#include "packet.h"

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
