/* Packetizer: packets never exceed the payload budget, fill up to it under load (natural
 * batching), close at the flush, carry contiguous sequence numbers and decode with the
 * library's validating decoder; heartbeats and end of session follow the data and announce
 * the next sequence number. Egress is the real stage over a fake backend. */
#include "gw_fake_egress.h"
#include "packetizer.h"
#include "task.h"

#include <errno.h>

static gw_pool_t pool;
static gw_egress_t eg;
static gw_packetizer_t pz;
static gw_config_t cfg;

static void setup(uint32_t budget, unsigned max_pending)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.payload_budget = budget;
    cfg.nchannels = 2;
    cfg.end_of_session_repeats = 3;
    cfg.mold_heartbeat_ms = 1000;
    mdfeed_mold_session_set(cfg.channels[0].session, "CHAN0");
    mdfeed_mold_session_set(cfg.channels[1].session, "CHAN1");
    cfg.channels[0].nlines = 2;
    cfg.channels[1].nlines = 1;
    ASSERT_EQ(gw_pool_init(&pool, 8, budget), 0);
    fake_egress_setup(&eg, &pool, &cfg, NULL, NULL);
    ASSERT_EQ(gw_packetizer_init(&pz, &pool, &eg, &cfg, max_pending), 0);
}

static void teardown(void)
{
    gw_packetizer_close(&pz);
    gw_pool_close(&pool);
}

static void test_natural_batching(void)
{
    setup(1400, 16);
    uint8_t msg[40];
    memset(msg, 'x', sizeof(msg));
    /* Busy: 10000 messages in one "loop iteration" fill packets to the budget (8 buffers:
     * the pool runs dry, and the packetizer submits and drains to get them back). */
    for (uint64_t seq = 1; seq <= 10000; seq++)
        ASSERT_EQ(gw_packetizer_append(&pz, 0, seq, msg, sizeof(msg), 1), 0);
    ASSERT_GT(gw_packetizer_flush(&pz), 0);
    ASSERT_UEQ(fake.next_expected[0], 10001);
    ASSERT_UEQ(pz.flushed_seq[0], 10001);
    /* (1400 - 20) / 42 = 32 messages per packet: 313 packets, all but the last full. */
    ASSERT_EQ(fake.packets_seen, (10000 + 31) / 32);
    ASSERT_EQ(fake.full_packets, fake.packets_seen - 1);
    /* Quiet: one message per iteration goes out alone, at once, on lines A and B. */
    fake.packets_seen = 0;
    for (uint64_t seq = 10001; seq <= 10005; seq++) {
        unsigned before = fake.sends;
        ASSERT_EQ(gw_packetizer_append(&pz, 0, seq, msg, 10, 1), 0);
        ASSERT_EQ(gw_packetizer_flush(&pz), 2);
        ASSERT_EQ(fake.sends - before, 2);
    }
    ASSERT_EQ(fake.packets_seen, 5);
    ASSERT_EQ(gw_packetizer_flush(&pz), 0); /* nothing open: nothing sent */
    ASSERT_EQ(pool.free_count, pool.n);     /* every buffer came back */
    teardown();
}

static void test_budget_edges(void)
{
    setup(100, 16);
    uint8_t msg[100];
    memset(msg, 'y', sizeof(msg));
    /* The largest message that fits an empty packet: 100 - 20 - 2 = 78 bytes. */
    ASSERT_EQ(gw_packetizer_append(&pz, 1, 1, msg, 78, 1), 0);
    ASSERT_EQ(gw_packetizer_append(&pz, 1, 2, msg, 79, 1), MDFEED_ETOOBIG);
    ASSERT_EQ(gw_packetizer_append(&pz, 1, 2, msg, 0, 1), 0); /* new packet: first is full */
    gw_packetizer_flush(&pz);
    ASSERT_UEQ(fake.next_expected[1], 3);
    /* Two channels interleaved keep separate sequence spaces and packets. */
    unsigned submits = fake.submits;
    for (uint64_t i = 0; i < 200; i++) {
        ASSERT_EQ(gw_packetizer_append(&pz, 0, 1 + i, msg, i % 50, 1), 0);
        ASSERT_EQ(gw_packetizer_append(&pz, 1, 3 + i, msg, (i * 7) % 78, 1), 0);
    }
    gw_packetizer_flush(&pz);
    ASSERT_UEQ(fake.next_expected[0], 201);
    ASSERT_UEQ(fake.next_expected[1], 203);
    ASSERT_GT(fake.submits - submits, 2); /* the pending batch (16) filled and went out early */
    /* End of session: after the data, 3 times per channel, announcing the next sequence. */
    ASSERT_EQ(gw_packetizer_append(&pz, 0, 201, msg, 5, 1), 0); /* still open */
    gw_packetizer_end_session(&pz);
    ASSERT_UEQ(fake.next_expected[0], 202);
    ASSERT_EQ(fake.headers[1], 6);
    ASSERT_UEQ(pz.stats.ends[0], 3);
    ASSERT_EQ(pool.free_count, pool.n);
    teardown();
}

/* A buffer goes back to the pool only after the last line's send completed. */
static void test_buffers_back_after_completion(void)
{
    setup(1400, 64);
    fake.hold = true;
    uint8_t msg[40] = {0};
    ASSERT_EQ(gw_packetizer_append(&pz, 0, 1, msg, sizeof(msg), 1), 0);
    ASSERT_EQ(gw_packetizer_flush(&pz), 2);
    ASSERT_EQ(pool.free_count, pool.n - 1);
    fake_release_held(&eg);
    ASSERT_EQ(pool.free_count, pool.n);
    ASSERT_UEQ(eg.stats.packets_out[gw_egress_sock(0, 0)], 1);
    ASSERT_UEQ(eg.stats.packets_out[gw_egress_sock(0, 1)], 1);
    teardown();
}

/* A channel continued elsewhere (journal recovery, upstream skip) flushes first. */
static void test_set_next(void)
{
    setup(1400, 64);
    uint8_t msg[8] = {0};
    ASSERT_EQ(gw_packetizer_append(&pz, 0, 1, msg, sizeof(msg), 1), 0);
    gw_packetizer_set_next(&pz, 0, 500);
    ASSERT_UEQ(fake.next_expected[0], 2); /* message 1 went out under its own number */
    ASSERT_UEQ(pz.next_seq[0], 500);
    fake.next_expected[0] = 500;
    ASSERT_EQ(gw_packetizer_append(&pz, 0, 500, msg, sizeof(msg), 1), 0);
    gw_packetizer_flush(&pz);
    ASSERT_UEQ(fake.next_expected[0], 501);
    teardown();
}

int main(void)
{
    test_natural_batching();
    test_budget_edges();
    test_buffers_back_after_completion();
    test_set_next();
    printf("test_gw_packetizer: ok\n");
    return 0;
}
