/* SoupBinTCP 3.0 encoders, decoders and the streaming frame parser (see soupbintcp.h). */
#include "mdfeed/soupbintcp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* Writes `s` into a fixed-width field padded with spaces on the right (left = false) or on the
 * left (left = true). */
static int put_field(uint8_t *dst, size_t width, const char *s, bool pad_left)
{
    size_t n = strnlen(s, width + 1);
    if (n > width || !printable(s, n))
        return MDFEED_ESOUP_BAD_FIELD;
    memset(dst, ' ', width);
    memcpy(dst + (pad_left ? width - n : 0), s, n);
    return 0;
}

/* Copies a fixed-width field, trimming spaces on both sides, into a NUL-terminated string. */
static int get_field(const uint8_t *src, size_t width, char *out)
{
    size_t b = 0, e = width;
    while (b < e && src[b] == ' ')
        b++;
    while (e > b && src[e - 1] == ' ')
        e--;
    if (!printable((const char *)src + b, e - b))
        return MDFEED_ESOUP_BAD_FIELD;
    memcpy(out, src + b, e - b);
    out[e - b] = '\0';
    return 0;
}

static void put_seqnum(uint8_t *dst, uint64_t seq)
{
    memset(dst, ' ', MDFEED_SOUP_SEQNUM_LEN);
    size_t i = MDFEED_SOUP_SEQNUM_LEN;
    do {
        dst[--i] = (uint8_t)('0' + seq % 10);
        seq /= 10;
    } while (seq && i > 0);
}

static int get_seqnum(const uint8_t *src, uint64_t *out)
{
    char s[MDFEED_SOUP_SEQNUM_LEN + 1];
    if (get_field(src, MDFEED_SOUP_SEQNUM_LEN, s) || s[0] == '\0')
        return MDFEED_ESOUP_BAD_FIELD;
    uint64_t v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return MDFEED_ESOUP_BAD_FIELD;
        unsigned d = (unsigned)(*c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return MDFEED_ESOUP_BAD_FIELD;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int mdfeed_soup_frame_check(char type, size_t payload_len)
{
    if (payload_len > MDFEED_SOUP_MAX_FRAME - 1)
        return MDFEED_ESOUP_BAD_LENGTH;
    switch (type) {
    case MDFEED_SOUP_LOGIN_REQUEST:
        return payload_len == MDFEED_SOUP_LOGIN_REQUEST_PAYLOAD ? 0 : MDFEED_ESOUP_BAD_LENGTH;
    case MDFEED_SOUP_LOGIN_ACCEPTED:
        return payload_len == MDFEED_SOUP_LOGIN_ACCEPTED_PAYLOAD ? 0 : MDFEED_ESOUP_BAD_LENGTH;
    case MDFEED_SOUP_LOGIN_REJECTED:
        return payload_len == MDFEED_SOUP_LOGIN_REJECTED_PAYLOAD ? 0 : MDFEED_ESOUP_BAD_LENGTH;
    case MDFEED_SOUP_SERVER_HEARTBEAT:
    case MDFEED_SOUP_CLIENT_HEARTBEAT:
    case MDFEED_SOUP_END_OF_SESSION:
    case MDFEED_SOUP_LOGOUT_REQUEST:
        return payload_len == 0 ? 0 : MDFEED_ESOUP_BAD_LENGTH;
    case MDFEED_SOUP_SEQUENCED_DATA:
    case MDFEED_SOUP_UNSEQUENCED_DATA:
    case MDFEED_SOUP_DEBUG:
        return 0;
    default:
        return MDFEED_ESOUP_BAD_TYPE;
    }
}

static int frame_start(uint8_t *buf, size_t cap, char type, size_t payload_len)
{
    int rc = mdfeed_soup_frame_check(type, payload_len);
    if (rc)
        return rc;
    if (cap < MDFEED_SOUP_LEN_PREFIX + 1 + payload_len)
        return MDFEED_ESOUP_NOSPACE;
    buf[0] = (uint8_t)((payload_len + 1) >> 8);
    buf[1] = (uint8_t)(payload_len + 1);
    buf[2] = (uint8_t)type;
    return (int)(MDFEED_SOUP_LEN_PREFIX + 1 + payload_len);
}

int mdfeed_soup_encode(void *buf, size_t cap, char type, const void *payload, size_t len)
{
    int n = frame_start(buf, cap, type, len);
    if (n > 0 && len)
        memcpy((uint8_t *)buf + 3, payload, len);
    return n;
}

/* The fields are checked before anything is written, so a refused frame leaves `buf` as it
 * was: a caller appending frames to an output queue never sends half a login. */
int mdfeed_soup_encode_login_request(void *buf, size_t cap, const mdfeed_soup_login_t *login)
{
    uint8_t p[MDFEED_SOUP_LOGIN_REQUEST_PAYLOAD];
    int rc;
    if ((rc = put_field(p, MDFEED_SOUP_USERNAME_LEN, login->username, false)) ||
        (rc = put_field(p + 6, MDFEED_SOUP_PASSWORD_LEN, login->password, false)) ||
        (rc = put_field(p + 16, MDFEED_SOUP_SESSION_LEN, login->session, true)))
        return rc;
    put_seqnum(p + 26, login->seq);
    return mdfeed_soup_encode(buf, cap, MDFEED_SOUP_LOGIN_REQUEST, p, sizeof(p));
}

int mdfeed_soup_encode_login_accepted(void *buf, size_t cap, const mdfeed_soup_accept_t *acc)
{
    uint8_t p[MDFEED_SOUP_LOGIN_ACCEPTED_PAYLOAD];
    int rc = put_field(p, MDFEED_SOUP_SESSION_LEN, acc->session, true);
    if (rc)
        return rc;
    put_seqnum(p + 10, acc->seq);
    return mdfeed_soup_encode(buf, cap, MDFEED_SOUP_LOGIN_ACCEPTED, p, sizeof(p));
}

int mdfeed_soup_encode_login_rejected(void *buf, size_t cap, char reason)
{
    if (reason != MDFEED_SOUP_REJECT_NOT_AUTHORIZED &&
        reason != MDFEED_SOUP_REJECT_SESSION_NOT_AVAIL)
        return MDFEED_ESOUP_BAD_FIELD;
    return mdfeed_soup_encode(buf, cap, MDFEED_SOUP_LOGIN_REJECTED, &reason, 1);
}

int mdfeed_soup_decode_login_request(const void *payload, size_t len, mdfeed_soup_login_t *out)
{
    const uint8_t *p = payload;
    if (len != MDFEED_SOUP_LOGIN_REQUEST_PAYLOAD)
        return MDFEED_ESOUP_BAD_LENGTH;
    if (get_field(p, MDFEED_SOUP_USERNAME_LEN, out->username) ||
        get_field(p + 6, MDFEED_SOUP_PASSWORD_LEN, out->password) ||
        get_field(p + 16, MDFEED_SOUP_SESSION_LEN, out->session) || get_seqnum(p + 26, &out->seq))
        return MDFEED_ESOUP_BAD_FIELD;
    return 0;
}

int mdfeed_soup_decode_login_accepted(const void *payload, size_t len, mdfeed_soup_accept_t *out)
{
    const uint8_t *p = payload;
    if (len != MDFEED_SOUP_LOGIN_ACCEPTED_PAYLOAD)
        return MDFEED_ESOUP_BAD_LENGTH;
    if (get_field(p, MDFEED_SOUP_SESSION_LEN, out->session) || get_seqnum(p + 10, &out->seq))
        return MDFEED_ESOUP_BAD_FIELD;
    return 0;
}

int mdfeed_soup_decode_login_rejected(const void *payload, size_t len, char *reason)
{
    if (len != MDFEED_SOUP_LOGIN_REJECTED_PAYLOAD)
        return MDFEED_ESOUP_BAD_LENGTH;
    char r = *(const char *)payload;
    if (r != MDFEED_SOUP_REJECT_NOT_AUTHORIZED && r != MDFEED_SOUP_REJECT_SESSION_NOT_AVAIL)
        return MDFEED_ESOUP_BAD_FIELD;
    *reason = r;
    return 0;
}

static const char soup_unknown_type[] = "unknown";

bool mdfeed_soup_type_known(char type)
{
    /* By identity, not by text: "unsequenced data" starts with the same letter. */
    return mdfeed_soup_type_name(type) != soup_unknown_type;
}

const char *mdfeed_soup_type_name(char type)
{
    switch (type) {
    case MDFEED_SOUP_DEBUG:
        return "debug";
    case MDFEED_SOUP_LOGIN_ACCEPTED:
        return "login accepted";
    case MDFEED_SOUP_LOGIN_REJECTED:
        return "login rejected";
    case MDFEED_SOUP_SEQUENCED_DATA:
        return "sequenced data";
    case MDFEED_SOUP_SERVER_HEARTBEAT:
        return "server heartbeat";
    case MDFEED_SOUP_END_OF_SESSION:
        return "end of session";
    case MDFEED_SOUP_LOGIN_REQUEST:
        return "login request";
    case MDFEED_SOUP_UNSEQUENCED_DATA:
        return "unsequenced data";
    case MDFEED_SOUP_CLIENT_HEARTBEAT:
        return "client heartbeat";
    case MDFEED_SOUP_LOGOUT_REQUEST:
        return "logout request";
    default:
        return soup_unknown_type;
    }
}

int mdfeed_soup_parser_init(mdfeed_soup_parser_t *p, size_t max_frame)
{
    memset(p, 0, sizeof(*p));
    if (max_frame < 1 || max_frame > MDFEED_SOUP_MAX_FRAME)
        return -EINVAL;
    p->buf = malloc(max_frame + MDFEED_SOUP_LEN_PREFIX);
    if (!p->buf)
        return -ENOMEM;
    p->max_frame = max_frame;
    return 0;
}

void mdfeed_soup_parser_close(mdfeed_soup_parser_t *p)
{
    free(p->buf);
    p->buf = NULL;
    p->len = 0;
}

void mdfeed_soup_parser_reset(mdfeed_soup_parser_t *p)
{
    p->len = 0;
    p->error = 0;
}

bool mdfeed_soup_parser_partial(const mdfeed_soup_parser_t *p)
{
    return p->len > 0;
}

/* Checks a frame's length prefix (the shared rule in soupbintcp.h); returns the frame's
 * total size (prefix included) or an error. */
static int frame_size(const mdfeed_soup_parser_t *p, const uint8_t *prefix)
{
    return mdfeed_soup_frame_size(prefix, p->max_frame);
}

static int deliver(const uint8_t *frame, size_t size, mdfeed_soup_frame_cb cb, void *data)
{
    return cb(data, (char)frame[2], frame + 3, size - 3);
}

/* Moves bytes from `in` into the buffered partial frame. Returns how many it took, or a
 * stream error; `*complete` says whether the buffer now holds a whole frame. */
static int fill_partial(mdfeed_soup_parser_t *p, const uint8_t *in, size_t n, bool *complete)
{
    size_t taken = 0;
    *complete = false;
    if (p->len < MDFEED_SOUP_LEN_PREFIX) {
        size_t k = MDFEED_SOUP_LEN_PREFIX - p->len;
        k = k < n ? k : n;
        memcpy(p->buf + p->len, in, k);
        p->len += k;
        taken = k;
        if (p->len < MDFEED_SOUP_LEN_PREFIX)
            return (int)taken;
    }
    int size = frame_size(p, p->buf);
    if (size < 0)
        return size;
    size_t k = (size_t)size - p->len;
    k = k < n - taken ? k : n - taken;
    memcpy(p->buf + p->len, in + taken, k);
    p->len += k;
    *complete = p->len == (size_t)size;
    return (int)(taken + k);
}

/* A callback that stops the feed leaves the rest of the fed bytes unread; the parser cannot
 * keep them (they may be more than its buffer holds) and the caller cannot tell where the
 * next frame starts, so the stream is broken from here on: the stop is sticky like an error. */
static int stop(mdfeed_soup_parser_t *p, int rc)
{
    p->error = rc;
    return rc;
}

int mdfeed_soup_parser_feed(mdfeed_soup_parser_t *p, const void *bytes, size_t n,
                            mdfeed_soup_frame_cb cb, void *data)
{
    const uint8_t *in = bytes;
    if (p->error)
        return p->error;
    if (!p->buf)
        return -EINVAL; /* never initialised, or closed */
    if (p->len > 0) {
        bool complete;
        int taken = fill_partial(p, in, n, &complete);
        if (taken < 0)
            return stop(p, taken);
        in += taken;
        n -= (size_t)taken;
        if (!complete)
            return 0;
        size_t size = p->len;
        p->len = 0;
        int rc = deliver(p->buf, size, cb, data);
        if (rc)
            return stop(p, rc);
    }
    while (n >= MDFEED_SOUP_LEN_PREFIX) {
        int size = frame_size(p, in);
        if (size < 0)
            return stop(p, size);
        if ((size_t)size > n)
            break;
        int rc = deliver(in, (size_t)size, cb, data);
        if (rc)
            return stop(p, rc);
        in += size;
        n -= (size_t)size;
    }
    if (n > 0) {
        memcpy(p->buf, in, n); /* n < frame size <= max_frame + 2 */
        p->len = n;
    }
    return 0;
}
