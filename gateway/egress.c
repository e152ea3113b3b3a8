/* Egress: the multicast sockets and the choice of backend (a small table of function
 * pointers, as libuv and liburing do feature detection). One connected UDP socket per group
 * (channel x line): connected sockets skip the per-datagram route and address work in the
 * kernel, which is what lets io_uring's IORING_OP_SEND beat sendmsg-style calls. */
#include "gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <stdio.h>
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

static int open_line(const gw_config_t *cfg, unsigned ifindex, const struct sockaddr_in *grp)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int ttl = cfg->ttl, loop = cfg->loop ? 1 : 0, sndbuf = 4 << 20;
    /* Never fragment: the TGW drops fragments; the payload budget keeps datagrams small. */
    int pmtu = IP_PMTUDISC_DO;
    struct ip_mreqn mreq = {.imr_address = cfg->egress_addr, .imr_ifindex = (int)ifindex};
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof(mreq)) ||
        setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu)) ||
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
        gw_log(GW_LOG_ERROR, "egress interface %s: %s", cfg->egress_ifname, strerror(errno));
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
                       cfg->channels[ch].name, 'A' + l, a, ntohs(g->sin_port), strerror(-fd));
                return -1;
            }
            eg->fds[gw_egress_sock(ch, l)] = fd;
        }
    eg->nfds = (unsigned)cfg->nchannels * GW_MAX_LINES;
    return 0;
}

/* Chooses the backend. io_uring is preferred where it sets up: see docs/GATEWAY.md for the
 * measurement behind `auto`. Any failure to set it up falls back to sendmmsg, logged once. */
static int choose_backend(gw_egress_t *eg, gw_io_t io)
{
    if (io != GW_IO_MMSG) {
        eg->ops = &gw_egress_uring_ops;
        int rc = eg->ops->init(eg);
        if (rc == 0)
            return 0;
        eg->uring_refused = true;
        gw_log(GW_LOG_WARN, "io_uring egress unavailable (%s); falling back to sendmmsg",
               strerror(-rc));
    }
    eg->ops = &gw_egress_mmsg_ops;
    return eg->ops->init(eg);
}

int gw_egress_init(gw_egress_t *eg, uv_loop_t *loop, const gw_config_t *cfg, gw_pool_t *pool,
                   gw_sent_cb on_sent, void *data)
{
    memset(eg, 0, sizeof(*eg));
    for (unsigned i = 0; i < GW_MAX_SOCKETS; i++)
        eg->fds[i] = -1;
    eg->loop = loop;
    eg->pool = pool;
    eg->on_sent = on_sent;
    eg->data = data;
    if (open_sockets(eg, cfg) != 0)
        goto fail;
    if (choose_backend(eg, cfg->io) != 0) {
        gw_log(GW_LOG_ERROR, "egress backend %s failed to start", eg->ops->name);
        goto fail;
    }
    gw_log(GW_LOG_INFO, "egress backend %s (io=%s), %u sockets", eg->ops->name,
           gw_io_name(cfg->io), eg->nfds);
    return 0;
fail:
    eg->ops = NULL;
    close_sockets(eg);
    return -1;
}

int gw_egress_submit(gw_egress_t *eg, const gw_send_t *sends, unsigned n)
{
    if (n == 0)
        return 0;
    gw_metrics_observe_flush(n);
    return eg->ops->submit(eg, sends, n);
}

void gw_egress_close(gw_egress_t *eg)
{
    if (eg->ops) {
        eg->ops->drain(eg, 1000);
        eg->ops->close(eg);
        eg->ops = NULL;
    }
    close_sockets(eg);
}

void gw_egress_complete(gw_egress_t *eg, const gw_send_t *send, int res)
{
    uint64_t now = uv_hrtime();
    gw_packet_t *pkt = send->pkt;
    if (res >= 0) {
        gw_metrics.packets_out[send->sock]++;
        gw_metrics.bytes_out[send->sock] += (uint64_t)res;
        /* Latency once per packet (on its first line), weighted by its messages. */
        if (pkt->count && send->sock % GW_MAX_LINES == 0)
            gw_metrics_observe_latency(now - pkt->first_arrival_ns, pkt->count);
    } else {
        eg->errors++;
        gw_metrics.send_errors++;
        if (eg->errors < 10 || eg->errors % 10000 == 0)
            gw_log(GW_LOG_ERROR, "send on socket %u failed: %s (%llu errors so far)",
                   send->sock, strerror(-res), (unsigned long long)eg->errors);
    }
    if (eg->on_sent)
        eg->on_sent(eg->data, send, res, now);
    if (--pkt->refs == 0)
        gw_pool_put(eg->pool, pkt);
}
