/* Ingress, connect mode: the gateway is a SoupBinTCP client of an upstream server and takes
 * its sequenced data. The channel's MoldUDP64 sequence numbers are the upstream's, so several
 * gateways on the same upstream session publish identical sequences (one line A, another line
 * B) and consumers arbitrate. On every (re)connection the gateway logs in asking for the next
 * sequence number it needs, so nothing is lost across a reconnect: replayed messages it already
 * has are skipped, and a gap the server cannot fill is logged and counted. */
#include "ingress.h"

#include "log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { UP_IDLE, UP_CONNECTING, UP_LOGIN_SENT, UP_ACTIVE, UP_ENDED };

typedef struct up {
    gw_upstreams_t *ups;
    int ch;
    int state;
    uv_tcp_t tcp;
    bool tcp_open;
    uv_connect_t creq;
    uv_timer_t timer; /* reconnect delay, then heartbeats and the idle check */
    mdfeed_soup_parser_t parser;
    uint64_t expect; /* upstream sequence number of the next sequenced data packet */
    uint64_t last_rx_ms, last_tx_ms;
    uint64_t arrival_ns;
    uint32_t failures; /* consecutive, for the log */
    bool stopping;
    char rbuf[65536];
} up_t;

struct gw_upstreams {
    uv_loop_t *loop;
    const gw_config_t *cfg;
    gw_sequencer_t *sq;
    gw_upstream_stats_t *stats;
    bool paused; /* back-pressure: upstreams are not read */
    up_t up[GW_MAX_CHANNELS];
};

static void schedule_reconnect(up_t *u);

static const gw_channel_config_t *chan_cfg(const up_t *u)
{
    return &u->ups->cfg->channels[u->ch];
}

typedef struct {
    uv_write_t req;
    char data[80];
} up_write_t;

static void on_written(uv_write_t *req, int status)
{
    (void)status; /* a failed write surfaces as a read error on the same stream */
    free(req->data);
}

static void send_frame(up_t *u, const void *frame, size_t len)
{
    up_write_t *w = malloc(sizeof(*w));
    if (!w || len > sizeof(w->data)) {
        free(w);
        return;
    }
    memcpy(w->data, frame, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    w->req.data = w;
    if (uv_write(&w->req, (uv_stream_t *)&u->tcp, &b, 1, on_written) != 0)
        free(w);
    u->last_tx_ms = uv_now(u->ups->loop);
}

static void on_closed(uv_handle_t *h)
{
    up_t *u = h->data;
    u->tcp_open = false;
    mdfeed_soup_parser_close(&u->parser);
    if (!u->stopping && u->state != UP_ENDED)
        schedule_reconnect(u);
}

static void drop(up_t *u, int level, const char *why)
{
    if (!u->tcp_open || uv_is_closing((uv_handle_t *)&u->tcp))
        return;
    gw_log(level, "channel %s: upstream %s", chan_cfg(u)->name, why);
    if (u->state == UP_ACTIVE)
        u->ups->stats->connected[u->ch] = 0;
    if (u->state != UP_ENDED)
        u->state = UP_IDLE;
    uv_read_stop((uv_stream_t *)&u->tcp);
    uv_close((uv_handle_t *)&u->tcp, on_closed);
}

static int on_accepted(up_t *u, const uint8_t *payload, size_t len)
{
    mdfeed_soup_accept_t acc;
    gw_sequencer_t *sq = u->ups->sq;
    gw_upstream_stats_t *st = u->ups->stats;
    if (mdfeed_soup_decode_login_accepted(payload, len, &acc) != 0) {
        drop(u, GW_LOG_WARN, "sent a malformed login accepted");
        return 1;
    }
    u->state = UP_ACTIVE;
    u->failures = 0;
    u->expect = acc.seq;
    st->connects[u->ch]++;
    st->connected[u->ch] = 1;
    uint64_t next = gw_sequencer_next(sq, u->ch);
    if (acc.seq > next) {
        /* The server cannot replay what we miss: follow its numbering, count the gap. */
        st->skipped[u->ch] += acc.seq - next;
        gw_log(GW_LOG_WARN,
               "channel %s: upstream resumes at %llu but %llu was next: %llu messages lost",
               chan_cfg(u)->name, (unsigned long long)acc.seq, (unsigned long long)next,
               (unsigned long long)(acc.seq - next));
        gw_sequencer_skip_to(sq, u->ch, acc.seq);
    }
    gw_log(GW_LOG_INFO, "channel %s: upstream session %s accepted, next sequence %llu",
           chan_cfg(u)->name, acc.session, (unsigned long long)acc.seq);
    return 0;
}

static int on_sequenced(up_t *u, const uint8_t *payload, size_t len)
{
    gw_sequencer_t *sq = u->ups->sq;
    uint64_t seq = u->expect++;
    if (seq < gw_sequencer_next(sq, u->ch)) {
        u->ups->stats->duplicates[u->ch]++; /* replay of what we already sequenced */
        return 0;
    }
    if (u->stopping)
        return 0;
    if (gw_sequence(sq, u->ch, -1, payload, len, u->arrival_ns) == 0) {
        drop(u, GW_LOG_ERROR, "message could not be sequenced");
        return 1;
    }
    u->ups->stats->messages[u->ch]++;
    return 0;
}

static int on_frame(void *data, char type, const uint8_t *payload, size_t len)
{
    up_t *u = data;
    char why[96];
    if (u->state == UP_LOGIN_SENT) {
        if (type == MDFEED_SOUP_LOGIN_ACCEPTED)
            return on_accepted(u, payload, len);
        if (type == MDFEED_SOUP_LOGIN_REJECTED) {
            snprintf(why, sizeof(why), "rejected the login (reason '%c')",
                     len == 1 ? (char)payload[0] : '?');
            drop(u, GW_LOG_ERROR, why);
            return 1;
        }
    }
    switch (type) {
    case MDFEED_SOUP_SEQUENCED_DATA:
        if (u->state == UP_ACTIVE)
            return on_sequenced(u, payload, len);
        drop(u, GW_LOG_WARN, "sent data before accepting the login");
        return 1;
    case MDFEED_SOUP_SERVER_HEARTBEAT:
    case MDFEED_SOUP_DEBUG:
        return 0;
    case MDFEED_SOUP_END_OF_SESSION:
        u->state = UP_ENDED;
        drop(u, GW_LOG_WARN, "ended the session; not reconnecting");
        return 1;
    default:
        snprintf(why, sizeof(why), "sent an unexpected packet type 0x%02x", (unsigned char)type);
        drop(u, GW_LOG_WARN, why);
        return 1;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    up_t *u = h->data;
    *buf = uv_buf_init(u->rbuf, sizeof(u->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    up_t *u = s->data;
    if (n == 0)
        return;
    if (n < 0) {
        drop(u, GW_LOG_WARN, n == UV_EOF ? "closed the connection" : uv_strerror((int)n));
        return;
    }
    u->last_rx_ms = uv_now(u->ups->loop);
    u->arrival_ns = uv_hrtime();
    int rc = mdfeed_soup_parser_feed(&u->parser, u->rbuf, (size_t)n, on_frame, u);
    if (rc < 0)
        drop(u, GW_LOG_WARN, mdfeed_strerror(rc));
}

static void on_connect(uv_connect_t *req, int status)
{
    up_t *u = req->data;
    if (status < 0) {
        if (u->failures++ < 3 || u->failures % 60 == 0)
            gw_log(GW_LOG_WARN, "channel %s: upstream connect: %s (attempt %u)", chan_cfg(u)->name,
                   uv_strerror(status), u->failures);
        if (!uv_is_closing((uv_handle_t *)&u->tcp))
            uv_close((uv_handle_t *)&u->tcp, on_closed);
        return;
    }
    /* Ask for the next message we need: a reconnect resumes exactly where we stopped. */
    mdfeed_soup_login_t login;
    memset(&login, 0, sizeof(login));
    snprintf(login.username, sizeof(login.username), "%s", chan_cfg(u)->upstream_user);
    snprintf(login.password, sizeof(login.password), "%s", chan_cfg(u)->upstream_pass);
    snprintf(login.session, sizeof(login.session), "%s", chan_cfg(u)->upstream_session);
    login.seq = gw_sequencer_next(u->ups->sq, u->ch);
    uint8_t f[64];
    int len = mdfeed_soup_encode_login_request(f, sizeof(f), &login);
    u->state = UP_LOGIN_SENT;
    u->last_rx_ms = uv_now(u->ups->loop);
    uv_tcp_nodelay(&u->tcp, 1);
    if (len > 0)
        send_frame(u, f, (size_t)len);
    if (!u->ups->paused)
        uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read);
}

static void connect_now(up_t *u)
{
    size_t max_frame =
        1 + u->ups->cfg->payload_budget - MDFEED_MOLD_HEADER_LEN - MDFEED_MOLD_BLOCK_HDR_LEN;
    if (mdfeed_soup_parser_init(&u->parser, max_frame) != 0) {
        schedule_reconnect(u);
        return;
    }
    uv_tcp_init(u->ups->loop, &u->tcp);
    u->tcp.data = u;
    u->tcp_open = true;
    u->state = UP_CONNECTING;
    u->creq.data = u;
    int rc = uv_tcp_connect(&u->creq, &u->tcp, (const struct sockaddr *)&chan_cfg(u)->upstream_addr,
                            on_connect);
    if (rc != 0) {
        gw_log(GW_LOG_WARN, "channel %s: upstream connect: %s", chan_cfg(u)->name, uv_strerror(rc));
        uv_close((uv_handle_t *)&u->tcp, on_closed);
    }
}

/* One timer per upstream: while disconnected it is the reconnect delay; while connected it
 * ticks for client heartbeats and the idle check (the server must send something, at least
 * heartbeats, within the idle timeout). */
static void on_timer(uv_timer_t *t)
{
    up_t *u = t->data;
    const gw_config_t *cfg = u->ups->cfg;
    if (u->stopping || u->state == UP_ENDED)
        return;
    if (!u->tcp_open) {
        connect_now(u);
        return;
    }
    uint64_t now = uv_now(u->ups->loop);
    if (u->ups->paused)
        u->last_rx_ms = now; /* we are not reading: the silence is ours */
    if (u->state >= UP_LOGIN_SENT && now - u->last_rx_ms >= cfg->idle_timeout_ms) {
        drop(u, GW_LOG_WARN, "silent past the idle timeout");
        return;
    }
    if (u->state == UP_ACTIVE && now - u->last_tx_ms >= cfg->ingress_heartbeat_ms) {
        uint8_t f[4];
        int n = mdfeed_soup_encode(f, sizeof(f), MDFEED_SOUP_CLIENT_HEARTBEAT, NULL, 0);
        if (n > 0)
            send_frame(u, f, (size_t)n);
    }
}

static void schedule_reconnect(up_t *u)
{
    const gw_config_t *cfg = u->ups->cfg;
    uint64_t tick = cfg->ingress_heartbeat_ms / 4 ? cfg->ingress_heartbeat_ms / 4 : 1;
    uv_timer_start(&u->timer, on_timer, chan_cfg(u)->reconnect_ms, tick);
}

int gw_upstream_start(gw_upstreams_t **out, uv_loop_t *loop, const gw_config_t *cfg,
                      gw_sequencer_t *sq, gw_upstream_stats_t *stats)
{
    *out = NULL;
    int n = 0;
    for (int ch = 0; ch < cfg->nchannels; ch++)
        n += cfg->channels[ch].upstream;
    if (n == 0)
        return 0;
    gw_upstreams_t *ups = calloc(1, sizeof(*ups));
    if (!ups)
        return -1;
    *out = ups;
    ups->loop = loop;
    ups->cfg = cfg;
    ups->sq = sq;
    ups->stats = stats;
    for (int ch = 0; ch < cfg->nchannels; ch++) {
        up_t *u = &ups->up[ch];
        u->ups = ups;
        u->ch = ch;
        if (!cfg->channels[ch].upstream)
            continue;
        uv_timer_init(loop, &u->timer);
        u->timer.data = u;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &cfg->channels[ch].upstream_addr.sin_addr, ip, sizeof(ip));
        gw_log(GW_LOG_INFO, "channel %s: upstream %s:%u (connect mode)", cfg->channels[ch].name, ip,
               ntohs(cfg->channels[ch].upstream_addr.sin_port));
        connect_now(u);
        uint64_t tick = cfg->ingress_heartbeat_ms / 4 ? cfg->ingress_heartbeat_ms / 4 : 1;
        uv_timer_start(&u->timer, on_timer, tick, tick);
    }
    return 0;
}

void gw_upstream_stop(gw_upstreams_t *ups)
{
    if (!ups)
        return;
    for (int ch = 0; ch < ups->cfg->nchannels; ch++) {
        up_t *u = &ups->up[ch];
        if (!ups->cfg->channels[ch].upstream || u->stopping)
            continue;
        u->stopping = true;
        if (u->tcp_open && !uv_is_closing((uv_handle_t *)&u->tcp)) {
            if (u->state == UP_ACTIVE) {
                uint8_t f[4];
                int n = mdfeed_soup_encode(f, sizeof(f), MDFEED_SOUP_LOGOUT_REQUEST, NULL, 0);
                if (n > 0)
                    send_frame(u, f, (size_t)n);
            }
            uv_read_stop((uv_stream_t *)&u->tcp);
            uv_close((uv_handle_t *)&u->tcp, NULL);
            mdfeed_soup_parser_close(&u->parser);
        }
        ups->stats->connected[ch] = 0;
        uv_timer_stop(&u->timer);
        uv_close((uv_handle_t *)&u->timer, NULL);
    }
}

void gw_upstream_set_paused(gw_upstreams_t *ups, bool paused)
{
    if (!ups)
        return;
    ups->paused = paused;
    for (int ch = 0; ch < ups->cfg->nchannels; ch++) {
        up_t *u = &ups->up[ch];
        if (!ups->cfg->channels[ch].upstream || !u->tcp_open ||
            uv_is_closing((uv_handle_t *)&u->tcp) || u->state < UP_LOGIN_SENT)
            continue;
        if (paused)
            uv_read_stop((uv_stream_t *)&u->tcp);
        else
            uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read);
    }
}

void gw_upstream_free(gw_upstreams_t *ups)
{
    free(ups);
}
