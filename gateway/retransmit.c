/* Retransmission server: per channel, unicast UDP on the channel's retransmission port. A
 * re-request (a bare MoldUDP64 header: session, first sequence, count) for this channel's
 * session is answered from the store with ordinary MoldUDP64 packets, unicast back to the
 * requester, at most retransmit_max_messages per request. A token bucket per requester
 * address (messages per second, with a burst) keeps one address from pulling more than its
 * share, so the server cannot be used to amplify traffic toward a spoofed source. */
#include "retransmit.h"

#include "log.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uv_udp_t udp;
    gw_retransmit_t *rt;
    int ch;
} rt_sock_t;

struct gw_retransmit {
    const gw_config_t *cfg;
    const gw_store_t *stores;
    const uint64_t *flushed_seq;
    gw_journal_t *journal;
    gw_retransmit_stats_t *stats;
    rt_sock_t socks[GW_MAX_CHANNELS];
    int nsocks;
    int open_handles;
    gw_rr_limiter_t limiter;
    uint8_t rbuf[MDFEED_MOLD_MAX_DATAGRAM];
    uint8_t pkt[MDFEED_MOLD_MAX_DATAGRAM];
};

void gw_rr_limiter_init(gw_rr_limiter_t *lim, double rate, double burst)
{
    memset(lim, 0, sizeof(*lim));
    lim->rate = rate;
    lim->burst = burst;
}

/* The requester's bucket, refilled to now; a new requester takes the least recently seen
 * slot with a full bucket. */
static gw_rr_bucket_t *find_bucket(gw_rr_limiter_t *lim, uint32_t addr, uint64_t now)
{
    gw_rr_bucket_t *oldest = &lim->buckets[0];
    for (int i = 0; i < GW_RR_REQUESTERS; i++) {
        gw_rr_bucket_t *b = &lim->buckets[i];
        if (b->last_ns && b->addr == addr) {
            double dt = (double)(now - b->last_ns) / 1e9;
            b->tokens += dt * lim->rate;
            if (b->tokens > lim->burst)
                b->tokens = lim->burst;
            b->last_ns = now;
            return b;
        }
        if (b->last_ns < oldest->last_ns)
            oldest = b;
    }
    oldest->addr = addr;
    oldest->tokens = lim->burst;
    oldest->last_ns = now ? now : 1;
    return oldest;
}

uint64_t gw_rr_limiter_allow(gw_rr_limiter_t *lim, uint32_t addr, uint64_t want, uint64_t now_ns)
{
    gw_rr_bucket_t *b = find_bucket(lim, addr, now_ns);
    if (b->tokens < 1)
        return 0;
    return (double)want > b->tokens ? (uint64_t)b->tokens : want;
}

void gw_rr_limiter_charge(gw_rr_limiter_t *lim, uint32_t addr, uint64_t sent)
{
    for (int i = 0; i < GW_RR_REQUESTERS; i++) {
        gw_rr_bucket_t *b = &lim->buckets[i];
        if (b->last_ns && b->addr == addr) {
            b->tokens -= sent ? (double)sent : 1.0;
            return;
        }
    }
}

/* An answer in progress: messages are appended to MoldUDP64 packets that go out as they
 * fill, whichever source (ring or journal) the messages come from. */
typedef struct {
    gw_retransmit_t *rt;
    rt_sock_t *s;
    const struct sockaddr *to;
    mdfeed_mold_builder_t b;
    uint64_t next; /* sequence number of the next message to append */
    uint32_t sent; /* messages that went out */
    bool broken;
} answer_t;

static bool answer_flush(answer_t *a)
{
    uint16_t n = a->b.count;
    size_t dlen = mdfeed_mold_builder_finish(&a->b);
    if (n == 0)
        return true;
    uv_buf_t buf = uv_buf_init((char *)a->rt->pkt, (unsigned)dlen);
    if (uv_udp_try_send(&a->s->udp, &buf, 1, a->to) < 0) {
        a->rt->stats->send_errors++;
        a->broken = true;
        return false;
    }
    a->sent += n;
    return true;
}

static bool answer_add(answer_t *a, const uint8_t *msg, size_t len)
{
    if (a->b.len == 0)
        mdfeed_mold_builder_open(&a->b, a->next);
    int rc = mdfeed_mold_builder_append(&a->b, msg, len);
    if (rc == MDFEED_EFULL) {
        if (!answer_flush(a))
            return false;
        mdfeed_mold_builder_open(&a->b, a->next);
        rc = mdfeed_mold_builder_append(&a->b, msg, len);
    }
    if (rc != 0)
        return false;
    a->next++;
    return true;
}

static int add_from_journal(void *data, uint64_t seq, const uint8_t *msg, size_t len)
{
    answer_t *a = data;
    return seq == a->next && answer_add(a, msg, len) ? 0 : 1;
}

/* Sends messages [seq, seq + count): those below the ring's oldest from the journal, the
 * rest from the ring. Returns how many went out. */
static uint32_t answer(gw_retransmit_t *rt, rt_sock_t *s, const struct sockaddr *to, uint64_t seq,
                       uint32_t count)
{
    const gw_store_t *st = &rt->stores[s->ch];
    answer_t a = {.rt = rt, .s = s, .to = to, .next = seq};
    if (mdfeed_mold_builder_init(&a.b, rt->pkt, rt->cfg->payload_budget,
                                 rt->cfg->channels[s->ch].session) != 0)
        return 0;
    a.b.len = 0;
    uint64_t end = seq + count;
    uint64_t oldest = st->count ? st->first_seq : end;
    if (rt->journal && a.next < oldest) {
        uint64_t n = (oldest < end ? oldest : end) - a.next;
        int got = gw_journal_read(rt->journal, s->ch, a.next, (uint32_t)n,
                                  (size_t)n * 64 + rt->cfg->payload_budget, add_from_journal, &a);
        if (got > 0)
            rt->stats->from_journal[s->ch] += (uint64_t)got;
    }
    while (!a.broken && a.next < end) {
        const uint8_t *msg;
        size_t len;
        if (gw_store_get(st, a.next, &msg, &len) != 0 || !answer_add(&a, msg, len))
            break;
    }
    if (!a.broken)
        answer_flush(&a);
    return a.sent;
}

static void handle_request(gw_retransmit_t *rt, rt_sock_t *s, const uint8_t *data, size_t len,
                           const struct sockaddr *from)
{
    int ch = s->ch;
    gw_retransmit_stats_t *stats = rt->stats;
    uint64_t flushed = rt->flushed_seq[ch];
    mdfeed_mold_header_t req;
    if (mdfeed_mold_request_decode(data, len, &req) != 0 ||
        memcmp(req.session, rt->cfg->channels[ch].session, MDFEED_MOLD_SESSION_LEN) != 0 ||
        req.count == 0 || req.count == MDFEED_MOLD_COUNT_END || req.seq == 0 ||
        req.seq >= flushed) {
        stats->ignored[ch]++; /* wrong session, zero count, or not yet sent */
        return;
    }
    uint64_t first = req.seq;
    uint64_t last = req.seq + req.count; /* exclusive */
    if (last > flushed)
        last = flushed;
    const gw_store_t *st = &rt->stores[ch];
    uint64_t oldest = st->count ? st->first_seq : flushed;
    if (rt->journal)
        oldest = 1; /* the journal holds what the ring lost (what it no longer holds: below) */
    if (first < oldest) {
        uint64_t gone = (last < oldest ? last : oldest) - first;
        stats->unservable[ch] += gone;
        first = first + gone;
    }
    if (first >= last) {
        stats->ignored[ch]++;
        return;
    }
    uint64_t want = last - first;
    if (want > rt->cfg->retransmit_max_messages)
        want = rt->cfg->retransmit_max_messages;
    uint32_t addr = ((const struct sockaddr_in *)from)->sin_addr.s_addr;
    want = gw_rr_limiter_allow(&rt->limiter, addr, want, uv_hrtime());
    if (want == 0) {
        stats->limited[ch]++;
        return;
    }
    uint32_t sent = answer(rt, s, from, first, (uint32_t)want);
    gw_rr_limiter_charge(&rt->limiter, addr, sent);
    stats->served[ch]++;
    stats->messages[ch] += sent;
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
        s->rt->stats->ignored[s->ch]++;
        return;
    }
    handle_request(s->rt, s, (const uint8_t *)buf->base, (size_t)n, from);
}

int gw_retransmit_start(gw_retransmit_t **out, uv_loop_t *loop, const gw_config_t *cfg,
                        const gw_store_t *stores, const uint64_t *flushed_seq,
                        gw_journal_t *journal, gw_retransmit_stats_t *stats)
{
    gw_retransmit_t *rt = calloc(1, sizeof(*rt));
    *out = rt;
    if (!rt)
        return -1;
    rt->cfg = cfg;
    rt->stores = stores;
    rt->flushed_seq = flushed_seq;
    rt->journal = journal;
    rt->stats = stats;
    gw_rr_limiter_init(&rt->limiter, cfg->retransmit_rate, cfg->retransmit_burst);
    for (int ch = 0; ch < cfg->nchannels; ch++) {
        rt_sock_t *s = &rt->socks[ch];
        s->rt = rt;
        s->ch = ch;
        uv_udp_init(loop, &s->udp);
        s->udp.data = s;
        rt->nsocks++;
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_addr = cfg->retransmit_addr,
                                .sin_port = htons(cfg->channels[ch].retransmit_port)};
        int rc = uv_udp_bind(&s->udp, (const struct sockaddr *)&a, 0);
        if (rc == 0)
            rc = uv_udp_recv_start(&s->udp, on_alloc, on_recv);
        if (rc) {
            gw_log(GW_LOG_ERROR, "channel %s: retransmission port %u: %s", cfg->channels[ch].name,
                   cfg->channels[ch].retransmit_port, uv_strerror(rc));
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

void gw_retransmit_stop(gw_retransmit_t *rt)
{
    if (!rt)
        return;
    if (rt->nsocks == 0) {
        free(rt);
        return;
    }
    rt->open_handles = rt->nsocks;
    for (int i = 0; i < rt->nsocks; i++)
        uv_close((uv_handle_t *)&rt->socks[i].udp, on_rt_closed);
}
