/* libFuzzer target: the MoldUDP64 decoder and iterator on arbitrary datagrams.
 * Invariants: a datagram the decoder accepts iterates exactly `count` messages that tile
 * its blocks, and the builder reproduces it byte for byte; a re-request is accepted only
 * at 20 bytes. Any crash, leak, overflow or UB is reported by the sanitizers. */
#include "mdfeed/moldudp64.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_data_packet(const uint8_t *data, size_t size, const mdfeed_mold_packet_t *p)
{
    mdfeed_mold_iter_t it;
    const uint8_t *m;
    uint16_t len;
    uint64_t seq, n = 0, bytes = 0;
    mdfeed_mold_iter_init(&it, p);
    while (mdfeed_mold_iter_next(&it, &m, &len, &seq)) {
        if (seq != p->hdr.seq + n || m < data || m + len > data + size)
            abort();
        n++;
        bytes += 2u + len;
    }
    if (n != p->hdr.count || bytes != p->blocks_len)
        abort();

    /* Rebuild through the builder with the datagram's own size as the budget. */
    if (size > 65507)
        return;
    uint8_t *out = malloc(size);
    if (!out)
        return;
    mdfeed_mold_builder_t b;
    if (mdfeed_mold_builder_init(&b, out, size, p->hdr.session) != 0)
        abort();
    mdfeed_mold_builder_open(&b, p->hdr.seq);
    mdfeed_mold_iter_init(&it, p);
    while (mdfeed_mold_iter_next(&it, &m, &len, &seq))
        if (mdfeed_mold_builder_append(&b, m, len) != 0)
            abort();
    if (mdfeed_mold_builder_finish(&b) != size || memcmp(out, data, size) != 0)
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mdfeed_mold_packet_t p;
    int rc = mdfeed_mold_decode(data, size, &p);
    if (rc == 0) {
        if (p.kind == MDFEED_MOLD_DATA)
            check_data_packet(data, size, &p);
        else if (size != MDFEED_MOLD_HEADER_LEN)
            abort();
    } else if (rc > -10010 || rc < -10015) {
        abort(); /* only MoldUDP64 decode errors are possible */
    }
    /* Iterating anything the decoder filled must stay in bounds even after an error. */
    if (rc != 0 && rc != MDFEED_EMOLD_SHORT_HEADER) {
        mdfeed_mold_iter_t it;
        const uint8_t *m;
        uint16_t len;
        uint64_t seq;
        mdfeed_mold_iter_init(&it, &p);
        for (int i = 0; i < 70000 && mdfeed_mold_iter_next(&it, &m, &len, &seq); i++)
            if (m < data || m + len > data + size)
                abort();
    }
    mdfeed_mold_header_t h;
    rc = mdfeed_mold_request_decode(data, size, &h);
    if ((rc == 0) != (size == MDFEED_MOLD_HEADER_LEN))
        abort();
    return 0;
}
