/* The control socket: a SOCK_SEQPACKET Unix socket, one message per packet (agent_wire.h).
 *
 * Every client is on its own: the agent reads at most a bounded number of messages per
 * wake-up, sends with MSG_DONTWAIT only, and drops a client that breaks the protocol (bad
 * magic, version, length, type or field, anything before HELLO, passed fds), exceeds its
 * request budget (token bucket), or whose socket is full when the agent must send to it.
 * The number of clients is bounded; one over the bound is accepted and closed at once, so the
 * listen backlog never fills up with clients nobody serves. */
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum { MSGS_PER_WAKEUP = 16, ACCEPTS_PER_WAKEUP = 64 };
#define HELLO_TIMEOUT_NS   (2000000000ull)
#define KEEPALIVE_MS       1000u

static const char *const drop_names[AGENT_DROP_NREASONS] = {"garbage", "rate", "slow", "timeout",
                                                            "limit"};

int agent_control_listen(agent_t *a, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* A socket file left by a dead agent is removed; a live agent on it is not displaced. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN) {
        close(fd);
        return -EADDRINUSE;
    }
    close(fd);
    (void)unlink(path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* Consumers run under other uids (the pods' runAsUser): the directory guards access. */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0666) < 0 ||
        listen(fd, 256) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    a->ctl_fd = fd;
    return agent_watch(a, fd, EPOLLIN, AGENT_TAG(TAG_CONTROL, 0));
}

void agent_control_accept(agent_t *a)
{
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(a->ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        agent_client_t *c = NULL;
        for (unsigned k = 0; k < a->cfg.max_clients && !c; k++)
            if (a->clients[k].fd < 0)
                c = &a->clients[k];
        if (!c || agent_watch(a, fd, EPOLLIN | EPOLLRDHUP,
                              AGENT_TAG(TAG_CLIENT, c - a->clients)) != 0) {
            a->rejected_full++;
            close(fd);
            continue;
        }
        memset(c, 0, sizeof(*c));
        c->fd = fd;
        c->since_ns = c->tokens_ns = agent_now_ns();
        c->tokens = a->cfg.burst;
        a->nclients++;
        a->accepted++;
    }
}

static void drop_sub(agent_t *a, agent_sub_state_t *s)
{
    s->group->laps_done += s->last.laps;
    if (s->mode == AGENT_MODE_DGRAM)
        s->group->dgram_subs--;
    agent_group_release(a, s->group);
    s->group = NULL;
}

static void release_subs(agent_t *a, agent_client_t *c)
{
    for (unsigned i = 0; i < AGENT_MAX_SUBS_PER_CLIENT; i++) {
        agent_sub_state_t *s = &c->subs[i];
        if (!s->group)
            continue;
        drop_sub(a, s);
    }
}

static void close_client(agent_t *a, agent_client_t *c)
{
    release_subs(a, c);
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    a->nclients--;
}

/* Sends one message, with fds when `nfds` > 0; never waits. Returns 0 or -errno. */
static int send_msg(agent_client_t *c, const uint8_t *buf, size_t len, const int *fds, int nfds)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } ctrl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&ctrl, 0, sizeof(ctrl));
        mh.msg_control = ctrl.buf;
        mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

void agent_client_drop(agent_t *a, agent_client_t *c, int reason, const char *why)
{
    agent_error_t e = {.code = -EPROTO};
    snprintf(e.text, sizeof(e.text), "dropped (%s): %s", drop_names[reason], why);
    uint8_t buf[sizeof(agent_msg_hdr_t) + sizeof(e)];
    size_t len = agent_msg_encode(buf, sizeof(buf), AGENT_MSG_ERROR, 0, &e, NULL, 0);
    (void)send_msg(c, buf, len, NULL, 0); /* best effort: it is going anyway */
    agent_log(AGENT_LOG_WARN, "\"msg\":\"client dropped\",\"reason\":\"%s\",\"why\":\"%s\","
              "\"name\":\"%s\"", drop_names[reason], why, c->name);
    a->dropped[reason]++;
    close_client(a, c);
}

/* Sends a reply; a client that cannot take it is not reading and is dropped. */
static bool reply(agent_t *a, agent_client_t *c, unsigned type, uint32_t id, const void *body,
                  const int *fds, int nfds)
{
    uint8_t buf[sizeof(agent_msg_hdr_t) + sizeof(agent_subscribed_t) + sizeof(agent_keepalive_t)];
    size_t len = agent_msg_encode(buf, sizeof(buf), type, id, body, NULL, 0);
    int rc = send_msg(c, buf, len, fds, nfds);
    if (rc == 0)
        return true;
    if (rc == -EPIPE || rc == -ECONNRESET) { /* it left before the answer: not misbehaving */
        close_client(a, c);
        return false;
    }
    agent_client_drop(a, c, AGENT_DROP_SLOW, "reply did not fit its socket");
    return false;
}

static bool reply_error(agent_t *a, agent_client_t *c, uint32_t id, int code, const char *text)
{
    agent_error_t e = {.code = code};
    snprintf(e.text, sizeof(e.text), "%s", text);
    return reply(a, c, AGENT_MSG_ERROR, id, &e, NULL, 0);
}

static agent_sub_state_t *find_sub(agent_client_t *c, uint32_t group, uint16_t port)
{
    for (unsigned i = 0; i < AGENT_MAX_SUBS_PER_CLIENT; i++) {
        agent_group_t *g = c->subs[i].group;
        if (g && g->group == group && g->port == port)
            return &c->subs[i];
    }
    return NULL;
}

static bool on_hello(agent_t *a, agent_client_t *c, const agent_msg_t *m)
{
    memcpy(c->name, m->u.hello.name, AGENT_NAME_LEN);
    c->name[AGENT_NAME_LEN] = '\0';
    c->hello = true;
    c->since_ns = 0; /* from here on it means "datagram socket full since" */
    agent_hello_ok_t ok = {.version = AGENT_PROTO_VERSION,
                           .max_subscriptions = AGENT_MAX_SUBS_PER_CLIENT,
                           .keepalive_ms = KEEPALIVE_MS,
                           .epoch = a->epoch};
    return reply(a, c, AGENT_MSG_HELLO_OK, m->hdr.id, &ok, NULL, 0);
}

static bool on_subscribe(agent_t *a, agent_client_t *c, const agent_msg_t *m)
{
    const agent_sub_t *req = &m->u.sub;
    if (find_sub(c, req->group, req->port))
        return reply_error(a, c, m->hdr.id, -EEXIST, "already subscribed");
    agent_sub_state_t *s = NULL;
    for (unsigned i = 0; i < AGENT_MAX_SUBS_PER_CLIENT && !s; i++)
        if (!c->subs[i].group)
            s = &c->subs[i];
    if (!s) {
        agent_client_drop(a, c, AGENT_DROP_LIMIT, "too many subscriptions");
        return false;
    }
    agent_group_t *g;
    int rc = agent_group_acquire(a, req->group, req->port, &g);
    if (rc)
        return reply_error(a, c, m->hdr.id, rc, strerror(-rc));
    *s = (agent_sub_state_t){.group = g, .line = req->line, .mode = req->mode};
    if (req->mode == AGENT_MODE_DGRAM) {
        /* Datagrams queue in the agent's send buffer of this connection: make room for a
         * burst (with CAP_NET_ADMIN past wmem_max), so that a reader that keeps up on
         * average loses nothing. */
        int want = 4 << 20;
        if (setsockopt(c->fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) != 0)
            (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
    }
    g->dgram_subs += req->mode == AGENT_MODE_DGRAM;
    agent_ring_t *r = &g->shm.ring;
    s->dgram_next = agent_ring_head(r);
    s->last.position = s->dgram_next;
    agent_subscribed_t ok = {.sub = *req,
                             .slot_count = r->hdr->slot_count,
                             .max_datagram = r->max_datagram,
                             .ring_bytes = r->bytes,
                             .head = s->dgram_next};
    int fds[2] = {g->shm.rofd, g->shm.efd};
    return reply(a, c, AGENT_MSG_SUBSCRIBED, m->hdr.id, &ok, fds,
                 req->mode == AGENT_MODE_SHM ? 2 : 0);
}

static bool on_unsubscribe(agent_t *a, agent_client_t *c, const agent_msg_t *m)
{
    agent_sub_state_t *s = find_sub(c, m->u.sub.group, m->u.sub.port);
    if (!s)
        return reply_error(a, c, m->hdr.id, -ENOENT, "not subscribed");
    drop_sub(a, s);
    return reply(a, c, AGENT_MSG_UNSUBSCRIBE, m->hdr.id, &m->u.sub, NULL, 0);
}

static bool on_keepalive(agent_t *a, agent_client_t *c, const agent_msg_t *m)
{
    for (uint32_t i = 0; i < m->u.keepalive.count; i++) {
        const agent_report_t *rep = &m->u.keepalive.reports[i];
        agent_sub_state_t *s = find_sub(c, rep->group, rep->port);
        if (s)
            s->last = *rep;
    }
    agent_keepalive_t none = {0};
    return reply(a, c, AGENT_MSG_KEEPALIVE, m->hdr.id, &none, NULL, 0);
}

/* Runs one parsed message. Returns false when the client is gone. */
static bool handle(agent_t *a, agent_client_t *c, const agent_msg_t *m)
{
    if (!c->hello && m->hdr.type != AGENT_MSG_HELLO) {
        agent_client_drop(a, c, AGENT_DROP_GARBAGE, "no hello first");
        return false;
    }
    switch (m->hdr.type) {
    case AGENT_MSG_HELLO:
        if (c->hello)
            break;
        return on_hello(a, c, m);
    case AGENT_MSG_SUBSCRIBE:
        return on_subscribe(a, c, m);
    case AGENT_MSG_UNSUBSCRIBE:
        return on_unsubscribe(a, c, m);
    case AGENT_MSG_KEEPALIVE:
        return on_keepalive(a, c, m);
    }
    agent_client_drop(a, c, AGENT_DROP_GARBAGE, "message type not for the agent");
    return false;
}

/* Takes one request from the client's budget. */
static bool spend_token(agent_t *a, agent_client_t *c)
{
    uint64_t now = agent_now_ns();
    c->tokens += (double)(now - c->tokens_ns) * 1e-9 * a->cfg.rate;
    if (c->tokens > a->cfg.burst)
        c->tokens = a->cfg.burst;
    c->tokens_ns = now;
    if (c->tokens < 1.0)
        return false;
    c->tokens -= 1.0;
    return true;
}

/* Closes any fds a client passed: the agent takes none, and keeping them would leak. */
static bool close_passed_fds(struct msghdr *mh)
{
    bool any = false;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
            close(fd);
        }
        any = true;
    }
    return any || (mh->msg_flags & MSG_CTRUNC);
}

/* Receives and runs one message. Returns 1 to go on, 0 when drained, -1 when gone. */
static int read_one(agent_t *a, agent_client_t *c)
{
    union {
        char buf[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } ctrl;
    struct iovec iov = {.iov_base = a->iobuf, .iov_len = AGENT_MAX_MSG};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf, .msg_controllen = sizeof(ctrl)};
    ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) { /* end of file or a socket error: the client went away */
        close_client(a, c);
        return -1;
    }
    bool passed = close_passed_fds(&mh);
    if (!spend_token(a, c)) {
        agent_client_drop(a, c, AGENT_DROP_RATE, "request rate over budget");
        return -1;
    }
    agent_msg_t m;
    int rc = (mh.msg_flags & MSG_TRUNC) ? AGENT_PARSE_LENGTH
                                        : agent_msg_parse(a->iobuf, (size_t)n, &m);
    if (rc || passed) {
        agent_client_drop(a, c, AGENT_DROP_GARBAGE,
                          passed ? "passed file descriptors" : agent_parse_strerror(rc));
        return -1;
    }
    return handle(a, c, &m) ? 1 : -1;
}

void agent_client_readable(agent_t *a, agent_client_t *c)
{
    for (int i = 0; i < MSGS_PER_WAKEUP; i++)
        if (read_one(a, c) <= 0)
            return;
}

void agent_clients_tick(agent_t *a, uint64_t now)
{
    for (unsigned i = 0; i < a->cfg.max_clients; i++) {
        agent_client_t *c = &a->clients[i];
        if (c->fd >= 0 && !c->hello && now - c->since_ns > HELLO_TIMEOUT_NS)
            agent_client_drop(a, c, AGENT_DROP_TIMEOUT, "no hello within 2 s");
        else if (c->fd >= 0 && c->doomed)
            agent_client_drop(a, c, AGENT_DROP_SLOW, "datagram socket full for 1 s");
    }
}

/* Datagram mode: a socket that is full loses the rest of the batch (the client sees the jump
 * in `index`); a client whose socket stayed full for a whole second is dropped. */
static void send_datagrams(agent_t *a, agent_client_t *c, agent_sub_state_t *s, uint64_t to)
{
    agent_ring_t *r = &s->group->shm.ring;
    while (s->dgram_next < to) {
        uint64_t n = s->dgram_next;
        agent_slot_hdr_t *slot = agent_ring_slot(r, n);
        agent_data_t d = {.group = s->group->group,
                          .port = s->group->port,
                          .line = s->line,
                          .flags = (uint8_t)(slot->flags & AGENT_SLOT_TRUNCATED),
                          .index = n,
                          .rx_ns = slot->rx_ns};
        size_t len = agent_msg_encode(a->iobuf, AGENT_MAX_MSG, AGENT_MSG_DATA, 0, &d,
                                      agent_slot_data(slot), slot->len);
        if (send_msg(c, a->iobuf, len, NULL, 0) != 0) {
            s->group->dgram_dropped += to - n;
            s->last.lost += to - n;
            s->last.laps++;
            s->dgram_next = to;
            if (!c->since_ns)
                c->since_ns = agent_now_ns();
            else if (agent_now_ns() - c->since_ns > 1000000000ull)
                c->doomed = true; /* dropped by the tick: the group is in use right now */
            return;
        }
        s->dgram_next = n + 1;
        s->last.position = s->dgram_next;
        c->since_ns = 0; /* after hello, since_ns means "full since" */
    }
}

void agent_dgram_fanout(agent_t *a, agent_group_t *g, uint64_t from, uint64_t to)
{
    (void)from;
    if (g->dgram_subs == 0)
        return;
    for (unsigned i = 0; i < a->cfg.max_clients; i++) {
        agent_client_t *c = &a->clients[i];
        if (c->fd < 0 || !c->hello || c->doomed)
            continue;
        for (unsigned k = 0; k < AGENT_MAX_SUBS_PER_CLIENT && c->fd >= 0; k++)
            if (c->subs[k].group == g && c->subs[k].mode == AGENT_MODE_DGRAM)
                send_datagrams(a, c, &c->subs[k], to);
    }
}
