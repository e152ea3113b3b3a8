/* libFuzzer target: the gateway's hot-path helpers against the general paths (see
 * tests/common/fastpath_check.h). The first bytes choose the SoupBinTCP max frame size and
 * the MoldUDP64 budget and first sequence; the rest is the stream, and also the message
 * lengths. Any disagreement aborts. */
#include "../common/fastpath_check.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 12)
        return 0;
    size_t max_frame = 1 + (((size_t)data[0] << 8) | data[1]) % MDFEED_SOUP_MAX_FRAME;
    size_t budget = 22 + (((size_t)data[2] << 8) | data[3]) % (65507 - 22);
    uint64_t first = mdfeed_get_be64(data + 4);
    if (first == 0)
        first = 1;
    data += 12;
    size -= 12;
    if (fp_check_soup(data, size, max_frame) != 0)
        abort();
    uint16_t lens[512];
    size_t nlens = 0;
    for (size_t i = 0; i + 1 < size && nlens < 512; i += 2)
        lens[nlens++] = mdfeed_get_be16(data + i);
    if (fp_check_mold(budget, first, lens, nlens, data, size) != 0)
        abort();
    return 0;
}
