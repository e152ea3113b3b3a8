/* Retransmission store: bounded by count and by bytes, contiguous sequences, exact bytes
 * back, eviction of the oldest, wrap-around of the byte ring (checked against a model). */
#include "store.h"
#include "task.h"

#include <errno.h>

/* Deterministic message content for sequence `seq`. */
static size_t make_msg(uint64_t seq, uint8_t *buf, size_t maxlen)
{
    size_t len = (size_t)((seq * 2654435761u) % maxlen);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seq + i * 7);
    return len;
}

static void test_count_bound(void)
{
    gw_store_t s;
    ASSERT_EQ(gw_store_init(&s, 16, 1 << 20), 0);
    uint8_t m[8];
    for (uint64_t seq = 1; seq <= 100; seq++) {
        memcpy(m, &seq, sizeof(seq));
        ASSERT_EQ(gw_store_append(&s, seq, m, sizeof(m)), 0);
        ASSERT_LE(s.count, 16);
    }
    ASSERT_EQ(s.count, 16);
    ASSERT_UEQ(s.first_seq, 85);
    const uint8_t *p;
    size_t len;
    ASSERT_EQ(gw_store_get(&s, 84, &p, &len), -ENOENT);
    ASSERT_EQ(gw_store_get(&s, 101, &p, &len), -ENOENT);
    for (uint64_t seq = 85; seq <= 100; seq++) {
        ASSERT_EQ(gw_store_get(&s, seq, &p, &len), 0);
        ASSERT_EQ(len, 8);
        uint64_t got;
        memcpy(&got, p, sizeof(got));
        ASSERT_UEQ(got, seq);
    }
    /* Out-of-order sequence numbers are refused. */
    ASSERT_EQ(gw_store_append(&s, 200, m, 1), -EINVAL);
    gw_store_close(&s);
}

static void test_byte_bound_and_wrap(void)
{
    enum { CAP_BYTES = 4096, MAXLEN = 700 };
    gw_store_t s;
    ASSERT_EQ(gw_store_init(&s, 100000, CAP_BYTES), 0);
    uint8_t m[MAXLEN], want[MAXLEN];
    uint64_t evicted_ok = 0;
    for (uint64_t seq = 1; seq <= 20000; seq++) {
        size_t len = make_msg(seq, m, MAXLEN);
        ASSERT_EQ(gw_store_append(&s, seq, m, len), 0);
        ASSERT_LE(s.live_bytes, CAP_BYTES);
        ASSERT_GE(s.count, 1);
        /* The newest message is always there, and every held one reads back exactly. */
        ASSERT_UEQ(s.first_seq + s.count - 1, seq);
        for (uint64_t q = s.first_seq; q <= seq; q++) {
            const uint8_t *p;
            size_t l;
            ASSERT_EQ(gw_store_get(&s, q, &p, &l), 0);
            size_t wl = make_msg(q, want, MAXLEN);
            ASSERT_EQ(l, wl);
            ASSERT_MEM_EQ(p, want, wl);
        }
        if (s.first_seq > 1)
            evicted_ok++;
    }
    ASSERT_GT(evicted_ok, 0);
    /* Eviction is by bytes, not by count, here: far fewer than 100000 are held. */
    ASSERT_LT(s.count, 100);
    ASSERT_EQ(gw_store_append(&s, 20001, m, CAP_BYTES + 1), -E2BIG);
    gw_store_close(&s);
}

static void test_zero_length_and_full_size(void)
{
    gw_store_t s;
    ASSERT_EQ(gw_store_init(&s, 4, 100), 0);
    uint8_t big[100];
    memset(big, 0xab, sizeof(big));
    ASSERT_EQ(gw_store_append(&s, 1, NULL, 0), 0);
    ASSERT_EQ(gw_store_append(&s, 2, big, 100), 0); /* evicts nothing by bytes: 0 + 100 */
    ASSERT_EQ(s.count, 2);
    ASSERT_EQ(gw_store_append(&s, 3, big, 1), 0); /* must evict message 2 */
    const uint8_t *p;
    size_t len;
    ASSERT_EQ(gw_store_get(&s, 2, &p, &len), -ENOENT);
    ASSERT_EQ(gw_store_get(&s, 3, &p, &len), 0);
    ASSERT_EQ(len, 1);
    ASSERT_EQ(p[0], 0xab);
    gw_store_close(&s);
    gw_store_close(&s); /* safe twice */
}

int main(void)
{
    test_count_bound();
    test_byte_bound_and_wrap();
    test_zero_length_and_full_size();
    printf("test_gw_store: ok\n");
    return 0;
}
