/* Egress stage against a fake backend: what it counts per send (packets and bytes per line,
 * datagrams per flush, arrival -> send weighted by messages, failures, retries by reason),
 * the completion callback it reports through, and the packet reference it drops. */
#include "gw_fake_egress.h"
#include "task.h"

#include <errno.h>

static unsigned sent_cb_calls;
static int last_res;

static void on_sent(void *data, const gw_send_t *send, int res, uint64_t now_ns)
{
    (void)send;
    (void)now_ns;
    ASSERT(data == &sent_cb_calls);
    sent_cb_calls++;
    last_res = res;
}

static gw_config_t cfg;
static gw_pool_t pool;
static gw_egress_t eg;

static gw_packet_t *data_packet(int ch, uint64_t seq, uint16_t count, uint64_t arrival)
{
    gw_packet_t *pkt = gw_pool_get(&pool);
    ASSERT(pkt != NULL);
    mdfeed_mold_builder_t b;
    ASSERT_EQ(mdfeed_mold_builder_init(&b, pkt->buf, cfg.payload_budget, cfg.channels[ch].session),
              0);
    mdfeed_mold_builder_open(&b, seq);
    for (uint16_t i = 0; i < count; i++)
        ASSERT_EQ(mdfeed_mold_builder_append(&b, "abcd", 4), 0);
    pkt->count = count;
    pkt->len = (uint32_t)mdfeed_mold_builder_finish(&b);
    pkt->first_arrival_ns = arrival;
    pkt->channel = ch;
    return pkt;
}

static void test_counts_and_callback(void)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.payload_budget = 1400;
    cfg.nchannels = 1;
    cfg.channels[0].nlines = 2;
    mdfeed_mold_session_set(cfg.channels[0].session, "EGRESS");
    ASSERT_EQ(gw_pool_init(&pool, 4, 1400), 0);
    fake_egress_setup(&eg, &pool, &cfg, on_sent, &sent_cb_calls);
    gw_packet_t *pkt = data_packet(0, 1, 3, uv_hrtime());
    pkt->refs = 2;
    gw_send_t sends[2] = {{pkt, (uint16_t)gw_egress_sock(0, 0), 0},
                          {pkt, (uint16_t)gw_egress_sock(0, 1), 0}};
    ASSERT_EQ(gw_egress_submit(&eg, sends, 2), 0);
    ASSERT_EQ(sent_cb_calls, 2);
    ASSERT_EQ(last_res, (int)pkt->len);
    ASSERT_EQ(pool.free_count, pool.n); /* both references dropped */
    ASSERT_UEQ(eg.stats.packets_out[0], 1);
    ASSERT_UEQ(eg.stats.packets_out[1], 1);
    ASSERT_UEQ(eg.stats.bytes_out[0], 20 + 3 * 6);
    ASSERT_UEQ(eg.stats.flush_count, 1);
    ASSERT_UEQ(eg.stats.flush_sum, 2);
    /* Latency once per packet (line A), weighted by its 3 messages. */
    ASSERT_UEQ(eg.stats.lat_count, 3);
    /* A failed send is counted, reported, and still releases its buffer. */
    gw_send_t bad = {data_packet(0, 2, 1, uv_hrtime()), 0, 0};
    bad.pkt->refs = 1;
    gw_egress_complete(&eg, &bad, -EMSGSIZE);
    ASSERT_EQ(last_res, -EMSGSIZE);
    ASSERT_UEQ(eg.stats.send_errors, 1);
    ASSERT_EQ(pool.free_count, pool.n);
    /* Retries by reason; the start-up probe's are not counted. */
    gw_egress_count_retry(&eg, -ENOBUFS, false);
    gw_egress_count_retry(&eg, -EAGAIN, false);
    gw_egress_count_retry(&eg, 100, true);
    eg.probing = true;
    gw_egress_count_retry(&eg, -ENOBUFS, false);
    eg.probing = false;
    ASSERT_UEQ(eg.stats.send_retries, 3);
    ASSERT_UEQ(eg.stats.retry_reasons[GW_RETRY_ENOBUFS], 1);
    ASSERT_UEQ(eg.stats.retry_reasons[GW_RETRY_EAGAIN], 1);
    ASSERT_UEQ(eg.stats.retry_reasons[GW_RETRY_SHORT], 1);
    ASSERT_STR_EQ(gw_retry_reason_names[GW_RETRY_CANCELED], "canceled");
    gw_pool_close(&pool);
}

static void test_backoff(void)
{
    gw_egress_t e;
    memset(&e, 0, sizeof(e));
    e.retry_backoff_ms = GW_RETRY_MIN_MS;
    for (int i = 0; i < 10; i++)
        gw_egress_backoff_update(&e, true);
    ASSERT_EQ(e.retry_backoff_ms, GW_RETRY_MAX_MS);
    gw_egress_backoff_update(&e, false);
    ASSERT_EQ(e.retry_backoff_ms, GW_RETRY_MIN_MS);
}

int main(void)
{
    test_counts_and_callback();
    test_backoff();
    printf("test_gw_egress: ok\n");
    return 0;
}
