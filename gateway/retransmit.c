/* Retransmission server: per channel, unicast UDP on the channel's retransmission port. A
 * re-request (a bare MoldUDP64 header: session, first sequence, count) for this channel's
 * session is answered from the store with ordinary MoldUDP64 packets, unicast back to the
 * requester, at most retransmit_max_messages per request. A token bucket per requester
 * address (messages per second, with a burst) keeps one address from pulling more than its
 * share, so the server cannot be used to amplify traffic toward a spoofed source. */
#include "gateway.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 256 /* requesters tracked; the least recently seen is replaced */

typedef struct {
    uint32_t addr;
    double tokens;
    uint64_t last_ns;
} bucket_t;

typedef struct {
    uv_udp_t udp;
    gw_t *gw;
    gw_retransmit_t *rt;
    int ch;
} rt_sock_t;

struct gw_retransmit {
    rt_sock_t socks[GW_MAX_CHANNELS];
    int nsocks;
    int open_handles;
    bucket_t buckets[BUCKETS];
    uint8_t rbuf[MDFEED_MOLD_MAX_DATAGRAM];
    uint8_t pkt[MDFEED_MOLD_MAX_DATAGRAM];
};

static bucket_t *find_bucket(gw_retransmit_t *rt, const gw_config_t *cfg, uint32_t addr,
                             uint64_t now)
{
    bucket_t *oldest = &rt->buckets[0];
    for (int i = 0; i < BUCKETS; i++) {
        bucket_t *b = &rt->buckets[i];
        if (b->last_ns && b->addr == addr) {
            double dt = (double)(now - b->last_ns) / 1e9;
            b->tokens += dt * cfg->retransmit_rate;
            if (b->tokens > cfg->retransmit_burst)
                b->tokens = cfg->retransmit_burst;
            b->last_ns = now;
            return b;
        }
        if (b->last_ns < oldest->last_ns)
            oldest = b;
    }
    oldest->addr = addr;
    oldest->tokens = cfg->retransmit_burst;
    oldest->last_ns = now;
    return oldest;
}

/* Sends messages [seq, seq + count) from the store; returns how many went out. */
static uint32_t answer(gw_retransmit_t *rt, rt_sock_t *s, const struct sockaddr *to, uint64_t seq,
                       uint32_t count)
{
    gw_t *gw = s->gw;
    const gw_store_t *st = &gw->chans[s->ch].store;
    mdfeed_mold_builder_t b;
    if (mdfeed_mold_builder_init(&b, rt->pkt, gw->cfg.payload_budget,
                                 gw->cfg.channels[s->ch].session) != 0)
        return 0;
    uint32_t sent = 0, i = 0;
    while (i < count) {
        mdfeed_mold_builder_open(&b, seq + i);
        while (i < count) {
            const uint8_t *msg;
            size_t len;
            if (gw_store_get(st, seq + i, &msg, &len) != 0)
                break;
            if (mdfeed_mold_builder_append(&b, msg, len) != 0)
                break;
            i++;
        }
        uint16_t n = b.count;
        size_t dlen = mdfeed_mold_builder_finish(&b);
        if (n == 0)
            break;
        uv_buf_t buf = uv_buf_init((char *)rt->pkt, (unsigned)dlen);
        if (uv_udp_try_send(&s->udp, &buf, 1, to) < 0) {
            gw_metrics.send_errors++;
            break;
        }
        sent += n;
    }
    return sent;
}

static void handle_request(gw_retransmit_t *rt, rt_sock_t *s, const uint8_t *data, size_t len,
                           const struct sockaddr *from)
{
    gw_t *gw = s->gw;
    int ch = s->ch;
    mdfeed_mold_header_t req;
    if (mdfeed_mold_request_decode(data, len, &req) != 0 ||
        memcmp(req.session, gw->cfg.channels[ch].session, MDFEED_MOLD_SESSION_LEN) != 0 ||
        req.count == 0 || req.count == MDFEED_MOLD_COUNT_END || req.seq == 0 ||
        req.seq >= gw->chans[ch].flushed_seq) {
        gw_metrics.rr_ignored[ch]++; /* wrong session, zero count, or not yet sent */
        return;
    }
    uint64_t first = req.seq;
    uint64_t last = req.seq + req.count; /* exclusive */
    if (last > gw->chans[ch].flushed_seq)
        last = gw->chans[ch].flushed_seq;
    const gw_store_t *st = &gw->chans[ch].store;
    uint64_t oldest = st->count ? st->first_seq : gw->chans[ch].flushed_seq;
    if (first < oldest) {
        uint64_t gone = (last < oldest ? last : oldest) - first;
        gw_metrics.rr_unservable[ch] += gone;
        first = first + gone;
    }
    if (first >= last) {
        gw_metrics.rr_ignored[ch]++;
        return;
    }
    uint64_t want = last - first;
    if (want > gw->cfg.retransmit_max_messages)
        want = gw->cfg.retransmit_max_messages;
    uint32_t addr = ((const struct sockaddr_in *)from)->sin_addr.s_addr;
    bucket_t *bk = find_bucket(rt, &gw->cfg, addr, uv_hrtime());
    if (bk->tokens < 1) {
        gw_metrics.rr_limited[ch]++;
        return;
    }
    if ((double)want > bk->tokens)
        want = (uint64_t)bk->tokens;
    uint32_t sent = answer(rt, s, from, first, (uint32_t)want);
    bk->tokens -= sent ? sent : 1; /* even an empty answer costs: requests are work too */
    gw_metrics.rr_served[ch]++;
    gw_metrics.rr_messages[ch] += sent;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    rt_sock_t *s = h->data;
    gw_retransmit_t *rt = s->rt;
    *buf = uv_buf_init((char *)rt->rbuf, sizeof(rt->rbuf));
}

static void on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    rt_sock_t *s = h->data;
    if (n <= 0 || !from || from->sa_family != AF_INET)
        return;
    if (flags & UV_UDP_PARTIAL) {
        gw_metrics.rr_ignored[s->ch]++;
        return;
    }
    handle_request(s->rt, s, (const uint8_t *)buf->base, (size_t)n, from);
}

int gw_retransmit_start(gw_t *gw)
{
    gw_retransmit_t *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return -1;
    gw->retransmit = rt;
    for (int ch = 0; ch < gw->cfg.nchannels; ch++) {
        rt_sock_t *s = &rt->socks[ch];
        s->gw = gw;
        s->rt = rt;
        s->ch = ch;
        uv_udp_init(gw->loop, &s->udp);
        s->udp.data = s;
        rt->nsocks++;
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_addr = gw->cfg.retransmit_addr,
                                .sin_port = htons(gw->cfg.channels[ch].retransmit_port)};
        int rc = uv_udp_bind(&s->udp, (const struct sockaddr *)&a, 0);
        if (rc == 0)
            rc = uv_udp_recv_start(&s->udp, on_alloc, on_recv);
        if (rc) {
            gw_log(GW_LOG_ERROR, "channel %s: retransmission port %u: %s",
                   gw->cfg.channels[ch].name, gw->cfg.channels[ch].retransmit_port,
                   uv_strerror(rc));
            return -1;
        }
    }
    return 0;
}

static void on_rt_closed(uv_handle_t *h)
{
    rt_sock_t *s = h->data;
    gw_retransmit_t *rt = s->rt;
    if (--rt->open_handles == 0)
        free(rt);
}

void gw_retransmit_stop(gw_t *gw)
{
    gw_retransmit_t *rt = gw->retransmit;
    if (!rt)
        return;
    gw->retransmit = NULL;
    if (rt->nsocks == 0) {
        free(rt);
        return;
    }
    rt->open_handles = rt->nsocks;
    for (int i = 0; i < rt->nsocks; i++)
        uv_close((uv_handle_t *)&rt->socks[i].udp, on_rt_closed);
}
