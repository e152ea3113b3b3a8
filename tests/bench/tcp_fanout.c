/* tcp_fanout: the unicast alternative to multicast, for the fan-out comparison.
 *
 * Waits for --consumers N TCP connections on --serve, then accepts one publisher on --feed and
 * writes every complete SoupBinTCP frame it reads to all N consumers, in order, with the same
 * natural batching as the gateway (whatever one read returned goes out in one write per
 * consumer). A slow consumer slows everyone: that is the cost TCP fan-out pays. Ends when the
 * publisher closes (then closes every consumer) or at --timeout seconds. With --json prints one
 * JSON object: messages, bytes in and out, and its own CPU time (getrusage). */
#include "bench_common.h"

#include <fcntl.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONSUMERS 256
#define RBUF          (256 * 1024)

typedef struct {
    struct sockaddr_in feed;
    struct sockaddr_in serve;
    unsigned consumers;
    double timeout_s;
    const char *ready_file;
    bool json;
} options_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: tcp_fanout --feed ADDR:PORT --serve ADDR:PORT --consumers N\n"
               "                  [--timeout S] [--ready-file PATH] [--json]\n");
}

static int parse_options(int argc, char **argv, options_t *o)
{
    static const struct option longopts[] = {{"feed", required_argument, NULL, 'f'},
                                             {"serve", required_argument, NULL, 's'},
                                             {"consumers", required_argument, NULL, 'n'},
                                             {"timeout", required_argument, NULL, 't'},
                                             {"ready-file", required_argument, NULL, 'r'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    *o = (options_t){.timeout_s = 60};
    bool have_feed = false, have_serve = false;
    uint64_t v = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
        case 's':
            if (bench_parse_addr(optarg, c == 'f' ? &o->feed : &o->serve) != 0) {
                fprintf(stderr, "tcp_fanout: '%s' is not a.b.c.d:port\n", optarg);
                return -1;
            }
            *(c == 'f' ? &have_feed : &have_serve) = true;
            break;
        case 'n':
            if (bench_parse_u64(optarg, &v) != 0 || v == 0 || v > MAX_CONSUMERS) {
                fprintf(stderr, "tcp_fanout: --consumers must be 1..%d\n", MAX_CONSUMERS);
                return -1;
            }
            o->consumers = (unsigned)v;
            break;
        case 't':
            if (bench_parse_seconds(optarg, &o->timeout_s) != 0) {
                fprintf(stderr, "tcp_fanout: --timeout: '%s' is not 0 < s <= 3600\n", optarg);
                return -1;
            }
            break;
        case 'r':
            o->ready_file = optarg;
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
    if (!have_feed || !have_serve || o->consumers == 0) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static int listen_on(const struct sockaddr_in *addr, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0 || listen(fd, backlog) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Accepts one connection, waiting at most until `deadline`. */
static int accept_until(int lfd, uint64_t deadline)
{
    while (bench_now_ns() < deadline) {
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        int rc = poll(&pfd, 1, 100);
        if (rc < 0 && errno != EINTR)
            return -errno;
        if (rc <= 0)
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            int one = 1;
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            return fd;
        }
        if (errno != EINTR && errno != ECONNABORTED)
            return -errno;
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

/* Length of the complete frames at the front of `buf`; counts them into `*frames`. */
static size_t complete_frames(const uint8_t *buf, size_t n, uint64_t *frames)
{
    size_t pos = 0;
    while (pos + 2 <= n) {
        size_t flen = ((size_t)buf[pos] << 8) | buf[pos + 1];
        if (pos + 2 + flen > n)
            break;
        pos += 2 + flen;
        (*frames)++;
    }
    return pos;
}

typedef struct {
    uint64_t messages, bytes_in, bytes_out, writes;
    double seconds;
} result_t;

static int relay(int pub, const int *cons, unsigned n, uint64_t deadline, result_t *r)
{
    static uint8_t buf[RBUF];
    size_t have = 0;
    uint64_t start = 0;
    for (;;) {
        struct pollfd pfd = {.fd = pub, .events = POLLIN};
        int prc = poll(&pfd, 1, 100);
        if (bench_now_ns() >= deadline)
            return -ETIMEDOUT;
        if (prc < 0 && errno != EINTR)
            return -errno;
        if (prc <= 0)
            continue;
        ssize_t got = read(pub, buf + have, sizeof(buf) - have);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (got == 0)
            break;
        if (start == 0)
            start = bench_now_ns();
        have += (size_t)got;
        r->bytes_in += (uint64_t)got;
        size_t ready = complete_frames(buf, have, &r->messages);
        if (ready == 0 && have == sizeof(buf))
            return -EPROTO; /* a frame larger than the buffer: not a SoupBinTCP stream */
        for (unsigned i = 0; i < n && ready > 0; i++) {
            int rc = write_all(cons[i], buf, ready);
            if (rc != 0)
                return rc;
            r->bytes_out += ready;
            r->writes++;
        }
        memmove(buf, buf + ready, have - ready);
        have -= ready;
    }
    r->seconds = start ? (double)(bench_now_ns() - start) / 1e9 : 0;
    return 0;
}

int main(int argc, char **argv)
{
    options_t o;
    if (parse_options(argc, argv, &o) != 0)
        return 2;
    static int cons[MAX_CONSUMERS];
    unsigned ncons = 0;
    int feed_fd = -1, serve_fd = -1, pub = -1, rc = 0;
    uint64_t deadline = bench_now_ns() + (uint64_t)(o.timeout_s * 1e9);
    result_t r = {0};
    if ((serve_fd = listen_on(&o.serve, (int)o.consumers)) < 0 ||
        (feed_fd = listen_on(&o.feed, 4)) < 0) {
        rc = serve_fd < 0 ? serve_fd : feed_fd;
        fprintf(stderr, "tcp_fanout: listen: %s\n", strerror(-rc));
        goto out;
    }
    if (o.ready_file != NULL) {
        int rfd = open(o.ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (rfd >= 0)
            close(rfd);
    }
    for (; ncons < o.consumers; ncons++) {
        int fd = accept_until(serve_fd, deadline);
        if (fd < 0) {
            rc = fd;
            fprintf(stderr, "tcp_fanout: consumer %u: %s\n", ncons + 1, strerror(-rc));
            goto out;
        }
        int sndbuf = 8 << 20;
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
        cons[ncons] = fd;
    }
    if ((pub = accept_until(feed_fd, deadline)) < 0) {
        rc = pub;
        fprintf(stderr, "tcp_fanout: publisher: %s\n", strerror(-rc));
        goto out;
    }
    rc = relay(pub, cons, ncons, deadline, &r);
    if (rc != 0)
        fprintf(stderr, "tcp_fanout: relay: %s\n", strerror(-rc));
out:
    for (unsigned i = 0; i < ncons; i++)
        close(cons[i]);
    if (pub >= 0)
        close(pub);
    if (feed_fd >= 0)
        close(feed_fd);
    if (serve_fd >= 0)
        close(serve_fd);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    fprintf(stderr,
            "tcp_fanout: %" PRIu64 " messages to %u consumers, %" PRIu64 " bytes out, cpu %.3f s\n",
            r.messages, ncons, r.bytes_out, cpu);
    if (o.json)
        printf("{\"tool\": \"tcp_fanout\", \"consumers\": %u, \"messages\": %" PRIu64
               ", \"bytes_in\": %" PRIu64 ", \"bytes_out\": %" PRIu64 ", \"writes\": %" PRIu64
               ", \"seconds\": %.6f, \"cpu_s\": %.6f, \"error\": %s}\n",
               ncons, r.messages, r.bytes_in, r.bytes_out, r.writes, r.seconds, cpu,
               rc != 0 ? "true" : "false");
    return rc != 0 ? 1 : 0;
}
