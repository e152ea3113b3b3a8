/* libFuzzer target: the SoupBinTCP stream parser fed the same bytes whole and in random
 * splits (the first input bytes choose the maximum frame size and the split points).
 * Invariant: the frames delivered and the final error do not depend on how the stream was
 * cut. Every frame also goes through frame_check and, by type, the login decoders, whose
 * output must survive an encode/decode round trip. */
#include "mdfeed/soupbintcp.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A running digest of the frames: order, type, length and bytes all count. */
typedef struct {
    uint64_t hash;
    size_t frames;
} digest_t;

static void check_login_packets(char type, const uint8_t *payload, size_t len)
{
    uint8_t buf[64];
    if (type == MDFEED_SOUP_LOGIN_REQUEST) {
        mdfeed_soup_login_t a, b;
        if (mdfeed_soup_decode_login_request(payload, len, &a) != 0)
            return;
        int n = mdfeed_soup_encode_login_request(buf, sizeof(buf), &a);
        if (n != 49 || mdfeed_soup_decode_login_request(buf + 3, 46, &b) != 0 ||
            strcmp(a.username, b.username) || strcmp(a.password, b.password) ||
            strcmp(a.session, b.session) || a.seq != b.seq)
            abort();
    } else if (type == MDFEED_SOUP_LOGIN_ACCEPTED) {
        mdfeed_soup_accept_t a, b;
        if (mdfeed_soup_decode_login_accepted(payload, len, &a) != 0)
            return;
        int n = mdfeed_soup_encode_login_accepted(buf, sizeof(buf), &a);
        if (n != 33 || mdfeed_soup_decode_login_accepted(buf + 3, 30, &b) != 0 ||
            strcmp(a.session, b.session) || a.seq != b.seq)
            abort();
    } else if (type == MDFEED_SOUP_LOGIN_REJECTED) {
        char r;
        if (mdfeed_soup_decode_login_rejected(payload, len, &r) == 0 && r != 'A' && r != 'S')
            abort();
    }
}

static int on_frame(void *data, char type, const uint8_t *payload, size_t len)
{
    digest_t *d = data;
    d->hash = d->hash * 1099511628211ull ^ (uint8_t)type;
    d->hash = d->hash * 1099511628211ull ^ len;
    for (size_t i = 0; i < len; i++)
        d->hash = d->hash * 1099511628211ull ^ payload[i];
    d->frames++;
    int rc = mdfeed_soup_frame_check(type, len);
    if (rc != 0 && rc != MDFEED_ESOUP_BAD_TYPE && rc != MDFEED_ESOUP_BAD_LENGTH)
        abort();
    check_login_packets(type, payload, len);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    static const size_t max_frames[] = {1, 2, 31, 47, 100, 1500, 65535};
    size_t max_frame = max_frames[data[0] % 7];
    uint32_t rng = data[1] | (uint32_t)data[2] << 8;
    data += 3;
    size -= 3;

    mdfeed_soup_parser_t whole, split;
    if (mdfeed_soup_parser_init(&whole, max_frame) || mdfeed_soup_parser_init(&split, max_frame))
        abort();
    digest_t dw = {14695981039346656037ull, 0}, ds = dw;
    int rw = mdfeed_soup_parser_feed(&whole, data, size, on_frame, &dw);

    int rs = 0;
    size_t off = 0;
    while (off < size && rs == 0) {
        rng = rng * 1103515245u + 12345u;
        size_t chunk = (rng >> 16) % 64; /* 0 .. 63 bytes, zero-length feeds included */
        if (chunk > size - off)
            chunk = size - off;
        rs = mdfeed_soup_parser_feed(&split, data + off, chunk, on_frame, &ds);
        off += chunk;
    }
    if (rw != rs || dw.frames != ds.frames || dw.hash != ds.hash)
        abort();
    if (rw == 0 && mdfeed_soup_parser_partial(&whole) != mdfeed_soup_parser_partial(&split))
        abort();
    if (rw != 0 && mdfeed_soup_parser_feed(&whole, "\x00\x01H", 3, on_frame, &dw) != rw)
        abort(); /* errors are sticky */
    mdfeed_soup_parser_close(&whole);
    mdfeed_soup_parser_close(&split);
    return 0;
}
