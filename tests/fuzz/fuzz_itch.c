/* libFuzzer target: the ITCH 5.0 header decoder and printer. The first byte chooses the
 * output capacity. Invariants: a message is accepted only at its type's exact length; the
 * line fits 256 bytes, is one line, and its length is what was returned; a line cut short
 * by a small buffer is a NUL-terminated prefix of the full line. */
#include "mdfeed/itch.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *msg, size_t len, size_t cap)
{
    mdfeed_itch_header_t h;
    int rc = mdfeed_itch_header_decode(msg, len, &h);
    if (rc == 0 && (int)len != mdfeed_itch_msg_len((char)msg[0]))
        abort();
    char full[MDFEED_ITCH_LINE_MAX];
    int n = mdfeed_itch_format(msg, len, full, sizeof(full));
    if (rc != 0) {
        if (n != rc || full[0] != '\0')
            abort();
        return;
    }
    if (n <= 0 || n >= MDFEED_ITCH_LINE_MAX || (size_t)n != strlen(full) || strchr(full, '\n'))
        abort();
    char *small = malloc(cap ? cap : 1);
    if (!small)
        return;
    int m = mdfeed_itch_format(msg, len, small, cap);
    if ((size_t)n < cap) {
        if (m != n || strcmp(small, full) != 0)
            abort();
    } else {
        if (m != MDFEED_EITCH_NOSPACE)
            abort();
        if (cap > 0 && (strlen(small) != cap - 1 || strncmp(small, full, cap - 1) != 0))
            abort();
    }
    free(small);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cap = data[0];
    data++;
    size--;
    check(data, size, cap);
    /* Also the prefix of the right length, so most inputs reach the printer. */
    if (size > 0) {
        int want = mdfeed_itch_msg_len((char)data[0]);
        if (want > 0 && (size_t)want < size)
            check(data, (size_t)want, cap);
    }
    return 0;
}
