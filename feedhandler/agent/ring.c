/* The ring's memory: a memfd the agent maps read-write once and then seals, so that every
 * consumer can only ever map it read-only.
 *
 * F_SEAL_FUTURE_WRITE (Linux 5.1) is the seal that fits a single writer: the agent's own
 * shared mapping, made before the seal, stays writable, while every later mmap(PROT_WRITE,
 * MAP_SHARED), mprotect to write, write() and pwrite() on the file fail with EPERM whatever
 * the fd's mode. F_SEAL_WRITE cannot be used: it refuses to seal while a writable mapping
 * exists. F_SEAL_GROW/SHRINK fix the size (a consumer cannot make the agent SIGBUS), and
 * F_SEAL_SEAL stops anyone from removing the seals. On top of that the consumer gets an fd
 * opened O_RDONLY through /proc/self/fd, so PROT_WRITE fails with EACCES even before the seal
 * is consulted. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static int reopen_read_only(int fd)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    /* Without /proc the sealed fd itself goes out: the seal alone refuses writable maps. */
    return ro >= 0 ? ro : fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

int agent_shm_create(agent_shm_t *s, size_t bytes, uint32_t max_datagram, uint32_t group_be,
                     uint16_t port, uint64_t epoch)
{
    *s = (agent_shm_t){.memfd = -1, .rofd = -1, .efd = -1};
    int rc;
    uint32_t slots = agent_ring_slots_for(bytes, max_datagram);
    if (slots < 2 * AGENT_RECV_BATCH)
        return -EINVAL; /* a ring no bigger than a batch would lap every reader at once */
    size_t total = agent_ring_total_bytes(slots, max_datagram);
    void *base = MAP_FAILED;
    s->memfd = memfd_create("mdcast-agent-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->memfd < 0 || s->efd < 0 || ftruncate(s->memfd, (off_t)total) < 0)
        goto fail_errno;
    base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd, 0);
    if (base == MAP_FAILED)
        goto fail_errno;
    if (fcntl(s->memfd, F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0)
        goto fail_errno;
    s->rofd = reopen_read_only(s->memfd);
    if (s->rofd < 0)
        goto fail_errno;
    agent_ring_hdr_t *h = base;
    h->magic = AGENT_RING_MAGIC;
    h->version = AGENT_RING_VERSION;
    h->slot_count = slots;
    h->slot_bytes = agent_slot_bytes_for(max_datagram);
    h->max_datagram = max_datagram;
    h->group = group_be;
    h->port = port;
    h->epoch = epoch;
    atomic_store_explicit(&h->head, 0, memory_order_release);
    if (agent_ring_attach(&s->ring, base, total) != 0) {
        rc = -EINVAL;
        goto fail;
    }
    return 0;
fail_errno:
    rc = -errno;
fail:
    if (base != MAP_FAILED)
        munmap(base, total);
    s->ring.base = NULL;
    agent_shm_close(s);
    return rc;
}

void agent_shm_close(agent_shm_t *s)
{
    if (s->ring.base)
        munmap(s->ring.base, s->ring.bytes);
    s->ring.base = NULL;
    if (s->memfd >= 0)
        close(s->memfd);
    if (s->rofd >= 0)
        close(s->rofd);
    if (s->efd >= 0)
        close(s->efd);
    s->memfd = s->rofd = s->efd = -1;
}
