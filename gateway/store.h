/* Store stage: per channel, a ring of the most recent messages, kept for retransmission.
 * The sequencer appends (inline fast path below, general path in store.c); the
 * retransmission server reads. */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
/* Forgets every message; the next append may carry any sequence number (`next_seq` is
 * where an empty ring says it stands). */
void gw_store_reset(gw_store_t *s, uint64_t next_seq);
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

#endif /* GW_STORE_H */
