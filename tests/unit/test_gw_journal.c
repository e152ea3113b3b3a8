/* Journal stage: CRC32C vectors (hardware and tables), the config parser, append/commit/progress
 * on a real temp dir, recovery after close and after a kill, torn tails, corruption (with and
 * without truncate_corrupt), segment roll and retention, reads across segments, a new session,
 * verify's verdicts, and (run as `test_gw_journal diskfull`, root only) a full tmpfs. */
#include "journal.h"

#include "task.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <uv.h>

/* ---- helpers ---- */

static char base[256];

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    ASSERT_EQ(system(cmd), 0);
}

static void fresh_dir(char *out, size_t cap, const char *tag)
{
    snprintf(out, cap, "%s/%s", base, tag);
    rm_rf(out);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Message `seq` of channel `ch`: its length and bytes follow from both, so reads can check. */
static size_t make_msg(uint8_t *buf, int ch, uint64_t seq)
{
    size_t len = 1 + (seq * 7 + (uint64_t)ch * 13) % 120;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seq * 31 + i + (uint64_t)ch);
    return len;
}

typedef struct {
    uint64_t written[4], durable[4];
    int progress_calls;
    int errors[16];
    int nerrors;
    bool monotonic_ok;
} events_t;

static void on_progress(void *data, int ch, uint64_t w, uint64_t d)
{
    events_t *e = data;
    if (w < e->written[ch] || d < e->durable[ch] || d > w)
        e->monotonic_ok = false;
    e->written[ch] = w;
    e->durable[ch] = d;
    e->progress_calls++;
}

static void on_error(void *data, int err)
{
    events_t *e = data;
    if (e->nerrors < 16)
        e->errors[e->nerrors++] = err;
}

typedef struct {
    uv_loop_t loop;
    gw_journal_t *j;
    events_t ev;
    gw_journal_config_t cfg;
    gw_journal_channel_t chans[2];
    int nch;
} fixture_t;

static void fixture_config(fixture_t *f, const char *dir, gw_journal_fsync_t policy)
{
    memset(f, 0, sizeof(*f));
    gw_journal_config_default(&f->cfg);
    snprintf(f->cfg.dir, sizeof(f->cfg.dir), "%s", dir);
    f->cfg.fsync = policy;
    f->cfg.segment_bytes = 1 << 20;
    f->chans[0].name = "alpha";
    memcpy(f->chans[0].session, "SESSA     ", 10);
    f->chans[0].first_seq = 1;
    f->chans[1].name = "beta";
    memcpy(f->chans[1].session, "SESSB     ", 10);
    f->chans[1].first_seq = 1;
    f->nch = 2;
    f->ev.monotonic_ok = true;
}

static int fixture_open(fixture_t *f, char *err, size_t errlen)
{
    ASSERT_EQ(uv_loop_init(&f->loop), 0);
    gw_journal_callbacks_t cb = {on_progress, on_error, &f->ev};
    int rc = gw_journal_open(&f->j, &f->cfg, &f->loop, f->chans, f->nch, &cb, err, errlen);
    if (rc)
        ASSERT_EQ(uv_loop_close(&f->loop), 0);
    return rc;
}

static void fixture_open_ok(fixture_t *f)
{
    char err[512] = "";
    int rc = fixture_open(f, err, sizeof(err));
    if (rc)
        TEST_FAIL_("gw_journal_open: %d %s", rc, err);
}

static int fixture_close(fixture_t *f)
{
    int rc = gw_journal_close(f->j);
    f->j = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ASSERT_EQ(uv_loop_close(&f->loop), 0);
    return rc;
}

/* Runs the loop until both channels report `durable` up to `upto` (or the time is up). */
static bool wait_durable(fixture_t *f, const uint64_t *upto, uint32_t ms)
{
    uint64_t end = mono_ms() + ms;
    while (mono_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        bool all = true;
        for (int c = 0; c < f->nch; c++)
            all = all && f->ev.durable[c] >= upto[c];
        if (all)
            return true;
        usleep(1000);
    }
    return false;
}

static void append_range(fixture_t *f, int ch, uint64_t from, uint64_t to, const char *user,
                         int per_commit)
{
    uint8_t msg[256];
    for (uint64_t s = from; s <= to; s++) {
        gw_journal_origin_t o;
        gw_journal_origin_make(&o, user, s * 2);
        size_t len = make_msg(msg, ch, s);
        int rc = gw_journal_append(f->j, ch, s, msg, len, &o);
        ASSERT(rc == 0 || rc == 1);
        if (per_commit && s % (uint64_t)per_commit == 0) {
            gw_journal_commit(f->j);
            uv_run(&f->loop, UV_RUN_NOWAIT);
        }
    }
    gw_journal_commit(f->j);
}

typedef struct {
    int ch;
    uint64_t next;
    int bad;
    size_t bytes;
} readcheck_t;

static int check_read(void *data, uint64_t seq, const uint8_t *msg, size_t len)
{
    readcheck_t *r = data;
    uint8_t want[256];
    size_t wl = make_msg(want, r->ch, seq);
    if (seq != r->next || len != wl || memcmp(msg, want, wl) != 0)
        r->bad++;
    r->next = seq + 1;
    r->bytes += len;
    return 0;
}

/* Reads [from, to] back in slices and checks every message. */
static void read_all(gw_journal_t *j, int ch, uint64_t from, uint64_t to)
{
    readcheck_t r = {ch, from, 0, 0};
    while (r.next <= to) {
        int n = gw_journal_read(j, ch, r.next, 500, 1 << 20, check_read, &r);
        if (n <= 0)
            TEST_FAIL_("read ch %d seq %" PRIu64 ": %d", ch, r.next, n);
        ASSERT_EQ(r.bad, 0);
    }
    ASSERT_UEQ(r.next, to + 1);
}

/* stderr capture, to check the log lines recovery must write. */
static int saved_stderr = -1;
static char capture_path[300];

static void capture_begin(void)
{
    snprintf(capture_path, sizeof(capture_path), "%s/stderr.txt", base);
    int fd = open(capture_path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    ASSERT(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *capture_end(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *fp = fopen(capture_path, "r");
    ASSERT(fp);
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    fputs(buf, stderr); /* keep it visible in the test log */
    return buf;
}

/* Segment file names of a channel directory, sorted; returns the count. */
static int list_dir(const char *dir, char names[][64], int max)
{
    DIR *d = opendir(dir);
    ASSERT(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".mdj") && n < max)
            snprintf(names[n++], 64, "%s", de->d_name);
    closedir(d);
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (strcmp(names[a], names[b]) > 0) {
                char t[64];
                memcpy(t, names[a], 64);
                memcpy(names[a], names[b], 64);
                memcpy(names[b], t, 64);
            }
    return n;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    ASSERT_EQ(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static int verify_quiet(const char *dir)
{
    FILE *null = fopen("/dev/null", "w");
    int rc = gw_journal_verify(dir, false, null);
    fclose(null);
    return rc;
}

/* Writes `n` messages on both channels and closes cleanly. */
static void make_journal(const char *dir, uint64_t n, uint64_t segment_bytes)
{
    fixture_t f;
    fixture_config(&f, dir, GW_JOURNAL_FSYNC_NEVER);
    f.cfg.segment_bytes = segment_bytes;
    fixture_open_ok(&f);
    append_range(&f, 0, 1, n, "pubA", 50);
    append_range(&f, 1, 1, n, "pubB", 50);
    ASSERT_EQ(fixture_close(&f), 0);
}

/* ---- tests ---- */

static void test_crc(void)
{
    static const char v[] = "123456789";
    ASSERT_UEQ(gw_crc32c_sw(0, v, 9), 0xE3069283u);
    ASSERT_UEQ(gw_crc32c_hw(0, v, 9), 0xE3069283u);
    ASSERT_UEQ(gw_crc32c(0, v, 9), 0xE3069283u);
    /* RFC 3720 (iSCSI) B.4 vectors: 32 bytes of zeros, of 0xFF, ascending. */
    uint8_t b[32];
    memset(b, 0, 32);
    ASSERT_UEQ(gw_crc32c_sw(0, b, 32), 0x8A9136AAu);
    ASSERT_UEQ(gw_crc32c_hw(0, b, 32), 0x8A9136AAu);
    memset(b, 0xff, 32);
    ASSERT_UEQ(gw_crc32c_sw(0, b, 32), 0x62A8AB43u);
    ASSERT_UEQ(gw_crc32c_hw(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    ASSERT_UEQ(gw_crc32c_sw(0, b, 32), 0x46DD794Eu);
    ASSERT_UEQ(gw_crc32c_hw(0, b, 32), 0x46DD794Eu);
    ASSERT_UEQ(gw_crc32c_sw(0, b, 0), 0);
    /* Hardware and tables agree on every length and alignment, and calls chain. */
    uint8_t big[1100];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 2654435761u >> 13);
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len + off <= sizeof(big); len += 37) {
            uint32_t s = gw_crc32c_sw(0, big + off, len);
            ASSERT_UEQ(gw_crc32c_hw(0, big + off, len), s);
            size_t cut = len / 3;
            ASSERT_UEQ(gw_crc32c(gw_crc32c(0, big + off, cut), big + off + cut, len - cut), s);
        }
    printf("crc: hardware crc32 %s\n",
           gw_crc32c_hw_available() ? "available and tested" : "absent (tables tested twice)");
}

static int parse_json(const char *text, gw_journal_config_t *cfg, char *err, size_t errlen)
{
    cJSON *o = cJSON_Parse(text);
    ASSERT(o);
    int rc = gw_journal_config_parse(o, "journal", cfg, err, errlen);
    cJSON_Delete(o);
    return rc;
}

static void expect_cfg_error(const char *text, const char *want)
{
    gw_journal_config_t cfg;
    char err[256] = "";
    ASSERT_EQ(parse_json(text, &cfg, err, sizeof(err)), -1);
    if (!strstr(err, want))
        TEST_FAIL_("config %s: error \"%s\" lacks \"%s\"", text, err, want);
}

static void test_config(void)
{
    gw_journal_config_t cfg;
    char err[256] = "";
    ASSERT_EQ(parse_json("{\"dir\":\"/var/lib/mdcast\",\"segment_bytes\":1048576,"
                         "\"retain_bytes\":10485760,\"fsync\":\"interval\","
                         "\"fsync_interval_ms\":10,\"truncate_corrupt\":true}",
                         &cfg, err, sizeof(err)),
              0);
    ASSERT_STR_EQ(cfg.dir, "/var/lib/mdcast");
    ASSERT_UEQ(cfg.segment_bytes, 1048576);
    ASSERT_UEQ(cfg.retain_bytes, 10485760);
    ASSERT_EQ(cfg.fsync, GW_JOURNAL_FSYNC_INTERVAL);
    ASSERT_EQ(cfg.fsync_interval_ms, 10);
    ASSERT(cfg.truncate_corrupt);
    ASSERT_EQ(parse_json("{\"dir\":\"j\"}", &cfg, err, sizeof(err)), 0);
    ASSERT_EQ(cfg.fsync, GW_JOURNAL_FSYNC_BATCH);
    ASSERT_UEQ(cfg.segment_bytes, 64u << 20);
    ASSERT_UEQ(cfg.retain_bytes, 0);
    ASSERT(!cfg.truncate_corrupt);
    ASSERT_EQ(parse_json("{\"dir\":\"j\",\"fsync\":\"never\"}", &cfg, err, sizeof(err)), 0);
    ASSERT_EQ(cfg.fsync, GW_JOURNAL_FSYNC_NEVER);

    expect_cfg_error("[]", "journal: must be an object");
    expect_cfg_error("{}", "journal.dir: required");
    expect_cfg_error("{\"dir\":5}", "journal.dir: must be a string");
    expect_cfg_error("{\"dir\":\"\"}", "journal.dir: must be a path");
    expect_cfg_error("{\"dir\":\"j\",\"size\":1}", "journal.size: unknown key");
    expect_cfg_error("{\"dir\":\"j\",\"dir\":\"k\"}", "journal.dir: duplicate key");
    expect_cfg_error("{\"dir\":\"j\",\"segment_bytes\":\"1M\"}",
                     "journal.segment_bytes: must be a number");
    expect_cfg_error("{\"dir\":\"j\",\"segment_bytes\":100}",
                     "journal.segment_bytes: must be an integer between 4096");
    expect_cfg_error("{\"dir\":\"j\",\"segment_bytes\":5000.5}", "journal.segment_bytes");
    expect_cfg_error("{\"dir\":\"j\",\"retain_bytes\":-1}", "journal.retain_bytes");
    expect_cfg_error("{\"dir\":\"j\",\"segment_bytes\":8192,\"retain_bytes\":4096}",
                     "journal.retain_bytes: must be 0 (keep all) or at least segment_bytes");
    expect_cfg_error("{\"dir\":\"j\",\"fsync\":\"always\"}", "journal.fsync: must be");
    expect_cfg_error("{\"dir\":\"j\",\"fsync\":true}", "journal.fsync: must be");
    expect_cfg_error("{\"dir\":\"j\",\"fsync_interval_ms\":5}",
                     "journal.fsync_interval_ms: only with fsync \"interval\"");
    expect_cfg_error("{\"dir\":\"j\",\"fsync\":\"interval\",\"fsync_interval_ms\":0}",
                     "journal.fsync_interval_ms: must be an integer between 1 and 60000");
    expect_cfg_error("{\"dir\":\"j\",\"truncate_corrupt\":1}",
                     "journal.truncate_corrupt: must be true or false");
}

/* Append, commit, progress for each policy; then recovery after a clean close. */
static void test_round_trip(gw_journal_fsync_t policy, const char *tag)
{
    char dir[300];
    fresh_dir(dir, sizeof(dir), tag);
    fixture_t f;
    fixture_config(&f, dir, policy);
    f.cfg.fsync_interval_ms = 10;
    fixture_open_ok(&f);
    char session[10];
    uint64_t next;
    ASSERT_EQ(gw_journal_session(f.j, 0, session, &next), 0);
    ASSERT_MEM_EQ(session, "SESSA     ", 10);
    ASSERT_UEQ(next, 1);
    ASSERT_EQ(gw_journal_append(f.j, 0, 2, "x", 1, NULL), -EINVAL); /* out of order */
    ASSERT_EQ(gw_journal_append(f.j, 5, 1, "x", 1, NULL), -EINVAL);
    ASSERT_EQ(gw_journal_append(f.j, 0, 1, "x", 70000, NULL), -E2BIG);

    append_range(&f, 0, 1, 3000, "pubA", 16);
    append_range(&f, 1, 1, 1000, "pubB", 16);
    uint64_t upto[2] = {3000, 1000};
    ASSERT(wait_durable(&f, upto, 10000));
    ASSERT(f.ev.monotonic_ok);
    ASSERT_UEQ(gw_journal_written_seq(f.j, 0), 3000);
    ASSERT_UEQ(gw_journal_durable_seq(f.j, 1), 1000);
    ASSERT_UEQ(f.ev.written[0], 3000);
    if (policy == GW_JOURNAL_FSYNC_NEVER)
        ASSERT_UEQ(f.ev.durable[0], f.ev.written[0]);
    gw_journal_stats_t st;
    gw_journal_stats_get(f.j, &st);
    ASSERT_UEQ(st.records_written, 4000);
    ASSERT_UEQ(st.records_appended, 4000);
    ASSERT_UEQ(st.backlog_bytes, 0);
    ASSERT_UEQ(gw_journal_backlog_bytes(f.j), 0);
    ASSERT(!gw_journal_throttled(f.j));
    if (policy == GW_JOURNAL_FSYNC_NEVER)
        ASSERT_UEQ(st.fsyncs, 0);
    else
        ASSERT_GT(st.fsyncs, 0);
    read_all(f.j, 0, 1, 3000);
    read_all(f.j, 1, 1, 1000);
    ASSERT_EQ(gw_journal_read(f.j, 0, 3001, 10, 1000, check_read, &(readcheck_t){0}), -ENOENT);
    ASSERT_EQ(fixture_close(&f), 0);
    ASSERT_EQ(verify_quiet(dir), 0);

    fixture_config(&f, dir, policy);
    memcpy(f.chans[0].session, "IGNORED   ", 10); /* the journal's session wins */
    fixture_open_ok(&f);
    ASSERT_EQ(gw_journal_session(f.j, 0, session, &next), 0);
    ASSERT_MEM_EQ(session, "SESSA     ", 10);
    ASSERT_UEQ(next, 3001);
    ASSERT_EQ(gw_journal_session(f.j, 1, session, &next), 0);
    ASSERT_UEQ(next, 1001);
    uint64_t us = 0;
    ASSERT_EQ(gw_journal_origin_get(f.j, 0, "pubA", &us), 0);
    ASSERT_UEQ(us, 6000);
    ASSERT_EQ(gw_journal_origin_get(f.j, 1, "pubB", &us), 0);
    ASSERT_UEQ(us, 2000);
    ASSERT_EQ(gw_journal_origin_get(f.j, 0, "pubB", &us), -ENOENT);
    ASSERT_EQ(gw_journal_origin_count(f.j, 0), 1);
    ASSERT_UEQ(gw_journal_written_seq(f.j, 0), 3000);
    ASSERT_UEQ(gw_journal_durable_seq(f.j, 0), 3000);
    gw_journal_stats_get(f.j, &st);
    ASSERT_UEQ(st.recovered_records, 4000);
    read_all(f.j, 0, 1, 3000);
    /* It continues where it stopped. */
    append_range(&f, 0, 3001, 3100, "pubA", 0);
    upto[0] = 3100;
    upto[1] = 0;
    ASSERT(wait_durable(&f, upto, 10000));
    read_all(f.j, 0, 2990, 3100);
    ASSERT_EQ(fixture_close(&f), 0);
    ASSERT_EQ(verify_quiet(dir), 0);
}

/* A second process cannot open a journal in use. */
static void test_lock(void)
{
    char dir[300];
    fresh_dir(dir, sizeof(dir), "lock");
    fixture_t f;
    fixture_config(&f, dir, GW_JOURNAL_FSYNC_NEVER);
    fixture_open_ok(&f);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        fixture_t g;
        fixture_config(&g, dir, GW_JOURNAL_FSYNC_NEVER);
        char err[256];
        _exit(fixture_open(&g, err, sizeof(err)) == -EBUSY ? 0 : 1);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT_EQ(fixture_close(&f), 0);
}

/* The child appends and _exit()s mid-stream, reporting each written watermark it saw on a
 * pipe; everything it saw written must be recovered, intact. */
static void test_kill(gw_journal_fsync_t policy, const char *tag)
{
    char dir[300];
    fresh_dir(dir, sizeof(dir), tag);
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        fixture_t f;
        fixture_config(&f, dir, policy);
        f.cfg.segment_bytes = 64 << 10;
        f.cfg.backlog_high_bytes = 1 << 20; /* keep the child close to its writer */
        f.cfg.backlog_max_bytes = 8 << 20;
        fixture_open_ok(&f);
        uint8_t msg[256];
        uint64_t last = 0, end = mono_ms() + 30000;
        for (uint64_t s = 1; mono_ms() < end; s++) {
            gw_journal_origin_t o;
            gw_journal_origin_make(&o, "pubA", s);
            size_t len = make_msg(msg, 0, s);
            if (gw_journal_append(f.j, 0, s, msg, len, &o) < 0)
                _exit(3);
            if (s % 8 == 0) {
                gw_journal_commit(f.j);
                uv_run(&f.loop, UV_RUN_NOWAIT);
                if (f.ev.written[0] != last) {
                    last = f.ev.written[0];
                    if (write(p[1], &last, sizeof(last)) != sizeof(last))
                        _exit(4);
                }
            }
            if (last >= 20000)
                _exit(0); /* mid-stream: appended and committed data not yet written */
            while (gw_journal_throttled(f.j)) {
                usleep(100);
                uv_run(&f.loop, UV_RUN_NOWAIT);
            }
        }
        _exit(5);
    }
    close(p[1]);
    uint64_t seen = 0, v;
    while (read(p[0], &v, sizeof(v)) == sizeof(v)) {
        ASSERT_GE(v, seen);
        seen = v;
    }
    close(p[0]);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ASSERT_GE(seen, 20000);

    ASSERT(verify_quiet(dir) <= 1); /* a torn tail at most */
    fixture_t f;
    fixture_config(&f, dir, policy);
    f.cfg.segment_bytes = 64 << 10;
    fixture_open_ok(&f);
    char session[10];
    uint64_t next;
    ASSERT_EQ(gw_journal_session(f.j, 0, session, &next), 0);
    printf("kill (%s): child saw %" PRIu64 " written, recovered %" PRIu64 "\n", tag, seen,
           next - 1);
    ASSERT_GE(next - 1, seen);
    uint64_t us;
    ASSERT_EQ(gw_journal_origin_get(f.j, 0, "pubA", &us), 0);
    ASSERT_UEQ(us, next - 1);
    read_all(f.j, 0, 1, next - 1);
    /* Appending continues from the recovered point. */
    append_range(&f, 0, next, next + 99, "pubA", 0);
    uint64_t upto[2] = {next + 99, 0};
    ASSERT(wait_durable(&f, upto, 10000));
    ASSERT_EQ(fixture_close(&f), 0);
    ASSERT_EQ(verify_quiet(dir), 0);
}

static void last_segment_path(const char *dir, const char *ch, char *out, size_t cap)
{
    char chdir_[400];
    snprintf(chdir_, sizeof(chdir_), "%s/%s", dir, ch);
    char names[64][64];
    int n = list_dir(chdir_, names, 64);
    ASSERT_GT(n, 0);
    snprintf(out, cap, "%s/%s", chdir_, names[n - 1]);
}

static void flip_byte(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    ASSERT(fd >= 0);
    uint8_t b;
    ASSERT_EQ(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x40;
    ASSERT_EQ(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

static void expect_next(const char *dir, bool truncate_corrupt, uint64_t want_next_alpha)
{
    fixture_t f;
    fixture_config(&f, dir, GW_JOURNAL_FSYNC_BATCH);
    f.cfg.truncate_corrupt = truncate_corrupt;
    fixture_open_ok(&f);
    char session[10];
    uint64_t next;
    ASSERT_EQ(gw_journal_session(f.j, 0, session, &next), 0);
    ASSERT_UEQ(next, want_next_alpha);
    if (next > 1)
        read_all(f.j, 0, 1, next - 1);
    ASSERT_EQ(gw_journal_session(f.j, 1, session, &next), 0);
    ASSERT_UEQ(next, 201); /* the other channel is untouched */
    ASSERT_EQ(fixture_close(&f), 0);
}

/* A cut last record and a bad CRC on the very last record are torn tails: truncated, logged
 * with the file and offset, and verify says 1 before and 0 after. */
static void test_torn_tail(void)
{
    char dir[300], seg[600];
    fresh_dir(dir, sizeof(dir), "torn");
    make_journal(dir, 200, 1 << 20);
    last_segment_path(dir, "alpha", seg, sizeof(seg));
    uint64_t size = file_size(seg);
    ASSERT_EQ(truncate(seg, (off_t)(size - 5)), 0);
    ASSERT_EQ(verify_quiet(dir), 1);
    capture_begin();
    expect_next(dir, false, 200);
    char *log = capture_end();
    ASSERT(strstr(log, "torn tail truncated"));
    ASSERT(strstr(log, strrchr(seg, '/') + 1));
    uint8_t last[256];
    uint64_t cut_at = size - (GW_JOURNAL_RECORD_HDR + make_msg(last, 0, 200));
    char want[64];
    snprintf(want, sizeof(want), "at offset %" PRIu64, cut_at);
    ASSERT(strstr(log, want));
    ASSERT_UEQ(file_size(seg), cut_at);
    ASSERT_EQ(verify_quiet(dir), 0);

    /* A flipped byte inside the very last record: its CRC is wrong at the very end. */
    size = file_size(seg);
    flip_byte(seg, size - 3);
    ASSERT_EQ(verify_quiet(dir), 1);
    capture_begin();
    expect_next(dir, false, 199);
    log = capture_end();
    ASSERT(strstr(log, "torn tail truncated"));

    /* Zeros after the last record (blocks allocated, never written, before a crash). */
    int fd = open(seg, O_WRONLY | O_APPEND);
    uint8_t zeros[500] = {0};
    ASSERT_EQ(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
    close(fd);
    ASSERT_EQ(verify_quiet(dir), 1);
    expect_next(dir, false, 199);

    /* A segment whose header was cut as it was created. */
    char extra[700];
    snprintf(extra, sizeof(extra), "%s/alpha/00000001-00000000000000000199.mdj", dir);
    fd = open(extra, O_CREAT | O_WRONLY, 0644);
    ASSERT_EQ(write(fd, "MDCJ", 4), 4);
    close(fd);
    ASSERT_EQ(verify_quiet(dir), 1);
    expect_next(dir, false, 199);
    ASSERT(access(extra, F_OK) != 0);
}

/* A flipped byte mid-segment is an error naming file and offset; truncate_corrupt cuts there. */
static void test_corrupt_middle(void)
{
    char dir[300], seg[600];
    fresh_dir(dir, sizeof(dir), "corrupt");
    make_journal(dir, 200, 1 << 20);
    last_segment_path(dir, "alpha", seg, sizeof(seg));
    /* Record 101 starts after the header and records 1..100. */
    uint64_t off = GW_JOURNAL_HEADER_LEN;
    uint8_t m[256];
    for (uint64_t s = 1; s <= 100; s++)
        off += GW_JOURNAL_RECORD_HDR + make_msg(m, 0, s);
    flip_byte(seg, off + GW_JOURNAL_RECORD_HDR + 1);
    ASSERT_EQ(verify_quiet(dir), 2);

    fixture_t f;
    fixture_config(&f, dir, GW_JOURNAL_FSYNC_BATCH);
    char err[512] = "";
    ASSERT_EQ(fixture_open(&f, err, sizeof(err)), -EBADMSG);
    printf("corrupt: %s\n", err);
    char want[64];
    snprintf(want, sizeof(want), "offset %" PRIu64, off);
    ASSERT(strstr(err, want));
    ASSERT(strstr(err, strrchr(seg, '/') + 1));
    ASSERT(strstr(err, "truncate_corrupt"));
    ASSERT_EQ(verify_quiet(dir), 2); /* nothing was changed */

    capture_begin();
    expect_next(dir, true, 101);
    char *log = capture_end();
    ASSERT(strstr(log, "corrupt segment truncated"));
    ASSERT(strstr(log, want));
    ASSERT_EQ(verify_quiet(dir), 0);
}

/* Segments roll near segment_bytes, retention keeps the channel near retain_bytes, reads
 * cross segment boundaries, a gap between segments is corruption. */
static void test_roll_retention_gap(void)
{
    char dir[300];
    fresh_dir(dir, sizeof(dir), "roll");
    fixture_t f;
    fixture_config(&f, dir, GW_JOURNAL_FSYNC_INTERVAL);
    f.cfg.fsync_interval_ms = 5;
    f.cfg.segment_bytes = 8192;
    f.cfg.retain_bytes = 65536;
    fixture_open_ok(&f);
    append_range(&f, 0, 1, 5000, "pubA", 64);
    append_range(&f, 1, 1, 300, "pubB", 64);
    uint64_t upto[2] = {5000, 300};
    ASSERT(wait_durable(&f, upto, 20000));
    gw_journal_stats_t st;
    gw_journal_stats_get(f.j, &st);
    ASSERT_GT(st.segments_created, 40);
    ASSERT_GT(st.segments_deleted, 20);

    char chdir_[400];
    snprintf(chdir_, sizeof(chdir_), "%s/alpha", dir);
    char names[64][64];
    int n = list_dir(chdir_, names, 64);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        char p[600];
        snprintf(p, sizeof(p), "%s/%s", chdir_, names[i]);
        uint64_t sz = file_size(p);
        ASSERT_LE(sz, 8192);
        total += sz;
    }
    ASSERT_LE(total, 65536);
    ASSERT_GT(total, 65536 - 2 * 8192 - 200);
    /* The oldest kept segment's first message and everything after it can be read. */
    uint32_t o;
    unsigned long long first;
    ASSERT_EQ(sscanf(names[0], "%8u-%20llu.mdj", &o, &first), 2);
    ASSERT_GT(first, 1);
    readcheck_t r = {0, 1, 0, 0};
    ASSERT_EQ(gw_journal_read(f.j, 0, first - 1, 10, 1000, check_read, &r), -ENOENT);
    read_all(f.j, 0, first, 5000);
    /* Bounds: max_count and max_bytes (at least one message). */
    r = (readcheck_t){0, 4700, 0, 0};
    ASSERT_EQ(gw_journal_read(f.j, 0, 4700, 7, 1 << 20, check_read, &r), 7);
    r = (readcheck_t){0, 4700, 0, 0};
    ASSERT_EQ(gw_journal_read(f.j, 0, 4700, 1000, 1, check_read, &r), 1);
    r = (readcheck_t){0, 4700, 0, 0};
    int got = gw_journal_read(f.j, 0, 4700, 1000, 600, check_read, &r);
    ASSERT_GT(got, 1);
    ASSERT_LE(r.bytes, 600);
    ASSERT_EQ(r.bad, 0);
    ASSERT_EQ(fixture_close(&f), 0);
    ASSERT_EQ(verify_quiet(dir), 0);

    /* Remove a middle segment: a gap in the sequence, corruption. */
    char victim[600];
    snprintf(victim, sizeof(victim), "%s/%s", chdir_, names[n / 2]);
    ASSERT_EQ(unlink(victim), 0);
    ASSERT_EQ(verify_quiet(dir), 2);
    fixture_config(&f, dir, GW_JOURNAL_FSYNC_INTERVAL);
    f.cfg.segment_bytes = 8192;
    char err[512] = "";
    ASSERT_EQ(fixture_open(&f, err, sizeof(err)), -EBADMSG);
    ASSERT(strstr(err, "gap"));
    /* With truncate_corrupt the journal ends before the gap. */
    f.cfg.truncate_corrupt = true;
    fixture_open_ok(&f);
    char session[10];
    uint64_t next;
    ASSERT_EQ(gw_journal_session(f.j, 0, session, &next), 0);
    uint32_t o2;
    unsigned long long gap_first;
    ASSERT_EQ(sscanf(names[n / 2], "%8u-%20llu.mdj", &o2, &gap_first), 2);
    ASSERT_UEQ(next, gap_first);
    ASSERT_EQ(fixture_close(&f), 0);
    ASSERT_EQ(verify_quiet(dir), 0);
}

/* begin_session: a new segment, the new session recovered, reads in the new session only. */
static void test_new_session(void)
{
    char dir[300];
    fresh_dir(dir, sizeof(dir), "session");
    fixture_t f;
    fixture_config(&f, dir, GW_JOURNAL_FSYNC_BATCH);
    fixture_open_ok(&f);
    append_range(&f, 0, 1, 100, "pubA", 10);
    ASSERT_GE(gw_journal_begin_session(f.j, 0, "NEXTDAY001", 1), 0);
    append_range(&f, 0, 1, 40, "pubC", 10);
    uint64_t upto[2] = {40, 0};
    ASSERT(wait_durable(&f, upto, 10000));
    ASSERT(f.ev.monotonic_ok || f.ev.written[0] == 40);
    read_all(f.j, 0, 1, 40);
    readcheck_t r = {0, 41, 0, 0};
    ASSERT_EQ(gw_journal_read(f.j, 0, 41, 10, 1000, check_read, &r), -ENOENT);
    ASSERT_EQ(fixture_close(&f), 0);
    ASSERT_EQ(verify_quiet(dir), 0);

    fixture_config(&f, dir, GW_JOURNAL_FSYNC_BATCH);
    fixture_open_ok(&f);
    char session[10];
    uint64_t next, us;
    ASSERT_EQ(gw_journal_session(f.j, 0, session, &next), 0);
    ASSERT_MEM_EQ(session, "NEXTDAY001", 10);
    ASSERT_UEQ(next, 41);
    ASSERT_EQ(gw_journal_origin_get(f.j, 0, "pubC", &us), 0);
    ASSERT_UEQ(us, 80);
    ASSERT_EQ(gw_journal_origin_get(f.j, 0, "pubA", &us), -ENOENT); /* the old day's */
    read_all(f.j, 0, 1, 40);
    ASSERT_EQ(fixture_close(&f), 0);
}

/* verify's output: one summary line per segment, one line per record with dump. */
static void test_verify_dump(void)
{
    char dir[300];
    fresh_dir(dir, sizeof(dir), "dump");
    make_journal(dir, 3, 1 << 20);
    char path[400];
    snprintf(path, sizeof(path), "%s/dump.txt", base);
    FILE *out = fopen(path, "w+");
    ASSERT_EQ(gw_journal_verify(dir, true, out), 0);
    rewind(out);
    char text[8192];
    size_t n = fread(text, 1, sizeof(text) - 1, out);
    text[n] = '\0';
    fclose(out);
    fputs(text, stdout);
    ASSERT(strstr(text, "channel alpha: 1 segment(s)"));
    ASSERT(
        strstr(text, "00000001-00000000000000000001.mdj: session SESSA      records 3 seq 1..3"));
    ASSERT(strstr(text, "seq 2 user pubA   user_seq 4 len"));
    ASSERT(strstr(text, "result: ok"));
    ASSERT_EQ(verify_quiet("/nonexistent/journal"), 2);
}

/* ---- disk full (own CTest test: needs root for a private mount namespace) ---- */

static int test_disk_full(void)
{
    if (geteuid() != 0)
        SKIP("needs root to mount a tiny tmpfs in a private mount namespace");
    if (unshare(CLONE_NEWNS) < 0)
        SKIP("unshare(CLONE_NEWNS) refused: %s", strerror(errno));
    ASSERT_EQ(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
    char dir[300];
    fresh_dir(dir, sizeof(dir), "full");
    ASSERT_EQ(mkdir(dir, 0755), 0);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=8m") < 0)
        SKIP("cannot mount tmpfs: %s", strerror(errno));

    fixture_t f;
    char jdir[400];
    snprintf(jdir, sizeof(jdir), "%s/j", dir);
    fixture_config(&f, jdir, GW_JOURNAL_FSYNC_BATCH);
    f.nch = 1;
    f.cfg.segment_bytes = 64 << 10;
    f.cfg.backlog_high_bytes = 1 << 20;
    f.cfg.backlog_max_bytes = 3 << 20;
    fixture_open_ok(&f);
    /* Fill the file system to the last byte. */
    char filler[400];
    snprintf(filler, sizeof(filler), "%s/filler", dir);
    int fd = open(filler, O_CREAT | O_WRONLY, 0644);
    ASSERT(fd >= 0);
    static uint8_t junk[4096];
    while (write(fd, junk, sizeof(junk)) > 0)
        ;
    while (write(fd, junk, 1) > 0)
        ;
    close(fd);

    /* Appends go on while the disk is full, until the hard cap refuses them. */
    uint8_t msg[256];
    uint64_t s = 1;
    int rc = 0;
    for (; s < 1000000; s++) {
        size_t len = make_msg(msg, 0, s);
        gw_journal_origin_t o;
        gw_journal_origin_make(&o, "pubA", s);
        rc = gw_journal_append(f.j, 0, s, msg, len, &o);
        if (rc < 0)
            break;
        if (s % 64 == 0) {
            gw_journal_commit(f.j);
            uv_run(&f.loop, UV_RUN_NOWAIT);
        }
    }
    ASSERT_EQ(rc, -ENOBUFS);
    uint64_t accepted = s - 1;
    gw_journal_commit(f.j);
    ASSERT(gw_journal_throttled(f.j));
    uint64_t end = mono_ms() + 5000;
    while (f.ev.nerrors == 0 && mono_ms() < end) {
        uv_run(&f.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    ASSERT_EQ(f.ev.nerrors, 1);
    ASSERT_EQ(f.ev.errors[0], -ENOSPC);
    gw_journal_stats_t st;
    gw_journal_stats_get(f.j, &st);
    ASSERT(st.failing);
    ASSERT_EQ(st.last_errno, ENOSPC);
    ASSERT_GT(st.write_errors, 0);
    ASSERT_LT(f.ev.written[0], accepted);
    printf("disk full: %" PRIu64 " accepted, %" PRIu64 " written before the disk filled\n",
           accepted, f.ev.written[0]);

    /* Space comes back: the writer resumes on its own and loses nothing. */
    ASSERT_EQ(unlink(filler), 0);
    uint64_t upto[1] = {accepted};
    ASSERT(wait_durable(&f, upto, 15000));
    ASSERT_EQ(f.ev.nerrors, 2);
    ASSERT_EQ(f.ev.errors[1], 0);
    ASSERT(!gw_journal_throttled(f.j));
    gw_journal_stats_get(f.j, &st);
    ASSERT(!st.failing);
    ASSERT_UEQ(st.records_written, accepted);
    /* The writer holds nothing back, and the refused append can be made now. */
    size_t len = make_msg(msg, 0, accepted + 1);
    ASSERT_EQ(gw_journal_append(f.j, 0, accepted + 1, msg, len, NULL), 0);
    upto[0] = accepted + 1;
    gw_journal_commit(f.j);
    ASSERT(wait_durable(&f, upto, 5000));
    ASSERT_EQ(fixture_close(&f), 0);
    ASSERT_EQ(verify_quiet(jdir), 0);

    fixture_config(&f, jdir, GW_JOURNAL_FSYNC_BATCH);
    f.nch = 1;
    f.cfg.segment_bytes = 64 << 10;
    fixture_open_ok(&f);
    char session[10];
    uint64_t next;
    ASSERT_EQ(gw_journal_session(f.j, 0, session, &next), 0);
    ASSERT_UEQ(next, accepted + 2);
    read_all(f.j, 0, 1, accepted + 1);
    ASSERT_EQ(fixture_close(&f), 0);
    umount2(dir, MNT_DETACH);
    return 0;
}

int main(int argc, char **argv)
{
    snprintf(base, sizeof(base), "/tmp/test_gw_journal.%d", (int)getpid());
    rm_rf(base);
    ASSERT_EQ(mkdir(base, 0755), 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "diskfull") == 0) {
        int rc = test_disk_full();
        rm_rf(base);
        return rc;
    }
    test_crc();
    test_config();
    test_round_trip(GW_JOURNAL_FSYNC_NEVER, "rt-never");
    test_round_trip(GW_JOURNAL_FSYNC_INTERVAL, "rt-interval");
    test_round_trip(GW_JOURNAL_FSYNC_BATCH, "rt-batch");
    test_lock();
    test_kill(GW_JOURNAL_FSYNC_NEVER, "kill-never");
    test_kill(GW_JOURNAL_FSYNC_BATCH, "kill-batch");
    test_torn_tail();
    test_corrupt_middle();
    test_roll_retention_gap();
    test_new_session();
    test_verify_dump();
    rm_rf(base);
    printf("test_gw_journal: all passed\n");
    return 0;
}
