/* The publisher client: a SoupBinTCP 3.0 client that logs in to a gateway's `listen` channel
 * and sends unsequenced data. One output buffer holds whole frames (data, heartbeats, logout);
 * dispatch writes as much of it as the socket takes in one write(), so many small messages
 * leave in few segments. `frame_off` tracks the start of the frame being written, so that a
 * connection lost in the middle of a frame resumes on a frame boundary after reconnecting. */
#include "mdfeed/moldudp64.h" /* the big-endian helpers */
#include "mdfeed/soupbintcp.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef enum {
    P_WAIT = 0,   /* waiting for the reconnect delay */
    P_CONNECTING, /* TCP connect in progress */
    P_LOGIN,      /* login request sent, waiting for accepted/rejected */
    P_READY,
    P_LOGOUT, /* logout request queued, waiting for the server to close */
    P_CLOSED,
} pstate_t;

struct mdfeed_pub {
    mdfeed_pub_config_t cfg;
    mdfeed_pub_callbacks_t cb;
    mdfeed_pub_stats_t st;
    mdfeed_soup_login_t login;
    struct sockaddr_storage addr;
    socklen_t addrlen;

    int fd, epfd, tfd;
    uint32_t events; /* what epoll watches on fd now */
    pstate_t state;
    int terminal; /* error that closed the client for good */
    uint32_t failures;
    uint64_t delay_ms;
    uint64_t deadline; /* P_WAIT: reconnect at; P_CONNECTING/P_LOGIN: give up at */
    uint64_t last_rx, last_tx;

    uint8_t ctl[64]; /* the login request, written before any data */
    size_t ctl_len, ctl_off;
    uint8_t *out; /* whole frames; [out_off, out_len) not yet written */
    size_t out_len, out_off, frame_off;
    mdfeed_soup_parser_t parser;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void set_state(mdfeed_pub_t *pub, pstate_t s, int err)
{
    pub->state = s;
    mdfeed_pub_state_t pubs = s == P_READY    ? MDFEED_PUB_READY
                              : s == P_CLOSED ? MDFEED_PUB_CLOSED
                                              : MDFEED_PUB_CONNECTING;
    if (pub->cb.on_state)
        pub->cb.on_state(pub->cb.data, pubs, err);
}

static int resolve(mdfeed_pub_t *pub, const char *spec)
{
    const char *colon = spec ? strrchr(spec, ':') : NULL;
    if (!colon || colon == spec || colon[1] == '\0' || colon - spec >= 256)
        return MDFEED_EBAD_ADDRESS;
    char host[256];
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || port == 0 || port > 65535)
        return MDFEED_EBAD_ADDRESS;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res)
        return MDFEED_EBAD_ADDRESS;
    memcpy(&pub->addr, res->ai_addr, res->ai_addrlen);
    pub->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void set_events(mdfeed_pub_t *pub, uint32_t ev)
{
    if (pub->fd < 0 || ev == pub->events)
        return;
    struct epoll_event e = {.events = ev, .data.fd = pub->fd};
    if (epoll_ctl(pub->epfd, EPOLL_CTL_MOD, pub->fd, &e) == 0)
        pub->events = ev;
}

static void drop_socket(mdfeed_pub_t *pub)
{
    if (pub->fd >= 0) {
        epoll_ctl(pub->epfd, EPOLL_CTL_DEL, pub->fd, NULL);
        close(pub->fd);
    }
    pub->fd = -1;
    pub->events = 0;
    mdfeed_soup_parser_reset(&pub->parser);
    pub->ctl_len = pub->ctl_off = 0;
}

static void close_for_good(mdfeed_pub_t *pub, int err)
{
    drop_socket(pub);
    pub->terminal = err;
    set_state(pub, P_CLOSED, err);
}

static size_t frame_len_at(const mdfeed_pub_t *pub, size_t off)
{
    return MDFEED_SOUP_LEN_PREFIX + mdfeed_get_be16(pub->out + off);
}

/* Resumes on a frame boundary: the tail of a frame half-written to a dead connection is
 * dropped (the server discards the partial frame with the connection). */
static void skip_partial_frame(mdfeed_pub_t *pub)
{
    if (pub->out_off > pub->frame_off) {
        pub->out_off = pub->frame_off + frame_len_at(pub, pub->frame_off);
        pub->frame_off = pub->out_off;
    }
}

/* A connection failed: wait and reconnect, or give up after too many failures in a row. */
static void connection_lost(mdfeed_pub_t *pub, int err)
{
    drop_socket(pub);
    skip_partial_frame(pub);
    pub->st.reconnects++;
    if (++pub->failures > pub->cfg.reconnect_attempts) {
        close_for_good(pub, MDFEED_EGAVE_UP);
        return;
    }
    pub->deadline = now_ms() + pub->delay_ms;
    pub->delay_ms = pub->delay_ms * 2 > pub->cfg.reconnect_max_ms ? pub->cfg.reconnect_max_ms
                                                                  : pub->delay_ms * 2;
    set_state(pub, P_WAIT, err);
}

static void start_login(mdfeed_pub_t *pub)
{
    int n = mdfeed_soup_encode_login_request(pub->ctl, sizeof(pub->ctl), &pub->login);
    pub->ctl_len = n > 0 ? (size_t)n : 0;
    pub->ctl_off = 0;
    pub->state = P_LOGIN;
    pub->deadline = now_ms() + pub->cfg.timeout_ms;
    pub->last_rx = now_ms();
}

static void start_connect(mdfeed_pub_t *pub)
{
    int fd = socket(pub->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        connection_lost(pub, -errno);
        return;
    }
    int one = 1;
    /* Coalescing happens in our buffer; Nagle would only add delay on top. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pub->fd = fd;
    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.fd = fd};
    if (epoll_ctl(pub->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
        connection_lost(pub, -errno);
        return;
    }
    pub->events = e.events;
    int rc = connect(fd, (struct sockaddr *)&pub->addr, pub->addrlen);
    if (rc < 0 && errno != EINPROGRESS) {
        connection_lost(pub, -errno);
        return;
    }
    pub->state = P_CONNECTING;
    pub->deadline = now_ms() + pub->cfg.timeout_ms;
}

static int on_frame(void *data, char type, const uint8_t *payload, size_t len)
{
    mdfeed_pub_t *pub = data;
    if (mdfeed_soup_frame_check(type, len) != 0)
        return MDFEED_EPROTOCOL;
    switch (type) {
    case MDFEED_SOUP_LOGIN_ACCEPTED: {
        mdfeed_soup_accept_t acc;
        if (pub->state != P_LOGIN || mdfeed_soup_decode_login_accepted(payload, len, &acc))
            return MDFEED_EPROTOCOL;
        pub->failures = 0;
        pub->delay_ms = pub->cfg.reconnect_min_ms;
        pub->st.connects++;
        set_state(pub, P_READY, 0);
        return 0;
    }
    case MDFEED_SOUP_LOGIN_REJECTED: {
        char reason = 0;
        if (mdfeed_soup_decode_login_rejected(payload, len, &reason))
            return MDFEED_EPROTOCOL;
        return reason == MDFEED_SOUP_REJECT_SESSION_NOT_AVAIL ? MDFEED_EREJECTED_SESSION
                                                              : MDFEED_EREJECTED_AUTH;
    }
    case MDFEED_SOUP_SERVER_HEARTBEAT:
        pub->st.heartbeats_received++;
        return 0;
    case MDFEED_SOUP_END_OF_SESSION:
        return MDFEED_EENDED;
    case MDFEED_SOUP_SEQUENCED_DATA:
    case MDFEED_SOUP_DEBUG:
        if (pub->cb.on_server_packet)
            pub->cb.on_server_packet(pub->cb.data, type, payload, len);
        return 0;
    default:
        return MDFEED_EPROTOCOL;
    }
}

static void read_socket(mdfeed_pub_t *pub)
{
    uint8_t buf[16384];
    for (int round = 0; round < 16 && pub->fd >= 0; round++) {
        ssize_t n = read(pub->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            int err = n == 0 ? -ECONNRESET : -errno;
            if (pub->state == P_LOGOUT)
                close_for_good(pub, MDFEED_ECLOSED);
            else
                connection_lost(pub, err);
            return;
        }
        pub->last_rx = now_ms();
        int rc = mdfeed_soup_parser_feed(&pub->parser, buf, (size_t)n, on_frame, pub);
        if (rc == MDFEED_EREJECTED_AUTH || rc == MDFEED_EREJECTED_SESSION || rc == MDFEED_EENDED) {
            close_for_good(pub, rc);
            return;
        }
        if (rc) {
            connection_lost(pub, rc);
            return;
        }
    }
}

/* Counts the whole frames the last write finished and moves frame_off past them. */
static void account_written(mdfeed_pub_t *pub)
{
    while (pub->frame_off < pub->out_len &&
           pub->frame_off + frame_len_at(pub, pub->frame_off) <= pub->out_off) {
        if (pub->out[pub->frame_off + MDFEED_SOUP_LEN_PREFIX] == MDFEED_SOUP_UNSEQUENCED_DATA)
            pub->st.messages_sent++;
        pub->frame_off += frame_len_at(pub, pub->frame_off);
    }
    if (pub->out_off == pub->out_len)
        pub->out_off = pub->out_len = pub->frame_off = 0;
}

static int write_some(mdfeed_pub_t *pub, const uint8_t *p, size_t n, size_t *off)
{
    while (*off < n) {
        /* MSG_NOSIGNAL: a peer gone away is an error to handle, not a SIGPIPE. */
        ssize_t w = send(pub->fd, p + *off, n - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (w < 0)
            return -errno;
        *off += (size_t)w;
        pub->st.bytes_sent += (uint64_t)w;
        pub->st.writes++;
        pub->last_tx = now_ms();
    }
    return 0;
}

static void write_socket(mdfeed_pub_t *pub)
{
    int rc = 0;
    if (pub->ctl_off < pub->ctl_len)
        rc = write_some(pub, pub->ctl, pub->ctl_len, &pub->ctl_off);
    if (rc == 0 && pub->ctl_off == pub->ctl_len &&
        (pub->state == P_READY || pub->state == P_LOGOUT)) {
        rc = write_some(pub, pub->out, pub->out_len, &pub->out_off);
        account_written(pub);
    }
    if (rc)
        connection_lost(pub, rc);
}

static int append_frame(mdfeed_pub_t *pub, char type, const void *msg, size_t len)
{
    size_t need = len + 3;
    if (pub->out_len + need > pub->cfg.max_buffer && pub->frame_off > 0) {
        memmove(pub->out, pub->out + pub->frame_off, pub->out_len - pub->frame_off);
        pub->out_len -= pub->frame_off;
        pub->out_off -= pub->frame_off;
        pub->frame_off = 0;
    }
    if (pub->out_len + need > pub->cfg.max_buffer)
        return MDFEED_EAGAIN;
    int n = mdfeed_soup_encode(pub->out + pub->out_len, need, type, msg, len);
    if (n < 0)
        return n;
    pub->out_len += (size_t)n;
    return 0;
}

static void run_timers(mdfeed_pub_t *pub)
{
    uint64_t now = now_ms();
    switch (pub->state) {
    case P_WAIT:
        if (now >= pub->deadline)
            start_connect(pub);
        break;
    case P_CONNECTING:
    case P_LOGIN:
        if (now >= pub->deadline)
            connection_lost(pub, MDFEED_ETIMEDOUT);
        break;
    case P_READY:
    case P_LOGOUT:
        if (now - pub->last_rx >= pub->cfg.timeout_ms) {
            if (pub->state == P_LOGOUT)
                close_for_good(pub, MDFEED_ECLOSED);
            else
                connection_lost(pub, MDFEED_EPEER_TIMEOUT);
        } else if (pub->state == P_READY && now - pub->last_tx >= pub->cfg.heartbeat_ms &&
                   pub->out_off == pub->out_len &&
                   append_frame(pub, MDFEED_SOUP_CLIENT_HEARTBEAT, NULL, 0) == 0) {
            pub->st.heartbeats_sent++;
            pub->last_tx = now;
        }
        break;
    case P_CLOSED:
        break;
    }
}

int mdfeed_pub_dispatch(mdfeed_pub_t *pub)
{
    uint64_t ticks;
    while (read(pub->tfd, &ticks, sizeof(ticks)) > 0) {
    }
    if (pub->state == P_CONNECTING && pub->fd >= 0) {
        int err = 0;
        socklen_t l = sizeof(err);
        /* SO_ERROR reports a failed connect; getpeername() succeeds once it completed. */
        if (getsockopt(pub->fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0 && err)
            connection_lost(pub, -err);
        else {
            struct sockaddr_storage peer;
            socklen_t pl = sizeof(peer);
            if (getpeername(pub->fd, (struct sockaddr *)&peer, &pl) == 0)
                start_login(pub);
        }
    }
    if (pub->fd >= 0 && pub->state != P_CONNECTING)
        read_socket(pub);
    if (pub->fd >= 0 && pub->state != P_CONNECTING)
        write_socket(pub);
    run_timers(pub);
    if (pub->fd >= 0 && pub->state != P_CONNECTING && pub->out_off < pub->out_len &&
        pub->state == P_READY)
        write_socket(pub); /* a heartbeat just queued */
    bool want_out =
        pub->state == P_CONNECTING || pub->ctl_off < pub->ctl_len ||
        ((pub->state == P_READY || pub->state == P_LOGOUT) && pub->out_off < pub->out_len);
    set_events(pub, EPOLLIN | (want_out ? EPOLLOUT : 0));
    pub->st.buffered = pub->out_len - pub->out_off;
    return pub->state == P_CLOSED ? pub->terminal : 0;
}

static int copy_field(char *dst, size_t cap, const char *src)
{
    if (!src)
        src = "";
    if (strlen(src) >= cap)
        return MDFEED_EBAD_CONFIG;
    snprintf(dst, cap, "%s", src);
    return 0;
}

int mdfeed_pub_new(mdfeed_pub_t **out, const mdfeed_pub_config_t *cfg,
                   const mdfeed_pub_callbacks_t *cbs)
{
    *out = NULL;
    if (!cfg)
        return MDFEED_EBAD_CONFIG;
    mdfeed_pub_t *pub = calloc(1, sizeof(*pub));
    if (!pub)
        return -ENOMEM;
    pub->fd = pub->epfd = pub->tfd = -1;
    pub->cfg = *cfg;
    if (cbs)
        pub->cb = *cbs;
    mdfeed_pub_config_t *c = &pub->cfg;
    c->heartbeat_ms = c->heartbeat_ms ? c->heartbeat_ms : 1000;
    c->timeout_ms = c->timeout_ms ? c->timeout_ms : 15000;
    c->reconnect_min_ms = c->reconnect_min_ms ? c->reconnect_min_ms : 100;
    c->reconnect_max_ms = c->reconnect_max_ms ? c->reconnect_max_ms : 5000;
    c->reconnect_attempts = c->reconnect_attempts ? c->reconnect_attempts : 10;
    c->max_buffer = c->max_buffer ? c->max_buffer : (4u << 20);
    c->connect = c->username = c->password = c->session = NULL;
    int rc = MDFEED_EBAD_CONFIG;
    if (c->max_buffer < 65540 || c->reconnect_min_ms > c->reconnect_max_ms)
        goto fail;
    if ((rc = copy_field(pub->login.username, sizeof(pub->login.username), cfg->username)) ||
        (rc = copy_field(pub->login.password, sizeof(pub->login.password), cfg->password)) ||
        (rc = copy_field(pub->login.session, sizeof(pub->login.session), cfg->session)))
        goto fail;
    if ((rc = resolve(pub, cfg->connect)))
        goto fail;
    /* Validates the login fields once, so a bad user name fails here and not at connect. */
    if ((rc = mdfeed_soup_encode_login_request(pub->ctl, sizeof(pub->ctl), &pub->login)) < 0)
        goto fail;
    if ((rc = mdfeed_soup_parser_init(&pub->parser, MDFEED_SOUP_MAX_FRAME)))
        goto fail;
    rc = -ENOMEM;
    if (!(pub->out = malloc(c->max_buffer)))
        goto fail;
    pub->epfd = epoll_create1(EPOLL_CLOEXEC);
    pub->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (pub->epfd < 0 || pub->tfd < 0) {
        rc = -errno;
        goto fail;
    }
    /* A periodic tick drives heartbeats, timeouts and reconnects; no per-write re-arming. */
    uint32_t tick = c->heartbeat_ms / 4;
    tick = tick < 5 ? 5 : tick > 50 ? 50 : tick;
    struct itimerspec its = {.it_interval = {0, (long)tick * 1000000},
                             .it_value = {0, (long)tick * 1000000}};
    struct epoll_event e = {.events = EPOLLIN, .data.fd = pub->tfd};
    if (timerfd_settime(pub->tfd, 0, &its, NULL) < 0 ||
        epoll_ctl(pub->epfd, EPOLL_CTL_ADD, pub->tfd, &e) < 0) {
        rc = -errno;
        goto fail;
    }
    pub->delay_ms = c->reconnect_min_ms;
    pub->last_tx = now_ms();
    start_connect(pub);
    *out = pub;
    return 0;
fail:
    mdfeed_pub_free(pub);
    return rc;
}

void mdfeed_pub_free(mdfeed_pub_t *pub)
{
    if (!pub)
        return;
    drop_socket(pub);
    if (pub->epfd >= 0)
        close(pub->epfd);
    if (pub->tfd >= 0)
        close(pub->tfd);
    mdfeed_soup_parser_close(&pub->parser);
    free(pub->out);
    free(pub);
}

int mdfeed_pub_fd(const mdfeed_pub_t *pub)
{
    return pub->epfd;
}

int mdfeed_pub_send(mdfeed_pub_t *pub, const void *msg, size_t len)
{
    if (pub->state == P_CLOSED)
        return pub->terminal;
    if (pub->state == P_LOGOUT)
        return MDFEED_ECLOSED;
    if (len > MDFEED_SOUP_MAX_FRAME - 1)
        return MDFEED_ETOOBIG;
    return append_frame(pub, MDFEED_SOUP_UNSEQUENCED_DATA, msg, len);
}

typedef bool (*pub_cond_fn)(const mdfeed_pub_t *pub);

static int wait_until(mdfeed_pub_t *pub, pub_cond_fn done, int timeout_ms)
{
    uint64_t end = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int rc = mdfeed_pub_dispatch(pub);
        if (done(pub))
            return 0;
        if (rc)
            return rc;
        uint64_t now = now_ms();
        if (now >= end)
            return MDFEED_ETIMEDOUT;
        struct epoll_event ev;
        int wait = end - now > 100 ? 100 : (int)(end - now);
        if (epoll_wait(pub->epfd, &ev, 1, wait) < 0 && errno != EINTR)
            return -errno;
    }
}

static bool is_ready(const mdfeed_pub_t *pub)
{
    return pub->state == P_READY;
}

static bool is_flushed(const mdfeed_pub_t *pub)
{
    return pub->state == P_READY && pub->out_off == pub->out_len;
}

static bool is_closed(const mdfeed_pub_t *pub)
{
    return pub->state == P_CLOSED;
}

int mdfeed_pub_wait_ready(mdfeed_pub_t *pub, int timeout_ms)
{
    return wait_until(pub, is_ready, timeout_ms);
}

int mdfeed_pub_flush(mdfeed_pub_t *pub, int timeout_ms)
{
    return wait_until(pub, is_flushed, timeout_ms);
}

int mdfeed_pub_close(mdfeed_pub_t *pub, int timeout_ms)
{
    if (pub->state == P_CLOSED)
        return pub->terminal == MDFEED_ECLOSED ? 0 : pub->terminal;
    int rc = mdfeed_pub_flush(pub, timeout_ms);
    if (rc == 0 && append_frame(pub, MDFEED_SOUP_LOGOUT_REQUEST, NULL, 0) == 0) {
        pub->state = P_LOGOUT;
        rc = wait_until(pub, is_closed, timeout_ms);
    }
    if (pub->state != P_CLOSED)
        close_for_good(pub, MDFEED_ECLOSED);
    return rc;
}

mdfeed_pub_state_t mdfeed_pub_state(const mdfeed_pub_t *pub)
{
    return pub->state == P_READY    ? MDFEED_PUB_READY
           : pub->state == P_CLOSED ? MDFEED_PUB_CLOSED
                                    : MDFEED_PUB_CONNECTING;
}

void mdfeed_pub_stats(const mdfeed_pub_t *pub, mdfeed_pub_stats_t *out)
{
    *out = pub->st;
    out->buffered = pub->out_len - pub->out_off;
}
