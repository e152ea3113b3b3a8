/* Metrics and health over a minimal HTTP/1.1 server on libuv: GET /metrics (Prometheus text
 * exposition 0.0.4), /healthz (the loop is alive: it answered), /readyz (egress is set up and
 * the egress interface holds its address). One request per connection, then close. */
#include "gateway.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

gw_metrics_t gw_metrics;
const double gw_lat_bounds_us[GW_LAT_BUCKETS] = {1,  2,   5,   10,  20,   30,   40,   50,
                                                 75, 100, 200, 500, 1000, 2000, 5000, 10000};
const unsigned gw_flush_bounds[GW_FLUSH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

void gw_metrics_observe_latency(uint64_t ns, uint64_t weight)
{
    double us = (double)ns / 1000.0;
    int i = 0;
    while (i < GW_LAT_BUCKETS && us > gw_lat_bounds_us[i])
        i++;
    gw_metrics.lat_buckets[i] += weight;
    gw_metrics.lat_sum_ns += ns * weight;
    gw_metrics.lat_count += weight;
}

void gw_metrics_observe_flush(unsigned packets)
{
    int i = 0;
    while (i < GW_FLUSH_BUCKETS && packets > gw_flush_bounds[i])
        i++;
    gw_metrics.flush_buckets[i]++;
    gw_metrics.flush_sum += packets;
    gw_metrics.flush_count++;
}

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf_t;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    for (;;) {
        if (b->oom)
            return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        char *np = realloc(b->p, b->cap * 2);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap *= 2;
    }
}

static void help(sbuf_t *b, const char *name, const char *type, const char *text)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void render_histogram(sbuf_t *b, const char *name, const uint64_t *buckets, int nb,
                             const double *bounds, double scale, double sum, uint64_t count)
{
    uint64_t cum = 0;
    for (int i = 0; i < nb; i++) {
        cum += buckets[i];
        sb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i] * scale,
                  (unsigned long long)cum);
    }
    cum += buckets[nb];
    sb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
              (unsigned long long)cum, name, sum, name, (unsigned long long)count);
}

static void render_ingress(sbuf_t *b, const gw_t *gw)
{
    const gw_config_t *cfg = &gw->cfg;
    help(b, "mdcast_messages_in_total", "counter", "Messages received, by publisher and channel.");
    for (int u = 0; u < cfg->nusers; u++)
        sb_printf(b, "mdcast_messages_in_total{publisher=\"%s\",channel=\"%s\"} %llu\n",
                  cfg->users[u].username, cfg->channels[cfg->users[u].channel].name,
                  (unsigned long long)gw_metrics.messages_in[u]);
    help(b, "mdcast_bytes_in_total", "counter",
         "Message bytes received, by publisher and channel.");
    for (int u = 0; u < cfg->nusers; u++)
        sb_printf(b, "mdcast_bytes_in_total{publisher=\"%s\",channel=\"%s\"} %llu\n",
                  cfg->users[u].username, cfg->channels[cfg->users[u].channel].name,
                  (unsigned long long)gw_metrics.bytes_in[u]);
    help(b, "mdcast_publishers_connected", "gauge", "Publishers logged in now.");
    sb_printf(b, "mdcast_publishers_connected %d\n", gw_ingress_publishers(gw));
    help(b, "mdcast_ingress_pauses_total", "counter",
         "Times reading from publishers stopped because egress was backed up.");
    sb_printf(b, "mdcast_ingress_pauses_total %llu\n",
              (unsigned long long)gw_metrics.ingress_pauses);
    help(b, "mdcast_ingress_paused", "gauge", "1 while publishers are not read (backpressure).");
    sb_printf(b, "mdcast_ingress_paused %d\n", gw->ingress_paused ? 1 : 0);
    help(b, "mdcast_publisher_closes_total", "counter",
         "Publisher connections closed by the gateway, by reason.");
    for (int r = 0; r < 8; r++)
        sb_printf(b, "mdcast_publisher_closes_total{reason=\"%s\"} %llu\n",
                  gw_close_reason_names[r], (unsigned long long)gw_metrics.rejected[r]);
}

static void render_upstream(sbuf_t *b, const gw_t *gw)
{
    const gw_config_t *cfg = &gw->cfg;
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"mdcast_upstream_connected", "gauge", "Connect mode: 1 while logged in upstream."},
        {"mdcast_upstream_logins_total", "counter", "Connect mode: upstream logins accepted."},
        {"mdcast_upstream_messages_total", "counter", "Connect mode: sequenced messages taken."},
        {"mdcast_upstream_duplicates_total", "counter",
         "Connect mode: replayed messages already sequenced (skipped)."},
        {"mdcast_upstream_lost_total", "counter",
         "Connect mode: messages the upstream could not replay after a reconnect."},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        bool any = false;
        for (int ch = 0; ch < cfg->nchannels; ch++) {
            if (!cfg->channels[ch].upstream)
                continue;
            if (!any)
                help(b, m[i].name, m[i].type, m[i].help);
            any = true;
            uint64_t v = i == 0   ? (uint64_t)gw_metrics.up_connected[ch]
                         : i == 1 ? gw_metrics.up_connects[ch]
                         : i == 2 ? gw_metrics.up_messages[ch]
                         : i == 3 ? gw_metrics.up_duplicates[ch]
                                  : gw_metrics.up_skipped[ch];
            sb_printf(b, "%s{channel=\"%s\"} %llu\n", m[i].name, cfg->channels[ch].name,
                      (unsigned long long)v);
        }
    }
}

static void render_egress(sbuf_t *b, const gw_t *gw)
{
    const gw_config_t *cfg = &gw->cfg;
    help(b, "mdcast_packets_out_total", "counter", "Datagrams sent, by channel and line.");
    for (int ch = 0; ch < cfg->nchannels; ch++)
        for (int l = 0; l < cfg->channels[ch].nlines; l++)
            sb_printf(b, "mdcast_packets_out_total{channel=\"%s\",line=\"%c\"} %llu\n",
                      cfg->channels[ch].name, 'A' + l,
                      (unsigned long long)gw_metrics.packets_out[gw_egress_sock(ch, l)]);
    help(b, "mdcast_bytes_out_total", "counter", "UDP payload bytes sent, by channel and line.");
    for (int ch = 0; ch < cfg->nchannels; ch++)
        for (int l = 0; l < cfg->channels[ch].nlines; l++)
            sb_printf(b, "mdcast_bytes_out_total{channel=\"%s\",line=\"%c\"} %llu\n",
                      cfg->channels[ch].name, 'A' + l,
                      (unsigned long long)gw_metrics.bytes_out[gw_egress_sock(ch, l)]);
    help(b, "mdcast_heartbeats_sent_total", "counter", "MoldUDP64 heartbeats sent, by channel.");
    for (int ch = 0; ch < cfg->nchannels; ch++)
        sb_printf(b, "mdcast_heartbeats_sent_total{channel=\"%s\"} %llu\n", cfg->channels[ch].name,
                  (unsigned long long)gw_metrics.heartbeats[ch]);
    help(b, "mdcast_next_sequence", "gauge", "Sequence number the next message gets.");
    for (int ch = 0; ch < cfg->nchannels; ch++)
        sb_printf(b, "mdcast_next_sequence{channel=\"%s\"} %llu\n", cfg->channels[ch].name,
                  (unsigned long long)gw->chans[ch].next_seq);
    help(b, "mdcast_egress_backend", "gauge", "Egress backend in use (1).");
    sb_printf(b, "mdcast_egress_backend{backend=\"%s\"} 1\n",
              gw->egress.ops ? gw->egress.ops->name : "none");
    help(b, "mdcast_egress_uring_fallback", "gauge",
         "1 when io_uring was wanted but refused and egress fell back to sendmmsg.");
    sb_printf(b, "mdcast_egress_uring_fallback %d\n", gw->egress.uring_refused ? 1 : 0);
    if (gw->egress.probe_ns[0] > 0) {
        help(b, "mdcast_egress_probe_seconds_per_datagram", "gauge",
             "io=auto start-up probe: median send time per datagram, by backend.");
        sb_printf(b, "mdcast_egress_probe_seconds_per_datagram{backend=\"io_uring\"} %.9g\n",
                  gw->egress.probe_ns[0] / 1e9);
        sb_printf(b, "mdcast_egress_probe_seconds_per_datagram{backend=\"sendmmsg\"} %.9g\n",
                  gw->egress.probe_ns[1] / 1e9);
    }
    help(b, "mdcast_send_retries_total", "counter", "Sends retried (ENOBUFS, EAGAIN, short).");
    sb_printf(b, "mdcast_send_retries_total %llu\n", (unsigned long long)gw_metrics.send_retries);
    help(b, "mdcast_send_retry_reasons_total", "counter",
         "Sends retried, by reason: enobufs (the interface queue was full), eagain (the "
         "socket buffer was full), short (or a sendmmsg batch cut short), canceled (io_uring: an "
         "earlier linked send of the "
         "socket was refused), other.");
    for (int r = 0; r < GW_RETRY_NREASONS; r++)
        sb_printf(b, "mdcast_send_retry_reasons_total{reason=\"%s\"} %llu\n",
                  gw_retry_reason_names[r], (unsigned long long)gw_metrics.send_retry_reasons[r]);
    help(b, "mdcast_egress_errqueue_messages_total", "counter",
         "Messages read from the multicast sockets' error queues (IP_RECVERR).");
    sb_printf(b, "mdcast_egress_errqueue_messages_total %llu\n",
              (unsigned long long)gw->egress.errqueue_msgs);
    help(b, "mdcast_egress_congestion_waits_total", "counter",
         "Sends that waited for room in a full socket buffer (order kept).");
    sb_printf(b, "mdcast_egress_congestion_waits_total %llu\n",
              (unsigned long long)gw->egress.congestion_waits);
    help(b, "mdcast_egress_async_completions_total", "counter",
         "io_uring sends that completed after their submit (reaped via the eventfd).");
    sb_printf(b, "mdcast_egress_async_completions_total %llu\n",
              (unsigned long long)gw->egress.async_completions);
    const gw_egress_t *eg = &gw->egress;
    help(b, "mdcast_egress_zerocopy", "gauge",
         "1 when packets of at least the threshold go as io_uring SEND_ZC.");
    sb_printf(b, "mdcast_egress_zerocopy %d\n", eg->ops && eg->zc_min_len != UINT32_MAX ? 1 : 0);
    help(b, "mdcast_egress_registered_buffers", "gauge",
         "1 when the packet pool is registered with io_uring (fixed buffers for SEND_ZC).");
    sb_printf(b, "mdcast_egress_registered_buffers %d\n", eg->fixed_bufs ? 1 : 0);
    help(b, "mdcast_egress_zerocopy_sends_total", "counter", "Sends issued as io_uring SEND_ZC.");
    sb_printf(b, "mdcast_egress_zerocopy_sends_total %llu\n", (unsigned long long)eg->zc_sends);
    help(b, "mdcast_egress_zerocopy_notifications_total", "counter",
         "SEND_ZC notifications: the buffer was released back to the pool only after these.");
    sb_printf(b, "mdcast_egress_zerocopy_notifications_total %llu\n",
              (unsigned long long)eg->zc_notifs);
    help(b, "mdcast_egress_zerocopy_copied_total", "counter",
         "SEND_ZC notifications reporting that the kernel copied the data after all.");
    sb_printf(b, "mdcast_egress_zerocopy_copied_total %llu\n", (unsigned long long)eg->zc_copied);
    if (eg->probe_zc_ns[0] > 0) {
        help(b, "mdcast_egress_zerocopy_probe_seconds_per_datagram", "gauge",
             "zerocopy=auto start-up probe: median send time per datagram, by mode.");
        sb_printf(b, "mdcast_egress_zerocopy_probe_seconds_per_datagram{mode=\"send\"} %.9g\n",
                  eg->probe_zc_ns[0] / 1e9);
        sb_printf(b, "mdcast_egress_zerocopy_probe_seconds_per_datagram{mode=\"send_zc\"} %.9g\n",
                  eg->probe_zc_ns[1] / 1e9);
    }
    help(b, "mdcast_send_errors_total", "counter", "Sends that failed for good.");
    sb_printf(b, "mdcast_send_errors_total %llu\n", (unsigned long long)gw_metrics.send_errors);
    double fb[GW_FLUSH_BUCKETS];
    for (int i = 0; i < GW_FLUSH_BUCKETS; i++)
        fb[i] = gw_flush_bounds[i];
    help(b, "mdcast_flush_packets", "histogram", "Datagrams per flush (one submission).");
    render_histogram(b, "mdcast_flush_packets", gw_metrics.flush_buckets, GW_FLUSH_BUCKETS, fb, 1,
                     (double)gw_metrics.flush_sum, gw_metrics.flush_count);
    help(b, "mdcast_arrival_to_send_seconds", "histogram",
         "Time from a message's arrival on the ingress socket to its datagram's send.");
    render_histogram(b, "mdcast_arrival_to_send_seconds", gw_metrics.lat_buckets, GW_LAT_BUCKETS,
                     gw_lat_bounds_us, 1e-6, (double)gw_metrics.lat_sum_ns / 1e9,
                     gw_metrics.lat_count);
}

static void render_retransmit(sbuf_t *b, const gw_t *gw)
{
    const gw_config_t *cfg = &gw->cfg;
    help(b, "mdcast_rerequests_total", "counter", "Re-requests by channel and outcome.");
    for (int ch = 0; ch < cfg->nchannels; ch++) {
        const char *n = cfg->channels[ch].name;
        sb_printf(b, "mdcast_rerequests_total{channel=\"%s\",result=\"served\"} %llu\n", n,
                  (unsigned long long)gw_metrics.rr_served[ch]);
        sb_printf(b, "mdcast_rerequests_total{channel=\"%s\",result=\"ignored\"} %llu\n", n,
                  (unsigned long long)gw_metrics.rr_ignored[ch]);
        sb_printf(b, "mdcast_rerequests_total{channel=\"%s\",result=\"rate_limited\"} %llu\n", n,
                  (unsigned long long)gw_metrics.rr_limited[ch]);
    }
    help(b, "mdcast_retransmitted_messages_total", "counter", "Messages resent on re-request.");
    for (int ch = 0; ch < cfg->nchannels; ch++)
        sb_printf(b, "mdcast_retransmitted_messages_total{channel=\"%s\"} %llu\n",
                  cfg->channels[ch].name, (unsigned long long)gw_metrics.rr_messages[ch]);
    help(b, "mdcast_unservable_messages_total", "counter",
         "Requested messages already gone from the ring.");
    for (int ch = 0; ch < cfg->nchannels; ch++)
        sb_printf(b, "mdcast_unservable_messages_total{channel=\"%s\"} %llu\n",
                  cfg->channels[ch].name, (unsigned long long)gw_metrics.rr_unservable[ch]);
}

char *gw_metrics_render(const gw_t *gw, size_t *len)
{
    sbuf_t b = {malloc(16384), 0, 16384, false};
    if (!b.p)
        return NULL;
    render_ingress(&b, gw);
    render_upstream(&b, gw);
    render_egress(&b, gw);
    render_retransmit(&b, gw);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

bool gw_ready(const gw_t *gw)
{
    return gw->egress_ready && !gw->stopping &&
           gw_iface_has_addr(gw->egress_ifname, &gw->cfg.egress_addr);
}

/* ---------------------------------------------------------------- HTTP */
#define HTTP_MAX_REQUEST 8192

typedef struct http_conn http_conn_t;

/* Scrapers are few; a client that opens connections and sends nothing must not pin file
 * descriptors: at most HTTP_MAX_CONNS at once, each closed after HTTP_TIMEOUT_MS. */
#define HTTP_MAX_CONNS  32
#define HTTP_TIMEOUT_MS 5000

struct gw_http {
    uv_tcp_t server;
    uv_timer_t timer; /* closes connections older than HTTP_TIMEOUT_MS */
    gw_t *gw;
    http_conn_t *conns; /* open connections, closed by gw_http_stop() */
    int nconns;
    int open_handles;
};

struct http_conn {
    uv_tcp_t tcp;
    uint64_t opened_ms;
    gw_t *gw;
    gw_http_t *http;
    http_conn_t *prev, *next;
    size_t len;
    bool answered;
    uv_write_t wreq;
    char *resp;
    char req[HTTP_MAX_REQUEST];
};

static void on_http_closed(uv_handle_t *h)
{
    http_conn_t *c = h->data;
    free(c->resp);
    free(c);
}

/* Unlinks and closes; safe to call twice. */
static void http_close(http_conn_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->prev)
        c->prev->next = c->next;
    else if (c->http)
        c->http->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (c->http)
        c->http->nconns--;
    c->http = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_http_closed);
}

static void on_http_written(uv_write_t *w, int status)
{
    (void)status;
    http_close(w->data);
}

static void respond(http_conn_t *c, int code, const char *reason, const char *ctype,
                    const char *body, size_t blen, bool head)
{
    char hdr[256];
    int hl = snprintf(hdr, sizeof(hdr),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      code, reason, ctype, blen);
    size_t total = (size_t)hl + (head ? 0 : blen);
    c->resp = malloc(total);
    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (!c->resp) {
        http_close(c);
        return;
    }
    memcpy(c->resp, hdr, (size_t)hl);
    if (!head && blen)
        memcpy(c->resp + hl, body, blen);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)total);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_http_written) != 0)
        http_close(c);
}

static void route(http_conn_t *c)
{
    char method[8], path[256];
    c->req[c->len] = '\0';
    if (sscanf(c->req, "%7s %255s HTTP/1.", method, path) != 2) {
        respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12, false);
        return;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        respond(c, 405, "Method Not Allowed", "text/plain", "GET only\n", 9, false);
        return;
    }
    char *q = strchr(path, '?');
    if (q)
        *q = '\0';
    if (strcmp(path, "/metrics") == 0) {
        size_t len = 0;
        char *body = gw_metrics_render(c->gw, &len);
        if (!body) {
            respond(c, 500, "Internal Server Error", "text/plain", "out of memory\n", 14, head);
            return;
        }
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, len, head);
        free(body);
    } else if (strcmp(path, "/healthz") == 0) {
        respond(c, 200, "OK", "text/plain", "ok\n", 3, head);
    } else if (strcmp(path, "/readyz") == 0) {
        if (gw_ready(c->gw))
            respond(c, 200, "OK", "text/plain", "ready\n", 6, head);
        else
            respond(c, 503, "Service Unavailable", "text/plain", "not ready\n", 10, head);
    } else {
        respond(c, 404, "Not Found", "text/plain", "not found\n", 10, head);
    }
}

static void on_http_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    http_conn_t *c = h->data;
    *buf = uv_buf_init(c->req + c->len, (unsigned)(HTTP_MAX_REQUEST - 1 - c->len));
}

static void on_http_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    http_conn_t *c = s->data;
    if (c->answered || n == 0)
        return;
    if (n < 0) {
        uv_read_stop(s);
        http_close(c);
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
        route(c);
    else if (c->len >= HTTP_MAX_REQUEST - 1)
        respond(c, 431, "Request Header Fields Too Large", "text/plain", "too large\n", 10, false);
}

static void on_http_connection(uv_stream_t *server, int status)
{
    gw_http_t *h = server->data;
    if (status < 0)
        return;
    http_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->gw = h->gw;
    c->http = h;
    c->opened_ms = uv_now(h->gw->loop);
    uv_tcp_init(h->gw->loop, &c->tcp);
    c->tcp.data = c;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || h->nconns > HTTP_MAX_CONNS) {
        http_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_http_alloc, on_http_read);
}

static void on_http_timer(uv_timer_t *t)
{
    gw_http_t *h = t->data;
    uint64_t now = uv_now(h->gw->loop);
    http_conn_t *next;
    for (http_conn_t *c = h->conns; c; c = next) {
        next = c->next;
        if (now - c->opened_ms >= HTTP_TIMEOUT_MS)
            http_close(c);
    }
}

int gw_http_start(gw_t *gw)
{
    gw_http_t *h = calloc(1, sizeof(*h));
    if (!h)
        return -1;
    h->gw = gw;
    gw->http = h;
    uv_tcp_init(gw->loop, &h->server);
    h->server.data = h;
    uv_timer_init(gw->loop, &h->timer);
    h->timer.data = h;
    uv_timer_start(&h->timer, on_http_timer, 1000, 1000);
    h->open_handles = 2;
    int rc = uv_tcp_bind(&h->server, (const struct sockaddr *)&gw->cfg.metrics_listen, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->server, 64, on_http_connection);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &gw->cfg.metrics_listen.sin_addr, ip, sizeof(ip));
    if (rc) {
        gw_log(GW_LOG_ERROR, "metrics listen on %s:%u: %s", ip,
               ntohs(gw->cfg.metrics_listen.sin_port), uv_strerror(rc));
        return -1;
    }
    gw_log(GW_LOG_INFO, "metrics listening on %s:%u", ip, ntohs(gw->cfg.metrics_listen.sin_port));
    return 0;
}

static void free_http(uv_handle_t *handle)
{
    gw_http_t *h = handle->data;
    if (--h->open_handles == 0)
        free(h);
}

void gw_http_stop(gw_t *gw)
{
    if (!gw->http)
        return;
    while (gw->http->conns)
        http_close(gw->http->conns);
    uv_timer_stop(&gw->http->timer);
    uv_close((uv_handle_t *)&gw->http->timer, free_http);
    uv_close((uv_handle_t *)&gw->http->server, free_http);
    gw->http = NULL;
}
