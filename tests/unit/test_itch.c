/* ITCH 5.0: every type's length, header decoding, the printer on hand-built messages, every
 * rejection. With `--itchgen PATH` it instead runs the generator and checks its output. */
#include "task.h"

#include "mdfeed/itch.h"

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* The lengths of the TotalView-ITCH 5.0 specification, type byte included. */
static const struct {
    char type;
    int len;
} spec_lengths[] = {
    {'S', 12}, {'R', 39}, {'H', 25}, {'Y', 20}, {'L', 26}, {'V', 35}, {'W', 12}, {'K', 28},
    {'J', 35}, {'h', 21}, {'A', 36}, {'F', 40}, {'E', 31}, {'C', 36}, {'X', 23}, {'D', 19},
    {'U', 35}, {'P', 44}, {'Q', 40}, {'B', 19}, {'I', 50}, {'N', 20}, {'O', 48},
};
#define NTYPES (sizeof(spec_lengths) / sizeof(spec_lengths[0]))

static bool is_spec_type(int c)
{
    for (size_t i = 0; i < NTYPES; i++)
        if (spec_lengths[i].type == c)
            return true;
    return false;
}

static void test_lengths(void)
{
    for (size_t i = 0; i < NTYPES; i++) {
        ASSERT_EQ(mdfeed_itch_msg_len(spec_lengths[i].type), spec_lengths[i].len);
        ASSERT(mdfeed_itch_type_name(spec_lengths[i].type) != NULL);
        ASSERT_LE(spec_lengths[i].len, MDFEED_ITCH_MAX_MSG_LEN);
    }
    /* Every other byte value is unknown, including types of older ITCH versions ('T', 'M'). */
    for (int c = 0; c < 256; c++) {
        if (is_spec_type(c))
            continue;
        ASSERT_EQ(mdfeed_itch_msg_len((char)c), MDFEED_EITCH_UNKNOWN_TYPE);
        ASSERT(mdfeed_itch_type_name((char)c) == NULL);
    }
}

/* Add Order, locate 1, tracking 2, 09:30:00.000000123, ref 42, buy 100 AAPL @ 187.25. */
/* clang-format off */
static const uint8_t add_order[36] = {
    'A', 0x00, 0x01, 0x00, 0x02, 0x1f, 0x1a, 0xce, 0xd9, 0xf0, 0x7b,  /* header */
    0,   0,    0,    0,    0,    0,    0,    42,                     /* order reference */
    'B', 0,    0,    0,    100,                                      /* side, shares */
    'A', 'A',  'P',  'L',  ' ',  ' ',  ' ',  ' ',                    /* stock */
    0x00, 0x1c, 0x92, 0x74,                                          /* price 1872500 */
};
/* clang-format on */

static void test_header_decode(void)
{
    mdfeed_itch_header_t h;
    ASSERT_EQ(mdfeed_itch_header_decode(add_order, sizeof(add_order), &h), 0);
    ASSERT_EQ(h.type, 'A');
    ASSERT_EQ(h.stock_locate, 1);
    ASSERT_EQ(h.tracking_number, 2);
    ASSERT_UEQ(h.timestamp_ns, 34200000000123ull);

    /* Wrong lengths, both ways, and an empty message. */
    ASSERT_EQ(mdfeed_itch_header_decode(add_order, 35, &h), MDFEED_EITCH_BAD_LENGTH);
    uint8_t longer[37];
    memcpy(longer, add_order, 36);
    longer[36] = 0;
    ASSERT_EQ(mdfeed_itch_header_decode(longer, 37, &h), MDFEED_EITCH_BAD_LENGTH);
    ASSERT_EQ(mdfeed_itch_header_decode(add_order, 0, &h), MDFEED_EITCH_BAD_LENGTH);
    /* A single byte of a known type is a wrong length, never a read past it. */
    ASSERT_EQ(mdfeed_itch_header_decode("A", 1, &h), MDFEED_EITCH_BAD_LENGTH);
    ASSERT_EQ(mdfeed_itch_header_decode("T", 1, &h), MDFEED_EITCH_UNKNOWN_TYPE);
    uint8_t unknown[36];
    memcpy(unknown, add_order, 36);
    unknown[0] = 'Z';
    ASSERT_EQ(mdfeed_itch_header_decode(unknown, 36, &h), MDFEED_EITCH_UNKNOWN_TYPE);
}

static void expect_line(const uint8_t *msg, size_t len, const char *want)
{
    char line[MDFEED_ITCH_LINE_MAX];
    int n = mdfeed_itch_format(msg, len, line, sizeof(line));
    if (n < 0)
        TEST_FAIL_("format of '%c' failed: %s", msg[0], mdfeed_strerror(n));
    ASSERT_STR_EQ(line, want);
    ASSERT_EQ(n, (int)strlen(want));
}

static void test_format_orders(void)
{
    expect_line(add_order, sizeof(add_order),
                "Add Order 09:30:00.000000123 stock=AAPL side=B shares=100 price=187.2500 ref=42");

    /* Add Order MPID: sell 2500 MSFT @ 0.0001, ref 2^40, attribution GSCO, midnight. */
    /* clang-format off */
    static const uint8_t f[40] = {'F', 0, 7, 0, 0, 0, 0, 0, 0, 0, 0,
                                  0, 0, 1, 0, 0, 0, 0, 0, 'S', 0, 0, 0x09, 0xc4,
                                  'M', 'S', 'F', 'T', ' ', ' ', ' ', ' ', 0, 0, 0, 1,
                                  'G', 'S', 'C', 'O'};
    /* clang-format on */
    expect_line(f, sizeof(f),
                "Add Order MPID 00:00:00.000000000 stock=MSFT side=S shares=2500 price=0.0001"
                " ref=1099511627776 mpid=GSCO");

    /* Order Executed With Price: ref 42, 100 shares, match 7, printable, @ 187.30,
     * at the largest timestamp 48 bits hold (past 24 h: shown as is). */
    /* clang-format off */
    static const uint8_t c[36] = {'C', 0, 1, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 100,
                                  0, 0, 0, 0, 0, 0, 0, 7, 'Y', 0x00, 0x1c, 0x94, 0x68};
    /* clang-format on */
    expect_line(c, sizeof(c),
                "Order Executed With Price 78:11:14.976710655 ref=42 shares=100 match=7"
                " printable=Y price=187.3000");

    /* Order Replace: 42 -> 43, 300 shares @ 12.34, 23:59:59.999999999. */
    /* clang-format off */
    static const uint8_t u[35] = {'U', 0, 1, 0, 4, 0x4e, 0x94, 0x91, 0x4e, 0xff, 0xff,
                                  0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 43,
                                  0, 0, 1, 0x2c, 0, 0x01, 0xe2, 0x08};
    /* clang-format on */
    expect_line(u, sizeof(u),
                "Order Replace 23:59:59.999999999 ref=42 new_ref=43 shares=300 price=12.3400");

    static const uint8_t d[19] = {'D', 0, 1, 0, 5, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42};
    expect_line(d, sizeof(d), "Order Delete 00:00:00.000000001 ref=42");

    /* clang-format off */
    static const uint8_t x[23] = {'X', 0, 1, 0, 5, 0, 0, 0, 0, 0, 1,
                                  0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 50};
    /* clang-format on */
    expect_line(x, sizeof(x), "Order Cancel 00:00:00.000000001 ref=42 shares=50");

    /* clang-format off */
    static const uint8_t e[31] = {'E', 0, 1, 0, 5, 0, 0, 0, 0, 0, 1,
                                  0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 50,
                                  0, 0, 0, 0, 0, 0, 0, 9};
    /* clang-format on */
    expect_line(e, sizeof(e), "Order Executed 00:00:00.000000001 ref=42 shares=50 match=9");
}

static void test_format_system_and_trades(void)
{
    static const uint8_t s[12] = {'S', 0, 0, 0, 0, 0x1f, 0x1a, 0xce, 0xd9, 0xf0, 0x7b, 'Q'};
    expect_line(s, sizeof(s), "System Event 09:30:00.000000123 event=Q");

    /* Stock Directory: QQQ, locate 16, NASDAQ Global Select, normal, round lot 100, class C. */
    /* clang-format off */
    static const uint8_t r[39] = {'R', 0, 16, 0, 0, 0, 0, 0, 0, 0, 0,
                                  'Q', 'Q', 'Q', ' ', ' ', ' ', ' ', ' ', 'Q', 'N', 0, 0, 0, 100,
                                  'N', 'C', 'Z', ' ', 'P', 'N', 'N', '1', 'N', 0, 0, 0, 0, 'N'};
    /* clang-format on */
    expect_line(r, sizeof(r),
                "Stock Directory 00:00:00.000000000 stock=QQQ locate=16 market=Q status=N lot=100"
                " class=C");

    /* clang-format off */
    static const uint8_t h[25] = {'H', 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 'A', 'A', 'P', 'L',
                                  ' ', ' ', ' ', ' ', 'H', ' ', 'T', '1', ' ', ' '};
    /* clang-format on */
    expect_line(h, sizeof(h),
                "Stock Trading Action 00:00:00.000000000 stock=AAPL state=H reason=T1");

    /* Trade (non-cross): hidden order (ref 0), buy 200 AAPL @ 187.25, match 77. */
    /* clang-format off */
    static const uint8_t p[44] = {'P', 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
                                  0, 0, 0, 0, 0, 0, 0, 0, 'B', 0, 0, 0, 200,
                                  'A', 'A', 'P', 'L', ' ', ' ', ' ', ' ', 0x00, 0x1c, 0x92, 0x74,
                                  0, 0, 0, 0, 0, 0, 0, 77};
    /* clang-format on */
    expect_line(
        p, sizeof(p),
        "Trade 00:00:00.000000000 stock=AAPL side=B shares=200 price=187.2500 ref=0 match=77");

    /* clang-format off */
    static const uint8_t q[40] = {'Q', 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
                                  0, 0, 0, 0, 0, 1, 0x86, 0xa0, 'A', 'A', 'P', 'L',
                                  ' ', ' ', ' ', ' ', 0x00, 0x1c, 0x92, 0x74,
                                  0, 0, 0, 0, 0, 0, 0, 78, 'O'};
    /* clang-format on */
    expect_line(q, sizeof(q),
                "Cross Trade 00:00:00.000000000 stock=AAPL shares=100000 price=187.2500 match=78"
                " cross=O");

    static const uint8_t b[19] = {'B', 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 77};
    expect_line(b, sizeof(b), "Broken Trade 00:00:00.000000000 match=77");

    /* MWCB Decline Level: Price(8) levels 1234.5, 0.00000001, 0. */
    /* clang-format off */
    static const uint8_t v[35] = {'V', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                  0, 0, 0, 0x1c, 0xbe, 0x31, 0x82, 0x80, /* 123450000000 */
                                  0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    /* clang-format on */
    expect_line(v, sizeof(v),
                "MWCB Decline Level 00:00:00.000000000 level1=1234.50000000 level2=0.00000001"
                " level3=0.00000000");
}

/* A control character or a byte >= 0x7f inside a text field never breaks the line. */
static void test_format_sanitizes(void)
{
    uint8_t m[36];
    memcpy(m, add_order, sizeof(m));
    memcpy(m + 24, "A\nB\x7f\xff   ", 8);
    expect_line(m, sizeof(m),
                "Add Order 09:30:00.000000123 stock=A?B?? side=B shares=100 price=187.2500 ref=42");
}

/* The worst case of every type (all 0xff: longest numbers, '?' everywhere) fits 256 bytes. */
static void test_format_bound(void)
{
    for (size_t i = 0; i < NTYPES; i++) {
        uint8_t m[MDFEED_ITCH_MAX_MSG_LEN];
        memset(m, 0xff, sizeof(m));
        m[0] = (uint8_t)spec_lengths[i].type;
        char line[MDFEED_ITCH_LINE_MAX];
        int n = mdfeed_itch_format(m, (size_t)spec_lengths[i].len, line, sizeof(line));
        ASSERT_GT(n, 0);
        ASSERT_LT(n, MDFEED_ITCH_LINE_MAX);
        ASSERT_EQ((size_t)n, strlen(line));
        ASSERT(strchr(line, '\n') == NULL);
        const char *name = mdfeed_itch_type_name(spec_lengths[i].type);
        ASSERT(strncmp(line, name, strlen(name)) == 0);
    }
}

static void test_format_errors(void)
{
    char line[64];
    /* Too small: a truncated but terminated line and NOSPACE. */
    int n = mdfeed_itch_format(add_order, sizeof(add_order), line, 20);
    ASSERT_EQ(n, MDFEED_EITCH_NOSPACE);
    ASSERT_EQ(strlen(line), 19);
    ASSERT_STR_EQ(line, "Add Order 09:30:00.");
    ASSERT_EQ(mdfeed_itch_format(add_order, sizeof(add_order), NULL, 0), MDFEED_EITCH_NOSPACE);
    /* Exactly enough (line + NUL) works; one byte less does not. */
    static const char *want =
        "Add Order 09:30:00.000000123 stock=AAPL side=B shares=100 price=187.2500 ref=42";
    char exact[128];
    ASSERT_EQ(mdfeed_itch_format(add_order, 36, exact, strlen(want) + 1), (int)strlen(want));
    ASSERT_EQ(mdfeed_itch_format(add_order, 36, exact, strlen(want)), MDFEED_EITCH_NOSPACE);
    /* Bad input: error, and an empty line rather than stale text. */
    strcpy(line, "stale");
    ASSERT_EQ(mdfeed_itch_format(add_order, 30, line, sizeof(line)), MDFEED_EITCH_BAD_LENGTH);
    ASSERT_STR_EQ(line, "");
    ASSERT_EQ(mdfeed_itch_format("?", 1, line, sizeof(line)), MDFEED_EITCH_UNKNOWN_TYPE);
    ASSERT_EQ(mdfeed_itch_format(add_order, 0, line, sizeof(line)), MDFEED_EITCH_BAD_LENGTH);
}

/* ---- generator check ---------------------------------------------------------------------- */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ASSERT(f != NULL);
    struct stat st;
    ASSERT_EQ(fstat(fileno(f), &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    ASSERT(buf != NULL);
    ASSERT_EQ(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    fclose(f);
    *len = (size_t)st.st_size;
    return buf;
}

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Walks a length-prefixed file: every message must decode, timestamps must increase. */
static void check_generated(const uint8_t *buf, size_t len, uint64_t count, uint64_t *by_type)
{
    size_t off = 0;
    uint64_t n = 0, last_ts = 0;
    char line[MDFEED_ITCH_LINE_MAX];
    while (off < len) {
        ASSERT_GE(len - off, 2);
        size_t mlen = (size_t)(buf[off] << 8 | buf[off + 1]);
        off += 2;
        ASSERT_GE(len - off, mlen);
        mdfeed_itch_header_t h;
        int rc = mdfeed_itch_header_decode(buf + off, mlen, &h);
        if (rc)
            TEST_FAIL_("message %" PRIu64 " at offset %zu: %s", n, off, mdfeed_strerror(rc));
        ASSERT_GT(mdfeed_itch_format(buf + off, mlen, line, sizeof(line)), 0);
        if (n > 0)
            ASSERT_GT(h.timestamp_ns, last_ts);
        last_ts = h.timestamp_ns;
        by_type[(uint8_t)h.type]++;
        off += mlen;
        n++;
    }
    ASSERT_UEQ(n, count);
}

static int test_itchgen(const char *itchgen)
{
    char dir[] = "/tmp/itchgen-test-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char cmd[1024], path[256], gzpath[256], path2[256];
    snprintf(path, sizeof(path), "%s/day.itch", dir);
    snprintf(path2, sizeof(path2), "%s/again.itch", dir);
    snprintf(gzpath, sizeof(gzpath), "%s/day.itch.gz", dir);

    const uint64_t count = 20000;
    snprintf(cmd, sizeof(cmd), "'%s' --count %" PRIu64 " --seed 7 --symbols 12 --out '%s'", itchgen,
             count, path);
    ASSERT_EQ(run(cmd), 0);
    size_t len;
    uint8_t *buf = read_file(path, &len);
    uint64_t by_type[256] = {0};
    check_generated(buf, len, count, by_type);

    /* The shape of a day: one start and end of messages, a directory entry per symbol, and
     * order flow in which adds and deletes dominate and every flow type shows up. */
    ASSERT_EQ(buf[2], 'S');
    ASSERT_EQ(buf[2 + 11], 'O');
    ASSERT_EQ(buf[len - 1], 'C');
    ASSERT_EQ(by_type['S'], 6);
    ASSERT_EQ(by_type['R'], 12);
    ASSERT_EQ(by_type['H'], 12);
    const char flow_types[] = "AFEXDUPIC";
    for (const char *t = flow_types; *t; t++)
        if (by_type[(uint8_t)*t] == 0)
            TEST_FAIL_("generated day has no '%c' message", *t);
    ASSERT_GT(by_type['A'], count / 4);
    ASSERT_GT(by_type['D'], count / 10);
    ASSERT_GT(by_type['A'] + by_type['F'], by_type['D']);

    /* Same seed, same bytes; another seed, other bytes. */
    snprintf(cmd, sizeof(cmd),
             "'%s' --count %" PRIu64 " --seed 7 --symbols 12 --out '%s' >/dev/null", itchgen, count,
             path2);
    ASSERT_EQ(run(cmd), 0);
    size_t len2;
    uint8_t *buf2 = read_file(path2, &len2);
    ASSERT_EQ(len2, len);
    ASSERT(memcmp(buf, buf2, len) == 0);
    free(buf2);
    snprintf(cmd, sizeof(cmd),
             "'%s' --count %" PRIu64 " --seed 8 --symbols 12 --out '%s' >/dev/null", itchgen, count,
             path2);
    ASSERT_EQ(run(cmd), 0);
    buf2 = read_file(path2, &len2);
    ASSERT(len2 != len || memcmp(buf, buf2, len) != 0);
    free(buf2);

    /* --gzip writes the same stream, compressed (through gzip(1), which the tests' setup
     * installs). */
    if (run("command -v gzip >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof(cmd),
                 "'%s' --count %" PRIu64 " --seed 7 --symbols 12 --out '%s' --gzip >/dev/null",
                 itchgen, count, gzpath);
        ASSERT_EQ(run(cmd), 0);
        size_t gzlen;
        uint8_t *gz = read_file(gzpath, &gzlen);
        ASSERT_GE(gzlen, 2);
        ASSERT_EQ(gz[0], 0x1f);
        ASSERT_EQ(gz[1], 0x8b);
        free(gz);
        snprintf(cmd, sizeof(cmd), "gzip -dc '%s' | cmp -s - '%s'", gzpath, path);
        ASSERT_EQ(run(cmd), 0);
    } else {
        printf("gzip not installed: --gzip not checked\n");
    }

    /* Tiny counts keep the ends of the day; bad arguments are refused with exit code 2. */
    snprintf(cmd, sizeof(cmd), "'%s' --count 2 --out '%s' >/dev/null", itchgen, path2);
    ASSERT_EQ(run(cmd), 0);
    buf2 = read_file(path2, &len2);
    memset(by_type, 0, sizeof(by_type));
    check_generated(buf2, len2, 2, by_type);
    ASSERT_EQ(buf2[len2 - 1], 'C');
    free(buf2);
    snprintf(cmd, sizeof(cmd), "'%s' --count 0 --out '%s' >/dev/null", itchgen, path2);
    ASSERT_EQ(run(cmd), 0);
    buf2 = read_file(path2, &len2);
    ASSERT_EQ(len2, 0);
    free(buf2);
    snprintf(cmd, sizeof(cmd), "'%s' --count x --out '%s' 2>/dev/null", itchgen, path2);
    ASSERT_EQ(run(cmd), 2);
    snprintf(cmd, sizeof(cmd), "'%s' --count 10 --symbols 0 --out '%s' 2>/dev/null", itchgen,
             path2);
    ASSERT_EQ(run(cmd), 2);
    snprintf(cmd, sizeof(cmd), "'%s' --count 10 2>/dev/null", itchgen);
    ASSERT_EQ(run(cmd), 2);

    free(buf);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ASSERT_EQ(run(cmd), 0);
    printf("itchgen: %" PRIu64 " messages checked\n", count);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--itchgen") == 0)
        return test_itchgen(argv[2]);
    test_lengths();
    test_header_decode();
    test_format_orders();
    test_format_system_and_trades();
    test_format_sanitizes();
    test_format_bound();
    test_format_errors();
    return 0;
}
