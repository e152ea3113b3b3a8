/* SoupBinTCP 3.0 codec: golden bytes computed by hand for every packet type in both
 * directions, padding tolerance, every rejection, and the streaming parser fed every split
 * of a multi-frame buffer, one byte at a time, oversize and zero-length frames, sticky stops. */
#include "task.h"

#include "mdfeed/soupbintcp.h"

#include <errno.h>
#include <stdbool.h>

/* ---- golden frames ------------------------------------------------------------------------ */

/* Login request: "alice" / "s3cret", current session (blank), sequence 0 (live). */
/* clang-format off */
static const uint8_t login_req_golden[49] = {
    0x00, 0x2f, 'L',
    'a', 'l', 'i', 'c', 'e', ' ',                                     /* username, right pad */
    's', '3', 'c', 'r', 'e', 't', ' ', ' ', ' ', ' ',                 /* password, right pad */
    ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',                 /* session: all blank */
    ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
    ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', '0',                 /* sequence, left pad */
};
/* clang-format on */

/* Login request: "bob" / "pw", session "SESS01", sequence 12345. */
/* clang-format off */
static const uint8_t login_req2_golden[49] = {
    0x00, 0x2f, 'L',
    'b', 'o', 'b', ' ', ' ', ' ',
    'p', 'w', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
    ' ', ' ', ' ', ' ', 'S', 'E', 'S', 'S', '0', '1',                 /* session, left pad */
    ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
    ' ', ' ', ' ', ' ', ' ', '1', '2', '3', '4', '5',
};
/* clang-format on */

/* Login accepted: session "SESS01", next sequence 1. */
/* clang-format off */
static const uint8_t login_acc_golden[33] = {
    0x00, 0x1f, 'A',
    ' ', ' ', ' ', ' ', 'S', 'E', 'S', 'S', '0', '1',
    ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
    ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', '1',
};
/* clang-format on */

static void test_login_request(void)
{
    uint8_t buf[64];
    mdfeed_soup_login_t in = {.username = "alice", .password = "s3cret", .session = "", .seq = 0};
    ASSERT_EQ(mdfeed_soup_encode_login_request(buf, sizeof(buf), &in), 49);
    ASSERT_MEM_EQ(buf, login_req_golden, 49);
    mdfeed_soup_login_t out;
    ASSERT_EQ(mdfeed_soup_decode_login_request(buf + 3, 46, &out), 0);
    ASSERT_STR_EQ(out.username, "alice");
    ASSERT_STR_EQ(out.password, "s3cret");
    ASSERT_STR_EQ(out.session, "");
    ASSERT_UEQ(out.seq, 0);

    mdfeed_soup_login_t in2 = {
        .username = "bob", .password = "pw", .session = "SESS01", .seq = 12345};
    ASSERT_EQ(mdfeed_soup_encode_login_request(buf, 49, &in2), 49);
    ASSERT_MEM_EQ(buf, login_req2_golden, 49);
    ASSERT_EQ(mdfeed_soup_decode_login_request(buf + 3, 46, &out), 0);
    ASSERT_STR_EQ(out.username, "bob");
    ASSERT_STR_EQ(out.password, "pw");
    ASSERT_STR_EQ(out.session, "SESS01");
    ASSERT_UEQ(out.seq, 12345);

    /* Full-width fields and the largest sequence number (20 digits). */
    mdfeed_soup_login_t in3 = {
        .username = "ABCDEF", .password = "0123456789", .session = "SESSION_10", .seq = UINT64_MAX};
    ASSERT_EQ(mdfeed_soup_encode_login_request(buf, sizeof(buf), &in3), 49);
    ASSERT_MEM_EQ(buf + 3 + 26, "18446744073709551615", 20);
    ASSERT_EQ(mdfeed_soup_decode_login_request(buf + 3, 46, &out), 0);
    ASSERT_STR_EQ(out.session, "SESSION_10");
    ASSERT_UEQ(out.seq, UINT64_MAX);
}

/* Padding on either side, and leading zeros, parse the same. */
static void test_padding_tolerance(void)
{
    uint8_t p[46];
    mdfeed_soup_login_t out;
    memcpy(p, "  bob", 5);
    p[5] = ' ';
    memcpy(p + 6, "    secret", 10);
    memcpy(p + 16, "SESS01    ", 10);
    memcpy(p + 26, "12345               ", 20);
    ASSERT_EQ(mdfeed_soup_decode_login_request(p, 46, &out), 0);
    ASSERT_STR_EQ(out.username, "bob");
    ASSERT_STR_EQ(out.password, "secret");
    ASSERT_STR_EQ(out.session, "SESS01");
    ASSERT_UEQ(out.seq, 12345);
    memcpy(p + 26, "     000000000000042", 20);
    ASSERT_EQ(mdfeed_soup_decode_login_request(p, 46, &out), 0);
    ASSERT_UEQ(out.seq, 42);
    memcpy(p + 26, "       42           ", 20);
    ASSERT_EQ(mdfeed_soup_decode_login_request(p, 46, &out), 0);
    ASSERT_UEQ(out.seq, 42);
}

static void test_login_request_rejections(void)
{
    uint8_t p[46];
    mdfeed_soup_login_t out;
    memcpy(p, login_req2_golden + 3, 46);
    ASSERT_EQ(mdfeed_soup_decode_login_request(p, 45, &out), MDFEED_ESOUP_BAD_LENGTH);
    ASSERT_EQ(mdfeed_soup_decode_login_request(p, 47, &out), MDFEED_ESOUP_BAD_LENGTH);
    static const char *bad_seqs[] = {
        "                    ", /* blank */
        "               12a45", /* not a digit */
        "          12 345    ", /* a space inside */
        "18446744073709551616", /* 2^64 */
        "99999999999999999999", /* 20 nines */
        "              -12345", /* sign */
    };
    for (size_t i = 0; i < sizeof(bad_seqs) / sizeof(bad_seqs[0]); i++) {
        memcpy(p + 26, bad_seqs[i], 20);
        ASSERT_EQ(mdfeed_soup_decode_login_request(p, 46, &out), MDFEED_ESOUP_BAD_FIELD);
    }
    memcpy(p, login_req2_golden + 3, 46);
    p[1] = 0x01; /* control character in the username */
    ASSERT_EQ(mdfeed_soup_decode_login_request(p, 46, &out), MDFEED_ESOUP_BAD_FIELD);
    memcpy(p, login_req2_golden + 3, 46);
    p[8] = 0xe9; /* non-ASCII in the password */
    ASSERT_EQ(mdfeed_soup_decode_login_request(p, 46, &out), MDFEED_ESOUP_BAD_FIELD);

    /* Encoder: fields too long or not printable; the buffer stays untouched. */
    uint8_t buf[64];
    memset(buf, 0xaa, sizeof(buf));
    mdfeed_soup_login_t in = {.username = "abcdef", .password = "x", .session = "", .seq = 1};
    in.username[0] = '\n';
    ASSERT_EQ(mdfeed_soup_encode_login_request(buf, sizeof(buf), &in), MDFEED_ESOUP_BAD_FIELD);
    memset(in.username, 'x', sizeof(in.username)); /* 7 characters, no NUL */
    ASSERT_EQ(mdfeed_soup_encode_login_request(buf, sizeof(buf), &in), MDFEED_ESOUP_BAD_FIELD);
    mdfeed_soup_login_t in2 = {.username = "a", .password = "p", .session = "", .seq = 1};
    memset(in2.password, 'x', sizeof(in2.password)); /* not NUL-terminated within 10 + 1 */
    ASSERT_EQ(mdfeed_soup_encode_login_request(buf, sizeof(buf), &in2), MDFEED_ESOUP_BAD_FIELD);
    mdfeed_soup_login_t in3 = {.username = "a", .password = "p", .session = "S\x7f", .seq = 1};
    ASSERT_EQ(mdfeed_soup_encode_login_request(buf, sizeof(buf), &in3), MDFEED_ESOUP_BAD_FIELD);
    mdfeed_soup_login_t ok = {.username = "a", .password = "p", .session = "", .seq = 1};
    ASSERT_EQ(mdfeed_soup_encode_login_request(buf, 48, &ok), MDFEED_ESOUP_NOSPACE);
    for (size_t i = 0; i < sizeof(buf); i++)
        ASSERT_EQ(buf[i], 0xaa);
}

static void test_login_accepted(void)
{
    uint8_t buf[40];
    mdfeed_soup_accept_t in = {.session = "SESS01", .seq = 1};
    ASSERT_EQ(mdfeed_soup_encode_login_accepted(buf, sizeof(buf), &in), 33);
    ASSERT_MEM_EQ(buf, login_acc_golden, 33);
    mdfeed_soup_accept_t out;
    ASSERT_EQ(mdfeed_soup_decode_login_accepted(buf + 3, 30, &out), 0);
    ASSERT_STR_EQ(out.session, "SESS01");
    ASSERT_UEQ(out.seq, 1);
    /* Right-padded session and sequence parse the same. */
    uint8_t p[30];
    memcpy(p, "SESS01    ", 10);
    memcpy(p + 10, "1                   ", 20);
    ASSERT_EQ(mdfeed_soup_decode_login_accepted(p, 30, &out), 0);
    ASSERT_STR_EQ(out.session, "SESS01");
    ASSERT_UEQ(out.seq, 1);
    ASSERT_EQ(mdfeed_soup_decode_login_accepted(p, 29, &out), MDFEED_ESOUP_BAD_LENGTH);
    p[29] = 'x';
    ASSERT_EQ(mdfeed_soup_decode_login_accepted(p, 30, &out), MDFEED_ESOUP_BAD_FIELD);
    mdfeed_soup_accept_t bad = {.session = "ELEVENCHARS", .seq = 1};
    ASSERT_EQ(mdfeed_soup_encode_login_accepted(buf, sizeof(buf), &bad), MDFEED_ESOUP_BAD_FIELD);
    ASSERT_EQ(mdfeed_soup_encode_login_accepted(buf, 32, &in), MDFEED_ESOUP_NOSPACE);
}

static void test_login_rejected(void)
{
    uint8_t buf[8];
    char reason = 0;
    ASSERT_EQ(mdfeed_soup_encode_login_rejected(buf, sizeof(buf), 'A'), 4);
    ASSERT_MEM_EQ(buf, "\x00\x02JA", 4);
    ASSERT_EQ(mdfeed_soup_decode_login_rejected(buf + 3, 1, &reason), 0);
    ASSERT_EQ(reason, 'A');
    ASSERT_EQ(mdfeed_soup_encode_login_rejected(buf, sizeof(buf), 'S'), 4);
    ASSERT_MEM_EQ(buf, "\x00\x02JS", 4);
    ASSERT_EQ(mdfeed_soup_decode_login_rejected(buf + 3, 1, &reason), 0);
    ASSERT_EQ(reason, 'S');
    ASSERT_EQ(mdfeed_soup_encode_login_rejected(buf, sizeof(buf), 'X'), MDFEED_ESOUP_BAD_FIELD);
    ASSERT_EQ(mdfeed_soup_decode_login_rejected("X", 1, &reason), MDFEED_ESOUP_BAD_FIELD);
    ASSERT_EQ(mdfeed_soup_decode_login_rejected("AS", 2, &reason), MDFEED_ESOUP_BAD_LENGTH);
    ASSERT_EQ(mdfeed_soup_decode_login_rejected("", 0, &reason), MDFEED_ESOUP_BAD_LENGTH);
    ASSERT_EQ(mdfeed_soup_encode_login_rejected(buf, 3, 'A'), MDFEED_ESOUP_NOSPACE);
}

/* The other seven types through the generic encoder, golden bytes by hand. */
static void test_other_types(void)
{
    uint8_t buf[16];
    ASSERT_EQ(mdfeed_soup_encode(buf, sizeof(buf), MDFEED_SOUP_SEQUENCED_DATA, "abc", 3), 6);
    ASSERT_MEM_EQ(buf, "\x00\x04Sabc", 6);
    ASSERT_EQ(mdfeed_soup_encode(buf, sizeof(buf), MDFEED_SOUP_UNSEQUENCED_DATA, "\x00\xff", 2), 5);
    ASSERT_MEM_EQ(buf, "\x00\x03U\x00\xff", 5);
    ASSERT_EQ(mdfeed_soup_encode(buf, sizeof(buf), MDFEED_SOUP_SERVER_HEARTBEAT, NULL, 0), 3);
    ASSERT_MEM_EQ(buf, "\x00\x01H", 3);
    ASSERT_EQ(mdfeed_soup_encode(buf, sizeof(buf), MDFEED_SOUP_CLIENT_HEARTBEAT, NULL, 0), 3);
    ASSERT_MEM_EQ(buf, "\x00\x01R", 3);
    ASSERT_EQ(mdfeed_soup_encode(buf, sizeof(buf), MDFEED_SOUP_END_OF_SESSION, NULL, 0), 3);
    ASSERT_MEM_EQ(buf, "\x00\x01Z", 3);
    ASSERT_EQ(mdfeed_soup_encode(buf, sizeof(buf), MDFEED_SOUP_LOGOUT_REQUEST, NULL, 0), 3);
    ASSERT_MEM_EQ(buf, "\x00\x01O", 3);
    ASSERT_EQ(mdfeed_soup_encode(buf, sizeof(buf), MDFEED_SOUP_DEBUG, "hello", 5), 8);
    ASSERT_MEM_EQ(buf, "\x00\x06+hello", 8);
    /* Empty data packets are legal. */
    ASSERT_EQ(mdfeed_soup_encode(buf, sizeof(buf), MDFEED_SOUP_SEQUENCED_DATA, NULL, 0), 3);
    ASSERT_MEM_EQ(buf, "\x00\x01S", 3);

    /* Rejections: unknown type, payload on an empty type, wrong login sizes, no space,
     * a payload the length prefix cannot describe. The buffer stays untouched. */
    memset(buf, 0xaa, sizeof(buf));
    ASSERT_EQ(mdfeed_soup_encode(buf, sizeof(buf), 'Q', "x", 1), MDFEED_ESOUP_BAD_TYPE);
    ASSERT_EQ(mdfeed_soup_encode(buf, sizeof(buf), MDFEED_SOUP_SERVER_HEARTBEAT, "x", 1),
              MDFEED_ESOUP_BAD_LENGTH);
    ASSERT_EQ(mdfeed_soup_encode(buf, sizeof(buf), MDFEED_SOUP_LOGIN_REJECTED, "AS", 2),
              MDFEED_ESOUP_BAD_LENGTH);
    ASSERT_EQ(mdfeed_soup_encode(buf, 5, MDFEED_SOUP_SEQUENCED_DATA, "abc", 3),
              MDFEED_ESOUP_NOSPACE);
    static uint8_t big[65536];
    ASSERT_EQ(mdfeed_soup_encode(big, sizeof(big), MDFEED_SOUP_SEQUENCED_DATA, big, 65535),
              MDFEED_ESOUP_BAD_LENGTH);
    for (size_t i = 0; i < sizeof(buf); i++)
        ASSERT_EQ(buf[i], 0xaa);
    /* The largest frame: 65534 payload bytes, length prefix 0xFFFF. */
    static uint8_t out[65537];
    ASSERT_EQ(mdfeed_soup_encode(out, sizeof(out), MDFEED_SOUP_SEQUENCED_DATA, big, 65534), 65537);
    ASSERT_EQ(out[0], 0xff);
    ASSERT_EQ(out[1], 0xff);
}

static void test_types_and_check(void)
{
    static const struct {
        char type;
        const char *name;
        long fixed; /* payload length, -1 = any */
    } types[] = {
        {'+', "debug", -1},          {'A', "login accepted", 30},   {'J', "login rejected", 1},
        {'S', "sequenced data", -1}, {'H', "server heartbeat", 0},  {'Z', "end of session", 0},
        {'L', "login request", 46},  {'U', "unsequenced data", -1}, {'R', "client heartbeat", 0},
        {'O', "logout request", 0},
    };
    int known = 0;
    for (int c = 0; c < 256; c++)
        known += mdfeed_soup_type_known((char)c);
    ASSERT_EQ(known, 10);
    ASSERT_STR_EQ(mdfeed_soup_type_name('Q'), "unknown");
    ASSERT_EQ(mdfeed_soup_frame_check('Q', 0), MDFEED_ESOUP_BAD_TYPE);
    ASSERT_EQ(mdfeed_soup_frame_check('\0', 0), MDFEED_ESOUP_BAD_TYPE);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        ASSERT(mdfeed_soup_type_known(types[i].type));
        ASSERT_STR_EQ(mdfeed_soup_type_name(types[i].type), types[i].name);
        if (types[i].fixed < 0) {
            ASSERT_EQ(mdfeed_soup_frame_check(types[i].type, 0), 0);
            ASSERT_EQ(mdfeed_soup_frame_check(types[i].type, 65534), 0);
            ASSERT_EQ(mdfeed_soup_frame_check(types[i].type, 65535), MDFEED_ESOUP_BAD_LENGTH);
        } else {
            size_t n = (size_t)types[i].fixed;
            ASSERT_EQ(mdfeed_soup_frame_check(types[i].type, n), 0);
            ASSERT_EQ(mdfeed_soup_frame_check(types[i].type, n + 1), MDFEED_ESOUP_BAD_LENGTH);
            if (n > 0)
                ASSERT_EQ(mdfeed_soup_frame_check(types[i].type, n - 1), MDFEED_ESOUP_BAD_LENGTH);
        }
    }
}

/* ---- streaming parser --------------------------------------------------------------------- */

#define MAX_FRAMES 64

typedef struct {
    int n;
    char type[MAX_FRAMES];
    size_t len[MAX_FRAMES];
    uint8_t payload[MAX_FRAMES][512];
    const uint8_t *ptr[MAX_FRAMES];
    int stop_at; /* return 42 on this frame (-1 = never) */
} frames_t;

static int collect(void *data, char type, const uint8_t *payload, size_t len)
{
    frames_t *f = data;
    ASSERT_LT(f->n, MAX_FRAMES);
    ASSERT_LE(len, sizeof(f->payload[0]));
    f->type[f->n] = type;
    f->len[f->n] = len;
    f->ptr[f->n] = payload;
    if (len)
        memcpy(f->payload[f->n], payload, len);
    f->n++;
    return f->n - 1 == f->stop_at ? 42 : 0;
}

/* A stream with every packet type, empty and 300-byte payloads, written out frame by frame. */
static size_t build_stream(uint8_t *buf, size_t cap, frames_t *want)
{
    size_t off = 0;
    memset(want, 0, sizeof(*want));
    want->stop_at = -1;
    mdfeed_soup_login_t login = {.username = "bob", .password = "pw", .session = "S", .seq = 9};
    mdfeed_soup_accept_t acc = {.session = "S", .seq = 9};
    uint8_t big[300];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    int n;
#define ADD(expr)                                                                                  \
    do {                                                                                           \
        n = (expr);                                                                                \
        ASSERT_GT(n, 0);                                                                           \
        collect(want, (char)buf[off + 2], buf + off + 3, (size_t)n - 3);                           \
        off += (size_t)n;                                                                          \
    } while (0)
    ADD(mdfeed_soup_encode_login_request(buf + off, cap - off, &login));
    ADD(mdfeed_soup_encode_login_accepted(buf + off, cap - off, &acc));
    ADD(mdfeed_soup_encode(buf + off, cap - off, 'S', "first", 5));
    ADD(mdfeed_soup_encode(buf + off, cap - off, 'H', NULL, 0));
    ADD(mdfeed_soup_encode(buf + off, cap - off, 'S', big, sizeof(big)));
    ADD(mdfeed_soup_encode(buf + off, cap - off, 'U', "u", 1));
    ADD(mdfeed_soup_encode(buf + off, cap - off, 'R', NULL, 0));
    ADD(mdfeed_soup_encode(buf + off, cap - off, '+', "debug text", 10));
    ADD(mdfeed_soup_encode_login_rejected(buf + off, cap - off, 'S'));
    ADD(mdfeed_soup_encode(buf + off, cap - off, 'S', NULL, 0));
    ADD(mdfeed_soup_encode(buf + off, cap - off, 'O', NULL, 0));
    ADD(mdfeed_soup_encode(buf + off, cap - off, 'Z', NULL, 0));
#undef ADD
    return off;
}

static void expect_frames(const frames_t *got, const frames_t *want)
{
    ASSERT_EQ(got->n, want->n);
    for (int i = 0; i < want->n; i++) {
        ASSERT_EQ(got->type[i], want->type[i]);
        ASSERT_EQ(got->len[i], want->len[i]);
        ASSERT_MEM_EQ(got->payload[i], want->payload[i], want->len[i]);
    }
}

/* Feeds `buf` cut at the given points (ascending, within 0..len). */
static void feed_cuts(const uint8_t *buf, size_t len, const size_t *cuts, int ncuts,
                      const frames_t *want)
{
    mdfeed_soup_parser_t p;
    frames_t got = {.stop_at = -1};
    ASSERT_EQ(mdfeed_soup_parser_init(&p, 1024), 0);
    size_t from = 0;
    for (int i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        ASSERT_EQ(mdfeed_soup_parser_feed(&p, buf + from, to - from, collect, &got), 0);
        from = to;
    }
    ASSERT(!mdfeed_soup_parser_partial(&p));
    expect_frames(&got, want);
    mdfeed_soup_parser_close(&p);
}

static void test_parser_splits(void)
{
    static uint8_t buf[1024];
    frames_t want;
    size_t len = build_stream(buf, sizeof(buf), &want);
    ASSERT_EQ(want.n, 12);

    /* In one piece: every frame is passed in place (zero-copy). */
    mdfeed_soup_parser_t p;
    frames_t got = {.stop_at = -1};
    ASSERT_EQ(mdfeed_soup_parser_init(&p, 1024), 0);
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, buf, len, collect, &got), 0);
    expect_frames(&got, &want);
    for (int i = 0; i < got.n; i++)
        ASSERT(got.ptr[i] == want.ptr[i]);
    mdfeed_soup_parser_close(&p);
    mdfeed_soup_parser_close(&p); /* twice is safe */

    /* Every split into two pieces, and into three pieces. */
    for (size_t a = 0; a <= len; a++)
        feed_cuts(buf, len, &a, 1, &want);
    unsigned three = 0;
    for (size_t a = 0; a <= len; a += 1)
        for (size_t b = a; b <= len; b += 1 + (a % 3)) {
            size_t cuts[2] = {a, b};
            feed_cuts(buf, len, cuts, 2, &want);
            three++;
        }
    ASSERT_GT(three, 10000);

    /* One byte at a time, with zero-length feeds in between. */
    frames_t got1 = {.stop_at = -1};
    ASSERT_EQ(mdfeed_soup_parser_init(&p, 1024), 0);
    for (size_t i = 0; i < len; i++) {
        ASSERT_EQ(mdfeed_soup_parser_feed(&p, buf + i, 1, collect, &got1), 0);
        ASSERT_EQ(mdfeed_soup_parser_feed(&p, buf + i, 0, collect, &got1), 0);
        if (i == 0)
            ASSERT(mdfeed_soup_parser_partial(&p));
    }
    ASSERT(!mdfeed_soup_parser_partial(&p));
    expect_frames(&got1, &want);
    mdfeed_soup_parser_close(&p);
}

/* lens[0] counts frames, lens[1..] are their payload lengths. */
static int count_lens(void *data, char type, const uint8_t *payload, size_t len)
{
    size_t *lens = data;
    (void)type;
    (void)payload;
    ASSERT_LT(lens[0], 3);
    lens[1 + lens[0]++] = len;
    return 0;
}

static void test_parser_max_frame(void)
{
    mdfeed_soup_parser_t p;
    ASSERT_EQ(mdfeed_soup_parser_init(&p, 0), -EINVAL);
    ASSERT_EQ(mdfeed_soup_parser_init(&p, MDFEED_SOUP_MAX_FRAME + 1), -EINVAL);
    mdfeed_soup_parser_t zero;
    memset(&zero, 0, sizeof(zero));
    frames_t got = {.stop_at = -1};
    ASSERT_EQ(mdfeed_soup_parser_feed(&zero, "\x00", 1, collect, &got), -EINVAL);
    mdfeed_soup_parser_close(&zero);

    /* A frame exactly max_frame long passes; one byte more is OVERSIZE, detected from the
     * prefix alone, after the frames before it were delivered; the error is sticky. */
    uint8_t buf[64];
    ASSERT_EQ(mdfeed_soup_parser_init(&p, 10), 0);
    int n1 = mdfeed_soup_encode(buf, sizeof(buf), 'S', "123456789", 9); /* length 10 */
    ASSERT_EQ(n1, 12);
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, buf, (size_t)n1, collect, &got), 0);
    ASSERT_EQ(got.n, 1);
    int n2 = mdfeed_soup_encode(buf, sizeof(buf), 'H', NULL, 0);
    int n3 = mdfeed_soup_encode(buf + n2, sizeof(buf) - (size_t)n2, 'S', "1234567890", 10);
    ASSERT_EQ(n3, 13);
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, buf, (size_t)n2 + 2, collect, &got),
              MDFEED_ESOUP_OVERSIZE);
    ASSERT_EQ(got.n, 2); /* the heartbeat before it got through */
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, "\x00\x01H", 3, collect, &got), MDFEED_ESOUP_OVERSIZE);
    ASSERT_EQ(got.n, 2);
    /* A reset (new connection) clears it. */
    mdfeed_soup_parser_reset(&p);
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, "\x00\x01H", 3, collect, &got), 0);
    ASSERT_EQ(got.n, 3);
    /* Oversize with the prefix split across feeds. */
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, "\x00", 1, collect, &got), 0);
    ASSERT(mdfeed_soup_parser_partial(&p));
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, "\x0b", 1, collect, &got), MDFEED_ESOUP_OVERSIZE);
    mdfeed_soup_parser_close(&p);

    /* The largest frame the prefix can describe, with the largest max_frame. */
    static uint8_t huge[65537 + 3];
    ASSERT_EQ(mdfeed_soup_parser_init(&p, MDFEED_SOUP_MAX_FRAME), 0);
    ASSERT_EQ(mdfeed_soup_encode(huge, sizeof(huge), 'U', huge + 3, 65534), 65537);
    ASSERT_EQ(mdfeed_soup_encode(huge + 65537, 3, 'R', NULL, 0), 3);
    size_t lens[4] = {0};
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, huge, 40000, count_lens, lens), 0);
    ASSERT_EQ(lens[0], 0);
    ASSERT(mdfeed_soup_parser_partial(&p));
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, huge + 40000, sizeof(huge) - 40000, count_lens, lens), 0);
    ASSERT_EQ(lens[0], 2);
    ASSERT_EQ(lens[1], 65534);
    ASSERT_EQ(lens[2], 0);
    mdfeed_soup_parser_close(&p);
}

static void test_parser_empty_frame(void)
{
    mdfeed_soup_parser_t p;
    frames_t got = {.stop_at = -1};
    ASSERT_EQ(mdfeed_soup_parser_init(&p, 100), 0);
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, "\x00\x02Sa\x00\x00\x00\x01H", 9, collect, &got),
              MDFEED_ESOUP_EMPTY);
    ASSERT_EQ(got.n, 1);
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, "\x00\x01H", 3, collect, &got), MDFEED_ESOUP_EMPTY);
    ASSERT_EQ(got.n, 1);
    mdfeed_soup_parser_reset(&p);
    /* Split zero-length prefix. */
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, "\x00", 1, collect, &got), 0);
    ASSERT_EQ(mdfeed_soup_parser_feed(&p, "\x00", 1, collect, &got), MDFEED_ESOUP_EMPTY);
    mdfeed_soup_parser_close(&p);
}

/* A callback that stops the feed: its value comes back and stays (the position is lost). */
static void test_parser_callback_stop(void)
{
    static uint8_t buf[1024];
    frames_t want;
    size_t len = build_stream(buf, sizeof(buf), &want);
    for (int split = 0; split < 2; split++) {
        mdfeed_soup_parser_t p;
        frames_t got = {.stop_at = 2};
        ASSERT_EQ(mdfeed_soup_parser_init(&p, 1024), 0);
        if (split) {
            /* Stop on a frame completed from the partial buffer. */
            size_t cut = 49 + 33 + 4; /* inside the third frame ("first") */
            ASSERT_EQ(mdfeed_soup_parser_feed(&p, buf, cut, collect, &got), 0);
            ASSERT_EQ(mdfeed_soup_parser_feed(&p, buf + cut, len - cut, collect, &got), 42);
        } else {
            ASSERT_EQ(mdfeed_soup_parser_feed(&p, buf, len, collect, &got), 42);
        }
        ASSERT_EQ(got.n, 3);
        ASSERT_EQ(mdfeed_soup_parser_feed(&p, "\x00\x01H", 3, collect, &got), 42);
        ASSERT_EQ(got.n, 3);
        mdfeed_soup_parser_close(&p);
    }
}

int main(void)
{
    test_login_request();
    test_padding_tolerance();
    test_login_request_rejections();
    test_login_accepted();
    test_login_rejected();
    test_other_types();
    test_types_and_check();
    test_parser_splits();
    test_parser_max_frame();
    test_parser_empty_frame();
    test_parser_callback_stop();
    return 0;
}
