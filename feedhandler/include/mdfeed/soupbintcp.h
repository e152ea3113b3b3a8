/* SoupBinTCP 3.0 (NASDAQ): the ingress wire format of mdcast.
 *
 * Every packet is a u16 big-endian length (of what follows, the type byte included), a one
 * byte packet type, and a payload. Alphanumeric fields are fixed width ASCII: usernames,
 * passwords and sessions are padded with spaces, sequence numbers are 20 ASCII digits padded
 * with spaces on the left. Parsers here accept padding on either side. */
#ifndef MDFEED_SOUPBINTCP_H
#define MDFEED_SOUPBINTCP_H

#include "mdfeed/mdfeed.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Packet types. */
#define MDFEED_SOUP_DEBUG            '+' /* both directions: free text */
#define MDFEED_SOUP_LOGIN_ACCEPTED   'A' /* server: session + next sequence number */
#define MDFEED_SOUP_LOGIN_REJECTED   'J' /* server: reason 'A' or 'S' */
#define MDFEED_SOUP_SEQUENCED_DATA   'S' /* server: one message */
#define MDFEED_SOUP_SERVER_HEARTBEAT 'H'
#define MDFEED_SOUP_END_OF_SESSION   'Z'
#define MDFEED_SOUP_LOGIN_REQUEST    'L' /* client: username, password, session, sequence */
#define MDFEED_SOUP_UNSEQUENCED_DATA 'U' /* client: one message */
#define MDFEED_SOUP_CLIENT_HEARTBEAT 'R'
#define MDFEED_SOUP_LOGOUT_REQUEST   'O'

#define MDFEED_SOUP_REJECT_NOT_AUTHORIZED    'A'
#define MDFEED_SOUP_REJECT_SESSION_NOT_AVAIL 'S'

#define MDFEED_SOUP_USERNAME_LEN 6
#define MDFEED_SOUP_PASSWORD_LEN 10
#define MDFEED_SOUP_SESSION_LEN  10
#define MDFEED_SOUP_SEQNUM_LEN   20
#define MDFEED_SOUP_LEN_PREFIX   2
/* Payload lengths (after the type byte) of the fixed-size packets. */
#define MDFEED_SOUP_LOGIN_REQUEST_PAYLOAD  46
#define MDFEED_SOUP_LOGIN_ACCEPTED_PAYLOAD 30
#define MDFEED_SOUP_LOGIN_REJECTED_PAYLOAD 1
/* The largest frame the length prefix can describe (type byte + 65534 payload bytes). */
#define MDFEED_SOUP_MAX_FRAME 65535

/* Login request fields, NUL-terminated with the padding removed. */
typedef struct {
    char username[MDFEED_SOUP_USERNAME_LEN + 1];
    char password[MDFEED_SOUP_PASSWORD_LEN + 1];
    char session[MDFEED_SOUP_SESSION_LEN + 1]; /* empty = the current session */
    uint64_t seq;                              /* 0 = start with the next live message */
} mdfeed_soup_login_t;

/* Login accepted fields. */
typedef struct {
    char session[MDFEED_SOUP_SESSION_LEN + 1];
    uint64_t seq; /* sequence number of the next sequenced message */
} mdfeed_soup_accept_t;

/* Checks a frame's type and payload length against SoupBinTCP 3.0: the ten known types; the
 * login packets at their fixed sizes; heartbeats, end of session and logout empty; data and
 * debug packets of any length up to MDFEED_SOUP_MAX_FRAME - 1. Returns 0,
 * MDFEED_ESOUP_BAD_TYPE or MDFEED_ESOUP_BAD_LENGTH. The stream parser only frames; call
 * this on what it delivers to reject a malformed packet. */
MDFEED_EXTERN int mdfeed_soup_frame_check(char type, size_t payload_len);

/* Encoders write one whole frame (length prefix included) into `buf` of `cap` bytes and return
 * its length, or MDFEED_ESOUP_NOSPACE when `cap` is too small, MDFEED_ESOUP_BAD_FIELD when
 * a string does not fit its field or is not printable ASCII, MDFEED_ESOUP_BAD_TYPE /
 * MDFEED_ESOUP_BAD_LENGTH as mdfeed_soup_frame_check() says. On error `buf` is untouched. */

/* A frame of any known type with its payload (data, heartbeats, end of session, debug,
 * logout, or a login packet already encoded). */
MDFEED_EXTERN int mdfeed_soup_encode(void *buf, size_t cap, char type, const void *payload,
                                     size_t len);
MDFEED_EXTERN int mdfeed_soup_encode_login_request(void *buf, size_t cap,
                                                   const mdfeed_soup_login_t *login);
MDFEED_EXTERN int mdfeed_soup_encode_login_accepted(void *buf, size_t cap,
                                                    const mdfeed_soup_accept_t *acc);
MDFEED_EXTERN int mdfeed_soup_encode_login_rejected(void *buf, size_t cap, char reason);

/* Decoders take the payload of one frame (what follows the type byte) and return 0 or
 * MDFEED_ESOUP_BAD_LENGTH / MDFEED_ESOUP_BAD_FIELD. */
MDFEED_EXTERN int mdfeed_soup_decode_login_request(const void *payload, size_t len,
                                                   mdfeed_soup_login_t *out);
MDFEED_EXTERN int mdfeed_soup_decode_login_accepted(const void *payload, size_t len,
                                                    mdfeed_soup_accept_t *out);
MDFEED_EXTERN int mdfeed_soup_decode_login_rejected(const void *payload, size_t len, char *reason);

/* True for the ten packet types of SoupBinTCP 3.0. */
MDFEED_EXTERN bool mdfeed_soup_type_known(char type);

/* Human name of a packet type ("login request", ...), "unknown" otherwise. */
MDFEED_EXTERN const char *mdfeed_soup_type_name(char type);

/* The framing rule every SoupBinTCP reader applies: a length prefix of 0 is
 * MDFEED_ESOUP_EMPTY, one above `max_frame` is MDFEED_ESOUP_OVERSIZE. Returns the frame's
 * total size (prefix included) or that error. Shared by the stream parser and the gateway's
 * ingress fast path, so they cannot disagree on where a frame ends. */
static inline int mdfeed_soup_frame_size(const uint8_t prefix[2], size_t max_frame)
{
    size_t flen = ((size_t)prefix[0] << 8) | prefix[1];
    if (flen == 0)
        return MDFEED_ESOUP_EMPTY;
    if (flen > max_frame)
        return MDFEED_ESOUP_OVERSIZE;
    return (int)(flen + 2);
}

/* Hot path of a reader: the size of the complete, well-framed frame at the start of the `n`
 * bytes at `p` (mdfeed_soup_frame_size() rules), or 0 when there is none -- fewer bytes than
 * a frame, or a bad prefix, which the stream parser then reports with its own code. */
static inline size_t mdfeed_soup_frame_complete(const uint8_t *p, size_t n, size_t max_frame)
{
    if (n < 3)
        return 0;
    int size = mdfeed_soup_frame_size(p, max_frame);
    return size > 0 && (size_t)size <= n ? (size_t)size : 0;
}

/* Streaming frame parser: feed it whatever a read returned; it calls back once per complete
 * frame. Frames that lie wholly inside the fed bytes are passed in place (zero-copy); only a
 * frame split across feeds is copied into the parser's buffer. */
typedef struct {
    uint8_t *buf;     /* partial frame, owned by the parser */
    size_t len;       /* bytes held in buf */
    size_t max_frame; /* largest accepted value of the length prefix */
    int error;        /* sticky: once a stream is broken it stays broken */
} mdfeed_soup_parser_t;

/* Called for each frame: `type` and the `len` bytes of payload after it. `payload` is valid
 * only during the call. A non-zero return stops the feed and is returned by it. */
typedef int (*mdfeed_soup_frame_cb)(void *data, char type, const uint8_t *payload, size_t len);

/* `max_frame` (1..MDFEED_SOUP_MAX_FRAME) bounds the length prefix: a longer frame is
 * MDFEED_ESOUP_OVERSIZE. Allocates max_frame + 2 bytes. Returns 0, -EINVAL or -ENOMEM. */
MDFEED_EXTERN int mdfeed_soup_parser_init(mdfeed_soup_parser_t *p, size_t max_frame);

/* Frees the buffer. Safe on a zeroed or already closed parser. */
MDFEED_EXTERN void mdfeed_soup_parser_close(mdfeed_soup_parser_t *p);

/* Parses `n` bytes. Returns 0 when all were consumed (a trailing partial frame is kept), the
 * callback's non-zero value, MDFEED_ESOUP_OVERSIZE / MDFEED_ESOUP_EMPTY for a broken stream,
 * or -EINVAL for a parser that was never initialised. Errors and callback stops are sticky:
 * the bytes after the stopping point are not kept, so every later feed returns the same
 * value until mdfeed_soup_parser_reset() (for a new connection). Frames before the stop
 * have been delivered. Frame types and lengths are not checked (mdfeed_soup_frame_check()).
 * Never blocks. */
MDFEED_EXTERN int mdfeed_soup_parser_feed(mdfeed_soup_parser_t *p, const void *bytes, size_t n,
                                          mdfeed_soup_frame_cb cb, void *data);

/* Forgets any partial frame and any sticky error, keeping the buffer: for reusing a parser
 * on a new connection. */
MDFEED_EXTERN void mdfeed_soup_parser_reset(mdfeed_soup_parser_t *p);

/* True when the parser holds part of a frame (a peer closing now left a frame unfinished). */
MDFEED_EXTERN bool mdfeed_soup_parser_partial(const mdfeed_soup_parser_t *p);

#ifdef __cplusplus
}
#endif
#endif /* MDFEED_SOUPBINTCP_H */
