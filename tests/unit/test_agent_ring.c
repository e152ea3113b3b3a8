/* The agent's shared-memory ring (feedhandler/agent/agent_wire.h, ring.c): geometry checks,
 * one writer and readers in order, lap detection, a torn read caught deterministically, a
 * racing writer against reader threads (no accepted copy is ever torn), and the proof that a
 * consumer cannot map the ring writable, whatever it tries. */
#include "task.h"

#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* Stubs for the agent's logger and clock, which ring.c does not call but agent.h declares. */
int agent_log_level = AGENT_LOG_ERROR;

static agent_shm_t make_ring(size_t bytes, uint32_t max_dgram)
{
    agent_shm_t s;
    ASSERT_EQ(agent_shm_create(&s, bytes, max_dgram, htonl(0xEF000001u), 30001, 42), 0);
    return s;
}

/* Datagram n: length 20 + n % 97, every byte a function of n and its offset. */
static uint32_t fill(uint8_t *p, uint64_t n)
{
    uint32_t len = 20 + (uint32_t)(n % 97);
    for (uint32_t i = 0; i < len; i++)
        p[i] = (uint8_t)(n * 31 + i);
    memcpy(p, &n, sizeof(n));
    return len;
}

static bool matches(const uint8_t *p, uint32_t len, uint64_t n)
{
    uint64_t got;
    memcpy(&got, p, sizeof(got));
    if (got != n || len != 20 + n % 97)
        return false;
    for (uint32_t i = 8; i < len; i++)
        if (p[i] != (uint8_t)(n * 31 + i))
            return false;
    return true;
}

static void write_one(agent_ring_t *r, uint64_t n)
{
    agent_ring_claim(r, n);
    uint32_t len = fill(agent_slot_data(agent_ring_slot(r, n)), n);
    agent_ring_complete(r, n, len, 0, 1000 + n);
    agent_ring_publish(r, n + 1);
}

static void test_geometry(void)
{
    ASSERT_EQ(agent_slot_bytes_for(1472), 1536);
    ASSERT_EQ(agent_ring_slots_for(4096 + 1536 * 300, 1472), 256);
    ASSERT_EQ(agent_ring_slots_for(4096 + 1536, 1472), 0);
    agent_shm_t s = make_ring(1 << 20, 1472);
    agent_ring_t r;
    ASSERT_EQ(agent_ring_attach(&r, s.ring.base, s.ring.bytes), 0);
    ASSERT_EQ(r.mask + 1, 512);
    /* A header that promises more than the mapping holds is refused. */
    ASSERT_EQ(agent_ring_attach(&r, s.ring.base, s.ring.bytes - 1), -1);
    s.ring.hdr->slot_bytes = 64;
    ASSERT_EQ(agent_ring_attach(&r, s.ring.base, s.ring.bytes), -1);
    agent_shm_close(&s);
    agent_shm_t tiny;
    ASSERT_EQ(agent_shm_create(&tiny, 4096 + 1536 * 100, 1472, 0, 1, 1), -EINVAL);
}

static void test_in_order_and_lap(void)
{
    agent_shm_t s = make_ring(4096 + 1536 * 256, 1472);
    agent_ring_t *r = &s.ring;
    uint8_t buf[2048];
    uint32_t len;
    uint64_t ts;
    bool trunc;
    for (uint64_t n = 0; n < 1000; n++) {
        write_one(r, n);
        ASSERT_EQ(agent_ring_read(r, n, buf, sizeof(buf), &len, &ts, &trunc), AGENT_READ_OK);
        ASSERT(matches(buf, len, n));
        ASSERT_UEQ(ts, 1000 + n);
        ASSERT(!trunc);
    }
    /* Not yet written. */
    ASSERT_EQ(agent_ring_read(r, 1000, buf, sizeof(buf), &len, &ts, &trunc), AGENT_READ_NOT_YET);
    /* 1000 - 256 and older were overwritten: a reader there was lapped. */
    ASSERT_EQ(agent_ring_read(r, 1000 - 257, buf, sizeof(buf), &len, &ts, &trunc),
              AGENT_READ_LAPPED);
    ASSERT_EQ(agent_ring_read(r, 1000 - 256, buf, sizeof(buf), &len, &ts, &trunc), AGENT_READ_OK);
    /* A slot claimed for the next batch is gone for its old datagram. */
    agent_ring_claim(r, 1000);
    ASSERT_EQ(agent_ring_read(r, 1000 - 256, buf, sizeof(buf), &len, &ts, &trunc),
              AGENT_READ_LAPPED);
    /* A small buffer cuts and says so. */
    ASSERT_EQ(agent_ring_read(r, 999, buf, 10, &len, &ts, &trunc), AGENT_READ_OK);
    ASSERT_EQ(len, 10);
    ASSERT(trunc);
    agent_shm_close(&s);
}

/* The writer overwrites the slot between the reader's two loads: the copy is refused. */
static void test_torn_read_detected(void)
{
    agent_shm_t s = make_ring(4096 + 1536 * 256, 1472);
    agent_ring_t *r = &s.ring;
    write_one(r, 5);
    const agent_slot_hdr_t *slot;
    agent_read_t rd;
    ASSERT_EQ(agent_ring_read_begin(r, 5, &rd, &slot), AGENT_READ_OK);
    agent_ring_claim(r, 5 + 256); /* same slot, one lap later: the writer is inside it */
    ASSERT_EQ(agent_ring_read_end(slot, &rd), AGENT_READ_LAPPED);
    /* And one that completed in between is refused as well (lock moved by 2 laps). */
    write_one(r, 6);
    ASSERT_EQ(agent_ring_read_begin(r, 6, &rd, &slot), AGENT_READ_OK);
    write_one(r, 6 + 256);
    ASSERT_EQ(agent_ring_read_end(slot, &rd), AGENT_READ_LAPPED);
    agent_shm_close(&s);
}

/* ---- a racing writer against reader threads ------------------------------------------- */

#define RACE_TOTAL 300000u

typedef struct {
    agent_ring_t *r;
    _Atomic bool *done;
    uint64_t ok, lapped, laps, corrupt, slow;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *rd = arg;
    uint8_t buf[2048];
    uint64_t next = 0, keep = rd->r->mask + 1 - AGENT_RING_CLAIM_AHEAD;
    for (;;) {
        uint64_t head = agent_ring_head(rd->r);
        if (next >= head) {
            if (atomic_load(rd->done) && next >= agent_ring_head(rd->r))
                break;
            continue;
        }
        uint32_t len;
        uint64_t ts;
        bool trunc;
        int rc = agent_ring_read(rd->r, next, buf, sizeof(buf), &len, &ts, &trunc);
        if (rc == AGENT_READ_OK) {
            rd->corrupt += !matches(buf, len, next) || ts != 1000 + next;
            rd->ok++;
            next++;
            if (rd->slow && next % 64 == 0)
                usleep(1); /* this one falls behind on purpose */
        } else if (rc == AGENT_READ_LAPPED) {
            uint64_t to = head > keep ? head - keep : next + 1;
            to = to > next ? to : next + 1;
            rd->laps++;
            rd->lapped += to - next;
            next = to;
        }
    }
    return NULL;
}

static void test_racing_writer(void)
{
    /* A small ring so that laps happen even with fast readers on two cores. */
    agent_shm_t s = make_ring(4096 + 1536 * 256, 1472);
    _Atomic bool done = false;
    reader_t rd[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        rd[i] = (reader_t){.r = &s.ring, .done = &done, .slow = i == 2};
        ASSERT_EQ(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
    }
    for (uint64_t n = 0; n < RACE_TOTAL; n++)
        write_one(&s.ring, n);
    atomic_store(&done, true);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
        printf("reader %d: ok %llu, laps %llu, lapped %llu\n", i, (unsigned long long)rd[i].ok,
               (unsigned long long)rd[i].laps, (unsigned long long)rd[i].lapped);
        ASSERT_UEQ(rd[i].corrupt, 0);
        /* Every datagram either read intact or counted lost: nothing silent. */
        ASSERT_UEQ(rd[i].ok + rd[i].lapped, RACE_TOTAL);
    }
    ASSERT(rd[2].laps > 0); /* the slow reader was lapped and noticed */
    agent_shm_close(&s);
}

/* ---- read-only for consumers ----------------------------------------------------------- */

static void test_read_only(void)
{
    agent_shm_t s = make_ring(1 << 20, 1472);
    size_t len = s.ring.bytes;
    int seals = fcntl(s.rofd, F_GET_SEALS);
    ASSERT(seals >= 0);
    ASSERT_EQ(seals & (F_SEAL_FUTURE_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL),
              F_SEAL_FUTURE_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    /* The fd a consumer gets: no writable shared mapping, no mprotect to writable. */
    ASSERT(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, s.rofd, 0) == MAP_FAILED);
    uint8_t *ro = mmap(NULL, len, PROT_READ, MAP_SHARED, s.rofd, 0);
    ASSERT(ro != MAP_FAILED);
    ASSERT_EQ(mprotect(ro, len, PROT_READ | PROT_WRITE), -1);
    /* Reopening it read-write through /proc works for a memfd, but the seal still refuses
     * every way to write: shared mapping, write(), growing, shrinking, unsealing. */
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", s.rofd);
    int rw = open(path, O_RDWR);
    if (rw >= 0) {
        errno = 0;
        ASSERT(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0) == MAP_FAILED);
        ASSERT_EQ(errno, EPERM);
        ASSERT_EQ(write(rw, "x", 1), -1);
        ASSERT_EQ(errno, EPERM);
        ASSERT_EQ(ftruncate(rw, (off_t)len * 2), -1);
        ASSERT_EQ(ftruncate(rw, 4096), -1);
        ASSERT_EQ(fcntl(rw, F_ADD_SEALS, 0), -1); /* F_SEAL_SEAL */
        close(rw);
    }
    /* The agent's own mapping, made before the seal, still writes, and readers see it. */
    write_one(&s.ring, 0);
    agent_ring_t r;
    ASSERT_EQ(agent_ring_attach(&r, ro, len), 0);
    uint8_t buf[2048];
    uint32_t l;
    uint64_t ts;
    bool trunc;
    ASSERT_EQ(agent_ring_read(&r, 0, buf, sizeof(buf), &l, &ts, &trunc), AGENT_READ_OK);
    ASSERT(matches(buf, l, 0));
    munmap(ro, len);
    agent_shm_close(&s);
}

int main(void)
{
    test_geometry();
    test_in_order_and_lap();
    test_torn_read_detected();
    test_read_only();
    test_racing_writer();
    printf("test_agent_ring: ok\n");
    return 0;
}
