/* A fake egress backend for the gateway's unit tests: it takes the place of io_uring or
 * sendmmsg behind the ops table, validates every datagram with the library's decoder,
 * records data packets per channel and completes each send at once (or holds them, to
 * test that buffers come back only after completion). */
#ifndef GW_FAKE_EGRESS_H
#define GW_FAKE_EGRESS_H

#include "egress_backend.h"
#include "task.h"

#include <string.h>

typedef struct {
    unsigned submits;
    unsigned sends;
    unsigned packets_seen; /* data packets on line A */
    unsigned full_packets; /* of those, packets that could not take one more 40-byte message */
    unsigned headers[2];   /* heartbeats, ends of session (line A) */
    uint64_t next_expected[GW_MAX_CHANNELS];
    uint32_t budget;
    const gw_config_t *cfg;
    bool hold; /* keep sends in flight until fake_release_held() */
    gw_send_t held[4096];
    unsigned nheld;
} fake_egress_t;

static fake_egress_t fake;

static int fake_init(gw_egress_t *eg)
{
    (void)eg;
    return 0;
}

static void fake_check(const gw_send_t *s)
{
    mdfeed_mold_packet_t pkt;
    ASSERT_LE(s->pkt->len, fake.budget);
    ASSERT_EQ(mdfeed_mold_decode(s->pkt->buf, s->pkt->len, &pkt), 0);
    if (s->sock % GW_MAX_LINES != 0)
        return;
    int ch = (int)(s->sock / GW_MAX_LINES);
    ASSERT_MEM_EQ(pkt.hdr.session, fake.cfg->channels[ch].session, 10);
    if (pkt.kind == MDFEED_MOLD_DATA) {
        ASSERT_UEQ(pkt.hdr.seq, fake.next_expected[ch]);
        fake.next_expected[ch] += pkt.hdr.count;
        fake.packets_seen++;
        if (s->pkt->len + 42 > fake.budget)
            fake.full_packets++;
    } else {
        ASSERT_UEQ(pkt.hdr.seq, fake.next_expected[ch]); /* headers announce the next one */
        fake.headers[pkt.kind == MDFEED_MOLD_END_OF_SESSION]++;
    }
}

static int fake_submit(gw_egress_t *eg, const gw_send_t *sends, unsigned n)
{
    fake.submits++;
    eg->now_ns = uv_hrtime();
    for (unsigned i = 0; i < n; i++) {
        fake.sends++;
        fake_check(&sends[i]);
        if (fake.hold) {
            ASSERT_LT(fake.nheld, 4096);
            fake.held[fake.nheld++] = sends[i];
            eg->inflight++;
        } else {
            gw_egress_complete(eg, &sends[i], (int)sends[i].pkt->len);
        }
    }
    return 0;
}

static void fake_release_held(gw_egress_t *eg)
{
    eg->now_ns = uv_hrtime();
    for (unsigned i = 0; i < fake.nheld; i++) {
        eg->inflight--;
        gw_egress_complete(eg, &fake.held[i], (int)fake.held[i].pkt->len);
    }
    fake.nheld = 0;
}

static void fake_drain(gw_egress_t *eg, int timeout_ms)
{
    (void)timeout_ms;
    fake_release_held(eg);
}

static void fake_close(gw_egress_t *eg)
{
    (void)eg;
}

static const gw_egress_ops_t fake_ops = {"fake", fake_init, fake_submit, fake_drain, fake_close};

/* An egress stage over the fake backend: no sockets. */
static void fake_egress_setup(gw_egress_t *eg, gw_pool_t *pool, const gw_config_t *cfg,
                              gw_sent_cb on_sent, void *data)
{
    memset(eg, 0, sizeof(*eg));
    memset(&fake, 0, sizeof(fake));
    for (unsigned i = 0; i < GW_MAX_SOCKETS; i++)
        eg->fds[i] = -1;
    eg->ops = &fake_ops;
    eg->backend_name = "fake";
    eg->pool = pool;
    eg->on_sent = on_sent;
    eg->data = data;
    fake.budget = cfg->payload_budget;
    fake.cfg = cfg;
    for (int ch = 0; ch < GW_MAX_CHANNELS; ch++)
        fake.next_expected[ch] = 1;
}

#endif /* GW_FAKE_EGRESS_H */
