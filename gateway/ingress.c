/* Ingress, listen mode: a SoupBinTCP 3.0 server for publishers. A publisher logs in with a
 * configured username/password (which names its channel) and sends unsequenced data packets,
 * one message each. Anything malformed or out of order closes that connection only, with a
 * log line naming the peer and the reason; every other publisher keeps flowing. */
#include "ingress.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct conn {
    uv_tcp_t tcp;
    gw_ingress_t *in;
    struct conn *prev, *next;
    mdfeed_soup_parser_t parser;
    int user; /* index into cfg.users, -1 before login */
    bool closing;
    uint64_t last_rx_ms, last_tx_ms;
    uint64_t arrival_ns; /* of the bytes being parsed */
    bool login_pending;  /* Login Accepted waits for the journal to catch up (acks) */
    size_t ack_backlog;  /* ack bytes queued in libuv, not yet written */
    char peer[48];
} conn_t;

/* Acknowledged publishing (docs/GATEWAY.md): the point up to which a user's messages are
 * acknowledged once the journal made channel sequence `seq` durable. */
typedef struct {
    uint64_t seq;
    uint64_t user_seq;
} ack_point_t;

#define ACK_POINTS      4096
#define ACK_BACKLOG_MAX (1u << 20) /* a publisher that never reads its acks stops getting them */

typedef struct {
    conn_t *owner;    /* the connection logged in as this user, or NULL */
    uint64_t acked;   /* the user's messages acknowledged in this session */
    uint64_t pointed; /* user_seq of the newest ack point */
    ack_point_t points[ACK_POINTS];
    unsigned head, len;
} user_acks_t;

struct gw_ingress {
    uv_loop_t *loop;
    const gw_config_t *cfg;
    gw_sequencer_t *sq;
    gw_ingress_stats_t *stats;
    bool paused;        /* back-pressure: publishers are not read */
    bool stopping;      /* nothing is sequenced after stop */
    bool deferred_acks; /* acks wait for gw_ingress_ack() (the journal) */
    user_acks_t *users; /* cfg.nusers */
    uv_tcp_t server;
    uv_timer_t timer;
    conn_t *conns;
    int nconns;
    int open_handles; /* freed when both the server and the timer have closed */
    char rbuf[65536];
};

const char *const gw_close_reason_names[GW_CLOSE_NREASONS] = {
    "garbage",      "oversize",  "empty_frame", "before_login",
    "second_login", "bad_login", "idle",        "other"};

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    mdfeed_soup_parser_close(&c->parser);
    free(c);
}

static void close_conn(conn_t *c, int reason, const char *detail)
{
    if (c->closing)
        return;
    c->closing = true;
    gw_ingress_t *in = c->in;
    if (reason >= 0) {
        in->stats->rejected[reason]++;
        gw_log(GW_LOG_WARN, "publisher %s%s%s: closing: %s", c->peer, c->user >= 0 ? " user " : "",
               c->user >= 0 ? in->cfg->users[c->user].username : "", detail);
    } else {
        gw_log(GW_LOG_INFO, "publisher %s: %s", c->peer, detail);
    }
    if (c->user >= 0) {
        in->stats->publishers--;
        if (in->users[c->user].owner == c)
            in->users[c->user].owner = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        in->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    in->nconns--;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
    char data[64];
} write_t;

static void on_written(uv_write_t *req, int status)
{
    (void)status; /* a failed write shows up as a read error or EOF on the same stream */
    free(req->data);
}

/* Sends one small frame (login reply, heartbeat). */
static void send_frame(conn_t *c, const void *frame, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)frame, (unsigned)len);
    int rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (rc == (int)len) {
        c->last_tx_ms = uv_now(c->in->loop);
        return;
    }
    size_t off = rc > 0 ? (size_t)rc : 0;
    write_t *w = malloc(sizeof(*w));
    if (!w || len - off > sizeof(w->data)) {
        free(w);
        return;
    }
    memcpy(w->data, (const char *)frame + off, len - off);
    w->buf = uv_buf_init(w->data, (unsigned)(len - off));
    w->req.data = w;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_written) != 0)
        free(w);
    c->last_tx_ms = uv_now(c->in->loop);
}

typedef struct {
    uv_write_t req;
    conn_t *c;
    size_t len;
    uv_buf_t buf;
    char data[];
} ack_write_t;

static void on_ack_written(uv_write_t *req, int status)
{
    (void)status;
    ack_write_t *w = req->data;
    w->c->ack_backlog -= w->len;
    free(w);
}

/* Sends `n` acknowledgements (empty sequenced data packets, 3 bytes each) in one write,
 * what the socket does not take at once queued behind, bounded per connection. */
static void send_acks(conn_t *c, uint64_t n)
{
    static const uint8_t ack[3] = {0, 1, MDFEED_SOUP_SEQUENCED_DATA};
    gw_ingress_t *in = c->in;
    if (n == 0 || c->closing)
        return;
    if (c->ack_backlog + n * 3 > ACK_BACKLOG_MAX) {
        in->stats->acks_dropped += n; /* it learns the count from its next Login Accepted */
        return;
    }
    size_t len = (size_t)n * 3;
    ack_write_t *w = malloc(sizeof(*w) + len);
    if (!w) {
        in->stats->acks_dropped += n;
        return;
    }
    for (size_t k = 0; k < len; k += 3)
        memcpy(w->data + k, ack, 3);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int rc = c->ack_backlog ? 0 : uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    size_t done = rc > 0 ? (size_t)rc : 0;
    in->stats->acks_sent += n;
    c->last_tx_ms = uv_now(in->loop);
    if (done == len) {
        free(w);
        return;
    }
    memmove(w->data, w->data + done, len - done);
    w->len = len - done;
    w->c = c;
    w->buf = uv_buf_init(w->data, (unsigned)w->len);
    w->req.data = w;
    c->ack_backlog += w->len;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_ack_written) != 0) {
        c->ack_backlog -= w->len;
        free(w);
    }
}

/* The user's messages up to `user_seq` are acknowledged. */
static void ack_user(gw_ingress_t *in, int u, uint64_t user_seq)
{
    user_acks_t *ua = &in->users[u];
    if (user_seq <= ua->acked)
        return;
    uint64_t n = user_seq - ua->acked;
    ua->acked = user_seq;
    if (ua->owner && !ua->owner->login_pending)
        send_acks(ua->owner, n);
}

/* After a read: without a journal, what was sequenced is acknowledged now; with one, an ack
 * point waits for the journal's durable mark to pass the channel's last sequence number. */
static void note_accepted(gw_ingress_t *in, int u)
{
    user_acks_t *ua = &in->users[u];
    uint64_t user_seq = in->sq->user_seq[u];
    if (!in->deferred_acks) {
        ack_user(in, u, user_seq);
        return;
    }
    if (user_seq == ua->pointed)
        return;
    ua->pointed = user_seq;
    ack_point_t pt = {gw_sequencer_next(in->sq, in->cfg->users[u].channel) - 1, user_seq};
    if (ua->len == ACK_POINTS) /* full: the newest point covers the previous one too */
        ua->points[(ua->head + ua->len - 1) % ACK_POINTS] = pt;
    else
        ua->points[(ua->head + ua->len++) % ACK_POINTS] = pt;
}

static void send_login_accepted(conn_t *c)
{
    gw_ingress_t *in = c->in;
    int ch = in->cfg->users[c->user].channel;
    mdfeed_soup_accept_t acc;
    memset(&acc, 0, sizeof(acc));
    mdfeed_mold_session_str(in->cfg->channels[ch].session, acc.session);
    /* The next message the gateway expects from this user: everything below is held. */
    acc.seq = in->users[c->user].acked + 1;
    uint8_t f[64];
    int n = mdfeed_soup_encode_login_accepted(f, sizeof(f), &acc);
    if (n > 0)
        send_frame(c, f, (size_t)n);
    c->login_pending = false;
}

void gw_ingress_ack(gw_ingress_t *in, int ch, uint64_t durable_seq)
{
    if (!in)
        return;
    for (int u = 0; u < in->cfg->nusers; u++) {
        if (in->cfg->users[u].channel != ch)
            continue;
        user_acks_t *ua = &in->users[u];
        uint64_t upto = ua->acked;
        while (ua->len && ua->points[ua->head].seq <= durable_seq) {
            upto = ua->points[ua->head].user_seq;
            ua->head = (ua->head + 1) % ACK_POINTS;
            ua->len--;
        }
        ack_user(in, u, upto);
        if (ua->owner && ua->owner->login_pending && ua->len == 0)
            send_login_accepted(ua->owner);
    }
}

void gw_ingress_set_deferred_acks(gw_ingress_t *in, bool deferred)
{
    if (!in)
        return;
    in->deferred_acks = deferred;
    /* What the journal recovered is on disk: acknowledged. */
    for (int u = 0; u < in->cfg->nusers; u++)
        in->users[u].acked = in->users[u].pointed = in->sq->user_seq[u];
}

void gw_ingress_logout_all(gw_ingress_t *in, const char *why)
{
    if (!in)
        return;
    while (in->conns)
        close_conn(in->conns, -1, why);
    for (int u = 0; u < in->cfg->nusers; u++) {
        user_acks_t *ua = &in->users[u];
        ua->acked = ua->pointed = 0;
        ua->head = ua->len = 0;
    }
}

static int find_user(const gw_config_t *cfg, const mdfeed_soup_login_t *l)
{
    for (int i = 0; i < cfg->nusers; i++)
        if (strcmp(cfg->users[i].username, l->username) == 0 &&
            strcmp(cfg->users[i].password, l->password) == 0)
            return i;
    return -1;
}

static void reject(conn_t *c, char reason, const char *why)
{
    uint8_t f[8];
    int n = mdfeed_soup_encode_login_rejected(f, sizeof(f), reason);
    if (n > 0)
        send_frame(c, f, (size_t)n);
    c->in->stats->rejected[GW_CLOSE_BAD_LOGIN]++;
    gw_log(GW_LOG_WARN, "publisher %s: login rejected (%c): %s", c->peer, reason, why);
    close_conn(c, -1, "closed after login reject");
}

static int on_login(conn_t *c, const uint8_t *payload, size_t len)
{
    gw_ingress_t *in = c->in;
    const gw_config_t *cfg = in->cfg;
    mdfeed_soup_login_t login;
    if (c->user >= 0) {
        close_conn(c, GW_CLOSE_SECOND_LOGIN, "second login request");
        return 1;
    }
    int rc = mdfeed_soup_decode_login_request(payload, len, &login);
    if (rc) {
        char why[128];
        snprintf(why, sizeof(why), "bad login request: %s", mdfeed_strerror(rc));
        close_conn(c, GW_CLOSE_BAD_LOGIN, why);
        return 1;
    }
    int u = find_user(cfg, &login);
    if (u < 0) {
        reject(c, MDFEED_SOUP_REJECT_NOT_AUTHORIZED, "unknown user or wrong password");
        return 1;
    }
    int ch = cfg->users[u].channel;
    char session[MDFEED_MOLD_SESSION_LEN + 1];
    mdfeed_mold_session_str(cfg->channels[ch].session, session);
    if (login.session[0] && strcmp(login.session, session) != 0) {
        reject(c, MDFEED_SOUP_REJECT_SESSION_NOT_AVAIL, "requested session is not current");
        return 1;
    }
    user_acks_t *ua = &in->users[u];
    if (ua->owner) /* a publisher reconnecting before its old connection timed out */
        close_conn(ua->owner, -1, "replaced by a new login of the same user");
    c->user = u;
    ua->owner = c;
    in->stats->publishers++;
    /* Its Login Accepted says how many of its messages are held: with messages still on
     * their way to the journal, that number is known only when they are durable. */
    c->login_pending = true;
    if (ua->len == 0)
        send_login_accepted(c);
    gw_log(GW_LOG_INFO, "publisher %s: logged in as %s on channel %s", c->peer,
           cfg->users[u].username, cfg->channels[ch].name);
    return 0;
}

/* Out of line: its message buffer would otherwise put a stack-protector check on every
 * frame of on_frame(). */
static __attribute__((noinline)) void close_bad_type(conn_t *c, char type)
{
    char why[96];
    if (mdfeed_soup_type_known(type))
        snprintf(why, sizeof(why), "unexpected packet type '%c' (%s) from a client", type,
                 mdfeed_soup_type_name(type));
    else
        snprintf(why, sizeof(why), "unknown packet type 0x%02x", (unsigned char)type);
    close_conn(c, GW_CLOSE_GARBAGE, why);
}

static int on_frame(void *data, char type, const uint8_t *payload, size_t len)
{
    conn_t *c = data;
    gw_ingress_t *in = c->in;
    switch (type) {
    case MDFEED_SOUP_LOGIN_REQUEST:
        return on_login(c, payload, len);
    case MDFEED_SOUP_UNSEQUENCED_DATA:
        if (c->user < 0) {
            close_conn(c, GW_CLOSE_BEFORE_LOGIN, "data before login");
            return 1;
        }
        if (in->stopping)
            return 0; /* ingress is stopping: nothing after the end of session */
        if (gw_sequence(in->sq, in->cfg->users[c->user].channel, c->user, payload, len,
                        c->arrival_ns) == 0) {
            close_conn(c, GW_CLOSE_OTHER, "message could not be sequenced");
            return 1;
        }
        in->stats->messages_in[c->user]++;
        in->stats->bytes_in[c->user] += len;
        note_accepted(in, c->user);
        return 0;
    case MDFEED_SOUP_CLIENT_HEARTBEAT:
    case MDFEED_SOUP_DEBUG:
        return 0;
    case MDFEED_SOUP_LOGOUT_REQUEST:
        close_conn(c, -1, "logged out");
        return 1;
    default:
        close_bad_type(c, type);
        return 1;
    }
}

/* Hot path: the complete unsequenced-data frames of a logged-in publisher, taken straight
 * from the read buffer without the parser's per-frame callback, with the per-user counters
 * added once per read. Frames are cut by the library's own rule (mdfeed_soup_frame_complete,
 * the parser's), and it stops at the first frame that is anything else -- another type, a
 * bad length, a frame cut by the end of the read -- so the parser takes the rest from
 * exactly there and reports with its own codes. Returns the bytes consumed; a message that
 * cannot be sequenced closes the connection, as on_frame() does. */
static size_t sequence_data_frames(conn_t *c, const uint8_t *in, size_t n)
{
    gw_ingress_t *ig = c->in;
    if (c->user < 0 || ig->stopping || c->parser.error || mdfeed_soup_parser_partial(&c->parser))
        return 0;
    int ch = ig->cfg->users[c->user].channel;
    size_t max_frame = c->parser.max_frame;
    const uint8_t *p = in, *end = in + n;
    uint64_t msgs = 0, bytes = 0;
    for (;;) {
        size_t size = mdfeed_soup_frame_complete(p, (size_t)(end - p), max_frame);
        if (size == 0 || p[MDFEED_SOUP_LEN_PREFIX] != MDFEED_SOUP_UNSEQUENCED_DATA)
            break;
        size_t len = size - MDFEED_SOUP_LEN_PREFIX - 1;
        if (gw_sequence(ig->sq, ch, c->user, p + MDFEED_SOUP_LEN_PREFIX + 1, len, c->arrival_ns) ==
            0) {
            close_conn(c, GW_CLOSE_OTHER, "message could not be sequenced");
            break;
        }
        msgs++;
        bytes += len;
        p += size;
    }
    ig->stats->messages_in[c->user] += msgs;
    ig->stats->bytes_in[c->user] += bytes;
    if (msgs)
        note_accepted(ig, c->user);
    return (size_t)(p - in);
}

/* How many of the `n` bytes the parser should take while it holds a partial frame: those
 * that complete it (the fast path can then resume after them), or all of them when its
 * length prefix is incomplete (one byte at a time) or bad (the parser reports it). */
static size_t parser_span(const mdfeed_soup_parser_t *p, size_t n)
{
    if (p->len < MDFEED_SOUP_LEN_PREFIX)
        return 1;
    size_t flen = ((size_t)p->buf[0] << 8) | p->buf[1];
    if (flen == 0 || flen > p->max_frame)
        return n;
    size_t need = flen + MDFEED_SOUP_LEN_PREFIX - p->len;
    return need < n ? need : n;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_t *c = h->data;
    gw_ingress_t *in = c->in;
    /* Reads are parsed synchronously in on_read, so one buffer serves every connection. */
    *buf = uv_buf_init(in->rbuf, sizeof(in->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    conn_t *c = s->data;
    if (n == 0 || c->closing)
        return;
    if (n < 0) {
        if (n == UV_EOF)
            close_conn(c, mdfeed_soup_parser_partial(&c->parser) ? GW_CLOSE_OTHER : -1,
                       mdfeed_soup_parser_partial(&c->parser) ? "closed mid-frame"
                                                              : "disconnected");
        else
            close_conn(c, GW_CLOSE_OTHER, uv_strerror((int)n));
        return;
    }
    c->last_rx_ms = uv_now(c->in->loop);
    c->arrival_ns = uv_hrtime(); /* one clock read per read(), shared by its messages */
    /* The parser finishes a frame split by the previous read, the fast path takes the run of
     * data frames after it, and the parser takes whatever the fast path stops at, to the end
     * (at most two parser feeds per read beyond the one-byte steps of a split prefix). */
    const uint8_t *in = (const uint8_t *)c->in->rbuf;
    size_t off = 0, len = (size_t)n;
    int rc = 0;
    while (off < len && rc == 0 && !c->closing) {
        size_t k;
        if (mdfeed_soup_parser_partial(&c->parser)) {
            k = parser_span(&c->parser, len - off);
        } else {
            off += sequence_data_frames(c, in + off, len - off);
            if (off == len || c->closing)
                break;
            k = len - off;
        }
        rc = mdfeed_soup_parser_feed(&c->parser, in + off, k, on_frame, c);
        off += k;
    }
    if (c->closing)
        return;
    if (rc == MDFEED_ESOUP_OVERSIZE)
        close_conn(c, GW_CLOSE_OVERSIZE, "frame longer than the payload budget allows");
    else if (rc == MDFEED_ESOUP_EMPTY)
        close_conn(c, GW_CLOSE_EMPTY, "zero-length frame");
    else if (rc < 0)
        close_conn(c, GW_CLOSE_GARBAGE, mdfeed_strerror(rc));
}

static void on_connection(uv_stream_t *server, int status)
{
    gw_ingress_t *in = server->data;
    if (status < 0) {
        gw_log(GW_LOG_WARN, "ingress accept: %s", uv_strerror(status));
        return;
    }
    conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->in = in;
    c->user = -1;
    uv_tcp_init(in->loop, &c->tcp);
    c->tcp.data = c;
    /* The largest frame: type byte + the largest message one packet can carry. */
    size_t max_frame =
        1 + in->cfg->payload_budget - MDFEED_MOLD_HEADER_LEN - MDFEED_MOLD_BLOCK_HDR_LEN;
    if (mdfeed_soup_parser_init(&c->parser, max_frame) != 0 ||
        uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        port = ntohs(sin->sin_port);
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, port);
    uv_tcp_nodelay(&c->tcp, 1);
    c->next = in->conns;
    if (in->conns)
        in->conns->prev = c;
    in->conns = c;
    in->nconns++;
    c->last_rx_ms = c->last_tx_ms = uv_now(in->loop);
    if (!in->paused)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    gw_log(GW_LOG_DEBUG, "publisher %s: connected", c->peer);
}

/* Server heartbeats after a second of silence, and drops of silent clients. */
static void on_timer(uv_timer_t *t)
{
    gw_ingress_t *in = t->data;
    uint64_t now = uv_now(in->loop);
    conn_t *next;
    for (conn_t *c = in->conns; c; c = next) {
        next = c->next;
        if (in->paused)
            c->last_rx_ms = now; /* we are not reading: their silence is ours */
        if (now - c->last_rx_ms >= in->cfg->idle_timeout_ms) {
            close_conn(c, GW_CLOSE_IDLE, "silent past the idle timeout");
            continue;
        }
        if (c->user >= 0 && now - c->last_tx_ms >= in->cfg->ingress_heartbeat_ms) {
            uint8_t f[4];
            int n = mdfeed_soup_encode(f, sizeof(f), MDFEED_SOUP_SERVER_HEARTBEAT, NULL, 0);
            if (n > 0)
                send_frame(c, f, (size_t)n);
        }
    }
}

int gw_ingress_start(gw_ingress_t **out, uv_loop_t *loop, const gw_config_t *cfg,
                     gw_sequencer_t *sq, gw_ingress_stats_t *stats)
{
    gw_ingress_t *in = calloc(1, sizeof(*in));
    *out = in;
    if (!in)
        return -1;
    in->loop = loop;
    in->cfg = cfg;
    in->sq = sq;
    in->stats = stats;
    in->users = calloc((size_t)(cfg->nusers ? cfg->nusers : 1), sizeof(*in->users));
    if (!in->users)
        return -1;
    uv_tcp_init(loop, &in->server);
    in->server.data = in;
    uv_timer_init(loop, &in->timer);
    in->timer.data = in;
    int rc = uv_tcp_bind(&in->server, (const struct sockaddr *)&cfg->ingress_listen, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&in->server, 128, on_connection);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &cfg->ingress_listen.sin_addr, ip, sizeof(ip));
    if (rc) {
        gw_log(GW_LOG_ERROR, "ingress listen on %s:%u: %s", ip, ntohs(cfg->ingress_listen.sin_port),
               uv_strerror(rc));
        return -1;
    }
    uint64_t tick = cfg->ingress_heartbeat_ms / 4 ? cfg->ingress_heartbeat_ms / 4 : 1;
    uv_timer_start(&in->timer, on_timer, tick, tick);
    struct sockaddr_in bound;
    int bl = sizeof(bound);
    uv_tcp_getsockname(&in->server, (struct sockaddr *)&bound, &bl);
    gw_log(GW_LOG_INFO, "ingress listening on %s:%u (SoupBinTCP)", ip, ntohs(bound.sin_port));
    return 0;
}

/* libuv runs close callbacks in its own order: free only after the last one. */
static void free_ingress(uv_handle_t *h)
{
    gw_ingress_t *in = h->data;
    if (--in->open_handles == 0) {
        free(in->users);
        free(in);
    }
}

void gw_ingress_stop(gw_ingress_t *in)
{
    if (!in)
        return;
    in->stopping = true;
    while (in->conns)
        close_conn(in->conns, -1, "gateway shutting down");
    uv_timer_stop(&in->timer);
    in->open_handles = 2;
    uv_close((uv_handle_t *)&in->timer, free_ingress);
    uv_close((uv_handle_t *)&in->server, free_ingress);
}

void gw_ingress_set_paused(gw_ingress_t *in, bool paused)
{
    if (!in)
        return;
    in->paused = paused;
    for (conn_t *c = in->conns; c; c = c->next) {
        if (c->closing)
            continue;
        if (paused)
            uv_read_stop((uv_stream_t *)&c->tcp);
        else
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}
