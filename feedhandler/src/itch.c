/* NASDAQ TotalView-ITCH 5.0: the type -> length table, the common header and the one-line
 * printer (see itch.h). Layouts follow the TotalView-ITCH 5.0 specification; every offset
 * below is from the start of the message (offset 0 = the type byte). */
#include "mdfeed/itch.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* One row per ITCH 5.0 message type; `len` includes the type byte. */
typedef struct {
    char type;
    uint8_t len;
    const char *name;
} itch_type_t;

static const itch_type_t itch_types[] = {
    {'S', 12, "System Event"},
    {'R', 39, "Stock Directory"},
    {'H', 25, "Stock Trading Action"},
    {'Y', 20, "Reg SHO Restriction"},
    {'L', 26, "Market Participant Position"},
    {'V', 35, "MWCB Decline Level"},
    {'W', 12, "MWCB Status"},
    {'K', 28, "IPO Quoting Period Update"},
    {'J', 35, "LULD Auction Collar"},
    {'h', 21, "Operational Halt"},
    {'A', 36, "Add Order"},
    {'F', 40, "Add Order MPID"},
    {'E', 31, "Order Executed"},
    {'C', 36, "Order Executed With Price"},
    {'X', 23, "Order Cancel"},
    {'D', 19, "Order Delete"},
    {'U', 35, "Order Replace"},
    {'P', 44, "Trade"},
    {'Q', 40, "Cross Trade"},
    {'B', 19, "Broken Trade"},
    {'I', 50, "NOII"},
    {'N', 20, "Retail Price Improvement"},
    {'O', 48, "DLCR Price Discovery"},
};

static const itch_type_t *type_find(char type)
{
    for (size_t i = 0; i < sizeof(itch_types) / sizeof(itch_types[0]); i++)
        if (itch_types[i].type == type)
            return &itch_types[i];
    return NULL;
}

int mdfeed_itch_msg_len(char type)
{
    const itch_type_t *t = type_find(type);
    return t ? t->len : MDFEED_EITCH_UNKNOWN_TYPE;
}

const char *mdfeed_itch_type_name(char type)
{
    const itch_type_t *t = type_find(type);
    return t ? t->name : NULL;
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t be_n(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t be64(const uint8_t *p)
{
    return be_n(p, 8);
}

int mdfeed_itch_header_decode(const void *msg, size_t len, mdfeed_itch_header_t *out)
{
    const uint8_t *p = msg;
    if (len == 0)
        return MDFEED_EITCH_BAD_LENGTH;
    const itch_type_t *t = type_find((char)p[0]);
    if (!t)
        return MDFEED_EITCH_UNKNOWN_TYPE;
    if (len != t->len)
        return MDFEED_EITCH_BAD_LENGTH;
    out->type = (char)p[0];
    out->stock_locate = be16(p + 1);
    out->tracking_number = be16(p + 3);
    out->timestamp_ns = be_n(p + 5, 6);
    return 0;
}

/* A bounded line writer: keeps appending after the buffer is full only to note truncation. */
typedef struct {
    char *out;
    size_t cap;
    size_t len;
    bool truncated;
} line_t;

__attribute__((format(printf, 2, 3))) static void put(line_t *l, const char *fmt, ...)
{
    if (l->truncated)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->out + l->len, l->cap - l->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= l->cap - l->len) {
        l->truncated = true;
        l->len = l->cap - 1; /* vsnprintf wrote a NUL-terminated prefix */
        return;
    }
    l->len += (size_t)n;
}

/* A printable rendering of one Alpha byte: the feed is untrusted, the line must stay one line. */
static char alpha(uint8_t c)
{
    return c >= 0x20 && c < 0x7f ? (char)c : '?';
}

/* Appends " key=<alpha field>" with the right padding trimmed (ITCH pads Alpha on the right). */
static void put_alpha(line_t *l, const char *key, const uint8_t *p, size_t width)
{
    char s[16];
    size_t n = width < sizeof(s) - 1 ? width : sizeof(s) - 1;
    while (n > 0 && p[n - 1] == ' ')
        n--;
    for (size_t i = 0; i < n; i++)
        s[i] = alpha(p[i]);
    s[n] = '\0';
    put(l, " %s=%s", key, s);
}

static void put_char(line_t *l, const char *key, uint8_t c)
{
    put(l, " %s=%c", key, alpha(c));
}

static void put_u64(line_t *l, const char *key, uint64_t v)
{
    put(l, " %s=%llu", key, (unsigned long long)v);
}

/* Price(4): u32 with 4 implied decimals. */
static void put_price4(line_t *l, const char *key, const uint8_t *p)
{
    uint32_t v = be32(p);
    put(l, " %s=%u.%04u", key, v / 10000u, v % 10000u);
}

/* Price(8): u64 with 8 implied decimals (MWCB levels). */
static void put_price8(line_t *l, const char *key, const uint8_t *p)
{
    uint64_t v = be64(p);
    put(l, " %s=%llu.%08llu", key, (unsigned long long)(v / 100000000u),
        (unsigned long long)(v % 100000000u));
}

/* The 48-bit timestamp counts nanoseconds since midnight; it can exceed 24 h (2^48 ns is
 * about 78 h), which the hour field then shows as is rather than wrapping. */
static void put_time(line_t *l, uint64_t ns)
{
    uint64_t s = ns / 1000000000u;
    put(l, " %02llu:%02llu:%02llu.%09llu", (unsigned long long)(s / 3600),
        (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60),
        (unsigned long long)(ns % 1000000000u));
}

static void format_system(line_t *l, const uint8_t *p)
{
    switch (p[0]) {
    case 'S':
        put_char(l, "event", p[11]);
        break;
    case 'R':
        put_alpha(l, "stock", p + 11, 8);
        put_u64(l, "locate", be16(p + 1));
        put_char(l, "market", p[19]);
        put_char(l, "status", p[20]);
        put_u64(l, "lot", be32(p + 21));
        put_char(l, "class", p[26]);
        break;
    case 'H':
        put_alpha(l, "stock", p + 11, 8);
        put_char(l, "state", p[19]);
        put_alpha(l, "reason", p + 21, 4);
        break;
    case 'Y':
        put_alpha(l, "stock", p + 11, 8);
        put_char(l, "action", p[19]);
        break;
    case 'L':
        put_alpha(l, "mpid", p + 11, 4);
        put_alpha(l, "stock", p + 15, 8);
        put_char(l, "primary", p[23]);
        put_char(l, "mode", p[24]);
        put_char(l, "state", p[25]);
        break;
    case 'V':
        put_price8(l, "level1", p + 11);
        put_price8(l, "level2", p + 19);
        put_price8(l, "level3", p + 27);
        break;
    case 'W':
        put_char(l, "breached", p[11]);
        break;
    case 'K': {
        uint32_t t = be32(p + 19); /* seconds since midnight */
        put_alpha(l, "stock", p + 11, 8);
        put(l, " release=%02u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
        put_char(l, "qualifier", p[23]);
        put_price4(l, "price", p + 24);
        break;
    }
    case 'J':
        put_alpha(l, "stock", p + 11, 8);
        put_price4(l, "ref", p + 19);
        put_price4(l, "upper", p + 23);
        put_price4(l, "lower", p + 27);
        put_u64(l, "extension", be32(p + 31));
        break;
    case 'h':
        put_alpha(l, "stock", p + 11, 8);
        put_char(l, "market", p[19]);
        put_char(l, "action", p[20]);
        break;
    default:
        break;
    }
}

static void format_order(line_t *l, const uint8_t *p)
{
    switch (p[0]) {
    case 'A':
    case 'F':
        put_alpha(l, "stock", p + 24, 8);
        put_char(l, "side", p[19]);
        put_u64(l, "shares", be32(p + 20));
        put_price4(l, "price", p + 32);
        put_u64(l, "ref", be64(p + 11));
        if (p[0] == 'F')
            put_alpha(l, "mpid", p + 36, 4);
        break;
    case 'E':
    case 'C':
        put_u64(l, "ref", be64(p + 11));
        put_u64(l, "shares", be32(p + 19));
        put_u64(l, "match", be64(p + 23));
        if (p[0] == 'C') {
            put_char(l, "printable", p[31]);
            put_price4(l, "price", p + 32);
        }
        break;
    case 'X':
        put_u64(l, "ref", be64(p + 11));
        put_u64(l, "shares", be32(p + 19));
        break;
    case 'D':
        put_u64(l, "ref", be64(p + 11));
        break;
    case 'U':
        put_u64(l, "ref", be64(p + 11));
        put_u64(l, "new_ref", be64(p + 19));
        put_u64(l, "shares", be32(p + 27));
        put_price4(l, "price", p + 31);
        break;
    default:
        break;
    }
}

static void format_trade(line_t *l, const uint8_t *p)
{
    switch (p[0]) {
    case 'P':
        put_alpha(l, "stock", p + 24, 8);
        put_char(l, "side", p[19]);
        put_u64(l, "shares", be32(p + 20));
        put_price4(l, "price", p + 32);
        put_u64(l, "ref", be64(p + 11));
        put_u64(l, "match", be64(p + 36));
        break;
    case 'Q':
        put_alpha(l, "stock", p + 19, 8);
        put_u64(l, "shares", be64(p + 11));
        put_price4(l, "price", p + 27);
        put_u64(l, "match", be64(p + 31));
        put_char(l, "cross", p[39]);
        break;
    case 'B':
        put_u64(l, "match", be64(p + 11));
        break;
    case 'I':
        put_alpha(l, "stock", p + 28, 8);
        put_u64(l, "paired", be64(p + 11));
        put_u64(l, "imbalance", be64(p + 19));
        put_char(l, "dir", p[27]);
        put_price4(l, "far", p + 36);
        put_price4(l, "near", p + 40);
        put_price4(l, "ref", p + 44);
        put_char(l, "cross", p[48]);
        put_char(l, "variation", p[49]);
        break;
    case 'N':
        put_alpha(l, "stock", p + 11, 8);
        put_char(l, "interest", p[19]);
        break;
    case 'O':
        put_alpha(l, "stock", p + 11, 8);
        put_char(l, "open", p[19]);
        put_price4(l, "min", p + 20);
        put_price4(l, "max", p + 24);
        put_price4(l, "near", p + 28);
        put_u64(l, "near_time", be64(p + 32));
        put_price4(l, "lower", p + 40);
        put_price4(l, "upper", p + 44);
        break;
    default:
        break;
    }
}

int mdfeed_itch_format(const void *msg, size_t len, char *out, size_t cap)
{
    mdfeed_itch_header_t h;
    int rc = mdfeed_itch_header_decode(msg, len, &h);
    if (cap > 0)
        out[0] = '\0';
    if (rc)
        return rc;
    if (cap == 0)
        return MDFEED_EITCH_NOSPACE;

    line_t l = {out, cap, 0, false};
    const uint8_t *p = msg;
    put(&l, "%s", mdfeed_itch_type_name(h.type));
    put_time(&l, h.timestamp_ns);
    format_system(&l, p);
    format_order(&l, p);
    format_trade(&l, p);
    return l.truncated ? MDFEED_EITCH_NOSPACE : (int)l.len;
}
