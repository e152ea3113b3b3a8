/* The benchmark message that mdcast-pub --timestamps sends and mdfeed-tap --latency reads. */
#include "mdfeed/moldudp64.h"

#include <errno.h>
#include <string.h>

size_t mdfeed_bench_encode(void *buf, size_t len, uint64_t send_ns, uint64_t counter)
{
    if (len < MDFEED_BENCH_MIN_LEN)
        return 0;
    uint8_t *p = buf;
    memcpy(p, MDFEED_BENCH_MAGIC, 4);
    mdfeed_put_be64(p + 4, send_ns);
    mdfeed_put_be64(p + 12, counter);
    /* A fixed filler, so a capture shows where the padding starts. */
    memset(p + MDFEED_BENCH_MIN_LEN, '.', len - MDFEED_BENCH_MIN_LEN);
    return len;
}

int mdfeed_bench_decode(const void *msg, size_t len, uint64_t *send_ns, uint64_t *counter)
{
    const uint8_t *p = msg;
    if (len < MDFEED_BENCH_MIN_LEN || memcmp(p, MDFEED_BENCH_MAGIC, 4) != 0)
        return -EINVAL;
    *send_ns = mdfeed_get_be64(p + 4);
    *counter = mdfeed_get_be64(p + 12);
    return 0;
}
