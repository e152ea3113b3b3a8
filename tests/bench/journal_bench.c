/* Journal benchmark: append throughput with fsync never / interval 10 ms / batch on a temp dir,
 * and the recovery time of a journal of --gib GiB (default 1). Prints human lines and a JSON
 * summary as its last line. Bounded: --messages per policy (default 1 000 000) and one
 * journal of --gib GiB, deleted at the end. Use a release build for figures.
 *   journal_bench [--dir DIR] [--messages N] [--size BYTES] [--gib G] [--no-recovery] */
#include "journal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rm_rf(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "journal_bench: could not remove %s\n", path);
}

static gw_journal_t *open_or_die(const gw_journal_config_t *cfg)
{
    gw_journal_channel_t ch = {.name = "bench", .session = "BENCH00001", .first_seq = 1};
    gw_journal_t *j;
    char err[512];
    int rc = gw_journal_open(&j, cfg, NULL, &ch, 1, NULL, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "journal_bench: open: %d %s\n", rc, err);
        exit(1);
    }
    return j;
}

typedef struct {
    double secs, msgs_per_s, mb_per_s, fsync_avg_us;
    double loop_ns_per_msg; /* loop-thread time in append/commit/poll, throttle waits excluded */
    uint64_t fsyncs;
} result_t;

/* Appends `n` messages as a busy loop would (a commit per 64 messages, like one loop iteration
 * with a full read buffer), pausing while the journal throttles, and waits until all are
 * durable per policy. */
static result_t run_policy(const char *dir, gw_journal_fsync_t policy, uint64_t n, size_t size,
                           uint64_t segment_bytes, bool want_durable)
{
    gw_journal_config_t cfg;
    gw_journal_config_default(&cfg);
    snprintf(cfg.dir, sizeof(cfg.dir), "%s", dir);
    cfg.fsync = policy;
    cfg.fsync_interval_ms = 10;
    cfg.segment_bytes = segment_bytes;
    rm_rf(dir);
    gw_journal_t *j = open_or_die(&cfg);
    uint8_t msg[GW_JOURNAL_MAX_MSG];
    for (size_t i = 0; i < size; i++)
        msg[i] = (uint8_t)i;
    gw_journal_origin_t o;
    gw_journal_origin_make(&o, "bench", 0);
    double t0 = now_s(), waited = 0;
    for (uint64_t s = 1; s <= n; s++) {
        o.user_seq = s;
        memcpy(msg, &s, sizeof(s) < size ? sizeof(s) : size);
        int rc = gw_journal_append(j, 0, s, msg, size, &o);
        if (rc < 0) {
            fprintf(stderr, "journal_bench: append: %d\n", rc);
            exit(1);
        }
        if (s % 64 == 0 || s == n) {
            gw_journal_commit(j);
            gw_journal_poll(j);
            if (gw_journal_throttled(j)) {
                double w0 = now_s();
                while (gw_journal_throttled(j)) {
                    usleep(50);
                    gw_journal_poll(j);
                }
                waited += now_s() - w0;
            }
        }
    }
    double loop_s = now_s() - t0 - waited;
    while ((want_durable ? gw_journal_durable_seq(j, 0) : gw_journal_written_seq(j, 0)) < n)
        usleep(100);
    result_t r = {0};
    r.loop_ns_per_msg = loop_s * 1e9 / (double)n;
    r.secs = now_s() - t0;
    gw_journal_stats_t st;
    gw_journal_stats_get(j, &st);
    r.msgs_per_s = (double)n / r.secs;
    r.mb_per_s = (double)st.bytes_written / r.secs / 1e6;
    r.fsyncs = st.fsyncs;
    r.fsync_avg_us = st.fsyncs ? (double)st.fsync_ns_total / (double)st.fsyncs / 1e3 : 0;
    gw_journal_close(j);
    return r;
}

int main(int argc, char **argv)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "/tmp/journal_bench.%d", (int)getpid());
    uint64_t n = 1000000;
    size_t size = 100;
    double gib = 1.0;
    bool recovery = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            snprintf(dir, sizeof(dir), "%s/journal_bench.%d", argv[++i], (int)getpid());
        else if (!strcmp(argv[i], "--messages") && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = (size_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--gib") && i + 1 < argc)
            gib = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--no-recovery"))
            recovery = false;
        else {
            fprintf(stderr,
                    "usage: %s [--dir DIR] [--messages N] [--size BYTES] [--gib G] "
                    "[--no-recovery]\n",
                    argv[0]);
            return 2;
        }
    }
    if (size == 0 || size > GW_JOURNAL_MAX_MSG || n == 0) {
        fprintf(stderr, "journal_bench: bad --size or --messages\n");
        return 2;
    }
    printf("journal_bench: %" PRIu64 " messages of %zu bytes per policy in %s (crc32 %s)\n", n,
           size, dir, gw_crc32c_hw_available() ? "sse4.2" : "tables");
    static const char *const names[] = {"never", "interval10ms", "batch"};
    result_t res[3];
    for (int p = 0; p < 3; p++) {
        res[p] = run_policy(dir, (gw_journal_fsync_t)p, n, size, 64u << 20, true);
        printf("  %-13s %9.0f msg/s %7.1f MB/s  %6.3f s  fsyncs %" PRIu64
               " (avg %.0f us)  loop thread %.0f ns/msg\n",
               names[p], res[p].msgs_per_s, res[p].mb_per_s, res[p].secs, res[p].fsyncs,
               res[p].fsync_avg_us, res[p].loop_ns_per_msg);
    }
    double rec_s = 0, build_s = 0;
    uint64_t rec_records = 0, bytes = (uint64_t)(gib * (double)(1ull << 30));
    if (recovery && bytes) {
        uint64_t msgs = bytes / (GW_JOURNAL_RECORD_HDR + size);
        double t0 = now_s();
        run_policy(dir, GW_JOURNAL_FSYNC_NEVER, msgs, size, 64u << 20, false);
        build_s = now_s() - t0;
        gw_journal_config_t cfg;
        gw_journal_config_default(&cfg);
        snprintf(cfg.dir, sizeof(cfg.dir), "%s", dir);
        cfg.fsync = GW_JOURNAL_FSYNC_NEVER;
        gw_journal_t *j = open_or_die(&cfg);
        gw_journal_stats_t st;
        gw_journal_stats_get(j, &st);
        rec_s = (double)st.recovery_ns / 1e9;
        rec_records = st.recovered_records;
        gw_journal_close(j);
        printf("  recovery of %.2f GiB (%" PRIu64 " records, %" PRIu64
               " segments, page cache warm): %.3f s (journal written in %.1f s)\n",
               gib, rec_records, st.segments, rec_s, build_s);
    }
    rm_rf(dir);
    printf("{\"messages\":%" PRIu64 ",\"size\":%zu,\"never_msgs_per_s\":%.0f,"
           "\"interval10ms_msgs_per_s\":%.0f,\"batch_msgs_per_s\":%.0f,\"batch_fsyncs\":%" PRIu64
           ",\"batch_loop_ns_per_msg\":%.0f,\"recovery_gib\":%.2f,\"recovery_records\":%" PRIu64
           ",\"recovery_s\":%.3f}\n",
           n, size, res[0].msgs_per_s, res[1].msgs_per_s, res[2].msgs_per_s, res[2].fsyncs,
           res[2].loop_ns_per_msg, gib, rec_records, rec_s);
    return 0;
}
