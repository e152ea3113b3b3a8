/* libmdfeed: the mdcast consumer library and the wire codecs it shares with the gateway.
 *
 * This is the library's root header: the export macro, the version, and the error table.
 * The wire formats have one header each (moldudp64.h, soupbintcp.h, itch.h); the subscriber
 * and publisher client APIs are declared below.
 *
 * Conventions (libuv, liburing): functions return 0, a count, or a negative error code.
 * Negative errno values (-EINVAL, -ENOMEM, ...) are system errors; codes from MDFEED_E_BASE
 * down are the library's own. mdfeed_strerror() names either. The library never logs. */
#ifndef MDFEED_MDFEED_H
#define MDFEED_MDFEED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MDFEED_EXTERN __attribute__((visibility("default")))
#else
#define MDFEED_EXTERN
#endif

#define MDFEED_VERSION_MAJOR 0
#define MDFEED_VERSION_MINOR 1
#define MDFEED_VERSION_PATCH 0
#define MDFEED_VERSION_HEX                                                                         \
    ((MDFEED_VERSION_MAJOR << 16) | (MDFEED_VERSION_MINOR << 8) | MDFEED_VERSION_PATCH)

/* Library error codes: all below -4095, so they never collide with -errno. */
#define MDFEED_E_BASE (-10000)
/* Codes of the wire codecs (moldudp64.h, soupbintcp.h, itch.h): -10000 .. -10099. */
#define MDFEED_CODEC_ERRNO_MAP(X)                                                                  \
    X(AGAIN, -10000, "try again: resource temporarily unavailable")                                \
    X(FULL, -10001, "packet full: message does not fit the remaining payload budget")              \
    X(TOOBIG, -10002, "message larger than an empty packet's payload budget")                      \
    X(MOLD_SHORT_HEADER, -10010, "MoldUDP64: datagram shorter than the 20-byte header")            \
    X(MOLD_BLOCK_OVERRUN, -10011, "MoldUDP64: message block runs past the end of the datagram")   \
    X(MOLD_COUNT_MISMATCH, -10012, "MoldUDP64: message count disagrees with the message blocks")  \
    X(MOLD_TRAILING, -10013, "MoldUDP64: trailing bytes after the last message block")             \
    X(MOLD_EOS_PAYLOAD, -10014, "MoldUDP64: end-of-session packet carries a payload")             \
    X(MOLD_SEQ_OVERFLOW, -10015, "MoldUDP64: sequence number + count overflows 64 bits")           \
    X(MOLD_BAD_REQUEST, -10016, "MoldUDP64: re-request is not exactly a 20-byte header")           \
    X(MOLD_BAD_SESSION, -10017, "MoldUDP64: session is not 1-10 printable ASCII characters")       \
    X(SOUP_OVERSIZE, -10030, "SoupBinTCP: frame longer than the maximum frame size")               \
    X(SOUP_EMPTY, -10031, "SoupBinTCP: zero-length frame (no packet type)")                        \
    X(SOUP_BAD_LENGTH, -10032, "SoupBinTCP: packet length wrong for its type")                     \
    X(SOUP_BAD_FIELD, -10033, "SoupBinTCP: malformed field (not ASCII, not a number, too long)")   \
    X(SOUP_BAD_TYPE, -10034, "SoupBinTCP: unknown packet type")                                    \
    X(SOUP_NOSPACE, -10035, "SoupBinTCP: output buffer too small")                                 \
    X(ITCH_UNKNOWN_TYPE, -10050, "ITCH 5.0: unknown message type")                                 \
    X(ITCH_BAD_LENGTH, -10051, "ITCH 5.0: message length wrong for its type")                      \
    X(ITCH_NOSPACE, -10052, "ITCH 5.0: output buffer too small")

/* Codes of the subscriber and the publisher client: -10100 .. -10199. */
#define MDFEED_CLIENT_ERRNO_MAP(X) X(CLOSED, -10100, "handle is closed")

#define MDFEED_ERRNO_MAP(X) MDFEED_CODEC_ERRNO_MAP(X) MDFEED_CLIENT_ERRNO_MAP(X)

typedef enum {
#define MDFEED_ERRNO_ENUM_(name, value, text) MDFEED_E##name = value,
    MDFEED_ERRNO_MAP(MDFEED_ERRNO_ENUM_)
#undef MDFEED_ERRNO_ENUM_
} mdfeed_errno_t;

/* Returns a static, human-readable description of `err` (a library code or a negative
 * errno). Never NULL; unknown codes give "unknown error". Thread-safe. */
MDFEED_EXTERN const char *mdfeed_strerror(int err);

/* Returns the symbolic name of `err` ("MDFEED_EMOLD_SHORT_HEADER", "EINVAL", ...). */
MDFEED_EXTERN const char *mdfeed_err_name(int err);

/* Returns MDFEED_VERSION_HEX of the library actually linked. */
MDFEED_EXTERN unsigned mdfeed_version(void);

#ifdef __cplusplus
}
#endif
#endif /* MDFEED_MDFEED_H */
