/* The agent source (private to libmdfeed): datagrams of line A (and B) taken from a local
 * mdcast-agent instead of multicast sockets, shaped like the socket receive path so that the
 * subscriber can use either (docs/AGENT.md, "Integration").
 *
 * The source connects to the agent's Unix socket, says hello, subscribes each line, and
 * receives per line a read-only memfd (the ring) and an eventfd (the wake-up); or, in
 * datagram mode, the datagrams themselves over the socket. It reconnects by itself with
 * backoff after the agent goes away, reports its read positions in keepalives, and detects a
 * hung agent by the missing keepalive answers.
 *
 * Threading: like the subscriber, one thread at a time per source. Nothing here blocks except
 * mdfeed_agent_source_wait_ready(). */
#ifndef MDFEED_AGENT_SOURCE_H
#define MDFEED_AGENT_SOURCE_H

#include "mdfeed/mdfeed.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct mdfeed_agent_source mdfeed_agent_source_t;

enum { MDFEED_AGENT_SHM = 0, MDFEED_AGENT_DGRAM = 1 };

/* Zero values pick the defaults in brackets. Strings are copied. */
typedef struct {
    const char *socket_path;   /* the agent's socket, required */
    const char *group_a;       /* "239.x.y.z:port", required */
    const char *group_b;       /* line B, or NULL */
    const char *name;          /* shown in the agent's log, or NULL */
    int mode;                  /* [MDFEED_AGENT_SHM]; MDFEED_AGENT_DGRAM where shm is refused */
    uint32_t keepalive_ms;     /* [1000] keepalive (position report) interval */
    uint32_t reconnect_min_ms; /* [50] first reconnect delay; doubles per failure */
    uint32_t reconnect_max_ms; /* [2000] cap of the delay */
} mdfeed_agent_source_config_t;

/* One datagram: the caller fills `buf` and `cap`; recv fills the rest. */
typedef struct {
    uint8_t *buf;   /* where the datagram is copied */
    uint32_t cap;   /* bytes at buf; a longer datagram is cut and `truncated` set */
    uint32_t len;   /* bytes copied */
    uint64_t rx_ns; /* kernel receive time at the agent (CLOCK_REALTIME ns), 0 if none */
    uint8_t line;   /* MDFEED_LINE_A or MDFEED_LINE_B */
    bool truncated; /* cut here or at the agent (slot smaller than the datagram) */
} mdfeed_agent_datagram_t;

typedef struct {
    uint64_t datagrams;  /* datagrams returned by recv */
    uint64_t bytes;      /* their bytes */
    uint64_t laps;       /* times the agent lapped this reader (a gap in the ring) */
    uint64_t lapped;     /* datagrams lost that way */
    uint64_t connects;   /* hellos answered */
    uint64_t disconnects;/* connections lost (agent restart, error, hang) */
    uint64_t agent_errors; /* ERROR messages from the agent */
    uint32_t lines_ready;  /* lines subscribed right now (a gauge) */
} mdfeed_agent_source_stats_t;

/* Creates the source and starts connecting (a missing agent is retried, not an error).
 * Returns 0 and sets *out (free with mdfeed_agent_source_free()), MDFEED_EBAD_CONFIG,
 * MDFEED_EBAD_ADDRESS, MDFEED_ENOT_MULTICAST or -errno. Never blocks. */
int mdfeed_agent_source_new(mdfeed_agent_source_t **out, const mdfeed_agent_source_config_t *cfg);

/* Closes the connection and every mapping and fd. Safe on NULL. */
void mdfeed_agent_source_free(mdfeed_agent_source_t *src);

/* Pollable fd (an epoll fd over the socket, the eventfds and a timer), level-triggered
 * friendly: readable while recv has something to do. Owned by the source. */
int mdfeed_agent_source_fd(const mdfeed_agent_source_t *src);

/* Does whatever is ready without blocking (control messages, reconnects, keepalives) and
 * copies up to `max` datagrams into `out`, both lines interleaved, each line in arrival order.
 * Returns the number filled (>= 0). A reader that fell a lap behind skips to the oldest
 * datagram still in the ring and counts the loss (stats.laps, stats.lapped); the MoldUDP64
 * sequence numbers then show the gap to the subscriber, which recovers it as any other. */
int mdfeed_agent_source_recv(mdfeed_agent_source_t *src, mdfeed_agent_datagram_t *out,
                             unsigned max);

/* Blocks until every line is subscribed (0) or `timeout_ms` passes (MDFEED_ETIMEDOUT).
 * Datagrams that arrive meanwhile are kept for recv. */
int mdfeed_agent_source_wait_ready(mdfeed_agent_source_t *src, int timeout_ms);

void mdfeed_agent_source_stats(const mdfeed_agent_source_t *src, mdfeed_agent_source_stats_t *out);

/* The ring fd received for `line` (a test hook: proves the mapping is read-only), or -1. */
int mdfeed_agent_source_ring_fd(const mdfeed_agent_source_t *src, int line);

#endif
