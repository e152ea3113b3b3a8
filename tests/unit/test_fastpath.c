/* Property test: the gateway's hot-path helpers in libmdfeed (SoupBinTCP frame cutting,
 * MoldUDP64 append) agree with the general paths on random inputs -- well-formed streams,
 * streams with bad frames in them, and packets filled to and past the budget, with
 * sequence numbers near 2^64. A negative control shows the check can fail. */
#include "fastpath_check.h"
#include "task.h"

#include <stdlib.h>

static uint32_t rng = 12345;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* A stream of frames, mostly well formed; now and then a zero length, an oversize length,
 * or a cut at the end. */
static size_t make_stream(uint8_t *buf, size_t cap, size_t max_frame)
{
    static const char types[] = "UUUUUURLO+HSAZJ\x01";
    size_t n = 0;
    while (n + 3 + max_frame < cap && next_rand() % 40 != 0) {
        size_t flen = 1 + next_rand() % max_frame;
        uint32_t r = next_rand() % 100;
        if (r == 0)
            flen = 0;
        else if (r == 1)
            flen = max_frame + 1 + next_rand() % 10;
        buf[n] = (uint8_t)(flen >> 8);
        buf[n + 1] = (uint8_t)flen;
        size_t body = flen ? flen : 1;
        if (body > max_frame)
            body = max_frame;
        buf[n + 2] = (uint8_t)types[next_rand() % (sizeof(types) - 1)];
        for (size_t i = 1; i < body; i++)
            buf[n + 2 + i] = (uint8_t)next_rand();
        n += 2 + body;
    }
    if (n > 0 && next_rand() % 3 == 0)
        n -= next_rand() % (n < 8 ? n : 8); /* cut mid-frame */
    return n;
}

static void test_soup(void)
{
    static uint8_t buf[1 << 16];
    for (int iter = 0; iter < 3000; iter++) {
        size_t max_frame = 1 + next_rand() % 300;
        size_t n = make_stream(buf, sizeof(buf), max_frame);
        ASSERT_EQ(fp_check_soup(buf, n, max_frame), 0);
    }
    /* Negative control: a scanner that ignored the max-frame rule would disagree. */
    uint8_t over[2 + 20] = {0, 20, 'U'};
    ASSERT_EQ(fp_check_soup(over, sizeof(over), 19), 0);
    ASSERT_UEQ(mdfeed_soup_frame_complete(over, sizeof(over), 19), 0);
    ASSERT_UEQ(mdfeed_soup_frame_complete(over, sizeof(over), 20), 22);
}

static void test_mold(void)
{
    static uint16_t lens[2000];
    static uint8_t bytes[9000];
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (uint8_t)next_rand();
    for (int iter = 0; iter < 500; iter++) {
        size_t budget = 22 + next_rand() % 9000;
        size_t nlens = 1 + next_rand() % 2000;
        for (size_t i = 0; i < nlens; i++)
            lens[i] = (uint16_t)(next_rand() % 4 == 0 ? next_rand() % 9100 : next_rand() % 64);
        uint64_t first = next_rand() % 8 == 0 ? UINT64_MAX - next_rand() % 40 : 1 + next_rand();
        ASSERT_EQ(fp_check_mold(budget, first, lens, nlens, bytes, sizeof(bytes)), 0);
    }
    /* The sequence-overflow rule: the last message number must stay within 64 bits. */
    uint8_t buf[100];
    mdfeed_mold_builder_t b;
    char session[MDFEED_MOLD_SESSION_LEN] = {'S'};
    ASSERT_EQ(mdfeed_mold_builder_init(&b, buf, sizeof(buf), session), 0);
    mdfeed_mold_builder_open(&b, UINT64_MAX - 1);
    ASSERT(mdfeed_mold_builder_try_append(&b, "x", 1));
    ASSERT(!mdfeed_mold_builder_try_append(&b, "x", 1));
    ASSERT_EQ(mdfeed_mold_builder_append(&b, "x", 1), MDFEED_EMOLD_SEQ_OVERFLOW);
}

int main(void)
{
    test_soup();
    test_mold();
    printf("test_fastpath: ok\n");
    return 0;
}
