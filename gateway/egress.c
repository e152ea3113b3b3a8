/* Egress: the multicast sockets and the choice of backend (a small table of function
 * pointers, as libuv and liburing do feature detection). One connected UDP socket per group
 * (channel x line): connected sockets skip the per-datagram route and address work in the
 * kernel, which is what lets io_uring's IORING_OP_SEND beat sendmsg-style calls. */
#include "egress_backend.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/errqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int gw_egress_ifname(const gw_config_t *cfg, char out[IF_NAMESIZE])
{
    if (cfg->egress_ifname[0]) {
        snprintf(out, IF_NAMESIZE, "%s", cfg->egress_ifname);
        return 0;
    }
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return -1;
    int rc = -1;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
            ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == cfg->egress_addr.s_addr) {
            snprintf(out, IF_NAMESIZE, "%s", i->ifa_name);
            rc = 0;
            break;
        }
    freeifaddrs(ifa);
    return rc;
}

bool gw_iface_has_addr(const char *ifname, const struct in_addr *want)
{
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return false;
    bool found = false;
    for (struct ifaddrs *i = ifa; i && !found; i = i->ifa_next)
        found = i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
                strcmp(i->ifa_name, ifname) == 0 &&
                (want->s_addr == htonl(INADDR_ANY) ||
                 ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == want->s_addr);
    freeifaddrs(ifa);
    return found;
}

/* The TGW speaks IGMPv2 only: a host answering queries with IGMPv3 reports is never added to
 * the group, so receivers would silently get nothing. The sender warns so operators notice. */
void gw_check_igmp_version(const char *ifname)
{
    char path[128], buf[16] = "";
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/force_igmp_version", ifname);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0) {
        gw_log(GW_LOG_WARN, "cannot read %s; IGMP version unknown (the TGW needs 2)", path);
        return;
    }
    buf[n] = '\0';
    if (buf[0] != '2')
        gw_log(GW_LOG_WARN,
               "net.ipv4.conf.%s.force_igmp_version is %c, not 2: the AWS TGW only speaks "
               "IGMPv2; set it to 2",
               ifname, buf[0]);
}

/* Datagrams are sent with DF set (IP_PMTUDISC_DO): the TGW drops fragments. A budget that
 * does not fit the interface's MTU would make every full packet fail with EMSGSIZE, so that
 * is refused at start. Returns 0, or -1 (logged). */
int gw_check_mtu(const char *ifname, uint32_t budget)
{
    char path[128], buf[32] = "";
    snprintf(path, sizeof(path), "/sys/class/net/%s/mtu", ifname);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0; /* unknown: nothing to check against */
    buf[n] = '\0';
    long mtu = strtol(buf, NULL, 10);
    /* 20 bytes of IPv4 header and 8 of UDP header on top of the payload. */
    if (mtu > 0 && (long)budget + 28 > mtu) {
        gw_log(GW_LOG_ERROR,
               "egress.payload_budget %u + 28 bytes of IP/UDP headers exceeds the MTU %ld of %s",
               budget, mtu, ifname);
        return -1;
    }
    return 0;
}

static int open_line(const gw_config_t *cfg, unsigned ifindex, const struct sockaddr_in *grp)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int ttl = cfg->ttl, loop = cfg->loop ? 1 : 0, sndbuf = (int)cfg->socket_buffer_bytes;
    /* Never fragment: the TGW drops fragments; the payload budget keeps datagrams small. */
    int pmtu = IP_PMTUDISC_DO;
    /* IP_RECVERR: without it a datagram the interface's queue (qdisc) drops is reported as
     * sent (udp_send_skb swallows ENOBUFS) and lost without a trace; with it the send fails
     * with ENOBUFS and the backends keep it and retry after a backoff. Local errors (and any
     * ICMP errors) then also land on the error queue, which gw_egress_drain_errqueue empties. */
    int recverr = 1;
    struct ip_mreqn mreq = {.imr_address = cfg->egress_addr, .imr_ifindex = (int)ifindex};
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof(mreq)) ||
        setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu)) ||
        setsockopt(fd, IPPROTO_IP, IP_RECVERR, &recverr, sizeof(recverr)) ||
        connect(fd, (const struct sockaddr *)grp, sizeof(*grp))) {
        int e = -errno;
        close(fd);
        return e;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)); /* best effort */
    return fd;
}

static void close_sockets(gw_egress_t *eg)
{
    for (unsigned i = 0; i < GW_MAX_SOCKETS; i++)
        if (eg->fds[i] >= 0) {
            close(eg->fds[i]);
            eg->fds[i] = -1;
        }
}

static int open_sockets(gw_egress_t *eg, const gw_config_t *cfg)
{
    unsigned ifindex = 0;
    if (cfg->egress_ifname[0] && (ifindex = if_nametoindex(cfg->egress_ifname)) == 0) {
        gw_log(GW_LOG_ERROR, "egress interface %s: %s", cfg->egress_ifname, gw_strerror(errno));
        return -1;
    }
    for (int ch = 0; ch < cfg->nchannels; ch++)
        for (int l = 0; l < cfg->channels[ch].nlines; l++) {
            const struct sockaddr_in *g = &cfg->channels[ch].lines[l];
            int fd = open_line(cfg, ifindex, g);
            if (fd < 0) {
                char a[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &g->sin_addr, a, sizeof(a));
                gw_log(GW_LOG_ERROR, "channel %s line %c: socket to %s:%u: %s",
                       cfg->channels[ch].name, 'A' + l, a, ntohs(g->sin_port), gw_strerror(-fd));
                return -1;
            }
            eg->fds[gw_egress_sock(ch, l)] = fd;
        }
    eg->nfds = (unsigned)cfg->nchannels * GW_MAX_LINES;
    return 0;
}

/* `auto` must not pick the slower backend on the machine it runs on, and which one is faster
 * depends on the kernel, the machine and the load (figures in docs/GATEWAY.md, "`io`: which
 * backend"). So `auto` measures: a start-up probe sends PROBE_ROUNDS batches of PROBE_BATCH
 * budget-sized datagrams through each backend, interleaved, to a loopback socket of its own (never
 * to the feed's groups), and compares the median time per datagram. sendmmsg is chosen only when it
 * is clearly faster (by more than PROBE_MARGIN, above the probe's own spread between starts,
 * docs/GATEWAY.md). It costs a few milliseconds once. */
#define PROBE_BATCH  32
#define PROBE_ROUNDS 15
#define PROBE_MARGIN 0.03

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int probe_sockets(int *tx, int *rx)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    *tx = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    *rx = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (*tx < 0 || *rx < 0 || bind(*rx, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(*rx, (struct sockaddr *)&a, &al) != 0 ||
        connect(*tx, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -errno;
    return 0;
}

/* Sends one batch through `pe` and waits for its completions; returns the nanoseconds. */
static uint64_t probe_round(gw_egress_t *pe, uint32_t len, int rx)
{
    gw_send_t sends[PROBE_BATCH];
    unsigned n = 0;
    for (; n < PROBE_BATCH; n++) {
        gw_packet_t *pkt = gw_pool_get(pe->pool);
        if (!pkt)
            break;
        memset(pkt->buf, 0, len);
        pkt->len = len;
        pkt->refs = 1;
        sends[n] = (gw_send_t){pkt, 0, 0};
    }
    uint64_t t0 = uv_hrtime();
    pe->ops->submit(pe, sends, n);
    pe->ops->drain(pe, 100);
    uint64_t dt = uv_hrtime() - t0;
    char sink[64];
    for (unsigned i = 0; i < 4 * PROBE_BATCH && recv(rx, sink, sizeof(sink), 0) >= 0; i++)
        ; /* empty the probe's receive queue */
    return n ? dt / n : UINT64_MAX;
}

/* Measures two egress variants (backend and zero-copy threshold) against each other on the
 * probe socket, interleaved; fills ns[] with the median time per datagram. Returns 0, or
 * -errno when a variant cannot be set up. */
static int probe_variants(gw_egress_t *eg, uint32_t len, const gw_egress_ops_t *const ops[2],
                          const uint32_t zc_min_len[2], double ns[2])
{
    gw_egress_t pe[2];
    int tx = -1, rx = -1, rc = probe_sockets(&tx, &rx);
    bool up[2] = {false, false};
    for (int b = 0; b < 2 && rc == 0; b++) {
        memset(&pe[b], 0, sizeof(pe[b]));
        pe[b].loop = eg->loop;
        pe[b].pool = eg->pool;
        pe[b].fds[0] = tx;
        pe[b].nfds = 1;
        pe[b].probing = true;
        pe[b].ops = ops[b];
        pe[b].zc_min_len = zc_min_len[b];
        pe[b].want_fixed_bufs = eg->want_fixed_bufs;
        rc = ops[b]->init(&pe[b]);
        up[b] = rc == 0;
    }
    uint64_t t[2][PROBE_ROUNDS];
    for (int r = 0; rc == 0 && r <= PROBE_ROUNDS; r++)
        for (int b = 0; b < 2; b++) {
            uint64_t v = probe_round(&pe[b], len, rx);
            if (r > 0) /* round 0 warms both paths up */
                t[b][r - 1] = v;
        }
    for (int b = 0; b < 2; b++)
        if (up[b])
            ops[b]->close(&pe[b]);
    if (tx >= 0)
        close(tx);
    if (rx >= 0)
        close(rx);
    if (rc != 0)
        return rc;
    for (int b = 0; b < 2; b++) {
        qsort(t[b], PROBE_ROUNDS, sizeof(t[b][0]), cmp_u64);
        ns[b] = (double)t[b][PROBE_ROUNDS / 2];
    }
    return 0;
}

/* Returns 0 (io_uring), 1 (sendmmsg), or -errno when io_uring cannot be set up at all. */
static int probe_backends(gw_egress_t *eg, uint32_t len)
{
    const gw_egress_ops_t *const ops[2] = {&gw_egress_uring_ops, &gw_egress_mmsg_ops};
    const uint32_t zc[2] = {eg->zc_min_len, UINT32_MAX};
    int rc = probe_variants(eg, len, ops, zc, eg->probe_ns);
    if (rc != 0)
        return rc;
    int pick = eg->probe_ns[1] < eg->probe_ns[0] * (1.0 - PROBE_MARGIN) ? 1 : 0;
    gw_log(GW_LOG_INFO,
           "io=auto probe: io_uring %.0f ns/datagram, sendmmsg %.0f ns/datagram (median of %d "
           "batches of %d x %u bytes): using %s",
           eg->probe_ns[0], eg->probe_ns[1], PROBE_ROUNDS, PROBE_BATCH, len, ops[pick]->name);
    return pick;
}

/* zerocopy=auto: zero copy is used only if it measured faster than a plain send for
 * budget-sized datagrams, by more than the probe's spread. On loopback and veth the kernel
 * copies zero-copy pages anyway when the packet is received (skb_orphan_frags_rx), so there
 * it only adds the pinning and the notification: docs/GATEWAY.md has the figures. */
static void probe_zerocopy(gw_egress_t *eg, uint32_t len, uint32_t threshold)
{
    const gw_egress_ops_t *const ops[2] = {&gw_egress_uring_ops, &gw_egress_uring_ops};
    const uint32_t zc[2] = {UINT32_MAX, 0};
    eg->zc_min_len = UINT32_MAX;
    if (len < threshold || probe_variants(eg, len, ops, zc, eg->probe_zc_ns) != 0)
        return;
    bool faster = eg->probe_zc_ns[1] < eg->probe_zc_ns[0] * (1.0 - PROBE_MARGIN);
    if (faster)
        eg->zc_min_len = threshold;
    gw_log(GW_LOG_INFO,
           "zerocopy=auto probe: send %.0f ns/datagram, send_zc%s %.0f ns/datagram (median of %d "
           "batches of %d x %u bytes): zero copy %s",
           eg->probe_zc_ns[0], eg->want_fixed_bufs ? " (registered buffers)" : "",
           eg->probe_zc_ns[1], PROBE_ROUNDS, PROBE_BATCH, len, faster ? "on" : "off");
}

/* Chooses the backend (`io` forces one; `auto` probes). Any failure to set io_uring up falls
 * back to sendmmsg, logged once: the gateway never fails to start for want of io_uring. */
static int choose_backend(gw_egress_t *eg, gw_io_t io, uint32_t budget)
{
    if (io == GW_IO_AUTO) {
        int pick = probe_backends(eg, budget);
        if (pick < 0) {
            eg->uring_refused = true;
            gw_log(GW_LOG_WARN, "io_uring egress unavailable (%s); falling back to sendmmsg",
                   gw_strerror(-pick));
        }
        io = pick == 0 ? GW_IO_URING : GW_IO_MMSG;
    }
    if (io == GW_IO_URING) {
        eg->ops = &gw_egress_uring_ops;
        int rc = eg->ops->init(eg);
        if (rc == 0)
            return 0;
        eg->uring_refused = true;
        gw_log(GW_LOG_WARN, "io_uring egress unavailable (%s); falling back to sendmmsg",
               gw_strerror(-rc));
    }
    eg->ops = &gw_egress_mmsg_ops;
    return eg->ops->init(eg);
}

static void on_errqueue_timer(uv_timer_t *t)
{
    gw_egress_drain_errqueue(t->data);
}

/* IP_RECVERR queues local errors on the sockets' error queues: read them now and then (a
 * recvmsg per socket that finds nothing, normally), at the pace of the heartbeat check. */
static void start_errqueue_timer(gw_egress_t *eg, uint32_t heartbeat_ms)
{
    uint64_t tick = heartbeat_ms / 4 ? heartbeat_ms / 4 : 1;
    uv_timer_init(eg->loop, &eg->errq_timer);
    eg->errq_timer.data = eg;
    uv_timer_start(&eg->errq_timer, on_errqueue_timer, tick, tick);
    eg->errq_timer_on = true;
}

int gw_egress_init(gw_egress_t *eg, uv_loop_t *loop, const gw_config_t *cfg, gw_pool_t *pool,
                   gw_sent_cb on_sent, void *data)
{
    memset(eg, 0, sizeof(*eg));
    eg->backend_name = "none";
    for (unsigned i = 0; i < GW_MAX_SOCKETS; i++)
        eg->fds[i] = -1;
    eg->loop = loop;
    eg->pool = pool;
    eg->on_sent = on_sent;
    eg->data = data;
    eg->retry_backoff_ms = GW_RETRY_MIN_MS;
    if (open_sockets(eg, cfg) != 0)
        goto fail;
    eg->want_fixed_bufs = cfg->registered_buffers;
    eg->zc_min_len = cfg->zerocopy == GW_ZC_ON ? cfg->zerocopy_threshold : UINT32_MAX;
    if (cfg->zerocopy == GW_ZC_AUTO && cfg->io != GW_IO_MMSG)
        probe_zerocopy(eg, cfg->payload_budget, cfg->zerocopy_threshold);
    if (choose_backend(eg, cfg->io, cfg->payload_budget) != 0) {
        gw_log(GW_LOG_ERROR, "egress backend %s failed to start", eg->ops->name);
        goto fail;
    }
    if (eg->ops != &gw_egress_uring_ops)
        eg->zc_min_len = UINT32_MAX;
    eg->backend_name = eg->ops->name;
    start_errqueue_timer(eg, cfg->mold_heartbeat_ms);
    gw_log(GW_LOG_INFO,
           "egress backend %s (io=%s), %u sockets, zero copy %s, registered buffers %s",
           eg->ops->name, gw_io_name(cfg->io), eg->nfds,
           eg->zc_min_len == UINT32_MAX ? "off" : "on", eg->fixed_bufs ? "yes" : "no");
    return 0;
fail:
    eg->ops = NULL;
    eg->backend_name = "none";
    close_sockets(eg);
    return -1;
}

const double gw_lat_bounds_us[GW_LAT_BUCKETS] = {1,  2,   5,   10,  20,   30,   40,   50,
                                                 75, 100, 200, 500, 1000, 2000, 5000, 10000};
const unsigned gw_flush_bounds[GW_FLUSH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

static void observe_latency(gw_egress_stats_t *st, uint64_t ns, uint64_t weight)
{
    double us = (double)ns / 1000.0;
    int i = 0;
    while (i < GW_LAT_BUCKETS && us > gw_lat_bounds_us[i])
        i++;
    st->lat_buckets[i] += weight;
    st->lat_sum_ns += ns * weight;
    st->lat_count += weight;
}

static void observe_flush(gw_egress_stats_t *st, unsigned packets)
{
    int i = 0;
    while (i < GW_FLUSH_BUCKETS && packets > gw_flush_bounds[i])
        i++;
    st->flush_buckets[i]++;
    st->flush_sum += packets;
    st->flush_count++;
}

int gw_egress_submit(gw_egress_t *eg, const gw_send_t *sends, unsigned n)
{
    if (n == 0)
        return 0;
    observe_flush(&eg->stats, n);
    return eg->ops->submit(eg, sends, n);
}

void gw_egress_drain(gw_egress_t *eg, int timeout_ms)
{
    if (eg->ops)
        eg->ops->drain(eg, timeout_ms);
}

void gw_egress_close(gw_egress_t *eg)
{
    if (eg->errq_timer_on) {
        uv_timer_stop(&eg->errq_timer);
        uv_close((uv_handle_t *)&eg->errq_timer, NULL);
        eg->errq_timer_on = false;
    }
    eg->backend_name = "none";
    if (eg->ops) {
        eg->ops->drain(eg, 1000);
        eg->ops->close(eg);
        eg->ops = NULL;
    }
    close_sockets(eg);
}

const char *const gw_retry_reason_names[GW_RETRY_NREASONS] = {"enobufs", "eagain", "short",
                                                              "canceled", "other"};

void gw_egress_count_retry(gw_egress_t *eg, int res, bool short_send)
{
    int reason = short_send          ? GW_RETRY_SHORT
                 : res == -ENOBUFS   ? GW_RETRY_ENOBUFS
                 : res == -EAGAIN    ? GW_RETRY_EAGAIN
                 : res == -ECANCELED ? GW_RETRY_CANCELED
                                     : GW_RETRY_OTHER;
    eg->retries++;
    if (eg->probing)
        return;
    eg->stats.send_retries++;
    eg->stats.retry_reasons[reason]++;
}

void gw_egress_backoff_update(gw_egress_t *eg, bool failed_again)
{
    if (!failed_again || eg->retry_backoff_ms < GW_RETRY_MIN_MS)
        eg->retry_backoff_ms = GW_RETRY_MIN_MS;
    else if (eg->retry_backoff_ms < GW_RETRY_MAX_MS)
        eg->retry_backoff_ms *= 2;
}

void gw_egress_drain_errqueue(gw_egress_t *eg)
{
    for (unsigned i = 0; i < eg->nfds; i++) {
        if (eg->fds[i] < 0)
            continue;
        /* Bounded: the queue is itself bounded by the receive buffer; 64 a call is plenty. */
        for (int k = 0; k < 64; k++) {
            char data[64], ctl[512];
            struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
            struct msghdr mh = {.msg_iov = &iov,
                                .msg_iovlen = 1,
                                .msg_control = ctl,
                                .msg_controllen = sizeof(ctl)};
            if (recvmsg(eg->fds[i], &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
                break; /* EAGAIN: empty */
            eg->stats.errqueue_msgs++;
            int ee_errno = 0;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) {
                    struct sock_extended_err ee;
                    memcpy(&ee, CMSG_DATA(c), sizeof(ee));
                    ee_errno = (int)ee.ee_errno;
                }
            if (eg->stats.errqueue_msgs <= 10 || eg->stats.errqueue_msgs % 10000 == 0)
                gw_log(GW_LOG_WARN, "socket %u error queue: %s (%llu so far)", i,
                       ee_errno ? gw_strerror(ee_errno) : "unknown",
                       (unsigned long long)eg->stats.errqueue_msgs);
        }
    }
}

void gw_egress_complete(gw_egress_t *eg, const gw_send_t *send, int res)
{
    uint64_t now = eg->now_ns;
    gw_packet_t *pkt = send->pkt;
    if (eg->probing) {
        /* The start-up probe's own datagrams: not part of the feed. */
    } else if (res >= 0) {
        eg->stats.packets_out[send->sock]++;
        eg->stats.bytes_out[send->sock] += (uint64_t)res;
        /* Latency once per packet (on its first line), weighted by its messages. */
        if (pkt->count && send->sock % GW_MAX_LINES == 0)
            observe_latency(&eg->stats, now - pkt->first_arrival_ns, pkt->count);
    } else {
        eg->errors++;
        eg->stats.send_errors++;
        if (eg->errors < 10 || eg->errors % 10000 == 0)
            gw_log(GW_LOG_ERROR, "send on socket %u failed: %s (%llu errors so far)", send->sock,
                   gw_strerror(-res), (unsigned long long)eg->errors);
    }
    if (eg->on_sent)
        eg->on_sent(eg->data, send, res, now);
    if (--pkt->refs == 0)
        gw_pool_put(eg->pool, pkt);
}
