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

#include <stdbool.h>
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
#define MDFEED_CLIENT_ERRNO_MAP(X)                                                                 \
    X(CLOSED, -10100, "handle is closed")                                                          \
    X(BAD_ADDRESS, -10101, "address is not IPV4:PORT (or HOST:PORT for a publisher)")              \
    X(NOT_MULTICAST, -10102, "group address is not an IPv4 multicast address")                     \
    X(NO_INTERFACE, -10103, "interface: no such interface name or local IPv4 address")             \
    X(BAD_CONFIG, -10104, "invalid configuration value")                                           \
    X(REJECTED_AUTH, -10110, "SoupBinTCP login rejected: not authorized (user or password)")       \
    X(REJECTED_SESSION, -10111, "SoupBinTCP login rejected: session not available")                \
    X(PROTOCOL, -10112, "SoupBinTCP: peer broke the protocol (bad frame or unexpected packet)")    \
    X(PEER_TIMEOUT, -10113, "peer silent past the heartbeat timeout")                              \
    X(GAVE_UP, -10114, "reconnect attempts exhausted")                                             \
    X(ENDED, -10115, "session ended (end of session received or logged out)")                      \
    X(TIMEDOUT, -10116, "operation timed out")                                                     \
    X(NO_ACK, -10117, "acknowledgements off, or the server never acknowledged a message")

#define MDFEED_ERRNO_MAP(X) MDFEED_CODEC_ERRNO_MAP(X) MDFEED_CLIENT_ERRNO_MAP(X)

typedef enum {
#define MDFEED_ERRNO_ENUM_(name, value, text) MDFEED_E##name = value,
    MDFEED_ERRNO_MAP(MDFEED_ERRNO_ENUM_)
#undef MDFEED_ERRNO_ENUM_
} mdfeed_errno_t;

/* Returns a static, human-readable description of `err` (a library code or a negative
 * errno). Never NULL; unknown codes give "unknown error". Thread-safe. */
MDFEED_EXTERN const char *mdfeed_strerror(int err);

/* Returns the static symbolic name of `err` ("MDFEED_EMOLD_SHORT_HEADER", "EINVAL", "OK"
 * for 0; "EUNKNOWN" / "UNKNOWN" for codes it does not know). Never NULL; thread-safe. */
MDFEED_EXTERN const char *mdfeed_err_name(int err);

/* Returns MDFEED_VERSION_HEX of the library actually linked. */
MDFEED_EXTERN unsigned mdfeed_version(void);

/* ---------------------------------------------------------------------------------------------
 * Addresses
 * ------------------------------------------------------------------------------------------- */

/* Parses "A.B.C.D:PORT" into `*addr` and `*port` (host byte order). Returns 0 or
 * MDFEED_EBAD_ADDRESS. Never resolves names, never blocks. */
MDFEED_EXTERN int mdfeed_addr_parse(const char *str, uint32_t *addr, uint16_t *port);

/* ---------------------------------------------------------------------------------------------
 * Subscriber: join line A (and B), receive MoldUDP64 in batches, arbitrate, recover gaps,
 * deliver in order.
 *
 * Threading: a subscriber belongs to one thread at a time; no call is thread-safe against
 * another on the same handle. Callbacks run inside mdfeed_sub_dispatch()/mdfeed_sub_run().
 * ------------------------------------------------------------------------------------------- */

typedef struct mdfeed_sub mdfeed_sub_t;

/* Why messages were declared lost (mdfeed_sub_callbacks_t.on_loss). */
typedef enum {
    MDFEED_LOSS_NO_SERVER = 1, /* gap timed out and no retransmission server is configured */
    MDFEED_LOSS_RETRIES = 2,   /* re-requests retried with backoff and never answered */
    MDFEED_LOSS_HOLD_FULL = 3, /* no server, and holding more would pass max_held */
    /* The channel moved to a new MoldUDP64 session (on_session) while these messages of the
     * old one were still missing: the old session's numbers can no longer be asked for. */
    MDFEED_LOSS_SESSION_CHANGE = 4,
} mdfeed_loss_reason_t;

/* Returns a static name for a loss reason ("no-server", "retries-exhausted", "hold-full",
 * "session-change"). */
MDFEED_EXTERN const char *mdfeed_loss_reason_str(mdfeed_loss_reason_t reason);

/* Where a message or packet came from. */
enum { MDFEED_LINE_A = 0, MDFEED_LINE_B = 1, MDFEED_LINE_RETRANSMIT = 2 };

/* Warning codes (mdfeed_sub_callbacks_t.on_warning). */
enum {
    MDFEED_WARN_IGMP_VERSION = 1, /* force_igmp_version of the interface is not 2 (TGW needs v2) */
    MDFEED_WARN_RCVBUF = 2,       /* the kernel granted a smaller receive buffer than asked */
    MDFEED_WARN_OVERFLOW = 3,     /* a message beyond the hold window was dropped (re-requested) */
    /* Two sessions on one group: a new session appeared while the current one kept speaking
     * (two live gateways on one group, or a misconfiguration); the new one is ignored. */
    MDFEED_WARN_TWO_SESSIONS = 4,
};

/* Why the subscriber moved to a new session (mdfeed_sub_callbacks_t.on_session). */
enum {
    MDFEED_SESSION_AFTER_END = 1,  /* the current session had sent end of session */
    MDFEED_SESSION_OLD_SILENT = 2, /* the current session fell silent (gateway restarted) */
};

/* How the subscriber treats datagrams of another session (mdfeed_sub_config_t.session_mode).
 *
 * FOLLOW: a channel's gateway that restarts without a journal starts a new session name at
 * sequence 1, and the subscriber follows it: a new session seen after end of session of the
 * current one is adopted at once; a new session seen while the current one is still live is
 * put on probation (its datagrams buffered, at most 4096 datagrams / 4 MiB) and adopted only
 * if the current session then sends nothing at all (no data, heartbeat or answer) for
 * session_silence_ms after the new one appeared. If the current session speaks during the
 * probation, the new one is rejected (its datagrams counted in wrong_session,
 * MDFEED_WARN_TWO_SESSIONS once per rejected name) and is put on probation again only by its
 * next datagram. On a switch, whatever is still missing in the old session is declared lost
 * (MDFEED_LOSS_SESSION_CHANGE), held messages of the old session are delivered first, and the
 * new session's numbering starts at 1: a gap before its first datagram is recovered (or
 * declared lost) like any other gap.
 *
 * STRICT: the behaviour before session following: adopt one session (the configured one, or
 * the first seen), count every other as wrong_session, stop at its end of session.
 *
 * AUTO (0, the default): FOLLOW, except STRICT when `session` is configured: a consumer that
 * names the session it wants does not want another one. */
typedef enum {
    MDFEED_SESSION_AUTO = 0,
    MDFEED_SESSION_FOLLOW = 1,
    MDFEED_SESSION_STRICT = 2,
} mdfeed_session_mode_t;

/* One delivered message. `data` points into a receive or hold buffer owned by the
 * subscriber: it is valid only during the callback (copy it to keep it). */
typedef struct {
    uint64_t seq;        /* MoldUDP64 sequence number */
    const uint8_t *data; /* message bytes */
    uint16_t len;
    uint8_t line;   /* MDFEED_LINE_A, _B or _RETRANSMIT: which copy won */
    uint64_t rx_ns; /* kernel receive time (SO_TIMESTAMPNS, CLOCK_REALTIME ns); 0 if none */
} mdfeed_msg_t;

/* Callbacks; any may be NULL. `data` is mdfeed_sub_callbacks_t.data. Callbacks may call
 * mdfeed_sub_stop() and mdfeed_sub_stats() but must not free the subscriber. */
typedef struct {
    void *data;
    /* Every message exactly once, in sequence order, with no gaps except declared losses. */
    void (*on_message)(void *data, const mdfeed_msg_t *msg);
    /* A range [first, first+count) still missing after the gap timeout (neither line filled
     * it); recovery starts (re-requests) or, without a server, loss is declared at once. */
    void (*on_gap)(void *data, uint64_t first, uint64_t count);
    /* A re-requested range [first, first+count) arrived completely. */
    void (*on_recovered)(void *data, uint64_t first, uint64_t count);
    /* Messages [first, first+count) will never be delivered; delivery resumes after them.
     * Called in sequence order, interleaved with on_message. */
    void (*on_loss)(void *data, uint64_t first, uint64_t count, mdfeed_loss_reason_t reason);
    /* A MoldUDP64 heartbeat: `next_seq` is the server's next sequence number. */
    void (*on_heartbeat)(void *data, uint64_t next_seq, int line);
    /* End of session: every message before `next_seq` has been delivered or declared lost.
     * Called once per session; the subscriber then ignores further packets of that session
     * (and, in STRICT mode, of any other). */
    void (*on_end)(void *data, uint64_t next_seq);
    /* Something the operator should know (MDFEED_WARN_*); `text` is valid during the call. */
    void (*on_warning)(void *data, int code, const char *text);
    /* The channel moved from session `old_session` to `new_session` (NUL-terminated, trailing
     * blanks trimmed, valid during the call); `reason` is MDFEED_SESSION_AFTER_END or
     * MDFEED_SESSION_OLD_SILENT. Called after the old session's last delivery or loss and
     * before the first message of the new one, which is numbered `first_seq` (1). */
    void (*on_session)(void *data, const char *old_session, const char *new_session,
                       uint64_t first_seq, int reason);
} mdfeed_sub_callbacks_t;

/* Subscriber configuration. Zero values pick the defaults in brackets. Strings are copied by
 * mdfeed_sub_new(); the caller keeps ownership of them. */
typedef struct {
    const char *group_a;         /* "239.x.y.z:port", required */
    const char *group_b;         /* line B "239.x.y.z:port", or NULL */
    const char *interface;       /* name ("net1") or local IPv4 address, required: never ANY */
    const char *session;         /* expected MoldUDP64 session, or NULL to adopt the first seen */
    /* Re-request servers "a.b.c.d:port", several separated by commas (at most
     * MDFEED_MAX_RETRANSMIT_SERVERS), or NULL (no recovery). Re-requests go to the current
     * server; one that leaves a request unanswered past its timeout is failed over to the
     * next (round robin, retransmit_failovers). Answers are accepted from the address of
     * any configured server (from any port: a server may answer from another socket);
     * datagrams from other addresses are counted in retransmit_ignored. */
    const char *retransmit;
    uint64_t start_seq;          /* 0 = live (start at the first packet seen); N = from N */
    uint32_t gap_timeout_ms;     /* [20] wait this long for the other line before re-requesting */
    uint32_t request_timeout_ms; /* [100] first re-request timeout; doubles per retry */
    uint32_t request_retries;    /* [4] attempts per re-request before loss is declared */
    uint32_t request_max_count;  /* [1000] most messages asked in one re-request (<= 65534) */
    uint32_t max_outstanding;    /* [8] re-requests in flight at once */
    uint32_t max_held;           /* [65536] out-of-order messages held; rounded up to 2^k */
    uint32_t recv_batch;         /* [64] datagrams per recvmmsg (1..1024) */
    uint32_t max_datagram;       /* [9000] receive buffer per datagram; longer = truncated */
    int rcvbuf;                  /* [4 MiB] SO_RCVBUF asked for each line socket */
    mdfeed_session_mode_t session_mode; /* [AUTO] see mdfeed_session_mode_t */
    uint32_t session_silence_ms; /* [1500] probation of a new session (FOLLOW); heartbeats are
                                  * 1 s by default, so a live session always speaks within it */
} mdfeed_sub_config_t;

enum { MDFEED_MAX_RETRANSMIT_SERVERS = 8 };

/* Counters, monotonically increasing from mdfeed_sub_new(). */
typedef struct {
    uint64_t packets;           /* datagrams received on all sockets */
    uint64_t bytes;             /* UDP payload bytes received */
    uint64_t messages;          /* messages delivered through on_message */
    uint64_t duplicates;        /* message copies dropped (other line, or already delivered) */
    uint64_t first_arrivals[3]; /* messages first seen on line A, B, retransmission */
    uint64_t heartbeats;
    uint64_t malformed;        /* datagrams that failed MoldUDP64 validation or were truncated */
    uint64_t wrong_session;    /* valid datagrams of another session */
    uint64_t gaps;             /* gap ranges detected (after the gap timeout) */
    uint64_t gap_messages;     /* messages in those ranges */
    uint64_t recovered;        /* messages that arrived through re-requests */
    uint64_t lost;             /* messages declared lost */
    uint64_t requests_sent;    /* re-request datagrams sent (first tries and retries) */
    uint64_t overflow_dropped; /* messages beyond the hold window dropped (then re-requested) */
    uint64_t held;             /* out-of-order messages held right now (a gauge) */
    uint64_t next_seq;         /* next sequence number to deliver (0 = not yet synchronised) */
    uint64_t session_changes;  /* sessions followed (on_session calls) */
    uint64_t retransmit_failovers; /* re-request server changes after an unanswered request */
    uint64_t retransmit_ignored;   /* datagrams on the re-request socket from other addresses */
    char session[11]; /* current session (10 characters at most), blanks trimmed; "" = none */
} mdfeed_sub_stats_t;

/* Fills `cfg` with the defaults (all zero = defaults, so this is optional). */
MDFEED_EXTERN void mdfeed_sub_config_init(mdfeed_sub_config_t *cfg);

/* Creates a subscriber: opens a socket per line (SO_REUSEADDR, bound to the group and port,
 * joined with IP_ADD_MEMBERSHIP on the interface), the re-request socket, a timerfd and an
 * epoll fd over them. Reads /proc/sys/net/ipv4/conf/<if>/force_igmp_version and calls
 * on_warning (inside this call) when it is not 2. Returns 0 and sets `*out` (free it with
 * mdfeed_sub_free()), or -errno / MDFEED_EBAD_ADDRESS / MDFEED_ENOT_MULTICAST /
 * MDFEED_ENO_INTERFACE / MDFEED_EBAD_CONFIG; nothing is left allocated on failure. Does not
 * block. `cbs` is copied. */
MDFEED_EXTERN int mdfeed_sub_new(mdfeed_sub_t **out, const mdfeed_sub_config_t *cfg,
                                 const mdfeed_sub_callbacks_t *cbs);

/* Leaves the groups, closes every fd and frees the subscriber. Safe on NULL. */
MDFEED_EXTERN void mdfeed_sub_free(mdfeed_sub_t *sub);

/* The pollable fd (an epoll fd): readable when mdfeed_sub_dispatch() has work (packets or a
 * due timer). Owned by the subscriber; do not close it. Use level-triggered readiness. */
MDFEED_EXTERN int mdfeed_sub_fd(const mdfeed_sub_t *sub);

/* Does whatever is ready without blocking: receives up to a bounded number of batches per
 * socket, runs due timers (gap timeouts, re-request retries), and calls the callbacks.
 * Returns the number of messages delivered or declared lost (>= 0), MDFEED_EENDED once the
 * session has ended (packets arriving after that are read and ignored), or -errno on a
 * socket error. */
MDFEED_EXTERN int mdfeed_sub_dispatch(mdfeed_sub_t *sub);

/* Blocks, waiting on the fd and dispatching, until the session ends (returns MDFEED_EENDED),
 * mdfeed_sub_stop() is called (returns 0), `timeout_ms` passes (returns MDFEED_ETIMEDOUT;
 * -1 = no limit), or an error occurs (returns it). */
MDFEED_EXTERN int mdfeed_sub_run(mdfeed_sub_t *sub, int timeout_ms);

/* Makes mdfeed_sub_run() return after the current dispatch. Safe inside callbacks. */
MDFEED_EXTERN void mdfeed_sub_stop(mdfeed_sub_t *sub);

/* Copies the counters into `*out`. Never blocks. */
MDFEED_EXTERN void mdfeed_sub_stats(const mdfeed_sub_t *sub, mdfeed_sub_stats_t *out);

/* ---------------------------------------------------------------------------------------------
 * Publisher client: SoupBinTCP login, heartbeats, unsequenced data to a gateway (`listen`
 * channel). Sends are non-blocking and coalesced: mdfeed_pub_send() appends a frame to an
 * output buffer that dispatch writes in as few write() calls as the socket allows.
 *
 * Acknowledged publishing (`ack`, docs/FEEDHANDLER.md "Acknowledged publishing"): plain
 * SoupBinTCP has no acknowledgement for unsequenced data, so without `ack` bytes already
 * written to a connection that then drops may be lost (bytes still buffered are sent after
 * reconnecting). With `ack` the gateway acknowledges each message it has journaled with an
 * empty Sequenced Data packet, and Login Accepted's sequence number says how many of this
 * user's messages it holds; the client keeps every message until it is acknowledged (a bounded
 * buffer: send returns MDFEED_EAGAIN when it is full) and after a reconnect resends exactly
 * the ones the gateway does not have. A gateway that sends no acknowledgement on a connection
 * within `ack_timeout_ms` of the first message written on it is taken not to acknowledge: that
 * connection falls back to the behaviour without `ack` (counted in `ack_fallbacks`).
 * ------------------------------------------------------------------------------------------- */

typedef struct mdfeed_pub mdfeed_pub_t;

typedef enum {
    MDFEED_PUB_CONNECTING = 0, /* TCP connect or login in progress (or waiting to reconnect) */
    MDFEED_PUB_READY = 1,      /* logged in: data flows */
    MDFEED_PUB_CLOSED = 2,     /* ended for good: rejected, gave up, logged out, end of session */
} mdfeed_pub_state_t;

typedef struct {
    void *data;
    /* State changes; `err` says why (0, or the error that caused a reconnect or the end). */
    void (*on_state)(void *data, mdfeed_pub_state_t state, int err);
    /* Sequenced data or debug text from the server (rare on an ingress channel). With `ack`,
     * the empty Sequenced Data packets that acknowledge messages are not passed here. */
    void (*on_server_packet)(void *data, char type, const uint8_t *payload, size_t len);
} mdfeed_pub_callbacks_t;

typedef struct {
    const char *connect;         /* "a.b.c.d:port" or "host:port" (resolved once, at new) */
    const char *username;        /* <= 6 characters */
    const char *password;        /* <= 10 characters */
    const char *session;         /* requested session, or NULL/"" for the current one */
    uint32_t heartbeat_ms;       /* [1000] client heartbeat when nothing else was sent */
    uint32_t timeout_ms;         /* [15000] server silence that breaks the connection */
    uint32_t reconnect_min_ms;   /* [100] first reconnect delay; doubles per failure */
    uint32_t reconnect_max_ms;   /* [5000] cap of the delay */
    uint32_t reconnect_attempts; /* [10] failures in a row before giving up (MDFEED_EGAVE_UP) */
    uint32_t max_buffer;         /* [4 MiB] bytes not yet written; more makes send return AGAIN */
    /* Acknowledged publishing [false: off, today's fire-and-forget behaviour]. */
    bool ack;
    uint32_t max_unacked_messages; /* [65536] messages kept until acknowledged (ack only) */
    uint32_t max_unacked_bytes;    /* [4 MiB] their frames' bytes, 3 bytes framing each */
    /* [5000] a connection on which no acknowledgement arrives this long after its first data
     * message was written falls back to unacknowledged sending; UINT32_MAX = never. */
    uint32_t ack_timeout_ms;
} mdfeed_pub_config_t;

typedef struct {
    uint64_t messages_sent; /* distinct messages written to a socket (resends not counted) */
    uint64_t bytes_sent;    /* bytes written, framing and resends included */
    uint64_t writes;        /* write() calls that wrote something (coalescing shows here) */
    uint64_t heartbeats_sent;
    uint64_t heartbeats_received;
    uint64_t connects;   /* logins accepted */
    uint64_t reconnects; /* connections lost and retried */
    uint64_t buffered;   /* bytes waiting to be written now (a gauge) */
    /* Acknowledged publishing (all 0 without `ack`). */
    uint64_t messages_acked;  /* acknowledged: by an ack, or by a Login Accepted's number */
    uint64_t messages_resent; /* written again after a reconnect (not acknowledged before) */
    uint64_t unacked;         /* gauge: queued messages not yet acknowledged (without `ack`
                                 or after a fall-back: not yet written) */
    uint64_t ack_fallbacks;   /* connections on which the gateway sent no acknowledgement */
    uint64_t session_resets;  /* logins into another session than the last: all resent */
    uint64_t acks_forgotten;  /* acknowledged messages a same-session login no longer counted
                                 (a gateway that lost an acknowledged journal tail) */
    char session[11];         /* the session of the last Login Accepted ("" before one) */
} mdfeed_pub_stats_t;

/* Creates the client and starts connecting (non-blocking). Returns 0 and sets `*out` (free
 * with mdfeed_pub_free()), or MDFEED_EBAD_ADDRESS / MDFEED_EBAD_CONFIG / -errno. Resolving a
 * host name may block (getaddrinfo); pass an address to avoid it. */
MDFEED_EXTERN int mdfeed_pub_new(mdfeed_pub_t **out, const mdfeed_pub_config_t *cfg,
                                 const mdfeed_pub_callbacks_t *cbs);

/* Closes the connection (without logout; see mdfeed_pub_close()) and frees. Safe on NULL. */
MDFEED_EXTERN void mdfeed_pub_free(mdfeed_pub_t *pub);

/* The pollable fd (epoll over the socket and a timerfd); level-triggered. Owned by `pub`. */
MDFEED_EXTERN int mdfeed_pub_fd(const mdfeed_pub_t *pub);

/* Queues one message as an unsequenced data packet. Never blocks. Returns 0;
 * MDFEED_EAGAIN when the output buffer is full, or with `ack` when max_unacked_messages or
 * max_unacked_bytes would be passed (back-pressure: dispatch, then retry; nothing is
 * dropped); MDFEED_ETOOBIG for a message over 65534 bytes; the terminal error (e.g.
 * MDFEED_EREJECTED_AUTH) once closed. */
MDFEED_EXTERN int mdfeed_pub_send(mdfeed_pub_t *pub, const void *msg, size_t len);

/* Non-blocking progress: connect, login, read server packets, write buffered data, heartbeats,
 * timeouts, reconnects. Returns 0 while the client lives, or its terminal error once
 * closed (MDFEED_EREJECTED_*, MDFEED_EGAVE_UP, MDFEED_EENDED). */
MDFEED_EXTERN int mdfeed_pub_dispatch(mdfeed_pub_t *pub);

/* Blocks (dispatching) until logged in (returns 0), closed (the terminal error) or
 * `timeout_ms` passes (MDFEED_ETIMEDOUT). */
MDFEED_EXTERN int mdfeed_pub_wait_ready(mdfeed_pub_t *pub, int timeout_ms);

/* Blocks (dispatching) until the output buffer is empty (0), closed (the terminal error) or
 * `timeout_ms` passes (MDFEED_ETIMEDOUT). */
MDFEED_EXTERN int mdfeed_pub_flush(mdfeed_pub_t *pub, int timeout_ms);

/* Blocks (dispatching) until every queued message is acknowledged -- or, without `ack` or on a
 * connection that fell back, written -- (0), closed (the terminal error) or `timeout_ms`
 * passes (MDFEED_ETIMEDOUT; stats.unacked says how many are outstanding). Call it before
 * mdfeed_pub_close() to know that the gateway holds everything. */
MDFEED_EXTERN int mdfeed_pub_wait_acked(mdfeed_pub_t *pub, int timeout_ms);

/* Flushes (bounded by `timeout_ms`), sends a logout request and waits (same bound) for the
 * server to close. Returns 0 or the first error. The handle then stays CLOSED; free it. */
MDFEED_EXTERN int mdfeed_pub_close(mdfeed_pub_t *pub, int timeout_ms);

/* Returns the client's state now (CONNECTING also while waiting to reconnect). Never blocks. */
MDFEED_EXTERN mdfeed_pub_state_t mdfeed_pub_state(const mdfeed_pub_t *pub);

/* Copies the counters into `*out`. Never blocks. */
MDFEED_EXTERN void mdfeed_pub_stats(const mdfeed_pub_t *pub, mdfeed_pub_stats_t *out);

/* ---------------------------------------------------------------------------------------------
 * Benchmark message (mdcast-pub --timestamps, mdfeed-tap --latency): 4 bytes "MDTS", u64 BE
 * send time (CLOCK_REALTIME ns), u64 BE counter, then padding up to the chosen size.
 * ------------------------------------------------------------------------------------------- */
#define MDFEED_BENCH_MAGIC   "MDTS"
#define MDFEED_BENCH_MIN_LEN 20

/* Writes a benchmark message of `len` (>= MDFEED_BENCH_MIN_LEN) bytes. Returns `len` or 0. */
MDFEED_EXTERN size_t mdfeed_bench_encode(void *buf, size_t len, uint64_t send_ns, uint64_t counter);

/* Returns 0 and the send time and counter if `msg` is a benchmark message, else -EINVAL. */
MDFEED_EXTERN int mdfeed_bench_decode(const void *msg, size_t len, uint64_t *send_ns,
                                      uint64_t *counter);

#ifdef __cplusplus
}
#endif
#endif /* MDFEED_MDFEED_H */
