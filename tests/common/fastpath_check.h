/* Fast path == slow path, for the two protocol rules the gateway's hot paths take inline
 * from libmdfeed. Shared by tests/unit/test_fastpath.c (random inputs) and
 * tests/fuzz/fuzz_fastpath.c (the fuzzer's): each returns 0 when both paths agree, or the
 * number of the first check that failed.
 *
 * SoupBinTCP: the gateway takes complete frames with mdfeed_soup_frame_complete() and hands
 * the rest to the stream parser; that must deliver the same frames (type, bytes, order) and
 * end with the same error as the parser fed everything.
 * MoldUDP64: appending with mdfeed_mold_builder_try_append() (falling back to
 * mdfeed_mold_builder_append() for the reason) must write the same packet bytes and refuse
 * exactly the same messages as mdfeed_mold_builder_append() alone. */
#ifndef MDCAST_FASTPATH_CHECK_H
#define MDCAST_FASTPATH_CHECK_H

#include "mdfeed/moldudp64.h"
#include "mdfeed/soupbintcp.h"

#include <stdint.h>
#include <string.h>

typedef struct {
    uint64_t hash;
    size_t frames;
} fp_digest_t;

static void fp_mix(fp_digest_t *d, char type, const uint8_t *p, size_t len)
{
    uint64_t h = d->hash ^ ((uint64_t)(unsigned char)type << 32) ^ len;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    d->hash = h * 1099511628211ull;
    d->frames++;
}

static int fp_on_frame(void *data, char type, const uint8_t *payload, size_t len)
{
    fp_mix(data, type, payload, len);
    return 0;
}

static int fp_check_soup(const uint8_t *in, size_t n, size_t max_frame)
{
    mdfeed_soup_parser_t slow, fast;
    if (mdfeed_soup_parser_init(&slow, max_frame) || mdfeed_soup_parser_init(&fast, max_frame))
        return 1;
    fp_digest_t ds = {14695981039346656037ull, 0}, df = ds;
    int rs = mdfeed_soup_parser_feed(&slow, in, n, fp_on_frame, &ds);
    size_t off = 0, size;
    while ((size = mdfeed_soup_frame_complete(in + off, n - off, max_frame)) > 0) {
        fp_mix(&df, (char)in[off + 2], in + off + 3, size - 3);
        off += size;
    }
    int rf = mdfeed_soup_parser_feed(&fast, in + off, n - off, fp_on_frame, &df);
    int bad = rs != rf ? 2 : ds.frames != df.frames ? 3 : ds.hash != df.hash ? 4 : 0;
    if (!bad && mdfeed_soup_parser_partial(&slow) != mdfeed_soup_parser_partial(&fast))
        bad = 5;
    mdfeed_soup_parser_close(&slow);
    mdfeed_soup_parser_close(&fast);
    return bad;
}

/* `lens` drives the messages (their bytes come from `bytes`); a refused message closes the
 * packet and opens the next at the next sequence number, as a sender would. */
static int fp_check_mold(size_t budget, uint64_t first_seq, const uint16_t *lens, size_t nlens,
                         const uint8_t *bytes, size_t nbytes)
{
    static uint8_t bs[65507], bf[65507];
    static const char session[MDFEED_MOLD_SESSION_LEN] = {'F', 'A', 'S', 'T', ' ',
                                                          ' ', ' ', ' ', ' ', ' '};
    mdfeed_mold_builder_t s, f;
    if (mdfeed_mold_builder_init(&s, bs, budget, session) ||
        mdfeed_mold_builder_init(&f, bf, budget, session))
        return 1;
    uint64_t seq = first_seq;
    mdfeed_mold_builder_open(&s, seq);
    mdfeed_mold_builder_open(&f, seq);
    for (size_t i = 0; i < nlens; i++) {
        size_t len = lens[i] < nbytes ? lens[i] : nbytes;
        int rs = mdfeed_mold_builder_append(&s, bytes, len);
        int rf = mdfeed_mold_builder_try_append(&f, bytes, len)
                     ? 0
                     : mdfeed_mold_builder_append(&f, bytes, len);
        if (rs != rf)
            return 2;
        if (s.len != f.len || s.count != f.count || memcmp(bs, bf, s.len) != 0)
            return 3;
        if (rs != 0) {
            seq += s.count;
            size_t ls = mdfeed_mold_builder_finish(&s), lf = mdfeed_mold_builder_finish(&f);
            if (ls != lf || memcmp(bs, bf, ls) != 0)
                return 4;
            mdfeed_mold_builder_open(&s, seq);
            mdfeed_mold_builder_open(&f, seq);
        }
    }
    size_t ls = mdfeed_mold_builder_finish(&s), lf = mdfeed_mold_builder_finish(&f);
    return ls != lf || memcmp(bs, bf, ls) != 0 ? 5 : 0;
}

#endif /* MDCAST_FASTPATH_CHECK_H */
