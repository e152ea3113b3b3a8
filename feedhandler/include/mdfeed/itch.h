/* NASDAQ TotalView-ITCH 5.0: message lengths, the common header, and a one-line printer.
 *
 * Every ITCH 5.0 message starts with: type (1 byte), stock locate (u16 BE), tracking number
 * (u16 BE), timestamp (u48 BE, nanoseconds since midnight). Lengths below include the type
 * byte. Prices are u32 with 4 implied decimals (Price(4)). */
#ifndef MDFEED_ITCH_H
#define MDFEED_ITCH_H

#include "mdfeed/mdfeed.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MDFEED_ITCH_HEADER_LEN 11
/* Longest message (NOII, type byte included) and a line buffer mdfeed_itch_format() never outgrows.
 */
#define MDFEED_ITCH_MAX_MSG_LEN 50
#define MDFEED_ITCH_LINE_MAX    256

typedef struct {
    char type;
    uint16_t stock_locate;
    uint16_t tracking_number;
    uint64_t timestamp_ns; /* nanoseconds since midnight (48 bits on the wire) */
} mdfeed_itch_header_t;

/* Returns the length (type byte included) of a message of `type`, or
 * MDFEED_EITCH_UNKNOWN_TYPE. */
MDFEED_EXTERN int mdfeed_itch_msg_len(char type);

/* Returns the message type's name ("Add Order", "Order Executed", ...) or NULL if unknown. */
MDFEED_EXTERN const char *mdfeed_itch_type_name(char type);

/* Validates type and length and decodes the common header. Returns 0,
 * MDFEED_EITCH_UNKNOWN_TYPE or MDFEED_EITCH_BAD_LENGTH. Never reads past `len`. */
MDFEED_EXTERN int mdfeed_itch_header_decode(const void *msg, size_t len, mdfeed_itch_header_t *out);

/* Renders one message as one human line (no newline): type name, time of day
 * (HH:MM:SS.nnnnnnnnn) and the key fields as `key=value` (stock, side, shares, price with 4
 * decimals, order reference and match numbers), e.g.
 *   "Add Order 09:30:00.000000123 stock=AAPL side=B shares=100 price=187.2500 ref=42"
 * Non-printable bytes in text fields are shown as '?'. Returns the length written (NUL not
 * counted), or MDFEED_EITCH_UNKNOWN_TYPE / MDFEED_EITCH_BAD_LENGTH / MDFEED_EITCH_NOSPACE (`out`
 * then holds a truncated NUL-terminated line when cap > 0). 256 bytes always suffice. */
MDFEED_EXTERN int mdfeed_itch_format(const void *msg, size_t len, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* MDFEED_ITCH_H */
