/* agent-it: the actors of the agent integration test (test_agent_it.sh).
 *   agent-it send  GROUP:PORT COUNT RATE        multicast COUNT numbered datagrams on lo
 *   agent-it read  SOCKET GROUP:PORT COUNT SECS  read through the agent; JSON summary
 *   agent-it hostile SOCKET KIND SECS            garbage | noread | flood | churn
 * Every loop is bounded in count and time. */
#include "agent_source.h"

#include "../../../feedhandler/agent/agent_wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmd_send(const char *group, uint64_t count, double rate)
{
    uint32_t addr;
    uint16_t port;
    if (mdfeed_addr_parse(group, &addr, &port))
        return 2;
    int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
    struct ip_mreqn m = {.imr_ifindex = (int)if_nametoindex("lo")};
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof(m)) < 0 ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof(one)) < 0)
        return 1;
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(addr)};
    uint64_t t0 = now_ns();
    uint8_t buf[256];
    for (uint64_t n = 0; n < count; n++) {
        uint64_t due = t0 + (uint64_t)((double)n * 1e9 / rate);
        while (now_ns() < due)
            usleep(200);
        memcpy(buf, &n, 8);
        memset(buf + 8, (int)(n & 0xff), sizeof(buf) - 8);
        size_t len = 8 + n % 200;
        if (sendto(fd, buf, len, 0, (struct sockaddr *)&sa, sizeof(sa)) != (ssize_t)len)
            return 1;
    }
    return 0;
}

static int cmd_read(const char *path, const char *group, uint64_t count, int secs)
{
    mdfeed_agent_source_config_t c = {.socket_path = path, .group_a = group, .name = "it-reader"};
    mdfeed_agent_source_t *s;
    if (mdfeed_agent_source_new(&s, &c) || mdfeed_agent_source_wait_ready(s, 5000)) {
        fprintf(stderr, "agent-it read: not subscribed\n");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    uint8_t bufs[64][256];
    mdfeed_agent_datagram_t d[64];
    uint64_t got = 0, next = 0, bad = 0, gaps = 0, last = 0;
    uint64_t deadline = now_ns() + (uint64_t)secs * 1000000000u;
    bool first = true;
    while (now_ns() < deadline && (first || last + 1 < count)) {
        struct pollfd p = {.fd = mdfeed_agent_source_fd(s), .events = POLLIN};
        poll(&p, 1, 100);
        for (int i = 0; i < 64; i++)
            d[i] = (mdfeed_agent_datagram_t){.buf = bufs[i], .cap = sizeof(bufs[i])};
        int n = mdfeed_agent_source_recv(s, d, 64);
        for (int i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, d[i].buf, 8);
            if (d[i].len != 8 + v % 200 ||
                (d[i].len > 8 && d[i].buf[d[i].len - 1] != (uint8_t)(v & 0xff)))
                bad++;
            if (!first && v != next)
                gaps++;
            first = false;
            next = v + 1;
            last = v;
            got++;
        }
    }
    mdfeed_agent_source_stats_t st;
    mdfeed_agent_source_stats(s, &st);
    printf("{\"received\":%llu,\"last\":%llu,\"gaps\":%llu,\"corrupt\":%llu,\"laps\":%llu,"
           "\"lapped\":%llu,\"disconnects\":%llu}\n",
           (unsigned long long)got, (unsigned long long)last, (unsigned long long)gaps,
           (unsigned long long)bad, (unsigned long long)st.laps, (unsigned long long)st.lapped,
           (unsigned long long)st.disconnects);
    mdfeed_agent_source_free(s);
    return 0;
}

static int dial(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_msg(int fd, unsigned type, const void *body)
{
    uint8_t buf[256];
    size_t len = agent_msg_encode(buf, sizeof(buf), type, 1, body, NULL, 0);
    (void)!send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void hello_and_subscribe(int fd, int mode)
{
    agent_hello_t h = {.min_version = 1, .max_version = 1};
    send_msg(fd, AGENT_MSG_HELLO, &h);
    agent_sub_t sub = {.port = 33001, .mode = (uint8_t)mode};
    inet_pton(AF_INET, "239.3.0.1", &sub.group);
    send_msg(fd, AGENT_MSG_SUBSCRIBE, &sub);
}

/* Hostile clients: each kind until `secs` pass. */
static int cmd_hostile(const char *path, const char *kind, int secs)
{
    uint64_t deadline = now_ns() + (uint64_t)secs * 1000000000u;
    unsigned rounds = 0;
    uint32_t rng = 12345;
    while (now_ns() < deadline && rounds < 100000) {
        rounds++;
        if (!strcmp(kind, "churn")) { /* 200 clients connect, subscribe, leave; again */
            int fds[200];
            for (int i = 0; i < 200; i++)
                if ((fds[i] = dial(path)) >= 0)
                    hello_and_subscribe(fds[i], AGENT_MODE_SHM);
            usleep(20000);
            for (int i = 0; i < 200; i++)
                if (fds[i] >= 0)
                    close(fds[i]);
        } else if (!strcmp(kind, "garbage")) { /* random bytes, some with a valid header */
            int fd = dial(path);
            uint8_t buf[128];
            for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t)((rng = rng * 1103515245u + 12345u) >> 16);
            if (rounds % 2) {
                agent_msg_hdr_t h = {AGENT_PROTO_MAGIC, 1, (uint16_t)(rounds % 9), 128, 0};
                memcpy(buf, &h, sizeof(h));
            }
            if (fd >= 0) {
                (void)!send(fd, buf, 1 + rng % sizeof(buf), MSG_NOSIGNAL);
                usleep(5000);
                close(fd);
            }
        } else if (!strcmp(kind, "flood")) { /* keepalives far over the request budget */
            int fd = dial(path);
            agent_hello_t h = {.min_version = 1, .max_version = 1};
            if (fd >= 0) {
                send_msg(fd, AGENT_MSG_HELLO, &h);
                agent_keepalive_t k = {0};
                for (int i = 0; i < 1000; i++)
                    send_msg(fd, AGENT_MSG_KEEPALIVE, &k);
                usleep(50000);
                close(fd);
            }
        } else if (!strcmp(kind, "noread")) { /* datagram mode, never reads a byte */
            int fd = dial(path);
            if (fd >= 0)
                hello_and_subscribe(fd, AGENT_MODE_DGRAM);
            /* The group it asked for is the test's feed group: see test_agent_it.sh. */
            while (now_ns() < deadline)
                usleep(100000);
            if (fd >= 0)
                close(fd);
        } else {
            return 2;
        }
    }
    printf("%s rounds %u\n", kind, rounds);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 5 && !strcmp(argv[1], "send"))
        return cmd_send(argv[2], strtoull(argv[3], NULL, 10), atof(argv[4]));
    if (argc == 6 && !strcmp(argv[1], "read"))
        return cmd_read(argv[2], argv[3], strtoull(argv[4], NULL, 10), atoi(argv[5]));
    if (argc == 5 && !strcmp(argv[1], "hostile"))
        return cmd_hostile(argv[2], argv[3], atoi(argv[4]));
    fprintf(stderr, "usage: agent-it send|read|hostile ...\n");
    return 2;
}
