/* mdcast-agent: the node-local fan-out (docs/AGENT.md).
 *
 *   mdcast-agent --interface IF --socket PATH [--ring-bytes N] [--metrics ADDR:PORT]
 *                [--max-datagram N] [--max-clients N] [--rate R] [--log-level L]
 *
 * Owns the multicast interface, joins a group when the first local consumer asks for it and
 * leaves after the last, and writes every datagram into that group's shared-memory ring.
 * SIGTERM/SIGINT: exit 0 (consumers see the socket close and reconnect to the next agent). */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

int agent_log_level = AGENT_LOG_INFO;

void agent_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < agent_log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(stderr, "{\"ts\":%lld.%06ld,\"level\":\"%s\",%s}\n", (long long)ts.tv_sec,
            ts.tv_nsec / 1000, names[level], line);
}

uint64_t agent_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t agent_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int agent_watch(agent_t *a, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    return epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mdcast-agent --interface IF --socket PATH [--ring-bytes N]\n"
               "                    [--metrics ADDR:PORT] [--max-datagram N] [--max-clients N]\n"
               "                    [--rate REQ_PER_S] [--log-level debug|info|warn|error]\n");
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || v == 0)
        return -1;
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        v <<= 20, end++;
    if (*end || v > (1ull << 34))
        return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_args(agent_config_t *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"interface", required_argument, NULL, 'i'}, {"socket", required_argument, NULL, 's'},
        {"ring-bytes", required_argument, NULL, 'r'}, {"metrics", required_argument, NULL, 'm'},
        {"max-datagram", required_argument, NULL, 'd'},
        {"max-clients", required_argument, NULL, 'c'}, {"rate", required_argument, NULL, 'R'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    size_t v;
    int o;
    while ((o = getopt_long(argc, argv, "i:s:r:m:d:c:R:l:h", opts, NULL)) != -1) {
        switch (o) {
        case 'i': c->interface = optarg; break;
        case 's': c->socket_path = optarg; break;
        case 'm': c->metrics = optarg; break;
        case 'r':
            if (parse_size(optarg, &c->ring_bytes))
                return fprintf(stderr, "mdcast-agent: --ring-bytes: not a size: %s\n", optarg), 2;
            break;
        case 'd':
            if (parse_size(optarg, &v) || v < 20 || v > AGENT_MAX_DATAGRAM_MAX)
                return fprintf(stderr, "mdcast-agent: --max-datagram: 20..%u\n",
                               AGENT_MAX_DATAGRAM_MAX), 2;
            c->max_datagram = (uint32_t)v;
            break;
        case 'c':
            if (parse_size(optarg, &v) || v > 65536)
                return fprintf(stderr, "mdcast-agent: --max-clients: 1..65536\n"), 2;
            c->max_clients = (unsigned)v;
            break;
        case 'R':
            c->rate = strtod(optarg, NULL);
            if (!(c->rate >= 1.0 && c->rate <= 1e6))
                return fprintf(stderr, "mdcast-agent: --rate: 1..1000000\n"), 2;
            c->burst = 2 * c->rate;
            break;
        case 'l':
            agent_log_level = !strcmp(optarg, "debug") ? AGENT_LOG_DEBUG
                              : !strcmp(optarg, "warn") ? AGENT_LOG_WARN
                              : !strcmp(optarg, "error") ? AGENT_LOG_ERROR
                                                         : AGENT_LOG_INFO;
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (!c->interface || !c->socket_path || optind != argc) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* The interface by name or by one of its IPv4 addresses (like the subscriber's). */
static int resolve_interface(agent_t *a, const char *spec)
{
    struct in_addr want;
    if (inet_pton(AF_INET, spec, &want) != 1) {
        a->ifindex = (int)if_nametoindex(spec);
        snprintf(a->ifname, sizeof(a->ifname), "%s", spec);
        return a->ifindex > 0 && strlen(spec) < IFNAMSIZ ? 0 : -ENODEV;
    }
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) < 0)
        return -errno;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
            ((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr.s_addr != want.s_addr)
            continue;
        snprintf(a->ifname, sizeof(a->ifname), "%s", i->ifa_name);
        a->ifindex = (int)if_nametoindex(i->ifa_name);
        a->ifaddr = want;
        break;
    }
    freeifaddrs(ifs);
    return a->ifindex > 0 ? 0 : -ENODEV;
}

/* The TGW speaks IGMPv2 only: a v3 report would leave the node out of the group there. */
static void check_igmp_version(const agent_t *a)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/force_igmp_version", a->ifname);
    FILE *f = fopen(path, "r");
    int v = -1;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = -1;
        fclose(f);
    }
    if (v != 2)
        agent_log(AGENT_LOG_WARN,
                  "\"msg\":\"force_igmp_version is not 2 (an AWS TGW speaks IGMPv2 only)\","
                  "\"interface\":\"%s\",\"value\":%d",
                  a->ifname, v);
}

static int setup_loop(agent_t *a)
{
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    a->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (a->epfd < 0 || a->sigfd < 0 || a->tfd < 0)
        return -errno;
    struct itimerspec its = {.it_interval.tv_nsec = 100000000, .it_value.tv_nsec = 100000000};
    if (timerfd_settime(a->tfd, 0, &its, NULL) < 0)
        return -errno;
    int rc = agent_watch(a, a->sigfd, EPOLLIN, AGENT_TAG(TAG_SIGNAL, 0));
    return rc ? rc : agent_watch(a, a->tfd, EPOLLIN, AGENT_TAG(TAG_TIMER, 0));
}

static int setup(agent_t *a)
{
    a->groups = calloc(a->cfg.max_groups, sizeof(*a->groups));
    a->clients = calloc(a->cfg.max_clients, sizeof(*a->clients));
    a->iobuf = malloc(AGENT_MAX_MSG);
    if (!a->groups || !a->clients || !a->iobuf)
        return -ENOMEM;
    for (unsigned i = 0; i < a->cfg.max_groups; i++)
        a->groups[i].fd = -1;
    for (unsigned i = 0; i < a->cfg.max_clients; i++)
        a->clients[i].fd = -1;
    for (unsigned i = 0; i < AGENT_MAX_HTTP; i++)
        a->http[i].fd = -1;
    if (getrandom(&a->epoch, sizeof(a->epoch), GRND_NONBLOCK) != sizeof(a->epoch))
        a->epoch = agent_realtime_ns() ^ (uint64_t)getpid();
    a->start_ns = agent_now_ns();
    return setup_loop(a);
}

static void on_timer(agent_t *a)
{
    uint64_t n;
    if (read(a->tfd, &n, sizeof(n)) < 0)
        return;
    uint64_t now = agent_now_ns();
    agent_clients_tick(a, now);
    agent_http_tick(a, now);
}

/* Runs until SIGTERM/SIGINT. Returns the exit code. */
static int run(agent_t *a)
{
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(a->epfd, evs, 64, -1);
        if (n < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64, idx = tag >> 8;
            switch (tag & 0xff) {
            case TAG_SIGNAL: return 0;
            case TAG_TIMER: on_timer(a); break;
            case TAG_CONTROL: agent_control_accept(a); break;
            case TAG_CLIENT:
                if (a->clients[idx].fd >= 0)
                    agent_client_readable(a, &a->clients[idx]);
                break;
            case TAG_GROUP:
                if (a->groups[idx].used)
                    agent_group_receive(a, &a->groups[idx]);
                break;
            case TAG_HTTP_LISTEN: agent_http_accept(a); break;
            case TAG_HTTP:
                if (a->http[idx].fd >= 0)
                    agent_http_event(a, &a->http[idx], evs[i].events);
                break;
            }
        }
    }
}

static void teardown(agent_t *a)
{
    for (unsigned i = 0; a->clients && i < a->cfg.max_clients; i++)
        if (a->clients[i].fd >= 0)
            agent_client_drop(a, &a->clients[i], AGENT_DROP_TIMEOUT, "agent stopping");
    if (a->ctl_fd >= 0) {
        close(a->ctl_fd);
        unlink(a->cfg.socket_path);
    }
    free(a->groups);
    free(a->clients);
    free(a->iobuf);
}

int main(int argc, char **argv)
{
    agent_t a = {.epfd = -1, .sigfd = -1, .tfd = -1, .ctl_fd = -1, .http_fd = -1};
    a.cfg = (agent_config_t){.ring_bytes = AGENT_DEFAULT_RING_BYTES,
                             .max_datagram = AGENT_DEFAULT_MAX_DGRAM,
                             .max_clients = 256,
                             .max_groups = 64,
                             .rate = 50,
                             .burst = 100,
                             .rcvbuf = 8 << 20};
    int rc = parse_args(&a.cfg, argc, argv);
    if (rc)
        return rc;
    if ((rc = resolve_interface(&a, a.cfg.interface)) != 0) {
        agent_log(AGENT_LOG_ERROR, "\"msg\":\"no such interface\",\"interface\":\"%s\"",
                  a.cfg.interface);
        return 2;
    }
    if (agent_ring_slots_for(a.cfg.ring_bytes, a.cfg.max_datagram) < 2 * AGENT_RECV_BATCH) {
        agent_log(AGENT_LOG_ERROR, "\"msg\":\"--ring-bytes too small\",\"need_slots\":%u",
                  2 * AGENT_RECV_BATCH);
        return 2;
    }
    check_igmp_version(&a);
    if ((rc = setup(&a)) != 0 || (rc = agent_control_listen(&a, a.cfg.socket_path)) != 0 ||
        (a.cfg.metrics && (rc = agent_http_listen(&a, a.cfg.metrics)) != 0)) {
        agent_log(AGENT_LOG_ERROR, "\"msg\":\"start failed\",\"error\":\"%s\"", strerror(-rc));
        teardown(&a);
        return 1;
    }
    agent_log(AGENT_LOG_INFO,
              "\"msg\":\"listening\",\"socket\":\"%s\",\"interface\":\"%s\",\"ring_bytes\":%zu,"
              "\"slots\":%u",
              a.cfg.socket_path, a.ifname, a.cfg.ring_bytes,
              agent_ring_slots_for(a.cfg.ring_bytes, a.cfg.max_datagram));
    rc = run(&a);
    agent_log(AGENT_LOG_INFO, "\"msg\":\"stopping\"");
    teardown(&a);
    return rc;
}
