/* Sequencer: numbers are contiguous per channel, every message lands in the store and on
 * the wire; the inline fast path sends and stores exactly what the general path does (same
 * random messages through both, datagram bytes and ring contents compared); a message too
 * big for a packet is refused whole; a skip continues both store and packets at the new
 * number. Real store and packetizer, egress over the fake backend. */
#include "gw_fake_egress.h"
#include "sequencer.h"
#include "task.h"

#include <stdlib.h>

#define WIRE_CAP (4u << 20)

typedef struct {
    uint8_t *bytes;
    size_t len;
} wire_t;

static void capture(void *data, const gw_send_t *send, int res, uint64_t now_ns)
{
    (void)now_ns;
    wire_t *w = data;
    if (res < 0 || send->sock % GW_MAX_LINES != 0)
        return;
    ASSERT_LE(w->len + send->pkt->len, WIRE_CAP);
    memcpy(w->bytes + w->len, send->pkt->buf, send->pkt->len);
    w->len += send->pkt->len;
}

typedef struct {
    gw_config_t cfg;
    gw_pool_t pool;
    gw_egress_t eg;
    gw_packetizer_t pz;
    gw_store_t stores[GW_MAX_CHANNELS];
    gw_sequencer_t sq;
    wire_t wire;
} rig_t;

static void rig_setup(rig_t *r)
{
    memset(r, 0, sizeof(*r));
    r->cfg.payload_budget = 1400;
    r->cfg.nchannels = 2;
    for (int ch = 0; ch < 2; ch++) {
        r->cfg.channels[ch].nlines = 1;
        mdfeed_mold_session_set(r->cfg.channels[ch].session, ch ? "SEQ1" : "SEQ0");
        ASSERT_EQ(gw_store_init(&r->stores[ch], 4096, 1u << 20), 0);
    }
    r->wire.bytes = malloc(WIRE_CAP);
    ASSERT(r->wire.bytes != NULL);
    ASSERT_EQ(gw_pool_init(&r->pool, 64, 1400), 0);
    fake_egress_setup(&r->eg, &r->pool, &r->cfg, capture, &r->wire);
    ASSERT_EQ(gw_packetizer_init(&r->pz, &r->pool, &r->eg, &r->cfg, 256), 0);
    gw_sequencer_init(&r->sq, &r->cfg, r->stores, &r->pz, NULL);
}

static void rig_close(rig_t *r)
{
    gw_packetizer_close(&r->pz);
    gw_pool_close(&r->pool);
    for (int ch = 0; ch < 2; ch++)
        gw_store_close(&r->stores[ch]);
    free(r->wire.bytes);
}

/* Feeds the same pseudo-random stream (flushes at random points) through one path. */
static void feed(rig_t *r, bool fast, unsigned seed)
{
    srand(seed);
    uint8_t msg[1400];
    for (int i = 0; i < 20000; i++) {
        int ch = rand() % 2;
        size_t len = (size_t)(rand() % 4 == 0 ? rand() % 1378 : rand() % 60);
        for (size_t k = 0; k < len; k++)
            msg[k] = (uint8_t)rand();
        uint64_t want = gw_sequencer_next(&r->sq, ch);
        uint64_t got =
            fast ? gw_sequence(&r->sq, ch, 0, msg, len, 1) : gw_sequence_slow(&r->sq, ch, 0, msg, len, 1);
        ASSERT_UEQ(got, want);
        if (rand() % 50 == 0)
            gw_packetizer_flush(&r->pz);
    }
    gw_packetizer_flush(&r->pz);
}

static void test_fast_equals_slow(void)
{
    static rig_t a, b;
    /* One after the other: the fake backend's checks are global. */
    rig_setup(&a);
    feed(&a, true, 7);
    rig_setup(&b);
    feed(&b, false, 7);
    ASSERT_UEQ(a.wire.len, b.wire.len);
    ASSERT(memcmp(a.wire.bytes, b.wire.bytes, a.wire.len) == 0);
    for (int ch = 0; ch < 2; ch++) {
        ASSERT_UEQ(a.sq.next_seq[ch], b.sq.next_seq[ch]);
        ASSERT_UEQ(a.stores[ch].first_seq, b.stores[ch].first_seq);
        ASSERT_UEQ(a.stores[ch].count, b.stores[ch].count);
        for (uint64_t s = a.stores[ch].first_seq; s < a.sq.next_seq[ch]; s++) {
            const uint8_t *ma, *mb;
            size_t la, lb;
            ASSERT_EQ(gw_store_get(&a.stores[ch], s, &ma, &la), 0);
            ASSERT_EQ(gw_store_get(&b.stores[ch], s, &mb, &lb), 0);
            ASSERT_UEQ(la, lb);
            ASSERT(memcmp(ma, mb, la) == 0);
        }
        ASSERT_UEQ(fake.next_expected[ch], b.sq.next_seq[ch]); /* contiguous on the wire */
    }
    rig_close(&a);
    rig_close(&b);
}

static void test_refuse_and_skip(void)
{
    static rig_t r;
    rig_setup(&r);
    uint8_t msg[1400] = {0};
    ASSERT_UEQ(gw_sequence(&r.sq, 0, -1, msg, 10, 1), 1);
    /* 1400 - 20 - 2 = 1378 is the largest message: 1379 is refused, the number not used. */
    ASSERT_UEQ(gw_sequence(&r.sq, 0, -1, msg, 1379, 1), 0);
    ASSERT_UEQ(gw_sequencer_next(&r.sq, 0), 2);
    gw_sequencer_skip_to(&r.sq, 0, 1000);
    ASSERT_UEQ(gw_sequencer_next(&r.sq, 0), 1000);
    ASSERT_UEQ(fake.next_expected[0], 2); /* message 1 went out before the skip */
    fake.next_expected[0] = 1000;
    ASSERT_UEQ(gw_sequence(&r.sq, 0, -1, msg, 10, 1), 1000);
    gw_packetizer_flush(&r.pz);
    ASSERT_UEQ(fake.next_expected[0], 1001);
    const uint8_t *m;
    size_t len;
    ASSERT_EQ(gw_store_get(&r.stores[0], 1000, &m, &len), 0); /* stored after the skip */
    ASSERT_EQ(gw_store_get(&r.stores[0], 1, &m, &len), -ENOENT);
    rig_close(&r);
}

int main(void)
{
    test_fast_equals_slow();
    test_refuse_and_skip();
    printf("test_gw_sequencer: ok\n");
    return 0;
}
