/* MoldUDP64 1.00 (NASDAQ): the egress wire format of mdcast.
 *
 * A downstream packet is a 20-byte header followed by `count` message blocks:
 *   session   10 bytes  ASCII, right-padded with spaces
 *   sequence   8 bytes  u64 big-endian, sequence number of the first message
 *   count      2 bytes  u16 big-endian; 0 = heartbeat, 0xFFFF = end of session
 *   blocks:   u16 big-endian length + that many bytes, `count` times
 * A re-request (to the retransmission port, unicast UDP) is a bare header: the session, the
 * first sequence wanted and the number of messages wanted. In a heartbeat and in an end of
 * session, `sequence` is the next sequence number the server will send. */
#ifndef MDFEED_MOLDUDP64_H
#define MDFEED_MOLDUDP64_H

#include "mdfeed/mdfeed.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MDFEED_MOLD_HEADER_LEN      20
#define MDFEED_MOLD_SESSION_LEN     10
#define MDFEED_MOLD_COUNT_HEARTBEAT 0x0000
#define MDFEED_MOLD_COUNT_END       0xFFFF
#define MDFEED_MOLD_MAX_COUNT       0xFFFE /* most messages one data packet can carry */
#define MDFEED_MOLD_BLOCK_HDR_LEN   2
/* Largest UDP payload that crosses an AWS Transit Gateway unfragmented:
 * 8500 - 20 (IPv4) - 8 (UDP). */
#define MDFEED_MOLD_MAX_DATAGRAM 8472

typedef enum {
    MDFEED_MOLD_DATA = 0,
    MDFEED_MOLD_HEARTBEAT = 1,
    MDFEED_MOLD_END_OF_SESSION = 2,
} mdfeed_mold_kind_t;

/* A decoded header. `session` is the raw 10 bytes, not NUL-terminated. */
typedef struct {
    char session[MDFEED_MOLD_SESSION_LEN];
    uint64_t seq;
    uint16_t count;
} mdfeed_mold_header_t;

/* A validated downstream packet. `blocks` points into the caller's datagram (zero-copy) and
 * stays valid as long as that buffer does. */
typedef struct {
    mdfeed_mold_header_t hdr;
    mdfeed_mold_kind_t kind;
    const uint8_t *blocks;
    size_t blocks_len;
} mdfeed_mold_packet_t;

/* Iterator over the messages of a packet that mdfeed_mold_decode() accepted. */
typedef struct {
    const uint8_t *next;
    const uint8_t *end;
    uint64_t seq; /* sequence number of the message the next call returns */
} mdfeed_mold_iter_t;

/* Copies `str` (1-10 printable ASCII characters, no leading space) into `out`, right-padded
 * with spaces. Returns 0 or MDFEED_EMOLD_BAD_SESSION. */
MDFEED_EXTERN int mdfeed_mold_session_set(char out[MDFEED_MOLD_SESSION_LEN], const char *str);

/* Writes the session as a NUL-terminated string with the padding removed into `out`
 * (at least 11 bytes). Returns `out`. */
MDFEED_EXTERN char *mdfeed_mold_session_str(const char session[MDFEED_MOLD_SESSION_LEN],
                                            char out[MDFEED_MOLD_SESSION_LEN + 1]);

/* Writes a 20-byte header into `buf` (at least MDFEED_MOLD_HEADER_LEN bytes). Used for
 * heartbeats (count 0), end of session (count 0xFFFF) and re-requests. Returns 20. */
MDFEED_EXTERN size_t mdfeed_mold_header_encode(void *buf,
                                               const char session[MDFEED_MOLD_SESSION_LEN],
                                               uint64_t seq, uint16_t count);

/* Validates a whole downstream datagram before anything is delivered: header, every block,
 * the count, trailing bytes, the end-of-session rule, sequence overflow. Returns 0 and fills
 * `out`, or one of MDFEED_EMOLD_* naming the first defect found. Never reads past `len`.
 *   MDFEED_EMOLD_SHORT_HEADER    fewer than 20 bytes
 *   MDFEED_EMOLD_BLOCK_OVERRUN   a block's length field or bytes run past the datagram
 *   MDFEED_EMOLD_COUNT_MISMATCH  fewer blocks than `count`, or more whole blocks than it
 *   MDFEED_EMOLD_TRAILING        bytes after the last block that are no block (also: any
 *                                byte after a heartbeat's header)
 *   MDFEED_EMOLD_EOS_PAYLOAD     an end of session (count 0xFFFF) followed by any byte
 *   MDFEED_EMOLD_SEQ_OVERFLOW    sequence + count passes 2^64 - 1
 * The session bytes are not checked: a receiver filters on the session it expects. */
MDFEED_EXTERN int mdfeed_mold_decode(const void *buf, size_t len, mdfeed_mold_packet_t *out);

/* Starts iterating `pkt` (which must come from a successful mdfeed_mold_decode()). */
MDFEED_EXTERN void mdfeed_mold_iter_init(mdfeed_mold_iter_t *it, const mdfeed_mold_packet_t *pkt);

/* Returns true and sets `*msg`, `*len`, `*seq` to the next message; false at the end. */
MDFEED_EXTERN bool mdfeed_mold_iter_next(mdfeed_mold_iter_t *it, const uint8_t **msg, uint16_t *len,
                                         uint64_t *seq);

/* Decodes a re-request: exactly 20 bytes. Returns 0 or MDFEED_EMOLD_BAD_REQUEST /
 * MDFEED_EMOLD_SHORT_HEADER. A count of 0 is returned as is: the caller decides. */
MDFEED_EXTERN int mdfeed_mold_request_decode(const void *buf, size_t len,
                                             mdfeed_mold_header_t *out);

/* Incremental packet builder over a caller-owned buffer. A packet is opened with
 * mdfeed_mold_builder_open(), messages are appended until one does not fit the budget
 * (MDFEED_EFULL: the packet is unchanged; flush it and append again to a new one), and
 * mdfeed_mold_builder_finish() stamps the count and returns the datagram length. */
typedef struct {
    uint8_t *buf;
    size_t budget; /* max datagram length (the UDP payload), header included */
    size_t len;    /* bytes written so far, header included; 0 = no packet open */
    uint16_t count;
    uint64_t seq; /* first sequence number of the open packet */
    char session[MDFEED_MOLD_SESSION_LEN];
} mdfeed_mold_builder_t;

/* `buf` must hold at least `budget` bytes and live as long as the builder; `budget` is
 * between 22 (one empty message) and 65507. Returns 0 or -EINVAL. */
MDFEED_EXTERN int mdfeed_mold_builder_init(mdfeed_mold_builder_t *b, void *buf, size_t budget,
                                           const char session[MDFEED_MOLD_SESSION_LEN]);

/* Opens a new packet whose first message will carry sequence number `seq`; discards any
 * packet still open. */
MDFEED_EXTERN void mdfeed_mold_builder_open(mdfeed_mold_builder_t *b, uint64_t seq);

/* Appends one message to the open packet. Returns 0; MDFEED_EFULL when it does not fit what
 * is left of the budget (or the packet already holds MDFEED_MOLD_MAX_COUNT messages);
 * MDFEED_ETOOBIG when it would not fit even an empty packet; MDFEED_EMOLD_SEQ_OVERFLOW when
 * its sequence number would pass 2^64 - 1; -EINVAL when no packet is open. On any error the
 * packet is unchanged. */
MDFEED_EXTERN int mdfeed_mold_builder_append(mdfeed_mold_builder_t *b, const void *msg, size_t len);

/* Bytes still free for one more message's payload in the open packet: a message of up to
 * this many bytes fits. 0 when no packet is open, when it is full, or when only an empty
 * message would fit. */
MDFEED_EXTERN size_t mdfeed_mold_builder_room(const mdfeed_mold_builder_t *b);

/* Stamps the message count into the header and closes the packet. Returns the datagram
 * length (0 when no packet was open). The bytes stay in `buf` until the next open().
 * A packet with no message finishes as a 20-byte heartbeat (count 0, sequence = the next
 * sequence number): check `b->count` before finishing if that is not what you want. */
MDFEED_EXTERN size_t mdfeed_mold_builder_finish(mdfeed_mold_builder_t *b);

/* Big-endian helpers, shared with the gateway so both sides read the wire the same way. */
static inline uint16_t mdfeed_get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint64_t mdfeed_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}
static inline void mdfeed_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void mdfeed_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* The append rule of mdfeed_mold_builder_append(), inline, for senders' hot paths (the
 * gateway's packetizer): true when the message was appended, with exactly the bytes
 * mdfeed_mold_builder_append() writes; false when that function would return anything but 0
 * (no packet open, too big, full, sequence overflow) -- nothing is written then, and the
 * caller takes mdfeed_mold_builder_append() for the error code. Both share these lines, so
 * the fast path cannot drift from the protocol (tests/unit/test_moldudp64.c compares them). */
static inline bool mdfeed_mold_builder_try_append(mdfeed_mold_builder_t *b, const void *msg,
                                                  size_t len)
{
    /* An open packet has len >= the header, so fitting the budget also bounds len below
     * what MDFEED_ETOOBIG refuses; len == 0 means no packet is open. */
    if (b->len == 0 || b->count == MDFEED_MOLD_MAX_COUNT ||
        b->len + MDFEED_MOLD_BLOCK_HDR_LEN + len > b->budget || b->count >= UINT64_MAX - b->seq)
        return false;
    uint8_t *p = b->buf + b->len;
    mdfeed_put_be16(p, (uint16_t)len);
    if (len)
        memcpy(p + MDFEED_MOLD_BLOCK_HDR_LEN, msg, len);
    b->len += MDFEED_MOLD_BLOCK_HDR_LEN + len;
    b->count++;
    return true;
}

#ifdef __cplusplus
}
#endif
#endif /* MDFEED_MOLDUDP64_H */
