/* A small SoupBinTCP 3.0 server for tests: accepts one client at a time, answers the login
 * (accept, or reject with 'A' / 'S'), records unsequenced messages through a callback,
 * counts client heartbeats, optionally sends server heartbeats, closes on logout. Single
 * threaded and non-blocking: call soup_server_poll() from the test's loop. Built on the
 * library's codecs (header-only, so the unit test and the soup-sink tool share it). */
#ifndef MDCAST_TEST_SOUP_SERVER_H
#define MDCAST_TEST_SOUP_SERVER_H

#include "mdfeed/soupbintcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int lfd, cfd;
    uint16_t port;
    const char *user, *password; /* expected credentials */
    char reject;                 /* 0, or the reason to reject every login with */
    uint32_t heartbeat_ms;       /* 0 = never send server heartbeats */
    void (*on_msg)(void *data, const uint8_t *msg, size_t len);
    void *data;
    mdfeed_soup_parser_t parser;
    uint64_t logins, rejects, messages, heartbeats, logouts, connections, protocol_errors;
    uint64_t last_tx_ms;
} soup_server_t;

static inline uint64_t soup_server_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Listens on 127.0.0.1:port (0 = any free port; the chosen one is in s->port). */
static inline int soup_server_init(soup_server_t *s, uint16_t port)
{
    s->cfd = -1;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s->lfd < 0)
        return -errno;
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s->lfd, 4) < 0 ||
        getsockname(s->lfd, (struct sockaddr *)&sa, &sl) < 0)
        return -errno;
    s->port = ntohs(sa.sin_port);
    return mdfeed_soup_parser_init(&s->parser, MDFEED_SOUP_MAX_FRAME);
}

static inline void soup_server_drop(soup_server_t *s)
{
    if (s->cfd >= 0)
        close(s->cfd);
    s->cfd = -1;
    mdfeed_soup_parser_reset(&s->parser);
}

static inline void soup_server_close(soup_server_t *s)
{
    soup_server_drop(s);
    if (s->lfd >= 0)
        close(s->lfd);
    s->lfd = -1;
    mdfeed_soup_parser_close(&s->parser);
}

static inline void soup_server_send(soup_server_t *s, const uint8_t *buf, int n)
{
    if (s->cfd >= 0 && n > 0 && send(s->cfd, buf, (size_t)n, MSG_NOSIGNAL) == n)
        s->last_tx_ms = soup_server_now_ms();
}

static inline int soup_server_frame(void *data, char type, const uint8_t *p, size_t len)
{
    soup_server_t *s = data;
    uint8_t out[64];
    switch (type) {
    case MDFEED_SOUP_LOGIN_REQUEST: {
        mdfeed_soup_login_t l;
        if (mdfeed_soup_decode_login_request(p, len, &l))
            return -1;
        bool ok = !s->reject && (!s->user || !strcmp(l.username, s->user)) &&
                  (!s->password || !strcmp(l.password, s->password));
        if (!ok) {
            s->rejects++;
            soup_server_send(
                s, out,
                mdfeed_soup_encode_login_rejected(out, sizeof(out), s->reject ? s->reject : 'A'));
            return 1; /* close after a reject */
        }
        mdfeed_soup_accept_t a = {.seq = 1};
        snprintf(a.session, sizeof(a.session), "TEST");
        s->logins++;
        soup_server_send(s, out, mdfeed_soup_encode_login_accepted(out, sizeof(out), &a));
        return 0;
    }
    case MDFEED_SOUP_UNSEQUENCED_DATA:
        s->messages++;
        if (s->on_msg)
            s->on_msg(s->data, p, len);
        return 0;
    case MDFEED_SOUP_CLIENT_HEARTBEAT:
        s->heartbeats++;
        return 0;
    case MDFEED_SOUP_LOGOUT_REQUEST:
        s->logouts++;
        return 1;
    default:
        s->protocol_errors++;
        return 1;
    }
}

/* Accepts, reads and answers whatever is ready; never blocks. */
static inline void soup_server_poll(soup_server_t *s)
{
    if (s->cfd < 0) {
        s->cfd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK);
        if (s->cfd < 0)
            return;
        s->connections++;
    }
    for (int i = 0; i < 64 && s->cfd >= 0; i++) {
        uint8_t buf[16384];
        ssize_t n = recv(s->cfd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) {
            soup_server_drop(s);
            return;
        }
        if (mdfeed_soup_parser_feed(&s->parser, buf, (size_t)n, soup_server_frame, s) != 0) {
            soup_server_drop(s);
            return;
        }
    }
    if (s->cfd >= 0 && s->heartbeat_ms && soup_server_now_ms() - s->last_tx_ms >= s->heartbeat_ms) {
        uint8_t out[8];
        soup_server_send(
            s, out, mdfeed_soup_encode(out, sizeof(out), MDFEED_SOUP_SERVER_HEARTBEAT, NULL, 0));
    }
}

#endif
