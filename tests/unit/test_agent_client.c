/* libmdfeed's agent source against a real mdcast-agent, in a network namespace of its own
 * (unshare(CLONE_NEWNET), needs root): multicast over that namespace's loopback with
 * IP_MULTICAST_LOOP, as tests/unit/test_subscriber.c does.
 *
 * Checks: lines A and B subscribed through one connection, every datagram once, in order,
 * intact, with its line and a kernel timestamp; the fd sleeps when idle and wakes on data;
 * the received ring cannot be mapped writable; two consumers share one join (metrics);
 * datagram mode delivers the same; a garbage client is dropped alone; the agent restarts and
 * the source reconnects by itself; the group is left after the last consumer. */
#include "task.h"

#include "agent_source.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#define SOCK_PATH sock_path
#define GROUP_A   "239.1.2.1:32001"
#define GROUP_B   "239.1.2.2:32001"
#define METRICS   "127.0.0.1:32090"

static int lo_index, tx = -1;
static pid_t agent_pid = -1;
static char sock_path[64];

/* A failed assertion exits: the agent must not outlive the test. */
static void kill_agent(void)
{
    if (agent_pid > 0)
        kill(agent_pid, SIGKILL);
    unlink(sock_path);
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
    lo_index = (int)if_nametoindex("lo");
    tx = socket(AF_INET, SOCK_DGRAM, 0);
    struct ip_mreqn m = {.imr_ifindex = lo_index};
    int one = 1;
    ASSERT_EQ(setsockopt(tx, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof(m)), 0);
    ASSERT_EQ(setsockopt(tx, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof(one)), 0);
}

static void start_agent(void)
{
    agent_pid = fork();
    ASSERT(agent_pid >= 0);
    if (agent_pid == 0) {
        /* 2048 slots: every burst below (<= 500 a line) fits without lapping a late reader. */
        execl(MDCAST_AGENT_BIN, "mdcast-agent", "--interface", "lo", "--socket", SOCK_PATH,
              "--ring-bytes", "4M", "--metrics", METRICS, "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 300; i++) { /* up to 3 s for the socket to accept */
        int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", SOCK_PATH);
        int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        if (ok)
            return;
        usleep(10000);
    }
    TEST_FAIL_("agent did not start");
}

static void stop_agent(void)
{
    int st;
    ASSERT_EQ(kill(agent_pid, SIGTERM), 0);
    ASSERT_EQ(waitpid(agent_pid, &st, 0), agent_pid);
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
    agent_pid = -1;
}

static void send_to(const char *group, uint64_t n)
{
    char host[32];
    snprintf(host, sizeof(host), "%s", group);
    *strchr(host, ':') = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(32001)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    uint8_t buf[64];
    memcpy(buf, &n, sizeof(n));
    memset(buf + 8, (int)(n & 0xff), sizeof(buf) - 8);
    ASSERT_EQ(sendto(tx, buf, 8 + n % 50, 0, (struct sockaddr *)&sa, sizeof(sa)),
              (ssize_t)(8 + n % 50));
}

static mdfeed_agent_source_t *new_source(int mode, bool with_b)
{
    mdfeed_agent_source_config_t c = {.socket_path = SOCK_PATH,
                                      .group_a = GROUP_A,
                                      .group_b = with_b ? GROUP_B : NULL,
                                      .name = "test",
                                      .mode = mode,
                                      .keepalive_ms =
                                          5000}; /* no timer wake-up in the idle check */
    mdfeed_agent_source_t *s;
    ASSERT_EQ(mdfeed_agent_source_new(&s, &c), 0);
    ASSERT_EQ(mdfeed_agent_source_wait_ready(s, 3000), 0);
    return s;
}

/* Receives until `want` datagrams arrived or 3 s passed, checking each; counts per line. */
static void receive(mdfeed_agent_source_t *s, unsigned want, uint64_t first, unsigned got[2])
{
    uint8_t bufs[16][128];
    mdfeed_agent_datagram_t d[16];
    uint64_t next[2] = {first, first};
    got[0] = got[1] = 0;
    for (int spins = 0; got[0] + got[1] < want && spins < 300; spins++) {
        struct pollfd p = {.fd = mdfeed_agent_source_fd(s), .events = POLLIN};
        poll(&p, 1, 10);
        for (int i = 0; i < 16; i++)
            d[i] = (mdfeed_agent_datagram_t){.buf = bufs[i], .cap = sizeof(bufs[i])};
        int n = mdfeed_agent_source_recv(s, d, 16);
        ASSERT(n >= 0);
        for (int i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, d[i].buf, 8);
            ASSERT(d[i].line <= 1);
            ASSERT_UEQ(v, next[d[i].line]); /* in order, nothing missing */
            ASSERT_EQ(d[i].len, 8 + v % 50);
            ASSERT(d[i].rx_ns > 0);
            ASSERT(!d[i].truncated);
            for (uint32_t k = 8; k < d[i].len; k++)
                ASSERT_EQ(d[i].buf[k], (uint8_t)(v & 0xff));
            next[d[i].line]++;
            got[d[i].line]++;
        }
    }
}

static void send_both(uint64_t first, unsigned n)
{
    for (uint64_t i = first; i < first + n; i++) {
        send_to(GROUP_A, i);
        send_to(GROUP_B, i);
    }
}

static char *http_get(const char *path)
{
    static char resp[16384];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(32090)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char req[128];
    int l = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
    ASSERT_EQ(write(fd, req, (size_t)l), l);
    size_t off = 0;
    ssize_t n;
    while ((n = read(fd, resp + off, sizeof(resp) - 1 - off)) > 0)
        off += (size_t)n;
    resp[off] = '\0';
    close(fd);
    return resp;
}

static uint64_t metric(const char *name)
{
    char *m = http_get("/metrics"), *p = strstr(m, name);
    ASSERT(p != NULL);
    return strtoull(p + strlen(name), NULL, 10);
}

static void test_shm_two_lines(void)
{
    mdfeed_agent_source_t *s = new_source(MDFEED_AGENT_SHM, true);
    unsigned got[2];
    send_both(0, 500);
    receive(s, 1000, 0, got);
    ASSERT_EQ(got[0], 500);
    ASSERT_EQ(got[1], 500);
    mdfeed_agent_source_stats_t st;
    mdfeed_agent_source_stats(s, &st);
    ASSERT_UEQ(st.laps, 0);
    ASSERT_EQ(st.lines_ready, 2);

    /* Idle: the fd sleeps (after one recv harvests the last edges) and wakes on data. */
    mdfeed_agent_datagram_t d[4];
    uint8_t b[4][128];
    for (int i = 0; i < 4; i++)
        d[i] = (mdfeed_agent_datagram_t){.buf = b[i], .cap = 128};
    ASSERT_EQ(mdfeed_agent_source_recv(s, d, 4), 0);
    struct pollfd p = {.fd = mdfeed_agent_source_fd(s), .events = POLLIN};
    ASSERT_EQ(poll(&p, 1, 150), 0);
    send_to(GROUP_A, 500);
    ASSERT_EQ(poll(&p, 1, 2000), 1);
    ASSERT_EQ(mdfeed_agent_source_recv(s, d, 4), 1);

    /* The ring we were given cannot be mapped writable. */
    int fd = mdfeed_agent_source_ring_fd(s, 0);
    ASSERT(fd >= 0);
    struct stat sb;
    ASSERT_EQ(fstat(fd, &sb), 0);
    ASSERT(mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
    ASSERT_EQ(write(fd, "x", 1), -1);

    /* A second consumer shares the join: one group, two consumers. */
    mdfeed_agent_source_t *s2 = new_source(MDFEED_AGENT_SHM, false);
    ASSERT_UEQ(metric("mdcast_agent_consumers{group=\"239.1.2.1:32001\"} "), 2);
    ASSERT_UEQ(metric("mdcast_agent_consumers{group=\"239.1.2.2:32001\"} "), 1);
    mdfeed_agent_source_free(s2);
    mdfeed_agent_source_free(s);
    usleep(100000);
    /* The last consumer gone, the agent left the groups. */
    ASSERT(strstr(http_get("/metrics"), "239.1.2.1:32001") == NULL);
    ASSERT(strstr(http_get("/healthz"), "200 OK") != NULL);
}

static void test_dgram_mode(void)
{
    mdfeed_agent_source_t *s = new_source(MDFEED_AGENT_DGRAM, true);
    ASSERT_EQ(mdfeed_agent_source_ring_fd(s, 0), -1);
    unsigned got[2];
    send_both(1000, 300);
    receive(s, 600, 1000, got);
    ASSERT_EQ(got[0], 300);
    ASSERT_EQ(got[1], 300);
    mdfeed_agent_source_free(s);
}

/* Garbage on one connection: that client is dropped, the good one carries on. */
static void test_garbage_client(void)
{
    mdfeed_agent_source_t *s = new_source(MDFEED_AGENT_SHM, false);
    uint64_t before = metric("mdcast_agent_clients_dropped_total{reason=\"garbage\"} ");
    int bad = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", SOCK_PATH);
    ASSERT_EQ(connect(bad, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ASSERT_EQ(write(bad, "GET / HTTP/1.0\r\n\r\n", 18), 18);
    char buf[256];
    ssize_t n;
    while ((n = read(bad, buf, sizeof(buf))) > 0) /* the ERROR, then end of file */
        ;
    ASSERT_EQ(n, 0);
    close(bad);
    ASSERT_UEQ(metric("mdcast_agent_clients_dropped_total{reason=\"garbage\"} "), before + 1);
    unsigned got[2];
    for (uint64_t i = 0; i < 200; i++)
        send_to(GROUP_A, 2000 + i);
    receive(s, 200, 2000, got);
    ASSERT_EQ(got[0], 200);
    mdfeed_agent_source_free(s);
}

/* The agent restarts; the source reconnects by itself and receives again. */
static void test_restart(void)
{
    mdfeed_agent_source_t *s = new_source(MDFEED_AGENT_SHM, true);
    stop_agent();
    mdfeed_agent_datagram_t d[4];
    uint8_t b[4][128];
    for (int i = 0; i < 4; i++)
        d[i] = (mdfeed_agent_datagram_t){.buf = b[i], .cap = 128};
    struct pollfd p = {.fd = mdfeed_agent_source_fd(s), .events = POLLIN};
    ASSERT_EQ(poll(&p, 1, 1000), 1); /* the hang-up */
    ASSERT_EQ(mdfeed_agent_source_recv(s, d, 4), 0);
    mdfeed_agent_source_stats_t st;
    mdfeed_agent_source_stats(s, &st);
    ASSERT_UEQ(st.disconnects, 1);
    ASSERT_EQ(st.lines_ready, 0);
    start_agent();
    /* Driven only by its own fd, as a subscriber would drive it. */
    for (int i = 0; i < 300 && st.lines_ready < 2; i++) {
        poll(&p, 1, 10);
        (void)mdfeed_agent_source_recv(s, d, 4);
        mdfeed_agent_source_stats(s, &st);
    }
    ASSERT_EQ(st.lines_ready, 2);
    ASSERT_UEQ(st.connects, 2);
    unsigned got[2];
    send_both(3000, 100);
    receive(s, 200, 3000, got);
    ASSERT_EQ(got[0] + got[1], 200);
    mdfeed_agent_source_free(s);
}

static void test_config_errors(void)
{
    mdfeed_agent_source_t *s;
    mdfeed_agent_source_config_t c = {.socket_path = SOCK_PATH, .group_a = "10.0.0.1:5"};
    ASSERT_EQ(mdfeed_agent_source_new(&s, &c), MDFEED_ENOT_MULTICAST);
    c.group_a = "239.1.1.1";
    ASSERT_EQ(mdfeed_agent_source_new(&s, &c), MDFEED_EBAD_ADDRESS);
    c.group_a = NULL;
    ASSERT_EQ(mdfeed_agent_source_new(&s, &c), MDFEED_EBAD_CONFIG);
    /* No agent there: not an error, it keeps trying. */
    c.group_a = GROUP_A;
    c.socket_path = "/tmp/mdcast-test-no-agent.sock";
    ASSERT_EQ(mdfeed_agent_source_new(&s, &c), 0);
    ASSERT_EQ(mdfeed_agent_source_wait_ready(s, 200), MDFEED_ETIMEDOUT);
    mdfeed_agent_source_free(s);
}

int main(void)
{
    enter_private_netns();
    snprintf(sock_path, sizeof(sock_path), "/tmp/mdcast-test-agent-%d.sock", (int)getpid());
    atexit(kill_agent);
    signal(SIGPIPE, SIG_IGN);
    test_config_errors();
    start_agent();
    test_shm_two_lines();
    test_dgram_mode();
    test_garbage_client();
    test_restart();
    stop_agent();
    printf("test_agent_client: ok\n");
    return 0;
}
