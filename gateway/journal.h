/* Journal stage: every sequenced message of a channel is appended to CRC32C-checked segment
 * files on disk by a writer thread, so a restarted gateway recovers its session, its next
 * sequence number and, per publisher, how many of its messages it holds, and serves
 * re-requests that the memory ring no longer can. docs/JOURNAL.md describes the file format,
 * the fsync policies and the recovery rules.
 *
 * Threads: every function below is called from the loop thread (the one running the
 * uv_loop_t given to gw_journal_open()), except gw_journal_verify(), gw_journal_scan_buffer()
 * and the CRC and config functions, which touch no journal. The callbacks run on the loop
 * thread. */
#ifndef GW_JOURNAL_H
#define GW_JOURNAL_H

#include "mdfeed/moldudp64.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

struct cJSON;

#define GW_JOURNAL_DIR_LEN      1024
#define GW_JOURNAL_CHANNEL_LEN  32 /* channel name, NUL included (the config's GW_NAME_LEN) */
#define GW_JOURNAL_USER_LEN     6  /* SoupBinTCP username, space-padded */
#define GW_JOURNAL_MAX_MSG      65535
#define GW_JOURNAL_HEADER_LEN   72 /* segment header */
#define GW_JOURNAL_RECORD_HDR   32 /* record header before the message bytes */
#define GW_JOURNAL_VERSION      1
#define GW_JOURNAL_MAX_CHANNELS 32

/* ---- CRC32C (Castagnoli), as in iSCSI and ext4: CRC32C("123456789") == 0xE3069283.
 * `crc` is the value returned by a previous call (0 to start), so calls chain over pieces. */
uint32_t gw_crc32c(uint32_t crc, const void *p, size_t n);    /* best available */
uint32_t gw_crc32c_sw(uint32_t crc, const void *p, size_t n); /* portable tables */
/* SSE4.2 crc32 instruction; falls back to the tables where the CPU lacks it. */
uint32_t gw_crc32c_hw(uint32_t crc, const void *p, size_t n);
bool gw_crc32c_hw_available(void);

/* ---- Config: the object of config key `journal`. */
typedef enum {
    GW_JOURNAL_FSYNC_NEVER = 0,    /* write() only: survives a process kill, not a crash */
    GW_JOURNAL_FSYNC_INTERVAL = 1, /* fdatasync at most every fsync_interval_ms */
    GW_JOURNAL_FSYNC_BATCH = 2,    /* fdatasync after every batch (group commit) */
} gw_journal_fsync_t;

typedef struct gw_journal_config {
    char dir[GW_JOURNAL_DIR_LEN];
    uint64_t segment_bytes; /* a segment rolls before it would pass this size */
    uint64_t retain_bytes;  /* per channel; 0 = keep everything */
    gw_journal_fsync_t fsync;
    uint32_t fsync_interval_ms;
    bool truncate_corrupt; /* cut the journal at mid-file corruption instead of failing */
    /* Not JSON keys (the lead sizes them from the ingress limits): memory held for the
     * writer. Above backlog_high_bytes gw_journal_throttled() is true and the caller must
     * pause ingress; it turns false again below half of it. Past backlog_max_bytes an append
     * is refused with -ENOBUFS. */
    uint64_t backlog_high_bytes;
    uint64_t backlog_max_bytes;
    uint32_t close_timeout_ms; /* gw_journal_close() waits at most this long for the disk */
} gw_journal_config_t;

/* Fills the defaults: segment 64 MiB, retain 0 (all), fsync batch, interval 10 ms, high
 * 32 MiB, max 128 MiB, close timeout 5 s; dir empty. */
void gw_journal_config_default(gw_journal_config_t *cfg);
/* Validates `obj` (the value of config key `path`, normally "journal") and fills `out` over
 * the defaults. Keys: dir (string, required), segment_bytes, retain_bytes, fsync ("never" |
 * "interval" | "batch"), fsync_interval_ms (only with "interval"), truncate_corrupt. Returns 0,
 * or -1 with "journal.key: reason" in err. */
int gw_journal_config_parse(const struct cJSON *obj, const char *path, gw_journal_config_t *out,
                            char *err, size_t errlen);

/* ---- The journal. */
typedef struct gw_journal gw_journal_t;

/* Who published a message: the SoupBinTCP username (space-padded, as on the wire) and that
 * user's own message number (1 for its first message of the session). */
typedef struct {
    char user[GW_JOURNAL_USER_LEN];
    uint64_t user_seq;
} gw_journal_origin_t;

/* Fills `o` from a NUL-terminated username of at most 6 characters (longer ones are cut). */
void gw_journal_origin_make(gw_journal_origin_t *o, const char *username, uint64_t user_seq);

typedef struct {
    const char *name; /* sub-directory DIR/<name>/: 1-31 of [A-Za-z0-9._-], not "." or ".." */
    char session[MDFEED_MOLD_SESSION_LEN]; /* space-padded; used only when nothing is on disk */
    uint64_t first_seq;                    /* idem, normally 1 */
} gw_journal_channel_t;

/* written_seq: every message up to it was handed to the kernel (survives a process kill).
 * durable_seq: up to it the fsync policy was applied (== written_seq for "never"). Both are in
 * the channel's current session (the last gw_journal_begin_session()); reports that belong to
 * an earlier session are not delivered. */
typedef void (*gw_journal_progress_cb)(void *data, int ch, uint64_t written_seq,
                                       uint64_t durable_seq);
/* err < 0: writes started failing with -errno (ENOSPC, EIO ...), the data is kept and retried;
 * err == 0: writes succeed again. Called once per change, not per retry. */
typedef void (*gw_journal_error_cb)(void *data, int err);

typedef struct {
    gw_journal_progress_cb on_progress; /* may be NULL */
    gw_journal_error_cb on_error;       /* may be NULL */
    void *data;
} gw_journal_callbacks_t;

/* Opens (creating when needed) DIR/<channel>/ for each channel, recovers each as
 * docs/JOURNAL.md says (every CRC checked; a torn tail is truncated and logged), takes an
 * exclusive lock on DIR/.lock and starts the writer thread. `loop` may be NULL: the caller then
 * calls gw_journal_poll() for the callbacks. Blocks on disk (it runs before the loop does).
 * Returns 0; -EBADMSG for corruption that recovery must not cut (the caller exits 2; the
 * message in err names the file and offset); -EBUSY when another process holds the journal;
 * -EINVAL for a bad argument; other -errno. */
int gw_journal_open(gw_journal_t **out, const gw_journal_config_t *cfg, uv_loop_t *loop,
                    const gw_journal_channel_t *channels, int nchannels,
                    const gw_journal_callbacks_t *cb, char *err, size_t errlen);

/* Recovered (or, after gw_journal_begin_session(), current) session of channel `ch` (10 bytes,
 * space-padded) and the next sequence number it expects. Returns 0 or -EINVAL. */
int gw_journal_session(const gw_journal_t *j, int ch, char session[MDFEED_MOLD_SESSION_LEN],
                       uint64_t *next_seq);
/* Origin table of the current session as recovered at open: the highest user_seq found per
 * username. gw_journal_origin_get() takes a username of up to 6 characters; returns 0 or
 * -ENOENT. gw_journal_origin_count()/_at() enumerate the table. */
int gw_journal_origin_get(const gw_journal_t *j, int ch, const char *username, uint64_t *user_seq);
int gw_journal_origin_count(const gw_journal_t *j, int ch);
int gw_journal_origin_at(const gw_journal_t *j, int ch, int i, gw_journal_origin_t *out);

/* Copies one message into the in-memory batch; no disk, no syscall (a 1 MiB chunk comes from
 * a pool; only when the pool of 8 is empty is one malloc()ed). `seq` must be the channel's
 * next sequence number; origin may be NULL (connect mode: no publisher). Returns 0; 1 when
 * accepted but the backlog is above the high-water mark (pause ingress until
 * gw_journal_throttled() turns false, checked in on_progress); -ENOBUFS refused (past the hard
 * cap: the caller ignored the throttle); -EINVAL bad channel or out-of-order seq; -E2BIG message
 * longer than GW_JOURNAL_MAX_MSG. */
int gw_journal_append(gw_journal_t *j, int ch, uint64_t seq, const void *msg, size_t len,
                      const gw_journal_origin_t *origin);
/* Hands everything appended since the last commit to the writer thread (one mutex and a
 * wake-up). Call once per loop iteration. */
void gw_journal_commit(gw_journal_t *j);
/* Starts a new segment holding session `session` from `first_seq` on, in order with the
 * appends (the writer first makes the old session durable per policy). Clears the recovered
 * origin table. Returns 0, 1 (throttled, as append), -ENOBUFS or -EINVAL. */
int gw_journal_begin_session(gw_journal_t *j, int ch, const char session[MDFEED_MOLD_SESSION_LEN],
                             uint64_t first_seq);

uint64_t gw_journal_written_seq(const gw_journal_t *j, int ch);
uint64_t gw_journal_durable_seq(const gw_journal_t *j, int ch);
/* Bytes appended and not yet released by the writer (all channels). */
uint64_t gw_journal_backlog_bytes(const gw_journal_t *j);
bool gw_journal_throttled(const gw_journal_t *j);
/* Delivers pending progress and error callbacks now (the uv_async_t callback does this). */
void gw_journal_poll(gw_journal_t *j);

/* Called per message by gw_journal_read(); a non-zero return stops the read. `msg` is valid
 * only during the call. */
typedef int (*gw_journal_read_cb)(void *data, uint64_t seq, const uint8_t *msg, size_t len);
/* Reads messages seq, seq+1 ... of the channel's current session from disk, stopping at
 * max_count messages, at max_bytes of message bytes (at least one message is delivered), or at
 * the written watermark. Synchronous, on the calling (loop) thread: one open() per segment
 * touched and preads of up to 256 KiB; it reads at most 64 KiB before `seq` (the sparse index
 * holds a record start every 64 KiB) plus max_bytes + 32 * max_count after it, rounded up to
 * one more 256 KiB read per segment. From the page cache that is tens of microseconds; the
 * caller bounds max_count/max_bytes per re-request (retransmit_max_messages). Returns the
 * number delivered, -ENOENT when seq is not held (retained away, or not yet written), -EIO
 * when the file no longer matches its CRCs. */
int gw_journal_read(gw_journal_t *j, int ch, uint64_t seq, uint32_t max_count, size_t max_bytes,
                    gw_journal_read_cb cb, void *data);

typedef struct {
    uint64_t records_appended;
    uint64_t records_written;
    uint64_t bytes_written; /* file bytes, headers included */
    uint64_t fsyncs;
    uint64_t fsync_ns_total;
    uint64_t fsync_ns_max;
    uint64_t write_errors; /* failed write/fsync calls (each retry counts) */
    int last_errno;        /* of the last failure, 0 if none yet */
    bool failing;          /* writes are failing now (disk full, EIO): readiness false */
    uint64_t backlog_bytes;
    uint64_t segments; /* segment files now, all channels */
    uint64_t segments_created;
    uint64_t segments_deleted; /* by retention */
    uint64_t recovery_ns;      /* time gw_journal_open() spent recovering */
    uint64_t recovered_records;
    uint64_t truncated_bytes; /* cut by recovery (torn tails, truncate_corrupt) */
} gw_journal_stats_t;

void gw_journal_stats_get(const gw_journal_t *j, gw_journal_stats_t *out);

/* Commits what was appended, waits up to close_timeout_ms for the writer to write it (and
 * fsync it per policy), joins the writer, delivers the last callbacks and releases
 * everything. With a loop, the uv_async_t is closed and the memory freed by its close
 * callback: run the loop once more (as for any libuv handle). Returns 0, or -ETIMEDOUT when
 * data was still unwritten at the deadline (it is logged with the count lost). */
int gw_journal_close(gw_journal_t *j);

/* ---- The record reader, shared by recovery, gw_journal_read(), verify and the fuzz target. */
typedef struct {
    uint32_t version;
    uint64_t first_seq;
    char session[MDFEED_MOLD_SESSION_LEN];
    char channel[GW_JOURNAL_CHANNEL_LEN]; /* NUL-terminated */
} gw_journal_header_t;

typedef struct {
    uint64_t seq;
    gw_journal_origin_t origin;
    const uint8_t *msg; /* points into the scanned buffer */
    uint32_t len;
    uint64_t off; /* offset of the record in the buffer */
} gw_journal_record_t;

typedef enum {
    GW_JOURNAL_SCAN_OK = 0,
    GW_JOURNAL_SCAN_BAD_HEADER, /* short, wrong magic/version or header CRC */
    GW_JOURNAL_SCAN_SHORT,      /* a record cut short by the end of the buffer */
    GW_JOURNAL_SCAN_BAD_LEN,    /* length field beyond GW_JOURNAL_MAX_MSG or reserved bits */
    GW_JOURNAL_SCAN_BAD_CRC,
    GW_JOURNAL_SCAN_BAD_SEQ, /* valid record, but not the next sequence number */
    GW_JOURNAL_SCAN_STOPPED, /* the callback asked to stop */
} gw_journal_scan_status_t;

typedef struct {
    gw_journal_header_t hdr;
    gw_journal_scan_status_t status;
    uint64_t records;  /* good records */
    uint64_t last_seq; /* of the last good record (first_seq - 1 when none) */
    uint64_t good_end; /* offset just past the last good record (header end when none) */
    /* When status is not OK: the bad bytes run to the end of the buffer (a cut record, a bad
     * CRC on the very last record, or zeros up to the end), i.e. a torn tail. */
    bool torn;
} gw_journal_scan_t;

/* Called per good record; non-zero stops the scan (status STOPPED). */
typedef int (*gw_journal_record_cb)(void *data, const gw_journal_record_t *r);
/* Scans a whole segment image in memory: the header, then records with consecutive sequence
 * numbers from the header's first_seq. Never reads outside [buf, buf + len). */
void gw_journal_scan_buffer(const uint8_t *buf, size_t len, gw_journal_scan_t *out,
                            gw_journal_record_cb cb, void *data);
const char *gw_journal_scan_strerror(gw_journal_scan_status_t s);
/* Encoders used by the writer and the tests: return the bytes written into `out`. */
size_t gw_journal_encode_header(uint8_t out[GW_JOURNAL_HEADER_LEN], const char *channel,
                                const char session[MDFEED_MOLD_SESSION_LEN], uint64_t first_seq);
size_t gw_journal_encode_record(uint8_t *out, uint64_t seq, const gw_journal_origin_t *origin,
                                const void *msg, uint32_t len);

/* Verifies a journal directory without changing it: per channel and segment a summary line
 * (records, first/last seq, session, bad records with offsets) and with `dump` one line per
 * record (seq, user, user seq, len, hex prefix). Returns 0 all good, 1 only a torn tail (what
 * recovery would cut), 2 corruption or an unreadable journal. */
int gw_journal_verify(const char *dir, bool dump, FILE *out);

#endif /* GW_JOURNAL_H */
