/* mdfeed-tap: subscribes to a MoldUDP64 channel through libmdfeed and prints what arrives:
 * messages (text, ITCH 5.0, hex or nothing), interval statistics like iperf, one-way latency
 * of mdcast-pub --timestamps messages, and with --json a summary object as the last stdout
 * line.
 *
 * Exit codes: 0 done (count reached, end of session, timeout without --count, or a signal);
 * 1 runtime error, or --timeout passed before --count messages arrived; 2 usage;
 * 3 finished but messages were declared lost. */
#include "cli.h"
#include "mdfeed/itch.h"
#include "mdfeed/mdfeed.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

typedef enum { FMT_TEXT, FMT_ITCH, FMT_HEX, FMT_NONE } format_t;

typedef struct {
    format_t format;
    uint64_t count; /* 0 = unlimited */
    bool latency, json;
    uint64_t received, first_seq, last_seq;
    uint64_t *lat; /* latency samples (ns), at most MAX_SAMPLES */
    size_t nlat, lat_cap;
    uint64_t lat_negative; /* samples with the receive time before the send time */
    bool ended;
    mdfeed_sub_t *sub;
} tap_t;

enum { MAX_SAMPLES = 20 * 1000 * 1000 };

static void usage(FILE *f)
{
    fprintf(f, "usage: mdfeed-tap --group A.B.C.D:PORT --interface IF|IPV4 [options]\n"
               "  --group-b A.B.C.D:PORT   line B (same packets; first arrival wins)\n"
               "  --retransmit A.B.C.D:PORT  re-request server for gap recovery\n"
               "  --session NAME           expected MoldUDP64 session (default: first seen)\n"
               "  --start-seq N            start from sequence N (older ones re-requested)\n"
               "  --gap-timeout MS         wait for the other line before re-requesting [20]\n"
               "  --count N                stop after N messages (0 = no limit)\n"
               "  --timeout SECONDS        stop after this long (0 = no limit)\n"
               "  --format text|itch|hex|none  how each message is printed [text]\n"
               "  --stats SECONDS          print interval statistics every SECONDS\n"
               "  --latency                one-way latency of mdcast-pub --timestamps messages\n"
               "  --json                   a JSON summary object as the last stdout line\n"
               "exit: 0 done, 1 error or --count not reached in --timeout, 2 usage, 3 loss\n");
}

/* "SEQ HEXBYTES": the hex is built in one buffer and written at once, not one printf per
 * byte (--format hex is how the tests compare whole feeds byte for byte). */
static void print_hex(uint64_t seq, const uint8_t *p, uint16_t n)
{
    static const char digits[] = "0123456789abcdef";
    static char hex[2 * UINT16_MAX + 1];
    for (uint16_t i = 0; i < n; i++) {
        hex[2 * i] = digits[p[i] >> 4];
        hex[2 * i + 1] = digits[p[i] & 15];
    }
    hex[2 * (size_t)n] = '\n';
    printf("%" PRIu64 " ", seq);
    fwrite(hex, 1, 2 * (size_t)n + 1, stdout);
}

static void print_escaped(const uint8_t *p, size_t n)
{
    size_t shown = n > 64 ? 64 : n;
    putchar('"');
    for (size_t i = 0; i < shown; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
            putchar(p[i]);
        else
            printf("\\x%02x", p[i]);
    }
    putchar('"');
    if (shown < n)
        printf("...");
}

static void record_latency(tap_t *t, const mdfeed_msg_t *m)
{
    uint64_t sent, counter;
    if (mdfeed_bench_decode(m->data, m->len, &sent, &counter) != 0)
        return;
    uint64_t rx = m->rx_ns ? m->rx_ns : cli_real_ns();
    if (rx < sent) {
        t->lat_negative++;
        return;
    }
    if (t->nlat == t->lat_cap) {
        if (t->lat_cap >= MAX_SAMPLES)
            return;
        size_t cap = t->lat_cap ? t->lat_cap * 2 : 4096;
        uint64_t *n = realloc(t->lat, cap * sizeof(*n));
        if (!n)
            return;
        t->lat = n;
        t->lat_cap = cap;
    }
    t->lat[t->nlat++] = rx - sent;
}

static void on_message(void *data, const mdfeed_msg_t *m)
{
    tap_t *t = data;
    if (t->count && t->received >= t->count)
        return;
    if (t->received == 0)
        t->first_seq = m->seq;
    t->last_seq = m->seq;
    t->received++;
    if (t->latency)
        record_latency(t, m);
    switch (t->format) {
    case FMT_TEXT:
        printf("%" PRIu64 " %c %u ", m->seq, "ABR"[m->line], m -> len);
        print_escaped(m->data, m->len);
        putchar('\n');
        break;
    case FMT_HEX:
        print_hex(m->seq, m->data, m->len);
        break;
    case FMT_ITCH: {
        char line[MDFEED_ITCH_LINE_MAX];
        int n = mdfeed_itch_format(m->data, m->len, line, sizeof(line));
        if (n >= 0)
            printf("%" PRIu64 " %s\n", m->seq, line);
        else
            printf("%" PRIu64 " [%s, %u bytes]\n", m->seq, mdfeed_strerror(n), m->len);
        break;
    }
    case FMT_NONE:
        break;
    }
    if (t->count && t->received >= t->count)
        mdfeed_sub_stop(t->sub);
}

static void on_gap(void *data, uint64_t first, uint64_t count)
{
    (void)data;
    fprintf(stderr, "mdfeed-tap: gap: %" PRIu64 " messages from %" PRIu64 "\n", count, first);
}

static void on_recovered(void *data, uint64_t first, uint64_t count)
{
    (void)data;
    fprintf(stderr, "mdfeed-tap: recovered: %" PRIu64 " messages from %" PRIu64 "\n", count, first);
}

static void on_loss(void *data, uint64_t first, uint64_t count, mdfeed_loss_reason_t reason)
{
    (void)data;
    fprintf(stderr, "mdfeed-tap: LOST: %" PRIu64 " messages from %" PRIu64 " (%s)\n", count, first,
            mdfeed_loss_reason_str(reason));
}

static void on_end(void *data, uint64_t next_seq)
{
    tap_t *t = data;
    t->ended = true;
    fprintf(stderr, "mdfeed-tap: end of session (next sequence %" PRIu64 ")\n", next_seq);
}

static void on_warning(void *data, int code, const char *text)
{
    (void)data;
    (void)code;
    fprintf(stderr, "mdfeed-tap: warning: %s\n", text);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t percentile(const uint64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

typedef struct {
    uint64_t at, msgs, bytes, gaps, recovered, lost;
} interval_t;

static void print_interval(interval_t *iv, const mdfeed_sub_stats_t *st, uint64_t now,
                           uint64_t start)
{
    double dt = (double)(now - iv->at) / 1e9;
    if (dt <= 0)
        return;
    printf("[%8.2fs] msgs/s %10.0f  Mbit/s %8.2f  gaps %" PRIu64 "  recovered %" PRIu64
           "  lost %" PRIu64 "\n",
           (double)(now - start) / 1e9, (double)(st->messages - iv->msgs) / dt,
           (double)(st->bytes - iv->bytes) * 8 / dt / 1e6, st->gaps - iv->gaps,
           st->recovered - iv->recovered, st->lost - iv->lost);
    fflush(stdout);
    *iv = (interval_t){now, st->messages, st->bytes, st->gaps, st->recovered, st->lost};
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"group", required_argument, 0, 'g'},
                                         {"group-b", required_argument, 0, 'b'},
                                         {"interface", required_argument, 0, 'i'},
                                         {"retransmit", required_argument, 0, 'r'},
                                         {"session", required_argument, 0, 'S'},
                                         {"start-seq", required_argument, 0, 'q'},
                                         {"gap-timeout", required_argument, 0, 'G'},
                                         {"count", required_argument, 0, 'c'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"format", required_argument, 0, 'f'},
                                         {"stats", required_argument, 0, 's'},
                                         {"latency", no_argument, 0, 'l'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    mdfeed_sub_config_t cfg;
    mdfeed_sub_config_init(&cfg);
    tap_t t = {.format = FMT_TEXT};
    double timeout_s = 0, stats_s = 0;
    uint64_t v;
    int o, idx = 0;
    while ((o = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        switch (o) {
        case 'g':
            cfg.group_a = optarg;
            break;
        case 'b':
            cfg.group_b = optarg;
            break;
        case 'i':
            cfg.interface = optarg;
            break;
        case 'r':
            cfg.retransmit = optarg;
            break;
        case 'S':
            cfg.session = optarg;
            break;
        case 'q':
            if (!cli_parse_u64(optarg, &cfg.start_seq) || cfg.start_seq == 0)
                goto bad;
            break;
        case 'G':
            if (!cli_parse_u64(optarg, &v) || v == 0 || v > 60000)
                goto bad;
            cfg.gap_timeout_ms = (uint32_t)v;
            break;
        case 'c':
            if (!cli_parse_u64(optarg, &t.count))
                goto bad;
            break;
        case 't':
            if (!cli_parse_number(optarg, 1e7, &timeout_s))
                goto bad;
            break;
        case 's':
            if (!cli_parse_number(optarg, 1e7, &stats_s) || stats_s < 0.01)
                goto bad;
            break;
        case 'f':
            if (!strcmp(optarg, "text"))
                t.format = FMT_TEXT;
            else if (!strcmp(optarg, "itch"))
                t.format = FMT_ITCH;
            else if (!strcmp(optarg, "hex"))
                t.format = FMT_HEX;
            else if (!strcmp(optarg, "none"))
                t.format = FMT_NONE;
            else
                goto bad;
            break;
        case 'l':
            t.latency = true;
            break;
        case 'j':
            t.json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        continue;
    bad:
        return cli_bad_value("mdfeed-tap", opts[idx].name, optarg);
    }
    if (optind < argc || !cfg.group_a || !cfg.interface) {
        fprintf(stderr, "mdfeed-tap: %s\n",
                optind < argc ? "unexpected argument" : "--group and --interface are required");
        usage(stderr);
        return 2;
    }
    /* The library would reject a bad address too, but without saying which option held it. */
    const struct {
        const char *opt, *value;
    } addrs[] = {{"group", cfg.group_a}, {"group-b", cfg.group_b}, {"retransmit", cfg.retransmit}};
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        uint32_t ip;
        uint16_t port;
        if (addrs[i].value && mdfeed_addr_parse(addrs[i].value, &ip, &port) != 0) {
            fprintf(stderr, "mdfeed-tap: --%s wants A.B.C.D:PORT\n", addrs[i].opt);
            return cli_bad_value("mdfeed-tap", addrs[i].opt, addrs[i].value);
        }
    }
    mdfeed_sub_callbacks_t cbs = {.data = &t,
                                  .on_message = on_message,
                                  .on_gap = on_gap,
                                  .on_recovered = on_recovered,
                                  .on_loss = on_loss,
                                  .on_end = on_end,
                                  .on_warning = on_warning};
    int rc = mdfeed_sub_new(&t.sub, &cfg, &cbs);
    if (rc) {
        fprintf(stderr, "mdfeed-tap: cannot subscribe to %s on %s: %s\n", cfg.group_a,
                cfg.interface, mdfeed_strerror(rc));
        return rc == MDFEED_EBAD_ADDRESS || rc == MDFEED_ENOT_MULTICAST ||
                       rc == MDFEED_EBAD_CONFIG || rc == MDFEED_EMOLD_BAD_SESSION
                   ? 2
                   : 1;
    }
    cli_catch_signals();
    fprintf(stderr, "mdfeed-tap: joined %s%s%s on %s\n", cfg.group_a, cfg.group_b ? " + " : "",
            cfg.group_b ? cfg.group_b : "", cfg.interface);

    uint64_t start = cli_mono_ns();
    uint64_t deadline = timeout_s > 0 ? start + (uint64_t)(timeout_s * 1e9) : UINT64_MAX;
    uint64_t stats_every = (uint64_t)(stats_s * 1e9);
    interval_t iv = {.at = start};
    int exit_code = 0;
    bool timed_out = false;
    mdfeed_sub_stats_t st;
    for (;;) {
        rc = mdfeed_sub_dispatch(t.sub);
        if (rc == MDFEED_EENDED)
            break;
        if (rc < 0) {
            fprintf(stderr, "mdfeed-tap: receive failed: %s\n", mdfeed_strerror(rc));
            exit_code = 1;
            break;
        }
        if ((t.count && t.received >= t.count) || cli_interrupted)
            break;
        uint64_t now = cli_mono_ns();
        if (stats_every && now - iv.at >= stats_every) {
            mdfeed_sub_stats(t.sub, &st);
            print_interval(&iv, &st, now, start);
        }
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        uint64_t wake = deadline;
        if (stats_every && iv.at + stats_every < wake)
            wake = iv.at + stats_every;
        uint64_t wait_ns = wake > now ? wake - now : 0;
        int wait_ms = wait_ns > 100000000u ? 100 : (int)((wait_ns + 999999u) / 1000000u);
        struct epoll_event ev;
        (void)epoll_wait(mdfeed_sub_fd(t.sub), &ev, 1, wait_ms);
    }
    uint64_t elapsed = cli_mono_ns() - start;
    mdfeed_sub_stats(t.sub, &st);
    if (stats_every)
        print_interval(&iv, &st, cli_mono_ns(), start);
    if (timed_out && t.count && t.received < t.count) {
        fprintf(stderr, "mdfeed-tap: timeout: %" PRIu64 " of %" PRIu64 " messages received\n",
                t.received, t.count);
        exit_code = 1;
    }
    if (exit_code == 0 && st.lost > 0)
        exit_code = 3;
    fprintf(stderr,
            "mdfeed-tap: received %" PRIu64 " messages (seq %" PRIu64 "..%" PRIu64
            ") in %.3f s; packets %" PRIu64 ", duplicates %" PRIu64 ", gaps %" PRIu64
            ", recovered %" PRIu64 ", lost %" PRIu64 ", malformed %" PRIu64
            ", wrong session %" PRIu64 "\n",
            t.received, t.first_seq, t.last_seq, (double)elapsed / 1e9, st.packets, st.duplicates,
            st.gaps, st.recovered, st.lost, st.malformed, st.wrong_session);
    uint64_t p50 = 0, p99 = 0, p999 = 0, pmax = 0;
    if (t.latency && t.nlat) {
        qsort(t.lat, t.nlat, sizeof(*t.lat), cmp_u64);
        p50 = percentile(t.lat, t.nlat, 0.50);
        p99 = percentile(t.lat, t.nlat, 0.99);
        p999 = percentile(t.lat, t.nlat, 0.999);
        pmax = t.lat[t.nlat - 1];
        printf("latency: samples %zu  p50 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us\n",
               t.nlat, (double)p50 / 1e3, (double)p99 / 1e3, (double)p999 / 1e3,
               (double)pmax / 1e3);
    } else if (t.latency) {
        printf("latency: no timestamped messages received\n");
    }
    if (t.json) {
        cli_json_t j;
        cli_json_begin(&j, stdout);
        cli_json_u64(&j, "received", t.received);
        cli_json_u64(&j, "first_seq", t.first_seq);
        cli_json_u64(&j, "last_seq", t.last_seq);
        cli_json_u64(&j, "packets", st.packets);
        cli_json_u64(&j, "duplicates", st.duplicates);
        cli_json_u64(&j, "gaps", st.gaps);
        cli_json_u64(&j, "recovered", st.recovered);
        cli_json_u64(&j, "lost", st.lost);
        cli_json_u64(&j, "malformed", st.malformed);
        cli_json_u64(&j, "wrong_session", st.wrong_session);
        cli_json_u64(&j, "requests_sent", st.requests_sent);
        cli_json_object(&j, "first_arrivals");
        cli_json_u64(&j, "a", st.first_arrivals[MDFEED_LINE_A]);
        cli_json_u64(&j, "b", st.first_arrivals[MDFEED_LINE_B]);
        cli_json_u64(&j, "retransmit", st.first_arrivals[MDFEED_LINE_RETRANSMIT]);
        cli_json_end(&j);
        cli_json_bool(&j, "ended", t.ended);
        cli_json_num(&j, "elapsed_s", (double)elapsed / 1e9, 6);
        if (t.latency && t.nlat) {
            cli_json_object(&j, "latency_ns");
            cli_json_u64(&j, "samples", t.nlat);
            cli_json_u64(&j, "p50", p50);
            cli_json_u64(&j, "p99", p99);
            cli_json_u64(&j, "p99_9", p999);
            cli_json_u64(&j, "max", pmax);
            cli_json_end(&j);
        }
        cli_json_end(&j);
    }
    fflush(stdout);
    free(t.lat);
    mdfeed_sub_free(t.sub);
    return exit_code;
}
