/* MoldUDP64 encoder, validating decoder and packet builder (see moldudp64.h). */
#include "mdfeed/moldudp64.h"

#include <errno.h>
#include <string.h>

static bool is_session_char(int c)
{
    return c >= 0x20 && c < 0x7f;
}

int mdfeed_mold_session_set(char out[MDFEED_MOLD_SESSION_LEN], const char *str)
{
    size_t n = str ? strlen(str) : 0;
    if (n == 0 || n > MDFEED_MOLD_SESSION_LEN || str[0] == ' ')
        return MDFEED_EMOLD_BAD_SESSION;
    for (size_t i = 0; i < n; i++)
        if (!is_session_char((unsigned char)str[i]))
            return MDFEED_EMOLD_BAD_SESSION;
    memset(out, ' ', MDFEED_MOLD_SESSION_LEN);
    memcpy(out, str, n);
    return 0;
}

char *mdfeed_mold_session_str(const char session[MDFEED_MOLD_SESSION_LEN],
                              char out[MDFEED_MOLD_SESSION_LEN + 1])
{
    size_t n = MDFEED_MOLD_SESSION_LEN;
    while (n > 0 && (session[n - 1] == ' ' || session[n - 1] == '\0'))
        n--;
    memcpy(out, session, n);
    out[n] = '\0';
    return out;
}

size_t mdfeed_mold_header_encode(void *buf, const char session[MDFEED_MOLD_SESSION_LEN],
                                 uint64_t seq, uint16_t count)
{
    uint8_t *p = buf;
    memcpy(p, session, MDFEED_MOLD_SESSION_LEN);
    mdfeed_put_be64(p + 10, seq);
    mdfeed_put_be16(p + 18, count);
    return MDFEED_MOLD_HEADER_LEN;
}

static void header_decode(const uint8_t *p, mdfeed_mold_header_t *h)
{
    memcpy(h->session, p, MDFEED_MOLD_SESSION_LEN);
    h->seq = mdfeed_get_be64(p + 10);
    h->count = mdfeed_get_be16(p + 18);
}

/* Steps over one block at `*p`; false when its header or its bytes run past `end`. */
static bool skip_block(const uint8_t **p, const uint8_t *end)
{
    if (end - *p < MDFEED_MOLD_BLOCK_HDR_LEN)
        return false;
    size_t len = mdfeed_get_be16(*p);
    if ((size_t)(end - *p - MDFEED_MOLD_BLOCK_HDR_LEN) < len)
        return false;
    *p += MDFEED_MOLD_BLOCK_HDR_LEN + len;
    return true;
}

/* Walks `count` blocks; returns 0 when they end exactly at `end`. Bytes left over after
 * `count` blocks are a count mismatch when they are whole blocks themselves (the sender
 * miscounted) and trailing garbage otherwise, so the error names the likelier defect. */
static int check_blocks(const uint8_t *p, const uint8_t *end, uint16_t count)
{
    for (uint16_t i = 0; i < count; i++) {
        if (p == end)
            return MDFEED_EMOLD_COUNT_MISMATCH; /* fewer blocks than the count says */
        if (!skip_block(&p, end))
            return MDFEED_EMOLD_BLOCK_OVERRUN;
    }
    if (p == end)
        return 0;
    /* At most 65535 more blocks fit in a datagram: the walk is bounded by its length. */
    while (p < end && skip_block(&p, end))
        ;
    return p == end ? MDFEED_EMOLD_COUNT_MISMATCH : MDFEED_EMOLD_TRAILING;
}

int mdfeed_mold_decode(const void *buf, size_t len, mdfeed_mold_packet_t *out)
{
    const uint8_t *p = buf;
    if (len < MDFEED_MOLD_HEADER_LEN)
        return MDFEED_EMOLD_SHORT_HEADER;
    header_decode(p, &out->hdr);
    out->blocks = p + MDFEED_MOLD_HEADER_LEN;
    out->blocks_len = len - MDFEED_MOLD_HEADER_LEN;

    if (out->hdr.count == MDFEED_MOLD_COUNT_END) {
        out->kind = MDFEED_MOLD_END_OF_SESSION;
        return out->blocks_len ? MDFEED_EMOLD_EOS_PAYLOAD : 0;
    }
    if (out->hdr.count == MDFEED_MOLD_COUNT_HEARTBEAT) {
        out->kind = MDFEED_MOLD_HEARTBEAT;
        return out->blocks_len ? MDFEED_EMOLD_TRAILING : 0;
    }
    out->kind = MDFEED_MOLD_DATA;
    if (out->hdr.seq > UINT64_MAX - out->hdr.count)
        return MDFEED_EMOLD_SEQ_OVERFLOW;
    return check_blocks(out->blocks, out->blocks + out->blocks_len, out->hdr.count);
}

void mdfeed_mold_iter_init(mdfeed_mold_iter_t *it, const mdfeed_mold_packet_t *pkt)
{
    bool data = pkt->kind == MDFEED_MOLD_DATA;
    it->next = pkt->blocks;
    it->end = data ? pkt->blocks + pkt->blocks_len : pkt->blocks;
    it->seq = pkt->hdr.seq;
}

bool mdfeed_mold_iter_next(mdfeed_mold_iter_t *it, const uint8_t **msg, uint16_t *len,
                           uint64_t *seq)
{
    /* The packet was validated by mdfeed_mold_decode(); the checks here only keep a misuse
     * (iterating an unvalidated packet) from reading out of bounds. */
    if (it->end - it->next < MDFEED_MOLD_BLOCK_HDR_LEN)
        return false;
    uint16_t n = mdfeed_get_be16(it->next);
    if ((size_t)(it->end - it->next - MDFEED_MOLD_BLOCK_HDR_LEN) < n)
        return false;
    *msg = it->next + MDFEED_MOLD_BLOCK_HDR_LEN;
    *len = n;
    *seq = it->seq++;
    it->next += MDFEED_MOLD_BLOCK_HDR_LEN + n;
    return true;
}

int mdfeed_mold_request_decode(const void *buf, size_t len, mdfeed_mold_header_t *out)
{
    if (len < MDFEED_MOLD_HEADER_LEN)
        return MDFEED_EMOLD_SHORT_HEADER;
    if (len != MDFEED_MOLD_HEADER_LEN)
        return MDFEED_EMOLD_BAD_REQUEST;
    header_decode(buf, out);
    return 0;
}

int mdfeed_mold_builder_init(mdfeed_mold_builder_t *b, void *buf, size_t budget,
                             const char session[MDFEED_MOLD_SESSION_LEN])
{
    if (!b || !buf || budget < MDFEED_MOLD_HEADER_LEN + MDFEED_MOLD_BLOCK_HDR_LEN || budget > 65507)
        return -EINVAL;
    memset(b, 0, sizeof(*b));
    b->buf = buf;
    b->budget = budget;
    memcpy(b->session, session, MDFEED_MOLD_SESSION_LEN);
    return 0;
}

void mdfeed_mold_builder_open(mdfeed_mold_builder_t *b, uint64_t seq)
{
    b->seq = seq;
    b->count = 0;
    b->len = mdfeed_mold_header_encode(b->buf, b->session, seq, 0);
}

size_t mdfeed_mold_builder_room(const mdfeed_mold_builder_t *b)
{
    if (b->len == 0 || b->count == MDFEED_MOLD_MAX_COUNT ||
        b->len + MDFEED_MOLD_BLOCK_HDR_LEN > b->budget)
        return 0;
    size_t room = b->budget - b->len - MDFEED_MOLD_BLOCK_HDR_LEN;
    return room > UINT16_MAX ? UINT16_MAX : room;
}

int mdfeed_mold_builder_append(mdfeed_mold_builder_t *b, const void *msg, size_t len)
{
    if (mdfeed_mold_builder_try_append(b, msg, len))
        return 0;
    /* Not appended: say why, in the order of the documented codes. */
    if (b->len == 0)
        return -EINVAL;
    if (len > UINT16_MAX || len > b->budget - MDFEED_MOLD_HEADER_LEN - MDFEED_MOLD_BLOCK_HDR_LEN)
        return MDFEED_ETOOBIG;
    /* Not via builder_room(): its 0 cannot tell "only an empty message fits" from "none". */
    if (b->count == MDFEED_MOLD_MAX_COUNT || b->len + MDFEED_MOLD_BLOCK_HDR_LEN + len > b->budget)
        return MDFEED_EFULL;
    /* The last message's sequence number (seq + count) must stay within 64 bits, as
     * mdfeed_mold_decode() requires of every packet. */
    return MDFEED_EMOLD_SEQ_OVERFLOW;
}

size_t mdfeed_mold_builder_finish(mdfeed_mold_builder_t *b)
{
    size_t n = b->len;
    if (n == 0)
        return 0;
    mdfeed_put_be16(b->buf + 18, b->count);
    b->len = 0;
    return n;
}
