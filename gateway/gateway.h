/* mdcast-gateway internals: the types every part of the pipeline shares.
 *
 * Data flow (DESIGN.md): ingress (SoupBinTCP server) -> sequencer (one MoldUDP64 sequence
 * space per channel) -> store (ring of recent messages for retransmission) -> packetizer
 * (natural batching into the channel's open packet) -> egress (io_uring or sendmmsg, one
 * submission per flush for all channels and lines). The retransmission server answers
 * re-requests from the store; metrics.c serves /metrics, /healthz and /readyz.
 *
 * Everything runs on one libuv loop thread; nothing here is thread-safe. */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include "mdfeed/moldudp64.h"
#include "mdfeed/soupbintcp.h"

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#define GW_MAX_CHANNELS 32
#define GW_MAX_USERS    128
#define GW_MAX_LINES    2
#define GW_MAX_SOCKETS  (GW_MAX_CHANNELS * GW_MAX_LINES)
#define GW_NAME_LEN     32

/* ---------------------------------------------------------------- log.c */
enum { GW_LOG_DEBUG = 0, GW_LOG_INFO = 1, GW_LOG_WARN = 2, GW_LOG_ERROR = 3 };

/* Returns the level for "debug|info|warn|error", or -1. */
int gw_log_level_parse(const char *name);
void gw_log_set_level(int level);
/* One JSON object per line on stderr: {"ts":..., "level":..., "msg":...}. The level is
 * checked before anything is formatted. */
void gw_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- config.c */
typedef enum { GW_IO_AUTO = 0, GW_IO_URING = 1, GW_IO_MMSG = 2 } gw_io_t;
typedef enum { GW_ZC_AUTO = 0, GW_ZC_ON = 1, GW_ZC_OFF = 2 } gw_zerocopy_t;

typedef struct {
    char name[GW_NAME_LEN];
    char session[MDFEED_MOLD_SESSION_LEN]; /* space-padded, as on the wire */
    int nlines;
    struct sockaddr_in lines[GW_MAX_LINES]; /* group:port of line A (and B) */
    uint16_t retransmit_port;
    uint32_t ring_messages;
    uint64_t ring_bytes;
    /* Connect mode (optional): the gateway logs in to an upstream SoupBinTCP server. */
    bool upstream;
    struct sockaddr_in upstream_addr;
    char upstream_user[MDFEED_SOUP_USERNAME_LEN + 1];
    char upstream_pass[MDFEED_SOUP_PASSWORD_LEN + 1];
    char upstream_session[MDFEED_SOUP_SESSION_LEN + 1]; /* "" = the server's current one */
    uint32_t reconnect_ms;
} gw_channel_config_t;

typedef struct {
    char username[MDFEED_SOUP_USERNAME_LEN + 1];
    char password[MDFEED_SOUP_PASSWORD_LEN + 1];
    int channel; /* index into gw_config_t.channels */
} gw_user_config_t;

typedef struct {
    struct sockaddr_in ingress_listen;
    uint32_t ingress_heartbeat_ms; /* SoupBinTCP server heartbeat after this much silence */
    uint32_t idle_timeout_ms;      /* drop a publisher silent for this long */
    int nusers;
    gw_user_config_t users[GW_MAX_USERS];

    char egress_ifname[IF_NAMESIZE]; /* "" when the interface was given as an address */
    struct in_addr egress_addr;      /* INADDR_ANY when given by name */
    int ttl;
    bool loop;
    uint32_t payload_budget; /* bytes of UDP payload, MoldUDP64 header included */
    gw_io_t io;
    uint32_t mold_heartbeat_ms;
    uint32_t end_of_session_repeats;
    uint32_t socket_buffer_bytes; /* SO_SNDBUF of each multicast socket (capped by wmem_max) */
    gw_zerocopy_t zerocopy;       /* io_uring SEND_ZC for packets of >= zerocopy_threshold */
    uint32_t zerocopy_threshold;  /* bytes */
    bool registered_buffers;      /* register the packet pool with io_uring (used by SEND_ZC) */

    int nchannels;
    gw_channel_config_t channels[GW_MAX_CHANNELS];

    struct in_addr retransmit_addr;
    uint32_t retransmit_max_messages; /* per request */
    double retransmit_rate;           /* messages per second per requester */
    double retransmit_burst;          /* bucket depth, messages */

    struct sockaddr_in metrics_listen;
    int log_level;
} gw_config_t;

/* Fills `cfg` from JSON text. Returns 0, or -1 with "key: reason" in `err`. */
int gw_config_parse(const char *json, gw_config_t *cfg, char *err, size_t errlen);
/* Reads and parses a file. Returns 0, or -1 with the reason in `err`. */
int gw_config_load(const char *path, gw_config_t *cfg, char *err, size_t errlen);
const char *gw_io_name(gw_io_t io);

/* ---------------------------------------------------------------- store.c */
typedef struct {
    uint32_t off; /* offset in the byte ring */
    uint32_t len;
} gw_store_entry_t;

/* Ring of the most recent messages of one channel, bounded by count and by bytes. Messages
 * are kept contiguous in a byte ring; the oldest are evicted to make room. */
typedef struct {
    uint8_t *data;
    size_t cap_bytes;
    gw_store_entry_t *entries;
    uint32_t cap_count;
    uint32_t oldest; /* index of the oldest entry */
    uint32_t count;
    uint64_t first_seq; /* sequence number of the oldest entry */
    size_t live_bytes;  /* sum of stored message lengths */
    size_t tail;        /* where the next message starts when it fits there */
} gw_store_t;

int gw_store_init(gw_store_t *s, uint32_t max_messages, size_t max_bytes);
void gw_store_close(gw_store_t *s);
/* Appends the message with sequence number `seq` (must follow the newest one). Returns 0,
 * -E2BIG when it is larger than the whole ring, -EINVAL for a sequence out of order. */
int gw_store_append(gw_store_t *s, uint64_t seq, const void *msg, size_t len);
/* Returns 0 and points at message `seq`, or -ENOENT when it is not (or no longer) held. */
int gw_store_get(const gw_store_t *s, uint64_t seq, const uint8_t **msg, size_t *len);
/* Hot path of gw_store_append(): in the steady state of a full ring, evicts the oldest
 * messages by count and bytes (as gw_store_append() would, in the same order, never down to
 * an empty ring) and appends when the message then fits contiguously after the tail without
 * wrapping. Returns false when it did not append; the caller then takes gw_store_append(),
 * which handles every case and finds the evictions done so far exactly as it would have
 * made them. */
static inline bool gw_store_append_fast(gw_store_t *s, uint64_t seq, const void *msg, size_t len)
{
    if (s->count == 0 || len > s->cap_bytes || seq != s->first_seq + s->count)
        return false;
    while (s->count == s->cap_count || s->live_bytes + len > s->cap_bytes) {
        if (s->count == 1)
            return false;
        s->live_bytes -= s->entries[s->oldest].len;
        if (++s->oldest == s->cap_count)
            s->oldest = 0;
        s->count--;
        s->first_seq++;
    }
    size_t head = s->entries[s->oldest].off;
    size_t end = s->tail > head ? s->cap_bytes : head;
    if (s->tail == head || end - s->tail < len)
        return false;
    uint32_t idx = s->oldest + s->count;
    if (idx >= s->cap_count)
        idx -= s->cap_count;
    s->entries[idx] = (gw_store_entry_t){(uint32_t)s->tail, (uint32_t)len};
    memcpy(s->data + s->tail, msg, len);
    s->tail += len;
    s->count++;
    s->live_bytes += len;
    return true;
}

/* ---------------------------------------------------------------- packets */
/* One datagram buffer. Its bytes must not change from the moment it is handed to egress
 * until every send that references it has completed (`refs` drops to 0): io_uring reads the
 * payload asynchronously, so a buffer is reused only after its last CQE. */
typedef struct gw_packet {
    uint8_t *buf;
    uint32_t len;
    uint32_t refs;
    uint16_t count;            /* messages in it (0 for heartbeats and end of session) */
    int channel;               /* index of its channel */
    uint64_t first_arrival_ns; /* arrival of its first message (uv_hrtime) */
    struct gw_packet *next_free;
} gw_packet_t;

typedef struct {
    gw_packet_t *pkts;
    uint8_t *mem;
    uint32_t n;
    uint32_t free_count;
    uint32_t size; /* bytes per buffer */
    size_t stride; /* distance between buffers; mem spans n * stride bytes */
    bool scribble; /* tests: overwrite each buffer as it is released (catches early reuse) */
    gw_packet_t *free;
} gw_pool_t;

int gw_pool_init(gw_pool_t *p, uint32_t n, uint32_t size);
void gw_pool_close(gw_pool_t *p);
gw_packet_t *gw_pool_get(gw_pool_t *p); /* NULL when every buffer is in flight */
void gw_pool_put(gw_pool_t *p, gw_packet_t *pkt);

/* ---------------------------------------------------------------- egress */
/* One send of one packet on one line (socket). */
typedef struct {
    gw_packet_t *pkt;
    uint16_t sock;     /* index into gw_egress_t.fds */
    uint16_t attempts; /* retries so far (ENOBUFS, EAGAIN, short send) */
} gw_send_t;

typedef struct gw_egress gw_egress_t;

/* The backend table (libuv/liburing style feature detection): egress.c picks one. */
typedef struct {
    const char *name;
    /* Sets the backend up over eg->fds. Returns 0 or -errno (the caller may fall back). */
    int (*init)(gw_egress_t *eg);
    /* Sends `n` packets; takes one packet reference per send and releases it through
     * gw_egress_complete(). Returns 0 or -errno for a broken backend. */
    int (*submit)(gw_egress_t *eg, const gw_send_t *sends, unsigned n);
    /* Waits (at most `timeout_ms`) until no send is in flight. */
    void (*drain)(gw_egress_t *eg, int timeout_ms);
    void (*close)(gw_egress_t *eg);
} gw_egress_ops_t;

typedef void (*gw_sent_cb)(void *data, const gw_send_t *send, int res, uint64_t now_ns);

struct gw_egress {
    const gw_egress_ops_t *ops;
    uv_loop_t *loop;
    gw_pool_t *pool;
    int fds[GW_MAX_SOCKETS];
    unsigned nfds;
    unsigned inflight;
    void *backend; /* backend state */
    gw_sent_cb on_sent;
    void *data;
    uint64_t retries;
    uint64_t errors;
    uint64_t errqueue_msgs;     /* messages read from the sockets' error queues (IP_RECVERR) */
    unsigned retry_backoff_ms;  /* current wait before a send refused by the qdisc is retried */
    uint64_t congestion_waits;  /* sends that waited for socket buffer room */
    uint64_t async_completions; /* sends completed later, reaped through the eventfd */
    uint64_t now_ns;            /* completion time of the batch being reaped (one clock read) */
    bool uring_refused;         /* io_uring wanted but refused: fell back */
    bool probing;               /* start-up probe: completions are not counted */
    double probe_ns[2]; /* auto's probe: median ns per datagram, [0] io_uring, [1] sendmmsg */
    /* Zero copy (io_uring only): packets of at least zc_min_len bytes go as SEND_ZC;
     * UINT32_MAX = never. Set by egress.c before the backend's init. */
    uint32_t zc_min_len;
    bool want_fixed_bufs;  /* egress.registered_buffers */
    bool fixed_bufs;       /* the pool is registered with io_uring (SEND_ZC uses it) */
    uint64_t zc_sends;     /* sends issued as SEND_ZC */
    uint64_t zc_copied;    /* of their notifications, those saying the kernel copied anyway */
    uint64_t zc_notifs;    /* notifications received (a buffer is reusable only after its own) */
    double probe_zc_ns[2]; /* zerocopy=auto probe: median ns per datagram, [0] send, [1] send_zc */
};

extern const gw_egress_ops_t gw_egress_uring_ops;
extern const gw_egress_ops_t gw_egress_mmsg_ops;

/* Creates the multicast sockets (connected, TTL, loop, IP_MULTICAST_IF), then the backend.
 * Returns 0 or -1 (logged). */
int gw_egress_init(gw_egress_t *eg, uv_loop_t *loop, const gw_config_t *cfg, gw_pool_t *pool,
                   gw_sent_cb on_sent, void *data);
int gw_egress_submit(gw_egress_t *eg, const gw_send_t *sends, unsigned n);
void gw_egress_close(gw_egress_t *eg);
/* Called by backends once per finished send (res = bytes or -errno): reports it and drops
 * the packet reference. */
void gw_egress_complete(gw_egress_t *eg, const gw_send_t *send, int res);
/* Socket index of channel `ch`, line `line`. */
static inline unsigned gw_egress_sock(int ch, int line)
{
    return (unsigned)(ch * GW_MAX_LINES + line);
}
/* Why a send is retried (index into gw_metrics.send_retry_reasons). */
enum {
    GW_RETRY_ENOBUFS = 0, /* the interface's queue (qdisc) is full: seen with IP_RECVERR */
    GW_RETRY_EAGAIN,      /* the socket buffer is full */
    GW_RETRY_SHORT,       /* fewer bytes sent, or a sendmmsg batch cut short (no reason given) */
    GW_RETRY_CANCELED,    /* io_uring: an earlier linked send of the same socket failed */
    GW_RETRY_OTHER,       /* EINTR */
    GW_RETRY_NREASONS
};
extern const char *const gw_retry_reason_names[GW_RETRY_NREASONS];
/* Counts one retry of a send that got `res` (bytes or -errno; `short_send` when res is a
 * byte count below the datagram's length). */
void gw_egress_count_retry(gw_egress_t *eg, int res, bool short_send);
/* Backoff after ENOBUFS: POLLOUT says nothing about the qdisc, so a refused send waits on a
 * timer, GW_RETRY_MIN_MS doubling while retries keep failing, up to GW_RETRY_MAX_MS. */
#define GW_RETRY_MIN_MS 1
#define GW_RETRY_MAX_MS 16
/* A send refused with backoff has failed again (grow the wait) or gone out (reset it). */
void gw_egress_backoff_update(gw_egress_t *eg, bool failed_again);
/* Reads (and counts, logging the first few) whatever IP_RECVERR queued on the sockets' error
 * queues, so it never fills the receive buffer. Cheap when empty: one recvmsg per socket. */
void gw_egress_drain_errqueue(gw_egress_t *eg);
/* True when a retry is worth it for this send result. */
static inline bool gw_send_should_retry(int res)
{
    return res == -105 /* ENOBUFS */ || res == -11 /* EAGAIN */ || res == -4 /* EINTR */;
}
#define GW_SEND_MAX_ATTEMPTS 64

/* ---------------------------------------------------------------- packetizer.c */
/* Per channel: the open packet, into which messages are appended until it is full. */
typedef struct {
    mdfeed_mold_builder_t builder;
    gw_packet_t *open; /* NULL when none */
} gw_chan_packer_t;

/* Collects the packets of one flush for all channels and lines. */
typedef struct gw_packetizer {
    gw_pool_t *pool;
    gw_chan_packer_t chans[GW_MAX_CHANNELS];
    int nchannels;
    int nlines[GW_MAX_CHANNELS];
    gw_send_t *pending;
    unsigned npending;
    unsigned max_pending; /* submit early when this many sends are queued */
    /* Called when the pending batch must go out (full) or a buffer is needed (pool empty). */
    void (*submit)(struct gw_packetizer *pz);
    void (*need_buffer)(struct gw_packetizer *pz);
    void *data;
} gw_packetizer_t;

int gw_packetizer_init(gw_packetizer_t *pz, gw_pool_t *pool, const gw_config_t *cfg,
                       unsigned max_pending);
void gw_packetizer_close(gw_packetizer_t *pz);
/* Appends message `seq` of channel `ch`. Returns 0, MDFEED_ETOOBIG, or -ENOBUFS when no
 * buffer could be had. */
int gw_packetizer_append(gw_packetizer_t *pz, int ch, uint64_t seq, const void *msg, size_t len,
                         uint64_t arrival_ns);
/* Hot path of gw_packetizer_append(): appends to the channel's open packet when there is one
 * and the message fits it. The checks of mdfeed_mold_builder_append() are done once here
 * (an open packet has len >= the header, so fitting the budget also bounds len below
 * MDFEED_ETOOBIG); the bytes written are the same. False: nothing written, take the full
 * path (which opens or closes packets). */
static inline bool gw_packetizer_append_fast(gw_packetizer_t *pz, int ch, const void *msg,
                                             size_t len)
{
    gw_chan_packer_t *cp = &pz->chans[ch];
    mdfeed_mold_builder_t *b = &cp->builder;
    if (!cp->open || b->count == MDFEED_MOLD_MAX_COUNT ||
        b->len + MDFEED_MOLD_BLOCK_HDR_LEN + len > b->budget || b->count >= UINT64_MAX - b->seq)
        return false;
    uint8_t *p = b->buf + b->len;
    p[0] = (uint8_t)(len >> 8);
    p[1] = (uint8_t)len;
    memcpy(p + MDFEED_MOLD_BLOCK_HDR_LEN, msg, len);
    b->len += MDFEED_MOLD_BLOCK_HDR_LEN + len;
    b->count++;
    return true;
}
/* Closes every open packet and queues it on each line. Returns the number of packets. */
unsigned gw_packetizer_close_open(gw_packetizer_t *pz);
/* Queues a bare header (heartbeat: count 0, end of session: 0xFFFF) on each line of `ch`. */
int gw_packetizer_header(gw_packetizer_t *pz, int ch, const char *session, uint64_t seq,
                         uint16_t count);

/* ---------------------------------------------------------------- metrics.c */
#define GW_LAT_BUCKETS   16
#define GW_FLUSH_BUCKETS 10

typedef struct {
    uint64_t messages_in[GW_MAX_USERS];
    uint64_t bytes_in[GW_MAX_USERS];
    uint64_t packets_out[GW_MAX_SOCKETS];
    uint64_t bytes_out[GW_MAX_SOCKETS];
    uint64_t heartbeats[GW_MAX_CHANNELS];
    uint64_t rr_served[GW_MAX_CHANNELS];   /* requests answered */
    uint64_t rr_messages[GW_MAX_CHANNELS]; /* messages resent */
    uint64_t rr_ignored[GW_MAX_CHANNELS];
    uint64_t rr_limited[GW_MAX_CHANNELS];
    uint64_t rr_unservable[GW_MAX_CHANNELS]; /* messages no longer in the ring */
    uint64_t rejected[8];                    /* publisher connections closed, by reason */
    uint64_t flush_buckets[GW_FLUSH_BUCKETS + 1];
    uint64_t flush_sum, flush_count;
    uint64_t lat_buckets[GW_LAT_BUCKETS + 1]; /* arrival -> send, per message */
    uint64_t lat_sum_ns, lat_count;
    int64_t publishers;
    uint64_t send_retries, send_errors;
    uint64_t send_retry_reasons[GW_RETRY_NREASONS];
    uint64_t ingress_pauses;               /* times reading stopped because egress was backed up */
    uint64_t up_messages[GW_MAX_CHANNELS]; /* connect mode: sequenced messages taken */
    uint64_t up_duplicates[GW_MAX_CHANNELS]; /* already had them (replay after a reconnect) */
    uint64_t up_skipped[GW_MAX_CHANNELS];    /* upstream could not replay them: a gap */
    uint64_t up_connects[GW_MAX_CHANNELS];   /* logins accepted */
    int up_connected[GW_MAX_CHANNELS];
} gw_metrics_t;

extern gw_metrics_t gw_metrics;
extern const double gw_lat_bounds_us[GW_LAT_BUCKETS];
extern const unsigned gw_flush_bounds[GW_FLUSH_BUCKETS];

void gw_metrics_observe_latency(uint64_t ns, uint64_t weight);
void gw_metrics_observe_flush(unsigned packets);

/* Reasons a publisher connection is closed (index into gw_metrics.rejected). */
enum {
    GW_CLOSE_GARBAGE = 0, /* unknown or unexpected packet type */
    GW_CLOSE_OVERSIZE,
    GW_CLOSE_EMPTY,
    GW_CLOSE_BEFORE_LOGIN,
    GW_CLOSE_SECOND_LOGIN,
    GW_CLOSE_BAD_LOGIN,
    GW_CLOSE_IDLE,
    GW_CLOSE_OTHER,
};
extern const char *const gw_close_reason_names[8];

/* ---------------------------------------------------------------- the gateway */
typedef struct gw_ingress gw_ingress_t;
typedef struct gw_retransmit gw_retransmit_t;
typedef struct gw_http gw_http_t;

typedef struct {
    uint64_t next_seq;    /* sequence number the next message gets */
    uint64_t flushed_seq; /* messages below this were handed to egress */
    uint64_t last_send_ns;
    gw_store_t store;
} gw_channel_t;

typedef struct gw {
    uv_loop_t *loop;
    gw_config_t cfg;
    gw_channel_t chans[GW_MAX_CHANNELS];
    gw_pool_t pool;
    gw_packetizer_t pz;
    gw_egress_t egress;
    gw_ingress_t *ingress;
    struct gw_upstream *upstreams; /* connect-mode clients (NULL when none) */
    gw_retransmit_t *retransmit;
    gw_http_t *http;
    uv_check_t flush_check;
    uv_timer_t hb_timer;
    uv_signal_t sigterm, sigint;
    bool stopping;
    bool ingress_paused; /* backpressure: publishers are not read while egress is backed up */
    bool started;        /* start() completed: shutdown sends the end of session */
    bool egress_ready;
    char egress_ifname[IF_NAMESIZE]; /* resolved egress interface */
} gw_t;

/* sequencer.c: gives the message the channel's next sequence number, stores it and appends
 * it to the open packet. Returns the sequence number, or 0 on failure (logged). */
uint64_t gw_sequence_slow(gw_t *gw, int ch, const void *msg, size_t len, uint64_t arrival_ns);
/* Store part of the slow path: gw_store_append() with its failure logged. */
void gw_sequence_store_slow(gw_t *gw, int ch, uint64_t seq, const void *msg, size_t len);
/* Inline so that a message that fits the open packet and the ring's tail costs no call
 * beyond its two memcpy; everything else goes through the out-of-line general path. */
static inline __attribute__((always_inline)) uint64_t gw_sequence(gw_t *gw, int ch, const void *msg,
                                                                  size_t len, uint64_t arrival_ns)
{
    gw_channel_t *c = &gw->chans[ch];
    uint64_t seq = c->next_seq;
    if (!gw_packetizer_append_fast(&gw->pz, ch, msg, len))
        return gw_sequence_slow(gw, ch, msg, len, arrival_ns);
    if (!gw_store_append_fast(&c->store, seq, msg, len))
        gw_sequence_store_slow(gw, ch, seq, msg, len);
    c->next_seq++;
    return seq;
}
/* Closes the open packets and submits everything queued (end of a loop iteration). */
void gw_flush(gw_t *gw);

/* ingress.c */
int gw_ingress_start(gw_t *gw);
void gw_ingress_stop(gw_t *gw);
int gw_ingress_publishers(const gw_t *gw);
/* Stops or resumes reading from every publisher (TCP flow control pushes back on them). */
void gw_ingress_set_paused(gw_t *gw, bool paused);

/* ingress_connect.c: connect mode, one SoupBinTCP client per channel with an upstream. */
int gw_upstream_start(gw_t *gw);
void gw_upstream_stop(gw_t *gw);
void gw_upstream_free(gw_t *gw);
void gw_upstream_set_paused(gw_t *gw, bool paused);

/* retransmit.c */
int gw_retransmit_start(gw_t *gw);
void gw_retransmit_stop(gw_t *gw);

/* metrics.c */
int gw_http_start(gw_t *gw);
void gw_http_stop(gw_t *gw);
/* Renders the Prometheus exposition into a malloc'd string. */
char *gw_metrics_render(const gw_t *gw, size_t *len);
/* True when egress is set up and the egress interface holds its IPv4 address. */
bool gw_ready(const gw_t *gw);

/* egress.c helpers also used by main.c */
/* Resolves the egress interface: name (given or found from the address). Returns 0 or -1. */
int gw_egress_ifname(const gw_config_t *cfg, char out[IF_NAMESIZE]);
bool gw_iface_has_addr(const char *ifname, const struct in_addr *want);
void gw_check_igmp_version(const char *ifname);
int gw_check_mtu(const char *ifname, uint32_t budget);

#endif /* GW_GATEWAY_H */
