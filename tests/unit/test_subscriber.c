/* The subscriber end to end over real sockets: arbitration between lines A and B, gap
 * recovery through an in-process MoldUDP64 re-request server, loss declared when recovery is
 * impossible, reordering, duplicates, malformed packets, wrong session, end of session,
 * start from a sequence number, the hold bound, the IGMP warning and configuration errors;
 * session following (after end of session, after a fast restart, two live sessions, strict
 * mode) and fail-over between re-request servers.
 *
 * Runs in a network namespace of its own (unshare(CLONE_NEWNET), needs root): multicast goes
 * over that namespace's loopback with IP_MULTICAST_LOOP, the server listens on 127.0.0.1. */
#include "task.h"

#include "mdfeed/moldudp64.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#define MAXSEQ 4096

/* ---- the network ---------------------------------------------------------------------- */

static int lo_index;

static void enter_private_netns(void)
{
    SKIP_UNLESS_ROOT();
    if (unshare(CLONE_NEWNET) != 0)
        SKIP("unshare(CLONE_NEWNET) failed: %s (no namespace support here)", strerror(errno));
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT(fd >= 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    ASSERT_EQ(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    ASSERT_EQ(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
    close(fd);
    lo_index = (int)if_nametoindex("lo");
    ASSERT(lo_index > 0);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the sender and the re-request server ---------------------------------------------- */

typedef struct {
    int tx;                     /* multicast sender */
    struct sockaddr_in line[2]; /* groups of lines A and B */
    char session[10];
    int srv; /* re-request server socket on 127.0.0.1, -1 if none */
    uint16_t srv_port;
    bool srv_ignore;      /* server receives requests but never answers */
    uint64_t store_first; /* the server's ring holds [store_first, store_last] */
    uint64_t store_last;
    uint64_t requests; /* re-requests the server received */
    uint64_t foreign_requests; /* re-requests for another session than n->session */
} net_t;

static uint16_t next_port = 31000;

/* The content depends on the session's 5th character too, so that a message of one session
 * delivered as the same number of another is caught. */
static size_t msg_for(const char *session, uint64_t seq, uint8_t *out)
{
    mdfeed_put_be64(out, seq);
    size_t len = 9 + seq % 7;
    out[8] = (uint8_t)session[4];
    for (size_t i = 9; i < len; i++)
        out[i] = (uint8_t)('a' + i);
    return len;
}

static void net_init(net_t *n, const char *session, bool with_server)
{
    memset(n, 0, sizeof(*n));
    n->tx = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT(n->tx >= 0);
    struct ip_mreqn m = {.imr_ifindex = lo_index};
    ASSERT_EQ(setsockopt(n->tx, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof(m)), 0);
    int one = 1;
    ASSERT_EQ(setsockopt(n->tx, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof(one)), 0);
    for (int i = 0; i < 2; i++) {
        n->line[i].sin_family = AF_INET;
        n->line[i].sin_port = htons(next_port++);
        n->line[i].sin_addr.s_addr = htonl(0xEF010100u + (uint32_t)i + 1); /* 239.1.1.1/2 */
    }
    ASSERT_EQ(mdfeed_mold_session_set(n->session, session), 0);
    n->srv = -1;
    n->store_first = 1;
    n->store_last = MAXSEQ;
    if (with_server) {
        n->srv = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        ASSERT(n->srv >= 0);
        n->srv_port = next_port++;
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(n->srv_port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        ASSERT_EQ(bind(n->srv, (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
}

static void net_close(net_t *n)
{
    close(n->tx);
    if (n->srv >= 0)
        close(n->srv);
}

static void group_str(const net_t *n, int line, char *out, size_t cap)
{
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &n->line[line].sin_addr, a, sizeof(a));
    snprintf(out, cap, "%s:%u", a, ntohs(n->line[line].sin_port));
}

/* Builds a data packet carrying messages [seq, seq+count) into buf; returns its length. */
static size_t build_packet(const char *session, uint64_t seq, uint16_t count, uint8_t *buf,
                           size_t cap)
{
    mdfeed_mold_builder_t b;
    ASSERT_EQ(mdfeed_mold_builder_init(&b, buf, cap, session), 0);
    mdfeed_mold_builder_open(&b, seq);
    for (uint16_t i = 0; i < count; i++) {
        uint8_t m[16];
        size_t len = msg_for(session, seq + i, m);
        ASSERT_EQ(mdfeed_mold_builder_append(&b, m, len), 0);
    }
    return mdfeed_mold_builder_finish(&b);
}

static void send_raw(net_t *n, int line, const void *buf, size_t len)
{
    ASSERT_EQ(sendto(n->tx, buf, len, 0, (struct sockaddr *)&n->line[line], sizeof(n->line[0])),
              (ssize_t)len);
}

static void send_data(net_t *n, int line, uint64_t seq, uint16_t count)
{
    uint8_t buf[1500];
    size_t len = build_packet(n->session, seq, count, buf, sizeof(buf));
    send_raw(n, line, buf, len);
}

static void send_header(net_t *n, int line, uint64_t seq, uint16_t count)
{
    uint8_t buf[20];
    mdfeed_mold_header_encode(buf, n->session, seq, count);
    send_raw(n, line, buf, sizeof(buf));
}

/* Answers pending re-requests from the store, in packets of up to 20 messages. */
static void serve_requests(net_t *n)
{
    if (n->srv < 0)
        return;
    for (;;) {
        uint8_t req[64];
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t r = recvfrom(n->srv, req, sizeof(req), 0, (struct sockaddr *)&from, &fl);
        if (r < 0)
            return;
        mdfeed_mold_header_t h;
        ASSERT_EQ(mdfeed_mold_request_decode(req, (size_t)r, &h), 0);
        ASSERT(h.count > 0 && h.count <= 1000);
        if (memcmp(h.session, n->session, 10) != 0) { /* a gateway since restarted */
            n->foreign_requests++;
            continue;
        }
        n->requests++;
        if (n->srv_ignore)
            continue;
        uint64_t first = h.seq < n->store_first ? n->store_first : h.seq;
        uint64_t last = h.seq + h.count - 1;
        if (last > n->store_last)
            last = n->store_last;
        for (uint64_t s = first; s <= last; s += 20) {
            uint16_t k = (uint16_t)(last - s + 1 < 20 ? last - s + 1 : 20);
            uint8_t buf[1500];
            size_t len = build_packet(n->session, s, k, buf, sizeof(buf));
            ASSERT_EQ(sendto(n->srv, buf, len, 0, (struct sockaddr *)&from, fl), (ssize_t)len);
        }
    }
}

/* ---- the consumer side ------------------------------------------------------------------- */

typedef struct {
    uint64_t delivered[MAXSEQ + 1]; /* times each sequence number was delivered */
    uint64_t order_errors, content_errors, last_seq;
    uint64_t count;
    uint64_t gaps, gap_msgs, recovered_msgs, lost_msgs, loss_calls, heartbeats;
    mdfeed_loss_reason_t last_reason;
    uint64_t end_seq;
    bool ended;
    int warnings[5];
    uint64_t line_wins[3];
    uint64_t rx_ts_zero;
    char session[10]; /* whose content on_message expects */
    /* Session changes: deliveries of the sessions after the first go to after[]. */
    int epoch;
    uint64_t after[2][MAXSEQ + 1];
    uint64_t session_calls, session_first, session_at_ms;
    int session_reason;
    char old_session[11], new_session[11];
    uint64_t lost_by_reason[5];
} sink_t;

static void on_message(void *data, const mdfeed_msg_t *m)
{
    sink_t *s = data;
    uint8_t want[16];
    if (m->seq <= s->last_seq)
        s->order_errors++;
    s->last_seq = m->seq;
    size_t len = msg_for(s->session, m->seq, want);
    if (m->len != len || memcmp(m->data, want, len) != 0)
        s->content_errors++;
    uint64_t *d = s->epoch ? s->after[(s->epoch - 1) & 1] : s->delivered;
    if (m->seq <= MAXSEQ)
        d[m->seq]++;
    s->count++;
    s->line_wins[m->line]++;
    if (m->rx_ns == 0)
        s->rx_ts_zero++;
}

static void on_gap(void *data, uint64_t first, uint64_t count)
{
    sink_t *s = data;
    (void)first;
    s->gaps++;
    s->gap_msgs += count;
}

static void on_recovered(void *data, uint64_t first, uint64_t count)
{
    sink_t *s = data;
    (void)first;
    s->recovered_msgs += count;
}

static void on_loss(void *data, uint64_t first, uint64_t count, mdfeed_loss_reason_t reason)
{
    sink_t *s = data;
    /* A loss is reported in order, exactly where delivery stands. */
    if (first != s->last_seq + 1 && s->last_seq != 0)
        s->order_errors++;
    s->last_seq = first + count - 1;
    s->lost_msgs += count;
    s->loss_calls++;
    s->last_reason = reason;
    if (reason < 5)
        s->lost_by_reason[reason] += count;
}

static void on_session(void *data, const char *old_session, const char *new_session,
                       uint64_t first_seq, int reason)
{
    sink_t *s = data;
    s->session_calls++;
    s->session_first = first_seq;
    s->session_reason = reason;
    s->session_at_ms = now_ms();
    snprintf(s->old_session, sizeof(s->old_session), "%s", old_session);
    snprintf(s->new_session, sizeof(s->new_session), "%s", new_session);
    ASSERT_EQ(mdfeed_mold_session_set(s->session, new_session), 0);
    s->epoch++;
    s->last_seq = 0; /* the new session numbers from 1 */
}

static void on_heartbeat(void *data, uint64_t next, int line)
{
    sink_t *s = data;
    (void)next;
    (void)line;
    s->heartbeats++;
}

static void on_end(void *data, uint64_t next)
{
    sink_t *s = data;
    s->ended = true;
    s->end_seq = next;
}

static void on_warning(void *data, int code, const char *text)
{
    sink_t *s = data;
    (void)text;
    if (code > 0 && code < 5)
        s->warnings[code]++;
}

static const mdfeed_sub_callbacks_t callbacks = {.on_message = on_message,
                                                 .on_gap = on_gap,
                                                 .on_recovered = on_recovered,
                                                 .on_loss = on_loss,
                                                 .on_heartbeat = on_heartbeat,
                                                 .on_end = on_end,
                                                 .on_warning = on_warning,
                                                 .on_session = on_session};

typedef struct {
    net_t net;
    sink_t *sink;
    mdfeed_sub_t *sub;
    mdfeed_sub_config_t cfg;
    char ga[32], gb[32], rt[32];
} fixture_t;

/* Config with both lines and (optionally) the server; tweak `f->cfg` before fixture_open. */
static void fixture_init(fixture_t *f, const char *session, bool with_server)
{
    memset(f, 0, sizeof(*f));
    net_init(&f->net, session, with_server);
    f->sink = calloc(1, sizeof(*f->sink));
    ASSERT(f->sink);
    memcpy(f->sink->session, f->net.session, 10);
    mdfeed_sub_config_init(&f->cfg);
    group_str(&f->net, 0, f->ga, sizeof(f->ga));
    group_str(&f->net, 1, f->gb, sizeof(f->gb));
    f->cfg.group_a = f->ga;
    f->cfg.group_b = f->gb;
    f->cfg.interface = "lo";
    f->cfg.gap_timeout_ms = 20;
    f->cfg.request_timeout_ms = 20;
    if (with_server) {
        snprintf(f->rt, sizeof(f->rt), "127.0.0.1:%u", f->net.srv_port);
        f->cfg.retransmit = f->rt;
    }
}

static void fixture_open(fixture_t *f)
{
    mdfeed_sub_callbacks_t cbs = callbacks;
    cbs.data = f->sink;
    int rc = mdfeed_sub_new(&f->sub, &f->cfg, &cbs);
    if (rc)
        TEST_FAIL_("mdfeed_sub_new: %s", mdfeed_strerror(rc));
}

static void fixture_close(fixture_t *f)
{
    mdfeed_sub_free(f->sub);
    net_close(&f->net);
    free(f->sink);
}

/* Dispatches (serving re-requests) until `done` holds or `ms` pass; returns whether it held. */
static bool pump_until(fixture_t *f, bool (*done)(const fixture_t *), uint64_t want, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (now_ms() < end) {
        struct epoll_event ev;
        (void)epoll_wait(mdfeed_sub_fd(f->sub), &ev, 1, 2);
        int rc = mdfeed_sub_dispatch(f->sub);
        ASSERT(rc >= 0 || rc == MDFEED_EENDED);
        serve_requests(&f->net);
        if (done && done(f))
            return true;
        (void)want;
    }
    return done ? done(f) : true;
}

static uint64_t want_seq;
static bool reached(const fixture_t *f)
{
    return f->sink->last_seq >= want_seq;
}
static bool is_ended(const fixture_t *f)
{
    return f->sink->ended;
}

static void expect_all_once(const sink_t *s, uint64_t first, uint64_t last)
{
    for (uint64_t q = first; q <= last; q++)
        if (s->delivered[q] != 1)
            TEST_FAIL_("seq %" PRIu64 " delivered %" PRIu64 " times", q, s->delivered[q]);
    ASSERT_EQ(s->order_errors, 0);
    ASSERT_EQ(s->content_errors, 0);
}

/* ---- the tests ---------------------------------------------------------------------------- */

/* Line A only, line B only, and both with every packet on both lines. */
static void test_single_and_both_lines(void)
{
    for (int mode = 0; mode < 3; mode++) {
        fixture_t f;
        fixture_init(&f, "SESS1", false);
        fixture_open(&f);
        for (uint64_t seq = 1; seq <= 1000; seq += 10) {
            if (mode != 1)
                send_data(&f.net, 0, seq, 10);
            if (mode != 0)
                send_data(&f.net, 1, seq, 10);
        }
        want_seq = 1000;
        ASSERT(pump_until(&f, reached, 0, 3000));
        expect_all_once(f.sink, 1, 1000);
        mdfeed_sub_stats_t st;
        mdfeed_sub_stats(f.sub, &st);
        ASSERT_UEQ(st.messages, 1000);
        ASSERT_UEQ(st.gaps, 0);
        ASSERT_UEQ(st.lost, 0);
        ASSERT_UEQ(st.duplicates, mode == 2 ? 1000 : 0);
        ASSERT_UEQ(st.first_arrivals[0] + st.first_arrivals[1], 1000);
        if (mode == 0)
            ASSERT_UEQ(st.first_arrivals[0], 1000);
        if (mode == 1)
            ASSERT_UEQ(st.first_arrivals[1], 1000);
        ASSERT_EQ(f.sink->rx_ts_zero, 0); /* kernel receive timestamps on every message */
        fixture_close(&f);
    }
}

/* A drops every 4th packet, B every 4th with an offset of 2: together they carry everything,
 * so nothing is lost, no gap is reported, and each line wins where the other dropped. */
static void test_complementary_drops(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", false);
    fixture_open(&f);
    int pkt = 0;
    for (uint64_t seq = 1; seq <= 2000; seq += 5, pkt++) {
        if (pkt % 4 != 0)
            send_data(&f.net, 0, seq, 5);
        if (pkt % 4 != 2)
            send_data(&f.net, 1, seq, 5);
        if (pkt % 50 == 0) /* keep socket buffers small on a busy machine */
            pump_until(&f, NULL, 0, 1);
    }
    want_seq = 2000;
    ASSERT(pump_until(&f, reached, 0, 3000));
    expect_all_once(f.sink, 1, 2000);
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(f.sub, &st);
    ASSERT_UEQ(st.gaps, 0);
    ASSERT_UEQ(st.lost, 0);
    ASSERT_EQ(f.sink->gaps, 0);
    ASSERT(st.first_arrivals[1] >= 500); /* B filled every packet A dropped */
    ASSERT(st.first_arrivals[0] >= 1000);
    fixture_close(&f);
}

/* A gap neither line fills is re-requested and recovered; delivery stays in order. */
static void test_gap_recovery(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", true);
    f.cfg.group_b = NULL;
    fixture_open(&f);
    for (uint64_t seq = 1; seq <= 300; seq += 10)
        if (seq != 41 && seq != 51 && seq != 201)
            send_data(&f.net, 0, seq, 10);
    want_seq = 300;
    ASSERT(pump_until(&f, reached, 0, 3000));
    expect_all_once(f.sink, 1, 300);
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(f.sub, &st);
    ASSERT_UEQ(st.gaps, 2);
    ASSERT_UEQ(st.gap_messages, 30);
    ASSERT_UEQ(st.recovered, 30);
    ASSERT_UEQ(st.lost, 0);
    ASSERT_UEQ(st.first_arrivals[MDFEED_LINE_RETRANSMIT], 30);
    ASSERT_UEQ(f.sink->recovered_msgs, 30);
    ASSERT(f.net.requests >= 2);
    fixture_close(&f);
}

/* No server: the gap is declared lost after the gap timeout and delivery resumes. */
static void test_loss_without_server(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", false);
    f.cfg.group_b = NULL;
    fixture_open(&f);
    for (uint64_t seq = 1; seq <= 100; seq += 10)
        if (seq != 31)
            send_data(&f.net, 0, seq, 10);
    want_seq = 100;
    ASSERT(pump_until(&f, reached, 0, 3000));
    ASSERT_UEQ(f.sink->lost_msgs, 10);
    ASSERT_UEQ(f.sink->loss_calls, 1);
    ASSERT_EQ(f.sink->last_reason, MDFEED_LOSS_NO_SERVER);
    expect_all_once(f.sink, 1, 30);
    expect_all_once(f.sink, 41, 100);
    ASSERT_UEQ(f.sink->delivered[35], 0);
    ASSERT_UEQ(f.sink->count, 90);
    fixture_close(&f);
}

/* The server never answers: retries with backoff, then loss; then the server's ring has
 * moved on: the part it still holds is recovered, the older part is declared lost. */
static void test_loss_unrecoverable(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", true);
    f.cfg.group_b = NULL;
    f.cfg.request_retries = 3;
    f.net.srv_ignore = true;
    fixture_open(&f);
    for (uint64_t seq = 1; seq <= 60; seq += 10)
        if (seq != 21)
            send_data(&f.net, 0, seq, 10);
    want_seq = 60;
    uint64_t t0 = now_ms();
    ASSERT(pump_until(&f, reached, 0, 3000));
    ASSERT(now_ms() - t0 >= 20 + 20 + 40); /* gap timeout, then 20 ms and 40 ms of backoff */
    ASSERT_UEQ(f.net.requests, 3);
    ASSERT_UEQ(f.sink->lost_msgs, 10);
    ASSERT_EQ(f.sink->last_reason, MDFEED_LOSS_RETRIES);
    expect_all_once(f.sink, 31, 60);
    fixture_close(&f);

    fixture_init(&f, "SESS1", true);
    f.cfg.group_b = NULL;
    f.cfg.request_retries = 2;
    f.net.store_first = 15; /* messages 11..14 are gone from the server's ring */
    fixture_open(&f);
    for (uint64_t seq = 1; seq <= 40; seq += 10)
        if (seq != 11)
            send_data(&f.net, 0, seq, 10);
    want_seq = 40;
    ASSERT(pump_until(&f, reached, 0, 3000));
    ASSERT_UEQ(f.sink->lost_msgs, 4);
    expect_all_once(f.sink, 15, 40);
    ASSERT_UEQ(f.sink->delivered[11], 0);
    fixture_close(&f);
}

/* Packets out of order are held and delivered in order, without a gap being reported. */
static void test_reordering_and_duplicates(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", false);
    f.cfg.group_b = NULL;
    f.cfg.gap_timeout_ms = 200;
    fixture_open(&f);
    static const uint64_t order[] = {1, 21, 11, 41, 31, 31, 1, 51, 51, 11};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        send_data(&f.net, 0, order[i], 10);
    /* Packets that overlap what was delivered and what is held: only the new part counts. */
    send_data(&f.net, 0, 71, 10);
    send_data(&f.net, 0, 55, 10); /* 55..60 delivered already, 61..64 new */
    send_data(&f.net, 0, 63, 10); /* 63..64 just delivered, 65..70 new, 71..72 held */
    want_seq = 80;
    ASSERT(pump_until(&f, reached, 0, 1000));
    expect_all_once(f.sink, 1, 80);
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(f.sub, &st);
    ASSERT_UEQ(st.duplicates, 40 + 6 + 2 + 2);
    ASSERT_UEQ(st.gaps, 0);
    ASSERT_UEQ(st.held, 0);
    fixture_close(&f);
}

/* Truncated, malformed and foreign packets are counted and never delivered. */
static void test_malformed_and_wrong_session(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", false);
    f.cfg.group_b = NULL;
    f.cfg.session = "SESS1";
    f.cfg.max_datagram = 1000;
    fixture_open(&f);
    uint8_t buf[1500];
    send_data(&f.net, 0, 1, 5);
    size_t len = build_packet(f.net.session, 6, 5, buf, sizeof(buf));
    send_raw(&f.net, 0, buf, len - 3); /* last block cut short */
    send_raw(&f.net, 0, buf, 7);       /* shorter than a header */
    buf[19] = 9;                       /* count says 9, 5 blocks follow */
    send_raw(&f.net, 0, buf, len);
    mdfeed_mold_header_encode(buf, f.net.session, 6, MDFEED_MOLD_COUNT_END);
    buf[20] = 'x'; /* end of session with a payload */
    send_raw(&f.net, 0, buf, 21);
    memset(buf + 20, 0, 1400); /* a datagram larger than max_datagram: truncated */
    mdfeed_mold_header_encode(buf, f.net.session, 6, 1);
    mdfeed_put_be16(buf + 20, 1300);
    send_raw(&f.net, 0, buf, 1322);
    char other[10];
    ASSERT_EQ(mdfeed_mold_session_set(other, "OTHER"), 0);
    len = build_packet(other, 6, 5, buf, sizeof(buf));
    send_raw(&f.net, 0, buf, len);
    send_data(&f.net, 0, 6, 5);
    want_seq = 10;
    ASSERT(pump_until(&f, reached, 0, 1000));
    pump_until(&f, NULL, 0, 30);
    expect_all_once(f.sink, 1, 10);
    ASSERT_UEQ(f.sink->count, 10);
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(f.sub, &st);
    ASSERT_UEQ(st.malformed, 5);
    ASSERT_UEQ(st.wrong_session, 1);
    ASSERT_UEQ(st.gaps, 0);
    ASSERT_UEQ(st.lost, 0);
    fixture_close(&f);
}

/* The in-order fast path validates blocks on its own: it must accept exactly what
 * mdfeed_mold_decode() accepts. 300 in-order packets, most mutated (a block length changed,
 * bytes cut or appended, the count off by one, an empty message appended), each judged by the
 * decoder here; the
 * subscriber must count exactly the rejected ones as malformed and deliver exactly the
 * accepted ones' messages, in order. */
static void test_fast_path_matches_decoder(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", false);
    f.cfg.group_b = NULL;
    f.cfg.gap_timeout_ms = 5000; /* no packet is lost here, so no gap may be reported */
    fixture_open(&f);
    uint64_t seq = 1, rng = 0x9E3779B97F4A7C15u, want_msgs = 0, want_malformed = 0;
    uint8_t buf[1500];
    for (int i = 0; i < 300; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        uint16_t count = (uint16_t)(1 + rng % 8);
        size_t len = build_packet(f.net.session, seq, count, buf, sizeof(buf) - 8);
        size_t blk = 20; /* offset of a block chosen below */
        for (uint64_t k = (rng >> 8) % count; k > 0; k--)
            blk += 2 + mdfeed_get_be16(buf + blk);
        switch (i < 1 ? 0 : (rng >> 16) % 8) {
        case 1:
            buf[blk + 1] = (uint8_t)(buf[blk + 1] + 1 + (rng >> 24) % 3);
            break;
        case 2:
            buf[blk + 1] = (uint8_t)(buf[blk + 1] - 1);
            break;
        case 3:
            len -= 1 + (rng >> 24) % 3;
            break;
        case 4: /* 1 or 2 bytes left over: trailing garbage, or an empty block not counted */
            memset(buf + len, 0, 2), len += 1 + (rng >> 24) % 2;
            break;
        case 5:
            mdfeed_put_be16(buf + 18, (uint16_t)(count + 1));
            break;
        case 6:
            mdfeed_put_be16(buf + 18, (uint16_t)(count - 1));
            break;
        case 7: /* one more, empty, message: valid, its header ends the datagram */
            memset(buf + len, 0, 2), len += 2;
            mdfeed_put_be16(buf + 18, (uint16_t)(count + 1));
            break;
        default:
            break; /* valid */
        }
        mdfeed_mold_packet_t pkt;
        if (mdfeed_mold_decode(buf, len, &pkt) == 0 && pkt.kind == MDFEED_MOLD_DATA &&
            pkt.hdr.count > 0) {
            want_msgs += pkt.hdr.count;
            seq += pkt.hdr.count;
        } else {
            want_malformed++;
        }
        send_raw(&f.net, 0, buf, len);
        if (i % 50 == 49)
            pump_until(&f, NULL, 0, 5);
    }
    ASSERT(want_malformed > 50 && want_msgs > 100); /* both kinds were exercised */
    want_seq = seq - 1;
    ASSERT(pump_until(&f, reached, 0, 2000));
    pump_until(&f, NULL, 0, 30);
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(f.sub, &st);
    ASSERT_UEQ(st.malformed, want_malformed);
    ASSERT_UEQ(st.messages, want_msgs);
    ASSERT_UEQ(f.sink->count, want_msgs);
    ASSERT_UEQ(f.sink->last_seq, seq - 1);
    ASSERT_EQ(f.sink->order_errors, 0);
    ASSERT_UEQ(f.sink->rx_ts_zero, 0);
    ASSERT_UEQ(st.gaps, 0);
    ASSERT_UEQ(st.lost, 0);
    fixture_close(&f);
}

/* End of session: ends cleanly after the last message; a gap before it is settled first. */
static void test_end_of_session(void)
{
    for (int with_gap = 0; with_gap < 2; with_gap++) {
        fixture_t f;
        fixture_init(&f, "SESS1", false);
        f.cfg.group_b = NULL;
        fixture_open(&f);
        for (uint64_t seq = 1; seq <= 100; seq += 10)
            if (!with_gap || seq != 91)
                send_data(&f.net, 0, seq, 10);
        send_header(&f.net, 0, 101, 0);                     /* heartbeat */
        send_header(&f.net, 0, 101, MDFEED_MOLD_COUNT_END); /* end of session */
        send_data(&f.net, 0, 101, 10);                      /* after the end: ignored */
        ASSERT(pump_until(&f, is_ended, 0, 2000));
        ASSERT_UEQ(f.sink->end_seq, 101);
        ASSERT_EQ(mdfeed_sub_dispatch(f.sub), MDFEED_EENDED);
        ASSERT_EQ(mdfeed_sub_run(f.sub, 100), MDFEED_EENDED);
        ASSERT_UEQ(f.sink->count, with_gap ? 90 : 100);
        ASSERT_UEQ(f.sink->lost_msgs, with_gap ? 10 : 0);
        ASSERT_UEQ(f.sink->delivered[101], 0);
        ASSERT(f.sink->heartbeats >= 1);
        /* Packets after the end are drained and ignored: the fd does not stay readable. */
        mdfeed_sub_stats_t st;
        mdfeed_sub_stats(f.sub, &st);
        send_data(&f.net, 0, 111, 10);
        struct epoll_event ev;
        ASSERT_EQ(epoll_wait(mdfeed_sub_fd(f.sub), &ev, 1, 1000), 1);
        ASSERT_EQ(mdfeed_sub_dispatch(f.sub), MDFEED_EENDED);
        ASSERT_EQ(epoll_wait(mdfeed_sub_fd(f.sub), &ev, 1, 0), 0);
        uint64_t packets = st.packets;
        mdfeed_sub_stats(f.sub, &st);
        ASSERT_UEQ(st.packets, packets + 1);
        ASSERT_UEQ(f.sink->count, with_gap ? 90 : 100);
        fixture_close(&f);
    }
}

/* Start from sequence 1 while the live feed is at 151: 1..150 come from the server. A
 * heartbeat also reveals a gap at the tail. */
static void test_start_from_sequence(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", true);
    f.cfg.group_b = NULL;
    f.cfg.start_seq = 1;
    f.cfg.request_max_count = 50; /* 150 missing: three requests */
    fixture_open(&f);
    for (uint64_t seq = 151; seq <= 200; seq += 10)
        send_data(&f.net, 0, seq, 10);
    send_header(&f.net, 0, 221, 0); /* 201..220 were sent on a line we never saw */
    want_seq = 220;
    ASSERT(pump_until(&f, reached, 0, 3000));
    expect_all_once(f.sink, 1, 220);
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(f.sub, &st);
    ASSERT_UEQ(st.recovered, 170);
    ASSERT(f.net.requests >= 4);
    ASSERT_UEQ(st.lost, 0);
    fixture_close(&f);
}

/* A hold window of 16 messages facing a 10-message gap and 200 messages behind it: messages
 * beyond the window are dropped and re-requested, and everything arrives in order. */
static void test_hold_bound(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", true);
    f.cfg.group_b = NULL;
    f.cfg.max_held = 16;
    f.cfg.request_retries = 6;
    fixture_open(&f);
    for (uint64_t seq = 1; seq <= 220; seq += 10)
        if (seq != 11)
            send_data(&f.net, 0, seq, 10);
    want_seq = 220;
    ASSERT(pump_until(&f, reached, 0, 5000));
    expect_all_once(f.sink, 1, 220);
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(f.sub, &st);
    ASSERT(st.overflow_dropped > 0);
    ASSERT_UEQ(st.lost, 0);
    ASSERT_EQ(f.sink->warnings[MDFEED_WARN_OVERFLOW], 1);
    fixture_close(&f);

    /* Without a server nothing can fill the gap: it is given up as soon as the window is
     * full, and every message that did arrive is delivered. */
    fixture_init(&f, "SESS1", false);
    f.cfg.group_b = NULL;
    f.cfg.max_held = 16;
    f.cfg.gap_timeout_ms = 5000; /* far longer than the test: the bound acts, not the timer */
    fixture_open(&f);
    for (uint64_t seq = 1; seq <= 220; seq += 10)
        if (seq != 11)
            send_data(&f.net, 0, seq, 10);
    want_seq = 220;
    ASSERT(pump_until(&f, reached, 0, 2000));
    expect_all_once(f.sink, 1, 10);
    expect_all_once(f.sink, 21, 220);
    ASSERT_UEQ(f.sink->lost_msgs, 10);
    ASSERT_EQ(f.sink->last_reason, MDFEED_LOSS_HOLD_FULL);
    mdfeed_sub_stats(f.sub, &st);
    ASSERT_UEQ(st.overflow_dropped, 0);
    ASSERT_UEQ(st.held, 0);
    fixture_close(&f);
}

/* ---- session following ------------------------------------------------------------------ */

/* Makes `name` the sender's (and its re-request server's) session: the gateway restarted. */
static void net_restart(net_t *n, const char *name)
{
    ASSERT_EQ(mdfeed_mold_session_set(n->session, name), 0);
}

static uint64_t sink_sum(const uint64_t *d, uint64_t first, uint64_t last)
{
    uint64_t sum = 0;
    for (uint64_t q = first; q <= last; q++)
        sum += d[q];
    return sum;
}

static void expect_once(const uint64_t *d, uint64_t first, uint64_t last)
{
    for (uint64_t q = first; q <= last; q++)
        if (d[q] != 1)
            TEST_FAIL_("seq %" PRIu64 " delivered %" PRIu64 " times", q, d[q]);
}

static bool session_changed(const fixture_t *f)
{
    return f->sink->session_calls > 0;
}

/* A new session after end of session is followed at once, from sequence 1; the consumer
 * that missed its first packet recovers 1..10 from the (new) server. */
static void test_session_after_end(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", true);
    f.cfg.group_b = NULL;
    f.cfg.session_silence_ms = 5000; /* far longer than the test: the end, not silence, acts */
    fixture_open(&f);
    for (uint64_t seq = 1; seq <= 50; seq += 10)
        send_data(&f.net, 0, seq, 10);
    send_header(&f.net, 0, 51, MDFEED_MOLD_COUNT_END);
    ASSERT(pump_until(&f, is_ended, 0, 2000));
    ASSERT_EQ(mdfeed_sub_dispatch(f.sub), MDFEED_EENDED);
    send_data(&f.net, 0, 51, 10); /* the old session after its end: still ignored */
    pump_until(&f, NULL, 0, 20);
    net_restart(&f.net, "SESS2");
    uint64_t t0 = now_ms();
    for (uint64_t seq = 11; seq <= 40; seq += 10) /* 1..10 were sent before we listened */
        send_data(&f.net, 0, seq, 10);
    ASSERT(pump_until(&f, session_changed, 0, 2000));
    ASSERT(now_ms() - t0 < 1000);
    want_seq = 40;
    ASSERT(pump_until(&f, reached, 0, 3000));
    expect_once(f.sink->delivered, 1, 50);
    ASSERT_UEQ(f.sink->delivered[51], 0);
    expect_once(f.sink->after[0], 1, 40);
    ASSERT_EQ(f.sink->order_errors, 0);
    ASSERT_EQ(f.sink->content_errors, 0);
    ASSERT_UEQ(f.sink->session_calls, 1);
    ASSERT_EQ(f.sink->session_reason, MDFEED_SESSION_AFTER_END);
    ASSERT_UEQ(f.sink->session_first, 1);
    ASSERT_STR_EQ(f.sink->old_session, "SESS1");
    ASSERT_STR_EQ(f.sink->new_session, "SESS2");
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(f.sub, &st);
    ASSERT_UEQ(st.session_changes, 1);
    ASSERT_STR_EQ(st.session, "SESS2");
    ASSERT_UEQ(st.messages, 90);
    ASSERT_UEQ(st.recovered, 10);
    ASSERT_UEQ(st.lost, 0);
    ASSERT_UEQ(st.next_seq, 41);
    ASSERT(mdfeed_sub_dispatch(f.sub) >= 0); /* live again */
    fixture_close(&f);
}

/* The gateway is killed and a new one (new session) speaks within 50 ms: after the silence
 * the subscriber follows. What the old session held is delivered, what it still missed (a
 * gap whose re-requests the dead server never answered) is declared lost as session-change,
 * and the new session's first packets, buffered during the probation, come first in order;
 * its leading gap (1..4) is recovered from the new server. */
static void test_session_fast_restart(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", true);
    f.cfg.session_silence_ms = 300;
    f.cfg.request_timeout_ms = 400; /* the old gap stays requested until the switch */
    f.net.srv_ignore = true;
    fixture_open(&f);
    for (uint64_t seq = 1; seq <= 60; seq += 10)
        if (seq != 41)
            send_data(&f.net, seq % 20 ? 0 : 1, seq, 10);
    pump_until(&f, NULL, 0, 60); /* 41..50 reported and requested; 51..60 held */
    ASSERT_UEQ(f.sink->gap_msgs, 10);
    ASSERT_UEQ(f.sink->count, 40);
    /* Killed; the new process starts 50 ms later with a new session. */
    usleep(50 * 1000);
    net_restart(&f.net, "SESS2");
    f.net.srv_ignore = false;
    uint64_t t0 = now_ms();
    uint64_t seq = 5;
    while (!session_changed(&f) && now_ms() - t0 < 3000) {
        if (seq < 200) {
            send_data(&f.net, 0, seq, 5);
            send_data(&f.net, 1, seq, 5);
            seq += 5;
        }
        pump_until(&f, NULL, 0, 10);
    }
    ASSERT(session_changed(&f));
    ASSERT(f.sink->session_at_ms - t0 >= 300);
    ASSERT(f.sink->session_at_ms - t0 < 1500);
    ASSERT_EQ(f.sink->session_reason, MDFEED_SESSION_OLD_SILENT);
    for (int k = 0; k < 5; k++, seq += 5) {
        send_data(&f.net, 0, seq, 5);
        pump_until(&f, NULL, 0, 2);
    }
    want_seq = seq - 1;
    ASSERT(pump_until(&f, reached, 0, 3000));
    expect_once(f.sink->delivered, 1, 40);
    expect_once(f.sink->delivered, 51, 60);
    ASSERT_UEQ(sink_sum(f.sink->delivered, 41, 50), 0);
    ASSERT_UEQ(f.sink->lost_by_reason[MDFEED_LOSS_SESSION_CHANGE], 10);
    ASSERT_UEQ(f.sink->lost_msgs, 10);
    expect_once(f.sink->after[0], 1, seq - 1);
    ASSERT_EQ(f.sink->order_errors, 0);
    ASSERT_EQ(f.sink->content_errors, 0);
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(f.sub, &st);
    ASSERT_UEQ(st.session_changes, 1);
    ASSERT_UEQ(st.recovered, 4);
    ASSERT_UEQ(st.wrong_session, 0);
    ASSERT_UEQ(st.held, 0);
    ASSERT_EQ(f.sink->warnings[MDFEED_WARN_TWO_SESSIONS], 0);
    fixture_close(&f);
}

static void send_session(net_t *n, const char *name, int line, uint64_t seq, uint16_t count)
{
    char sess[10];
    ASSERT_EQ(mdfeed_mold_session_set(sess, name), 0);
    uint8_t buf[1500];
    size_t len = count ? build_packet(sess, seq, count, buf, sizeof(buf)) : 20;
    if (!count)
        mdfeed_mold_header_encode(buf, sess, seq, 0);
    send_raw(n, line, buf, len);
}

/* Two live gateways on one group: the current session keeps heartbeating (every 100 ms, the
 * silence is 300 ms) while another publishes: no switch, one warning, the other's datagrams
 * counted as wrong session. When the first one really stops, the other is followed; when the
 * first one comes back, it is the intruder now: no switch back. */
static void test_two_live_sessions(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", false);
    f.cfg.group_b = NULL;
    f.cfg.session_silence_ms = 300;
    fixture_open(&f);
    send_data(&f.net, 0, 1, 10);
    uint64_t t0 = now_ms(), other = 1, last_hb = 0;
    while (now_ms() - t0 < 1000) {
        if (now_ms() - last_hb >= 100) {
            send_header(&f.net, 0, 11, 0);
            last_hb = now_ms();
        }
        send_session(&f.net, "OTHER", 0, other, 2);
        other += 2;
        pump_until(&f, NULL, 0, 20);
    }
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(f.sub, &st);
    ASSERT_UEQ(st.session_changes, 0);
    ASSERT_STR_EQ(st.session, "SESS1");
    ASSERT_EQ(f.sink->warnings[MDFEED_WARN_TWO_SESSIONS], 1);
    ASSERT(st.wrong_session > 0);
    ASSERT_UEQ(f.sink->count, 10);

    /* SESS1 stops; OTHER goes on: followed after 300 ms of silence. */
    t0 = now_ms();
    while (!session_changed(&f) && now_ms() - t0 < 2000) {
        send_session(&f.net, "OTHER", 0, other, 2);
        other += 2;
        pump_until(&f, NULL, 0, 20);
    }
    ASSERT(session_changed(&f));
    ASSERT_STR_EQ(f.sink->new_session, "OTHER");
    /* SESS1 comes back beside the live OTHER: rejected, warned about once, no switch back. */
    t0 = now_ms();
    while (now_ms() - t0 < 800) {
        send_header(&f.net, 0, 11, 0);
        send_session(&f.net, "OTHER", 0, other, 2);
        other += 2;
        pump_until(&f, NULL, 0, 20);
    }
    mdfeed_sub_stats(f.sub, &st);
    ASSERT_UEQ(st.session_changes, 1);
    ASSERT_STR_EQ(st.session, "OTHER");
    ASSERT_EQ(f.sink->warnings[MDFEED_WARN_TWO_SESSIONS], 2);
    ASSERT_EQ(f.sink->order_errors, 0);
    ASSERT_EQ(f.sink->content_errors, 0);
    fixture_close(&f);
}

/* STRICT mode (and AUTO with a configured session) keeps the old behaviour: one session,
 * the others counted and ignored, the end is the end. */
static void test_strict_session(void)
{
    for (int mode = 0; mode < 2; mode++) {
        fixture_t f;
        fixture_init(&f, "SESS1", false);
        f.cfg.group_b = NULL;
        f.cfg.session_silence_ms = 100;
        if (mode == 0)
            f.cfg.session_mode = MDFEED_SESSION_STRICT;
        else
            f.cfg.session = "SESS1"; /* AUTO: strict because a session is named */
        fixture_open(&f);
        send_data(&f.net, 0, 1, 10);
        pump_until(&f, NULL, 0, 20);
        for (int i = 0; i < 20; i++) { /* SESS1 silent for 400 ms, SESS2 talking */
            send_session(&f.net, "SESS2", 0, 1 + 5 * (uint64_t)i, 5);
            pump_until(&f, NULL, 0, 20);
        }
        mdfeed_sub_stats_t st;
        mdfeed_sub_stats(f.sub, &st);
        ASSERT_UEQ(st.session_changes, 0);
        ASSERT_UEQ(st.wrong_session, 20);
        ASSERT_EQ(f.sink->warnings[MDFEED_WARN_TWO_SESSIONS], 0);
        send_header(&f.net, 0, 11, MDFEED_MOLD_COUNT_END);
        ASSERT(pump_until(&f, is_ended, 0, 2000));
        send_session(&f.net, "SESS2", 0, 101, 5);
        pump_until(&f, NULL, 0, 50);
        ASSERT_EQ(mdfeed_sub_dispatch(f.sub), MDFEED_EENDED);
        mdfeed_sub_stats(f.sub, &st);
        ASSERT_UEQ(st.session_changes, 0);
        ASSERT_UEQ(st.messages, 10);
        ASSERT_UEQ(f.sink->session_calls, 0);
        fixture_close(&f);
    }
}

/* Two re-request servers: the first never answers, so the request fails over to the second,
 * which does. An answer from an address that is no configured server is ignored. */
static void test_retransmit_failover(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", true); /* f.net.srv is the second, answering server */
    f.cfg.group_b = NULL;
    f.cfg.request_timeout_ms = 60;
    int silent = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int rogue = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT(silent >= 0 && rogue >= 0);
    uint16_t silent_port = next_port++;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(silent_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(bind(silent, (struct sockaddr *)&sa, sizeof(sa)), 0);
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(0x7f000002); /* 127.0.0.2: a host that is not a server */
    ASSERT_EQ(bind(rogue, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(f.rt, sizeof(f.rt), "127.0.0.1:%u,127.0.0.1:%u", silent_port, f.net.srv_port);
    fixture_open(&f);
    for (uint64_t seq = 1; seq <= 40; seq += 10)
        if (seq != 11)
            send_data(&f.net, 0, seq, 10);
    uint64_t t0 = now_ms(), silent_requests = 0;
    want_seq = 40;
    while (!reached(&f) && now_ms() - t0 < 3000) {
        pump_until(&f, NULL, 0, 2);
        uint8_t req[64];
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        if (recvfrom(silent, req, sizeof(req), 0, (struct sockaddr *)&from, &fl) == 20) {
            if (silent_requests++ == 0) { /* the rogue answers in its place */
                uint8_t buf[1500];
                size_t len = build_packet(f.net.session, 11, 10, buf, sizeof(buf));
                ASSERT_EQ(sendto(rogue, buf, len, 0, (struct sockaddr *)&from, fl), (ssize_t)len);
            }
        }
    }
    ASSERT(reached(&f));
    expect_all_once(f.sink, 1, 40);
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(f.sub, &st);
    ASSERT_UEQ(silent_requests, 1);
    ASSERT(f.net.requests >= 1);
    ASSERT_UEQ(st.retransmit_failovers, 1);
    ASSERT_UEQ(st.retransmit_ignored, 1);
    ASSERT_UEQ(st.recovered, 10);
    ASSERT_UEQ(st.lost, 0);
    close(silent);
    close(rogue);
    fixture_close(&f);
}

/* The namespace's lo has force_igmp_version 0, so the subscriber warns; bad configs fail. */
static void test_addr_parse(void)
{
    uint32_t a = 0;
    uint16_t port = 0;
    ASSERT_EQ(mdfeed_addr_parse("239.1.2.3:5000", &a, &port), 0);
    ASSERT_UEQ(a, 0xef010203u);
    ASSERT_UEQ(port, 5000);
    ASSERT_EQ(mdfeed_addr_parse("127.0.0.1:65535", &a, &port), 0);
    ASSERT_UEQ(port, 65535);
    static const char *const bad[] = {NULL,
                                      "",
                                      "239.1.2.3",
                                      "239.1.2.3:",
                                      ":5000",
                                      "239.1.2.3:0",
                                      "239.1.2.3:65536",
                                      "239.1.2.3:-1",
                                      "239.1.2.3:+5",
                                      "239.1.2.3: 5",
                                      "239.1.2.3:5x",
                                      "239.1.2:5",
                                      "host.example:5",
                                      "239.1.2.3:99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        a = 7;
        port = 7;
        ASSERT_EQ(mdfeed_addr_parse(bad[i], &a, &port), MDFEED_EBAD_ADDRESS);
        ASSERT_UEQ(a, 7); /* untouched on failure */
        ASSERT_UEQ(port, 7);
    }
}

static void test_warning_and_config_errors(void)
{
    fixture_t f;
    fixture_init(&f, "SESS1", false);
    fixture_open(&f);
    ASSERT_EQ(f.sink->warnings[MDFEED_WARN_IGMP_VERSION], 1);
    fixture_close(&f);

    mdfeed_sub_t *sub = NULL;
    mdfeed_sub_config_t c;
    mdfeed_sub_config_init(&c);
    c.interface = "lo";
    c.group_a = "198.18.0.1:5000";
    ASSERT_EQ(mdfeed_sub_new(&sub, &c, NULL), MDFEED_ENOT_MULTICAST);
    c.group_a = "239.1.1.1";
    ASSERT_EQ(mdfeed_sub_new(&sub, &c, NULL), MDFEED_EBAD_ADDRESS);
    c.group_a = "239.1.1.1:99999";
    ASSERT_EQ(mdfeed_sub_new(&sub, &c, NULL), MDFEED_EBAD_ADDRESS);
    c.group_a = "239.1.1.1:5000";
    c.interface = "nosuchif0";
    ASSERT_EQ(mdfeed_sub_new(&sub, &c, NULL), MDFEED_ENO_INTERFACE);
    c.interface = "198.18.99.99"; /* not an address of this host */
    ASSERT_EQ(mdfeed_sub_new(&sub, &c, NULL), MDFEED_ENO_INTERFACE);
    c.interface = "127.0.0.1"; /* by address: lo */
    c.session = "this session name is too long";
    ASSERT_EQ(mdfeed_sub_new(&sub, &c, NULL), MDFEED_EMOLD_BAD_SESSION);
    c.session = NULL;
    c.recv_batch = 5000;
    ASSERT_EQ(mdfeed_sub_new(&sub, &c, NULL), MDFEED_EBAD_CONFIG);
    c.recv_batch = 0;
    c.session_mode = (mdfeed_session_mode_t)7;
    ASSERT_EQ(mdfeed_sub_new(&sub, &c, NULL), MDFEED_EBAD_CONFIG);
    c.session_mode = MDFEED_SESSION_AUTO;
    c.retransmit = "127.0.0.1:5000,";
    ASSERT_EQ(mdfeed_sub_new(&sub, &c, NULL), MDFEED_EBAD_ADDRESS);
    c.retransmit = "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4,127.0.0.1:5,127.0.0.1:6,"
                   "127.0.0.1:7,127.0.0.1:8,127.0.0.1:9";
    ASSERT_EQ(mdfeed_sub_new(&sub, &c, NULL), MDFEED_EBAD_CONFIG);
    c.retransmit = NULL;
    ASSERT_EQ(mdfeed_sub_new(&sub, &c, NULL), 0);
    ASSERT(mdfeed_sub_fd(sub) >= 0);
    ASSERT_EQ(mdfeed_sub_run(sub, 30), MDFEED_ETIMEDOUT);
    mdfeed_sub_free(sub);
    mdfeed_sub_free(NULL);
}

int main(void)
{
    enter_private_netns();
    test_single_and_both_lines();
    test_complementary_drops();
    test_gap_recovery();
    test_loss_without_server();
    test_loss_unrecoverable();
    test_reordering_and_duplicates();
    test_malformed_and_wrong_session();
    test_fast_path_matches_decoder();
    test_end_of_session();
    test_start_from_sequence();
    test_hold_bound();
    test_session_after_end();
    test_session_fast_restart();
    test_two_live_sessions();
    test_strict_session();
    test_retransmit_failover();
    test_warning_and_config_errors();
    test_addr_parse();
    printf("test_subscriber: all passed\n");
    return 0;
}
