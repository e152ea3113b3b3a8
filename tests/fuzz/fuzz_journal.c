/* libFuzzer target: the journal's segment scanner (gw_journal_scan_buffer), which recovery,
 * reads and verify share. Invariants: every record it reports lies inside the input, in
 * order, with consecutive sequence numbers from the header's first_seq; the good prefix ends
 * inside the input (at its end when the status is OK); re-encoding the reported records
 * reproduces that prefix byte for byte, and scanning the re-encoding gives the same records
 * with status OK. Sanitizers report any crash, overflow, leak or UB. */
#include "journal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const uint8_t *base;
    size_t size;
    uint64_t next_seq, count, last_end;
    uint8_t *out; /* re-encoding */
    size_t out_len;
} check_t;

static int on_record(void *arg, const gw_journal_record_t *r)
{
    check_t *c = arg;
    if (r->seq != c->next_seq || r->off < c->last_end || r->len > GW_JOURNAL_MAX_MSG ||
        r->msg != c->base + r->off + GW_JOURNAL_RECORD_HDR ||
        r->off + GW_JOURNAL_RECORD_HDR + r->len > c->size)
        abort();
    c->next_seq++;
    c->count++;
    c->last_end = r->off + GW_JOURNAL_RECORD_HDR + r->len;
    if (c->out)
        c->out_len +=
            gw_journal_encode_record(c->out + c->out_len, r->seq, &r->origin, r->msg, r->len);
    return 0;
}

typedef struct {
    const gw_journal_record_t *want;
    uint64_t i;
} recheck_t;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_journal_scan_t res;
    check_t c = {data, size, 0, 0, GW_JOURNAL_HEADER_LEN, NULL, 0};
    /* First pass without output, to learn first_seq. */
    gw_journal_scan_buffer(data, size, &res, NULL, NULL);
    if (res.status == GW_JOURNAL_SCAN_BAD_HEADER) {
        if (res.records != 0)
            abort();
        return 0;
    }
    c.next_seq = res.hdr.first_seq;
    c.out = malloc(size + 1);
    if (!c.out)
        return 0;
    memcpy(c.out, data, GW_JOURNAL_HEADER_LEN); /* the header as given (reserved bytes kept) */
    c.out_len = GW_JOURNAL_HEADER_LEN;
    gw_journal_scan_t res2;
    gw_journal_scan_buffer(data, size, &res2, on_record, &c);
    if (memcmp(&res, &res2, sizeof(res)) != 0 || c.count != res.records || res.good_end > size ||
        res.good_end != c.last_end || (res.status == GW_JOURNAL_SCAN_OK && res.good_end != size) ||
        (res.status != GW_JOURNAL_SCAN_OK && res.good_end >= size) ||
        res.last_seq != res.hdr.first_seq + res.records - 1)
        abort();
    if (c.out_len != res.good_end || memcmp(c.out, data, c.out_len) != 0)
        abort();
    gw_journal_scan_t res3;
    check_t c3 = {c.out, c.out_len, res.hdr.first_seq, 0, GW_JOURNAL_HEADER_LEN, NULL, 0};
    gw_journal_scan_buffer(c.out, c.out_len, &res3, on_record, &c3);
    if (res3.status != GW_JOURNAL_SCAN_OK || res3.records != res.records)
        abort();
    free(c.out);
    return 0;
}
