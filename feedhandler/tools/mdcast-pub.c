/* mdcast-pub: publishes messages to an mdcast gateway over SoupBinTCP through libmdfeed's
 * publisher client: generated messages of --size bytes (optionally the timestamped benchmark
 * message), or an ITCH 5.0 file (2-byte big-endian length-prefixed, plain or gzip) replayed
 * as fast as allowed, at --rate, or paced by the messages' own timestamps (--speed).
 * Every loop is bounded: by --count or the file, and by --timeout.
 *
 * Exit codes: 0 all sent and flushed; 1 runtime error (connect, file, timeout); 2 usage;
 * 3 login rejected. */
#include "cli.h"
#include "mdfeed/mdfeed.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <zlib.h>

typedef struct {
    const char *itch;
    uint64_t count; /* 0 = the whole file (ITCH) */
    double rate;    /* messages per second; 0 = unpaced */
    double speed;   /* ITCH timestamp pacing factor; 0 = off */
    size_t size;
    bool timestamps, json;
    double timeout_s;
} opts_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: mdcast-pub --connect HOST:PORT [options]\n"
               "  --user NAME --password PW  SoupBinTCP login (<= 6 / <= 10 characters)\n"
               "  --session NAME           requested session (default: the current one)\n"
               "  --count N                messages to send [1000; with --itch: whole file]\n"
               "  --rate MSGS_PER_S        pace the messages (0 = as fast as possible)\n"
               "  --size BYTES             generated message size [32]\n"
               "  --timestamps             send benchmark messages carrying the send time\n"
               "  --itch FILE              replay an ITCH 5.0 file (plain or gzip)\n"
               "  --speed X                pace --itch by its timestamps, X times real time\n"
               "  --timeout SECONDS        give up after this long [300]\n"
               "  --json                   a JSON summary object as the last stdout line\n"
               "exit: 0 sent, 1 error, 2 usage, 3 login rejected\n");
}

/* Source of messages: generated, or read from an ITCH file. */
typedef struct {
    const opts_t *o;
    gzFile gz;
    uint64_t produced;
    uint8_t buf[65536];
    size_t len;
    uint64_t itch_ts, itch_ts0; /* ITCH timestamps (ns since midnight) */
    bool have_ts0;
    char error[160]; /* set when the file is broken */
} source_t;

/* Prepares a generated source: the filler is written once; each message then only changes
 * its counter (or, with --timestamps, the benchmark header written at send time). */
static void source_init_generated(source_t *src)
{
    memset(src->buf, 'x', src->o->size);
    src->len = src->o->size;
}

/* Reads exactly `n` bytes of the file. Returns true when it did; false at a clean end of
 * the file (nothing read where `what` starts, `at_boundary`) or with src->error set. */
static bool read_exact(source_t *src, void *buf, unsigned n, const char *what, bool at_boundary)
{
    int got = gzread(src->gz, buf, n);
    if (got == (int)n)
        return true;
    int zerr = Z_OK;
    const char *ztext = gzerror(src->gz, &zerr);
    if (got == 0 && at_boundary && zerr == Z_OK)
        return false;
    if (got < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR))
        snprintf(src->error, sizeof(src->error), "not valid gzip data (%s)", ztext);
    else
        snprintf(src->error, sizeof(src->error), "truncated %s (%d of %u bytes)", what,
                 got > 0 ? got : 0, n);
    return false;
}

/* Loads the next message into src->buf; false at the end (or on a file error). */
static bool source_next(source_t *src)
{
    const opts_t *o = src->o;
    if (o->count && src->produced >= o->count)
        return false;
    if (!o->itch) {
        /* A counter then the filler: a receiver can check order and content. */
        if (!o->timestamps)
            for (size_t i = 0; i < o->size && i < 8; i++)
                src->buf[i] = (uint8_t)(src->produced >> (56 - 8 * i));
        src->produced++;
        return true;
    }
    uint8_t pre[2];
    if (!read_exact(src, pre, 2, "length prefix", true))
        return false;
    size_t len = (size_t)pre[0] << 8 | pre[1];
    if (len == 0) {
        snprintf(src->error, sizeof(src->error), "zero-length message");
        return false;
    }
    if (!read_exact(src, src->buf, (unsigned)len, "message", false))
        return false;
    src->len = len;
    src->produced++;
    if (len >= 11) { /* type, locate, tracking, then a 48-bit timestamp */
        uint64_t ts = 0;
        for (int i = 5; i < 11; i++)
            ts = ts << 8 | src->buf[i];
        src->itch_ts = ts;
        if (!src->have_ts0) {
            src->itch_ts0 = ts;
            src->have_ts0 = true;
        }
    }
    return true;
}

/* When (monotonic ns, relative to the start) the current message is due. */
static uint64_t due_at(const source_t *src)
{
    const opts_t *o = src->o;
    if (o->itch && o->speed > 0 && src->have_ts0 && src->itch_ts >= src->itch_ts0)
        return (uint64_t)((double)(src->itch_ts - src->itch_ts0) / o->speed);
    if (o->rate > 0)
        return (uint64_t)((double)(src->produced - 1) * 1e9 / o->rate);
    return 0;
}

static int exit_for(int rc)
{
    return rc == MDFEED_EREJECTED_AUTH || rc == MDFEED_EREJECTED_SESSION ? 3 : 1;
}

int main(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"connect", required_argument, 0, 'C'},  {"user", required_argument, 0, 'u'},
        {"password", required_argument, 0, 'p'}, {"session", required_argument, 0, 'S'},
        {"count", required_argument, 0, 'c'},    {"rate", required_argument, 0, 'r'},
        {"size", required_argument, 0, 'z'},     {"timestamps", no_argument, 0, 'T'},
        {"itch", required_argument, 0, 'I'},     {"speed", required_argument, 0, 'x'},
        {"timeout", required_argument, 0, 't'},  {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    opts_t o = {.size = 32, .timeout_s = 300};
    mdfeed_pub_config_t cfg = {0};
    bool count_set = false;
    uint64_t v;
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, "", lopts, &idx)) != -1) {
        switch (c) {
        case 'C':
            cfg.connect = optarg;
            break;
        case 'u':
            cfg.username = optarg;
            break;
        case 'p':
            cfg.password = optarg;
            break;
        case 'S':
            cfg.session = optarg;
            break;
        case 'c':
            if (!cli_parse_u64(optarg, &o.count))
                goto bad;
            count_set = true;
            break;
        case 'r':
            if (!cli_parse_number(optarg, 1e9, &o.rate))
                goto bad;
            break;
        case 'z':
            if (!cli_parse_u64(optarg, &v) || v == 0 || v > 65534)
                goto bad;
            o.size = (size_t)v;
            break;
        case 'T':
            o.timestamps = true;
            break;
        case 'I':
            o.itch = optarg;
            break;
        case 'x':
            if (!cli_parse_number(optarg, 1e9, &o.speed))
                goto bad;
            break;
        case 't':
            if (!cli_parse_number(optarg, 1e9, &o.timeout_s) || o.timeout_s <= 0)
                goto bad;
            break;
        case 'j':
            o.json = true;
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
        return cli_bad_value("mdcast-pub", lopts[idx].name, optarg);
    }
    if (optind < argc || !cfg.connect) {
        fprintf(stderr, "mdcast-pub: %s\n",
                optind < argc ? "unexpected argument" : "--connect is required");
        usage(stderr);
        return 2;
    }
    if (!o.itch && !count_set)
        o.count = 1000;
    if (!o.itch && o.count == 0) {
        fprintf(stderr, "mdcast-pub: --count must be > 0 without --itch (loops are bounded)\n");
        return 2;
    }
    if (o.timestamps && o.size < MDFEED_BENCH_MIN_LEN) {
        fprintf(stderr, "mdcast-pub: --timestamps needs --size >= %d\n", MDFEED_BENCH_MIN_LEN);
        return 2;
    }
    if (o.timestamps && o.itch) {
        fprintf(stderr, "mdcast-pub: --timestamps and --itch exclude each other\n");
        return 2;
    }
    if (o.speed > 0 && !o.itch) {
        fprintf(stderr, "mdcast-pub: --speed paces an --itch replay\n");
        return 2;
    }
    source_t src = {.o = &o};
    if (o.itch) {
        /* gzopen reads plain files too, so one path covers both. */
        src.gz = gzopen(o.itch, "rb");
        if (!src.gz) {
            fprintf(stderr, "mdcast-pub: cannot open %s: %s\n", o.itch, strerror(errno));
            return 1;
        }
        gzbuffer(src.gz, 1 << 17);
    } else {
        source_init_generated(&src);
    }
    /* The first message is read before connecting: a file that is broken from its start
     * fails here, without a login. */
    bool pending = source_next(&src);
    if (src.error[0]) {
        fprintf(stderr, "mdcast-pub: %s: %s at message 1\n", o.itch, src.error);
        gzclose(src.gz);
        return 1;
    }
    cli_catch_signals();
    signal(SIGPIPE, SIG_IGN); /* a dropped connection is an error code, not a death */

    mdfeed_pub_t *pub = NULL;
    int rc = mdfeed_pub_new(&pub, &cfg, NULL);
    if (rc) {
        fprintf(stderr, "mdcast-pub: %s: %s\n", cfg.connect, mdfeed_strerror(rc));
        if (src.gz)
            gzclose(src.gz);
        return rc == MDFEED_EBAD_ADDRESS || rc == MDFEED_EBAD_CONFIG ? 2 : 1;
    }
    uint64_t t0 = cli_mono_ns();
    uint64_t deadline = t0 + (uint64_t)(o.timeout_s * 1e9);
    int login_ms = o.timeout_s > 30 ? 30000 : (int)(o.timeout_s * 1000);
    rc = mdfeed_pub_wait_ready(pub, login_ms);
    if (rc) {
        fprintf(stderr, "mdcast-pub: login to %s failed: %s\n", cfg.connect, mdfeed_strerror(rc));
        mdfeed_pub_free(pub);
        if (src.gz)
            gzclose(src.gz);
        return exit_for(rc);
    }
    fprintf(stderr, "mdcast-pub: logged in to %s\n", cfg.connect);

    uint64_t start = cli_mono_ns();
    uint64_t sent = 0, bytes = 0;
    int exit_code = 0;
    while (pending && !cli_interrupted) {
        uint64_t now = cli_mono_ns();
        if (now >= deadline) {
            fprintf(stderr, "mdcast-pub: timeout after %" PRIu64 " messages\n", sent);
            exit_code = 1;
            break;
        }
        /* Queue every message that is due; the client coalesces them into few writes. */
        int queued = 0;
        while (pending && start + due_at(&src) <= now && queued < 4096) {
            if (o.timestamps)
                mdfeed_bench_encode(src.buf, src.len, cli_real_ns(), src.produced - 1);
            rc = mdfeed_pub_send(pub, src.buf, src.len);
            if (rc == MDFEED_EAGAIN)
                break;
            if (rc) {
                fprintf(stderr, "mdcast-pub: send failed: %s\n", mdfeed_strerror(rc));
                exit_code = exit_for(rc);
                pending = false;
                break;
            }
            sent++;
            bytes += src.len;
            queued++;
            pending = source_next(&src);
        }
        if (exit_code)
            break;
        rc = mdfeed_pub_dispatch(pub);
        if (rc) {
            fprintf(stderr, "mdcast-pub: connection closed: %s\n", mdfeed_strerror(rc));
            exit_code = exit_for(rc);
            break;
        }
        if (!pending)
            break;
        uint64_t next = start + due_at(&src);
        now = cli_mono_ns();
        int wait_ms = 0;
        if (rc == 0 && next > now)
            wait_ms = (int)((next - now) / 1000000u);
        if (queued == 0 || wait_ms > 0) {
            struct epoll_event ev;
            (void)epoll_wait(mdfeed_pub_fd(pub), &ev, 1, wait_ms > 100 ? 100 : wait_ms);
        }
    }
    if (src.error[0])
        fprintf(stderr, "mdcast-pub: %s: %s after %" PRIu64 " messages\n", o.itch, src.error,
                src.produced);
    /* The messages read before a broken part of the file were accepted: deliver them, then
     * report the file. */
    if (exit_code == 0) {
        uint64_t now = cli_mono_ns();
        int left_ms = now < deadline ? (int)((deadline - now) / 1000000u) : 0;
        rc = mdfeed_pub_close(pub, left_ms > 10000 ? 10000 : left_ms);
        if (rc) {
            fprintf(stderr, "mdcast-pub: flush/logout failed: %s\n", mdfeed_strerror(rc));
            exit_code = exit_for(rc);
        }
    }
    if (exit_code == 0 && src.error[0])
        exit_code = 1;
    double elapsed = (double)(cli_mono_ns() - start) / 1e9;
    mdfeed_pub_stats_t st;
    mdfeed_pub_stats(pub, &st);
    fprintf(stderr,
            "mdcast-pub: sent %" PRIu64 " messages (%" PRIu64 " bytes) in %.3f s, %.0f msgs/s, "
            "%" PRIu64 " writes, %" PRIu64 " reconnects\n",
            st.messages_sent, bytes, elapsed, elapsed > 0 ? (double)st.messages_sent / elapsed : 0,
            st.writes, st.reconnects);
    if (o.json) {
        cli_json_t j;
        cli_json_begin(&j, stdout);
        cli_json_u64(&j, "sent", st.messages_sent);
        cli_json_u64(&j, "queued", sent);
        cli_json_u64(&j, "bytes", bytes);
        cli_json_num(&j, "elapsed_s", elapsed, 6);
        cli_json_num(&j, "msgs_per_s", elapsed > 0 ? (double)st.messages_sent / elapsed : 0, 1);
        cli_json_u64(&j, "writes", st.writes);
        cli_json_u64(&j, "reconnects", st.reconnects);
        cli_json_u64(&j, "heartbeats_sent", st.heartbeats_sent);
        cli_json_bool(&j, "ok", exit_code == 0);
        cli_json_end(&j);
    }
    mdfeed_pub_free(pub);
    if (src.gz)
        gzclose(src.gz);
    return exit_code;
}
