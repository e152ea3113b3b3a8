/* Journal stage (issue 11, point 1): every sequenced message is appended to CRC32C-checked
 * segment files by a writer thread; recovery at open finds the session, the next sequence
 * number and the publishers' origin table; re-requests beyond the memory ring are read back
 * from disk. docs/JOURNAL.md has the format, the fsync policies and the recovery rules.
 *
 * Threads. The loop thread appends records into per-channel chains of 1 MiB chunks and
 * publishes how far each chunk is filled at commit (an atomic store, no syscall per
 * message). The writer thread writes the published bytes with pwritev, fsyncs per policy and
 * keeps every byte until it is durable, so a failed fsync can be repaired by writing again
 * (Linux may drop dirty pages after a failed fsync). It reports back through a uv_async_t. */
#include "journal.h"

#include "log.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define HAVE_X86_CRC 1
#endif

#define JOURNAL_MAGIC   "MDCJRNL\0"
#define SEGMENT_SUFFIX  ".mdj"
#define SEGMENT_NAMELEN 33 /* 8-digit ordinal, '-', 20-digit first seq, ".mdj" */
#define CHUNK_BYTES     (1u << 20)
#define POOL_KEEP       8
#define INDEX_EVERY     (64u << 10)
#define GATHER_MAX      (4u << 20)
#define GATHER_IOV      256
#define READ_BUF        (256u << 10)
#define REC_FLAG_MARK   1u /* a begin-session marker: never written to a file */
#define BACKOFF_MIN_MS  10
#define BACKOFF_MAX_MS  1000

/* ---- little-endian helpers: the format is fixed little-endian, whatever the host ---- */
static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- CRC32C ---- */
/* Slicing-by-8 tables for the reflected Castagnoli polynomial 0x82F63B78: portable and about
 * a byte per cycle, so recovery stays within its budget on a CPU without SSE4.2. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int t = 1; t < 8; t++)
            crc_table[t][n] = (crc_table[t - 1][n] >> 8) ^ crc_table[0][crc_table[t - 1][n] & 0xff];
}

uint32_t gw_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (len >= 8) {
        uint32_t lo = c ^ get32(p), hi = get32(p + 4);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
            crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^
            crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return ~c;
}

#ifdef HAVE_X86_CRC
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *buf,
                                                               size_t len)
{
    const uint8_t *p = buf;
#if defined(__x86_64__)
    uint64_t c = ~crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8); /* unaligned load; the instruction takes the host's (LE) order */
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
#else
    uint32_t c32 = ~crc;
#endif
    while (len--)
        c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}

bool gw_crc32c_hw_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}

uint32_t gw_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    return gw_crc32c_hw_available() ? crc32c_sse42(crc, buf, len) : gw_crc32c_sw(crc, buf, len);
}
#else
uint32_t gw_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    return gw_crc32c_sw(crc, buf, len);
}

bool gw_crc32c_hw_available(void)
{
    return false;
}
#endif

static uint32_t (*crc_impl)(uint32_t, const void *, size_t);
static pthread_once_t crc_pick_once = PTHREAD_ONCE_INIT;

static void crc_pick(void)
{
#ifdef HAVE_X86_CRC
    crc_impl = gw_crc32c_hw_available() ? crc32c_sse42 : gw_crc32c_sw;
#else
    crc_impl = gw_crc32c_sw;
#endif
}

uint32_t gw_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_pick_once, crc_pick);
    return crc_impl(crc, buf, len);
}

/* ---- segment header ----
 *  0 magic[8] | 8 u16 version | 10 u16 header length (72) | 12 u32 zero | 16 channel[32]
 * 48 session[10] | 58 u16 zero | 60 u64 first_seq | 68 u32 CRC32C of bytes 0..67 */
size_t gw_journal_encode_header(uint8_t out[GW_JOURNAL_HEADER_LEN], const char *channel,
                                const char session[MDFEED_MOLD_SESSION_LEN], uint64_t first_seq)
{
    memset(out, 0, GW_JOURNAL_HEADER_LEN);
    memcpy(out, JOURNAL_MAGIC, 8);
    put16(out + 8, GW_JOURNAL_VERSION);
    put16(out + 10, GW_JOURNAL_HEADER_LEN);
    size_t n = strnlen(channel, GW_JOURNAL_CHANNEL_LEN - 1);
    memcpy(out + 16, channel, n);
    memcpy(out + 48, session, MDFEED_MOLD_SESSION_LEN);
    put64(out + 60, first_seq);
    put32(out + 68, gw_crc32c(0, out, 68));
    return GW_JOURNAL_HEADER_LEN;
}

static int decode_header(const uint8_t *buf, size_t len, gw_journal_header_t *h)
{
    if (len < GW_JOURNAL_HEADER_LEN)
        return -EAGAIN;
    if (memcmp(buf, JOURNAL_MAGIC, 8) != 0 || get16(buf + 8) != GW_JOURNAL_VERSION ||
        get16(buf + 10) != GW_JOURNAL_HEADER_LEN || get32(buf + 68) != gw_crc32c(0, buf, 68))
        return -EBADMSG;
    memset(h, 0, sizeof(*h));
    h->version = get16(buf + 8);
    memcpy(h->channel, buf + 16, GW_JOURNAL_CHANNEL_LEN - 1);
    memcpy(h->session, buf + 48, MDFEED_MOLD_SESSION_LEN);
    h->first_seq = get64(buf + 60);
    return 0;
}

/* ---- record ----
 *  0 u32 message length | 4 u32 CRC32C of bytes 0..3 and 8..end | 8 u64 seq
 * 16 user[6] | 22 u16 flags (0 on disk) | 24 u64 user_seq | 32 message */
static void encode_record_hdr(uint8_t *out, uint64_t seq, const gw_journal_origin_t *origin,
                              uint32_t len, uint16_t flags)
{
    put32(out, len);
    put32(out + 4, 0);
    put64(out + 8, seq);
    if (origin)
        memcpy(out + 16, origin->user, GW_JOURNAL_USER_LEN);
    else
        memset(out + 16, ' ', GW_JOURNAL_USER_LEN);
    put16(out + 22, flags);
    put64(out + 24, origin ? origin->user_seq : 0);
}

static uint32_t record_crc(const uint8_t *rec, uint32_t len)
{
    uint32_t c = gw_crc32c(0, rec, 4);
    return gw_crc32c(c, rec + 8, GW_JOURNAL_RECORD_HDR - 8 + (size_t)len);
}

/* Idempotent: the CRC covers every byte but its own field, so sealing twice is harmless
 * (the writer seals again when it re-gathers after a partial write). */
static void seal_record(uint8_t *rec)
{
    put32(rec + 4, record_crc(rec, get32(rec)));
}

size_t gw_journal_encode_record(uint8_t *out, uint64_t seq, const gw_journal_origin_t *origin,
                                const void *msg, uint32_t len)
{
    encode_record_hdr(out, seq, origin, len, 0);
    if (len)
        memcpy(out + GW_JOURNAL_RECORD_HDR, msg, len);
    seal_record(out);
    return GW_JOURNAL_RECORD_HDR + (size_t)len;
}

/* Returns the record's length, -EAGAIN when it runs past the buffer, -EBADMSG for a bad
 * length field, -EILSEQ for a bad CRC. */
static long decode_record(const uint8_t *buf, size_t len, gw_journal_record_t *out)
{
    if (len < GW_JOURNAL_RECORD_HDR)
        return -EAGAIN;
    uint32_t n = get32(buf);
    if (n > GW_JOURNAL_MAX_MSG || get16(buf + 22) != 0)
        return -EBADMSG;
    if (len - GW_JOURNAL_RECORD_HDR < n)
        return -EAGAIN;
    if (get32(buf + 4) != record_crc(buf, n))
        return -EILSEQ;
    out->seq = get64(buf + 8);
    memcpy(out->origin.user, buf + 16, GW_JOURNAL_USER_LEN);
    out->origin.user_seq = get64(buf + 24);
    out->msg = buf + GW_JOURNAL_RECORD_HDR;
    out->len = n;
    return (long)(GW_JOURNAL_RECORD_HDR + n);
}

/* ---- the scanner ---- */

/* True when a good record that could follow the good prefix (a sequence number at or above
 * the expected one, within what the remaining bytes can hold) starts anywhere in (from, len).
 * That tells a torn tail (nothing valid after the bad point: a cut write, zeros or stale
 * blocks after a crash) from corruption in the middle. The cheap sequence test comes before
 * the CRC so the search stays linear. */
static bool valid_record_after(const uint8_t *buf, size_t len, size_t from, uint64_t expect)
{
    uint64_t max_seq = expect + (len - from) / GW_JOURNAL_RECORD_HDR;
    for (size_t off = from + 1; off + GW_JOURNAL_RECORD_HDR <= len; off++) {
        uint64_t seq = get64(buf + off + 8);
        if (seq < expect || seq > max_seq)
            continue;
        gw_journal_record_t r;
        if (decode_record(buf + off, len - off, &r) > 0)
            return true;
    }
    return false;
}

void gw_journal_scan_buffer(const uint8_t *buf, size_t len, gw_journal_scan_t *out,
                            gw_journal_record_cb cb, void *data)
{
    memset(out, 0, sizeof(*out));
    int hrc = decode_header(buf, len, &out->hdr);
    if (hrc) {
        out->status = GW_JOURNAL_SCAN_BAD_HEADER;
        out->torn = hrc == -EAGAIN;
        return;
    }
    size_t off = GW_JOURNAL_HEADER_LEN;
    uint64_t expect = out->hdr.first_seq;
    out->good_end = off;
    out->last_seq = expect - 1;
    while (off < len) {
        gw_journal_record_t r;
        long rc = decode_record(buf + off, len - off, &r);
        if (rc < 0) {
            out->status = rc == -EAGAIN   ? GW_JOURNAL_SCAN_SHORT
                          : rc == -EILSEQ ? GW_JOURNAL_SCAN_BAD_CRC
                                          : GW_JOURNAL_SCAN_BAD_LEN;
            out->torn = !valid_record_after(buf, len, off, expect);
            return;
        }
        if (r.seq != expect) {
            out->status = GW_JOURNAL_SCAN_BAD_SEQ;
            return;
        }
        r.off = off;
        out->records++;
        out->last_seq = r.seq;
        off += (size_t)rc;
        out->good_end = off;
        expect++;
        if (cb && cb(data, &r)) {
            if (off < len)
                out->status = GW_JOURNAL_SCAN_STOPPED;
            return;
        }
    }
}

const char *gw_journal_scan_strerror(gw_journal_scan_status_t s)
{
    switch (s) {
    case GW_JOURNAL_SCAN_OK:
        return "ok";
    case GW_JOURNAL_SCAN_BAD_HEADER:
        return "bad segment header";
    case GW_JOURNAL_SCAN_SHORT:
        return "record cut short";
    case GW_JOURNAL_SCAN_BAD_LEN:
        return "bad record length";
    case GW_JOURNAL_SCAN_BAD_CRC:
        return "record CRC mismatch";
    case GW_JOURNAL_SCAN_BAD_SEQ:
        return "sequence number out of order";
    case GW_JOURNAL_SCAN_STOPPED:
        return "stopped";
    }
    return "unknown";
}

void gw_journal_origin_make(gw_journal_origin_t *o, const char *username, uint64_t user_seq)
{
    memset(o->user, ' ', GW_JOURNAL_USER_LEN);
    size_t n = strnlen(username, GW_JOURNAL_USER_LEN);
    memcpy(o->user, username, n);
    o->user_seq = user_seq;
}

/* ---- config ---- */

void gw_journal_config_default(gw_journal_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->segment_bytes = 64u << 20;
    cfg->retain_bytes = 0;
    cfg->fsync = GW_JOURNAL_FSYNC_BATCH;
    cfg->fsync_interval_ms = 10;
    cfg->truncate_corrupt = false;
    cfg->backlog_high_bytes = 32u << 20;
    cfg->backlog_max_bytes = 128u << 20;
    cfg->close_timeout_ms = 5000;
}

__attribute__((format(printf, 5, 6))) static int
cfg_fail(char *err, size_t errlen, const char *path, const char *key, const char *fmt, ...)
{
    int n = key ? snprintf(err, errlen, "%s.%s: ", path, key) : snprintf(err, errlen, "%s: ", path);
    if (n < 0 || (size_t)n >= errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* An integer in [min, max] (JSON numbers are doubles: 2^53 is the largest exact one). */
static int cfg_uint(const cJSON *v, double min, double max, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= min && d <= max) || d != floor(d))
        return -2;
    *out = (uint64_t)d;
    return 0;
}

static const char *const journal_keys[] = {
    "dir", "segment_bytes", "retain_bytes", "fsync", "fsync_interval_ms", "truncate_corrupt", NULL};

static int cfg_check_keys(const cJSON *obj, const char *path, char *err, size_t errlen)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        bool ok = false;
        for (const char *const *k = journal_keys; *k && !ok; k++)
            ok = strcmp(*k, it->string) == 0;
        if (!ok)
            return cfg_fail(err, errlen, path, it->string, "unknown key");
        for (const cJSON *d = it->next; d; d = d->next)
            if (strcmp(d->string, it->string) == 0)
                return cfg_fail(err, errlen, path, it->string, "duplicate key");
    }
    return 0;
}

static int cfg_size(const cJSON *obj, const char *path, const char *key, double min, double max,
                    uint64_t *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    int rc = cfg_uint(v, min, max, out);
    if (rc == -1)
        return cfg_fail(err, errlen, path, key, "must be a number");
    if (rc == -2)
        return cfg_fail(err, errlen, path, key, "must be an integer between %.0f and %.0f", min,
                        max);
    return 0;
}

static int cfg_fsync(const cJSON *obj, const char *path, gw_journal_config_t *out, char *err,
                     size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "fsync");
    if (v) {
        static const char *const names[] = {"never", "interval", "batch"};
        int found = -1;
        for (int i = 0; i < 3 && cJSON_IsString(v); i++)
            if (strcmp(v->valuestring, names[i]) == 0)
                found = i;
        if (found < 0)
            return cfg_fail(err, errlen, path, "fsync",
                            "must be \"never\", \"interval\" or \"batch\"");
        out->fsync = (gw_journal_fsync_t)found;
    }
    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(obj, "fsync_interval_ms");
    if (iv && out->fsync != GW_JOURNAL_FSYNC_INTERVAL)
        return cfg_fail(err, errlen, path, "fsync_interval_ms", "only with fsync \"interval\"");
    uint64_t ms = out->fsync_interval_ms;
    if (cfg_size(obj, path, "fsync_interval_ms", 1, 60000, &ms, err, errlen))
        return -1;
    out->fsync_interval_ms = (uint32_t)ms;
    return 0;
}

int gw_journal_config_parse(const cJSON *obj, const char *path, gw_journal_config_t *out, char *err,
                            size_t errlen)
{
    gw_journal_config_default(out);
    if (!path)
        path = "journal";
    if (!cJSON_IsObject(obj))
        return cfg_fail(err, errlen, path, NULL, "must be an object");
    if (cfg_check_keys(obj, path, err, errlen))
        return -1;
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(obj, "dir");
    if (!dir)
        return cfg_fail(err, errlen, path, "dir", "required");
    if (!cJSON_IsString(dir) || !dir->valuestring)
        return cfg_fail(err, errlen, path, "dir", "must be a string");
    size_t n = strlen(dir->valuestring);
    if (n == 0 || n >= sizeof(out->dir) - SEGMENT_NAMELEN - GW_JOURNAL_CHANNEL_LEN - 2)
        return cfg_fail(err, errlen, path, "dir", "must be a path of 1-%zu characters",
                        sizeof(out->dir) - SEGMENT_NAMELEN - GW_JOURNAL_CHANNEL_LEN - 3);
    memcpy(out->dir, dir->valuestring, n + 1);
    /* A segment holds at least one record of the largest size; 1 TiB is far past any disk
     * this runs on, so a larger figure is a typo. */
    if (cfg_size(obj, path, "segment_bytes", 4096, 1099511627776.0, &out->segment_bytes, err,
                 errlen) ||
        cfg_size(obj, path, "retain_bytes", 0, 9007199254740992.0, &out->retain_bytes, err, errlen))
        return -1;
    if (out->retain_bytes && out->retain_bytes < out->segment_bytes)
        return cfg_fail(err, errlen, path, "retain_bytes",
                        "must be 0 (keep all) or at least segment_bytes (%" PRIu64 ")",
                        out->segment_bytes);
    if (cfg_fsync(obj, path, out, err, errlen))
        return -1;
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(obj, "truncate_corrupt");
    if (tc && !cJSON_IsBool(tc))
        return cfg_fail(err, errlen, path, "truncate_corrupt", "must be true or false");
    out->truncate_corrupt = tc && cJSON_IsTrue(tc);
    return 0;
}

/* ---- the journal ---- */

/* A chunk of one channel's record stream. The loop thread fills it and publishes `committed`
 * (release) at commit; once it has moved on to a newer chunk, commit also sets `sealed`: after
 * that the loop never touches the chunk again and the writer owns it (and frees it once every
 * byte is durable). Records never span chunks. */
typedef struct chunk {
    _Atomic(struct chunk *) next;
    _Atomic size_t committed;
    atomic_bool sealed;
    size_t fill; /* loop thread only */
    uint8_t data[CHUNK_BYTES];
} chunk_t;

typedef struct {
    uint64_t seq;
    uint64_t off;
} index_entry_t;

/* One segment file, as the sparse index knows it. */
typedef struct {
    uint32_t ordinal; /* session number within the channel: +1 per begin_session */
    uint64_t first_seq;
    uint64_t last_seq; /* first_seq - 1 while empty */
    uint64_t size;
    char session[MDFEED_MOLD_SESSION_LEN];
    char name[SEGMENT_NAMELEN + 1];
    index_entry_t *idx; /* a record start about every INDEX_EVERY bytes */
    size_t nidx, capidx;
} segment_t;

typedef struct {
    char name[GW_JOURNAL_CHANNEL_LEN];
    int dirfd;

    /* Loop thread. */
    uint64_t next_seq;
    char session[MDFEED_MOLD_SESSION_LEN];
    uint32_t ordinal; /* of the current session (as the loop has begun it) */
    uint64_t session_first;
    chunk_t *tail;        /* the chunk being filled */
    chunk_t *uncommitted; /* oldest chunk whose fill is not yet published */
    uint64_t rep_written, rep_durable;
    gw_journal_origin_t *origins;
    int norigins, caporigins;

    /* Writer thread (and open/close, when the writer is not running). */
    chunk_t *whead;          /* oldest chunk still held */
    chunk_t *wchunk;         /* next byte to write: wchunk->data[woff] */
    size_t woff;             /*   ... */
    chunk_t *schunk;         /* first byte not yet durable */
    size_t soff;             /*   ... */
    uint64_t sfile_off;      /* its offset in the active segment */
    uint64_t unsynced_bytes; /* stream bytes between the two cursors */
    int fd;                  /* active segment */
    uint64_t file_off;       /* its size */
    uint64_t seg_records;    /* records in it */
    uint64_t segs_last_idx;  /* offset of its last index entry */
    uint32_t wordinal;       /* its ordinal */
    char wsession[MDFEED_MOLD_SESSION_LEN];
    uint64_t wseq, dseq; /* last written, last durable */
    bool dirty;          /* written since the last fsync */

    /* Shared, under mu: the segment list with its index, and the published watermarks. */
    pthread_mutex_t mu;
    segment_t *segs;
    size_t nsegs, capsegs;
    uint32_t pub_ordinal;
    uint64_t pub_written, pub_durable;
} channel_t;

struct gw_journal {
    gw_journal_config_t cfg;
    gw_journal_callbacks_t cb;
    uv_loop_t *loop;
    uv_async_t async;
    int rootfd, lockfd;
    int nch;
    channel_t ch[GW_JOURNAL_MAX_CHANNELS];

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* work/stop flags, with cond */
    pthread_cond_t cond;
    bool work, stop;
    uint64_t stop_deadline;
    uint64_t last_sync_ns;
    bool failing; /* writer only */

    pthread_mutex_t pool_mu;
    chunk_t *pool;
    int npool;

    atomic_uint_fast64_t backlog;
    atomic_int err_state; /* writer's current condition: 0 or -errno */
    int err_reported;     /* loop: last one passed to on_error */
    bool throttled;       /* loop */

    /* Statistics: the writer updates, anyone reads. */
    uint64_t records_appended; /* loop */
    atomic_uint_fast64_t records_written, bytes_written, fsyncs, fsync_ns_total, fsync_ns_max,
        write_errors, segments, segments_created, segments_deleted;
    atomic_int last_errno;
    uint64_t recovery_ns, recovered_records, truncated_bytes; /* open only */

    uint8_t *rbuf; /* gw_journal_read()'s buffer */
};

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool valid_channel_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= GW_JOURNAL_CHANNEL_LEN || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

/* "OOOOOOOO-SSSSSSSSSSSSSSSSSSSS.mdj": session ordinal and first sequence number, zero-padded
 * so that name order is journal order. */
static void segment_name(char out[SEGMENT_NAMELEN + 1], uint32_t ordinal, uint64_t first_seq)
{
    snprintf(out, SEGMENT_NAMELEN + 1, "%08" PRIu32 "-%020" PRIu64 SEGMENT_SUFFIX, ordinal,
             first_seq);
}

static bool parse_segment_name(const char *name, uint32_t *ordinal, uint64_t *first_seq)
{
    if (strlen(name) != SEGMENT_NAMELEN || name[8] != '-' || strcmp(name + 29, SEGMENT_SUFFIX) != 0)
        return false;
    uint64_t o = 0, s = 0;
    for (int i = 0; i < 29; i++) {
        if (i == 8)
            continue;
        if (name[i] < '0' || name[i] > '9')
            return false;
        if (i < 8)
            o = o * 10 + (uint64_t)(name[i] - '0');
        else if (s > (UINT64_MAX - 9) / 10)
            return false;
        else
            s = s * 10 + (uint64_t)(name[i] - '0');
    }
    *ordinal = (uint32_t)o;
    *first_seq = s;
    return true;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Segment files of a channel directory, sorted (journal order). *out is freed by the caller
 * with free_names(). Other files are ignored. */
static int list_segments(int dirfd, char ***out, size_t *count)
{
    *out = NULL;
    *count = 0;
    int fd = dup(dirfd);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    rewinddir(d);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint32_t o;
        uint64_t s;
        if (!parse_segment_name(de->d_name, &o, &s))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof(*nn));
            if (!nn) {
                rc = -ENOMEM;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (names)
        qsort(names, n, sizeof(*names), cmp_names);
    *out = names;
    *count = n;
    return rc;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int index_add(segment_t *s, uint64_t seq, uint64_t off)
{
    if (s->nidx == s->capidx) {
        size_t cap = s->capidx ? s->capidx * 2 : 16;
        index_entry_t *n = realloc(s->idx, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        s->idx = n;
        s->capidx = cap;
    }
    s->idx[s->nidx++] = (index_entry_t){seq, off};
    return 0;
}

static segment_t *segment_push(channel_t *c)
{
    if (c->nsegs == c->capsegs) {
        size_t cap = c->capsegs ? c->capsegs * 2 : 16;
        segment_t *n = realloc(c->segs, cap * sizeof(*n));
        if (!n)
            return NULL;
        c->segs = n;
        c->capsegs = cap;
    }
    segment_t *s = &c->segs[c->nsegs++];
    memset(s, 0, sizeof(*s));
    return s;
}

static void segment_drop_front(channel_t *c)
{
    free(c->segs[0].idx);
    memmove(c->segs, c->segs + 1, (c->nsegs - 1) * sizeof(*c->segs));
    c->nsegs--;
}

/* ---- recovery ---- */

typedef struct {
    segment_t *seg;
    channel_t *c;
    int rc;
} recover_ctx_t;

static int origin_note(channel_t *c, const gw_journal_origin_t *o)
{
    static const char blank[GW_JOURNAL_USER_LEN] = "      ";
    if (memcmp(o->user, blank, GW_JOURNAL_USER_LEN) == 0)
        return 0;
    for (int i = c->norigins - 1; i >= 0; i--) {
        if (memcmp(c->origins[i].user, o->user, GW_JOURNAL_USER_LEN) == 0) {
            if (o->user_seq > c->origins[i].user_seq)
                c->origins[i].user_seq = o->user_seq;
            return 0;
        }
    }
    if (c->norigins == c->caporigins) {
        int cap = c->caporigins ? c->caporigins * 2 : 16;
        gw_journal_origin_t *n = realloc(c->origins, (size_t)cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        c->origins = n;
        c->caporigins = cap;
    }
    c->origins[c->norigins++] = *o;
    return 0;
}

static int recover_record(void *data, const gw_journal_record_t *r)
{
    recover_ctx_t *x = data;
    segment_t *s = x->seg;
    if (s->nidx == 0 || r->off - s->idx[s->nidx - 1].off >= INDEX_EVERY)
        x->rc = index_add(s, r->seq, r->off);
    if (!x->rc)
        x->rc = origin_note(x->c, &r->origin);
    return x->rc;
}

/* Maps and scans one segment file. */
static int scan_file(int dirfd, const char *name, bool writable, int *fd_out, uint64_t *size,
                     gw_journal_scan_t *res, gw_journal_record_cb cb, void *data)
{
    int fd = openat(dirfd, name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *size = (uint64_t)st.st_size;
    const uint8_t *buf = NULL;
    if (st.st_size > 0) {
        buf = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (buf == MAP_FAILED) {
            int e = errno;
            close(fd);
            return -e;
        }
        madvise((void *)buf, (size_t)st.st_size, MADV_SEQUENTIAL);
    }
    gw_journal_scan_buffer(buf, (size_t)st.st_size, res, cb, data);
    if (buf)
        munmap((void *)buf, (size_t)st.st_size);
    if (fd_out)
        *fd_out = fd;
    else
        close(fd);
    return 0;
}

/* What recovery decided about one segment. */
typedef enum { SEG_GOOD, SEG_TORN, SEG_CORRUPT } seg_verdict_t;

typedef struct {
    seg_verdict_t verdict;
    uint64_t offset; /* where the bad bytes start */
    char why[160];
} seg_check_t;

/* Checks what the scan alone cannot: the name against the header, the channel, and the
 * continuity with the previous segment (a gap within one session is corruption). */
static void check_segment(const char *chname, const char *name, bool is_last, uint64_t size,
                          const gw_journal_scan_t *res, const segment_t *prev, seg_check_t *out)
{
    uint32_t ordinal = 0;
    uint64_t first = 0;
    parse_segment_name(name, &ordinal, &first);
    memset(out, 0, sizeof(*out));
    if (res->status == GW_JOURNAL_SCAN_BAD_HEADER) {
        out->verdict = is_last && size < GW_JOURNAL_HEADER_LEN ? SEG_TORN : SEG_CORRUPT;
        snprintf(out->why, sizeof(out->why), "%s", gw_journal_scan_strerror(res->status));
        return;
    }
    if (res->hdr.first_seq != first || strcmp(res->hdr.channel, chname) != 0) {
        out->verdict = SEG_CORRUPT;
        snprintf(out->why, sizeof(out->why),
                 "header (channel %.31s, first seq %" PRIu64 ") does not match its name",
                 res->hdr.channel, res->hdr.first_seq);
        return;
    }
    if (prev && (ordinal < prev->ordinal ||
                 (ordinal == prev->ordinal &&
                  (first != prev->last_seq + 1 ||
                   memcmp(prev->session, res->hdr.session, MDFEED_MOLD_SESSION_LEN) != 0)))) {
        out->verdict = SEG_CORRUPT;
        snprintf(out->why, sizeof(out->why),
                 "gap: the previous segment %s ends at seq %" PRIu64 " (same session)", prev->name,
                 prev->last_seq);
        return;
    }
    if (res->status == GW_JOURNAL_SCAN_OK)
        return;
    out->offset = res->good_end;
    out->verdict = is_last && res->torn ? SEG_TORN : SEG_CORRUPT;
    snprintf(out->why, sizeof(out->why), "%s%s", gw_journal_scan_strerror(res->status),
             res->torn ? "" : ", followed by good records");
}

static int fsync_fd(int fd)
{
    while (fdatasync(fd) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

/* Removes the named segment files from index `from` on (truncate_corrupt). */
static void drop_later(channel_t *c, char **names, size_t from, size_t n, uint64_t *cut)
{
    for (size_t k = from; k < n; k++) {
        struct stat st;
        if (fstatat(c->dirfd, names[k], &st, 0) == 0)
            *cut += (uint64_t)st.st_size;
        if (unlinkat(c->dirfd, names[k], 0) == 0)
            gw_log(GW_LOG_ERROR, "journal: %s/%s removed (after corruption, truncate_corrupt set)",
                   c->name, names[k]);
    }
}

/* Applies a torn-tail or truncate_corrupt cut to a segment that stays. */
static int cut_segment(gw_journal_t *j, channel_t *c, const char *name, int fd, uint64_t size,
                       const seg_check_t *chk)
{
    if (ftruncate(fd, (off_t)chk->offset) < 0 || fsync_fd(fd) < 0)
        return -errno;
    j->truncated_bytes += size - chk->offset;
    gw_log(chk->verdict == SEG_TORN ? GW_LOG_WARN : GW_LOG_ERROR,
           "journal: %s %s/%s/%s at offset %" PRIu64 " (%s), %" PRIu64 " bytes cut",
           chk->verdict == SEG_TORN ? "torn tail truncated" : "corrupt segment truncated",
           j->cfg.dir, c->name, name, chk->offset, chk->why, size - chk->offset);
    return 0;
}

static int recover_scanned(gw_journal_t *j, channel_t *c, char **names, size_t i, size_t n,
                           segment_t *segp, bool *stop, char *err, size_t errlen);

/* Recovers one segment: scan, decide, and either keep it (cut if torn), cut the journal
 * there (truncate_corrupt), or fail. *stop is set when nothing after it may be kept. */
static int recover_segment(gw_journal_t *j, channel_t *c, char **names, size_t i, size_t n,
                           bool *stop, char *err, size_t errlen)
{
    const char *name = names[i];
    segment_t seg = {0};
    parse_segment_name(name, &seg.ordinal, &seg.first_seq);
    snprintf(seg.name, sizeof(seg.name), "%s", name);
    /* The origin table is the last session's; a segment dropped whole gives its part back. */
    int saved_n = c->norigins;
    gw_journal_origin_t *saved = NULL;
    if (saved_n && !(saved = malloc((size_t)saved_n * sizeof(*saved))))
        return errf(err, errlen, -ENOMEM, "journal: out of memory");
    if (saved)
        memcpy(saved, c->origins, (size_t)saved_n * sizeof(*saved));
    if (c->nsegs == 0 || seg.ordinal != c->segs[c->nsegs - 1].ordinal)
        c->norigins = 0;
    int rc = recover_scanned(j, c, names, i, n, &seg, stop, err, errlen);
    if (rc == 1) { /* dropped whole */
        if (saved)
            memcpy(c->origins, saved, (size_t)saved_n * sizeof(*saved));
        c->norigins = saved_n;
        rc = 0;
    }
    free(saved);
    return rc;
}

/* recover_segment() once the origin table is saved: returns 1 when the file was dropped
 * whole, 0 when kept (perhaps cut), or an error. */
static int recover_scanned(gw_journal_t *j, channel_t *c, char **names, size_t i, size_t n,
                           segment_t *segp, bool *stop, char *err, size_t errlen)
{
    const char *name = names[i];
    segment_t seg = *segp;
    recover_ctx_t x = {&seg, c, 0};
    gw_journal_scan_t res;
    uint64_t size = 0;
    int fd = -1;
    int rc = scan_file(c->dirfd, name, true, &fd, &size, &res, recover_record, &x);
    if (rc < 0 || x.rc < 0) {
        free(seg.idx);
        if (fd >= 0)
            close(fd);
        rc = rc < 0 ? rc : x.rc;
        return errf(err, errlen, rc, "journal: %s/%s/%s: %s", j->cfg.dir, c->name, name,
                    strerror(-rc));
    }
    seg_check_t chk;
    check_segment(c->name, name, i + 1 == n, size, &res, c->nsegs ? &c->segs[c->nsegs - 1] : NULL,
                  &chk);
    if (chk.verdict == SEG_CORRUPT && !j->cfg.truncate_corrupt) {
        free(seg.idx);
        close(fd);
        return errf(err, errlen, -EBADMSG,
                    "journal: %s/%s/%s: corrupt at offset %" PRIu64
                    ": %s (set journal.truncate_corrupt to cut the journal there)",
                    j->cfg.dir, c->name, name, chk.offset, chk.why);
    }
    bool whole = res.status == GW_JOURNAL_SCAN_BAD_HEADER || chk.offset == 0;
    if (chk.verdict != SEG_GOOD && whole) {
        /* Nothing of this file can stay: a segment whose creation was cut, or a bad header or
         * gap under truncate_corrupt. */
        close(fd);
        free(seg.idx);
        j->truncated_bytes += size;
        unlinkat(c->dirfd, name, 0);
        gw_log(chk.verdict == SEG_TORN ? GW_LOG_WARN : GW_LOG_ERROR,
               "journal: %s/%s/%s removed at offset 0 (%s)", j->cfg.dir, c->name, name, chk.why);
        if (chk.verdict == SEG_CORRUPT)
            drop_later(c, names, i + 1, n, &j->truncated_bytes);
        *stop = chk.verdict == SEG_CORRUPT;
        return 1;
    }
    if (chk.verdict != SEG_GOOD && (rc = cut_segment(j, c, name, fd, size, &chk)) < 0) {
        close(fd);
        free(seg.idx);
        return errf(err, errlen, rc, "journal: %s/%s/%s: truncate: %s", j->cfg.dir, c->name, name,
                    strerror(-rc));
    }
    if (chk.verdict == SEG_CORRUPT) {
        drop_later(c, names, i + 1, n, &j->truncated_bytes);
        *stop = true;
    }
    seg.last_seq = res.last_seq;
    seg.size = res.good_end;
    memcpy(seg.session, res.hdr.session, MDFEED_MOLD_SESSION_LEN);
    segment_t *s = segment_push(c);
    if (!s) {
        close(fd);
        free(seg.idx);
        return errf(err, errlen, -ENOMEM, "journal: out of memory");
    }
    *s = seg;
    j->recovered_records += res.records;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = fd; /* the last one kept stays open: it is the active segment */
    return 0;
}

/* ---- chunks ---- */

static chunk_t *chunk_get(gw_journal_t *j)
{
    pthread_mutex_lock(&j->pool_mu);
    chunk_t *k = j->pool;
    if (k) {
        j->pool = atomic_load_explicit(&k->next, memory_order_relaxed);
        j->npool--;
    }
    pthread_mutex_unlock(&j->pool_mu);
    if (!k && !(k = malloc(sizeof(*k))))
        return NULL;
    atomic_init(&k->next, NULL);
    atomic_init(&k->committed, 0);
    atomic_init(&k->sealed, false);
    k->fill = 0;
    return k;
}

/* Keeps a few chunks for reuse so the steady state allocates nothing; frees the rest so a
 * backlog spike does not stay in the RSS. */
static void chunk_put(gw_journal_t *j, chunk_t *k)
{
    pthread_mutex_lock(&j->pool_mu);
    if (j->npool < POOL_KEEP) {
        atomic_store_explicit(&k->next, j->pool, memory_order_relaxed);
        j->pool = k;
        j->npool++;
        k = NULL;
    }
    pthread_mutex_unlock(&j->pool_mu);
    free(k);
}

static size_t chunk_committed(chunk_t *k)
{
    return atomic_load_explicit(&k->committed, memory_order_acquire);
}

/* Moves a cursor past the end of a sealed chunk. */
static void cursor_settle(chunk_t **k, size_t *off)
{
    while (atomic_load_explicit(&(*k)->sealed, memory_order_acquire) &&
           *off == chunk_committed(*k)) {
        chunk_t *n = atomic_load_explicit(&(*k)->next, memory_order_acquire);
        if (!n)
            break;
        *k = n;
        *off = 0;
    }
}

/* ---- writer: I/O with retry ---- */

/* Sleeps for `ms` or until close's deadline passes; returns false when the writer must give
 * up (close timed out). */
static bool backoff_wait(gw_journal_t *j, uint32_t ms)
{
    uint64_t until = now_ns() + (uint64_t)ms * 1000000u;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        uint64_t now = now_ns();
        if (j->stop && now >= j->stop_deadline) {
            pthread_mutex_unlock(&j->mu);
            return false;
        }
        uint64_t wake = j->stop && j->stop_deadline < until ? j->stop_deadline : until;
        if (now >= wake)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t abs = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (wake - now);
        ts.tv_sec = (time_t)(abs / 1000000000u);
        ts.tv_nsec = (long)(abs % 1000000000u);
        pthread_cond_timedwait(&j->cond, &j->mu, &ts);
    }
    pthread_mutex_unlock(&j->mu);
    return true;
}

static void notify(gw_journal_t *j)
{
    if (j->loop)
        uv_async_send(&j->async);
}

/* The one place a failing disk is reported: logged once when the condition starts and once
 * when it ends, counted on every attempt, and passed to the loop thread. */
static void io_failed(gw_journal_t *j, int rc, const char *what, const char *chname)
{
    atomic_fetch_add(&j->write_errors, 1);
    atomic_store(&j->last_errno, -rc);
    if (!j->failing) {
        j->failing = true;
        gw_log(GW_LOG_ERROR,
               "journal: %s failed on channel %s: %s; the data is kept and retried (up to every "
               "%d ms) until it succeeds",
               what, chname, strerror(-rc), BACKOFF_MAX_MS);
        atomic_store(&j->err_state, rc);
        notify(j);
    }
}

static void io_succeeded(gw_journal_t *j)
{
    if (j->failing) {
        j->failing = false;
        gw_log(GW_LOG_INFO, "journal: writes succeed again");
        atomic_store(&j->err_state, 0);
        notify(j);
    }
}

/* Writes all of iov at `off`, retrying short writes in place and failures after a backoff.
 * Returns 0 or -ECANCELED (close gave up). iov is consumed. */
static int pwritev_all(gw_journal_t *j, channel_t *c, int fd, struct iovec *iov, int n,
                       uint64_t off)
{
    uint32_t wait = BACKOFF_MIN_MS;
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            io_failed(j, -errno, "write", c->name);
            if (!backoff_wait(j, wait))
                return -ECANCELED;
            wait = wait * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : wait * 2;
            continue;
        }
        io_succeeded(j);
        off += (uint64_t)w;
        atomic_fetch_add(&j->bytes_written, (uint64_t)w);
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int gather_unsynced(channel_t *c, struct iovec *iov, int max, chunk_t **k, size_t *off);

/* fdatasync of the active segment. A failed fsync may have dropped the dirty pages (Linux
 * marks them clean), so every byte since the last good fsync is written again before the
 * next attempt; the writer still holds them. */
static int sync_channel(gw_journal_t *j, channel_t *c)
{
    if (!c->dirty)
        return 0;
    uint32_t wait = BACKOFF_MIN_MS;
    for (;;) {
        uint64_t t0 = now_ns();
        int rc = fsync_fd(c->fd);
        uint64_t dt = now_ns() - t0;
        if (rc == 0) {
            atomic_fetch_add(&j->fsyncs, 1);
            atomic_fetch_add(&j->fsync_ns_total, dt);
            uint64_t mx = atomic_load(&j->fsync_ns_max);
            while (dt > mx && !atomic_compare_exchange_weak(&j->fsync_ns_max, &mx, dt))
                ;
            io_succeeded(j);
            break;
        }
        io_failed(j, rc, "fsync", c->name);
        if (!backoff_wait(j, wait))
            return -ECANCELED;
        wait = wait * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : wait * 2;
        chunk_t *k = c->schunk;
        size_t off = c->soff;
        uint64_t foff = c->sfile_off;
        for (;;) {
            struct iovec iov[GATHER_IOV];
            int n = gather_unsynced(c, iov, GATHER_IOV, &k, &off);
            if (n == 0)
                break;
            size_t bytes = 0;
            for (int i = 0; i < n; i++)
                bytes += iov[i].iov_len;
            if (pwritev_all(j, c, c->fd, iov, n, foff) < 0)
                return -ECANCELED;
            foff += bytes;
        }
    }
    c->dirty = false;
    j->last_sync_ns = now_ns();
    return 0;
}

/* The byte ranges from (*k, *off) up to the write cursor: the data written since the last
 * good fsync. Advances the cursor over what it returns. */
static int gather_unsynced(channel_t *c, struct iovec *iov, int max, chunk_t **k, size_t *off)
{
    int n = 0;
    while (n < max) {
        size_t end = *k == c->wchunk ? c->woff : chunk_committed(*k);
        if (*off < end) {
            iov[n].iov_base = (*k)->data + *off;
            iov[n].iov_len = end - *off;
            n++;
            *off = end;
        }
        if (*k == c->wchunk)
            break;
        *k = atomic_load_explicit(&(*k)->next, memory_order_acquire);
        *off = 0;
    }
    return n;
}

/* Releases the stream bytes behind the sync cursor: backlog and whole chunks. */
static void release_synced(gw_journal_t *j, channel_t *c)
{
    c->schunk = c->wchunk;
    c->soff = c->woff;
    c->sfile_off = c->file_off;
    atomic_fetch_sub(&j->backlog, c->unsynced_bytes);
    c->unsynced_bytes = 0;
    while (c->whead != c->schunk) {
        chunk_t *k = c->whead;
        c->whead = atomic_load_explicit(&k->next, memory_order_acquire);
        chunk_put(j, k);
    }
    c->dseq = c->wseq;
}

static void publish(gw_journal_t *j, channel_t *c)
{
    pthread_mutex_lock(&c->mu);
    bool changed =
        c->pub_written != c->wseq || c->pub_durable != c->dseq || c->pub_ordinal != c->wordinal;
    c->pub_written = c->wseq;
    c->pub_durable = c->dseq;
    c->pub_ordinal = c->wordinal;
    pthread_mutex_unlock(&c->mu);
    if (changed)
        notify(j);
}

/* ---- writer: segments ---- */

typedef struct {
    channel_t *c;
    uint32_t ordinal;
    uint64_t first_seq;
    const char *session;
} newseg_t;

/* Creates a segment file and writes its header; a leftover file of the same name (an earlier
 * attempt that failed half-way) is replaced. */
static int create_segment_file(gw_journal_t *j, newseg_t *a, int *fd_out)
{
    char name[SEGMENT_NAMELEN + 1];
    segment_name(name, a->ordinal, a->first_seq);
    int fd = openat(a->c->dirfd, name, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    uint8_t hdr[GW_JOURNAL_HEADER_LEN];
    gw_journal_encode_header(hdr, a->c->name, a->session, a->first_seq);
    ssize_t w;
    while ((w = pwrite(fd, hdr, sizeof(hdr), 0)) < 0 && errno == EINTR)
        ;
    int rc = w == (ssize_t)sizeof(hdr) ? 0 : w < 0 ? -errno : -ENOSPC;
    if (!rc && j->cfg.fsync != GW_JOURNAL_FSYNC_NEVER)
        rc = fsync_fd(fd);
    /* The directory entry must be durable too, or a crash loses the whole file. */
    if (!rc && j->cfg.fsync != GW_JOURNAL_FSYNC_NEVER && fsync(a->c->dirfd) < 0)
        rc = -errno;
    if (rc) {
        close(fd);
        unlinkat(a->c->dirfd, name, 0);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/* Deletes the oldest whole segments while the channel would hold more than retain_bytes once
 * the active (last) segment is full, so the channel never passes retain_bytes; never deletes
 * the active segment. Runs at open and at every roll. */
static void apply_retention(gw_journal_t *j, channel_t *c)
{
    if (!j->cfg.retain_bytes)
        return;
    for (;;) {
        char name[SEGMENT_NAMELEN + 1];
        pthread_mutex_lock(&c->mu);
        uint64_t total = 0;
        for (size_t i = 0; i + 1 < c->nsegs; i++)
            total += c->segs[i].size;
        if (c->nsegs)
            total += c->segs[c->nsegs - 1].size > j->cfg.segment_bytes ? c->segs[c->nsegs - 1].size
                                                                       : j->cfg.segment_bytes;
        bool drop = c->nsegs > 1 && total > j->cfg.retain_bytes;
        if (drop) {
            memcpy(name, c->segs[0].name, sizeof(name));
            segment_drop_front(c);
        }
        pthread_mutex_unlock(&c->mu);
        if (!drop)
            return;
        if (unlinkat(c->dirfd, name, 0) < 0 && errno != ENOENT)
            gw_log(GW_LOG_WARN, "journal: retention could not remove %s/%s: %s", c->name, name,
                   strerror(errno));
        atomic_fetch_add(&j->segments_deleted, 1);
        atomic_fetch_sub(&j->segments, 1);
    }
}

/* Makes the active segment durable (per policy), then starts a new one; retries until it
 * works (a full disk) or close gives up. */
static int start_segment(gw_journal_t *j, channel_t *c, uint32_t ordinal, uint64_t first_seq,
                         const char *session)
{
    if (j->cfg.fsync != GW_JOURNAL_FSYNC_NEVER && sync_channel(j, c) < 0)
        return -ECANCELED;
    release_synced(j, c);
    newseg_t a = {c, ordinal, first_seq, session};
    int fd = -1, rc;
    uint32_t wait = BACKOFF_MIN_MS;
    while ((rc = create_segment_file(j, &a, &fd)) < 0) {
        io_failed(j, rc, "creating a segment", c->name);
        if (!backoff_wait(j, wait))
            return -ECANCELED;
        wait = wait * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : wait * 2;
    }
    io_succeeded(j);
    atomic_fetch_add(&j->bytes_written, GW_JOURNAL_HEADER_LEN);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = fd;
    c->file_off = GW_JOURNAL_HEADER_LEN;
    c->sfile_off = c->file_off;
    c->seg_records = 0;
    c->segs_last_idx = GW_JOURNAL_HEADER_LEN;
    c->wordinal = ordinal;
    memcpy(c->wsession, session, MDFEED_MOLD_SESSION_LEN);
    pthread_mutex_lock(&c->mu);
    segment_t *s = segment_push(c);
    if (s) {
        s->ordinal = ordinal;
        s->first_seq = first_seq;
        s->last_seq = first_seq - 1;
        s->size = GW_JOURNAL_HEADER_LEN;
        memcpy(s->session, session, MDFEED_MOLD_SESSION_LEN);
        segment_name(s->name, ordinal, first_seq);
    }
    pthread_mutex_unlock(&c->mu);
    if (!s)
        gw_log(GW_LOG_ERROR, "journal: out of memory indexing %s: re-requests may miss it",
               c->name);
    atomic_fetch_add(&j->segments_created, 1);
    atomic_fetch_add(&j->segments, 1);
    apply_retention(j, c);
    return 0;
}

/* ---- writer: the record stream ---- */

typedef struct {
    struct iovec iov[GATHER_IOV];
    int n;
    size_t bytes;
    uint64_t records, last_seq;
    index_entry_t idx[GATHER_MAX / INDEX_EVERY + 2];
    int nidx;
} gather_t;

static void gather_add(gather_t *g, uint8_t *p, size_t len)
{
    if (g->n > 0 && (uint8_t *)g->iov[g->n - 1].iov_base + g->iov[g->n - 1].iov_len == p)
        g->iov[g->n - 1].iov_len += len;
    else
        g->iov[g->n++] = (struct iovec){p, len};
    g->bytes += len;
}

/* Handles a begin-session marker at the write cursor: the old session is made durable, a new
 * segment holds the new one. The marker's bytes are consumed here, never written. */
static int take_marker(gw_journal_t *j, channel_t *c, const uint8_t *p, size_t rec)
{
    uint64_t first = get64(p + 8);
    char session[MDFEED_MOLD_SESSION_LEN];
    memcpy(session, p + GW_JOURNAL_RECORD_HDR, MDFEED_MOLD_SESSION_LEN);
    if (start_segment(j, c, c->wordinal + 1, first, session) < 0)
        return -ECANCELED;
    c->woff += rec;
    c->wseq = first - 1;
    c->dseq = first - 1;
    c->unsynced_bytes += rec;
    release_synced(j, c);
    return 0;
}

/* Collects the records from the write cursor into g, sealing their CRCs, up to a marker, a
 * segment roll, GATHER_MAX bytes or the end of what is committed. Returns 1 when a marker,
 * 2 when a roll stopped it with nothing gathered, 0 otherwise. */
static int gather_records(gw_journal_t *j, channel_t *c, gather_t *g, chunk_t **kp, size_t *offp)
{
    chunk_t *k = *kp;
    size_t off = *offp;
    int why = 0;
    for (;;) {
        cursor_settle(&k, &off);
        size_t end = chunk_committed(k);
        if (off >= end || g->n == GATHER_IOV)
            break;
        uint8_t *p = k->data + off;
        size_t rec = GW_JOURNAL_RECORD_HDR + get32(p);
        if (get16(p + 22) & REC_FLAG_MARK) {
            why = g->bytes ? 0 : 1;
            break;
        }
        uint64_t fpos = c->file_off + g->bytes;
        if (c->seg_records + g->records > 0 && fpos + rec > j->cfg.segment_bytes) {
            why = g->bytes ? 0 : 2;
            break;
        }
        if (g->bytes + rec > GATHER_MAX && g->bytes)
            break;
        seal_record(p);
        uint64_t seq = get64(p + 8);
        uint64_t last_idx = g->nidx ? g->idx[g->nidx - 1].off : c->segs_last_idx;
        if ((c->seg_records + g->records == 0 || fpos - last_idx >= INDEX_EVERY) &&
            g->nidx < (int)(sizeof(g->idx) / sizeof(g->idx[0])))
            g->idx[g->nidx++] = (index_entry_t){seq, fpos};
        gather_add(g, p, rec);
        g->records++;
        g->last_seq = seq;
        off += rec;
    }
    *kp = k;
    *offp = off;
    return why;
}

/* Writes what gather collected and moves the cursors and the published index. */
static int write_gathered(gw_journal_t *j, channel_t *c, gather_t *g, chunk_t *k, size_t off)
{
    if (pwritev_all(j, c, c->fd, g->iov, g->n, c->file_off) < 0)
        return -ECANCELED;
    c->file_off += g->bytes;
    c->seg_records += g->records;
    c->unsynced_bytes += g->bytes;
    c->wchunk = k;
    c->woff = off;
    c->wseq = g->last_seq;
    c->dirty = true;
    atomic_fetch_add(&j->records_written, g->records);
    pthread_mutex_lock(&c->mu);
    segment_t *s = &c->segs[c->nsegs - 1];
    for (int i = 0; i < g->nidx; i++)
        if (index_add(s, g->idx[i].seq, g->idx[i].off) == 0)
            c->segs_last_idx = g->idx[i].off;
    s->last_seq = c->wseq;
    s->size = c->file_off;
    pthread_mutex_unlock(&c->mu);
    if (j->cfg.fsync == GW_JOURNAL_FSYNC_NEVER)
        release_synced(j, c);
    return 0;
}

/* Writes everything committed on one channel. Returns 1 when it wrote something, 0 when
 * there was nothing, -ECANCELED when close gave up. */
static int write_channel(gw_journal_t *j, channel_t *c)
{
    int did = 0;
    for (;;) {
        gather_t g;
        g.n = 0;
        g.bytes = 0;
        g.records = 0;
        g.nidx = 0;
        chunk_t *k = c->wchunk;
        size_t off = c->woff;
        int why = gather_records(j, c, &g, &k, &off);
        if (g.bytes) {
            if (write_gathered(j, c, &g, k, off) < 0)
                return -ECANCELED;
            did = 1;
            continue;
        }
        c->wchunk = k;
        c->woff = off;
        if (why == 0)
            return did;
        int rc = why == 1 ? take_marker(j, c, k->data + off,
                                        GW_JOURNAL_RECORD_HDR + get32(k->data + off))
                          : start_segment(j, c, c->wordinal, c->wseq + 1, c->wsession);
        if (rc < 0)
            return rc;
        did = 1;
    }
}

static bool interval_due(gw_journal_t *j, uint64_t now)
{
    return now >= j->last_sync_ns + (uint64_t)j->cfg.fsync_interval_ms * 1000000u;
}

/* Applies the fsync policy after a round of writes. */
static int sync_round(gw_journal_t *j, bool final)
{
    if (j->cfg.fsync == GW_JOURNAL_FSYNC_NEVER)
        return 0;
    if (j->cfg.fsync == GW_JOURNAL_FSYNC_INTERVAL && !final && !interval_due(j, now_ns()))
        return 0;
    for (int i = 0; i < j->nch; i++) {
        channel_t *c = &j->ch[i];
        if (!c->dirty)
            continue;
        if (sync_channel(j, c) < 0)
            return -ECANCELED;
        release_synced(j, c);
    }
    return 0;
}

static bool any_dirty(gw_journal_t *j)
{
    for (int i = 0; i < j->nch; i++)
        if (j->ch[i].dirty)
            return true;
    return false;
}

/* Waits for work: a commit, close, or the next interval fsync. Returns the stop flag. */
static bool writer_wait(gw_journal_t *j)
{
    bool timed = j->cfg.fsync == GW_JOURNAL_FSYNC_INTERVAL && any_dirty(j);
    uint64_t deadline = j->last_sync_ns + (uint64_t)j->cfg.fsync_interval_ms * 1000000u;
    pthread_mutex_lock(&j->mu);
    while (!j->work && !j->stop) {
        if (!timed) {
            pthread_cond_wait(&j->cond, &j->mu);
            continue;
        }
        uint64_t now = now_ns();
        if (now >= deadline)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t abs = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (deadline - now);
        ts.tv_sec = (time_t)(abs / 1000000000u);
        ts.tv_nsec = (long)(abs % 1000000000u);
        pthread_cond_timedwait(&j->cond, &j->mu, &ts);
    }
    j->work = false;
    bool stop = j->stop;
    pthread_mutex_unlock(&j->mu);
    return stop;
}

static void *writer_main(void *arg)
{
    gw_journal_t *j = arg;
    for (;;) {
        bool stop = writer_wait(j);
        int rc = 0, did = 0;
        for (int i = 0; i < j->nch && rc >= 0; i++) {
            rc = write_channel(j, &j->ch[i]);
            did |= rc > 0;
        }
        if (rc >= 0)
            rc = sync_round(j, stop && !did);
        for (int i = 0; i < j->nch; i++)
            publish(j, &j->ch[i]);
        /* On close, loop until a round finds nothing left (the last one also fsyncs). */
        if (rc < 0 || (stop && !did))
            break;
        if (stop) {
            pthread_mutex_lock(&j->mu);
            j->work = true;
            pthread_mutex_unlock(&j->mu);
        }
    }
    return NULL;
}

/* ---- loop thread: append, commit ---- */

static uint8_t *reserve(gw_journal_t *j, channel_t *c, size_t rec)
{
    chunk_t *t = c->tail;
    if (CHUNK_BYTES - t->fill < rec) {
        chunk_t *n = chunk_get(j);
        if (!n)
            return NULL;
        /* Published now so the writer can follow; `t` is sealed only at the next commit,
         * when its final fill is published with it. */
        atomic_store_explicit(&t->next, n, memory_order_release);
        c->tail = t = n;
    }
    return t->data + t->fill;
}

static int after_append(gw_journal_t *j, channel_t *c, size_t rec)
{
    c->tail->fill += rec;
    uint64_t b = atomic_fetch_add_explicit(&j->backlog, rec, memory_order_relaxed) + rec;
    if (b > j->cfg.backlog_high_bytes)
        j->throttled = true;
    return j->throttled ? 1 : 0;
}

int gw_journal_append(gw_journal_t *j, int ch, uint64_t seq, const void *msg, size_t len,
                      const gw_journal_origin_t *origin)
{
    if (ch < 0 || ch >= j->nch)
        return -EINVAL;
    channel_t *c = &j->ch[ch];
    if (len > GW_JOURNAL_MAX_MSG)
        return -E2BIG;
    if (seq != c->next_seq)
        return -EINVAL;
    size_t rec = GW_JOURNAL_RECORD_HDR + len;
    if (atomic_load_explicit(&j->backlog, memory_order_relaxed) + rec > j->cfg.backlog_max_bytes)
        return -ENOBUFS;
    uint8_t *p = reserve(j, c, rec);
    if (!p)
        return -ENOBUFS;
    encode_record_hdr(p, seq, origin, (uint32_t)len, 0);
    if (len)
        memcpy(p + GW_JOURNAL_RECORD_HDR, msg, len);
    c->next_seq++;
    j->records_appended++;
    return after_append(j, c, rec);
}

int gw_journal_begin_session(gw_journal_t *j, int ch, const char session[MDFEED_MOLD_SESSION_LEN],
                             uint64_t first_seq)
{
    if (ch < 0 || ch >= j->nch || first_seq == 0)
        return -EINVAL;
    channel_t *c = &j->ch[ch];
    size_t rec = GW_JOURNAL_RECORD_HDR + MDFEED_MOLD_SESSION_LEN;
    if (atomic_load_explicit(&j->backlog, memory_order_relaxed) + rec > j->cfg.backlog_max_bytes)
        return -ENOBUFS;
    uint8_t *p = reserve(j, c, rec);
    if (!p)
        return -ENOBUFS;
    encode_record_hdr(p, first_seq, NULL, MDFEED_MOLD_SESSION_LEN, REC_FLAG_MARK);
    memcpy(p + GW_JOURNAL_RECORD_HDR, session, MDFEED_MOLD_SESSION_LEN);
    c->next_seq = first_seq;
    c->session_first = first_seq;
    memcpy(c->session, session, MDFEED_MOLD_SESSION_LEN);
    c->ordinal++;
    c->norigins = 0;
    c->rep_written = c->rep_durable = first_seq - 1;
    return after_append(j, c, rec);
}

void gw_journal_commit(gw_journal_t *j)
{
    bool any = false;
    for (int i = 0; i < j->nch; i++) {
        channel_t *c = &j->ch[i];
        for (chunk_t *k = c->uncommitted; k;) {
            /* Read `next` before publishing: once sealed, the writer may free the chunk. */
            chunk_t *n = atomic_load_explicit(&k->next, memory_order_relaxed);
            if (chunk_committed(k) != k->fill) {
                atomic_store_explicit(&k->committed, k->fill, memory_order_release);
                any = true;
            }
            if (n)
                atomic_store_explicit(&k->sealed, true, memory_order_release);
            k = n;
        }
        c->uncommitted = c->tail;
    }
    if (!any)
        return;
    pthread_mutex_lock(&j->mu);
    j->work = true;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->mu);
}

/* ---- loop thread: progress, getters ---- */

void gw_journal_poll(gw_journal_t *j)
{
    if (j->throttled &&
        atomic_load_explicit(&j->backlog, memory_order_relaxed) <= j->cfg.backlog_high_bytes / 2)
        j->throttled = false;
    int err = atomic_load(&j->err_state);
    if (err != j->err_reported) {
        j->err_reported = err;
        if (j->cb.on_error)
            j->cb.on_error(j->cb.data, err);
    }
    for (int i = 0; i < j->nch; i++) {
        channel_t *c = &j->ch[i];
        pthread_mutex_lock(&c->mu);
        bool current = c->pub_ordinal == c->ordinal;
        uint64_t w = c->pub_written, d = c->pub_durable;
        pthread_mutex_unlock(&c->mu);
        if (!current || (w == c->rep_written && d == c->rep_durable))
            continue;
        c->rep_written = w;
        c->rep_durable = d;
        if (j->cb.on_progress)
            j->cb.on_progress(j->cb.data, i, w, d);
    }
}

static void on_async(uv_async_t *h)
{
    gw_journal_poll(h->data);
}

static void watermarks(const gw_journal_t *j, int ch, uint64_t *w, uint64_t *d)
{
    channel_t *c = (channel_t *)&j->ch[ch];
    pthread_mutex_lock(&c->mu);
    bool current = c->pub_ordinal == c->ordinal;
    *w = current ? c->pub_written : c->session_first - 1;
    *d = current ? c->pub_durable : c->session_first - 1;
    pthread_mutex_unlock(&c->mu);
}

uint64_t gw_journal_written_seq(const gw_journal_t *j, int ch)
{
    if (ch < 0 || ch >= j->nch)
        return 0;
    uint64_t w, d;
    watermarks(j, ch, &w, &d);
    return w;
}

uint64_t gw_journal_durable_seq(const gw_journal_t *j, int ch)
{
    if (ch < 0 || ch >= j->nch)
        return 0;
    uint64_t w, d;
    watermarks(j, ch, &w, &d);
    return d;
}

uint64_t gw_journal_backlog_bytes(const gw_journal_t *j)
{
    return atomic_load_explicit(&((gw_journal_t *)j)->backlog, memory_order_relaxed);
}

bool gw_journal_throttled(const gw_journal_t *j)
{
    return j->throttled;
}

int gw_journal_session(const gw_journal_t *j, int ch, char session[MDFEED_MOLD_SESSION_LEN],
                       uint64_t *next_seq)
{
    if (ch < 0 || ch >= j->nch)
        return -EINVAL;
    memcpy(session, j->ch[ch].session, MDFEED_MOLD_SESSION_LEN);
    *next_seq = j->ch[ch].next_seq;
    return 0;
}

int gw_journal_origin_get(const gw_journal_t *j, int ch, const char *username, uint64_t *user_seq)
{
    if (ch < 0 || ch >= j->nch || !username)
        return -EINVAL;
    gw_journal_origin_t key;
    gw_journal_origin_make(&key, username, 0);
    const channel_t *c = &j->ch[ch];
    for (int i = 0; i < c->norigins; i++) {
        if (memcmp(c->origins[i].user, key.user, GW_JOURNAL_USER_LEN) == 0) {
            *user_seq = c->origins[i].user_seq;
            return 0;
        }
    }
    return -ENOENT;
}

int gw_journal_origin_count(const gw_journal_t *j, int ch)
{
    return ch < 0 || ch >= j->nch ? -EINVAL : j->ch[ch].norigins;
}

int gw_journal_origin_at(const gw_journal_t *j, int ch, int i, gw_journal_origin_t *out)
{
    if (ch < 0 || ch >= j->nch || i < 0 || i >= j->ch[ch].norigins)
        return -EINVAL;
    *out = j->ch[ch].origins[i];
    return 0;
}

void gw_journal_stats_get(const gw_journal_t *j, gw_journal_stats_t *out)
{
    gw_journal_t *m = (gw_journal_t *)j; /* atomics are read through a non-const pointer */
    memset(out, 0, sizeof(*out));
    out->records_appended = j->records_appended;
    out->records_written = atomic_load(&m->records_written);
    out->bytes_written = atomic_load(&m->bytes_written);
    out->fsyncs = atomic_load(&m->fsyncs);
    out->fsync_ns_total = atomic_load(&m->fsync_ns_total);
    out->fsync_ns_max = atomic_load(&m->fsync_ns_max);
    out->write_errors = atomic_load(&m->write_errors);
    out->last_errno = atomic_load(&m->last_errno);
    out->failing = atomic_load(&m->err_state) != 0;
    out->backlog_bytes = atomic_load(&m->backlog);
    out->segments = atomic_load(&m->segments);
    out->segments_created = atomic_load(&m->segments_created);
    out->segments_deleted = atomic_load(&m->segments_deleted);
    out->recovery_ns = j->recovery_ns;
    out->recovered_records = j->recovered_records;
    out->truncated_bytes = j->truncated_bytes;
}

/* ---- reads for retransmission ---- */

typedef struct {
    char name[SEGMENT_NAMELEN + 1];
    uint64_t start_off;
    uint64_t size;
    uint64_t last_seq;
} read_plan_t;

/* Finds the segment of the current session holding `seq` and an index entry at or before it. */
static int plan_read(channel_t *c, uint64_t seq, read_plan_t *p)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&c->mu);
    size_t lo = 0, hi = c->nsegs;
    /* Segments are in journal order: (ordinal, first_seq) ascending. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const segment_t *s = &c->segs[mid];
        if (s->ordinal < c->ordinal || (s->ordinal == c->ordinal && s->first_seq <= seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0) {
        const segment_t *s = &c->segs[lo - 1];
        if (s->ordinal == c->ordinal && s->first_seq <= seq && seq <= s->last_seq) {
            size_t a = 0, b = s->nidx;
            while (a < b) {
                size_t mid = a + (b - a) / 2;
                if (s->idx[mid].seq <= seq)
                    a = mid + 1;
                else
                    b = mid;
            }
            memcpy(p->name, s->name, sizeof(p->name));
            p->start_off = a > 0 ? s->idx[a - 1].off : GW_JOURNAL_HEADER_LEN;
            p->size = s->size;
            p->last_seq = s->last_seq;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

typedef struct {
    uint64_t seq, upto;
    uint32_t max_count, count;
    size_t max_bytes, bytes;
    gw_journal_read_cb cb;
    void *data;
    bool done;
} read_state_t;

/* Delivers the records of one segment from the plan's offset on. */
static int read_segment(gw_journal_t *j, channel_t *c, const read_plan_t *p, read_state_t *st)
{
    int fd = openat(c->dirfd, p->name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : -errno;
    uint64_t off = p->start_off;
    int rc = 0;
    while (!st->done && off < p->size) {
        size_t want = p->size - off < READ_BUF ? (size_t)(p->size - off) : READ_BUF;
        ssize_t n = pread(fd, j->rbuf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        size_t pos = 0;
        while (!st->done) {
            gw_journal_record_t r;
            long l = decode_record(j->rbuf + pos, (size_t)n - pos, &r);
            if (l == -EAGAIN && pos > 0)
                break; /* the record continues past this buffer: read again from it */
            if (l < 0) {
                rc = -EIO;
                st->done = true;
                break;
            }
            pos += (size_t)l;
            if (r.seq < st->seq)
                continue;
            if (r.seq != st->seq || r.seq > st->upto ||
                (st->count > 0 && st->bytes + r.len > st->max_bytes)) {
                rc = r.seq != st->seq && r.seq <= st->upto ? -EIO : 0;
                st->done = true;
                break;
            }
            st->count++;
            st->bytes += r.len;
            st->seq++;
            if (st->cb(st->data, r.seq, r.msg, r.len) || st->count == st->max_count ||
                st->seq > st->upto)
                st->done = true;
        }
        off += pos;
        if (rc)
            break;
    }
    close(fd);
    return rc;
}

int gw_journal_read(gw_journal_t *j, int ch, uint64_t seq, uint32_t max_count, size_t max_bytes,
                    gw_journal_read_cb cb, void *data)
{
    if (ch < 0 || ch >= j->nch || !cb)
        return -EINVAL;
    channel_t *c = &j->ch[ch];
    read_state_t st = {.seq = seq,
                       .upto = gw_journal_written_seq(j, ch),
                       .max_count = max_count,
                       .max_bytes = max_bytes,
                       .cb = cb,
                       .data = data};
    if (max_count == 0)
        return 0;
    if (seq < c->session_first || seq > st.upto)
        return -ENOENT;
    while (!st.done) {
        read_plan_t p;
        int rc = plan_read(c, st.seq, &p);
        if (rc < 0 && st.count == 0)
            return rc;
        if (rc < 0)
            break;
        rc = read_segment(j, c, &p, &st);
        if (rc < 0 && st.count == 0)
            return rc;
        if (rc < 0)
            break;
        if (st.seq <= p.last_seq)
            break; /* the segment ended early: it was changed under us */
    }
    return (int)st.count;
}

/* ---- open and close ---- */

static int mkdir_p(const char *path)
{
    char tmp[GW_JOURNAL_DIR_LEN];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Recovers one channel's directory, or creates its first segment. */
static int open_channel(gw_journal_t *j, channel_t *c, const gw_journal_channel_t *desc, char *err,
                        size_t errlen)
{
    if (mkdirat(j->rootfd, c->name, 0755) < 0 && errno != EEXIST)
        return errf(err, errlen, -errno, "journal: %s/%s: %s", j->cfg.dir, c->name,
                    strerror(errno));
    c->dirfd = openat(j->rootfd, c->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->dirfd < 0)
        return errf(err, errlen, -errno, "journal: %s/%s: %s", j->cfg.dir, c->name,
                    strerror(errno));
    char **names;
    size_t n;
    int rc = list_segments(c->dirfd, &names, &n);
    bool stop = false;
    for (size_t i = 0; rc == 0 && i < n && !stop; i++)
        rc = recover_segment(j, c, names, i, n, &stop, err, errlen);
    free_names(names, n);
    if (rc < 0) {
        if (rc == -ENOMEM)
            errf(err, errlen, rc, "journal: out of memory");
        return rc;
    }
    if (c->nsegs == 0) {
        /* Nothing on disk: the configured session. The writer is not running yet, so the
         * retrying path of the writer is not needed: a failure here fails the open. */
        newseg_t a = {c, 1, desc->first_seq ? desc->first_seq : 1, desc->session};
        int fd;
        if ((rc = create_segment_file(j, &a, &fd)) < 0)
            return errf(err, errlen, rc, "journal: creating the first segment of %s/%s: %s",
                        j->cfg.dir, c->name, strerror(-rc));
        if (c->fd >= 0)
            close(c->fd);
        c->fd = fd;
        segment_t *s = segment_push(c);
        if (!s)
            return errf(err, errlen, -ENOMEM, "journal: out of memory");
        s->ordinal = 1;
        s->first_seq = a.first_seq;
        s->last_seq = a.first_seq - 1;
        s->size = GW_JOURNAL_HEADER_LEN;
        memcpy(s->session, desc->session, MDFEED_MOLD_SESSION_LEN);
        segment_name(s->name, 1, a.first_seq);
        atomic_fetch_add(&j->segments_created, 1);
    } else if (j->cfg.fsync != GW_JOURNAL_FSYNC_NEVER) {
        /* What recovery found may be in the page cache only (a killed process): make it
         * durable so the durable watermark can start at it. */
        if ((rc = fsync_fd(c->fd)) < 0 || (fsync(c->dirfd) < 0 && (rc = -errno)))
            return errf(err, errlen, rc, "journal: fsync %s/%s: %s", j->cfg.dir, c->name,
                        strerror(-rc));
    }
    const segment_t *last = &c->segs[c->nsegs - 1];
    c->wordinal = c->ordinal = last->ordinal;
    memcpy(c->session, last->session, MDFEED_MOLD_SESSION_LEN);
    memcpy(c->wsession, last->session, MDFEED_MOLD_SESSION_LEN);
    c->next_seq = last->last_seq + 1;
    c->session_first = last->first_seq;
    for (size_t i = c->nsegs; i-- > 0 && c->segs[i].ordinal == last->ordinal;)
        c->session_first = c->segs[i].first_seq;
    c->file_off = c->sfile_off = last->size;
    c->seg_records = last->last_seq + 1 - last->first_seq;
    c->segs_last_idx = last->nidx ? last->idx[last->nidx - 1].off : GW_JOURNAL_HEADER_LEN;
    c->wseq = c->dseq = c->pub_written = c->pub_durable = last->last_seq;
    c->rep_written = c->rep_durable = last->last_seq;
    c->pub_ordinal = c->ordinal;
    atomic_fetch_add(&j->segments, c->nsegs);
    apply_retention(j, c);
    chunk_t *k = chunk_get(j);
    if (!k)
        return errf(err, errlen, -ENOMEM, "journal: out of memory");
    c->tail = c->uncommitted = c->whead = c->wchunk = c->schunk = k;
    return 0;
}

static void free_channel(gw_journal_t *j, channel_t *c)
{
    chunk_t *k = c->whead;
    while (k) {
        chunk_t *n = atomic_load_explicit(&k->next, memory_order_relaxed);
        free(k);
        k = n;
    }
    c->whead = c->tail = NULL;
    for (size_t i = 0; i < c->nsegs; i++)
        free(c->segs[i].idx);
    free(c->segs);
    free(c->origins);
    if (c->fd >= 0)
        close(c->fd);
    if (c->dirfd >= 0)
        close(c->dirfd);
    pthread_mutex_destroy(&c->mu);
    (void)j;
}

static void free_journal(gw_journal_t *j)
{
    for (int i = 0; i < j->nch; i++)
        free_channel(j, &j->ch[i]);
    while (j->pool) {
        chunk_t *n = atomic_load_explicit(&j->pool->next, memory_order_relaxed);
        free(j->pool);
        j->pool = n;
    }
    if (j->rootfd >= 0)
        close(j->rootfd);
    if (j->lockfd >= 0)
        close(j->lockfd); /* releases the flock */
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->pool_mu);
    free(j->rbuf);
    free(j);
}

static void on_async_closed(uv_handle_t *h)
{
    free_journal(h->data);
}

static int check_config(const gw_journal_config_t *cfg, int nchannels, char *err, size_t errlen)
{
    if (!cfg->dir[0] || nchannels < 1 || nchannels > GW_JOURNAL_MAX_CHANNELS)
        return errf(err, errlen, -EINVAL, "journal: no dir or a bad channel count (%d)", nchannels);
    if (cfg->segment_bytes < 4096 || cfg->backlog_max_bytes < 2 * CHUNK_BYTES ||
        cfg->backlog_high_bytes == 0 || cfg->backlog_high_bytes >= cfg->backlog_max_bytes ||
        (cfg->fsync == GW_JOURNAL_FSYNC_INTERVAL && cfg->fsync_interval_ms == 0))
        return errf(err, errlen, -EINVAL,
                    "journal: segment_bytes < 4096, backlog_max_bytes < 2 MiB, or "
                    "backlog_high_bytes not below backlog_max_bytes");
    return 0;
}

static int open_root(gw_journal_t *j, char *err, size_t errlen)
{
    int rc = mkdir_p(j->cfg.dir);
    if (rc < 0)
        return errf(err, errlen, rc, "journal: mkdir %s: %s", j->cfg.dir, strerror(-rc));
    j->rootfd = open(j->cfg.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->rootfd < 0)
        return errf(err, errlen, -errno, "journal: %s: %s", j->cfg.dir, strerror(errno));
    /* One writer per journal: a second gateway on the same directory would interleave
     * records. The lock goes with the process, so a killed gateway leaves none behind. */
    j->lockfd = openat(j->rootfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (j->lockfd < 0)
        return errf(err, errlen, -errno, "journal: %s/.lock: %s", j->cfg.dir, strerror(errno));
    if (flock(j->lockfd, LOCK_EX | LOCK_NB) < 0)
        return errf(err, errlen, errno == EWOULDBLOCK ? -EBUSY : -errno,
                    "journal: %s is in use by another process (%s)", j->cfg.dir, strerror(errno));
    return 0;
}

int gw_journal_open(gw_journal_t **out, const gw_journal_config_t *cfg, uv_loop_t *loop,
                    const gw_journal_channel_t *channels, int nchannels,
                    const gw_journal_callbacks_t *cb, char *err, size_t errlen)
{
    *out = NULL;
    int rc = check_config(cfg, nchannels, err, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < nchannels; i++)
        if (!valid_channel_name(channels[i].name))
            return errf(err, errlen, -EINVAL, "journal: bad channel name \"%s\"",
                        channels[i].name ? channels[i].name : "(null)");
    gw_journal_t *j = calloc(1, sizeof(*j));
    if (!j)
        return errf(err, errlen, -ENOMEM, "journal: out of memory");
    j->cfg = *cfg;
    if (cb)
        j->cb = *cb;
    j->rootfd = j->lockfd = -1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_mutex_init(&j->pool_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cond, &ca);
    pthread_condattr_destroy(&ca);
    j->nch = nchannels;
    for (int i = 0; i < nchannels; i++) {
        channel_t *c = &j->ch[i];
        c->fd = c->dirfd = -1;
        snprintf(c->name, sizeof(c->name), "%s", channels[i].name);
        pthread_mutex_init(&c->mu, NULL);
    }
    uint64_t t0 = now_ns();
    if (!(j->rbuf = malloc(READ_BUF)))
        rc = errf(err, errlen, -ENOMEM, "journal: out of memory");
    if (!rc)
        rc = open_root(j, err, errlen);
    for (int i = 0; i < nchannels && !rc; i++)
        rc = open_channel(j, &j->ch[i], &channels[i], err, errlen);
    j->recovery_ns = now_ns() - t0;
    if (!rc && (rc = -pthread_create(&j->thread, NULL, writer_main, j)) < 0)
        errf(err, errlen, rc, "journal: writer thread: %s", strerror(-rc));
    if (rc) {
        free_journal(j);
        return rc;
    }
    j->thread_started = true;
    if (loop) {
        j->loop = loop;
        uv_async_init(loop, &j->async, on_async);
        j->async.data = j;
    }
    gw_log(GW_LOG_INFO,
           "journal: %s opened, %d channel(s), %" PRIu64 " records recovered in %.1f ms", cfg->dir,
           nchannels, j->recovered_records, (double)j->recovery_ns / 1e6);
    *out = j;
    return 0;
}

int gw_journal_close(gw_journal_t *j)
{
    if (!j)
        return 0;
    gw_journal_commit(j);
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    j->work = true;
    j->stop_deadline = now_ns() + (uint64_t)j->cfg.close_timeout_ms * 1000000u;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    gw_journal_poll(j);
    int rc = 0;
    uint64_t left = atomic_load(&j->backlog);
    if (left) {
        uint64_t lost = j->records_appended - atomic_load(&j->records_written);
        gw_log(GW_LOG_ERROR,
               "journal: closed with %" PRIu64 " bytes not durable (%" PRIu64
               " records not written): the disk kept failing for %u ms",
               left, lost, j->cfg.close_timeout_ms);
        rc = -ETIMEDOUT;
    }
    if (j->loop)
        uv_close((uv_handle_t *)&j->async, on_async_closed);
    else
        free_journal(j);
    return rc;
}

/* ---- verify and dump ---- */

typedef struct {
    FILE *out;
    bool dump;
} dump_ctx_t;

static int dump_record(void *data, const gw_journal_record_t *r)
{
    dump_ctx_t *d = data;
    if (!d->dump)
        return 0;
    char hex[2 * 16 + 1];
    size_t n = r->len < 16 ? r->len : 16;
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", r->msg[i]);
    hex[2 * n] = '\0';
    fprintf(
        d->out,
        "    seq %" PRIu64 " user %.6s user_seq %" PRIu64 " len %" PRIu32 " off %" PRIu64 " %s%s\n",
        r->seq, r->origin.user, r->origin.user_seq, r->len, r->off, hex, r->len > 16 ? "..." : "");
    return 0;
}

/* Verifies one channel directory; returns 0, 1 (torn tail only) or 2. */
static int verify_channel(int rootfd, const char *name, bool dump, FILE *out)
{
    int dirfd = openat(rootfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        fprintf(out, "channel %s: %s\n", name, strerror(errno));
        return 2;
    }
    char **names;
    size_t n;
    int worst = 0;
    if (list_segments(dirfd, &names, &n) < 0) {
        fprintf(out, "channel %s: cannot list segments\n", name);
        close(dirfd);
        return 2;
    }
    fprintf(out, "channel %s: %zu segment(s)\n", name, n);
    segment_t prev = {0};
    bool have_prev = false;
    for (size_t i = 0; i < n; i++) {
        gw_journal_scan_t res;
        uint64_t size = 0;
        dump_ctx_t d = {out, dump};
        if (dump)
            fprintf(out, "  %s:\n", names[i]);
        if (scan_file(dirfd, names[i], false, NULL, &size, &res, dump_record, &d) < 0) {
            fprintf(out, "  %s: unreadable: %s\n", names[i], strerror(errno));
            worst = 2;
            continue;
        }
        seg_check_t chk;
        check_segment(name, names[i], i + 1 == n, size, &res, have_prev ? &prev : NULL, &chk);
        fprintf(out,
                "  %s: session %.10s records %" PRIu64 " seq %" PRIu64 "..%" PRIu64
                " bytes %" PRIu64 " %s",
                names[i], res.hdr.session, res.records, res.hdr.first_seq, res.last_seq, size,
                chk.verdict == SEG_GOOD   ? "ok"
                : chk.verdict == SEG_TORN ? "TORN"
                                          : "CORRUPT");
        if (chk.verdict != SEG_GOOD)
            fprintf(out, " at offset %" PRIu64 ": %s (%" PRIu64 " bytes after it)", chk.offset,
                    chk.why, size - chk.offset);
        fputc('\n', out);
        int v = chk.verdict == SEG_GOOD ? 0 : chk.verdict == SEG_TORN ? 1 : 2;
        worst = v > worst ? v : worst;
        if (res.status != GW_JOURNAL_SCAN_BAD_HEADER) {
            parse_segment_name(names[i], &prev.ordinal, &prev.first_seq);
            prev.last_seq = res.last_seq;
            memcpy(prev.session, res.hdr.session, MDFEED_MOLD_SESSION_LEN);
            snprintf(prev.name, sizeof(prev.name), "%s", names[i]);
            have_prev = true;
        }
    }
    free_names(names, n);
    close(dirfd);
    return worst;
}

int gw_journal_verify(const char *dir, bool dump, FILE *out)
{
    int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        fprintf(out, "journal %s: %s\n", dir, strerror(errno));
        return 2;
    }
    int fd = dup(rootfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        close(rootfd);
        fprintf(out, "journal %s: %s\n", dir, strerror(errno));
        return 2;
    }
    char **chans = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int worst = 0;
    while ((de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(rootfd, de->d_name, &st, 0) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            char **nc = realloc(chans, cap * sizeof(*nc));
            if (!nc)
                break;
            chans = nc;
        }
        if (!(chans[n] = strdup(de->d_name)))
            break;
        n++;
    }
    closedir(d);
    if (chans)
        qsort(chans, n, sizeof(*chans), cmp_names);
    fprintf(out, "journal %s: %zu channel(s)\n", dir, n);
    for (size_t i = 0; i < n; i++) {
        int v = verify_channel(rootfd, chans[i], dump, out);
        worst = v > worst ? v : worst;
    }
    free_names(chans, n);
    close(rootfd);
    fprintf(out, "result: %s\n", worst == 0 ? "ok" : worst == 1 ? "torn tail" : "corrupt");
    return worst;
}
