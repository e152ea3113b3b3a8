/* mdcast-agent internals: one process per node that owns the multicast interface, joins each
 * group once for all local consumers, and writes every datagram into a shared-memory ring per
 * group (agent_wire.h has the ring and the control protocol).
 *
 * One thread, one epoll loop, nothing blocks: group sockets, the control socket and its
 * clients, and the HTTP server are all non-blocking, and every handler does bounded work. A
 * slow consumer costs the agent nothing (it reads shared memory on its own), a slow HTTP or
 * datagram-mode client is dropped when its socket buffer is full. */
#ifndef MDCAST_AGENT_AGENT_H
#define MDCAST_AGENT_AGENT_H

#include "agent_wire.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define AGENT_DEFAULT_RING_BYTES (16u << 20)
#define AGENT_DEFAULT_MAX_DGRAM  1472u /* 1500-byte MTU less IP and UDP headers */
#define AGENT_RECV_BATCH         AGENT_RING_CLAIM_AHEAD
#define AGENT_MAX_SUBS_PER_CLIENT 16u
#define AGENT_MAX_HTTP           16u

/* ---- logging (one JSON object a line on stderr, like the gateway) ---------------------------- */
enum { AGENT_LOG_DEBUG = 0, AGENT_LOG_INFO, AGENT_LOG_WARN, AGENT_LOG_ERROR };
extern int agent_log_level;
void agent_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- ring in a sealed memfd (ring.c) ------------------------------------------------------- */
typedef struct {
    agent_ring_t ring;   /* the agent's writable mapping */
    int memfd;           /* the sealed memfd (write-sealed for every new mapping) */
    int rofd;            /* a read-only open of it: what consumers get */
    int efd;             /* eventfd written after each batch; consumers watch it edge-triggered */
    uint64_t claimed_to; /* slots of datagrams below this index are claimed (odd lock) */
} agent_shm_t;

/* Creates a ring of at most `bytes` for datagrams up to `max_datagram`. Returns 0 or -errno;
 * on failure nothing is left open. */
int agent_shm_create(agent_shm_t *s, size_t bytes, uint32_t max_datagram, uint32_t group_be,
                     uint16_t port, uint64_t epoch);
void agent_shm_close(agent_shm_t *s);

/* ---- groups (group.c) ---------------------------------------------------------------------- */
typedef struct agent agent_t;

typedef struct {
    bool used;
    uint32_t group; /* network order */
    uint16_t port;
    int fd; /* the joined UDP socket */
    agent_shm_t shm;
    unsigned consumers;  /* subscriptions on it (both modes) */
    unsigned dgram_subs; /* of which in datagram mode */
    uint64_t packets, bytes, truncated, batches, dgram_dropped;
    uint64_t laps_done; /* laps reported by subscriptions that have gone */
    struct mmsghdr *mmsg;
    struct iovec *iov;
    uint8_t *ctrl;
} agent_group_t;

/* Finds or creates (socket, join, ring) the group; counts one more consumer. */
int agent_group_acquire(agent_t *a, uint32_t group_be, uint16_t port, agent_group_t **out);
/* One consumer fewer; the last one closes the socket (which leaves the group). */
void agent_group_release(agent_t *a, agent_group_t *g);
/* Receives what the socket holds (bounded) into the ring and wakes the consumers. */
void agent_group_receive(agent_t *a, agent_group_t *g);

/* ---- clients (client.c) -------------------------------------------------------------------- */
typedef struct {
    agent_group_t *group; /* NULL = free */
    uint8_t line, mode;
    agent_report_t last; /* last keepalive report for this group */
    uint64_t dgram_next; /* datagram mode: next index to send */
} agent_sub_state_t;

typedef struct {
    int fd; /* -1 = free */
    bool hello;
    bool doomed;        /* to be dropped at the next tick (its datagram socket stayed full) */
    uint64_t since_ns;  /* connect time: a client silent past the hello timeout is dropped */
    double tokens;      /* request budget (token bucket) */
    uint64_t tokens_ns; /* when it was last refilled */
    char name[AGENT_NAME_LEN + 1];
    agent_sub_state_t subs[AGENT_MAX_SUBS_PER_CLIENT];
} agent_client_t;

/* Why clients were dropped (metrics label). */
enum {
    AGENT_DROP_GARBAGE = 0, /* unparsable message, or not hello first */
    AGENT_DROP_RATE,        /* more requests than the budget allows */
    AGENT_DROP_SLOW,        /* its socket buffer was full (datagram mode or a reply) */
    AGENT_DROP_TIMEOUT,     /* no hello in time */
    AGENT_DROP_LIMIT,       /* too many subscriptions */
    AGENT_DROP_NREASONS
};

int agent_control_listen(agent_t *a, const char *path);
void agent_control_accept(agent_t *a);
void agent_client_readable(agent_t *a, agent_client_t *c);
void agent_client_drop(agent_t *a, agent_client_t *c, int reason, const char *why);
void agent_clients_tick(agent_t *a, uint64_t now);
/* Datagram mode: sends datagrams [from, to) of `g` to every datagram subscriber. */
void agent_dgram_fanout(agent_t *a, agent_group_t *g, uint64_t from, uint64_t to);

/* ---- HTTP (http.c) ------------------------------------------------------------------------- */
typedef struct {
    int fd; /* -1 = free */
    uint64_t since_ns;
    size_t in_len;
    char in[2048];
    char *out;
    size_t out_len, out_off;
} agent_http_t;

int agent_http_listen(agent_t *a, const char *addr_port);
void agent_http_accept(agent_t *a);
void agent_http_event(agent_t *a, agent_http_t *h, uint32_t events);
void agent_http_tick(agent_t *a, uint64_t now);

/* ---- the agent (main.c) -------------------------------------------------------------------- */
typedef struct {
    const char *interface;
    const char *socket_path;
    const char *metrics; /* "ADDR:PORT" or NULL */
    size_t ring_bytes;
    uint32_t max_datagram;
    unsigned max_clients;
    unsigned max_groups;
    double rate;       /* requests per second a client may send (sustained) */
    double burst;      /* and in a burst */
    int rcvbuf;
} agent_config_t;

struct agent {
    agent_config_t cfg;
    int epfd, sigfd, tfd;
    int ctl_fd;
    int http_fd;
    int ifindex;
    char ifname[16]; /* IFNAMSIZ */
    struct in_addr ifaddr;
    uint64_t epoch;
    uint64_t start_ns;
    agent_group_t *groups;
    agent_client_t *clients;
    agent_http_t http[AGENT_MAX_HTTP];
    unsigned nclients;
    uint64_t accepted, rejected_full, dropped[AGENT_DROP_NREASONS];
    uint8_t *iobuf; /* AGENT_MAX_MSG bytes: control messages in and out */
};

/* epoll tags: the low bits of epoll_event.data.u64 say what the fd is, the rest an index. */
enum { TAG_SIGNAL = 1, TAG_TIMER, TAG_CONTROL, TAG_CLIENT, TAG_GROUP, TAG_HTTP_LISTEN, TAG_HTTP };
#define AGENT_TAG(kind, idx) (((uint64_t)(idx) << 8) | (uint64_t)(kind))
int agent_watch(agent_t *a, int fd, uint32_t events, uint64_t tag);

uint64_t agent_now_ns(void);
uint64_t agent_realtime_ns(void);

#endif
