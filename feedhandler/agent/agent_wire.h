/* The contract between mdcast-agent and its consumers (libmdfeed's agent source): the layout
 * of the shared-memory ring, the seqlock rule of its slots, and the control protocol on the
 * agent's Unix socket. Header-only so that the agent, the library and the fuzz target compile
 * the same code; nothing here makes a system call.
 *
 * Ring (one per multicast group, in a sealed memfd; docs/AGENT.md has the picture):
 *   [0, 4096)           agent_ring_hdr_t: geometry, group, epoch, head
 *   [4096, ...)         slot_count slots of slot_bytes each; slot i holds datagram index
 *                       n with n % slot_count == i
 * Datagram indexes count from 0 in arrival order. head = number of datagrams published.
 *
 * Seqlock rule, per slot: lock == 2n+1 while the agent writes datagram n into it (the kernel
 * is filling it in recvmmsg), 2n+2 once n is complete. A reader that wants n < head loads lock
 * (acquire), copies, fences (acquire) and loads lock again: the copy is good only if both
 * loads gave 2n+2. A value above 2n+2 means the slot moved on to a later datagram: the reader
 * was lapped and n is lost to it. The writer never looks at readers.
 *
 * Control protocol: SOCK_SEQPACKET, one message per packet, every message a 16-byte header
 * (magic, version, type, total length, request id) and a fixed-size body per type; all
 * integers little-endian-free: they are host order, since both ends are on one node. */
#ifndef MDCAST_AGENT_WIRE_H
#define MDCAST_AGENT_WIRE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- ring ---------------------------------------------------------------------------------- */

#define AGENT_RING_MAGIC       0x4752444du /* "MDRG" */
#define AGENT_RING_VERSION     1u
#define AGENT_RING_HDR_BYTES   4096u
#define AGENT_SLOT_HDR_BYTES   32u
#define AGENT_SLOT_TRUNCATED   1u /* the datagram was longer than the slot; len = bytes kept */
#define AGENT_MAX_DATAGRAM_MAX 8972u /* 9000-byte MTU less IP and UDP headers */
/* The agent claims the slots of up to this many datagrams ahead of head (one recvmmsg
 * batch), so a reader may trail head by slot_count - AGENT_RING_CLAIM_AHEAD without loss. */
#define AGENT_RING_CLAIM_AHEAD 64u

typedef struct {
    uint32_t magic;
    uint32_t version;
    uint32_t slot_count; /* a power of two */
    uint32_t slot_bytes; /* AGENT_SLOT_HDR_BYTES + max_datagram, rounded up to 64 */
    uint32_t max_datagram;
    uint32_t group; /* IPv4 address, network order */
    uint16_t port;  /* host order */
    uint16_t reserved0;
    uint32_t reserved1;
    uint64_t epoch; /* changes with every agent start: a new ring is a new index space */
    alignas(64) _Atomic uint64_t head; /* datagrams published; written by the agent only */
} agent_ring_hdr_t;

typedef struct {
    _Atomic uint64_t lock; /* the seqlock word (rule above) */
    uint64_t rx_ns;        /* SO_TIMESTAMPNS of the datagram (CLOCK_REALTIME), 0 if none */
    uint32_t len;          /* payload bytes in the slot */
    uint32_t flags;        /* AGENT_SLOT_* */
    uint64_t reserved;
} agent_slot_hdr_t;

_Static_assert(sizeof(agent_slot_hdr_t) == AGENT_SLOT_HDR_BYTES, "slot header is 32 bytes");
_Static_assert(sizeof(agent_ring_hdr_t) <= AGENT_RING_HDR_BYTES, "ring header fits its page");

/* A mapped ring as either side sees it. */
typedef struct {
    uint8_t *base; /* the mapping (read-only on the consumer side) */
    size_t bytes;
    agent_ring_hdr_t *hdr;
    uint64_t mask;
    uint32_t slot_bytes;
    uint32_t max_datagram;
} agent_ring_t;

static inline uint32_t agent_slot_bytes_for(uint32_t max_datagram)
{
    return (AGENT_SLOT_HDR_BYTES + max_datagram + 63u) & ~63u;
}

/* Slots a ring of `bytes` holds: the largest power of two that fits, or 0 if fewer than 2. */
static inline uint32_t agent_ring_slots_for(size_t bytes, uint32_t max_datagram)
{
    if (bytes <= AGENT_RING_HDR_BYTES)
        return 0;
    size_t fit = (bytes - AGENT_RING_HDR_BYTES) / agent_slot_bytes_for(max_datagram);
    uint32_t n = 1;
    while ((size_t)n * 2 <= fit && n < (1u << 30))
        n *= 2;
    return n >= 2 && n <= fit ? n : 0;
}

static inline size_t agent_ring_total_bytes(uint32_t slots, uint32_t max_datagram)
{
    return AGENT_RING_HDR_BYTES + (size_t)slots * agent_slot_bytes_for(max_datagram);
}

/* Checks a mapping received from elsewhere before trusting its geometry: a consumer must not
 * read past its mapping whatever the header says. Returns 0 or -1. */
static inline int agent_ring_attach(agent_ring_t *r, void *base, size_t bytes)
{
    agent_ring_hdr_t *h = base;
    if (bytes < AGENT_RING_HDR_BYTES || h->magic != AGENT_RING_MAGIC ||
        h->version != AGENT_RING_VERSION || h->slot_count < 2 ||
        (h->slot_count & (h->slot_count - 1)) || h->max_datagram == 0 ||
        h->max_datagram > AGENT_MAX_DATAGRAM_MAX ||
        h->slot_bytes != agent_slot_bytes_for(h->max_datagram) ||
        agent_ring_total_bytes(h->slot_count, h->max_datagram) > bytes)
        return -1;
    *r = (agent_ring_t){.base = base,
                        .bytes = bytes,
                        .hdr = h,
                        .mask = h->slot_count - 1u,
                        .slot_bytes = h->slot_bytes,
                        .max_datagram = h->max_datagram};
    return 0;
}

static inline agent_slot_hdr_t *agent_ring_slot(const agent_ring_t *r, uint64_t n)
{
    return (agent_slot_hdr_t *)(void *)(r->base + AGENT_RING_HDR_BYTES +
                                        (size_t)(n & r->mask) * r->slot_bytes);
}

static inline uint8_t *agent_slot_data(agent_slot_hdr_t *s)
{
    return (uint8_t *)s + AGENT_SLOT_HDR_BYTES;
}

/* Writer, step 1: claims the slot of datagram `n` (its old contents become unreadable). */
static inline void agent_ring_claim(agent_ring_t *r, uint64_t n)
{
    atomic_store_explicit(&agent_ring_slot(r, n)->lock, 2 * n + 1, memory_order_relaxed);
    /* Orders the odd lock before the payload stores that follow (Boehm's seqlock writer). */
    atomic_thread_fence(memory_order_release);
}

/* Writer, step 2: datagram `n` is in its slot; readers may take it once head passes it. */
static inline void agent_ring_complete(agent_ring_t *r, uint64_t n, uint32_t len, uint32_t flags,
                                       uint64_t rx_ns)
{
    agent_slot_hdr_t *s = agent_ring_slot(r, n);
    s->len = len;
    s->flags = flags;
    s->rx_ns = rx_ns;
    atomic_store_explicit(&s->lock, 2 * n + 2, memory_order_release);
}

/* Writer, step 3: publishes every datagram below `head`. */
static inline void agent_ring_publish(agent_ring_t *r, uint64_t head)
{
    atomic_store_explicit(&r->hdr->head, head, memory_order_release);
}

static inline uint64_t agent_ring_head(const agent_ring_t *r)
{
    return atomic_load_explicit(&r->hdr->head, memory_order_acquire);
}

/* Outcome of one read attempt. */
enum { AGENT_READ_OK = 0, AGENT_READ_LAPPED = 1, AGENT_READ_NOT_YET = 2 };

typedef struct {
    uint64_t lock; /* the first load; agent_ring_read_end() compares against it */
} agent_read_t;

/* Reader, step 1: may datagram `n` be copied from its slot? */
static inline int agent_ring_read_begin(const agent_ring_t *r, uint64_t n, agent_read_t *rd,
                                        const agent_slot_hdr_t **slot)
{
    const agent_slot_hdr_t *s = agent_ring_slot(r, n);
    uint64_t v = atomic_load_explicit(&((agent_slot_hdr_t *)s)->lock, memory_order_acquire);
    *slot = s;
    rd->lock = v;
    if (v == 2 * n + 2)
        return AGENT_READ_OK;
    return v > 2 * n + 2 ? AGENT_READ_LAPPED : AGENT_READ_NOT_YET;
}

/* Reader, step 2 (after copying): was the copy stable? AGENT_READ_OK or _LAPPED. */
static inline int agent_ring_read_end(const agent_slot_hdr_t *s, const agent_read_t *rd)
{
    atomic_thread_fence(memory_order_acquire);
    uint64_t v = atomic_load_explicit(&((agent_slot_hdr_t *)s)->lock, memory_order_relaxed);
    return v == rd->lock ? AGENT_READ_OK : AGENT_READ_LAPPED;
}

/* Reads datagram `n` into `buf` (`cap` bytes; a longer payload is cut and *truncated set).
 * Returns AGENT_READ_OK (with *len, *rx_ns), AGENT_READ_LAPPED or AGENT_READ_NOT_YET. The
 * length is bounded before the copy, so a torn header cannot make the copy overrun. */
static inline int agent_ring_read(const agent_ring_t *r, uint64_t n, uint8_t *buf, uint32_t cap,
                                  uint32_t *len, uint64_t *rx_ns, bool *truncated)
{
    const agent_slot_hdr_t *s;
    agent_read_t rd;
    int rc = agent_ring_read_begin(r, n, &rd, &s);
    if (rc != AGENT_READ_OK)
        return rc;
    uint32_t l = s->len, f = s->flags;
    uint64_t ts = s->rx_ns;
    if (l > r->max_datagram)
        l = r->max_datagram; /* only a torn header can say so; read_end rejects it then */
    uint32_t n_copy = l < cap ? l : cap;
    memcpy(buf, (const uint8_t *)s + AGENT_SLOT_HDR_BYTES, n_copy);
    rc = agent_ring_read_end(s, &rd);
    if (rc != AGENT_READ_OK)
        return rc;
    *len = n_copy;
    *rx_ns = ts;
    *truncated = (f & AGENT_SLOT_TRUNCATED) || n_copy < l;
    return AGENT_READ_OK;
}

/* ---- control protocol ---------------------------------------------------------------------- */

#define AGENT_PROTO_MAGIC   0x4741444du /* "MDAG" */
#define AGENT_PROTO_VERSION 1u
#define AGENT_NAME_LEN      32u
#define AGENT_TEXT_LEN      96u
#define AGENT_MAX_MSG       (16u + 64u + AGENT_MAX_DATAGRAM_MAX) /* a DATA message */

enum {
    AGENT_MSG_HELLO = 1,       /* c->a: first message; versions spoken */
    AGENT_MSG_HELLO_OK = 2,    /* a->c */
    AGENT_MSG_SUBSCRIBE = 3,   /* c->a: group, port, line, mode */
    AGENT_MSG_SUBSCRIBED = 4,  /* a->c: ring geometry; SCM_RIGHTS [memfd, eventfd] in shm mode */
    AGENT_MSG_UNSUBSCRIBE = 5, /* c->a */
    AGENT_MSG_KEEPALIVE = 6,   /* both ways; the client's carries its read positions */
    AGENT_MSG_ERROR = 7,       /* a->c: why a request failed (or why the client is dropped) */
    AGENT_MSG_DATA = 8,        /* a->c: one datagram (datagram mode) */
    AGENT_MSG_TYPE_MAX = 8
};

enum { AGENT_MODE_SHM = 0, AGENT_MODE_DGRAM = 1 };

typedef struct {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint32_t length; /* of the whole message, header included */
    uint32_t id;     /* request id, echoed in the reply */
} agent_msg_hdr_t;

typedef struct {
    uint16_t min_version, max_version;
    uint32_t flags; /* none defined; must be 0 */
    char name[AGENT_NAME_LEN]; /* for the agent's log; NUL-padded printable ASCII */
} agent_hello_t;

typedef struct {
    uint16_t version;
    uint16_t reserved;
    uint32_t max_subscriptions;
    uint32_t keepalive_ms; /* how often the agent expects a keepalive (advisory) */
    uint32_t reserved2;
    uint64_t epoch;
} agent_hello_ok_t;

typedef struct {
    uint32_t group; /* network order */
    uint16_t port;  /* host order */
    uint8_t line;   /* the client's own label (A = 0, B = 1), echoed */
    uint8_t mode;   /* AGENT_MODE_* */
} agent_sub_t;

typedef struct {
    agent_sub_t sub;
    uint32_t slot_count, max_datagram;
    uint64_t ring_bytes; /* size of the memfd (shm mode) */
    uint64_t head;       /* where a new reader starts */
} agent_subscribed_t;

typedef struct {
    uint32_t group;
    uint16_t port;
    uint16_t reserved;
    uint64_t position; /* next datagram index the client will read */
    uint64_t laps;     /* times it was lapped so far */
    uint64_t lost;     /* datagrams lost to laps so far */
} agent_report_t;

#define AGENT_MAX_REPORTS 4u
typedef struct {
    uint32_t count; /* reports that follow (0..AGENT_MAX_REPORTS) */
    uint32_t reserved;
    agent_report_t reports[AGENT_MAX_REPORTS];
} agent_keepalive_t;

typedef struct {
    int32_t code; /* -errno */
    uint32_t reserved;
    char text[AGENT_TEXT_LEN];
} agent_error_t;

typedef struct {
    uint32_t group;
    uint16_t port;
    uint8_t line;
    uint8_t flags; /* AGENT_SLOT_TRUNCATED */
    uint64_t index; /* datagram index in the group's ring: a jump is a gap */
    uint64_t rx_ns;
    /* then the datagram */
} agent_data_t;

typedef struct {
    agent_msg_hdr_t hdr;
    union {
        agent_hello_t hello;
        agent_hello_ok_t hello_ok;
        agent_sub_t sub; /* SUBSCRIBE, UNSUBSCRIBE */
        agent_subscribed_t subscribed;
        agent_keepalive_t keepalive;
        agent_error_t error;
        agent_data_t data;
    } u;
    const uint8_t *payload; /* DATA: the datagram, inside the parsed buffer */
    uint32_t payload_len;
} agent_msg_t;

/* Parse errors: each one is a reason to drop the peer. */
enum {
    AGENT_PARSE_SHORT = -1,    /* shorter than its header or its body */
    AGENT_PARSE_MAGIC = -2,    /* not our protocol */
    AGENT_PARSE_VERSION = -3,  /* a version this side does not speak */
    AGENT_PARSE_LENGTH = -4,   /* header length disagrees with the packet or the type */
    AGENT_PARSE_TYPE = -5,     /* unknown type */
    AGENT_PARSE_FIELD = -6,    /* a field out of range */
};

static inline const char *agent_parse_strerror(int rc)
{
    switch (rc) {
    case AGENT_PARSE_SHORT:
        return "short message";
    case AGENT_PARSE_MAGIC:
        return "bad magic";
    case AGENT_PARSE_VERSION:
        return "unsupported version";
    case AGENT_PARSE_LENGTH:
        return "length mismatch";
    case AGENT_PARSE_TYPE:
        return "unknown type";
    case AGENT_PARSE_FIELD:
        return "field out of range";
    }
    return "ok";
}

/* Body size of each type (DATA: the fixed part; the datagram follows). */
static inline size_t agent_body_size(unsigned type)
{
    switch (type) {
    case AGENT_MSG_HELLO:
        return sizeof(agent_hello_t);
    case AGENT_MSG_HELLO_OK:
        return sizeof(agent_hello_ok_t);
    case AGENT_MSG_SUBSCRIBE:
    case AGENT_MSG_UNSUBSCRIBE:
        return sizeof(agent_sub_t);
    case AGENT_MSG_SUBSCRIBED:
        return sizeof(agent_subscribed_t);
    case AGENT_MSG_KEEPALIVE:
        return sizeof(agent_keepalive_t);
    case AGENT_MSG_ERROR:
        return sizeof(agent_error_t);
    case AGENT_MSG_DATA:
        return sizeof(agent_data_t);
    }
    return 0;
}

static inline bool agent_name_ok(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] >= 0x20 && s[i] < 0x7f)
        i++;
    for (; i < n; i++) /* after the text: NUL padding only */
        if (s[i] != '\0')
            return false;
    return true;
}

static inline bool is_multicast_be(uint32_t group_be)
{
    const uint8_t *b = (const uint8_t *)&group_be;
    return (b[0] & 0xf0) == 0xe0;
}

/* Field checks per type, beyond the sizes. */
static inline int agent_check_fields(const agent_msg_t *m)
{
    switch (m->hdr.type) {
    case AGENT_MSG_HELLO:
        if (m->u.hello.min_version > m->u.hello.max_version || m->u.hello.flags != 0 ||
            !agent_name_ok(m->u.hello.name, sizeof(m->u.hello.name)))
            return AGENT_PARSE_FIELD;
        if (m->u.hello.min_version > AGENT_PROTO_VERSION ||
            m->u.hello.max_version < AGENT_PROTO_VERSION)
            return AGENT_PARSE_VERSION;
        return 0;
    case AGENT_MSG_SUBSCRIBE:
    case AGENT_MSG_UNSUBSCRIBE:
        if (!is_multicast_be(m->u.sub.group) || m->u.sub.port == 0 || m->u.sub.line > 1 ||
            m->u.sub.mode > AGENT_MODE_DGRAM)
            return AGENT_PARSE_FIELD;
        return 0;
    case AGENT_MSG_KEEPALIVE:
        return m->u.keepalive.count > AGENT_MAX_REPORTS ? AGENT_PARSE_FIELD : 0;
    case AGENT_MSG_SUBSCRIBED:
        return m->u.subscribed.max_datagram > AGENT_MAX_DATAGRAM_MAX ? AGENT_PARSE_FIELD : 0;
    case AGENT_MSG_DATA:
        return m->payload_len > AGENT_MAX_DATAGRAM_MAX ? AGENT_PARSE_FIELD : 0;
    }
    return 0;
}

/* Parses one received packet. Returns 0 (and fills *m; m->payload points into buf) or an
 * AGENT_PARSE_* code. Never reads outside [buf, buf+len). */
static inline int agent_msg_parse(const uint8_t *buf, size_t len, agent_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    if (len < sizeof(agent_msg_hdr_t))
        return AGENT_PARSE_SHORT;
    memcpy(&m->hdr, buf, sizeof(m->hdr));
    if (m->hdr.magic != AGENT_PROTO_MAGIC)
        return AGENT_PARSE_MAGIC;
    if (m->hdr.version != AGENT_PROTO_VERSION)
        return AGENT_PARSE_VERSION;
    if (m->hdr.type == 0 || m->hdr.type > AGENT_MSG_TYPE_MAX)
        return AGENT_PARSE_TYPE;
    size_t body = agent_body_size(m->hdr.type);
    if (m->hdr.length != len)
        return AGENT_PARSE_LENGTH;
    if (len < sizeof(agent_msg_hdr_t) + body)
        return AGENT_PARSE_SHORT;
    if (m->hdr.type != AGENT_MSG_DATA && len != sizeof(agent_msg_hdr_t) + body)
        return AGENT_PARSE_LENGTH;
    memcpy(&m->u, buf + sizeof(agent_msg_hdr_t), body);
    if (m->hdr.type == AGENT_MSG_DATA) {
        m->payload = buf + sizeof(agent_msg_hdr_t) + body;
        m->payload_len = (uint32_t)(len - sizeof(agent_msg_hdr_t) - body);
    }
    return agent_check_fields(m);
}

/* Encodes a message of `type` with `body` (agent_body_size(type) bytes) and, for DATA, the
 * datagram. Returns the length, or 0 if `cap` is too small. */
static inline size_t agent_msg_encode(uint8_t *buf, size_t cap, unsigned type, uint32_t id,
                                      const void *body, const void *payload, size_t payload_len)
{
    size_t blen = agent_body_size(type);
    size_t total = sizeof(agent_msg_hdr_t) + blen + payload_len;
    if (blen == 0 || total > cap || total > UINT32_MAX)
        return 0;
    agent_msg_hdr_t h = {.magic = AGENT_PROTO_MAGIC,
                         .version = AGENT_PROTO_VERSION,
                         .type = (uint16_t)type,
                         .length = (uint32_t)total,
                         .id = id};
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), body, blen);
    if (payload_len)
        memcpy(buf + sizeof(h) + blen, payload, payload_len);
    return total;
}

#endif /* MDCAST_AGENT_WIRE_H */
