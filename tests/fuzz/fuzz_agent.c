/* libFuzzer target: the agent's control protocol parser (feedhandler/agent/agent_wire.h),
 * which reads whatever any local process sends to the agent's socket. Checks: no read
 * outside the input (ASan), no UB (UBSan), and an accepted message re-encodes to exactly the
 * bytes it came from (nothing accepted that the encoder could not have produced). */
#include "agent_wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agent_msg_t m;
    int rc = agent_msg_parse(data, size, &m);
    if (rc != 0) {
        if (rc < AGENT_PARSE_FIELD || rc > AGENT_PARSE_SHORT)
            abort();
        return 0;
    }
    static uint8_t out[AGENT_MAX_MSG + 64];
    size_t len = agent_msg_encode(out, sizeof(out), m.hdr.type, m.hdr.id, &m.u, m.payload,
                                  m.payload_len);
    if (len != size || memcmp(out, data, size) != 0)
        abort();
    return 0;
}
