/* The subscriber: joins line A (and B), receives MoldUDP64 in recvmmsg batches with kernel
 * receive timestamps, arbitrates between the lines (first arrival of a sequence number wins),
 * holds out-of-order messages in a bounded window, recovers gaps through MoldUDP64
 * re-requests, and delivers every message once, in order, or declares it lost.
 *
 * The hold window is a ring of `cap` slots indexed by sequence number: slot s & mask belongs
 * to sequence s while next_seq <= s < next_seq + cap. Every slot outside
 * [next_seq, high_seen] is EMPTY; inside, a slot is MISSING (seen nothing yet), GAP (reported
 * through on_gap, waiting for a free re-request), REQUESTED, HELD (a copy waits for delivery)
 * or LOST (declared lost, reported when delivery reaches it).
 *
 * Session following (mdfeed_session_mode_t in mdfeed.h): a datagram of another session on a
 * line either switches at once (the current session has ended) or starts a probation: the
 * candidate's datagrams are buffered until session_silence_ms pass, and any datagram of the
 * current session received after the candidate's first one (kernel receive times compared,
 * so that an old packet still queued on the other line does not count) rejects it. */
#include "mdfeed/moldudp64.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum { SLOT_EMPTY = 0, SLOT_MISSING, SLOT_GAP, SLOT_REQUESTED, SLOT_HELD, SLOT_LOST };

enum { NLINES = 3, ROUNDS_PER_DISPATCH = 8 };

/* Bounds of a candidate session's buffer: about a second and a half of a busy feed. Beyond
 * them datagrams are dropped; after a switch the holes are gaps, recovered by re-requests. */
enum { CAND_MAX_DGRAMS = 4096, CAND_MAX_BYTES = 4 << 20 };

#define NEVER UINT64_MAX

typedef struct {
    uint8_t state;
    uint8_t line;
    uint8_t reason; /* mdfeed_loss_reason_t of a LOST slot */
    uint16_t len;
    uint8_t *msg;   /* malloc'd copy of a HELD message */
    uint64_t since; /* MISSING: when the gap was first seen (monotonic ns) */
    uint64_t rx_ns;
} slot_t;

typedef struct {
    bool active;
    uint64_t first, count; /* the range as first reported (on_recovered reports it) */
    uint64_t remaining;    /* REQUESTED slots of the range not yet filled */
    uint32_t attempts;
    uint32_t server; /* index of the server the last try went to */
    uint64_t deadline;
} request_t;

/* A datagram of a candidate session, kept until the candidate is adopted or rejected. */
typedef struct {
    uint8_t *buf;
    uint32_t len;
    uint8_t line;
    uint64_t rx_ns;
} cand_dgram_t;

struct mdfeed_sub {
    mdfeed_sub_callbacks_t cb;
    mdfeed_sub_config_t cfg; /* with defaults applied; its strings are not kept */
    mdfeed_sub_stats_t st;

    int epfd, tfd;
    int fds[NLINES]; /* line A, line B, re-request socket; -1 when absent */
    struct ip_mreqn mreq[2];
    struct sockaddr_in servers[MDFEED_MAX_RETRANSMIT_SERVERS];
    uint32_t nservers, cur_server;
    bool has_server;
    bool follow; /* FOLLOW mode (after AUTO is resolved) */

    /* The candidate session on probation (FOLLOW mode). */
    bool has_cand;
    char cand[MDFEED_MOLD_SESSION_LEN];
    uint64_t cand_since;    /* monotonic ns of its first datagram */
    uint64_t cand_first_rx; /* kernel receive time of its first datagram (0 = unknown) */
    cand_dgram_t *cand_q;   /* CAND_MAX_DGRAMS entries */
    uint32_t cand_n;
    size_t cand_bytes;
    char rejected[MDFEED_MOLD_SESSION_LEN]; /* last candidate warned about */

    char session[MDFEED_MOLD_SESSION_LEN];
    bool has_session;
    bool synced;   /* next_seq is meaningful */
    bool has_end;  /* end of session seen: end_seq is meaningful */
    bool ended;    /* on_end delivered */
    bool stopping; /* mdfeed_sub_stop() called */
    bool warned_overflow;
    uint64_t next_seq;    /* next sequence number to deliver */
    uint64_t high_seen;   /* highest sequence number tracked in the window (next_seq - 1 if none) */
    uint64_t beyond_seen; /* highest sequence number seen at all (may lie beyond the window) */
    uint64_t end_seq;

    slot_t *slots;
    uint64_t cap, mask;
    request_t *reqs;
    uint32_t outstanding;

    uint64_t gap_due;  /* earliest time a MISSING slot's gap timeout expires */
    uint64_t armed_at; /* what the timerfd is set to (NEVER = disarmed) */

    /* recvmmsg batch: max_datagram bytes per datagram, one control buffer each. */
    struct mmsghdr *mmsg;
    struct iovec *iov;
    uint8_t *bufs;
    uint8_t *ctrl;
    struct sockaddr_in *names; /* source addresses (answers must come from a server) */
};

enum { CTRL_LEN = CMSG_SPACE(sizeof(struct timespec)) };

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *mdfeed_loss_reason_str(mdfeed_loss_reason_t reason)
{
    switch (reason) {
    case MDFEED_LOSS_NO_SERVER:
        return "no-server";
    case MDFEED_LOSS_RETRIES:
        return "retries-exhausted";
    case MDFEED_LOSS_HOLD_FULL:
        return "hold-full";
    case MDFEED_LOSS_SESSION_CHANGE:
        return "session-change";
    }
    return "unknown";
}

int mdfeed_addr_parse(const char *str, uint32_t *addr, uint16_t *port)
{
    if (!str)
        return MDFEED_EBAD_ADDRESS;
    const char *colon = strrchr(str, ':');
    if (!colon || colon == str || (size_t)(colon - str) >= INET_ADDRSTRLEN)
        return MDFEED_EBAD_ADDRESS;
    char host[INET_ADDRSTRLEN];
    memcpy(host, str, (size_t)(colon - str));
    host[colon - str] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1)
        return MDFEED_EBAD_ADDRESS;
    /* Digits only: strtoul alone would take " 5", "+5" and "-1". */
    if (!isdigit((unsigned char)colon[1]))
        return MDFEED_EBAD_ADDRESS;
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno || *end || p == 0 || p > 65535)
        return MDFEED_EBAD_ADDRESS;
    *addr = ntohl(a.s_addr);
    *port = (uint16_t)p;
    return 0;
}

void mdfeed_sub_config_init(mdfeed_sub_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->gap_timeout_ms = 20;
    cfg->request_timeout_ms = 100;
    cfg->request_retries = 4;
    cfg->request_max_count = 1000;
    cfg->max_outstanding = 8;
    cfg->max_held = 65536;
    cfg->recv_batch = 64;
    cfg->max_datagram = 9000;
    cfg->rcvbuf = 4 << 20;
    cfg->session_silence_ms = 1500;
}

static int apply_defaults(mdfeed_sub_config_t *c, const mdfeed_sub_config_t *in)
{
    mdfeed_sub_config_t d;
    mdfeed_sub_config_init(&d);
    *c = *in;
#define DEFAULT_(f)                                                                                \
    if (!c->f)                                                                                     \
    c->f = d.f
    DEFAULT_(gap_timeout_ms);
    DEFAULT_(request_timeout_ms);
    DEFAULT_(request_retries);
    DEFAULT_(request_max_count);
    DEFAULT_(max_outstanding);
    DEFAULT_(max_held);
    DEFAULT_(recv_batch);
    DEFAULT_(max_datagram);
    DEFAULT_(rcvbuf);
    DEFAULT_(session_silence_ms);
#undef DEFAULT_
    if (c->request_max_count > MDFEED_MOLD_MAX_COUNT || c->max_outstanding > 1024 ||
        c->max_held > (1u << 24) || c->recv_batch > 1024 || c->max_datagram < 20 ||
        c->max_datagram > 65536 || c->request_retries > 30 || c->rcvbuf < 0 ||
        c->session_mode > MDFEED_SESSION_STRICT || c->session_silence_ms > 3600000)
        return MDFEED_EBAD_CONFIG;
    return 0;
}

/* ---- interface and sockets --------------------------------------------------------------- */

/* Finds the interface by name or by one of its IPv4 addresses; fills `name` (IFNAMSIZ). */
static int resolve_interface(const char *spec, char *name, int *ifindex, struct in_addr *addr)
{
    addr->s_addr = htonl(INADDR_ANY);
    if (!spec || !*spec)
        return MDFEED_ENO_INTERFACE;
    struct in_addr want;
    if (inet_pton(AF_INET, spec, &want) != 1) {
        unsigned idx = if_nametoindex(spec);
        if (idx == 0 || strlen(spec) >= IFNAMSIZ)
            return MDFEED_ENO_INTERFACE;
        snprintf(name, IFNAMSIZ, "%s", spec);
        *ifindex = (int)idx;
        return 0;
    }
    struct ifaddrs *ifs = NULL, *i;
    if (getifaddrs(&ifs) < 0)
        return -errno;
    int rc = MDFEED_ENO_INTERFACE;
    for (i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        if (((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr.s_addr != want.s_addr)
            continue;
        snprintf(name, IFNAMSIZ, "%s", i->ifa_name);
        *ifindex = (int)if_nametoindex(i->ifa_name);
        *addr = want;
        rc = *ifindex > 0 ? 0 : MDFEED_ENO_INTERFACE;
        break;
    }
    freeifaddrs(ifs);
    return rc;
}

static void warn(mdfeed_sub_t *sub, int code, const char *text)
{
    if (sub->cb.on_warning)
        sub->cb.on_warning(sub->cb.data, code, text);
}

/* The TGW speaks IGMPv2 only; a host answering queries with v3 reports is not joined there. */
static void check_igmp_version(mdfeed_sub_t *sub, const char *ifname)
{
    char path[128], text[256];
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/force_igmp_version", ifname);
    FILE *f = fopen(path, "r");
    int v = -1;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = -1;
        fclose(f);
    }
    if (v == 2)
        return;
    if (v < 0)
        snprintf(text, sizeof(text), "cannot read %s: IGMP version unknown (the TGW needs v2)",
                 path);
    else
        snprintf(text, sizeof(text),
                 "%s force_igmp_version is %d, not 2: an AWS Transit Gateway multicast domain "
                 "speaks IGMPv2 only (set net.ipv4.conf.%s.force_igmp_version=2)",
                 ifname, v, ifname);
    warn(sub, MDFEED_WARN_IGMP_VERSION, text);
}

static int open_line(mdfeed_sub_t *sub, int line, const char *group, int ifindex,
                     struct in_addr ifaddr)
{
    uint32_t addr;
    uint16_t port;
    int rc = mdfeed_addr_parse(group, &addr, &port);
    if (rc)
        return rc;
    if (!IN_MULTICAST(addr))
        return MDFEED_ENOT_MULTICAST;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    sub->fds[line] = fd;
    int one = 1, zero = 0;
    /* SO_REUSEADDR lets several consumers on one host share the group and port. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0 ||
        /* Without this Linux delivers every group joined by any socket on this port. */
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero)) < 0)
        return -errno;
    int want = sub->cfg.rcvbuf, got = 0;
    socklen_t gl = sizeof(got);
    /* SO_RCVBUFFORCE passes net.core.rmem_max when we may (CAP_NET_ADMIN); else the plain
     * option, capped by rmem_max, and a warning when the cap bites: bursts overflow a small
     * buffer and show up as gaps. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) != 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl) == 0 && got / 2 < want) {
        char text[160];
        snprintf(text, sizeof(text),
                 "line %c: SO_RCVBUF %d granted %d bytes (raise net.core.rmem_max)", 'A' + line,
                 want, got / 2);
        warn(sub, MDFEED_WARN_RCVBUF, text);
    }
    /* Binding to the group (not INADDR_ANY) keeps other groups on the same port out. */
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(addr)};
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    struct ip_mreqn *m = &sub->mreq[line];
    m->imr_multiaddr.s_addr = htonl(addr);
    m->imr_address = ifaddr;
    m->imr_ifindex = ifindex;
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, m, sizeof(*m)) < 0)
        return -errno;
    return 0;
}

/* Parses "a.b.c.d:port[,a.b.c.d:port...]" into sub->servers. */
static int parse_servers(mdfeed_sub_t *sub, const char *spec)
{
    const char *p = spec;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char one[32];
        if (n == 0 || n >= sizeof(one) || sub->nservers == MDFEED_MAX_RETRANSMIT_SERVERS)
            return n == 0 || n >= sizeof(one) ? MDFEED_EBAD_ADDRESS : MDFEED_EBAD_CONFIG;
        memcpy(one, p, n);
        one[n] = '\0';
        uint32_t addr;
        uint16_t port;
        int rc = mdfeed_addr_parse(one, &addr, &port);
        if (rc)
            return rc;
        sub->servers[sub->nservers++] = (struct sockaddr_in){
            .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(addr)};
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int open_server(mdfeed_sub_t *sub, const char *spec)
{
    int rc = parse_servers(sub, spec);
    if (rc)
        return rc;
    /* Not connected: a server may answer from another socket than the one it listens on. */
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    sub->fds[MDFEED_LINE_RETRANSMIT] = fd;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0)
        return -errno;
    sub->has_server = true;
    return 0;
}

static int alloc_buffers(mdfeed_sub_t *sub)
{
    uint32_t n = sub->cfg.recv_batch;
    sub->cap = 1;
    while (sub->cap < sub->cfg.max_held)
        sub->cap <<= 1;
    sub->mask = sub->cap - 1;
    sub->slots = calloc(sub->cap, sizeof(*sub->slots));
    sub->reqs = calloc(sub->cfg.max_outstanding, sizeof(*sub->reqs));
    sub->mmsg = calloc(n, sizeof(*sub->mmsg));
    sub->iov = calloc(n, sizeof(*sub->iov));
    sub->bufs = malloc((size_t)n * sub->cfg.max_datagram);
    sub->ctrl = calloc(n, CTRL_LEN);
    sub->names = calloc(n, sizeof(*sub->names));
    sub->cand_q = sub->follow ? calloc(CAND_MAX_DGRAMS, sizeof(*sub->cand_q)) : NULL;
    if (!sub->slots || !sub->reqs || !sub->mmsg || !sub->iov || !sub->bufs || !sub->ctrl ||
        !sub->names || (sub->follow && !sub->cand_q))
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        sub->iov[i].iov_base = sub->bufs + (size_t)i * sub->cfg.max_datagram;
        sub->iov[i].iov_len = sub->cfg.max_datagram;
        sub->mmsg[i].msg_hdr.msg_iov = &sub->iov[i];
        sub->mmsg[i].msg_hdr.msg_iovlen = 1;
        sub->mmsg[i].msg_hdr.msg_control = sub->ctrl + (size_t)i * CTRL_LEN; /* never moves */
        sub->mmsg[i].msg_hdr.msg_name = &sub->names[i];
    }
    return 0;
}

static int watch(int epfd, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int mdfeed_sub_new(mdfeed_sub_t **out, const mdfeed_sub_config_t *cfg,
                   const mdfeed_sub_callbacks_t *cbs)
{
    *out = NULL;
    if (!cfg || !cfg->group_a)
        return MDFEED_EBAD_CONFIG;
    mdfeed_sub_t *sub = calloc(1, sizeof(*sub));
    if (!sub)
        return -ENOMEM;
    sub->epfd = sub->tfd = -1;
    for (int i = 0; i < NLINES; i++)
        sub->fds[i] = -1;
    sub->gap_due = sub->armed_at = NEVER;
    if (cbs)
        sub->cb = *cbs;
    int rc = apply_defaults(&sub->cfg, cfg);
    if (rc)
        goto fail;
    sub->cfg.group_a = sub->cfg.group_b = sub->cfg.interface = NULL;
    sub->cfg.session = sub->cfg.retransmit = NULL;
    if (cfg->session) {
        rc = mdfeed_mold_session_set(sub->session, cfg->session);
        if (rc)
            goto fail;
        sub->has_session = true;
    }
    sub->follow = cfg->session_mode == MDFEED_SESSION_FOLLOW ||
                  (cfg->session_mode == MDFEED_SESSION_AUTO && !cfg->session);
    if (cfg->start_seq) {
        sub->synced = true;
        sub->next_seq = cfg->start_seq;
        sub->high_seen = sub->beyond_seen = cfg->start_seq - 1;
    }
    char ifname[IFNAMSIZ];
    int ifindex = 0;
    struct in_addr ifaddr;
    rc = resolve_interface(cfg->interface, ifname, &ifindex, &ifaddr);
    if (rc)
        goto fail;
    rc = alloc_buffers(sub);
    if (rc)
        goto fail;
    sub->epfd = epoll_create1(EPOLL_CLOEXEC);
    sub->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (sub->epfd < 0 || sub->tfd < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = open_line(sub, MDFEED_LINE_A, cfg->group_a, ifindex, ifaddr)))
        goto fail;
    if (cfg->group_b && (rc = open_line(sub, MDFEED_LINE_B, cfg->group_b, ifindex, ifaddr)))
        goto fail;
    if (cfg->retransmit && (rc = open_server(sub, cfg->retransmit)))
        goto fail;
    for (int i = 0; i < NLINES; i++)
        if (sub->fds[i] >= 0 && (rc = watch(sub->epfd, sub->fds[i])))
            goto fail;
    if ((rc = watch(sub->epfd, sub->tfd)))
        goto fail;
    check_igmp_version(sub, ifname);
    *out = sub;
    return 0;
fail:
    mdfeed_sub_free(sub);
    return rc;
}

void mdfeed_sub_free(mdfeed_sub_t *sub)
{
    if (!sub)
        return;
    for (int i = 0; i < NLINES; i++) {
        if (sub->fds[i] < 0)
            continue;
        if (i != MDFEED_LINE_RETRANSMIT && sub->mreq[i].imr_multiaddr.s_addr)
            (void)setsockopt(sub->fds[i], IPPROTO_IP, IP_DROP_MEMBERSHIP, &sub->mreq[i],
                             sizeof(sub->mreq[i]));
        close(sub->fds[i]);
    }
    if (sub->epfd >= 0)
        close(sub->epfd);
    if (sub->tfd >= 0)
        close(sub->tfd);
    if (sub->slots)
        for (uint64_t i = 0; i < sub->cap; i++)
            free(sub->slots[i].msg);
    free(sub->slots);
    free(sub->reqs);
    free(sub->mmsg);
    free(sub->iov);
    free(sub->bufs);
    free(sub->ctrl);
    free(sub->names);
    if (sub->cand_q)
        for (uint32_t i = 0; i < sub->cand_n; i++)
            free(sub->cand_q[i].buf);
    free(sub->cand_q);
    free(sub);
}

int mdfeed_sub_fd(const mdfeed_sub_t *sub)
{
    return sub->epfd;
}

void mdfeed_sub_stop(mdfeed_sub_t *sub)
{
    sub->stopping = true;
}

void mdfeed_sub_stats(const mdfeed_sub_t *sub, mdfeed_sub_stats_t *out)
{
    *out = sub->st;
    out->next_seq = sub->synced ? sub->next_seq : 0;
    if (sub->has_session)
        mdfeed_mold_session_str(sub->session, out->session);
    else
        out->session[0] = '\0';
}

/* ---- the hold window ---------------------------------------------------------------------- */

static slot_t *slot_of(mdfeed_sub_t *sub, uint64_t seq)
{
    return &sub->slots[seq & sub->mask];
}

static uint64_t window_end(const mdfeed_sub_t *sub) /* last sequence the window can track */
{
    return sub->next_seq + sub->cap - 1;
}

/* Marks (high_seen, upto] MISSING since `since`: a gap became visible. */
static void extend_missing(mdfeed_sub_t *sub, uint64_t upto, uint64_t since)
{
    if (upto > window_end(sub))
        upto = window_end(sub);
    if (upto <= sub->high_seen)
        return;
    for (uint64_t s = sub->high_seen + 1; s <= upto; s++) {
        slot_t *sl = slot_of(sub, s);
        sl->state = SLOT_MISSING;
        sl->since = since;
    }
    sub->high_seen = upto;
    uint64_t due = since + (uint64_t)sub->cfg.gap_timeout_ms * 1000000u;
    if (due < sub->gap_due)
        sub->gap_due = due;
}

static void reset_slot(slot_t *sl)
{
    free(sl->msg);
    sl->msg = NULL;
    sl->state = SLOT_EMPTY;
}

static request_t *request_for(mdfeed_sub_t *sub, uint64_t seq)
{
    for (uint32_t i = 0; i < sub->cfg.max_outstanding; i++) {
        request_t *r = &sub->reqs[i];
        if (r->active && seq >= r->first && seq - r->first < r->count)
            return r;
    }
    return NULL;
}

static void request_done(mdfeed_sub_t *sub, request_t *r)
{
    r->active = false;
    sub->outstanding--;
    sub->gap_due = 0; /* capacity freed: let waiting gaps ask at the next timer run */
}

/* A REQUESTED slot was filled (by a retransmission or a late copy on a line). */
static void request_filled(mdfeed_sub_t *sub, uint64_t seq)
{
    sub->st.recovered++;
    request_t *r = request_for(sub, seq);
    if (!r || --r->remaining > 0)
        return;
    if (sub->cb.on_recovered)
        sub->cb.on_recovered(sub->cb.data, r->first, r->count);
    request_done(sub, r);
}

static inline void deliver(mdfeed_sub_t *sub, uint64_t seq, const uint8_t *msg, uint16_t len,
                           int line, uint64_t rx_ns)
{
    sub->st.messages++;
    if (sub->cb.on_message) {
        mdfeed_msg_t m = {
            .seq = seq, .data = msg, .len = len, .line = (uint8_t)line, .rx_ns = rx_ns};
        sub->cb.on_message(sub->cb.data, &m);
    }
}

/* Delivers what the window holds in order from next_seq, reporting declared losses. */
static void drain(mdfeed_sub_t *sub)
{
    while (!sub->ended) {
        if (sub->has_end && sub->next_seq >= sub->end_seq) {
            sub->ended = true;
            if (sub->cb.on_end)
                sub->cb.on_end(sub->cb.data, sub->end_seq);
            break;
        }
        if (sub->next_seq > sub->high_seen)
            break;
        slot_t *sl = slot_of(sub, sub->next_seq);
        if (sl->state == SLOT_HELD) {
            sub->st.held--;
            deliver(sub, sub->next_seq, sl->msg, sl->len, sl->line, sl->rx_ns);
            reset_slot(sl);
            sub->next_seq++;
        } else if (sl->state == SLOT_LOST) {
            uint64_t first = sub->next_seq, n = 0;
            uint8_t reason = sl->reason;
            while (first + n <= sub->high_seen) {
                slot_t *l = slot_of(sub, first + n);
                if (l->state != SLOT_LOST || l->reason != reason)
                    break;
                reset_slot(l);
                n++;
            }
            sub->next_seq += n;
            sub->st.lost += n;
            if (sub->cb.on_loss)
                sub->cb.on_loss(sub->cb.data, first, n, (mdfeed_loss_reason_t)reason);
        } else {
            break;
        }
    }
    /* Messages seen beyond the window while it was full are missing now that it moved;
     * their gap timeout has long passed, so they are due at once. */
    if (!sub->ended && sub->beyond_seen > sub->high_seen)
        extend_missing(sub, sub->beyond_seen, 0);
}

/* Moves next_seq up to `target` at once: held messages are delivered, everything else below
 * the target is declared lost for `reason`. */
static void force_advance(mdfeed_sub_t *sub, uint64_t target, mdfeed_loss_reason_t reason)
{
    while (sub->next_seq < target) {
        slot_t *sl = slot_of(sub, sub->next_seq);
        if (sub->next_seq <= sub->high_seen && sl->state == SLOT_HELD) {
            sub->st.held--;
            deliver(sub, sub->next_seq, sl->msg, sl->len, sl->line, sl->rx_ns);
            reset_slot(sl);
            sub->next_seq++;
            continue;
        }
        uint64_t first = sub->next_seq, n = 0;
        while (first + n < target) {
            slot_t *l = slot_of(sub, first + n);
            if (first + n <= sub->high_seen && l->state == SLOT_HELD)
                break;
            if (first + n <= sub->high_seen)
                reset_slot(l);
            n++;
        }
        sub->next_seq += n;
        sub->st.lost += n;
        if (sub->cb.on_loss)
            sub->cb.on_loss(sub->cb.data, first, n, reason);
    }
    if (sub->high_seen < sub->next_seq - 1)
        sub->high_seen = sub->next_seq - 1;
}

static void accept_message(mdfeed_sub_t *sub, uint64_t seq, const uint8_t *msg, uint16_t len,
                           int line, uint64_t rx_ns, uint64_t now)
{
    if (seq < sub->next_seq) {
        sub->st.duplicates++;
        return;
    }
    if (seq > sub->beyond_seen)
        sub->beyond_seen = seq;
    if (seq > window_end(sub) && !sub->has_server) {
        /* Nothing can fill the gap at the front, so waiting longer only discards what did
         * arrive: give up the front now and keep this message. */
        force_advance(sub, seq - sub->cap + 1, MDFEED_LOSS_HOLD_FULL);
    }
    if (seq > window_end(sub)) {
        /* Holding it would pass max_held: drop it; it is re-requested once the window
         * reaches it, or declared lost then. */
        sub->st.overflow_dropped++;
        extend_missing(sub, window_end(sub), now);
        if (!sub->warned_overflow) {
            sub->warned_overflow = true;
            warn(sub, MDFEED_WARN_OVERFLOW,
                 "hold window full: messages beyond max_held are dropped and re-requested");
        }
        return;
    }
    slot_t *sl = slot_of(sub, seq);
    if (seq <= sub->high_seen && sl->state == SLOT_HELD) {
        sub->st.duplicates++;
        return;
    }
    sub->st.first_arrivals[line]++;
    if (seq <= sub->high_seen && sl->state == SLOT_REQUESTED)
        request_filled(sub, seq);
    if (seq > sub->high_seen)
        extend_missing(sub, seq - 1, now);
    if (seq > sub->high_seen)
        sub->high_seen = seq;
    if (seq == sub->next_seq) {
        /* In order: deliver straight from the receive buffer, no copy. */
        if (sl->state != SLOT_EMPTY)
            sl->state = SLOT_EMPTY;
        deliver(sub, seq, msg, len, line, rx_ns);
        sub->next_seq++;
        drain(sub);
        return;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        /* Out of memory: treat like a dropped copy; recovery will ask for it again. */
        sl->state = SLOT_MISSING;
        sl->since = now;
        return;
    }
    memcpy(copy, msg, len);
    sl->state = SLOT_HELD;
    sl->msg = copy;
    sl->len = len;
    sl->line = (uint8_t)line;
    sl->rx_ns = rx_ns;
    sub->st.held++;
}

/* The server's next sequence number (heartbeat, end of session): everything below it that we
 * have not seen is missing. */
static void note_head(mdfeed_sub_t *sub, uint64_t next, uint64_t now)
{
    if (!sub->synced) {
        sub->synced = true;
        sub->next_seq = next;
        sub->high_seen = sub->beyond_seen = next - 1;
        return;
    }
    if (next == 0 || next - 1 <= sub->high_seen)
        return;
    if (next - 1 > sub->beyond_seen)
        sub->beyond_seen = next - 1;
    extend_missing(sub, next - 1, now);
}

/* True when `count` (> 0) blocks fill [p, p + n) exactly: the condition under which
 * mdfeed_mold_decode() accepts a data packet's blocks. It walks every block header that fits
 * (each block takes at least 2 bytes, so at most n / 2 of them) with one compare per block,
 * then asks for exactly `count` blocks ending exactly at n: a block running past the end
 * leaves `off` beyond n, bytes left over leave it short of n. `off` stays below
 * n + 2 + 65535: no overflow. */
static inline bool blocks_fill_exactly(const uint8_t *p, size_t n, uint16_t count)
{
    if (n < MDFEED_MOLD_BLOCK_HDR_LEN)
        return false;
    size_t off = 0, last = n - MDFEED_MOLD_BLOCK_HDR_LEN; /* the last offset a header fits at */
    size_t blocks = 0;
    do {
        off += MDFEED_MOLD_BLOCK_HDR_LEN + mdfeed_get_be16(p + off);
        blocks++;
    } while (off <= last);
    return off == n && blocks == count;
}

/* Hands `count` validated blocks from `p` on to on_message, numbered from m->seq. Not inlined:
 * in its own frame everything the loop keeps across the callback fits in callee-saved
 * registers, which it does not inside the big receive function (callgrind: fewer
 * instructions per message). */
__attribute__((noinline)) static void deliver_blocks(mdfeed_sub_t *sub, const uint8_t *p,
                                                     uint16_t count, mdfeed_msg_t *m)
{
    void (*on_message)(void *, const mdfeed_msg_t *) = sub->cb.on_message;
    void *data = sub->cb.data;
    for (uint64_t s = m->seq, end = s + count; s != end; s++) {
        m->seq = s;
        m->len = mdfeed_get_be16(p);
        m->data = p + MDFEED_MOLD_BLOCK_HDR_LEN;
        p += MDFEED_MOLD_BLOCK_HDR_LEN + m->len;
        sub->st.messages++;
        on_message(data, m);
    }
}

static bool fast_path(mdfeed_sub_t *sub, int line, const uint8_t *buf, size_t len, uint64_t rx_ns)
{
    if (len < MDFEED_MOLD_HEADER_LEN || !sub->synced || !sub->has_session || sub->has_end)
        return false;
    uint16_t count = mdfeed_get_be16(buf + 18);
    uint64_t seq = mdfeed_get_be64(buf + 10);
    if (count == MDFEED_MOLD_COUNT_HEARTBEAT || count == MDFEED_MOLD_COUNT_END || seq == 0 ||
        seq > UINT64_MAX - count)
        return false;
    bool in_order = seq == sub->next_seq && sub->high_seen < sub->next_seq;
    bool old_copy = seq + count <= sub->next_seq;
    if (!(in_order || old_copy) || memcmp(buf, sub->session, MDFEED_MOLD_SESSION_LEN) != 0)
        return false;
    const uint8_t *p = buf + MDFEED_MOLD_HEADER_LEN;
    if (!blocks_fill_exactly(p, len - MDFEED_MOLD_HEADER_LEN, count))
        return false; /* malformed: counted on the general path */
    if (old_copy) {
        /* The other line's copy of a packet already delivered (half of all traffic with A
         * and B): nothing in it is new. */
        sub->st.duplicates += count;
        return true;
    }
    /* Every slot is EMPTY (nothing held or missing), so the window is not touched; the
     * blocks were just validated, so they are walked unchecked. The callback is loaded once;
     * st.messages stays exact per message because a callback may read the stats. */
    mdfeed_msg_t m = {.seq = seq, .line = (uint8_t)line, .rx_ns = rx_ns};
    if (sub->cb.on_message)
        deliver_blocks(sub, p, count, &m);
    else
        sub->st.messages += count;
    sub->next_seq = seq + count;
    sub->high_seen = sub->next_seq - 1;
    if (sub->beyond_seen < sub->high_seen)
        sub->beyond_seen = sub->high_seen;
    sub->st.first_arrivals[line] += count;
    return true;
}

/* ---- session following -------------------------------------------------------------------- */

static void process_datagram(mdfeed_sub_t *sub, int line, const uint8_t *buf, size_t len,
                             bool truncated, uint64_t rx_ns, uint64_t now);

static void drop_candidate(mdfeed_sub_t *sub)
{
    for (uint32_t i = 0; i < sub->cand_n; i++)
        free(sub->cand_q[i].buf);
    sub->st.wrong_session += sub->cand_n;
    sub->cand_n = 0;
    sub->cand_bytes = 0;
    sub->has_cand = false;
}

/* The current session spoke while a candidate was on probation: two sessions share the
 * group (or two gateways run), so the candidate is not followed. Warned once per name, so
 * that a second live gateway does not flood the callback every heartbeat. */
static void reject_candidate(mdfeed_sub_t *sub)
{
    char cur[MDFEED_MOLD_SESSION_LEN + 1], other[MDFEED_MOLD_SESSION_LEN + 1], text[160];
    bool warned = memcmp(sub->rejected, sub->cand, MDFEED_MOLD_SESSION_LEN) == 0;
    memcpy(sub->rejected, sub->cand, MDFEED_MOLD_SESSION_LEN);
    mdfeed_mold_session_str(sub->session, cur);
    mdfeed_mold_session_str(sub->cand, other);
    drop_candidate(sub);
    if (warned)
        return;
    snprintf(text, sizeof(text),
             "two sessions on one group: session %s appeared while %s is still live; "
             "%s is ignored (two gateways publishing to one group?)",
             other, cur, other);
    warn(sub, MDFEED_WARN_TWO_SESSIONS, text);
}

/* A datagram of the current session arrived: it rejects a candidate that appeared before it
 * was received. */
static inline void heard_current(mdfeed_sub_t *sub, uint64_t rx_ns)
{
    if (sub->has_cand && (rx_ns == 0 || sub->cand_first_rx == 0 || rx_ns > sub->cand_first_rx))
        reject_candidate(sub);
}

static void keep_candidate(mdfeed_sub_t *sub, int line, const uint8_t *buf, size_t len,
                           uint64_t rx_ns)
{
    if (sub->cand_n == CAND_MAX_DGRAMS || sub->cand_bytes + len > CAND_MAX_BYTES)
        return; /* a hole the new session's server fills after the switch */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return; /* the same: recovered as a gap */
    memcpy(copy, buf, len);
    sub->cand_q[sub->cand_n++] =
        (cand_dgram_t){.buf = copy, .len = (uint32_t)len, .line = (uint8_t)line, .rx_ns = rx_ns};
    sub->cand_bytes += len;
}

/* Leaves the current session for the candidate: what the old one still holds is delivered,
 * what it still misses is declared lost, then the new session starts at 1 and the
 * candidate's buffered datagrams are handled in arrival order. */
static void switch_session(mdfeed_sub_t *sub, int reason, uint64_t now)
{
    char old[MDFEED_MOLD_SESSION_LEN + 1], neu[MDFEED_MOLD_SESSION_LEN + 1];
    mdfeed_mold_session_str(sub->session, old);
    mdfeed_mold_session_str(sub->cand, neu);
    if (sub->synced && !sub->ended) {
        uint64_t last = sub->beyond_seen > sub->high_seen ? sub->beyond_seen : sub->high_seen;
        if (sub->has_end && sub->end_seq > last + 1)
            last = sub->end_seq - 1;
        force_advance(sub, last + 1, MDFEED_LOSS_SESSION_CHANGE);
        if (sub->has_end && sub->cb.on_end)
            sub->cb.on_end(sub->cb.data, sub->next_seq);
    }
    for (uint32_t i = 0; i < sub->cfg.max_outstanding; i++)
        sub->reqs[i].active = false;
    sub->outstanding = 0;
    memcpy(sub->session, sub->cand, MDFEED_MOLD_SESSION_LEN);
    sub->has_session = sub->synced = true;
    sub->next_seq = 1;
    sub->high_seen = sub->beyond_seen = 0;
    sub->has_end = sub->ended = sub->warned_overflow = false;
    sub->end_seq = 0;
    sub->gap_due = NEVER;
    sub->st.session_changes++;
    if (sub->cb.on_session)
        sub->cb.on_session(sub->cb.data, old, neu, 1, reason);
    /* Taken out of the candidate first: handling them must not append to the queue. */
    uint32_t n = sub->cand_n;
    sub->cand_n = 0;
    sub->cand_bytes = 0;
    sub->has_cand = false;
    for (uint32_t i = 0; i < n; i++) {
        cand_dgram_t *d = &sub->cand_q[i];
        process_datagram(sub, d->line, d->buf, d->len, false, d->rx_ns, now);
        free(d->buf);
        d->buf = NULL;
    }
}

static void check_candidate(mdfeed_sub_t *sub, uint64_t now)
{
    if (sub->has_cand && now - sub->cand_since >= (uint64_t)sub->cfg.session_silence_ms * 1000000u)
        switch_session(sub, MDFEED_SESSION_OLD_SILENT, now);
}

/* A valid datagram of a session other than the current one. */
static void other_session(mdfeed_sub_t *sub, int line, const uint8_t *buf, size_t len,
                          uint64_t rx_ns, uint64_t now)
{
    /* Answers on the re-request socket belong to our requests; another session's there is a
     * stale answer, never a reason to switch. */
    if (!sub->follow || line == MDFEED_LINE_RETRANSMIT) {
        sub->st.wrong_session++;
        return;
    }
    if (sub->has_cand && memcmp(sub->cand, buf, MDFEED_MOLD_SESSION_LEN) != 0)
        drop_candidate(sub); /* a third session: the newest one is the candidate */
    if (!sub->has_cand) {
        sub->has_cand = true;
        memcpy(sub->cand, buf, MDFEED_MOLD_SESSION_LEN);
        sub->cand_since = now;
        sub->cand_first_rx = rx_ns;
    }
    keep_candidate(sub, line, buf, len, rx_ns);
    if (sub->has_end)
        switch_session(sub, MDFEED_SESSION_AFTER_END, now);
    else
        check_candidate(sub, now);
}

/* ---- one datagram ------------------------------------------------------------------------- */

static void process_datagram(mdfeed_sub_t *sub, int line, const uint8_t *buf, size_t len,
                             bool truncated, uint64_t rx_ns, uint64_t now)
{
    if (sub->ended && !sub->follow)
        return;
    if (!truncated && !sub->ended && fast_path(sub, line, buf, len, rx_ns)) {
        heard_current(sub, rx_ns);
        return;
    }
    mdfeed_mold_packet_t pkt;
    if (truncated || mdfeed_mold_decode(buf, len, &pkt) != 0 ||
        pkt.hdr.seq == 0) { /* MoldUDP64 sequence numbers start at 1 */
        sub->st.malformed++;
        return;
    }
    if (!sub->has_session) {
        memcpy(sub->session, pkt.hdr.session, MDFEED_MOLD_SESSION_LEN);
        sub->has_session = true;
    } else if (memcmp(sub->session, pkt.hdr.session, MDFEED_MOLD_SESSION_LEN) != 0) {
        other_session(sub, line, buf, len, rx_ns, now);
        return;
    }
    heard_current(sub, rx_ns);
    if (sub->ended)
        return; /* the current session after its end */
    switch (pkt.kind) {
    case MDFEED_MOLD_HEARTBEAT:
        sub->st.heartbeats++;
        note_head(sub, pkt.hdr.seq, now);
        if (sub->cb.on_heartbeat)
            sub->cb.on_heartbeat(sub->cb.data, pkt.hdr.seq, line);
        break;
    case MDFEED_MOLD_END_OF_SESSION:
        note_head(sub, pkt.hdr.seq, now);
        if (!sub->has_end || pkt.hdr.seq > sub->end_seq)
            sub->end_seq = pkt.hdr.seq;
        sub->has_end = true;
        break;
    case MDFEED_MOLD_DATA: {
        if (!sub->synced)
            note_head(sub, pkt.hdr.seq, now);
        mdfeed_mold_iter_t it;
        const uint8_t *msg;
        uint16_t mlen;
        uint64_t seq;
        if (pkt.hdr.seq + pkt.hdr.count <= sub->next_seq) {
            /* The other line's copy of a packet already delivered (half of all traffic with
             * A and B): nothing in it is new. */
            sub->st.duplicates += pkt.hdr.count;
            return;
        }
        mdfeed_mold_iter_init(&it, &pkt);
        while (!sub->ended && mdfeed_mold_iter_next(&it, &msg, &mlen, &seq))
            accept_message(sub, seq, msg, mlen, line, rx_ns, now);
        break;
    }
    }
    drain(sub);
}

static void handle_datagram(mdfeed_sub_t *sub, int line, const uint8_t *buf, size_t len,
                            bool truncated, uint64_t rx_ns, uint64_t now)
{
    sub->st.packets++;
    sub->st.bytes += len;
    process_datagram(sub, line, buf, len, truncated, rx_ns, now);
}

/* ---- gap timeouts and re-requests --------------------------------------------------------- */

static void send_request(mdfeed_sub_t *sub, uint64_t first, uint64_t count)
{
    uint8_t hdr[MDFEED_MOLD_HEADER_LEN];
    mdfeed_mold_header_encode(hdr, sub->session, first, (uint16_t)count);
    ssize_t n;
    do {
        n = sendto(sub->fds[MDFEED_LINE_RETRANSMIT], hdr, sizeof(hdr), MSG_DONTWAIT,
                   (struct sockaddr *)&sub->servers[sub->cur_server], sizeof(sub->servers[0]));
    } while (n < 0 && errno == EINTR);
    /* A failed send is retried by the request's own timeout like a lost answer. */
    sub->st.requests_sent++;
}

static void mark_range(mdfeed_sub_t *sub, uint64_t first, uint64_t n, uint8_t state, uint8_t reason)
{
    for (uint64_t s = first; s < first + n; s++) {
        slot_t *sl = slot_of(sub, s);
        sl->state = state;
        sl->reason = reason;
    }
}

static bool start_request(mdfeed_sub_t *sub, uint64_t first, uint64_t n, uint64_t now)
{
    for (uint32_t i = 0; i < sub->cfg.max_outstanding; i++) {
        request_t *r = &sub->reqs[i];
        if (r->active)
            continue;
        *r = (request_t){.active = true,
                         .first = first,
                         .count = n,
                         .remaining = n,
                         .attempts = 1,
                         .server = sub->cur_server,
                         .deadline = now + (uint64_t)sub->cfg.request_timeout_ms * 1000000u};
        sub->outstanding++;
        mark_range(sub, first, n, SLOT_REQUESTED, 0);
        send_request(sub, first, n);
        return true;
    }
    return false;
}

/* Handles one run of timed-out slots [first, first+n) that are MISSING or GAP. */
static void handle_gap_run(mdfeed_sub_t *sub, uint64_t first, uint64_t n, bool reported,
                           uint64_t now)
{
    if (!reported) {
        sub->st.gaps++;
        sub->st.gap_messages += n;
        if (sub->cb.on_gap)
            sub->cb.on_gap(sub->cb.data, first, n);
    }
    if (!sub->has_server) {
        mark_range(sub, first, n, SLOT_LOST, MDFEED_LOSS_NO_SERVER);
        return;
    }
    while (n > 0) {
        uint64_t k = n < sub->cfg.request_max_count ? n : sub->cfg.request_max_count;
        if (!start_request(sub, first, k, now)) {
            mark_range(sub, first, n, SLOT_GAP, 0); /* waits for a free request */
            return;
        }
        first += k;
        n -= k;
    }
}

static void check_gaps(mdfeed_sub_t *sub, uint64_t now)
{
    uint64_t timeout = (uint64_t)sub->cfg.gap_timeout_ms * 1000000u;
    uint64_t next_due = NEVER;
    uint64_t s = sub->next_seq;
    while (s <= sub->high_seen) {
        slot_t *sl = slot_of(sub, s);
        bool gap = sl->state == SLOT_GAP;
        if (!(gap || sl->state == SLOT_MISSING)) {
            s++;
            continue;
        }
        if (!gap && sl->since + timeout > now) {
            if (sl->since + timeout < next_due)
                next_due = sl->since + timeout;
            s++;
            continue;
        }
        uint64_t first = s, n = 0;
        while (s <= sub->high_seen) {
            slot_t *l = slot_of(sub, s);
            if (l->state != sl->state || (!gap && l->since + timeout > now))
                break;
            n++;
            s++;
        }
        handle_gap_run(sub, first, n, gap, now);
        if (sub->outstanding >= sub->cfg.max_outstanding && sub->has_server)
            break; /* the rest waits for capacity; request_done() rearms */
    }
    sub->gap_due = next_due;
}

static void check_requests(mdfeed_sub_t *sub, uint64_t now)
{
    for (uint32_t i = 0; i < sub->cfg.max_outstanding; i++) {
        request_t *r = &sub->reqs[i];
        if (!r->active || r->deadline > now)
            continue;
        uint64_t lo = NEVER, hi = 0, missing = 0;
        for (uint64_t s = r->first; s < r->first + r->count; s++) {
            if (s < sub->next_seq || s > sub->high_seen || slot_of(sub, s)->state != SLOT_REQUESTED)
                continue;
            lo = s < lo ? s : lo;
            hi = s;
            missing++;
        }
        if (missing == 0) {
            request_done(sub, r);
        } else if (r->attempts < sub->cfg.request_retries) {
            /* The server did not answer in time: the next one takes over (once per server
             * failure, not once per request that was waiting on it). */
            if (sub->nservers > 1 && r->server == sub->cur_server) {
                sub->cur_server = (sub->cur_server + 1) % sub->nservers;
                sub->st.retransmit_failovers++;
            }
            r->server = sub->cur_server;
            /* Back off exponentially so a struggling server is not flooded. */
            r->attempts++;
            r->remaining = missing;
            r->deadline =
                now + ((uint64_t)sub->cfg.request_timeout_ms * 1000000u << (r->attempts - 1));
            send_request(sub, lo, hi - lo + 1);
        } else {
            for (uint64_t s = lo; s <= hi; s++)
                if (slot_of(sub, s)->state == SLOT_REQUESTED)
                    mark_range(sub, s, 1, SLOT_LOST, MDFEED_LOSS_RETRIES);
            request_done(sub, r);
        }
    }
}

static uint64_t next_deadline(const mdfeed_sub_t *sub)
{
    uint64_t d = sub->gap_due;
    if (sub->has_cand) {
        uint64_t c = sub->cand_since + (uint64_t)sub->cfg.session_silence_ms * 1000000u;
        d = c < d ? c : d;
    }
    for (uint32_t i = 0; i < sub->cfg.max_outstanding; i++)
        if (sub->reqs[i].active && sub->reqs[i].deadline < d)
            d = sub->reqs[i].deadline;
    return d;
}

static void arm_timer(mdfeed_sub_t *sub)
{
    uint64_t d = sub->ended && !sub->has_cand ? NEVER : next_deadline(sub);
    if (d == sub->armed_at)
        return;
    struct itimerspec its = {0};
    if (d != NEVER) {
        if (d == 0)
            d = 1; /* 0 would disarm; 1 ns since boot is "now" */
        its.it_value.tv_sec = (time_t)(d / 1000000000u);
        its.it_value.tv_nsec = (long)(d % 1000000000u);
    }
    if (timerfd_settime(sub->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        sub->armed_at = d;
}

static void run_timers(mdfeed_sub_t *sub, uint64_t now)
{
    check_candidate(sub, now);
    if (sub->ended || !sub->synced)
        return;
    if (next_deadline(sub) > now)
        return;
    check_requests(sub, now);
    if (sub->gap_due <= now)
        check_gaps(sub, now);
    drain(sub);
}

/* ---- receive ------------------------------------------------------------------------------ */

static uint64_t rx_timestamp(struct msghdr *h)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        }
    }
    return 0;
}

/* Answers count only from a configured server's address, from any port: a server may answer
 * from another socket than the one it listens on. */
static bool from_server(const mdfeed_sub_t *sub, const struct sockaddr_in *from)
{
    for (uint32_t i = 0; i < sub->nservers; i++)
        if (from->sin_family == AF_INET && from->sin_addr.s_addr == sub->servers[i].sin_addr.s_addr)
            return true;
    return false;
}

static int recv_line(mdfeed_sub_t *sub, int line)
{
    int fd = sub->fds[line];
    unsigned batch = sub->cfg.recv_batch;
    /* recvmmsg() rewrites msg_controllen and msg_flags of the entries it fills, so only
     * those need resetting before the next call (all of them the first time and after an
     * error; one more than were filled, to be safe about the entry that ended the batch). */
    unsigned used = batch;
    for (int round = 0; round < ROUNDS_PER_DISPATCH; round++) {
        for (unsigned i = 0; i < used; i++) {
            struct msghdr *h = &sub->mmsg[i].msg_hdr;
            h->msg_controllen = CTRL_LEN;
            h->msg_namelen = sizeof(struct sockaddr_in);
            h->msg_flags = 0;
        }
        int n = recvmmsg(fd, sub->mmsg, batch, MSG_DONTWAIT, NULL);
        if (n < 0) {
            used = batch;
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        used = (unsigned)n < batch ? (unsigned)n + 1 : batch;
        uint64_t now = now_ns();
        for (int i = 0; i < n; i++) {
            struct msghdr *h = &sub->mmsg[i].msg_hdr;
            if (line == MDFEED_LINE_RETRANSMIT && !from_server(sub, &sub->names[i])) {
                sub->st.retransmit_ignored++;
                continue;
            }
            handle_datagram(sub, line, sub->iov[i].iov_base, sub->mmsg[i].msg_len,
                            (h->msg_flags & MSG_TRUNC) != 0, rx_timestamp(h), now);
        }
        if ((unsigned)n < batch)
            return 0;
    }
    return 0;
}

int mdfeed_sub_dispatch(mdfeed_sub_t *sub)
{
    /* After the end the sockets are still drained (and the packets ignored), so that a
     * level-triggered loop that keeps watching the fd does not spin. */
    uint64_t before = sub->st.messages + sub->st.lost;
    for (int line = 0; line < NLINES; line++) {
        if (sub->fds[line] < 0)
            continue;
        int rc = recv_line(sub, line);
        if (rc < 0)
            return rc;
    }
    uint64_t now = now_ns(), expirations;
    /* The timerfd can only be readable when it is armed and its (monotonic, absolute) time
     * has come: disarming with timerfd_settime() also clears a pending expiration. So the
     * steady state, with no gap pending, costs no read() per dispatch. */
    if (sub->armed_at != NEVER && sub->armed_at <= now &&
        read(sub->tfd, &expirations, sizeof(expirations)) > 0)
        sub->armed_at = NEVER; /* it fired, so it is no longer armed */
    run_timers(sub, now);
    arm_timer(sub);
    if (sub->ended)
        return MDFEED_EENDED;
    return (int)(sub->st.messages + sub->st.lost - before > 0x7fffffff
                     ? 0x7fffffff
                     : sub->st.messages + sub->st.lost - before);
}

int mdfeed_sub_run(mdfeed_sub_t *sub, int timeout_ms)
{
    uint64_t deadline = timeout_ms < 0 ? NEVER : now_ns() + (uint64_t)timeout_ms * 1000000u;
    sub->stopping = false;
    for (;;) {
        int rc = mdfeed_sub_dispatch(sub);
        if (rc < 0)
            return rc;
        if (sub->stopping)
            return 0;
        uint64_t now = now_ns();
        if (now >= deadline)
            return MDFEED_ETIMEDOUT;
        int wait_ms = -1;
        if (deadline != NEVER) {
            uint64_t left = (deadline - now + 999999u) / 1000000u;
            wait_ms = left > 1000 ? 1000 : (int)left;
        }
        struct epoll_event ev;
        if (epoll_wait(sub->epfd, &ev, 1, wait_ms) < 0 && errno != EINTR)
            return -errno;
    }
}
