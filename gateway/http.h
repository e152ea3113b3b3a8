/* The HTTP plane: a minimal HTTP/1.1 server on the loop for GET /metrics, /healthz and
 * /readyz, one request per connection. It knows no stage: the wiring gives it the two
 * answers it cannot make itself. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct {
    /* The Prometheus exposition in a malloc'd string (the server frees it), or NULL. */
    char *(*render_metrics)(void *data, size_t *len);
    /* True when the gateway should receive traffic (/readyz 200, else 503). */
    bool (*ready)(void *data);
    void *data;
} gw_http_routes_t;

typedef struct gw_http gw_http_t;

/* Listens on `addr`. Returns 0 or -1 (logged); *out is set either way and must be stopped. */
int gw_http_start(gw_http_t **out, uv_loop_t *loop, const struct sockaddr_in *addr,
                  const gw_http_routes_t *routes);
/* Closes the listener and every open connection. */
void gw_http_stop(gw_http_t *h);

#endif /* GW_HTTP_H */
