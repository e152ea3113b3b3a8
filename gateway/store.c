/* Retransmission store: the channel's most recent messages in a ring bounded both by count
 * and by bytes. Each message is kept contiguous in a byte ring (a message that does not fit
 * before the end of the ring starts again at offset 0); the oldest messages are evicted until
 * the new one fits and both bounds hold. */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int gw_store_init(gw_store_t *s, uint32_t max_messages, size_t max_bytes)
{
    memset(s, 0, sizeof(*s));
    if (max_messages == 0 || max_bytes == 0 || max_bytes > UINT32_MAX)
        return -EINVAL;
    s->data = malloc(max_bytes);
    s->entries = calloc(max_messages, sizeof(*s->entries));
    if (!s->data || !s->entries) {
        gw_store_close(s);
        return -ENOMEM;
    }
    s->cap_bytes = max_bytes;
    s->cap_count = max_messages;
    s->first_seq = 1;
    return 0;
}

void gw_store_close(gw_store_t *s)
{
    free(s->data);
    free(s->entries);
    s->data = NULL;
    s->entries = NULL;
    s->count = 0;
}

void gw_store_reset(gw_store_t *s, uint64_t next_seq)
{
    s->count = 0;
    s->oldest = 0;
    s->live_bytes = 0;
    s->tail = 0;
    s->first_seq = next_seq;
}

static void evict_oldest(gw_store_t *s)
{
    s->live_bytes -= s->entries[s->oldest].len;
    s->oldest = (s->oldest + 1) % s->cap_count;
    s->count--;
    s->first_seq++;
}

/* Offset where `len` bytes fit without overlapping live messages, or -1. */
static long find_room(const gw_store_t *s, size_t len)
{
    if (s->count == 0)
        return 0;
    size_t head = s->entries[s->oldest].off;
    if (s->tail > head || (s->tail == head && s->live_bytes == 0)) {
        if (s->cap_bytes - s->tail >= len)
            return (long)s->tail;
        if (head >= len)
            return 0; /* wrap: the gap at the end stays unused until the tail passes it */
        return -1;
    }
    if (s->tail < head && head - s->tail >= len)
        return (long)s->tail;
    return -1;
}

int gw_store_append(gw_store_t *s, uint64_t seq, const void *msg, size_t len)
{
    if (len > s->cap_bytes)
        return -E2BIG;
    if (s->count > 0 && seq != s->first_seq + s->count)
        return -EINVAL;
    if (s->count == 0) {
        s->first_seq = seq;
        s->tail = 0;
    }
    while (s->count == s->cap_count || s->live_bytes + len > s->cap_bytes)
        evict_oldest(s);
    long off;
    while ((off = find_room(s, len)) < 0)
        evict_oldest(s);
    if (s->count == 0) {
        s->first_seq = seq;
        off = 0;
    }
    uint32_t idx = (s->oldest + s->count) % s->cap_count;
    s->entries[idx].off = (uint32_t)off;
    s->entries[idx].len = (uint32_t)len;
    if (len)
        memcpy(s->data + off, msg, len);
    s->tail = (size_t)off + len;
    s->count++;
    s->live_bytes += len;
    return 0;
}

int gw_store_get(const gw_store_t *s, uint64_t seq, const uint8_t **msg, size_t *len)
{
    if (s->count == 0 || seq < s->first_seq || seq - s->first_seq >= s->count)
        return -ENOENT;
    const gw_store_entry_t *e = &s->entries[(s->oldest + (seq - s->first_seq)) % s->cap_count];
    *msg = s->data + e->off;
    *len = e->len;
    return 0;
}
