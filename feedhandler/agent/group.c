/* Groups: one joined UDP socket and one ring per (group, port), shared by every local
 * consumer of it. recvmmsg() writes straight into the ring's slots (no copy): the slots a
 * batch may fill are claimed first (odd seqlock word), so a reader lapped by the batch sees
 * that before the kernel touches the bytes. Claiming runs one batch ahead of head, so readers
 * can fall up to slot_count - AGENT_RECV_BATCH datagrams behind without loss. */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

enum { CTRL_LEN = CMSG_SPACE(sizeof(struct timespec)), ROUNDS_PER_EVENT = 8 };

static agent_group_t *find_group(agent_t *a, uint32_t group_be, uint16_t port)
{
    for (unsigned i = 0; i < a->cfg.max_groups; i++)
        if (a->groups[i].used && a->groups[i].group == group_be && a->groups[i].port == port)
            return &a->groups[i];
    return NULL;
}

static int open_socket(agent_t *a, uint32_t group_be, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0, want = a->cfg.rcvbuf;
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = group_be};
    struct ip_mreqn m = {.imr_multiaddr.s_addr = group_be,
                         .imr_address = a->ifaddr,
                         .imr_ifindex = a->ifindex};
    /* SO_RCVBUFFORCE passes rmem_max with CAP_NET_ADMIN (the DaemonSet has it). */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) != 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0 ||
        /* Without this Linux delivers every group any socket joined on this port. */
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero)) < 0 ||
        /* Bound to the group, not ANY: other groups on the same port stay out. */
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

static void free_group(agent_group_t *g)
{
    if (g->fd >= 0)
        close(g->fd); /* closing the socket leaves the group (IGMP leave) */
    agent_shm_close(&g->shm);
    free(g->mmsg);
    free(g->iov);
    free(g->ctrl);
    memset(g, 0, sizeof(*g));
    g->fd = -1;
}

static int alloc_batch(agent_group_t *g)
{
    g->mmsg = calloc(AGENT_RECV_BATCH, sizeof(*g->mmsg));
    g->iov = calloc(AGENT_RECV_BATCH, sizeof(*g->iov));
    g->ctrl = calloc(AGENT_RECV_BATCH, CTRL_LEN);
    if (!g->mmsg || !g->iov || !g->ctrl)
        return -ENOMEM;
    for (unsigned i = 0; i < AGENT_RECV_BATCH; i++) {
        g->mmsg[i].msg_hdr.msg_iov = &g->iov[i];
        g->mmsg[i].msg_hdr.msg_iovlen = 1;
        g->mmsg[i].msg_hdr.msg_control = g->ctrl + (size_t)i * CTRL_LEN;
    }
    return 0;
}

static void group_name(const agent_group_t *g, char *out, size_t cap)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &g->group, ip, sizeof(ip));
    snprintf(out, cap, "%s:%u", ip, g->port);
}

static int create_group(agent_t *a, agent_group_t *g, uint32_t group_be, uint16_t port)
{
    memset(g, 0, sizeof(*g));
    g->fd = -1;
    g->shm.memfd = g->shm.rofd = g->shm.efd = -1;
    g->group = group_be;
    g->port = port;
    int rc = agent_shm_create(&g->shm, a->cfg.ring_bytes, a->cfg.max_datagram, group_be, port,
                              a->epoch);
    if (rc == 0)
        rc = alloc_batch(g);
    if (rc == 0 && (g->fd = open_socket(a, group_be, port)) < 0)
        rc = g->fd;
    if (rc == 0)
        rc = agent_watch(a, g->fd, EPOLLIN, AGENT_TAG(TAG_GROUP, g - a->groups));
    if (rc) {
        free_group(g);
        return rc;
    }
    g->used = true;
    char name[32];
    group_name(g, name, sizeof(name));
    agent_log(AGENT_LOG_INFO, "\"msg\":\"joined\",\"group\":\"%s\",\"slots\":%u,\"ring_bytes\":%zu",
              name, g->shm.ring.hdr->slot_count, g->shm.ring.bytes);
    return 0;
}

int agent_group_acquire(agent_t *a, uint32_t group_be, uint16_t port, agent_group_t **out)
{
    agent_group_t *g = find_group(a, group_be, port);
    if (!g) {
        for (unsigned i = 0; i < a->cfg.max_groups && !g; i++)
            if (!a->groups[i].used)
                g = &a->groups[i];
        if (!g)
            return -ENOSPC;
        int rc = create_group(a, g, group_be, port);
        if (rc)
            return rc;
    }
    g->consumers++;
    *out = g;
    return 0;
}

void agent_group_release(agent_t *a, agent_group_t *g)
{
    (void)a;
    if (--g->consumers > 0)
        return;
    char name[32];
    group_name(g, name, sizeof(name));
    agent_log(AGENT_LOG_INFO, "\"msg\":\"left\",\"group\":\"%s\",\"packets\":%llu", name,
              (unsigned long long)g->packets);
    free_group(g);
}

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

/* Points the batch at the next free slots, claiming those not yet claimed. */
static void prepare_batch(agent_group_t *g, uint64_t head)
{
    agent_ring_t *r = &g->shm.ring;
    while (g->shm.claimed_to < head + AGENT_RECV_BATCH)
        agent_ring_claim(r, g->shm.claimed_to++);
    for (unsigned i = 0; i < AGENT_RECV_BATCH; i++) {
        g->iov[i].iov_base = agent_slot_data(agent_ring_slot(r, head + i));
        g->iov[i].iov_len = r->max_datagram;
        g->mmsg[i].msg_hdr.msg_controllen = CTRL_LEN;
        g->mmsg[i].msg_hdr.msg_flags = 0;
    }
}

/* One recvmmsg into the ring. Returns datagrams published, 0 when the socket is empty. */
static int receive_batch(agent_t *a, agent_group_t *g)
{
    agent_ring_t *r = &g->shm.ring;
    uint64_t head = atomic_load_explicit(&r->hdr->head, memory_order_relaxed);
    prepare_batch(g, head);
    int n;
    do
        n = recvmmsg(g->fd, g->mmsg, AGENT_RECV_BATCH, MSG_DONTWAIT, NULL);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            agent_log(AGENT_LOG_WARN, "\"msg\":\"recvmmsg failed\",\"error\":\"%s\"",
                      strerror(errno));
        return 0;
    }
    for (int i = 0; i < n; i++) {
        struct msghdr *h = &g->mmsg[i].msg_hdr;
        bool trunc = (h->msg_flags & MSG_TRUNC) != 0;
        uint32_t len = g->mmsg[i].msg_len > r->max_datagram ? r->max_datagram
                                                             : g->mmsg[i].msg_len;
        agent_ring_complete(r, head + (uint64_t)i, len, trunc ? AGENT_SLOT_TRUNCATED : 0,
                            rx_timestamp(h));
        g->bytes += len;
        g->truncated += trunc;
    }
    agent_ring_publish(r, head + (uint64_t)n);
    g->packets += (uint64_t)n;
    g->batches++;
    agent_dgram_fanout(a, g, head, head + (uint64_t)n);
    return n;
}

void agent_group_receive(agent_t *a, agent_group_t *g)
{
    for (int round = 0; round < ROUNDS_PER_EVENT; round++) {
        int n = receive_batch(a, g);
        if (n == 0)
            return;
        /* One wake-up per batch for all consumers of the group, whatever their number: they
         * watch the eventfd edge-triggered and never read it, so no consumer can steal
         * another's wake-up. The counter is drained here so it can never saturate. */
        uint64_t one = 1, drained;
        if (write(g->shm.efd, &one, sizeof(one)) < 0 && errno == EAGAIN &&
            read(g->shm.efd, &drained, sizeof(drained)) > 0)
            (void)!write(g->shm.efd, &one, sizeof(one));
        if ((unsigned)n < AGENT_RECV_BATCH)
            return;
    }
}
