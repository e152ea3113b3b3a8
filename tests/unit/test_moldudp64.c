/* MoldUDP64 codec: golden bytes computed by hand for every packet kind and every rejection,
 * round trips, the iterator, and the builder (full, too big, max count, overflow). */
#include "task.h"

#include "mdfeed/moldudp64.h"

#include <errno.h>
#include <stdbool.h>

static char session[MDFEED_MOLD_SESSION_LEN];

#define SESSION_BYTES 'S', 'E', 'S', 'S', '0', '1', ' ', ' ', ' ', ' '

static void test_session(void)
{
    char s[10], str[11];
    ASSERT_EQ(mdfeed_mold_session_set(s, "SESS01"), 0);
    ASSERT_MEM_EQ(s, "SESS01    ", 10);
    ASSERT_STR_EQ(mdfeed_mold_session_str(s, str), "SESS01");
    ASSERT_EQ(mdfeed_mold_session_set(s, "0123456789"), 0);
    ASSERT_MEM_EQ(s, "0123456789", 10);
    ASSERT_STR_EQ(mdfeed_mold_session_str(s, str), "0123456789");
    /* Rejected: empty, too long, a leading space, a control character; `out` untouched. */
    memcpy(s, "UNTOUCHED!", 10);
    ASSERT_EQ(mdfeed_mold_session_set(s, ""), MDFEED_EMOLD_BAD_SESSION);
    ASSERT_EQ(mdfeed_mold_session_set(s, NULL), MDFEED_EMOLD_BAD_SESSION);
    ASSERT_EQ(mdfeed_mold_session_set(s, "01234567890"), MDFEED_EMOLD_BAD_SESSION);
    ASSERT_EQ(mdfeed_mold_session_set(s, " A"), MDFEED_EMOLD_BAD_SESSION);
    ASSERT_EQ(mdfeed_mold_session_set(s, "A\tB"), MDFEED_EMOLD_BAD_SESSION);
    ASSERT_EQ(mdfeed_mold_session_set(s, "A\x80"), MDFEED_EMOLD_BAD_SESSION);
    ASSERT_MEM_EQ(s, "UNTOUCHED!", 10);
    /* NUL padding (seen from some senders) is stripped like spaces. */
    char nul[10] = {'X', 'Y', 0, 0, 0, 0, 0, 0, 0, 0};
    ASSERT_STR_EQ(mdfeed_mold_session_str(nul, str), "XY");
}

/* Heartbeat: count 0, sequence = next sequence number. */
static const uint8_t heartbeat[20] = {SESSION_BYTES, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x00};
/* End of session: count 0xFFFF. */
/* clang-format off */
static const uint8_t end_of_session[20] = {SESSION_BYTES, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
                                           0xff, 0xff};
/* clang-format on */
/* Data: sequence 0x0102030405060708, 3 messages: "hi", "" (empty), "xyz". */
/* clang-format off */
static const uint8_t data3[20 + 4 + 2 + 5] = {
    SESSION_BYTES, 1, 2, 3, 4, 5, 6, 7, 8, 0x00, 0x03,
    0x00, 0x02, 'h', 'i',
    0x00, 0x00,
    0x00, 0x03, 'x', 'y', 'z',
};
/* clang-format on */

static void test_encode_golden(void)
{
    uint8_t buf[20];
    ASSERT_EQ(mdfeed_mold_header_encode(buf, session, 256, MDFEED_MOLD_COUNT_HEARTBEAT), 20);
    ASSERT_MEM_EQ(buf, heartbeat, 20);
    ASSERT_EQ(mdfeed_mold_header_encode(buf, session, 256, MDFEED_MOLD_COUNT_END), 20);
    ASSERT_MEM_EQ(buf, end_of_session, 20);

    /* The builder produces the data packet byte for byte. */
    uint8_t pkt[64];
    mdfeed_mold_builder_t b;
    ASSERT_EQ(mdfeed_mold_builder_init(&b, pkt, sizeof(pkt), session), 0);
    mdfeed_mold_builder_open(&b, 0x0102030405060708ull);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "hi", 2), 0);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, NULL, 0), 0);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "xyz", 3), 0);
    ASSERT_EQ(mdfeed_mold_builder_finish(&b), sizeof(data3));
    ASSERT_MEM_EQ(pkt, data3, sizeof(data3));
}

static void test_decode_kinds(void)
{
    mdfeed_mold_packet_t p;
    mdfeed_mold_iter_t it;
    const uint8_t *m;
    uint16_t len;
    uint64_t seq;

    ASSERT_EQ(mdfeed_mold_decode(heartbeat, 20, &p), 0);
    ASSERT_EQ(p.kind, MDFEED_MOLD_HEARTBEAT);
    ASSERT_UEQ(p.hdr.seq, 256);
    ASSERT_EQ(p.hdr.count, 0);
    ASSERT_MEM_EQ(p.hdr.session, session, 10);
    mdfeed_mold_iter_init(&it, &p);
    ASSERT(!mdfeed_mold_iter_next(&it, &m, &len, &seq));

    ASSERT_EQ(mdfeed_mold_decode(end_of_session, 20, &p), 0);
    ASSERT_EQ(p.kind, MDFEED_MOLD_END_OF_SESSION);
    ASSERT_EQ(p.hdr.count, 0xffff);
    ASSERT_UEQ(p.hdr.seq, 256);
    mdfeed_mold_iter_init(&it, &p);
    ASSERT(!mdfeed_mold_iter_next(&it, &m, &len, &seq));

    ASSERT_EQ(mdfeed_mold_decode(data3, sizeof(data3), &p), 0);
    ASSERT_EQ(p.kind, MDFEED_MOLD_DATA);
    ASSERT_EQ(p.hdr.count, 3);
    ASSERT_UEQ(p.hdr.seq, 0x0102030405060708ull);
    ASSERT(p.blocks == data3 + 20); /* zero-copy */
    ASSERT_EQ(p.blocks_len, sizeof(data3) - 20);
    mdfeed_mold_iter_init(&it, &p);
    ASSERT(mdfeed_mold_iter_next(&it, &m, &len, &seq));
    ASSERT_EQ(len, 2);
    ASSERT_MEM_EQ(m, "hi", 2);
    ASSERT(m == data3 + 22);
    ASSERT_UEQ(seq, 0x0102030405060708ull);
    ASSERT(mdfeed_mold_iter_next(&it, &m, &len, &seq));
    ASSERT_EQ(len, 0);
    ASSERT_UEQ(seq, 0x0102030405060709ull);
    ASSERT(mdfeed_mold_iter_next(&it, &m, &len, &seq));
    ASSERT_EQ(len, 3);
    ASSERT_MEM_EQ(m, "xyz", 3);
    ASSERT_UEQ(seq, 0x010203040506070aull);
    ASSERT(!mdfeed_mold_iter_next(&it, &m, &len, &seq));
    ASSERT(!mdfeed_mold_iter_next(&it, &m, &len, &seq)); /* stays at the end */
}

/* Every rejection, each on bytes written out by hand. */
static void test_decode_rejections(void)
{
    mdfeed_mold_packet_t p;
    /* Short header: 0 and 19 bytes. */
    ASSERT_EQ(mdfeed_mold_decode(heartbeat, 0, &p), MDFEED_EMOLD_SHORT_HEADER);
    ASSERT_EQ(mdfeed_mold_decode(heartbeat, 19, &p), MDFEED_EMOLD_SHORT_HEADER);

    /* Block overrun: the length says 3, 2 bytes follow. */
    static const uint8_t overrun[] = {SESSION_BYTES, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 3, 'a', 'b'};
    ASSERT_EQ(mdfeed_mold_decode(overrun, sizeof(overrun), &p), MDFEED_EMOLD_BLOCK_OVERRUN);
    /* Block overrun: only one byte of the length field. */
    static const uint8_t half_len[] = {SESSION_BYTES, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0};
    ASSERT_EQ(mdfeed_mold_decode(half_len, sizeof(half_len), &p), MDFEED_EMOLD_BLOCK_OVERRUN);
    /* Block overrun on the second of two blocks. */
    /* clang-format off */
    static const uint8_t overrun2[] = {SESSION_BYTES, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2,
                                       0, 1, 'a', 0xff, 0xff, 'b'};
    /* clang-format on */
    ASSERT_EQ(mdfeed_mold_decode(overrun2, sizeof(overrun2), &p), MDFEED_EMOLD_BLOCK_OVERRUN);

    /* Count mismatch: count 3, two blocks. */
    /* clang-format off */
    static const uint8_t fewer[] = {SESSION_BYTES, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3,
                                    0, 1, 'a', 0, 1, 'b'};
    /* clang-format on */
    ASSERT_EQ(mdfeed_mold_decode(fewer, sizeof(fewer), &p), MDFEED_EMOLD_COUNT_MISMATCH);
    /* Count mismatch: count 1, two whole blocks. */
    /* clang-format off */
    static const uint8_t more[] = {SESSION_BYTES, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,
                                   0, 1, 'a', 0, 1, 'b'};
    /* clang-format on */
    ASSERT_EQ(mdfeed_mold_decode(more, sizeof(more), &p), MDFEED_EMOLD_COUNT_MISMATCH);

    /* Trailing bytes that are no block: one byte, then a block header promising too much. */
    /* clang-format off */
    static const uint8_t trailing1[] = {SESSION_BYTES, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,
                                        0, 1, 'a', 0x00};
    /* clang-format on */
    ASSERT_EQ(mdfeed_mold_decode(trailing1, sizeof(trailing1), &p), MDFEED_EMOLD_TRAILING);
    /* clang-format off */
    static const uint8_t trailing2[] = {SESSION_BYTES, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,
                                        0, 1, 'a', 0x00, 0x09, 'z'};
    /* clang-format on */
    ASSERT_EQ(mdfeed_mold_decode(trailing2, sizeof(trailing2), &p), MDFEED_EMOLD_TRAILING);
    /* A heartbeat followed by anything. */
    uint8_t hb_plus[22];
    memcpy(hb_plus, heartbeat, 20);
    hb_plus[20] = 0;
    hb_plus[21] = 0;
    ASSERT_EQ(mdfeed_mold_decode(hb_plus, 22, &p), MDFEED_EMOLD_TRAILING);

    /* End of session with payload (even one that looks like a block). */
    uint8_t eos_plus[23];
    memcpy(eos_plus, end_of_session, 20);
    eos_plus[20] = 0;
    eos_plus[21] = 1;
    eos_plus[22] = 'q';
    ASSERT_EQ(mdfeed_mold_decode(eos_plus, 23, &p), MDFEED_EMOLD_EOS_PAYLOAD);
    ASSERT_EQ(mdfeed_mold_decode(eos_plus, 21, &p), MDFEED_EMOLD_EOS_PAYLOAD);

    /* Sequence overflow: 0xFFFFFFFFFFFFFFFF with 1 message passes 2^64 - 1 ... */
    /* clang-format off */
    static const uint8_t ovf[] = {SESSION_BYTES, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0, 1, 0, 1, 'a'};
    /* clang-format on */
    ASSERT_EQ(mdfeed_mold_decode(ovf, sizeof(ovf), &p), MDFEED_EMOLD_SEQ_OVERFLOW);
    /* ... 0xFFFFFFFFFFFFFFFE with 1 message does not. */
    /* clang-format off */
    static const uint8_t edge[] = {SESSION_BYTES, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
                                   0, 1, 0, 1, 'a'};
    /* clang-format on */
    ASSERT_EQ(mdfeed_mold_decode(edge, sizeof(edge), &p), 0);
}

/* Re-request: exactly a header; golden bytes by hand. */
static void test_request(void)
{
    static const uint8_t req[20] = {SESSION_BYTES, 0, 0, 0, 0, 0, 0, 0x30, 0x39, 0x00, 0x64};
    uint8_t buf[20];
    ASSERT_EQ(mdfeed_mold_header_encode(buf, session, 12345, 100), 20);
    ASSERT_MEM_EQ(buf, req, 20);
    mdfeed_mold_header_t h;
    ASSERT_EQ(mdfeed_mold_request_decode(req, 20, &h), 0);
    ASSERT_UEQ(h.seq, 12345);
    ASSERT_EQ(h.count, 100);
    ASSERT_MEM_EQ(h.session, session, 10);
    ASSERT_EQ(mdfeed_mold_request_decode(req, 19, &h), MDFEED_EMOLD_SHORT_HEADER);
    ASSERT_EQ(mdfeed_mold_request_decode(data3, 21, &h), MDFEED_EMOLD_BAD_REQUEST);
    ASSERT_EQ(mdfeed_mold_request_decode(data3, sizeof(data3), &h), MDFEED_EMOLD_BAD_REQUEST);
}

static void test_builder_init(void)
{
    uint8_t buf[65536];
    mdfeed_mold_builder_t b;
    ASSERT_EQ(mdfeed_mold_builder_init(&b, buf, 21, session), -EINVAL);
    ASSERT_EQ(mdfeed_mold_builder_init(&b, buf, 65508, session), -EINVAL);
    ASSERT_EQ(mdfeed_mold_builder_init(&b, NULL, 100, session), -EINVAL);
    ASSERT_EQ(mdfeed_mold_builder_init(&b, buf, 22, session), 0);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "", 0), -EINVAL); /* no packet open */
    ASSERT_EQ(mdfeed_mold_builder_room(&b), 0);
    ASSERT_EQ(mdfeed_mold_builder_finish(&b), 0);
    mdfeed_mold_builder_open(&b, 1);
    ASSERT_EQ(mdfeed_mold_builder_room(&b), 0);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "x", 1), MDFEED_ETOOBIG);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, NULL, 0), 0); /* an empty message fits exactly */
    ASSERT_EQ(mdfeed_mold_builder_append(&b, NULL, 0), MDFEED_EFULL);
    ASSERT_EQ(mdfeed_mold_builder_finish(&b), 22);
    ASSERT_EQ(mdfeed_mold_builder_init(&b, buf, 65507, session), 0);
}

/* Full and too big: the packet is unchanged by a refused append. */
static void test_builder_full(void)
{
    uint8_t buf[64];
    mdfeed_mold_builder_t b;
    ASSERT_EQ(mdfeed_mold_builder_init(&b, buf, 37, session), 0);
    mdfeed_mold_builder_open(&b, 7);
    ASSERT_EQ(mdfeed_mold_builder_room(&b), 15);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "hello", 5), 0);
    ASSERT_EQ(mdfeed_mold_builder_room(&b), 8);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "world!", 6), 0);
    ASSERT_EQ(mdfeed_mold_builder_room(&b), 0); /* 35 used, 2 left: only a block header */
    uint8_t before[37];
    memcpy(before, buf, sizeof(before));
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "x", 1), MDFEED_EFULL);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "0123456789abcdef", 16), MDFEED_ETOOBIG);
    ASSERT_MEM_EQ(buf, before, sizeof(before));
    ASSERT_EQ(b.count, 2);
    size_t n = mdfeed_mold_builder_finish(&b);
    ASSERT_EQ(n, 35);
    mdfeed_mold_packet_t p;
    ASSERT_EQ(mdfeed_mold_decode(buf, n, &p), 0);
    ASSERT_EQ(p.hdr.count, 2);
    ASSERT_UEQ(p.hdr.seq, 7);

    /* The largest message fits an empty packet exactly: budget - 22 bytes. */
    mdfeed_mold_builder_open(&b, 9);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "0123456789abcde", 15), 0);
    ASSERT_EQ(mdfeed_mold_builder_finish(&b), 37);

    /* An empty packet finishes as a heartbeat carrying the next sequence number. */
    mdfeed_mold_builder_open(&b, 256);
    ASSERT_EQ(mdfeed_mold_builder_finish(&b), 20);
    ASSERT_MEM_EQ(buf, heartbeat, 20);
}

/* The most messages a datagram can carry: 65507-byte budget, empty messages. A count of
 * 0xFFFF would read as end of session, so the builder also stops at 0xFFFE whatever the
 * budget (checked by forcing the count, as no IPv4 datagram can reach it). */
static void test_builder_max_count(void)
{
    static uint8_t buf[65507];
    const unsigned most = (65507 - 20) / 2; /* 32743 */
    mdfeed_mold_builder_t b;
    ASSERT_EQ(mdfeed_mold_builder_init(&b, buf, sizeof(buf), session), 0);
    mdfeed_mold_builder_open(&b, 1000);
    for (unsigned i = 0; i < most; i++)
        ASSERT_EQ(mdfeed_mold_builder_append(&b, NULL, 0), 0);
    ASSERT_EQ(mdfeed_mold_builder_room(&b), 0);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, NULL, 0), MDFEED_EFULL);
    size_t n = mdfeed_mold_builder_finish(&b);
    ASSERT_EQ(n, 20 + 2 * most);
    mdfeed_mold_packet_t p;
    ASSERT_EQ(mdfeed_mold_decode(buf, n, &p), 0);
    ASSERT_EQ(p.kind, MDFEED_MOLD_DATA);
    ASSERT_EQ(p.hdr.count, most);
    mdfeed_mold_iter_t it;
    const uint8_t *m;
    uint16_t len;
    uint64_t seq = 0, last = 0, k = 0;
    mdfeed_mold_iter_init(&it, &p);
    while (mdfeed_mold_iter_next(&it, &m, &len, &seq)) {
        last = seq;
        k++;
    }
    ASSERT_UEQ(k, most);
    ASSERT_UEQ(last, 1000 + most - 1);

    mdfeed_mold_builder_open(&b, 1);
    b.count = MDFEED_MOLD_MAX_COUNT - 1;
    ASSERT_EQ(mdfeed_mold_builder_append(&b, NULL, 0), 0);
    ASSERT_EQ(b.count, MDFEED_MOLD_MAX_COUNT);
    ASSERT_EQ(mdfeed_mold_builder_room(&b), 0);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, NULL, 0), MDFEED_EFULL);
    ASSERT_EQ(b.count, 0xfffe);
}

static void test_builder_seq_overflow(void)
{
    uint8_t buf[100];
    mdfeed_mold_builder_t b;
    ASSERT_EQ(mdfeed_mold_builder_init(&b, buf, sizeof(buf), session), 0);
    mdfeed_mold_builder_open(&b, UINT64_MAX - 2);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "a", 1), 0);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "b", 1), 0);
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "c", 1), MDFEED_EMOLD_SEQ_OVERFLOW);
    size_t n = mdfeed_mold_builder_finish(&b);
    mdfeed_mold_packet_t p;
    ASSERT_EQ(mdfeed_mold_decode(buf, n, &p), 0);
    ASSERT_EQ(p.hdr.count, 2);
}

/* Decodes one finished packet and checks every message: sequence and content (each byte is
 * its sequence number plus its offset). Returns the next expected sequence number. */
static uint64_t check_packet(const uint8_t *buf, size_t n, uint64_t expect)
{
    mdfeed_mold_packet_t p;
    ASSERT_EQ(mdfeed_mold_decode(buf, n, &p), 0);
    ASSERT_UEQ(p.hdr.seq, expect);
    mdfeed_mold_iter_t it;
    const uint8_t *m;
    uint16_t mlen;
    uint64_t seq;
    mdfeed_mold_iter_init(&it, &p);
    while (mdfeed_mold_iter_next(&it, &m, &mlen, &seq)) {
        ASSERT_UEQ(seq, expect);
        for (size_t j = 0; j < mlen; j++)
            ASSERT_EQ(m[j], (uint8_t)(seq + j));
        expect++;
    }
    return expect;
}

/* Round trip of many packets of varied messages through builder, decoder and iterator. */
static void test_roundtrip(void)
{
    uint8_t buf[1400], msg[300];
    mdfeed_mold_builder_t b;
    ASSERT_EQ(mdfeed_mold_builder_init(&b, buf, sizeof(buf), session), 0);
    uint64_t expect = 1, x = 12345;
    unsigned packets = 0;
    const uint64_t total = 5000;
    mdfeed_mold_builder_open(&b, 1);
    for (uint64_t seq = 1; seq <= total; seq++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = (size_t)(x >> 33) % sizeof(msg);
        for (size_t j = 0; j < len; j++)
            msg[j] = (uint8_t)(seq + j);
        int rc = mdfeed_mold_builder_append(&b, msg, len);
        if (rc == MDFEED_EFULL) {
            size_t n = mdfeed_mold_builder_finish(&b);
            ASSERT_LE(n, sizeof(buf));
            expect = check_packet(buf, n, expect);
            packets++;
            mdfeed_mold_builder_open(&b, seq);
            rc = mdfeed_mold_builder_append(&b, msg, len);
        }
        ASSERT_EQ(rc, 0);
    }
    expect = check_packet(buf, mdfeed_mold_builder_finish(&b), expect);
    ASSERT_UEQ(expect, total + 1);
    ASSERT_GT(packets, 100); /* ~150 bytes a message in 1400-byte packets */
}

int main(void)
{
    ASSERT_EQ(mdfeed_mold_session_set(session, "SESS01"), 0);
    test_session();
    test_encode_golden();
    test_decode_kinds();
    test_decode_rejections();
    test_request();
    test_builder_init();
    test_builder_full();
    test_builder_max_count();
    test_builder_seq_overflow();
    test_roundtrip();
    return 0;
}
