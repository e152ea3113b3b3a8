/* Shared helpers of the benchmark programs (blaster, sink, publisher, TCP fan-out): clocks,
 * address parsing, the benchmark message layout, a log-linear latency histogram and the JSON
 * summary line. Header-only so each program stays one file plus this one.
 *
 * The benchmark message (what every publisher here sends, inside a SoupBinTCP unsequenced
 * data packet or a MoldUDP64 message block):
 *   bytes 0-7   u64 big-endian CLOCK_MONOTONIC nanoseconds when the message was written
 *   bytes 8-15  u64 big-endian index of the message within its publisher (0, 1, 2 ...)
 *   byte  16    publisher id
 *   the rest    filler
 * All namespaces of one machine share CLOCK_MONOTONIC (the harness creates no time
 * namespace), so a receiver in another network namespace can subtract the stamp directly. */
#ifndef MDCAST_BENCH_COMMON_H
#define MDCAST_BENCH_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mdfeed/moldudp64.h" /* mdfeed_put_be64 / mdfeed_get_be64, mdfeed_addr_parse */

#define BENCH_MSG_MIN 17 /* timestamp + index + publisher id */

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Writes the benchmark fields into a message of `len` >= BENCH_MSG_MIN bytes (filler set by
 * the caller once). */
static inline void bench_msg_stamp(uint8_t *msg, uint64_t ts_ns, uint64_t index, uint8_t pub_id)
{
    mdfeed_put_be64(msg, ts_ns);
    mdfeed_put_be64(msg + 8, index);
    msg[16] = pub_id;
}

/* Parses "a.b.c.d:port" (the library's parser: numeric, port 1-65535). Returns 0 or -EINVAL. */
static inline int bench_parse_addr(const char *s, struct sockaddr_in *out)
{
    uint32_t addr;
    uint16_t port;
    if (mdfeed_addr_parse(s, &addr, &port) != 0)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons(port);
    out->sin_addr.s_addr = htonl(addr);
    return 0;
}

/* Parses a duration in seconds, 0 < s <= 3600 (every load here is bounded in time). Returns 0
 * or -EINVAL. */
static inline int bench_parse_seconds(const char *s, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v > 0 && v <= 3600))
        return -EINVAL;
    *out = v;
    return 0;
}

/* Parses a non-negative number with an optional k/M/G suffix (decimal). Returns 0 or -EINVAL. */
static inline int bench_parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || v < 0)
        return -EINVAL;
    if (*end == 'k' || *end == 'K')
        v *= 1e3, end++;
    else if (*end == 'M')
        v *= 1e6, end++;
    else if (*end == 'G')
        v *= 1e9, end++;
    if (*end != '\0' || v > 1.8e19)
        return -EINVAL;
    *out = (uint64_t)v;
    return 0;
}

/* Log-linear histogram of nanosecond values, in the manner of HdrHistogram: values below 128
 * are exact, above that each power of two is split in 64 buckets (under 1.6 % error). Fixed
 * size, so recording costs a few instructions and no allocation. */
/* The largest index is that of UINT64_MAX: shift 57, mantissa 127. */
#define BENCH_HIST_BUCKETS (57 * 64 + 128)
typedef struct {
    uint64_t counts[BENCH_HIST_BUCKETS];
    uint64_t total;
    uint64_t min, max;
    double sum;
} bench_hist_t;

static inline void bench_hist_init(bench_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static inline unsigned bench_hist_index(uint64_t v)
{
    if (v < 128)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 6;
    return (shift << 6) + (unsigned)(v >> shift);
}

/* Lowest value that falls into bucket `idx`. */
static inline uint64_t bench_hist_value(unsigned idx)
{
    if (idx < 128)
        return idx;
    unsigned shift = (idx >> 6) - 1;
    uint64_t mantissa = (idx & 63u) + 64u;
    return mantissa << shift;
}

static inline void bench_hist_record(bench_hist_t *h, uint64_t v)
{
    unsigned idx = bench_hist_index(v);
    if (idx >= BENCH_HIST_BUCKETS)
        idx = BENCH_HIST_BUCKETS - 1;
    h->counts[idx]++;
    h->total++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

/* Value at quantile q (0..1): the lowest value of the bucket holding that rank, clamped to the
 * recorded max. 0 when empty. */
static inline uint64_t bench_hist_quantile(const bench_hist_t *h, double q)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->total);
    if (rank >= h->total - 1)
        return h->max; /* the top rank is the recorded maximum itself, not its bucket */
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen > rank) {
            uint64_t v = bench_hist_value(i);
            if (v < h->min)
                v = h->min;
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* Prints `"latency_us": {...}` (no leading comma) with the percentiles the harness plots. */
static inline void bench_hist_print_json(FILE *f, const bench_hist_t *h)
{
    static const struct {
        const char *name;
        double q;
    } pcts[] = {{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"p99.9", 0.999}, {"p99.99", 0.9999}};
    fprintf(f, "\"latency_us\": {\"samples\": %" PRIu64, h->total);
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        fprintf(f, ", \"%s\": %.3f", pcts[i].name, (double)bench_hist_quantile(h, pcts[i].q) / 1e3);
    fprintf(f, ", \"min\": %.3f, \"max\": %.3f, \"mean\": %.3f}",
            h->total ? (double)h->min / 1e3 : 0.0, (double)h->max / 1e3,
            h->total ? h->sum / (double)h->total / 1e3 : 0.0);
}

#endif /* MDCAST_BENCH_COMMON_H */
