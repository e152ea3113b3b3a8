/* The HTTP plane (http.h): GET /metrics (Prometheus text exposition 0.0.4), /healthz (the
 * loop is alive: it answered), /readyz (the wiring's readiness). One request per connection,
 * then close. */
#include "http.h"

#include "log.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_MAX_REQUEST 8192

typedef struct http_conn http_conn_t;

/* Scrapers are few; a client that opens connections and sends nothing must not pin file
 * descriptors: at most HTTP_MAX_CONNS at once, each closed after HTTP_TIMEOUT_MS. */
#define HTTP_MAX_CONNS  32
#define HTTP_TIMEOUT_MS 5000

struct gw_http {
    uv_loop_t *loop;
    gw_http_routes_t routes;
    uv_tcp_t server;
    uv_timer_t timer;   /* closes connections older than HTTP_TIMEOUT_MS */
    http_conn_t *conns; /* open connections, closed by gw_http_stop() */
    int nconns;
    int open_handles;
};

struct http_conn {
    uv_tcp_t tcp;
    uint64_t opened_ms;
    gw_http_routes_t routes; /* a copy: the server may be gone while a write completes */
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
        char *body = c->routes.render_metrics(c->routes.data, &len);
        if (!body) {
            respond(c, 500, "Internal Server Error", "text/plain", "out of memory\n", 14, head);
            return;
        }
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, len, head);
        free(body);
    } else if (strcmp(path, "/healthz") == 0) {
        respond(c, 200, "OK", "text/plain", "ok\n", 3, head);
    } else if (strcmp(path, "/readyz") == 0) {
        if (c->routes.ready(c->routes.data))
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
    c->routes = h->routes;
    c->http = h;
    c->opened_ms = uv_now(h->loop);
    uv_tcp_init(h->loop, &c->tcp);
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
    uint64_t now = uv_now(h->loop);
    http_conn_t *next;
    for (http_conn_t *c = h->conns; c; c = next) {
        next = c->next;
        if (now - c->opened_ms >= HTTP_TIMEOUT_MS)
            http_close(c);
    }
}

int gw_http_start(gw_http_t **out, uv_loop_t *loop, const struct sockaddr_in *addr,
                  const gw_http_routes_t *routes)
{
    gw_http_t *h = calloc(1, sizeof(*h));
    *out = h;
    if (!h)
        return -1;
    h->loop = loop;
    h->routes = *routes;
    uv_tcp_init(loop, &h->server);
    h->server.data = h;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    uv_timer_start(&h->timer, on_http_timer, 1000, 1000);
    h->open_handles = 2;
    int rc = uv_tcp_bind(&h->server, (const struct sockaddr *)addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->server, 64, on_http_connection);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr->sin_addr, ip, sizeof(ip));
    if (rc) {
        gw_log(GW_LOG_ERROR, "metrics listen on %s:%u: %s", ip, ntohs(addr->sin_port),
               uv_strerror(rc));
        return -1;
    }
    gw_log(GW_LOG_INFO, "metrics listening on %s:%u", ip, ntohs(addr->sin_port));
    return 0;
}

static void free_http(uv_handle_t *handle)
{
    gw_http_t *h = handle->data;
    if (--h->open_handles == 0)
        free(h);
}

void gw_http_stop(gw_http_t *h)
{
    if (!h)
        return;
    while (h->conns)
        http_close(h->conns);
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, free_http);
    uv_close((uv_handle_t *)&h->server, free_http);
}
