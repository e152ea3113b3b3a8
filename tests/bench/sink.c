/* sink: the benchmark receiver. Counts datagrams and messages, checks continuity, measures
 * latency from the benchmark message's stamp (bench_common.h) and reports loss.
 *
 * Three inputs, one report:
 *   --mold GROUP:PORT    MoldUDP64 multicast (gateway, blaster): every datagram is validated
 *                        with the codec's decoder (framing intact), sequence numbers must be
 *                        contiguous; gaps, duplicates and malformed datagrams are counted.
 *   --stream GROUP:PORT  UDP multicast whose datagrams are slices of a SoupBinTCP byte stream
 *                        (what a socat TCP->UDP relay emits: it cuts the stream where a read
 *                        ended, not at message boundaries). Reassembled in arrival order; a lost
 *                        datagram breaks the stream, which is reported.
 *   --tcp HOST:PORT      a TCP connection carrying SoupBinTCP frames (the TCP fan-out server).
 * Stops after --count messages, on a MoldUDP64 end of session, after --idle ms without data
 * once data flowed, or at --timeout seconds: always bounded. Prints a human line on stderr and,
 * with --json, one JSON object on stdout. */
#include "bench_common.h"

#include "mdfeed/moldudp64.h"
#include "mdfeed/soupbintcp.h"

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH     64
#define DGRAM_MAX 65536
#define MAX_PUBS  256

typedef enum { MODE_NONE, MODE_MOLD, MODE_STREAM, MODE_TCP } mode_t_;

typedef struct {
    mode_t_ mode;
    struct sockaddr_in addr;
    struct in_addr ifaddr;
    bool have_ifaddr;
    uint64_t count;
    double timeout_s;
    unsigned idle_ms;
    bool latency;
    bool json;
    const char *ready_file;
    const char *label;
} options_t;

typedef struct {
    uint64_t datagrams;
    uint64_t bytes;
    uint64_t messages;
    uint64_t heartbeats;
    uint64_t malformed;
    uint64_t gaps;
    uint64_t gap_messages;
    uint64_t duplicates;
    uint64_t max_datagram;
    uint64_t next_seq; /* MoldUDP64: next expected sequence number, 0 = none seen yet */
    uint64_t first_seq;
    uint64_t first_ns, last_ns;
    uint64_t now_ns; /* receive time of the batch being processed */
    bool end_of_session;
    int stream_error;              /* SoupBinTCP parser error, sticky */
    uint64_t next_index[MAX_PUBS]; /* per publisher id: next expected message index + 1 */
    bench_hist_t hist;
} stats_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: sink (--mold GROUP:PORT | --stream GROUP:PORT | --tcp HOST:PORT)\n"
               "            [--interface ADDR] [--count N] [--timeout S] [--idle MS]\n"
               "            [--latency] [--ready-file PATH] [--label TEXT] [--json]\n");
}

static int parse_options(int argc, char **argv, options_t *o)
{
    static const struct option longopts[] = {{"mold", required_argument, NULL, 'm'},
                                             {"stream", required_argument, NULL, 's'},
                                             {"tcp", required_argument, NULL, 't'},
                                             {"interface", required_argument, NULL, 'i'},
                                             {"count", required_argument, NULL, 'c'},
                                             {"timeout", required_argument, NULL, 'T'},
                                             {"idle", required_argument, NULL, 'I'},
                                             {"latency", no_argument, NULL, 'l'},
                                             {"ready-file", required_argument, NULL, 'r'},
                                             {"label", required_argument, NULL, 'L'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    *o = (options_t){.timeout_s = 30, .idle_ms = 1000, .label = ""};
    uint64_t v = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
        case 's':
        case 't':
            if (o->mode != MODE_NONE || bench_parse_addr(optarg, &o->addr) != 0) {
                fprintf(stderr, "sink: one of --mold/--stream/--tcp with a.b.c.d:port ('%s')\n",
                        optarg);
                return -1;
            }
            o->mode = c == 'm' ? MODE_MOLD : c == 's' ? MODE_STREAM : MODE_TCP;
            break;
        case 'i':
            if (inet_pton(AF_INET, optarg, &o->ifaddr) != 1) {
                fprintf(stderr, "sink: --interface: '%s' is not an IPv4 address\n", optarg);
                return -1;
            }
            o->have_ifaddr = true;
            break;
        case 'c':
        case 'I':
            if (bench_parse_u64(optarg, &v) != 0) {
                fprintf(stderr, "sink: '%s' is not a number\n", optarg);
                return -1;
            }
            if (c == 'c')
                o->count = v;
            else
                o->idle_ms = v > 600000 ? 600000 : (unsigned)v;
            break;
        case 'T':
            if (bench_parse_seconds(optarg, &o->timeout_s) != 0) {
                fprintf(stderr, "sink: --timeout: '%s' is not 0 < seconds <= 3600\n", optarg);
                return -1;
            }
            break;
        case 'l':
            o->latency = true;
            break;
        case 'r':
            o->ready_file = optarg;
            break;
        case 'L':
            o->label = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (o->mode == MODE_NONE) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static int open_multicast(const options_t *o)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, rcvbuf = 32 << 20;
    struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
    struct sockaddr_in bind_addr = o->addr; /* bound to the group: only its datagrams */
    struct ip_mreq mreq = {.imr_multiaddr = o->addr.sin_addr};
    if (o->have_ifaddr)
        mreq.imr_interface = o->ifaddr;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        bind(fd, (struct sockaddr *)&bind_addr, sizeof(bind_addr)) != 0 ||
        setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) != 0)
        goto fail;
    /* A big receive buffer so a burst does not overflow while the sink is descheduled;
     * SO_RCVBUFFORCE passes net.core.rmem_max as root. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

/* Connects with bounded retries: the server may still be starting. */
static int open_tcp(const options_t *o)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (const struct sockaddr *)&o->addr, sizeof(o->addr)) == 0) {
            int rcvbuf = 8 << 20;
            struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            return fd;
        }
        int err = errno;
        close(fd);
        if (err != ECONNREFUSED && err != ENETUNREACH && err != EHOSTUNREACH)
            return -err;
        usleep(50000);
    }
    return -ETIMEDOUT;
}

/* One benchmark message: latency, and per-publisher continuity of the message index. */
static void take_message(stats_t *s, const options_t *o, const uint8_t *msg, size_t len)
{
    s->messages++;
    if (len < BENCH_MSG_MIN)
        return;
    if (o->latency) {
        uint64_t ts = mdfeed_get_be64(msg);
        bench_hist_record(&s->hist, s->now_ns > ts ? s->now_ns - ts : 0);
    }
    if (o->mode != MODE_MOLD) {
        /* Streams carry no sequence numbers: continuity comes from the message index. */
        uint64_t index = mdfeed_get_be64(msg + 8);
        uint64_t *next = &s->next_index[msg[16]];
        if (*next != 0 && index + 1 != *next) {
            if (index + 1 > *next) {
                s->gaps++;
                s->gap_messages += index + 1 - *next;
            } else {
                s->duplicates++;
            }
        }
        *next = index + 2;
    }
}

static void take_mold(stats_t *s, const options_t *o, const uint8_t *buf, size_t len)
{
    mdfeed_mold_packet_t pkt;
    if (mdfeed_mold_decode(buf, len, &pkt) != 0) {
        s->malformed++;
        return;
    }
    if (pkt.kind != MDFEED_MOLD_DATA) {
        /* Heartbeats and end of session carry the next sequence number: a tail lost after the
         * last data packet shows up here. */
        if (s->next_seq != 0 && pkt.hdr.seq > s->next_seq) {
            s->gaps++;
            s->gap_messages += pkt.hdr.seq - s->next_seq;
            s->next_seq = pkt.hdr.seq;
        }
        if (pkt.kind == MDFEED_MOLD_HEARTBEAT)
            s->heartbeats++;
        else if (s->messages > 0)
            s->end_of_session = true; /* only after data: a previous run's may linger */
        return;
    }
    if (s->next_seq == 0) {
        s->first_seq = pkt.hdr.seq;
    } else if (pkt.hdr.seq > s->next_seq) {
        s->gaps++;
        s->gap_messages += pkt.hdr.seq - s->next_seq;
    } else if (pkt.hdr.seq < s->next_seq) {
        s->duplicates++;
        return;
    }
    s->next_seq = pkt.hdr.seq + pkt.hdr.count;
    if (!o->latency) {
        s->messages += pkt.hdr.count;
        return;
    }
    mdfeed_mold_iter_t it;
    const uint8_t *msg;
    uint16_t mlen;
    uint64_t seq;
    mdfeed_mold_iter_init(&it, &pkt);
    while (mdfeed_mold_iter_next(&it, &msg, &mlen, &seq))
        take_message(s, o, msg, mlen);
}

typedef struct {
    stats_t *s;
    const options_t *o;
} frame_ctx_t;

static int on_frame(void *data, char type, const uint8_t *payload, size_t len)
{
    frame_ctx_t *ctx = data;
    if (type == MDFEED_SOUP_UNSEQUENCED_DATA || type == MDFEED_SOUP_SEQUENCED_DATA)
        take_message(ctx->s, ctx->o, payload, len);
    return 0;
}

/* Accounts one datagram (or TCP read). The rate's time span runs from the first to the last
 * datagram that carried messages: heartbeats before or after the data do not stretch it. */
static void mark_received(stats_t *s, size_t bytes, uint64_t messages_before)
{
    if (s->messages > messages_before) {
        if (s->first_ns == 0)
            s->first_ns = s->now_ns;
        s->last_ns = s->now_ns;
    }
    s->bytes += bytes;
    if (bytes > s->max_datagram)
        s->max_datagram = bytes;
}

static bool done(const stats_t *s, const options_t *o, uint64_t now, uint64_t deadline)
{
    if (s->end_of_session || s->stream_error != 0 || now >= deadline)
        return true;
    if (o->count != 0 && s->messages >= o->count)
        return true;
    return s->last_ns != 0 && now - s->last_ns >= (uint64_t)o->idle_ms * 1000000u;
}

static int run_udp(int fd, const options_t *o, stats_t *s, uint64_t deadline)
{
    static uint8_t bufs[BATCH][DGRAM_MAX];
    static struct iovec iovs[BATCH];
    static struct mmsghdr msgs[BATCH];
    mdfeed_soup_parser_t parser = {0};
    frame_ctx_t ctx = {s, o};
    if (o->mode == MODE_STREAM && mdfeed_soup_parser_init(&parser, MDFEED_SOUP_MAX_FRAME) != 0)
        return -ENOMEM;
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iovs[i] = (struct iovec){.iov_base = bufs[i], .iov_len = DGRAM_MAX};
            msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iovs[i], .msg_iovlen = 1}};
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        s->now_ns = bench_now_ns();
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            int err = -errno;
            mdfeed_soup_parser_close(&parser);
            return err;
        }
        for (int i = 0; i < n; i++) {
            size_t len = msgs[i].msg_len;
            uint64_t before = s->messages;
            s->datagrams++;
            if (o->mode == MODE_MOLD) {
                take_mold(s, o, bufs[i], len);
            } else if (s->stream_error == 0) {
                int rc = mdfeed_soup_parser_feed(&parser, bufs[i], len, on_frame, &ctx);
                if (rc != 0)
                    s->stream_error = rc;
            }
            mark_received(s, len, before);
        }
        if (done(s, o, s->now_ns, deadline))
            break;
    }
    mdfeed_soup_parser_close(&parser);
    return 0;
}

static int run_tcp(int fd, const options_t *o, stats_t *s, uint64_t deadline)
{
    static uint8_t buf[1 << 18];
    mdfeed_soup_parser_t parser = {0};
    frame_ctx_t ctx = {s, o};
    if (mdfeed_soup_parser_init(&parser, MDFEED_SOUP_MAX_FRAME) != 0)
        return -ENOMEM;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        s->now_ns = bench_now_ns();
        if (n == 0)
            break; /* the server closed: the run is over */
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            rc = -errno;
            break;
        }
        if (n > 0) {
            uint64_t before = s->messages;
            s->datagrams++; /* reads, for TCP */
            int prc = mdfeed_soup_parser_feed(&parser, buf, (size_t)n, on_frame, &ctx);
            if (prc != 0)
                s->stream_error = prc;
            mark_received(s, (size_t)n, before);
        }
        if (done(s, o, s->now_ns, deadline))
            break;
    }
    mdfeed_soup_parser_close(&parser);
    return rc;
}

static void report(const stats_t *s, const options_t *o, int rc)
{
    double secs = s->last_ns > s->first_ns ? (double)(s->last_ns - s->first_ns) / 1e9 : 0;
    double mps = secs > 0 ? (double)s->messages / secs : 0;
    double dps = secs > 0 ? (double)s->datagrams / secs : 0;
    uint64_t lost = o->count > s->messages ? o->count - s->messages : 0;
    fprintf(stderr,
            "sink%s%s: %" PRIu64 " messages in %" PRIu64 " datagrams over %.3f s: %.0f msg/s, "
            "%.0f dgram/s; lost %" PRIu64 ", gaps %" PRIu64 ", malformed %" PRIu64 "%s\n",
            *o->label ? " " : "", o->label, s->messages, s->datagrams, secs, mps, dps, lost,
            s->gaps, s->malformed, s->stream_error ? " (stream broken)" : "");
    if (o->latency && s->hist.total > 0)
        fprintf(stderr, "sink%s%s: latency p50 %.1f us, p99 %.1f us, max %.1f us\n",
                *o->label ? " " : "", o->label, (double)bench_hist_quantile(&s->hist, 0.5) / 1e3,
                (double)bench_hist_quantile(&s->hist, 0.99) / 1e3, (double)s->hist.max / 1e3);
    if (!o->json)
        return;
    printf("{\"tool\": \"sink\", \"label\": \"%s\", \"mode\": \"%s\", \"messages\": %" PRIu64
           ", \"expected\": %" PRIu64 ", \"lost\": %" PRIu64 ", \"datagrams\": %" PRIu64
           ", \"bytes\": %" PRIu64 ", \"max_datagram\": %" PRIu64 ", \"heartbeats\": %" PRIu64
           ", \"malformed\": %" PRIu64 ", \"gaps\": %" PRIu64 ", \"gap_messages\": %" PRIu64
           ", \"duplicates\": %" PRIu64 ", \"first_seq\": %" PRIu64 ", \"stream_broken\": %s"
           ", \"end_of_session\": %s, \"seconds\": %.6f, \"msgs_per_s\": %.1f"
           ", \"dgrams_per_s\": %.1f, \"error\": %s",
           o->label,
           o->mode == MODE_MOLD     ? "mold"
           : o->mode == MODE_STREAM ? "stream"
                                    : "tcp",
           s->messages, o->count, lost, s->datagrams, s->bytes, s->max_datagram, s->heartbeats,
           s->malformed, s->gaps, s->gap_messages, s->duplicates, s->first_seq,
           s->stream_error ? "true" : "false", s->end_of_session ? "true" : "false", secs, mps, dps,
           rc != 0 ? "true" : "false");
    if (o->latency) {
        printf(", ");
        bench_hist_print_json(stdout, &s->hist);
    }
    printf("}\n");
}

int main(int argc, char **argv)
{
    options_t o;
    if (parse_options(argc, argv, &o) != 0)
        return 2;
    static stats_t s;
    bench_hist_init(&s.hist);
    int fd = o.mode == MODE_TCP ? open_tcp(&o) : open_multicast(&o);
    if (fd < 0) {
        fprintf(stderr, "sink: socket setup: %s\n", strerror(-fd));
        return 1;
    }
    if (o.ready_file != NULL) {
        int rfd = open(o.ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (rfd >= 0)
            close(rfd);
    }
    uint64_t deadline = bench_now_ns() + (uint64_t)(o.timeout_s * 1e9);
    int rc = o.mode == MODE_TCP ? run_tcp(fd, &o, &s, deadline) : run_udp(fd, &o, &s, deadline);
    close(fd);
    if (rc != 0)
        fprintf(stderr, "sink: receive: %s\n", strerror(-rc));
    report(&s, &o, rc);
    return rc != 0 ? 1 : 0;
}
