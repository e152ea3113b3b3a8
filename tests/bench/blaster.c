/* blaster: the kernel's limit for MoldUDP64 multicast, and the "direct multicast" baseline.
 *
 * Sends MoldUDP64 datagrams of the benchmark message (bench_common.h) to a group with
 * sendmmsg on a connected UDP socket. The datagrams are built once with the codec's builder
 * (moldudp64.h); per batch only the sequence numbers (and, with --timestamps, the messages'
 * stamps) are rewritten, so at full speed the cost measured is the kernel's. With --rate the
 * messages are paced: every wake-up sends the messages due by then, packed into as few
 * datagrams as the budget allows, which is what a publisher without a gateway would do.
 *
 * Bounded: stops after --count messages or --duration seconds, whichever comes first, then
 * sends three end-of-session packets so a sink can stop at once. Prints a human line on stderr
 * and, with --json, one JSON object on stdout. */
#include "bench_common.h"

#include "mdfeed/moldudp64.h"

#include <getopt.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BATCH 1024

typedef struct {
    struct sockaddr_in dest;
    struct in_addr ifaddr;
    bool have_ifaddr;
    size_t budget;
    size_t msg_size;
    uint64_t count;
    double duration_s;
    uint64_t rate;
    unsigned batch;
    int ttl;
    const char *session;
    bool timestamps;
    bool json;
    uint8_t pub_id;
    uint64_t drop_every;
} options_t;

typedef struct {
    uint64_t datagrams;
    uint64_t messages;
    uint64_t bytes;
    uint64_t retries; /* ENOBUFS / EAGAIN / partial batches resent */
    uint64_t dropped; /* datagrams left out on purpose (--drop-every) */
    double seconds;
} result_t;

/* One prebuilt datagram per batch slot. `built` is how many messages it currently holds, so a
 * slot is rebuilt only when a batch needs a different count (the last, or a paced one). */
typedef struct {
    uint8_t *buf;
    size_t len;
    unsigned built;
} slot_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: blaster --dest GROUP:PORT --count N [--interface ADDR] [--size BYTES]\n"
            "               [--msg-size BYTES] [--duration S] [--rate MSGS_PER_S] [--batch N]\n"
            "               [--ttl N] [--session NAME] [--pub-id N] [--timestamps] [--json]\n"
            "               [--drop-every K]\n"
            "  --size      datagram budget (UDP payload, MoldUDP64 header included), default 1400\n"
            "  --rate      paced messages/s; 0 (default) = as fast as sendmmsg goes\n"
            "  --drop-every  leave out every K-th datagram (sequence numbers advance): tests a\n"
            "              receiver's gap accounting without a lossy link\n");
}

static int parse_options(int argc, char **argv, options_t *o)
{
    static const struct option longopts[] = {
        {"dest", required_argument, NULL, 'd'},   {"interface", required_argument, NULL, 'i'},
        {"size", required_argument, NULL, 's'},   {"msg-size", required_argument, NULL, 'm'},
        {"count", required_argument, NULL, 'c'},  {"duration", required_argument, NULL, 't'},
        {"rate", required_argument, NULL, 'r'},   {"batch", required_argument, NULL, 'b'},
        {"ttl", required_argument, NULL, 'T'},    {"session", required_argument, NULL, 'S'},
        {"pub-id", required_argument, NULL, 'p'}, {"drop-every", required_argument, NULL, 'D'},
        {"timestamps", no_argument, NULL, 'z'},   {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    *o = (options_t){.budget = 1400,
                     .msg_size = 40,
                     .duration_s = 30,
                     .batch = 64,
                     .ttl = 4,
                     .session = "BENCH"};
    bool have_dest = false;
    uint64_t v = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (bench_parse_addr(optarg, &o->dest) != 0) {
                fprintf(stderr, "blaster: --dest: '%s' is not a.b.c.d:port\n", optarg);
                return -1;
            }
            have_dest = true;
            break;
        case 'i':
            if (inet_pton(AF_INET, optarg, &o->ifaddr) != 1) {
                fprintf(stderr, "blaster: --interface: '%s' is not an IPv4 address\n", optarg);
                return -1;
            }
            o->have_ifaddr = true;
            break;
        case 'z':
            o->timestamps = true;
            break;
        case 'j':
            o->json = true;
            break;
        case 'S':
            o->session = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 't':
            if (bench_parse_seconds(optarg, &o->duration_s) != 0) {
                fprintf(stderr, "blaster: --duration: '%s' is not 0 < seconds <= 3600\n", optarg);
                return -1;
            }
            break;
        case 's':
        case 'm':
        case 'c':
        case 'r':
        case 'b':
        case 'T':
        case 'p':
        case 'D':
            if (bench_parse_u64(optarg, &v) != 0 ||
                (v > 0xFFFFFFFFu && c != 'c' && c != 'r' && c != 'D')) {
                fprintf(stderr, "blaster: '%s' is not a number in range\n", optarg);
                return -1;
            }
            if (c == 's')
                o->budget = (size_t)v;
            else if (c == 'm')
                o->msg_size = (size_t)v;
            else if (c == 'c')
                o->count = v;
            else if (c == 'r')
                o->rate = v;
            else if (c == 'b')
                o->batch = (unsigned)v;
            else if (c == 'T')
                o->ttl = (int)v;
            else if (c == 'D')
                o->drop_every = v;
            else
                o->pub_id = (uint8_t)v;
            break;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (!have_dest || o->count == 0) {
        fprintf(stderr, "blaster: --dest and --count are required\n");
        usage(stderr);
        return -1;
    }
    if (o->budget < MDFEED_MOLD_HEADER_LEN + 2 + BENCH_MSG_MIN || o->budget > 65507 ||
        o->msg_size < BENCH_MSG_MIN || o->msg_size + 2 + MDFEED_MOLD_HEADER_LEN > o->budget) {
        fprintf(stderr, "blaster: --msg-size %zu must be >= %d and fit --size %zu (<= 65507)\n",
                o->msg_size, BENCH_MSG_MIN, o->budget);
        return -1;
    }
    if (o->batch == 0 || o->batch > MAX_BATCH || o->ttl < 0 || o->ttl > 255) {
        fprintf(stderr, "blaster: --batch must be 1..%d and --ttl 0..255\n", MAX_BATCH);
        return -1;
    }
    return 0;
}

static int open_socket(const options_t *o)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    unsigned char ttl = (unsigned char)o->ttl, loop = 1;
    int sndbuf = 8 << 20;
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) != 0 ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) != 0)
        goto fail;
    /* SO_SNDBUFFORCE passes net.core.wmem_max as root; fall back to the capped option. */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) != 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (o->have_ifaddr &&
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &o->ifaddr, sizeof(o->ifaddr)) != 0)
        goto fail;
    if (connect(fd, (const struct sockaddr *)&o->dest, sizeof(o->dest)) != 0)
        goto fail;
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

/* Rebuilds `slot` to hold `n` messages starting at sequence `seq`. */
static int build_slot(slot_t *slot, const options_t *o, const char session[10],
                      const uint8_t *proto, unsigned n, uint64_t seq)
{
    mdfeed_mold_builder_t b;
    int rc = mdfeed_mold_builder_init(&b, slot->buf, o->budget, session);
    if (rc != 0)
        return rc;
    mdfeed_mold_builder_open(&b, seq);
    for (unsigned i = 0; i < n; i++) {
        rc = mdfeed_mold_builder_append(&b, proto, o->msg_size);
        if (rc != 0)
            return rc;
    }
    slot->len = mdfeed_mold_builder_finish(&b);
    slot->built = n;
    return 0;
}

/* Sets the sequence number of a built slot and, when asked, stamps its messages. */
static void refresh_slot(slot_t *slot, const options_t *o, uint64_t seq, uint64_t ts)
{
    mdfeed_put_be64(slot->buf + MDFEED_MOLD_SESSION_LEN, seq);
    if (!o->timestamps)
        return;
    uint8_t *p = slot->buf + MDFEED_MOLD_HEADER_LEN;
    for (unsigned i = 0; i < slot->built; i++) {
        bench_msg_stamp(p + 2, ts, seq - 1 + i, o->pub_id);
        p += 2 + o->msg_size;
    }
}

/* Sends `n` prepared datagrams, resending what a partial sendmmsg left. Returns 0 or -errno. */
static int send_all(int fd, struct mmsghdr *msgs, unsigned n, result_t *r)
{
    unsigned done = 0;
    unsigned spins = 0;
    while (done < n) {
        int rc = sendmmsg(fd, msgs + done, n - done, 0);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            /* ENOBUFS: the device queue is full for a moment. Yield and retry, bounded. */
            if ((errno == ENOBUFS || errno == EAGAIN) && ++spins < 1000000) {
                r->retries++;
                usleep(10);
                continue;
            }
            return -errno;
        }
        if ((unsigned)rc < n - done)
            r->retries++;
        for (int i = 0; i < rc; i++)
            r->bytes += msgs[done + (unsigned)i].msg_len;
        done += (unsigned)rc;
    }
    r->datagrams += n;
    return 0;
}

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u),
                          .tv_nsec = (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static int blast(int fd, const options_t *o, result_t *r)
{
    char session[MDFEED_MOLD_SESSION_LEN];
    int rc = mdfeed_mold_session_set(session, o->session);
    if (rc != 0) {
        fprintf(stderr, "blaster: --session '%s': %s\n", o->session, mdfeed_strerror(rc));
        return rc;
    }
    const unsigned per_dgram = (unsigned)((o->budget - MDFEED_MOLD_HEADER_LEN) /
                                          (MDFEED_MOLD_BLOCK_HDR_LEN + o->msg_size));
    static slot_t slots[MAX_BATCH];
    static struct mmsghdr msgs[MAX_BATCH];
    static struct iovec iovs[MAX_BATCH];
    uint8_t *pool = calloc(o->batch, o->budget);
    uint8_t *proto = calloc(1, o->msg_size);
    if (pool == NULL || proto == NULL) {
        free(pool);
        free(proto);
        return -ENOMEM;
    }
    memset(proto, 'x', o->msg_size);
    bench_msg_stamp(proto, 0, 0, o->pub_id);
    for (unsigned i = 0; i < o->batch; i++)
        slots[i] = (slot_t){.buf = pool + (size_t)i * o->budget};

    const uint64_t start = bench_now_ns();
    const uint64_t deadline = start + (uint64_t)(o->duration_s * 1e9);
    uint64_t sent = 0, dgram_no = 0;
    uint64_t now = start;
    rc = 0;
    while (sent < o->count && now < deadline) {
        uint64_t due = o->count - sent;
        if (o->rate != 0) {
            double elapsed = (double)(now - start) / 1e9;
            uint64_t target = (uint64_t)(elapsed * (double)o->rate) + 1;
            if (target > o->count)
                target = o->count;
            due = target > sent ? target - sent : 0;
            if (due == 0) {
                sleep_until(start + (uint64_t)((double)(sent)*1e9 / (double)o->rate));
                now = bench_now_ns();
                continue;
            }
        }
        unsigned n = 0, m = 0; /* slots filled, datagrams to send */
        uint64_t ts = o->timestamps ? bench_now_ns() : 0;
        while (n < o->batch && due > 0) {
            unsigned k = due < per_dgram ? (unsigned)due : per_dgram;
            uint64_t seq = sent + 1;
            if (slots[n].built != k && (rc = build_slot(&slots[n], o, session, proto, k, seq)) != 0)
                goto out;
            refresh_slot(&slots[n], o, seq, ts);
            if (o->drop_every != 0 && ++dgram_no % o->drop_every == 0) {
                r->dropped++; /* --drop-every: a deliberate gap for testing receivers */
            } else {
                iovs[m] = (struct iovec){.iov_base = slots[n].buf, .iov_len = slots[n].len};
                msgs[m] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iovs[m], .msg_iovlen = 1}};
                m++;
            }
            sent += k;
            due -= k;
            n++;
        }
        if ((rc = send_all(fd, msgs, m, r)) != 0) {
            fprintf(stderr, "blaster: sendmmsg: %s\n", strerror(-rc));
            goto out;
        }
        r->messages = sent;
        now = bench_now_ns();
    }
    r->seconds = (double)(bench_now_ns() - start) / 1e9;
    /* End of session: `sequence` is the next one, as in MoldUDP64. Sent three times because a
     * single UDP datagram may be dropped by a receiver that is still busy. */
    uint8_t eos[MDFEED_MOLD_HEADER_LEN];
    mdfeed_mold_header_encode(eos, session, sent + 1, MDFEED_MOLD_COUNT_END);
    for (int i = 0; i < 3; i++) {
        usleep(2000);
        if (send(fd, eos, sizeof(eos), 0) < 0)
            break;
    }
out:
    free(pool);
    free(proto);
    return rc;
}

int main(int argc, char **argv)
{
    options_t o;
    if (parse_options(argc, argv, &o) != 0)
        return 2;
    /* Paced sends wake up on time only with a tight timer slack (default 50 us). */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    int fd = open_socket(&o);
    if (fd < 0) {
        fprintf(stderr, "blaster: socket setup: %s\n", strerror(-fd));
        return 1;
    }
    result_t r = {0};
    int rc = blast(fd, &o, &r);
    close(fd);
    double secs = r.seconds > 0 ? r.seconds : 1e-9;
    fprintf(stderr,
            "blaster: %" PRIu64 " datagrams, %" PRIu64
            " messages in %.3f s: %.0f dgram/s, %.0f msg/s%s\n",
            r.datagrams, r.messages, r.seconds, (double)r.datagrams / secs,
            (double)r.messages / secs, rc != 0 ? " (stopped on error)" : "");
    if (o.json)
        printf("{\"tool\": \"blaster\", \"datagrams\": %" PRIu64 ", \"messages\": %" PRIu64
               ", \"bytes\": %" PRIu64 ", \"retries\": %" PRIu64 ", \"seconds\": %.6f"
               ", \"dgrams_per_s\": %.1f, \"msgs_per_s\": %.1f, \"budget\": %zu, \"msg_size\": %zu"
               ", \"rate\": %" PRIu64 ", \"dropped\": %" PRIu64 ", \"error\": %s}\n",
               r.datagrams, r.messages, r.bytes, r.retries, r.seconds, (double)r.datagrams / secs,
               (double)r.messages / secs, o.budget, o.msg_size, o.rate, r.dropped,
               rc != 0 ? "true" : "false");
    return rc != 0 ? 1 : 0;
}
