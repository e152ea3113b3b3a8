/* consumer_bench: libmdfeed's subscriber (recvmmsg receive with kernel timestamps + MoldUDP64
 * validation + arbitration bookkeeping + in-order delivery to a callback) against raw recvmmsg
 * loops over the same packets in the same run.
 *
 * In a private network namespace (root), one sender multicasts a burst of packets over
 * loopback to a group that four consumers joined, so their receive queues hold identical
 * packets; then each consumer drains its queue and only the drain is timed (loopback delivers
 * inside the sender's send call, so a receiver's own cost is exactly its drain). The
 * contenders, in an order rotated every round:
 *   raw        recvmmsg, then every message straight to consume() (no validation, nothing
 *              else), inlined; the subscriber's callback calls the same consume()
 *   raw + ts   the same with SO_TIMESTAMPNS, which the subscriber always asks for, each
 *              message handed its timestamp: the equal-work baseline of the headline ratio
 *   subscriber libmdfeed, its on_message callback calling the same consume()
 *   count-only recvmmsg and the header's count, for reference
 * Prints per-contender medians over the rounds and the ratios (target: subscriber >= 0.80 x
 * raw + ts; sub/raw without timestamps is printed too), then one JSON line.
 *
 * Usage: consumer_bench [--rounds N] [--packets P] [--msg-size S]   (bounded: N <= 200) */
#include "task.h"

#include "mdfeed/moldudp64.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#define GROUP  0xEF4D0101u /* 239.77.1.1 */
#define PORT   30801
#define BUDGET 1400
#define BATCH  64

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void enter_private_netns(void)
{
    SKIP_UNLESS_ROOT();
    if (unshare(CLONE_NEWNET) != 0)
        SKIP("unshare(CLONE_NEWNET) failed: %s", strerror(errno));
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    ASSERT_EQ(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    ASSERT_EQ(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
    close(fd);
}

/* The consumer's work per message, the same for every contender: check order, count, and
 * look at the kernel receive timestamp (every consumer that asks for one uses it). */
typedef struct {
    uint64_t msgs, bytes, last_seq, order_errors, last_rx_ns;
} counter_t;

static inline void consume(counter_t *c, uint64_t seq, const uint8_t *data, uint16_t len,
                           uint64_t rx_ns)
{
    if (seq != c->last_seq + 1)
        c->order_errors++;
    c->last_seq = seq;
    c->msgs++;
    c->bytes += len + (len ? data[0] : 0);
    c->last_rx_ns = rx_ns; /* one store: the consumer's work stays as light as before */
}

/* The subscriber's on_message callback: the same consume() the raw loops inline. */
static void on_message(void *data, const mdfeed_msg_t *m)
{
    consume(data, m->seq, m->data, m->len, m->rx_ns);
}

/* The SO_TIMESTAMPNS control message of one received datagram, 0 when there is none. */
static uint64_t rx_timestamp(struct msghdr *h)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        }
    return 0;
}

/* ---- the raw baselines: recvmmsg, then each message straight to consume() (or only the
 * header's count read); no validation, no arbitration, no bookkeeping ---------------------- */

typedef struct {
    int fd;
    bool ts;   /* also asks for SO_TIMESTAMPNS, as the subscriber does */
    bool walk; /* hands every message to consume(), as any consumer must; else counts only */
    counter_t c;
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    uint8_t buf[BATCH][2048];
    uint8_t ctrl[BATCH][64];
} raw_t;

static void raw_open(raw_t *r, bool ts, bool walk)
{
    r->walk = walk;
    r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    ASSERT(r->fd >= 0);
    int one = 1, big = 64 << 20;
    ASSERT_EQ(setsockopt(r->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    ASSERT_EQ(setsockopt(r->fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)), 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(PORT), .sin_addr.s_addr = htonl(GROUP)};
    ASSERT_EQ(bind(r->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct ip_mreqn m = {.imr_multiaddr.s_addr = htonl(GROUP),
                         .imr_ifindex = (int)if_nametoindex("lo")};
    ASSERT_EQ(setsockopt(r->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)), 0);
    r->ts = ts;
    if (ts)
        ASSERT_EQ(setsockopt(r->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)), 0);
    for (int i = 0; i < BATCH; i++) {
        r->iov[i] = (struct iovec){r->buf[i], sizeof(r->buf[i])};
        r->mm[i].msg_hdr = (struct msghdr){.msg_iov = &r->iov[i], .msg_iovlen = 1};
    }
}

static inline uint64_t raw_drain(raw_t *r, uint64_t want_msgs)
{
    uint64_t msgs = 0;
    while (msgs < want_msgs) {
        if (r->ts)
            for (int i = 0; i < BATCH; i++) {
                r->mm[i].msg_hdr.msg_control = r->ctrl[i];
                r->mm[i].msg_hdr.msg_controllen = sizeof(r->ctrl[i]);
            }
        int n = recvmmsg(r->fd, r->mm, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            uint16_t count = mdfeed_get_be16(r->buf[i] + 18);
            msgs += count;
            if (!r->walk)
                continue;
            const uint8_t *p = r->buf[i] + 20, *end = r->buf[i] + r->mm[i].msg_len;
            uint64_t seq = mdfeed_get_be64(r->buf[i] + 10);
            uint64_t rx_ns = r->ts ? rx_timestamp(&r->mm[i].msg_hdr) : 0;
            for (uint16_t k = 0; k < count && p + 2 <= end; k++) {
                uint16_t len = mdfeed_get_be16(p);
                consume(&r->c, seq++, p + 2, len, rx_ns); /* inlined: no call per message */
                p += 2 + len;
            }
        }
    }
    return msgs;
}

/* One out-of-line copy per contender, so each is compiled for its own flags and a profiler
 * (callgrind) reports each on its own; one call per drain, not per message. */
__attribute__((noinline)) static uint64_t raw_drain_plain(uint64_t want, raw_t *r)
{
    r->ts = false, r->walk = true;
    return raw_drain(r, want);
}
__attribute__((noinline)) static uint64_t raw_drain_ts(uint64_t want, raw_t *r)
{
    r->ts = true, r->walk = true;
    return raw_drain(r, want);
}
__attribute__((noinline)) static uint64_t raw_drain_count(uint64_t want, raw_t *r)
{
    r->ts = false, r->walk = false;
    return raw_drain(r, want);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int rounds = 21, packets = 400, msg_size = 32;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--packets"))
            packets = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--msg-size"))
            msg_size = atoi(argv[i + 1]);
    }
    if (rounds < 1 || rounds > 200 || packets < 1 || packets > 2000 || msg_size < 1 ||
        msg_size > 1000) {
        fprintf(stderr, "usage: consumer_bench [--rounds 1..200] [--packets 1..2000] "
                        "[--msg-size 1..1000]\n");
        return 2;
    }
    enter_private_netns();

    raw_t *raw = calloc(1, sizeof(*raw)), *raw_ts = calloc(1, sizeof(*raw_ts));
    raw_t *raw_count = calloc(1, sizeof(*raw_count));
    ASSERT(raw && raw_ts && raw_count);
    raw_open(raw_count, false, false);
    raw_open(raw, false, true);
    raw_open(raw_ts, true, true);
    counter_t cnt = {0};
    mdfeed_sub_config_t cfg;
    mdfeed_sub_config_init(&cfg);
    char group[32];
    snprintf(group, sizeof(group), "239.77.1.1:%d", PORT);
    cfg.group_a = group;
    cfg.interface = "lo";
    cfg.recv_batch = BATCH;
    cfg.rcvbuf = 64 << 20;
    cfg.max_datagram = sizeof(raw->buf[0]); /* the same buffers as the raw loop */
    cfg.gap_timeout_ms = 1000;
    mdfeed_sub_callbacks_t cbs = {.data = &cnt, .on_message = on_message};
    mdfeed_sub_t *sub;
    ASSERT_EQ(mdfeed_sub_new(&sub, &cfg, &cbs), 0);

    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    struct ip_mreqn mi = {.imr_ifindex = (int)if_nametoindex("lo")};
    int one = 1;
    ASSERT_EQ(setsockopt(tx, IPPROTO_IP, IP_MULTICAST_IF, &mi, sizeof(mi)), 0);
    ASSERT_EQ(setsockopt(tx, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof(one)), 0);
    struct sockaddr_in to = {
        .sin_family = AF_INET, .sin_port = htons(PORT), .sin_addr.s_addr = htonl(GROUP)};
    char session[10];
    mdfeed_mold_session_set(session, "BENCH");
    uint8_t msg[1000];
    memset(msg, 'm', sizeof(msg));

    double *raw_rate = calloc((size_t)rounds, sizeof(double));
    double *rawts_rate = calloc((size_t)rounds, sizeof(double));
    double *count_rate = calloc((size_t)rounds, sizeof(double));
    double *sub_rate = calloc((size_t)rounds, sizeof(double));
    uint8_t(*pkt)[BUDGET] = malloc((size_t)packets * BUDGET);
    size_t *pkt_len = calloc((size_t)packets, sizeof(size_t));
    ASSERT(raw_rate && sub_rate && pkt && pkt_len);
    uint64_t seq = 1, total_msgs = 0;
    for (int r = 0; r < rounds; r++) {
        /* Build and send one burst; both queues now hold the same packets. */
        uint64_t round_msgs = 0;
        for (int p = 0; p < packets; p++) {
            mdfeed_mold_builder_t b;
            mdfeed_mold_builder_init(&b, pkt[p], BUDGET, session);
            mdfeed_mold_builder_open(&b, seq);
            while (mdfeed_mold_builder_append(&b, msg, (size_t)msg_size) == 0)
                seq++, round_msgs++;
            pkt_len[p] = mdfeed_mold_builder_finish(&b);
        }
        for (int p = 0; p < packets; p++)
            ASSERT_EQ(sendto(tx, pkt[p], pkt_len[p], 0, (struct sockaddr *)&to, sizeof(to)),
                      (ssize_t)pkt_len[p]);
        for (int k = 0; k < 4; k++) {
            /* 0 raw, 1 raw + timestamps, 2 subscriber, 3 raw count-only; order rotated */
            int who = (k + r) % 4;
            uint64_t t0 = now_ns(), got;
            if (who != 2) {
                got = who == 0   ? raw_drain_plain(round_msgs, raw)
                      : who == 1 ? raw_drain_ts(round_msgs, raw_ts)
                                 : raw_drain_count(round_msgs, raw_count);
            } else {
                uint64_t before = cnt.msgs;
                while (cnt.msgs - before < round_msgs && mdfeed_sub_dispatch(sub) > 0) {
                }
                got = cnt.msgs - before;
            }
            double dt = (double)(now_ns() - t0) / 1e9;
            if (got != round_msgs)
                TEST_FAIL_("round %d: %s drained %" PRIu64 " of %" PRIu64
                           " messages (receive queue overflow?)",
                           r, who == 2 ? "subscriber" : "raw", got, round_msgs);
            double *rates[4] = {raw_rate, rawts_rate, sub_rate, count_rate};
            rates[who][r] = (double)got / dt;
        }
        total_msgs += round_msgs;
    }
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(sub, &st);
    ASSERT_EQ(cnt.order_errors, 0);
    ASSERT_EQ(raw->c.order_errors, 0);
    ASSERT_UEQ(raw->c.msgs, total_msgs);
    ASSERT_UEQ(raw->c.bytes, cnt.bytes); /* the same messages reached the same consumer */
    ASSERT_UEQ(raw_ts->c.bytes, cnt.bytes);
    ASSERT(cnt.last_rx_ns != 0); /* the timestamps reached the consumer */
    ASSERT(raw_ts->c.last_rx_ns != 0);
    ASSERT_UEQ(st.lost, 0);
    ASSERT_UEQ(st.messages, total_msgs);
    double mr = median(raw_rate, rounds), ms = median(sub_rate, rounds);
    double mt = median(rawts_rate, rounds), mc = median(count_rate, rounds);
    /* The equal-work baseline is raw + timestamps: the subscriber must hand every message its
     * kernel receive time, so it always asks for them; the raw loop without is shown too. */
    double ratio = ms / mt;
    printf("consumer_bench: %d rounds x %d packets x %" PRIu64 " msgs/packet (%d-byte messages, "
           "%d-byte budget), same packets to both consumers\n",
           rounds, packets, total_msgs / ((uint64_t)rounds * (uint64_t)packets), msg_size, BUDGET);
    printf("  raw recvmmsg loop : median %12.0f msgs/s (every message straight to the consumer's "
           "function)\n",
           mr);
    printf("  raw + SO_TIMESTAMPNS: median %10.0f msgs/s (%.3f of raw: the kernel's timestamp "
           "cost; each message gets its timestamp)\n",
           mt, mt / mr);
    printf("  libmdfeed sub     : median %12.0f msgs/s (receive + timestamps + validation + "
           "arbitration + in-order delivery)\n",
           ms);
    printf("  ratio sub/(raw + timestamps): %.3f (equal work; target >= 0.80); sub/raw without "
           "timestamps %.3f\n",
           ratio, ms / mr);
    printf("  for reference     : a loop that only reads each header's count: median %.0f "
           "msgs/s; sub/that %.3f\n",
           mc, ms / mc);
    printf("{\"bench\":\"consumer\",\"rounds\":%d,\"packets\":%d,\"msg_size\":%d,"
           "\"raw_msgs_per_s\":%.0f,\"raw_ts_msgs_per_s\":%.0f,\"sub_msgs_per_s\":%.0f,"
           "\"count_only_msgs_per_s\":%.0f,\"ratio\":%.4f,\"ratio_vs_raw_no_ts\":%.4f}\n",
           rounds, packets, msg_size, mr, mt, ms, mc, ratio, ms / mr);
    mdfeed_sub_free(sub);
    close(raw->fd);
    close(raw_ts->fd);
    close(raw_count->fd);
    free(raw_count);
    free(count_rate);
    close(tx);
    free(raw);
    free(raw_ts);
    free(rawts_rate);
    free(raw_rate);
    free(sub_rate);
    free(pkt);
    free(pkt_len);
    return 0;
}
