/* bench_pub: the one publisher of every TCP-fed benchmark (gateway, socat relay, TCP fan-out),
 * so the systems compared get byte-identical input.
 *
 * Connects over TCP, optionally logs in with SoupBinTCP (--login USER:PASS, for the gateway),
 * then writes --count benchmark messages (bench_common.h) of --size bytes, each one SoupBinTCP
 * unsequenced data packet, stamped when written. Full speed by default; --rate paces them:
 * every wake-up writes the messages due by then in one write(). Stops after --count messages or
 * --duration seconds. With --json prints one JSON object on stdout. */
#include "bench_common.h"

#include "mdfeed/soupbintcp.h"

#include <getopt.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define WBUF (64 * 1024)

typedef struct {
    struct sockaddr_in addr;
    const char *user;
    const char *password;
    uint64_t count;
    uint64_t rate;
    size_t size;
    double duration_s;
    uint8_t id;
    bool json;
} options_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_pub --connect HOST:PORT --count N [--login USER:PASS] [--rate R]\n"
               "                 [--size BYTES] [--id N] [--duration S] [--json]\n");
}

static int parse_options(int argc, char **argv, options_t *o)
{
    static const struct option longopts[] = {
        {"connect", required_argument, NULL, 'c'},  {"login", required_argument, NULL, 'l'},
        {"count", required_argument, NULL, 'n'},    {"rate", required_argument, NULL, 'r'},
        {"size", required_argument, NULL, 's'},     {"id", required_argument, NULL, 'i'},
        {"duration", required_argument, NULL, 'd'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    static char login[64];
    *o = (options_t){.size = 40, .duration_s = 30};
    bool have_addr = false;
    uint64_t v = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (bench_parse_addr(optarg, &o->addr) != 0) {
                fprintf(stderr, "bench_pub: --connect: '%s' is not a.b.c.d:port\n", optarg);
                return -1;
            }
            have_addr = true;
            break;
        case 'l': {
            char *colon;
            if (strlen(optarg) >= sizeof(login) ||
                (colon = strchr(strcpy(login, optarg), ':')) == NULL) {
                fprintf(stderr, "bench_pub: --login: '%s' is not USER:PASS\n", optarg);
                return -1;
            }
            *colon = '\0';
            o->user = login;
            o->password = colon + 1;
            break;
        }
        case 'd':
            if (bench_parse_seconds(optarg, &o->duration_s) != 0) {
                fprintf(stderr, "bench_pub: --duration: '%s' is not 0 < s <= 3600\n", optarg);
                return -1;
            }
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'n':
        case 'r':
        case 's':
        case 'i':
            if (bench_parse_u64(optarg, &v) != 0) {
                fprintf(stderr, "bench_pub: '%s' is not a number\n", optarg);
                return -1;
            }
            if (c == 'n')
                o->count = v;
            else if (c == 'r')
                o->rate = v;
            else if (c == 's')
                o->size = (size_t)v;
            else
                o->id = (uint8_t)v;
            break;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (!have_addr || o->count == 0) {
        usage(stderr);
        return -1;
    }
    if (o->size < BENCH_MSG_MIN || o->size > 8192) {
        fprintf(stderr, "bench_pub: --size must be %d..8192\n", BENCH_MSG_MIN);
        return -1;
    }
    return 0;
}

static int connect_to(const options_t *o)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (const struct sockaddr *)&o->addr, sizeof(o->addr)) == 0) {
            int one = 1;
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            return fd;
        }
        int err = errno;
        close(fd);
        if (err != ECONNREFUSED)
            return -err;
        usleep(50000); /* the server may still be starting; 5 s at most */
    }
    return -ETIMEDOUT;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

typedef struct {
    bool accepted;
    bool rejected;
    char reason;
} login_state_t;

static int on_login_frame(void *data, char type, const uint8_t *payload, size_t len)
{
    login_state_t *st = data;
    if (type == MDFEED_SOUP_LOGIN_ACCEPTED) {
        st->accepted = true;
        return 1;
    }
    if (type == MDFEED_SOUP_LOGIN_REJECTED) {
        st->rejected = true;
        if (mdfeed_soup_decode_login_rejected(payload, len, &st->reason) != 0)
            st->reason = '?';
        return 1;
    }
    return 0; /* heartbeats and debug packets before the answer */
}

/* Logs in and waits (at most 5 s) for Login Accepted. */
static int login(int fd, const options_t *o)
{
    uint8_t buf[256];
    mdfeed_soup_login_t req = {0};
    snprintf(req.username, sizeof(req.username), "%s", o->user);
    snprintf(req.password, sizeof(req.password), "%s", o->password);
    int n = mdfeed_soup_encode_login_request(buf, sizeof(buf), &req);
    if (n < 0 || write_all(fd, buf, (size_t)n) != 0)
        return -EIO;
    mdfeed_soup_parser_t parser = {0};
    if (mdfeed_soup_parser_init(&parser, 1024) != 0)
        return -ENOMEM;
    login_state_t st = {0};
    uint64_t deadline = bench_now_ns() + 5000000000u;
    int rc = -ETIMEDOUT;
    while (bench_now_ns() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r <= 0) {
            rc = -ECONNRESET;
            break;
        }
        (void)mdfeed_soup_parser_feed(&parser, buf, (size_t)r, on_login_frame, &st);
        if (st.accepted || st.rejected) {
            rc = st.accepted ? 0 : -EACCES;
            if (st.rejected)
                fprintf(stderr, "bench_pub: login rejected ('%c')\n", st.reason);
            break;
        }
    }
    mdfeed_soup_parser_close(&parser);
    return rc;
}

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u),
                          .tv_nsec = (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Reads and drops whatever the server sent (heartbeats) so its buffers never fill. */
static void drain(int fd)
{
    uint8_t buf[4096];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
    }
}

static int publish(int fd, const options_t *o, uint64_t *sent_out, double *secs_out)
{
    static uint8_t wbuf[WBUF];
    const size_t frame = MDFEED_SOUP_LEN_PREFIX + 1 + o->size;
    const uint64_t per_write = WBUF / frame;
    const uint64_t start = bench_now_ns();
    const uint64_t deadline = start + (uint64_t)(o->duration_s * 1e9);
    uint64_t sent = 0, writes = 0;
    int rc = 0;
    /* Frame headers and filler once; only the stamps change per message. */
    memset(wbuf, 'x', sizeof(wbuf));
    for (uint64_t i = 0; i < per_write; i++) {
        uint8_t *f = wbuf + i * frame;
        f[0] = (uint8_t)((o->size + 1) >> 8);
        f[1] = (uint8_t)(o->size + 1);
        f[2] = MDFEED_SOUP_UNSEQUENCED_DATA;
    }
    uint64_t now = start;
    while (sent < o->count && now < deadline) {
        uint64_t due = o->count - sent;
        if (o->rate != 0) {
            uint64_t target = (uint64_t)((double)(now - start) / 1e9 * (double)o->rate) + 1;
            if (target > o->count)
                target = o->count;
            due = target > sent ? target - sent : 0;
            if (due == 0) {
                sleep_until(start + (uint64_t)((double)sent * 1e9 / (double)o->rate));
                now = bench_now_ns();
                continue;
            }
        }
        if (due > per_write)
            due = per_write;
        uint64_t ts = bench_now_ns();
        for (uint64_t i = 0; i < due; i++)
            bench_msg_stamp(wbuf + i * frame + 3, ts, sent + i, o->id);
        if ((rc = write_all(fd, wbuf, (size_t)(due * frame))) != 0)
            break;
        sent += due;
        if ((++writes & 63) == 0)
            drain(fd);
        now = bench_now_ns();
    }
    *secs_out = (double)(bench_now_ns() - start) / 1e9;
    *sent_out = sent;
    return rc;
}

int main(int argc, char **argv)
{
    options_t o;
    if (parse_options(argc, argv, &o) != 0)
        return 2;
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    int fd = connect_to(&o);
    if (fd < 0) {
        fprintf(stderr, "bench_pub: connect: %s\n", strerror(-fd));
        return 1;
    }
    int rc = o.user != NULL ? login(fd, &o) : 0;
    if (rc != 0) {
        fprintf(stderr, "bench_pub: login: %s\n", strerror(-rc));
        close(fd);
        return 1;
    }
    uint64_t sent = 0;
    double secs = 0;
    rc = publish(fd, &o, &sent, &secs);
    if (rc == 0 && o.user != NULL) {
        uint8_t bye[8];
        int n = mdfeed_soup_encode(bye, sizeof(bye), MDFEED_SOUP_LOGOUT_REQUEST, NULL, 0);
        if (n > 0)
            (void)write_all(fd, bye, (size_t)n);
    }
    /* Half-close and wait (bounded) for the server to close, so nothing written is cut off by
     * a reset. */
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 20; i++) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        uint8_t buf[4096];
        if (poll(&pfd, 1, 100) > 0 && read(fd, buf, sizeof(buf)) <= 0)
            break;
    }
    close(fd);
    if (rc != 0)
        fprintf(stderr, "bench_pub: write: %s\n", strerror(-rc));
    double s = secs > 0 ? secs : 1e-9;
    fprintf(stderr, "bench_pub %u: %" PRIu64 " messages in %.3f s: %.0f msg/s\n", o.id, sent, secs,
            (double)sent / s);
    if (o.json)
        printf("{\"tool\": \"bench_pub\", \"id\": %u, \"messages\": %" PRIu64
               ", \"seconds\": %.6f, \"msgs_per_s\": %.1f, \"rate\": %" PRIu64 ", \"size\": %zu"
               ", \"error\": %s}\n",
               o.id, sent, secs, (double)sent / s, o.rate, o.size, rc != 0 ? "true" : "false");
    return rc != 0 ? 1 : 0;
}
