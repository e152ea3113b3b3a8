/* itchgen: writes a synthetic NASDAQ TotalView-ITCH 5.0 file as NASDAQ distributes them, each
 * message preceded by its length as a 2-byte big-endian integer.
 *
 *   itchgen --count N [--seed S] [--symbols K] --out FILE [--gzip]
 *
 * The day looks like a real one: start of messages, a stock directory and a trading action per
 * symbol, start of system and market hours, then order flow (adds, executions, cancels, deletes,
 * replaces, trades, the odd imbalance and Reg SHO message) against a book of live orders, so
 * every execution, cancel, delete and replace names an order that exists and never takes more
 * shares than it has; the file ends with end of market hours, end of system hours and end of
 * messages. Timestamps strictly increase. The same seed always gives the same bytes.
 * Prints one summary line on stdout. */
#include "mdfeed/itch.h"
#include "mdfeed/moldudp64.h" /* mdfeed_put_be16 / be64 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SYMBOLS     1000
#define MAX_LIVE_ORDERS 65536
#define NS_PER_SEC      1000000000ull

typedef struct {
    uint64_t ref;
    uint16_t locate;
    char side;
    uint32_t shares;
    uint32_t price;
} order_t;

typedef struct {
    char name[8]; /* space padded */
    uint32_t mid; /* Price(4) */
} symbol_t;

typedef struct {
    FILE *out;
    uint64_t rng;
    uint64_t ts;
    uint64_t next_ref;
    uint64_t next_match;
    uint16_t tracking;
    symbol_t syms[MAX_SYMBOLS];
    unsigned nsyms;
    order_t *live;
    size_t nlive;
    uint64_t written;
    uint64_t bytes;
    uint64_t by_type[128];
} gen_t;

/* splitmix64: small, fast, and the same sequence everywhere for a given seed. */
static uint64_t rnd(gen_t *g)
{
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t rnd_below(gen_t *g, uint32_t n)
{
    return (uint32_t)(rnd(g) % n);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes the 11-byte common header and advances the clock by 1 ns .. 40 us. */
static void header(gen_t *g, uint8_t *m, char type, uint16_t locate)
{
    g->ts += 1 + rnd_below(g, 40000);
    m[0] = (uint8_t)type;
    mdfeed_put_be16(m + 1, locate);
    mdfeed_put_be16(m + 3, g->tracking++);
    for (int i = 0; i < 6; i++)
        m[5 + i] = (uint8_t)(g->ts >> (8 * (5 - i)));
}

static int emit(gen_t *g, const uint8_t *m)
{
    int len = mdfeed_itch_msg_len((char)m[0]);
    uint8_t prefix[2];
    mdfeed_put_be16(prefix, (uint16_t)len);
    if (fwrite(prefix, 1, 2, g->out) != 2 || fwrite(m, 1, (size_t)len, g->out) != (size_t)len)
        return -errno;
    g->written++;
    g->bytes += 2 + (uint64_t)len;
    g->by_type[m[0] & 0x7f]++;
    return 0;
}

static int system_event(gen_t *g, char code)
{
    uint8_t m[12];
    header(g, m, 'S', 0);
    m[11] = (uint8_t)code;
    return emit(g, m);
}

static int stock_directory(gen_t *g, unsigned i)
{
    uint8_t m[39];
    header(g, m, 'R', (uint16_t)(i + 1));
    memcpy(m + 11, g->syms[i].name, 8);
    m[19] = "QGSNA"[i % 5]; /* market category */
    m[20] = 'N';            /* financial status: normal */
    put_be32(m + 21, 100);  /* round lot size */
    m[25] = 'N';
    m[26] = 'C';             /* issue classification: common stock */
    memcpy(m + 27, "Z ", 2); /* sub-type: not applicable */
    m[29] = 'P';             /* live production */
    m[30] = 'N';
    m[31] = 'N';
    m[32] = '1';
    m[33] = 'N'; /* not an ETP */
    put_be32(m + 34, 0);
    m[38] = 'N';
    return emit(g, m);
}

static int trading_action(gen_t *g, unsigned i)
{
    uint8_t m[25];
    header(g, m, 'H', (uint16_t)(i + 1));
    memcpy(m + 11, g->syms[i].name, 8);
    m[19] = 'T';
    m[20] = ' ';
    memcpy(m + 21, "    ", 4);
    return emit(g, m);
}

static int reg_sho(gen_t *g, unsigned i)
{
    uint8_t m[20];
    header(g, m, 'Y', (uint16_t)(i + 1));
    memcpy(m + 11, g->syms[i].name, 8);
    m[19] = "012"[rnd_below(g, 3)];
    return emit(g, m);
}

/* Moves the symbol's mid price by at most a few cents, never below $1. */
static uint32_t walk_price(gen_t *g, symbol_t *s)
{
    int step = (int)rnd_below(g, 11) - 5;
    int64_t mid = (int64_t)s->mid + step * 100;
    s->mid = mid < 10000 ? 10000 : (uint32_t)mid;
    return s->mid;
}

static int add_order(gen_t *g)
{
    unsigned si = rnd_below(g, g->nsyms);
    symbol_t *s = &g->syms[si];
    bool mpid = rnd_below(g, 10) == 0;
    uint8_t m[40];
    order_t o = {
        .ref = g->next_ref++,
        .locate = (uint16_t)(si + 1),
        .side = rnd_below(g, 2) ? 'B' : 'S',
        .shares = 100 * (1 + rnd_below(g, 10)),
    };
    uint32_t mid = walk_price(g, s);
    uint32_t off = 100 * rnd_below(g, 20);
    o.price = o.side == 'B' ? mid - (off < mid ? off : 0) : mid + off;

    header(g, m, mpid ? 'F' : 'A', o.locate);
    mdfeed_put_be64(m + 11, o.ref);
    m[19] = (uint8_t)o.side;
    put_be32(m + 20, o.shares);
    memcpy(m + 24, s->name, 8);
    put_be32(m + 32, o.price);
    if (mpid)
        memcpy(m + 36, "GSCO", 4);
    g->live[g->nlive++] = o;
    return emit(g, m);
}

static void remove_live(gen_t *g, size_t i)
{
    g->live[i] = g->live[--g->nlive];
}

/* Executes part or all of a live order, with or without a price. */
static int execute(gen_t *g, size_t i)
{
    order_t *o = &g->live[i];
    bool with_price = rnd_below(g, 8) == 0;
    uint32_t n = 100 * (1 + rnd_below(g, o->shares / 100));
    uint8_t m[36];
    header(g, m, with_price ? 'C' : 'E', o->locate);
    mdfeed_put_be64(m + 11, o->ref);
    put_be32(m + 19, n);
    mdfeed_put_be64(m + 23, g->next_match++);
    if (with_price) {
        m[31] = 'Y';
        put_be32(m + 32, o->price + 100);
    }
    int rc = emit(g, m);
    o->shares -= n;
    if (o->shares == 0)
        remove_live(g, i);
    return rc;
}

static int cancel(gen_t *g, size_t i)
{
    order_t *o = &g->live[i];
    if (o->shares <= 100)
        return execute(g, i);
    uint32_t n = 100 * (1 + rnd_below(g, o->shares / 100 - 1));
    uint8_t m[23];
    header(g, m, 'X', o->locate);
    mdfeed_put_be64(m + 11, o->ref);
    put_be32(m + 19, n);
    o->shares -= n;
    return emit(g, m);
}

static int delete_order(gen_t *g, size_t i)
{
    uint8_t m[19];
    header(g, m, 'D', g->live[i].locate);
    mdfeed_put_be64(m + 11, g->live[i].ref);
    remove_live(g, i);
    return emit(g, m);
}

static int replace(gen_t *g, size_t i)
{
    order_t *o = &g->live[i];
    uint8_t m[35];
    header(g, m, 'U', o->locate);
    mdfeed_put_be64(m + 11, o->ref);
    o->ref = g->next_ref++;
    o->shares = 100 * (1 + rnd_below(g, 10));
    o->price = o->side == 'B' ? o->price - (o->price > 20000 ? 100 : 0) : o->price + 100;
    mdfeed_put_be64(m + 19, o->ref);
    put_be32(m + 27, o->shares);
    put_be32(m + 31, o->price);
    return emit(g, m);
}

/* A match against a non-displayed order: names a reference that was never added (0). */
static int hidden_trade(gen_t *g)
{
    unsigned si = rnd_below(g, g->nsyms);
    uint8_t m[44];
    header(g, m, 'P', (uint16_t)(si + 1));
    mdfeed_put_be64(m + 11, 0);
    m[19] = 'B';
    put_be32(m + 20, 100 * (1 + rnd_below(g, 5)));
    memcpy(m + 24, g->syms[si].name, 8);
    put_be32(m + 32, walk_price(g, &g->syms[si]));
    mdfeed_put_be64(m + 36, g->next_match++);
    return emit(g, m);
}

static int noii(gen_t *g)
{
    unsigned si = rnd_below(g, g->nsyms);
    uint32_t mid = g->syms[si].mid;
    uint8_t m[50];
    header(g, m, 'I', (uint16_t)(si + 1));
    mdfeed_put_be64(m + 11, 1000 * (1 + rnd_below(g, 50)));
    mdfeed_put_be64(m + 19, 100 * rnd_below(g, 50));
    m[27] = "BSNO"[rnd_below(g, 4)];
    memcpy(m + 28, g->syms[si].name, 8);
    put_be32(m + 36, mid);
    put_be32(m + 40, mid);
    put_be32(m + 44, mid);
    m[48] = 'C';
    m[49] = ' ';
    return emit(g, m);
}

/* One message of order flow, weighted roughly as on a real day: adds and deletes dominate. */
static int flow(gen_t *g)
{
    uint32_t r = rnd_below(g, 100);
    if (g->nlive == 0 || (r < 45 && g->nlive < MAX_LIVE_ORDERS))
        return add_order(g);
    size_t i = rnd_below(g, (uint32_t)g->nlive);
    if (r < 70)
        return delete_order(g, i);
    if (r < 80)
        return replace(g, i);
    if (r < 88)
        return execute(g, i);
    if (r < 94)
        return cancel(g, i);
    if (r < 97)
        return hidden_trade(g);
    if (r < 99)
        return noii(g);
    return reg_sho(g, rnd_below(g, g->nsyms));
}

static void make_symbols(gen_t *g, unsigned k)
{
    static const char *known[] = {"AAPL", "MSFT", "AMZN", "NVDA", "GOOGL", "META", "TSLA", "AVGO",
                                  "COST", "PEP",  "ADBE", "CSCO", "NFLX",  "AMD",  "INTC", "QQQ"};
    const unsigned nknown = sizeof(known) / sizeof(known[0]);
    for (unsigned i = 0; i < k; i++) {
        char name[16];
        if (i < nknown)
            snprintf(name, sizeof(name), "%s", known[i]);
        else
            snprintf(name, sizeof(name), "ZX%04u", i);
        memset(g->syms[i].name, ' ', 8);
        memcpy(g->syms[i].name, name, strlen(name));
        g->syms[i].mid = 10000 * (10 + rnd_below(g, 490)); /* $10 .. $500 */
    }
    g->nsyms = k;
}

/* The day: a fixed opening, `count` messages in all, ending with the closing system events.
 * A count too small for the whole shape keeps its beginning and its very end. */
static int generate(gen_t *g, uint64_t count)
{
    static const char closing[] = {'M', 'E', 'C'};
    uint64_t tail = count < 3 ? count : 3;
    uint64_t body = count - tail;
    uint64_t opening = 1 + 2ull * g->nsyms + 2;
    int rc = 0;

    g->ts = 4 * 3600 * NS_PER_SEC; /* 04:00, start of system hours' preamble */
    for (uint64_t i = 0; i < body && rc == 0; i++) {
        if (i == 0)
            rc = system_event(g, 'O');
        else if (i <= g->nsyms)
            rc = stock_directory(g, (unsigned)(i - 1));
        else if (i <= 2ull * g->nsyms)
            rc = trading_action(g, (unsigned)(i - 1 - g->nsyms));
        else if (i == opening - 2)
            rc = system_event(g, 'S');
        else if (i == opening - 1) {
            if (g->ts < 9 * 3600 * NS_PER_SEC + 30 * 60 * NS_PER_SEC)
                g->ts = 9 * 3600 * NS_PER_SEC + 30 * 60 * NS_PER_SEC; /* 09:30 */
            rc = system_event(g, 'Q');
        } else
            rc = flow(g);
    }
    for (uint64_t i = 3 - tail; i < 3 && rc == 0; i++)
        rc = system_event(g, closing[i]);
    return rc;
}

/* Opens `path` for writing, through `gzip -c` when asked. `*child` is the gzip pid or -1. */
static FILE *open_output(const char *path, bool gz, pid_t *child)
{
    *child = -1;
    if (!gz)
        return fopen(path, "wb");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return NULL;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        close(fd);
        return NULL;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[0], 0);
        dup2(fd, 1);
        execlp("gzip", "gzip", "-c", (char *)NULL);
        _exit(127);
    }
    close(fd);
    close(pipefd[0]);
    if (pid < 0) {
        close(pipefd[1]);
        return NULL;
    }
    *child = pid;
    return fdopen(pipefd[1], "wb");
}

static int close_output(FILE *f, pid_t child)
{
    int rc = fclose(f) == 0 ? 0 : -errno;
    if (child > 0) {
        int st = 0;
        while (waitpid(child, &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            rc = rc ? rc : -EIO;
    }
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: itchgen --count N [--seed S] [--symbols K] --out FILE [--gzip]\n"
            "  writes N ITCH 5.0 messages, each after a 2-byte big-endian length;\n"
            "  K symbols (1..%d, default 8); the same seed gives the same file\n",
            MAX_SYMBOLS);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    uint64_t count = 0, seed = 1, nsyms = 8;
    const char *path = NULL;
    bool gz = false, have_count = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--gzip")) {
            gz = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        }
        bool ok = v != NULL;
        if (ok && !strcmp(a, "--count"))
            ok = have_count = parse_u64(v, &count);
        else if (ok && !strcmp(a, "--seed"))
            ok = parse_u64(v, &seed);
        else if (ok && !strcmp(a, "--symbols"))
            ok = parse_u64(v, &nsyms) && nsyms >= 1 && nsyms <= MAX_SYMBOLS;
        else if (ok && !strcmp(a, "--out"))
            path = v;
        else
            ok = false;
        if (!ok) {
            fprintf(stderr, "itchgen: bad or incomplete option '%s'%s%s\n", a, v ? " " : "",
                    v ? v : "");
            usage();
            return 2;
        }
        i++;
    }
    if (!have_count || !path) {
        fprintf(stderr, "itchgen: --count and --out are required\n");
        usage();
        return 2;
    }

    gen_t *g = calloc(1, sizeof(*g));
    order_t *live = calloc(MAX_LIVE_ORDERS, sizeof(order_t));
    if (!g || !live) {
        fprintf(stderr, "itchgen: out of memory\n");
        free(g);
        free(live);
        return 1;
    }
    g->rng = seed;
    g->live = live;
    g->next_ref = 1;
    g->next_match = 1;
    make_symbols(g, (unsigned)nsyms);

    pid_t child;
    g->out = open_output(path, gz, &child);
    if (!g->out) {
        fprintf(stderr, "itchgen: cannot write %s: %s\n", path, strerror(errno));
        free(live);
        free(g);
        return 1;
    }
    int rc = generate(g, count);
    int crc = close_output(g->out, child);
    rc = rc ? rc : crc;
    if (rc) {
        fprintf(stderr, "itchgen: writing %s failed: %s\n", path, strerror(-rc));
        free(live);
        free(g);
        return 1;
    }
    printf("itchgen: wrote %" PRIu64 " messages (%" PRIu64 " bytes before compression) to %s%s:"
           " symbols=%u seed=%" PRIu64 " add=%" PRIu64 " exec=%" PRIu64 " cancel=%" PRIu64
           " delete=%" PRIu64 " replace=%" PRIu64 " trade=%" PRIu64 " live_orders=%zu\n",
           g->written, g->bytes, path, gz ? " (gzip)" : "", g->nsyms, seed,
           g->by_type['A'] + g->by_type['F'], g->by_type['E'] + g->by_type['C'], g->by_type['X'],
           g->by_type['D'], g->by_type['U'], g->by_type['P'], g->nlive);
    free(live);
    free(g);
    return 0;
}
