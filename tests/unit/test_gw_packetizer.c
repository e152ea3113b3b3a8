/* Packetizer: packets never exceed the payload budget, fill up to it under load (natural
 * batching), close at the flush, carry contiguous sequence numbers and decode with the
 * library's validating decoder. */
#include "gateway.h"
#include "task.h"

#include <errno.h>

static gw_pool_t pool;
static gw_packetizer_t pz;
static gw_config_t cfg;
static unsigned submits;

/* Stands in for egress: checks every queued datagram, then releases it. */
static uint64_t next_expected[GW_MAX_CHANNELS];
static unsigned packets_seen, full_packets;

static void check_and_release(gw_packetizer_t *p)
{
    submits++;
    for (unsigned i = 0; i < p->npending; i++) {
        gw_send_t *s = &p->pending[i];
        mdfeed_mold_packet_t pkt;
        ASSERT_LE(s->pkt->len, cfg.payload_budget);
        ASSERT_EQ(mdfeed_mold_decode(s->pkt->buf, s->pkt->len, &pkt), 0);
        if (s->sock % GW_MAX_LINES == 0 && pkt.kind == MDFEED_MOLD_DATA) {
            int ch = s->pkt->channel;
            ASSERT_UEQ(pkt.hdr.seq, next_expected[ch]);
            ASSERT_MEM_EQ(pkt.hdr.session, cfg.channels[ch].session, 10);
            next_expected[ch] += pkt.hdr.count;
            packets_seen++;
            /* A full packet could not take one more 40-byte message. */
            if (s->pkt->len + 42 > cfg.payload_budget)
                full_packets++;
        }
        if (--s->pkt->refs == 0)
            gw_pool_put(&pool, s->pkt);
    }
    p->npending = 0;
}

static void setup(uint32_t budget, unsigned max_pending)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.payload_budget = budget;
    cfg.nchannels = 2;
    mdfeed_mold_session_set(cfg.channels[0].session, "CHAN0");
    mdfeed_mold_session_set(cfg.channels[1].session, "CHAN1");
    cfg.channels[0].nlines = 2;
    cfg.channels[1].nlines = 1;
    ASSERT_EQ(gw_pool_init(&pool, 8, budget), 0);
    ASSERT_EQ(gw_packetizer_init(&pz, &pool, &cfg, max_pending), 0);
    pz.submit = check_and_release;
    pz.need_buffer = check_and_release;
    next_expected[0] = next_expected[1] = 1;
    packets_seen = full_packets = submits = 0;
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
    /* Busy: 10000 messages in one "loop iteration" fill packets to the budget. */
    for (uint64_t seq = 1; seq <= 10000; seq++)
        ASSERT_EQ(gw_packetizer_append(&pz, 0, seq, msg, sizeof(msg), 1), 0);
    ASSERT_EQ(gw_packetizer_close_open(&pz), 1);
    check_and_release(&pz);
    ASSERT_UEQ(next_expected[0], 10001);
    /* (1400 - 20) / 42 = 32 messages per packet: 313 packets, all but the last full. */
    ASSERT_EQ(packets_seen, (10000 + 31) / 32);
    ASSERT_EQ(full_packets, packets_seen - 1);
    /* Quiet: one message per iteration goes out alone, at once. */
    packets_seen = 0;
    for (uint64_t seq = 10001; seq <= 10005; seq++) {
        ASSERT_EQ(gw_packetizer_append(&pz, 0, seq, msg, 10, 1), 0);
        ASSERT_EQ(gw_packetizer_close_open(&pz), 1);
        ASSERT_EQ(pz.npending, 2); /* lines A and B */
        check_and_release(&pz);
    }
    ASSERT_EQ(packets_seen, 5);
    ASSERT_EQ(gw_packetizer_close_open(&pz), 0); /* nothing open: nothing sent */
    ASSERT_EQ(pool.free_count, pool.n);          /* every buffer came back */
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
    gw_packetizer_close_open(&pz);
    check_and_release(&pz);
    ASSERT_UEQ(next_expected[1], 3);
    /* Two channels interleaved keep separate sequence spaces and packets. */
    for (uint64_t i = 0; i < 200; i++) {
        ASSERT_EQ(gw_packetizer_append(&pz, 0, 1 + i, msg, i % 50, 1), 0);
        ASSERT_EQ(gw_packetizer_append(&pz, 1, 3 + i, msg, (i * 7) % 78, 1), 0);
    }
    gw_packetizer_close_open(&pz);
    check_and_release(&pz);
    ASSERT_UEQ(next_expected[0], 201);
    ASSERT_UEQ(next_expected[1], 203);
    ASSERT_GT(submits, 2); /* the pending batch (16) filled up and went out early */
    /* Heartbeat and end of session are bare headers. */
    ASSERT_EQ(gw_packetizer_header(&pz, 0, cfg.channels[0].session, 201, 0), 0);
    ASSERT_EQ(pz.npending, 2);
    ASSERT_EQ(pz.pending[0].pkt->len, 20);
    check_and_release(&pz);
    ASSERT_EQ(pool.free_count, pool.n);
    teardown();
}

int main(void)
{
    test_natural_batching();
    test_budget_edges();
    printf("test_gw_packetizer: ok\n");
    return 0;
}
