/* Load tools for tests/bench/gateway_bench.sh (not a test by itself).
 *   pub   --connect IP:PORT --count N [--size 40] [--rate MSGS_PER_S] [--raw] [--user U --pass P]
 *         SoupBinTCP publisher: logs in (unless --raw) and sends N unsequenced data packets of
 *         `size` bytes, as fast as TCP takes them or paced in 1 ms ticks.
 *   rx    --group G:PORT --ifaddr A --count N [--raw] [--idle-ms 2000]
 *         Joins G on the interface holding A; counts messages of valid MoldUDP64 datagrams and
 *         checks that sequence numbers are contiguous (--raw: counts bytes / frame size, for
 *         the socat relay, which keeps no framing). Prints one line of key=value figures.
 *   blast --group G:PORT --ifaddr A --count N [--size 40] [--budget 1400]
 *         Raw sendmmsg blaster: the same MoldUDP64 datagrams the gateway would send, built with
 *         the library, 64 per sendmmsg on a connected socket: the ceiling for this machine.
 * All loops are bounded by --count and by time (30 s at most). */
#include "mdfeed/moldudp64.h"
#include "mdfeed/soupbintcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SECONDS 30

static struct {
    const char *mode, *connect, *group, *ifaddr, *user, *pass;
    long count, size, rate, budget, idle_ms;
    bool raw;
} opt = {.user = "pub1", .pass = "pw1", .size = 40, .budget = 1400, .idle_ms = 2000};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "gateway_bench_tool %s: %s: %s\n", opt.mode, what, strerror(errno));
    exit(1);
}

static void parse_addr(const char *s, struct sockaddr_in *a)
{
    char host[64];
    const char *c = strrchr(s, ':');
    if (!c || (size_t)(c - s) >= sizeof(host)) {
        fprintf(stderr, "bad address %s\n", s);
        exit(2);
    }
    memcpy(host, s, (size_t)(c - s));
    host[c - s] = '\0';
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)atoi(c + 1));
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", s);
        exit(2);
    }
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        p += w;
        n -= (size_t)w;
    }
}

static int run_pub(void)
{
    struct sockaddr_in a;
    parse_addr(opt.connect, &a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("connect");
    uint8_t frame[128];
    if (!opt.raw) {
        mdfeed_soup_login_t l = {0};
        snprintf(l.username, sizeof(l.username), "%s", opt.user);
        snprintf(l.password, sizeof(l.password), "%s", opt.pass);
        int n = mdfeed_soup_encode_login_request(frame, sizeof(frame), &l);
        write_all(fd, frame, (size_t)n);
        uint8_t reply[64];
        ssize_t r = read(fd, reply, sizeof(reply));
        if (r < 3 || reply[2] != 'A') {
            fprintf(stderr, "pub: login not accepted\n");
            return 1;
        }
    }
    /* One chunk of pre-encoded frames, rewritten with each message's index. */
    uint8_t payload[256] = {0};
    int flen = mdfeed_soup_encode(frame, sizeof(frame), 'U', payload, (size_t)opt.size);
    enum { CHUNK = 1024 };
    static uint8_t chunk[CHUNK * 300];
    for (int i = 0; i < CHUNK; i++)
        memcpy(chunk + (size_t)i * (size_t)flen, frame, (size_t)flen);
    long sent = 0;
    double t0 = now_s(), deadline = t0 + MAX_SECONDS;
    while (sent < opt.count && now_s() < deadline) {
        long k = opt.count - sent;
        if (opt.rate > 0) {
            /* Paced: the messages due by now, at most one chunk per write. */
            long due = (long)((now_s() - t0) * (double)opt.rate) + 1 - sent;
            if (due <= 0) {
                struct timespec ts = {0, 200000};
                nanosleep(&ts, NULL);
                continue;
            }
            k = k < due ? k : due;
        }
        k = k < CHUNK ? k : CHUNK;
        for (long i = 0; i < k; i++) { /* message index in the first 8 bytes */
            uint64_t v = (uint64_t)(sent + i);
            memcpy(chunk + (size_t)i * (size_t)flen + 3, &v, 8);
        }
        write_all(fd, chunk, (size_t)k * (size_t)flen);
        sent += k;
    }
    double el = now_s() - t0;
    printf("pub sent=%ld seconds=%.3f rate=%.0f\n", sent, el, (double)sent / el);
    /* Log out and wait for the server to close: closing with unread heartbeats in our
     * buffer would send a RST, and a RST discards what the server has not read yet. */
    if (!opt.raw) {
        int n = mdfeed_soup_encode(frame, sizeof(frame), MDFEED_SOUP_LOGOUT_REQUEST, NULL, 0);
        write_all(fd, frame, (size_t)n);
    } else {
        shutdown(fd, SHUT_WR);
    }
    char sink[4096];
    for (double end = now_s() + 10; now_s() < end;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0 && read(fd, sink, sizeof(sink)) <= 0)
            break;
    }
    close(fd);
    return 0;
}

static int join(const struct sockaddr_in *g)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1, rcv = 64 << 20;
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* SO_RCVBUFFORCE (root) so the host's rmem_max needs no change. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    if (bind(fd, (const struct sockaddr *)g, sizeof(*g)) != 0)
        die("bind");
    struct ip_mreq m = {.imr_multiaddr = g->sin_addr};
    inet_pton(AF_INET, opt.ifaddr, &m.imr_interface);
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)) != 0)
        die("IP_ADD_MEMBERSHIP");
    return fd;
}

static int run_rx(void)
{
    struct sockaddr_in g;
    parse_addr(opt.group, &g);
    int fd = join(&g);
    printf("rx ready\n");
    fflush(stdout);
    enum { B = 64 };
    static uint8_t bufs[B][65536];
    struct mmsghdr msgs[B];
    struct iovec iov[B];
    for (int i = 0; i < B; i++) {
        iov[i] = (struct iovec){bufs[i], sizeof(bufs[i])};
        memset(&msgs[i], 0, sizeof(msgs[i]));
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    long messages = 0, packets = 0, bad = 0, gaps = 0, oversize = 0, bytes = 0;
    uint64_t next = 0, first_seq = 0;
    double first = 0, last = 0, start = now_s();
    long frame = 3 + opt.size;
    while (messages < opt.count) {
        struct pollfd p = {fd, POLLIN, 0};
        int idle = first ? (int)opt.idle_ms : MAX_SECONDS * 1000;
        if (poll(&p, 1, idle) <= 0 || now_s() - start > MAX_SECONDS)
            break;
        int n = recvmmsg(fd, msgs, B, MSG_DONTWAIT, NULL);
        if (n <= 0)
            continue;
        double t = now_s();
        for (int i = 0; i < n; i++) {
            size_t len = msgs[i].msg_len;
            /* Only data counts as activity: heartbeats must not keep a dead stream open. */
            if (opt.raw || len > MDFEED_MOLD_HEADER_LEN) {
                last = t;
                if (!first)
                    first = t;
            }
            packets++;
            if (opt.raw) {
                bytes += (long)len;
                messages = bytes / frame;
                continue;
            }
            if (len > (size_t)opt.budget)
                oversize++;
            mdfeed_mold_packet_t pkt;
            if (mdfeed_mold_decode(bufs[i], len, &pkt) != 0) {
                bad++;
                continue;
            }
            if (pkt.kind != MDFEED_MOLD_DATA)
                continue;
            if (next && pkt.hdr.seq != next)
                gaps++;
            if (!first_seq)
                first_seq = pkt.hdr.seq;
            next = pkt.hdr.seq + pkt.hdr.count;
            messages += pkt.hdr.count;
        }
    }
    double el = last - first;
    printf("rx messages=%ld packets=%ld lost=%ld gaps=%ld bad=%ld oversize=%ld first_seq=%llu "
           "next_seq=%llu seconds=%.4f rate=%.0f\n",
           messages, packets, opt.count - messages, gaps, bad, oversize,
           (unsigned long long)first_seq, (unsigned long long)next, el,
           el > 0 ? (double)messages / el : 0.0);
    return messages == opt.count && gaps == 0 && bad == 0 && oversize == 0 ? 0 : 1;
}

static int run_blast(void)
{
    struct sockaddr_in g;
    parse_addr(opt.group, &g);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ip_mreqn m = {0};
    inet_pton(AF_INET, opt.ifaddr, &m.imr_address);
    int ttl = 4;
    if (fd < 0 || setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof(m)) ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) ||
        connect(fd, (struct sockaddr *)&g, sizeof(g)))
        die("socket");
    enum { B = 64 };
    static uint8_t pk[B][MDFEED_MOLD_MAX_DATAGRAM];
    char session[10];
    mdfeed_mold_session_set(session, "BLAST");
    uint8_t msg[256] = {0};
    mdfeed_mold_builder_t b;
    size_t plen = 0;
    uint16_t per = 0;
    for (int i = 0; i < B; i++) {
        mdfeed_mold_builder_init(&b, pk[i], (size_t)opt.budget, session);
        mdfeed_mold_builder_open(&b, 1);
        while (mdfeed_mold_builder_append(&b, msg, (size_t)opt.size) == 0)
            ;
        per = b.count;
        plen = mdfeed_mold_builder_finish(&b);
    }
    struct mmsghdr msgs[B];
    struct iovec iov[B];
    long sent = 0;
    uint64_t seq = 1;
    double t0 = now_s(), deadline = t0 + MAX_SECONDS;
    while (sent < opt.count && now_s() < deadline) {
        int k = 0;
        for (; k < B && sent + (long)k * per < opt.count; k++) {
            mdfeed_put_be64(pk[k] + 10, seq);
            seq += per;
            iov[k] = (struct iovec){pk[k], plen};
            memset(&msgs[k], 0, sizeof(msgs[k]));
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        int off = 0;
        while (off < k) {
            int r = sendmmsg(fd, msgs + off, (unsigned)(k - off), 0);
            if (r < 0 && (errno == EINTR || errno == ENOBUFS || errno == EAGAIN))
                continue;
            if (r < 0)
                die("sendmmsg");
            off += r;
        }
        sent += (long)k * per;
    }
    double el = now_s() - t0;
    printf("blast sent=%ld packets=%ld seconds=%.4f rate=%.0f\n", sent, (long)(seq - 1) / per, el,
           (double)sent / el);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"connect", 1, NULL, 'c'}, {"group", 1, NULL, 'g'},   {"ifaddr", 1, NULL, 'i'},
        {"count", 1, NULL, 'n'},   {"size", 1, NULL, 's'},    {"rate", 1, NULL, 'r'},
        {"budget", 1, NULL, 'b'},  {"raw", 0, NULL, 'w'},     {"user", 1, NULL, 'u'},
        {"pass", 1, NULL, 'p'},    {"idle-ms", 1, NULL, 'I'}, {NULL, 0, NULL, 0}};
    if (argc < 2) {
        fprintf(stderr, "usage: gateway_bench_tool pub|rx|blast [options]\n");
        return 2;
    }
    opt.mode = argv[1];
    optind = 2;
    int o;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'c':
            opt.connect = optarg;
            break;
        case 'g':
            opt.group = optarg;
            break;
        case 'i':
            opt.ifaddr = optarg;
            break;
        case 'n':
            opt.count = atol(optarg);
            break;
        case 's':
            opt.size = atol(optarg);
            break;
        case 'r':
            opt.rate = atol(optarg);
            break;
        case 'b':
            opt.budget = atol(optarg);
            break;
        case 'w':
            opt.raw = true;
            break;
        case 'u':
            opt.user = optarg;
            break;
        case 'p':
            opt.pass = optarg;
            break;
        case 'I':
            opt.idle_ms = atol(optarg);
            break;
        default:
            return 2;
        }
    }
    if (opt.count <= 0 || opt.size < 0 || opt.size > 200 || opt.budget < 64 ||
        opt.budget > MDFEED_MOLD_MAX_DATAGRAM) {
        fprintf(stderr, "bad --count/--size/--budget\n");
        return 2;
    }
    if (strcmp(opt.mode, "pub") == 0 && opt.connect)
        return run_pub();
    if (strcmp(opt.mode, "rx") == 0 && opt.group && opt.ifaddr)
        return run_rx();
    if (strcmp(opt.mode, "blast") == 0 && opt.group && opt.ifaddr)
        return run_blast();
    fprintf(stderr, "gateway_bench_tool: unknown mode or missing options\n");
    return 2;
}
