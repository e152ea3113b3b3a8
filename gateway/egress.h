/* Egress stage: the multicast sockets (one connected UDP socket per channel and line) and
 * the backend that sends on them, io_uring or sendmmsg, chosen once behind one ops table
 * (egress_backend.h; libuv's platform files, Aeron's transport bindings). The packetizer
 * hands it batches of sends; egress reports each finished send through the callback the
 * wiring installs and returns the packet to its pool after the last one. */
#ifndef GW_EGRESS_H
#define GW_EGRESS_H

#include "config.h"
#include "packet.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* One send of one packet on one line (socket). */
typedef struct {
    gw_packet_t *pkt;
    uint16_t sock;     /* index into gw_egress_t.fds: gw_egress_sock(channel, line) */
    uint16_t attempts; /* retries so far (ENOBUFS, EAGAIN, short send) */
} gw_send_t;

/* Socket index of channel `ch`, line `line`. */
static inline unsigned gw_egress_sock(int ch, int line)
{
    return (unsigned)(ch * GW_MAX_LINES + line);
}

/* Why a send is retried (index into gw_egress_stats_t.retry_reasons). */
enum {
    GW_RETRY_ENOBUFS = 0, /* the interface's queue (qdisc) is full: seen with IP_RECVERR */
    GW_RETRY_EAGAIN,      /* the socket buffer is full */
    GW_RETRY_SHORT,       /* fewer bytes sent, or a sendmmsg batch cut short (no reason given) */
    GW_RETRY_CANCELED,    /* io_uring: an earlier linked send of the same socket failed */
    GW_RETRY_OTHER,       /* EINTR */
    GW_RETRY_NREASONS
};
extern const char *const gw_retry_reason_names[GW_RETRY_NREASONS];

/* Histograms of egress: datagrams per flush, and arrival -> send per message. */
#define GW_LAT_BUCKETS   16
#define GW_FLUSH_BUCKETS 10
extern const double gw_lat_bounds_us[GW_LAT_BUCKETS];
extern const unsigned gw_flush_bounds[GW_FLUSH_BUCKETS];

/* Counters of egress, read by metrics.c. The start-up probe's own sends are not counted. */
typedef struct {
    uint64_t packets_out[GW_MAX_SOCKETS];
    uint64_t bytes_out[GW_MAX_SOCKETS];
    uint64_t send_retries;
    uint64_t retry_reasons[GW_RETRY_NREASONS];
    uint64_t send_errors;       /* sends that failed for good (or were dropped at close) */
    uint64_t errqueue_msgs;     /* messages read from the sockets' error queues (IP_RECVERR) */
    uint64_t congestion_waits;  /* sends that waited for socket buffer room */
    uint64_t async_completions; /* sends completed later, reaped through the eventfd */
    uint64_t zc_sends;          /* sends issued as SEND_ZC */
    uint64_t zc_copied;         /* of their notifications, those saying the kernel copied */
    uint64_t zc_notifs;         /* notifications (a buffer is reusable only after its own) */
    uint64_t flush_buckets[GW_FLUSH_BUCKETS + 1];
    uint64_t flush_sum, flush_count;
    uint64_t lat_buckets[GW_LAT_BUCKETS + 1]; /* arrival -> send, per message */
    uint64_t lat_sum_ns, lat_count;
} gw_egress_stats_t;

typedef struct gw_egress gw_egress_t;
typedef struct gw_egress_ops gw_egress_ops_t;

/* Called once per finished send (res = bytes or -errno), before the packet reference drops. */
typedef void (*gw_sent_cb)(void *data, const gw_send_t *send, int res, uint64_t now_ns);

struct gw_egress {
    const gw_egress_ops_t *ops;
    const char *backend_name; /* "io_uring" or "sendmmsg" once set up */
    uv_loop_t *loop;
    gw_pool_t *pool;
    int fds[GW_MAX_SOCKETS];
    unsigned nfds;
    unsigned inflight;
    void *backend; /* backend state */
    gw_sent_cb on_sent;
    void *data;
    gw_egress_stats_t stats;
    uint64_t retries;          /* every retry, the probe's included (backends' own use) */
    uint64_t errors;           /* every failed send, for the log's rate limit */
    unsigned retry_backoff_ms; /* current wait before a send refused by the qdisc is retried */
    uint64_t now_ns;           /* completion time of the batch being reaped (one clock read) */
    bool uring_refused;        /* io_uring wanted but refused: fell back */
    bool probing;              /* start-up probe: completions are not counted */
    double probe_ns[2]; /* auto's probe: median ns per datagram, [0] io_uring, [1] sendmmsg */
    /* Zero copy (io_uring only): packets of at least zc_min_len bytes go as SEND_ZC;
     * UINT32_MAX = never. Set by egress.c before the backend's init. */
    uint32_t zc_min_len;
    bool want_fixed_bufs;  /* egress.registered_buffers */
    bool fixed_bufs;       /* the pool is registered with io_uring (SEND_ZC uses it) */
    double probe_zc_ns[2]; /* zerocopy=auto probe: median ns per datagram, [0] send, [1] send_zc */
    uv_timer_t errq_timer; /* drains the error queues now and then */
    bool errq_timer_on;
};

/* Resolves the egress interface: name (given, or found from the address). Returns 0 or -1. */
int gw_egress_ifname(const gw_config_t *cfg, char out[IF_NAMESIZE]);
/* True when interface `ifname` holds `want` (or any IPv4 address when `want` is ANY). */
bool gw_iface_has_addr(const char *ifname, const struct in_addr *want);
/* Warns when the interface does not force IGMPv2 (the TGW speaks nothing else). */
void gw_check_igmp_version(const char *ifname);
/* Returns 0, or -1 (logged) when the payload budget does not fit the interface's MTU. */
int gw_check_mtu(const char *ifname, uint32_t budget);

/* Creates the multicast sockets (connected, TTL, loop, IP_MULTICAST_IF), then the backend
 * (io=auto probes both). Returns 0 or -1 (logged). */
int gw_egress_init(gw_egress_t *eg, uv_loop_t *loop, const gw_config_t *cfg, gw_pool_t *pool,
                   gw_sent_cb on_sent, void *data);
/* Sends `n` packets in one submission; takes one packet reference per send and releases it
 * when the send has finished. Returns 0 or -errno for a broken backend. */
int gw_egress_submit(gw_egress_t *eg, const gw_send_t *sends, unsigned n);
/* Waits (at most `timeout_ms`) until no send is in flight: the caller wants buffers back. */
void gw_egress_drain(gw_egress_t *eg, int timeout_ms);
/* Drains what is in flight (bounded), closes the backend and the sockets. */
void gw_egress_close(gw_egress_t *eg);
/* Reads (and counts, logging the first few) whatever IP_RECVERR queued on the sockets' error
 * queues, so it never fills the receive buffer. Cheap when empty: one recvmsg per socket. */
void gw_egress_drain_errqueue(gw_egress_t *eg);

#endif /* GW_EGRESS_H */
