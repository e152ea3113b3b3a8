/* mold-send: a MoldUDP64 source for the CLI tests. Packs the messages of a length-prefixed
 * file (--in, the ITCH file layout) or generated benchmark messages (--timestamps N) into
 * MoldUDP64 packets, multicasts them on line A and optionally line B (each line can drop
 * every K-th packet), answers re-requests on 127.0.0.1:--retransmit-port, and then keeps
 * sending heartbeats, or end of session with --eos, for --linger milliseconds. */
#include "mdfeed/moldudp64.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    uint8_t *data;
    size_t *off, n; /* message i: data + off[i], length in its 2-byte prefix */
} store_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "mold-send: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void load(store_t *st, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    st->data = malloc((size_t)size + 1);
    if (!st->data || fread(st->data, 1, (size_t)size, f) != (size_t)size)
        die("read");
    fclose(f);
    size_t cap = 1024;
    st->off = malloc(cap * sizeof(size_t));
    for (size_t p = 0; p + 2 <= (size_t)size;) {
        size_t len = mdfeed_get_be16(st->data + p);
        if (p + 2 + len > (size_t)size) {
            fprintf(stderr, "mold-send: %s: truncated message at byte %zu\n", path, p);
            exit(1);
        }
        if (st->n == cap)
            st->off = realloc(st->off, (cap *= 2) * sizeof(size_t));
        st->off[st->n++] = p;
        p += 2 + len;
    }
}

/* Sends messages [first, last] (1-based sequence numbers) as packets to `to`. */
static uint64_t send_range(int fd, const struct sockaddr_in *to, const store_t *st,
                           const char *session, size_t budget, uint64_t first, uint64_t last,
                           int drop_k, int drop_phase, uint64_t *pkt_index)
{
    uint8_t buf[65536];
    mdfeed_mold_builder_t b;
    mdfeed_mold_builder_init(&b, buf, budget, session);
    uint64_t sent = 0;
    uint64_t seq = first;
    while (seq <= last) {
        mdfeed_mold_builder_open(&b, seq);
        while (seq <= last) {
            const uint8_t *m = st->data + st->off[seq - 1];
            if (mdfeed_mold_builder_append(&b, m + 2, mdfeed_get_be16(m)) != 0)
                break;
            seq++;
        }
        size_t len = mdfeed_mold_builder_finish(&b);
        uint64_t idx = pkt_index ? (*pkt_index)++ : 0;
        if (drop_k > 0 && (int)(idx % (uint64_t)drop_k) == drop_phase)
            continue;
        if (sendto(fd, buf, len, 0, (const struct sockaddr *)to, sizeof(*to)) < 0)
            die("sendto");
        sent++;
        if (sent % 16 == 0)
            usleep(200); /* a receiver on the same CPU gets to read */
    }
    return sent;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"group", required_argument, 0, 'g'},
                                         {"group-b", required_argument, 0, 'b'},
                                         {"interface", required_argument, 0, 'i'},
                                         {"session", required_argument, 0, 's'},
                                         {"in", required_argument, 0, 'I'},
                                         {"timestamps", required_argument, 0, 'T'},
                                         {"size", required_argument, 0, 'z'},
                                         {"budget", required_argument, 0, 'B'},
                                         {"drop-a", required_argument, 0, 'a'},
                                         {"drop-b", required_argument, 0, 'd'},
                                         {"retransmit-port", required_argument, 0, 'r'},
                                         {"linger", required_argument, 0, 'l'},
                                         {"eos", no_argument, 0, 'e'},
                                         {0, 0, 0, 0}};
    const char *groups[2] = {NULL, NULL}, *ifname = "lo", *session = "TEST", *in = NULL;
    long nts = 0, size = 32, budget = 1400, drop[2] = {0, 0}, rport = 0, linger = 300;
    int eos = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'g':
            groups[0] = optarg;
            break;
        case 'b':
            groups[1] = optarg;
            break;
        case 'i':
            ifname = optarg;
            break;
        case 's':
            session = optarg;
            break;
        case 'I':
            in = optarg;
            break;
        case 'T':
            nts = strtol(optarg, NULL, 10);
            break;
        case 'z':
            size = strtol(optarg, NULL, 10);
            break;
        case 'B':
            budget = strtol(optarg, NULL, 10);
            break;
        case 'a':
            drop[0] = strtol(optarg, NULL, 10);
            break;
        case 'd':
            drop[1] = strtol(optarg, NULL, 10);
            break;
        case 'r':
            rport = strtol(optarg, NULL, 10);
            break;
        case 'l':
            linger = strtol(optarg, NULL, 10);
            break;
        case 'e':
            eos = 1;
            break;
        default:
            return 2;
        }
    }
    if (!groups[0] || (!in && nts <= 0) || size < MDFEED_BENCH_MIN_LEN || budget < 64 ||
        budget > 65000) {
        fprintf(stderr, "usage: mold-send --group G:P [--group-b G:P] [--interface IF] "
                        "(--in FILE | --timestamps N [--size S]) [--budget B] [--drop-a K] "
                        "[--drop-b K] [--retransmit-port P] [--linger MS] [--eos]\n");
        return 2;
    }
    char sess[10];
    if (mdfeed_mold_session_set(sess, session) != 0)
        return 2;
    store_t st = {0};
    if (in) {
        load(&st, in);
    } else {
        st.n = (size_t)nts;
        st.data = calloc(st.n, (size_t)size + 2);
        st.off = malloc(st.n * sizeof(size_t));
        for (size_t i = 0; i < st.n; i++) {
            st.off[i] = i * ((size_t)size + 2);
            mdfeed_put_be16(st.data + st.off[i], (uint16_t)size);
        }
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        die("socket");
    struct ip_mreqn m = {.imr_ifindex = (int)if_nametoindex(ifname)};
    int one = 1;
    if (m.imr_ifindex == 0 || setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof(m)) < 0 ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof(one)) < 0)
        die(ifname);
    struct sockaddr_in to[2];
    int nlines = groups[1] ? 2 : 1;
    for (int i = 0; i < nlines; i++) {
        uint32_t a;
        uint16_t p;
        if (mdfeed_addr_parse(groups[i], &a, &p) != 0) {
            fprintf(stderr, "mold-send: bad group %s\n", groups[i]);
            return 2;
        }
        to[i] = (struct sockaddr_in){
            .sin_family = AF_INET, .sin_port = htons(p), .sin_addr.s_addr = htonl(a)};
    }
    int srv = -1;
    if (rport > 0) {
        srv = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)rport),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (srv < 0 || bind(srv, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            die("retransmit socket");
    }
    /* Send packet by packet, alternating lines, so A and B race as they do in production. */
    uint64_t idx[2] = {0, 0}, packets = 0;
    uint64_t seq = 1;
    while (seq <= st.n) {
        /* One packet's worth of messages at a time, identical on both lines. */
        uint64_t last = seq;
        size_t used = MDFEED_MOLD_HEADER_LEN;
        while (last <= st.n) {
            uint8_t *p = st.data + st.off[last - 1];
            size_t len = mdfeed_get_be16(p);
            if (used + 2 + len > (size_t)budget)
                break;
            if (nts)
                mdfeed_bench_encode(p + 2, len, real_ns(), last);
            used += 2 + len;
            last++;
        }
        if (last == seq) {
            fprintf(stderr, "mold-send: message %llu exceeds the budget\n",
                    (unsigned long long)seq);
            return 1;
        }
        for (int i = 0; i < nlines; i++)
            packets += send_range(fd, &to[i], &st, sess, (size_t)budget, seq, last - 1,
                                  (int)drop[i], i == 0 ? 0 : 1, &idx[i]);
        seq = last;
        /* Re-requests are answered while sending too. */
        for (int k = 0; k < 8 && srv >= 0; k++) {
            uint8_t req[64];
            struct sockaddr_in from;
            socklen_t fl = sizeof(from);
            ssize_t r = recvfrom(srv, req, sizeof(req), 0, (struct sockaddr *)&from, &fl);
            mdfeed_mold_header_t h;
            if (r < 0)
                break;
            if (mdfeed_mold_request_decode(req, (size_t)r, &h) != 0 || h.seq == 0 || h.seq >= seq)
                continue;
            uint64_t hi = h.seq + h.count - 1 < seq - 1 ? h.seq + h.count - 1 : seq - 1;
            send_range(srv, &from, &st, sess, (size_t)budget, h.seq, hi, 0, 0, NULL);
        }
    }
    uint64_t end = now_ms() + (uint64_t)linger, next_hb = 0;
    uint64_t requests = 0;
    while (now_ms() < end) {
        if (now_ms() >= next_hb) {
            uint8_t hb[20];
            mdfeed_mold_header_encode(hb, sess, st.n + 1, eos ? MDFEED_MOLD_COUNT_END : 0);
            for (int i = 0; i < nlines; i++)
                (void)sendto(fd, hb, 20, 0, (struct sockaddr *)&to[i], sizeof(to[i]));
            next_hb = now_ms() + 50;
        }
        if (srv >= 0) {
            uint8_t req[64];
            struct sockaddr_in from;
            socklen_t fl = sizeof(from);
            ssize_t r = recvfrom(srv, req, sizeof(req), 0, (struct sockaddr *)&from, &fl);
            mdfeed_mold_header_t h;
            if (r >= 0 && mdfeed_mold_request_decode(req, (size_t)r, &h) == 0 && h.seq > 0 &&
                h.seq <= st.n && h.count > 0) {
                requests++;
                uint64_t hi = h.seq + h.count - 1 < st.n ? h.seq + h.count - 1 : st.n;
                send_range(srv, &from, &st, sess, (size_t)budget, h.seq, hi, 0, 0, NULL);
                continue;
            }
        }
        usleep(1000);
    }
    printf("mold-send: %zu messages, %llu packets, %llu re-requests answered after sending\n", st.n,
           (unsigned long long)packets, (unsigned long long)requests);
    close(fd);
    if (srv >= 0)
        close(srv);
    free(st.data);
    free(st.off);
    return 0;
}
