/* /metrics (Prometheus text) and /healthz on a tiny HTTP/1.0 server inside the agent's one
 * loop. It can never stall the receive path: sockets are non-blocking, a request must arrive
 * whole within 2 s and 2 KiB, the reply is written as far as the socket takes it and the rest
 * when it is writable again, a connection older than 2 s is closed, and at most
 * AGENT_MAX_HTTP connections exist (one more is closed at once). */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define HTTP_TIMEOUT_NS (2000000000ull)

int agent_http_listen(agent_t *a, const char *addr_port)
{
    char host[64];
    const char *colon = strrchr(addr_port, ':');
    if (!colon || (size_t)(colon - addr_port) >= sizeof(host))
        return -EINVAL;
    memcpy(host, addr_port, (size_t)(colon - addr_port));
    host[colon - addr_port] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (*end || port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    a->http_fd = fd;
    return agent_watch(a, fd, EPOLLIN, AGENT_TAG(TAG_HTTP_LISTEN, 0));
}

static void http_close(agent_http_t *h)
{
    close(h->fd);
    free(h->out);
    memset(h, 0, sizeof(*h));
    h->fd = -1;
}

void agent_http_accept(agent_t *a)
{
    for (unsigned k = 0; k < AGENT_MAX_HTTP; k++) {
        int fd = accept4(a->http_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        agent_http_t *h = NULL;
        for (unsigned i = 0; i < AGENT_MAX_HTTP && !h; i++)
            if (a->http[i].fd < 0)
                h = &a->http[i];
        if (!h || agent_watch(a, fd, EPOLLIN, AGENT_TAG(TAG_HTTP, h - a->http)) != 0) {
            close(fd);
            continue;
        }
        memset(h, 0, sizeof(*h));
        h->fd = fd;
        h->since_ns = agent_now_ns();
    }
}

static void group_label(const agent_group_t *g, char *out, size_t cap)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &g->group, ip, sizeof(ip));
    snprintf(out, cap, "%s:%u", ip, g->port);
}

/* Slowest consumer of `g`: the largest head - last reported position, in datagrams. The
 * agent cannot see positions in shared memory (consumers map it read-only), so they report
 * them in their keepalives; a consumer that stopped reporting ages as head moves on. */
static void group_consumers(const agent_t *a, const agent_group_t *g, uint64_t *lag,
                            uint64_t *laps)
{
    uint64_t head = agent_ring_head(&g->shm.ring);
    *lag = 0;
    *laps = g->laps_done;
    for (unsigned i = 0; i < a->cfg.max_clients; i++) {
        const agent_client_t *c = &a->clients[i];
        if (c->fd < 0)
            continue;
        for (unsigned k = 0; k < AGENT_MAX_SUBS_PER_CLIENT; k++) {
            const agent_sub_state_t *s = &c->subs[k];
            if (s->group != g)
                continue;
            uint64_t l = head > s->last.position ? head - s->last.position : 0;
            *lag = l > *lag ? l : *lag;
            *laps += s->last.laps;
        }
    }
}

static void render_group(const agent_t *a, const agent_group_t *g, FILE *f)
{
    char lbl[40];
    group_label(g, lbl, sizeof(lbl));
    uint64_t lag, laps;
    group_consumers(a, g, &lag, &laps);
    fprintf(f, "mdcast_agent_packets_total{group=\"%s\"} %llu\n", lbl,
            (unsigned long long)g->packets);
    fprintf(f, "mdcast_agent_bytes_total{group=\"%s\"} %llu\n", lbl, (unsigned long long)g->bytes);
    fprintf(f, "mdcast_agent_truncated_total{group=\"%s\"} %llu\n", lbl,
            (unsigned long long)g->truncated);
    fprintf(f, "mdcast_agent_recv_batches_total{group=\"%s\"} %llu\n", lbl,
            (unsigned long long)g->batches);
    fprintf(f, "mdcast_agent_consumers{group=\"%s\"} %u\n", lbl, g->consumers);
    fprintf(f, "mdcast_agent_slowest_consumer_lag{group=\"%s\"} %llu\n", lbl,
            (unsigned long long)lag);
    fprintf(f, "mdcast_agent_laps_total{group=\"%s\"} %llu\n", lbl, (unsigned long long)laps);
    fprintf(f, "mdcast_agent_dgram_dropped_total{group=\"%s\"} %llu\n", lbl,
            (unsigned long long)g->dgram_dropped);
    fprintf(f, "mdcast_agent_ring_slots{group=\"%s\"} %u\n", lbl, g->shm.ring.hdr->slot_count);
}

static const char *const drop_label[AGENT_DROP_NREASONS] = {"garbage", "rate", "slow", "timeout",
                                                            "limit"};

static void render_metrics(const agent_t *a, FILE *f)
{
    fprintf(f, "# TYPE mdcast_agent_packets_total counter\n"
               "# TYPE mdcast_agent_consumers gauge\n"
               "# TYPE mdcast_agent_slowest_consumer_lag gauge\n"
               "# TYPE mdcast_agent_laps_total counter\n");
    for (unsigned i = 0; i < a->cfg.max_groups; i++)
        if (a->groups[i].used)
            render_group(a, &a->groups[i], f);
    fprintf(f, "mdcast_agent_clients %u\n", a->nclients);
    fprintf(f, "mdcast_agent_clients_accepted_total %llu\n", (unsigned long long)a->accepted);
    fprintf(f, "mdcast_agent_clients_rejected_total %llu\n",
            (unsigned long long)a->rejected_full);
    for (int r = 0; r < AGENT_DROP_NREASONS; r++)
        fprintf(f, "mdcast_agent_clients_dropped_total{reason=\"%s\"} %llu\n", drop_label[r],
                (unsigned long long)a->dropped[r]);
    fprintf(f, "mdcast_agent_uptime_seconds %.3f\n", (double)(agent_now_ns() - a->start_ns) / 1e9);
}

/* Healthy while the interface it joined on is still the one it found at start. */
static bool healthy(const agent_t *a)
{
    return (int)if_nametoindex(a->ifname) == a->ifindex;
}

static void build_reply(agent_t *a, agent_http_t *h)
{
    char *body = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&body, &blen);
    if (!f)
        return;
    const char *status = "200 OK", *type = "text/plain; version=0.0.4";
    if (strncmp(h->in, "GET /metrics ", 13) == 0) {
        render_metrics(a, f);
    } else if (strncmp(h->in, "GET /healthz ", 13) == 0) {
        bool ok = healthy(a);
        status = ok ? "200 OK" : "503 Service Unavailable";
        fputs(ok ? "ok\n" : "interface gone\n", f);
    } else {
        status = "404 Not Found";
        fputs("not found\n", f);
    }
    fclose(f);
    FILE *o = open_memstream(&h->out, &h->out_len);
    if (o) {
        fprintf(o, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s", status, type, blen, body ? body : "");
        fclose(o);
    }
    free(body);
}

static void http_write(agent_t *a, agent_http_t *h)
{
    ssize_t n = send(h->fd, h->out + h->out_off, h->out_len - h->out_off,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0)
        h->out_off += (size_t)n;
    if (h->out_off >= h->out_len || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        http_close(h);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = AGENT_TAG(TAG_HTTP, h - a->http)};
    (void)epoll_ctl(a->epfd, EPOLL_CTL_MOD, h->fd, &ev);
}

void agent_http_event(agent_t *a, agent_http_t *h, uint32_t events)
{
    if (h->out) {
        http_write(a, h);
        return;
    }
    (void)events;
    ssize_t n = recv(h->fd, h->in + h->in_len, sizeof(h->in) - 1 - h->in_len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        http_close(h);
        return;
    }
    h->in_len += (size_t)n;
    h->in[h->in_len] = '\0';
    if (!strstr(h->in, "\r\n\r\n") && !strstr(h->in, "\n\n")) {
        if (h->in_len >= sizeof(h->in) - 1)
            http_close(h); /* a request that big is not one of ours */
        return;
    }
    build_reply(a, h);
    if (!h->out) {
        http_close(h);
        return;
    }
    http_write(a, h);
}

void agent_http_tick(agent_t *a, uint64_t now)
{
    for (unsigned i = 0; i < AGENT_MAX_HTTP; i++)
        if (a->http[i].fd >= 0 && now - a->http[i].since_ns > HTTP_TIMEOUT_NS)
            http_close(&a->http[i]);
}
