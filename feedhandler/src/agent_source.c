/* The agent source: the consumer side of mdcast-agent (agent_source.h; the ring and the
 * protocol are in feedhandler/agent/agent_wire.h).
 *
 * Wake-ups: the eventfds are shared by every consumer of a group and nobody reads them, so
 * they sit in this source's epoll set edge-triggered: each batch the agent publishes is one
 * new edge for every consumer, and no consumer can consume another's. recv() harvests the
 * edges (epoll_wait with timeout 0) before it looks at the rings, so a batch published after
 * that look is a fresh edge and the fd turns readable again. When recv stops with data left
 * (the caller's array was full) it writes a private level-triggered "kick" eventfd so that
 * the fd stays readable until the backlog is gone. */
#include "agent_source.h"

#include "../agent/agent_wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { TAG_SOCK = 1, TAG_TIMER, TAG_KICK, TAG_EFD_A, TAG_EFD_B };
enum { LINE_OFF = 0, LINE_REQUESTED, LINE_READY };
enum { MSGS_PER_RECV = 32 };

typedef struct {
    bool wanted;
    uint32_t group; /* network order */
    uint16_t port;
    int state;
    agent_ring_t ring;
    int memfd, efd;
    uint64_t next; /* next datagram index to read */
} line_t;

struct mdfeed_agent_source {
    mdfeed_agent_source_config_t cfg;
    char path[108];
    char name[AGENT_NAME_LEN];
    int epfd, sock, tfd, kick;
    bool kicked;
    line_t lines[2];
    unsigned first_line; /* alternates, so neither line starves the other */
    uint32_t backoff_ms;
    uint64_t reconnect_at, keepalive_at; /* monotonic ns; 0 = not scheduled */
    uint64_t ka_sent_at; /* oldest keepalive not answered yet; 0 = none outstanding */
    uint32_t req_id;
    mdfeed_agent_source_stats_t st;
    uint8_t *iobuf;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t ms(uint32_t v)
{
    return (uint64_t)v * 1000000u;
}

static int watch(mdfeed_agent_source_t *s, int fd, uint32_t events, uint32_t tag)
{
    struct epoll_event ev = {.events = events, .data.u32 = tag};
    return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* The one timer: the earliest of reconnect and keepalive. */
static void arm_timer(mdfeed_agent_source_t *s)
{
    uint64_t due = s->sock < 0 ? s->reconnect_at : s->keepalive_at;
    struct itimerspec its = {0};
    if (due) {
        its.it_value.tv_sec = (time_t)(due / 1000000000u);
        its.it_value.tv_nsec = (long)(due % 1000000000u);
    }
    (void)timerfd_settime(s->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void line_unmap(line_t *l)
{
    if (l->ring.base)
        munmap(l->ring.base, l->ring.bytes);
    l->ring.base = NULL;
    if (l->memfd >= 0)
        close(l->memfd);
    if (l->efd >= 0)
        close(l->efd); /* closing the last reference also takes it out of the epoll set */
    l->memfd = l->efd = -1;
    l->state = LINE_OFF;
}

static void disconnect(mdfeed_agent_source_t *s)
{
    if (s->sock < 0)
        return;
    close(s->sock);
    s->sock = -1;
    for (int i = 0; i < 2; i++)
        line_unmap(&s->lines[i]);
    s->st.disconnects++;
    s->st.lines_ready = 0;
    s->reconnect_at = now_ns() + ms(s->backoff_ms);
    s->backoff_ms = s->backoff_ms * 2 > s->cfg.reconnect_max_ms ? s->cfg.reconnect_max_ms
                                                                : s->backoff_ms * 2;
    s->keepalive_at = 0;
    arm_timer(s);
}

/* Sends one request; a full socket means the agent is not reading: reconnect. */
static int send_request(mdfeed_agent_source_t *s, unsigned type, const void *body)
{
    uint8_t buf[sizeof(agent_msg_hdr_t) + sizeof(agent_keepalive_t)];
    size_t len = agent_msg_encode(buf, sizeof(buf), type, ++s->req_id, body, NULL, 0);
    ssize_t n;
    do
        n = send(s->sock, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        disconnect(s);
        return -errno;
    }
    return 0;
}

static void try_connect(mdfeed_agent_source_t *s)
{
    s->reconnect_at = 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, s->path, sizeof(s->path));
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        watch(s, fd, EPOLLIN, TAG_SOCK) == 0) {
        s->sock = fd;
        s->ka_sent_at = 0;
        s->keepalive_at = now_ns() + ms(s->cfg.keepalive_ms);
        agent_hello_t h = {.min_version = AGENT_PROTO_VERSION, .max_version = AGENT_PROTO_VERSION};
        memcpy(h.name, s->name, sizeof(h.name));
        if (send_request(s, AGENT_MSG_HELLO, &h) == 0)
            arm_timer(s);
        return;
    }
    if (fd >= 0)
        close(fd);
    /* No agent yet (or not any more): retry with backoff, as after a disconnect. */
    s->reconnect_at = now_ns() + ms(s->backoff_ms);
    s->backoff_ms = s->backoff_ms * 2 > s->cfg.reconnect_max_ms ? s->cfg.reconnect_max_ms
                                                                : s->backoff_ms * 2;
    arm_timer(s);
}

static void send_subscribes(mdfeed_agent_source_t *s)
{
    for (int i = 0; i < 2 && s->sock >= 0; i++) {
        line_t *l = &s->lines[i];
        if (!l->wanted)
            continue;
        agent_sub_t sub = {
            .group = l->group, .port = l->port, .line = (uint8_t)i, .mode = (uint8_t)s->cfg.mode};
        if (send_request(s, AGENT_MSG_SUBSCRIBE, &sub) == 0)
            l->state = LINE_REQUESTED;
    }
}

static void send_keepalive(mdfeed_agent_source_t *s)
{
    agent_keepalive_t k = {0};
    for (int i = 0; i < 2; i++) {
        line_t *l = &s->lines[i];
        if (l->state != LINE_READY)
            continue;
        k.reports[k.count++] = (agent_report_t){.group = l->group,
                                                .port = l->port,
                                                .position = l->next,
                                                .laps = s->st.laps,
                                                .lost = s->st.lapped};
    }
    if (send_request(s, AGENT_MSG_KEEPALIVE, &k) == 0 && !s->ka_sent_at)
        s->ka_sent_at = now_ns();
}

/* Maps a received ring read-only and checks its geometry against the file's real size. */
static int map_ring(line_t *l, int memfd)
{
    struct stat st;
    if (fstat(memfd, &st) < 0)
        return -errno;
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, memfd, 0);
    if (base == MAP_FAILED)
        return -errno;
    if (agent_ring_attach(&l->ring, base, (size_t)st.st_size) != 0 ||
        l->ring.hdr->group != l->group || l->ring.hdr->port != l->port) {
        munmap(base, (size_t)st.st_size);
        l->ring.base = NULL;
        return -EPROTO;
    }
    return 0;
}

static void take_fds(struct msghdr *mh, int *fds, int *nfds)
{
    *nfds = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
            if (*nfds < 2)
                fds[(*nfds)++] = fd;
            else
                close(fd);
        }
    }
}

static int on_subscribed(mdfeed_agent_source_t *s, const agent_msg_t *m, int *fds, int nfds)
{
    unsigned i = m->u.subscribed.sub.line;
    line_t *l = &s->lines[i & 1];
    if (i > 1 || l->state != LINE_REQUESTED || m->u.subscribed.sub.group != l->group ||
        m->u.subscribed.sub.port != l->port)
        return -EPROTO;
    if (s->cfg.mode == MDFEED_AGENT_DGRAM) {
        if (nfds != 0)
            return -EPROTO;
        l->next = m->u.subscribed.head;
    } else {
        if (nfds != 2)
            return -EPROTO;
        l->memfd = fds[0];
        l->efd = fds[1];
        fds[0] = fds[1] = -1;
        int rc = map_ring(l, l->memfd);
        if (rc == 0)
            rc = watch(s, l->efd, EPOLLIN | EPOLLET, i == 0 ? TAG_EFD_A : TAG_EFD_B);
        if (rc)
            return rc;
        /* Live from now on: what the ring held before is older than our subscription. */
        l->next = agent_ring_head(&l->ring);
    }
    l->state = LINE_READY;
    s->st.lines_ready++;
    return 0;
}

/* A datagram-mode DATA message into `out` (NULL: nowhere to put it, counted as lost). */
static void on_data(mdfeed_agent_source_t *s, const agent_msg_t *m, mdfeed_agent_datagram_t *out)
{
    const agent_data_t *d = &m->u.data;
    line_t *l = &s->lines[d->line & 1];
    if (d->line > 1 || l->state != LINE_READY || d->group != l->group || d->port != l->port)
        return;
    if (d->index > l->next) {
        s->st.laps++;
        s->st.lapped += d->index - l->next;
    }
    l->next = d->index + 1;
    if (!out) {
        s->st.lapped++;
        return;
    }
    uint32_t n = m->payload_len < out->cap ? m->payload_len : out->cap;
    memcpy(out->buf, m->payload, n);
    out->len = n;
    out->rx_ns = d->rx_ns;
    out->line = d->line;
    out->truncated = (d->flags & AGENT_SLOT_TRUNCATED) || n < m->payload_len;
    s->st.datagrams++;
    s->st.bytes += n;
}

/* Handles one agent message. Returns 1 if it filled `out`, 0 if not, < 0 to disconnect. */
static int handle(mdfeed_agent_source_t *s, const agent_msg_t *m, int *fds, int nfds,
                  mdfeed_agent_datagram_t *out)
{
    switch (m->hdr.type) {
    case AGENT_MSG_HELLO_OK:
        s->st.connects++;
        s->backoff_ms = s->cfg.reconnect_min_ms;
        send_subscribes(s);
        return 0;
    case AGENT_MSG_SUBSCRIBED:
        return on_subscribed(s, m, fds, nfds);
    case AGENT_MSG_KEEPALIVE:
        s->ka_sent_at = 0;
        return 0;
    case AGENT_MSG_UNSUBSCRIBE:
        return 0;
    case AGENT_MSG_ERROR:
        s->st.agent_errors++;
        return -EPROTO; /* a refused subscription is retried on a new connection */
    case AGENT_MSG_DATA:
        if (s->cfg.mode != MDFEED_AGENT_DGRAM)
            return -EPROTO;
        on_data(s, m, out);
        return out ? 1 : 0;
    }
    return -EPROTO;
}

/* Reads one message. Returns 1 (filled out), 0 (handled), -EAGAIN (none), or another < 0
 * after which the source has disconnected. */
static int read_message(mdfeed_agent_source_t *s, mdfeed_agent_datagram_t *out)
{
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } ctrl;
    struct iovec iov = {.iov_base = s->iobuf, .iov_len = AGENT_MAX_MSG};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf, .msg_controllen = sizeof(ctrl)};
    ssize_t n = recvmsg(s->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return -EAGAIN;
    int fds[2] = {-1, -1}, nfds = 0;
    if (n > 0)
        take_fds(&mh, fds, &nfds);
    agent_msg_t m;
    int rc = n <= 0 ? -ECONNRESET
                    : (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ? -EPROTO
                    : agent_msg_parse(s->iobuf, (size_t)n, &m) ? -EPROTO
                                                              : handle(s, &m, fds, nfds, out);
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (rc < 0)
        disconnect(s);
    return rc;
}

/* Runs what the timer is for: reconnect, keepalive, or giving up on a silent agent. */
static void run_timer(mdfeed_agent_source_t *s)
{
    uint64_t exp, now = now_ns();
    (void)!read(s->tfd, &exp, sizeof(exp));
    if (s->sock < 0) {
        if (s->reconnect_at && now >= s->reconnect_at)
            try_connect(s);
        else
            arm_timer(s);
        return;
    }
    /* A keepalive unanswered for three intervals: the agent hangs. Measured from the
     * request, not from the last message heard, so that a consumer that was itself stopped
     * (SIGSTOP, a long GC pause) does not blame the agent when it runs again. */
    if (s->ka_sent_at && now - s->ka_sent_at > 3 * ms(s->cfg.keepalive_ms)) {
        disconnect(s);
        return;
    }
    if (now >= s->keepalive_at) {
        send_keepalive(s);
        s->keepalive_at = now + ms(s->cfg.keepalive_ms);
    }
    if (s->sock >= 0)
        arm_timer(s);
}

/* Copies datagrams of line `i` into out[*n..max). Returns true if the line has more. */
static bool read_line(mdfeed_agent_source_t *s, int i, mdfeed_agent_datagram_t *out,
                      unsigned *n, unsigned max)
{
    line_t *l = &s->lines[i];
    if (l->state != LINE_READY || s->cfg.mode != MDFEED_AGENT_SHM)
        return false;
    uint64_t head = agent_ring_head(&l->ring);
    while (l->next < head && *n < max) {
        mdfeed_agent_datagram_t *d = &out[*n];
        int rc = agent_ring_read(&l->ring, l->next, d->buf, d->cap, &d->len, &d->rx_ns,
                                 &d->truncated);
        if (rc == AGENT_READ_NOT_YET)
            return false;
        if (rc == AGENT_READ_LAPPED) {
            /* Skip to the oldest datagram the agent will not claim in its next batch. */
            uint64_t keep = l->ring.mask + 1 - AGENT_RING_CLAIM_AHEAD;
            uint64_t to = head > keep ? head - keep : l->next + 1;
            to = to > l->next ? to : l->next + 1;
            s->st.laps++;
            s->st.lapped += to - l->next;
            l->next = to;
            continue;
        }
        d->line = (uint8_t)i;
        s->st.datagrams++;
        s->st.bytes += d->len;
        l->next++;
        (*n)++;
    }
    return l->next < head;
}

/* Control messages, timers and kicks (out/max: room for datagram-mode DATA). */
static unsigned service(mdfeed_agent_source_t *s, mdfeed_agent_datagram_t *out, unsigned max)
{
    struct epoll_event evs[8];
    int ne = epoll_wait(s->epfd, evs, 8, 0);
    bool sock_ready = false;
    bool timer_ready = false;
    for (int e = 0; e < ne; e++) {
        if (evs[e].data.u32 == TAG_TIMER)
            timer_ready = true;
        else if (evs[e].data.u32 == TAG_KICK && s->kicked) {
            uint64_t v;
            (void)!read(s->kick, &v, sizeof(v));
            s->kicked = false;
        } else if (evs[e].data.u32 == TAG_SOCK)
            sock_ready = true;
    }
    unsigned n = 0;
    for (int k = 0; sock_ready && s->sock >= 0 && k < MSGS_PER_RECV; k++) {
        if (out && n >= max)
            break;
        int rc = read_message(s, out ? &out[n] : NULL);
        if (rc == 1)
            n++;
        else if (rc < 0)
            break;
    }
    /* After the socket: replies that waited there while we were not running count first. */
    if (timer_ready)
        run_timer(s);
    return n;
}

int mdfeed_agent_source_recv(mdfeed_agent_source_t *src, mdfeed_agent_datagram_t *out,
                             unsigned max)
{
    unsigned n = service(src, out, max);
    bool more = false;
    unsigned first = src->first_line;
    src->first_line ^= 1;
    for (unsigned k = 0; k < 2; k++)
        more |= read_line(src, (int)((first + k) & 1), out, &n, max);
    /* Datagram mode: a full array may leave messages in the socket, which keeps the fd
     * readable by itself; the rings need the kick. */
    if (more && !src->kicked) {
        uint64_t one = 1;
        src->kicked = write(src->kick, &one, sizeof(one)) == sizeof(one);
    }
    return (int)n;
}

int mdfeed_agent_source_wait_ready(mdfeed_agent_source_t *src, int timeout_ms)
{
    uint64_t deadline = now_ns() + ms((uint32_t)timeout_ms);
    unsigned want = (unsigned)src->lines[0].wanted + (unsigned)src->lines[1].wanted;
    while (src->st.lines_ready < want) {
        uint64_t now = now_ns();
        if (now >= deadline)
            return MDFEED_ETIMEDOUT;
        int left = (int)((deadline - now) / 1000000u) + 1;
        /* The wait only says that something is ready; service() harvests the events. The
         * level-triggered ones are still there for it; an edge it might miss is harmless,
         * since the rings are read by position, not by event. */
        struct pollfd pfd = {.fd = src->epfd, .events = POLLIN};
        if (poll(&pfd, 1, left > 50 ? 50 : left) < 0 && errno != EINTR)
            return -errno;
        (void)service(src, NULL, 0);
    }
    return 0;
}

static int parse_group(line_t *l, const char *spec)
{
    uint32_t addr;
    uint16_t port;
    int rc = mdfeed_addr_parse(spec, &addr, &port);
    if (rc)
        return rc;
    if ((addr >> 28) != 0xe)
        return MDFEED_ENOT_MULTICAST;
    l->wanted = true;
    l->group = htonl(addr);
    l->port = port;
    return 0;
}

static int configure(mdfeed_agent_source_t *s, const mdfeed_agent_source_config_t *cfg)
{
    s->cfg = *cfg;
    if (!cfg->socket_path || strlen(cfg->socket_path) >= sizeof(s->path) || !cfg->group_a ||
        (cfg->mode != MDFEED_AGENT_SHM && cfg->mode != MDFEED_AGENT_DGRAM))
        return MDFEED_EBAD_CONFIG;
    snprintf(s->path, sizeof(s->path), "%s", cfg->socket_path);
    if (cfg->name)
        for (size_t i = 0; i < AGENT_NAME_LEN - 1 && cfg->name[i]; i++)
            s->name[i] = cfg->name[i] >= 0x20 && cfg->name[i] < 0x7f ? cfg->name[i] : '?';
    s->cfg.socket_path = s->cfg.group_a = s->cfg.group_b = s->cfg.name = NULL;
    if (!s->cfg.keepalive_ms)
        s->cfg.keepalive_ms = 1000;
    if (!s->cfg.reconnect_min_ms)
        s->cfg.reconnect_min_ms = 50;
    if (!s->cfg.reconnect_max_ms)
        s->cfg.reconnect_max_ms = 2000;
    if (s->cfg.reconnect_max_ms < s->cfg.reconnect_min_ms)
        return MDFEED_EBAD_CONFIG;
    s->backoff_ms = s->cfg.reconnect_min_ms;
    int rc = parse_group(&s->lines[0], cfg->group_a);
    if (rc == 0 && cfg->group_b)
        rc = parse_group(&s->lines[1], cfg->group_b);
    return rc;
}

int mdfeed_agent_source_new(mdfeed_agent_source_t **out, const mdfeed_agent_source_config_t *cfg)
{
    *out = NULL;
    if (!cfg)
        return MDFEED_EBAD_CONFIG;
    mdfeed_agent_source_t *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->epfd = s->sock = s->tfd = s->kick = -1;
    for (int i = 0; i < 2; i++)
        s->lines[i].memfd = s->lines[i].efd = -1;
    int rc = configure(s, cfg);
    if (rc)
        goto fail;
    s->iobuf = malloc(AGENT_MAX_MSG);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    s->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!s->iobuf || s->epfd < 0 || s->tfd < 0 || s->kick < 0) {
        rc = s->iobuf ? -errno : -ENOMEM;
        goto fail;
    }
    if ((rc = watch(s, s->tfd, EPOLLIN, TAG_TIMER)) || (rc = watch(s, s->kick, EPOLLIN, TAG_KICK)))
        goto fail;
    try_connect(s);
    *out = s;
    return 0;
fail:
    mdfeed_agent_source_free(s);
    return rc;
}

void mdfeed_agent_source_free(mdfeed_agent_source_t *s)
{
    if (!s)
        return;
    if (s->sock >= 0)
        send_keepalive(s); /* the last positions and laps, for the agent's metrics */
    for (int i = 0; i < 2; i++)
        line_unmap(&s->lines[i]);
    int fds[] = {s->sock, s->tfd, s->kick, s->epfd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(s->iobuf);
    free(s);
}

int mdfeed_agent_source_fd(const mdfeed_agent_source_t *s)
{
    return s->epfd;
}

void mdfeed_agent_source_stats(const mdfeed_agent_source_t *s, mdfeed_agent_source_stats_t *out)
{
    *out = s->st;
}

int mdfeed_agent_source_ring_fd(const mdfeed_agent_source_t *s, int line)
{
    return line >= 0 && line < 2 ? s->lines[line].memfd : -1;
}
