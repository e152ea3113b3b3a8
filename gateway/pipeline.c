/* The wiring of the gateway's stages (pipeline.h). */
#include "pipeline.h"

#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#define POOL_PACKETS    1024 /* datagram buffers: bounds memory beyond the rings */
#define MAX_PENDING     256  /* sends queued before a flush is submitted early */
#define JOURNAL_WAIT_MS 2000 /* longest the loop waits for the journal when out of buffers */

static void set_ingress_paused(gw_t *gw, bool paused)
{
    gw->ingress_paused = paused;
    gw_ingress_set_paused(gw->ingress, paused);
    gw_upstream_set_paused(gw->upstreams, paused);
}

/* True while the journal cannot take more: its backlog passed the high-water mark (the disk
 * is slower than the feed) or its writes fail (disk full). */
static bool journal_blocked(gw_t *gw)
{
    if (!gw->journal)
        return false;
    if (gw->sequencer.journal_throttled && !gw_journal_throttled(gw->journal))
        gw->sequencer.journal_throttled = false;
    return gw->sequencer.journal_throttled || gw->journal_failing;
}

/* Backpressure: when egress cannot keep up (a slow link, a full socket buffer) packet
 * buffers pile up in flight; when the journal cannot, its backlog grows. Before either runs
 * out, stop reading from publishers and let TCP push back on them; resume when half the
 * buffers are free again and the journal has caught up. Nothing that was accepted is
 * dropped, and nobody is disconnected for being slowed down. */
static void apply_backpressure(gw_t *gw)
{
    uint32_t free_bufs = gw->pool.free_count, n = gw->pool.n;
    bool blocked = journal_blocked(gw);
    if (!gw->ingress_paused && (free_bufs < n / 4 || blocked)) {
        gw->ingress_pauses++;
        set_ingress_paused(gw, true);
        gw_log(GW_LOG_DEBUG, "%s: ingress paused",
               blocked ? "journal behind or failing" : "egress backed up");
    } else if (gw->ingress_paused && free_bufs > n / 2 && !blocked) {
        set_ingress_paused(gw, false);
        gw_log(GW_LOG_DEBUG, "caught up: ingress resumed");
    }
}

/* End of every loop iteration: hand what was sequenced to the journal, close the open
 * packets and send the whole flush at once (gated: what the journal has not written yet
 * waits for its progress callback). */
static void on_check(uv_check_t *h)
{
    gw_t *gw = h->data;
    if (gw->journal)
        gw_journal_commit(gw->journal);
    gw_packetizer_flush(&gw->pz);
    if (!gw->stopping)
        apply_backpressure(gw);
}

/* A message may go on the wire once the journal wrote it (a killed process cannot then
 * reuse its number); with fsync "batch", once it is on disk (nor can a crashed machine). A
 * publisher's acknowledgement always waits for the fsync policy. */
static void on_journal_progress(void *data, int ch, uint64_t written, uint64_t durable)
{
    gw_t *gw = data;
    bool batch = gw->cfg.journal.fsync == GW_JOURNAL_FSYNC_BATCH;
    gw_packetizer_release(&gw->pz, ch, (batch ? durable : written) + 1);
    gw_ingress_ack(gw->ingress, ch, durable);
    if (!gw->stopping)
        apply_backpressure(gw);
}

static void on_journal_error(void *data, int err)
{
    gw_t *gw = data;
    gw->journal_failing = err < 0;
    if (err < 0)
        gw_log(GW_LOG_ERROR,
               "journal: writes failing (%s): not ready, ingress paused until "
               "it recovers; nothing accepted is dropped",
               gw_strerror(err));
    else
        gw_log(GW_LOG_INFO, "journal: writes succeed again");
    if (!gw->stopping)
        apply_backpressure(gw);
}

/* Every buffer is held for the journal, or a channel changes numbering while sends wait:
 * wait here (bounded) until the journal wrote what is held, rather than refuse a message. */
static void wait_for_journal(void *data)
{
    gw_t *gw = data;
    uint64_t deadline = uv_hrtime() + (uint64_t)JOURNAL_WAIT_MS * 1000000u;
    gw_journal_commit(gw->journal);
    while (gw_packetizer_held(&gw->pz) && uv_hrtime() < deadline) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
        gw_journal_poll(gw->journal);
    }
}

static char *render_metrics(void *data, size_t *len)
{
    const gw_t *gw = data;
    gw_journal_stats_t js;
    if (gw->journal)
        gw_journal_stats_get(gw->journal, &js);
    gw_metrics_view_t v = {.cfg = &gw->cfg,
                           .ingress = &gw->ingress_stats,
                           .upstream = &gw->upstream_stats,
                           .next_seq = gw->sequencer.next_seq,
                           .packetizer = &gw->pz.stats,
                           .held_sends = gw_packetizer_held(&gw->pz),
                           .egress = &gw->egress,
                           .retransmit = &gw->retransmit_stats,
                           .journal = gw->journal ? &js : NULL,
                           .sessions_ended = gw->sessions_ended,
                           .ingress_pauses = &gw->ingress_pauses,
                           .ingress_paused = &gw->ingress_paused};
    return gw_metrics_render(&v, len);
}

/* Ready: egress is set up, we are not stopping, the journal (if any) writes, and the egress
 * interface holds its IPv4 address (on EKS, net1 is gone when the ENI was detached). */
static bool is_ready(void *data)
{
    const gw_t *gw = data;
    return gw->egress_ready && !gw->stopping && !gw->journal_failing &&
           gw_iface_has_addr(gw->egress_ifname, &gw->cfg.egress_addr);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* With a journal the session outlives the process: a rolling update's next pod continues
 * it, so SIGTERM must not end it. Without one the next start takes a new session anyway,
 * and the end of session tells consumers at once. */
static void drain_egress(gw_t *gw)
{
    if (!gw->egress.ops || !gw->started)
        return;
    if (!gw->journal) {
        gw_packetizer_end_session(&gw->pz);
        return;
    }
    gw_journal_commit(gw->journal);
    gw_packetizer_flush(&gw->pz);
    if (gw_journal_close(gw->journal) != 0)
        gw_log(GW_LOG_ERROR, "journal: not everything was written before the deadline");
    gw->journal = NULL; /* its last progress callbacks released what it wrote */
    gw_log(GW_LOG_INFO, "drained: journal closed, session left open for the next start");
}

void gw_pipeline_shutdown(gw_t *gw)
{
    if (gw->stopping)
        return;
    gw->stopping = true;
    gw_log(GW_LOG_INFO, "shutting down: stopping ingress, flushing%s",
           gw->journal ? ", closing the journal (the session stays open)"
                       : ", sending end of session");
    gw_ingress_stop(gw->ingress);
    gw->ingress = NULL;
    gw_upstream_stop(gw->upstreams);
    gw_packetizer_stop_heartbeats(&gw->pz);
    drain_egress(gw);
    if (gw->journal) { /* a start that failed before the loop ran */
        gw_journal_close(gw->journal);
        gw->journal = NULL;
    }
    if (gw->egress.ops)
        gw_egress_close(&gw->egress);
    gw_retransmit_stop(gw->retransmit);
    gw->retransmit = NULL;
    gw_http_stop(gw->http);
    gw->http = NULL;
    /* Whatever start got to initialise (a failed start stops half way). */
    uv_walk(gw->loop, close_walk_cb, NULL);
    /* Closing the signal watchers restored the default action: a second SIGTERM (timeout(1)
     * and some supervisors send one) must not kill a shutdown that is already under way. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
}

static void on_signal(uv_signal_t *h, int signum)
{
    gw_t *gw = h->data;
    gw_log(GW_LOG_INFO, "received signal %d (%s)", signum, sigabbrev_np(signum));
    if (signum == SIGUSR1)
        gw_pipeline_end_session(gw);
    else
        gw_pipeline_shutdown(gw);
}

void gw_pipeline_new_session_name(gw_t *gw, int ch, const char *base)
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const int64_t epoch_2026 = 1767225600; /* 2026-01-01T00:00:00Z */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Wait for the next tenth of a second: this process owns the tenth it names. */
    long ns_left = 100000000L - ts.tv_nsec % 100000000L;
    struct timespec wait = {0, ns_left};
    nanosleep(&wait, NULL);
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t tenths = (uint64_t)(ts.tv_sec - epoch_2026) * 10u + (uint64_t)ts.tv_nsec / 100000000u;
    char name[MDFEED_MOLD_SESSION_LEN + 1];
    size_t n = 0;
    for (; n < 4 && base[n] && base[n] != ' '; n++)
        name[n] = base[n];
    uint64_t v = tenths % 2176782336u; /* 36^6: wraps after 6.9 years */
    for (int i = 5; i >= 0; i--, v /= 36)
        name[n + (size_t)i] = digits[v % 36];
    name[n + 6] = '\0';
    mdfeed_mold_session_set(gw->cfg.channels[ch].session, name);
}

static void log_session(const gw_t *gw, int ch, const char *why, uint64_t next)
{
    char s[MDFEED_MOLD_SESSION_LEN + 1];
    mdfeed_mold_session_str(gw->cfg.channels[ch].session, s);
    gw_log(GW_LOG_INFO, "channel %s: session %s, next sequence %llu (%s)",
           gw->cfg.channels[ch].name, s, (unsigned long long)next, why);
}

/* Sessions at start: recovered from the journal, kept for connect mode (the upstream's
 * numbering), new for listen mode without a journal -- a (session, sequence) pair that may
 * already have been on the wire is never sent again with other contents. */
static int choose_sessions(gw_t *gw)
{
    gw_config_t *cfg = &gw->cfg;
    for (int ch = 0; ch < cfg->nchannels; ch++) {
        mdfeed_mold_session_str(cfg->channels[ch].session, gw->base_session[ch]);
        if (cfg->channels[ch].upstream)
            log_session(gw, ch, "connect mode: the upstream's numbering", 1);
        else if (!cfg->journal_on) {
            gw_pipeline_new_session_name(gw, ch, gw->base_session[ch]);
            log_session(gw, ch, "new at this start: no journal", 1);
        }
    }
    return 0;
}

static int open_journal(gw_t *gw)
{
    gw_config_t *cfg = &gw->cfg;
    gw_journal_channel_t chans[GW_MAX_CHANNELS];
    for (int ch = 0; ch < cfg->nchannels; ch++) {
        chans[ch].name = cfg->channels[ch].name;
        memcpy(chans[ch].session, cfg->channels[ch].session, MDFEED_MOLD_SESSION_LEN);
        chans[ch].first_seq = 1;
    }
    gw_journal_callbacks_t cb = {on_journal_progress, on_journal_error, gw};
    char err[512] = "";
    int rc = gw_journal_open(&gw->journal, &cfg->journal, gw->loop, chans, cfg->nchannels, &cb, err,
                             sizeof(err));
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "journal %s: %s%s%s", cfg->journal.dir, gw_strerror(rc),
               err[0] ? ": " : "", err);
        gw->journal = NULL;
        gw->exit_status = rc == -EBADMSG ? 2 : 1;
        return -1;
    }
    for (int ch = 0; ch < cfg->nchannels; ch++) {
        uint64_t next = 1;
        gw_journal_session(gw->journal, ch, cfg->channels[ch].session, &next);
        log_session(gw, ch, next > 1 ? "continued from the journal" : "journal started", next);
    }
    return 0;
}

/* After recovery: the stages continue where the journal stops. */
static void resume_from_journal(gw_t *gw)
{
    const gw_config_t *cfg = &gw->cfg;
    for (int ch = 0; ch < cfg->nchannels; ch++) {
        char s[MDFEED_MOLD_SESSION_LEN];
        uint64_t next = 1;
        gw_journal_session(gw->journal, ch, s, &next);
        if (next > 1)
            gw_sequencer_resume(&gw->sequencer, ch, next);
    }
    for (int u = 0; u < cfg->nusers; u++) {
        uint64_t n = 0;
        if (gw_journal_origin_get(gw->journal, cfg->users[u].channel, cfg->users[u].username, &n) ==
            0)
            gw->sequencer.user_seq[u] = n;
    }
    gw_packetizer_gate(&gw->pz);
    gw->pz.need_release = wait_for_journal;
    gw->pz.data = gw;
}

void gw_pipeline_end_session(gw_t *gw)
{
    if (gw->stopping || !gw->started)
        return;
    gw_config_t *cfg = &gw->cfg;
    gw_log(GW_LOG_INFO, "end of session requested: ending every channel's session");
    if (gw->journal)
        gw_journal_commit(gw->journal);
    gw_packetizer_end_session(&gw->pz);
    gw->sessions_ended++;
    gw_ingress_logout_all(gw->ingress, "the session ended");
    for (int ch = 0; ch < cfg->nchannels; ch++) {
        if (cfg->channels[ch].upstream)
            continue; /* the upstream's numbering: its own end of session follows */
        gw_pipeline_new_session_name(gw, ch, gw->base_session[ch]);
        gw_packetizer_set_session(&gw->pz, ch, cfg->channels[ch].session);
        gw_sequencer_new_session(&gw->sequencer, ch);
        if (gw->journal &&
            gw_journal_begin_session(gw->journal, ch, cfg->channels[ch].session, 1) < 0)
            gw_log(GW_LOG_ERROR, "channel %s: journal could not start the new session",
                   cfg->channels[ch].name);
        log_session(gw, ch, "after the end of the previous one", 1);
    }
}

static void on_eod_timer(uv_timer_t *t)
{
    gw_pipeline_end_session(t->data);
}

/* Milliseconds until the next end_of_session_at (UTC). */
static uint64_t ms_until_end_of_day(int32_t at_s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_s = ts.tv_sec % 86400;
    int64_t d = at_s - now_s;
    if (d <= 0)
        d += 86400;
    return (uint64_t)d * 1000u - (uint64_t)ts.tv_nsec / 1000000u;
}

static int start_stores(gw_t *gw)
{
    const gw_config_t *cfg = &gw->cfg;
    for (int ch = 0; ch < cfg->nchannels; ch++) {
        int rc = gw_store_init(&gw->stores[ch], cfg->channels[ch].ring_messages,
                               cfg->channels[ch].ring_bytes);
        if (rc) {
            gw_log(GW_LOG_ERROR, "channel %s: ring: %s", cfg->channels[ch].name, gw_strerror(rc));
            return -1;
        }
    }
    return 0;
}

/* Egress first (lowest stage), then what feeds it. */
static int start_egress(gw_t *gw)
{
    const gw_config_t *cfg = &gw->cfg;
    if (gw_pool_init(&gw->pool, POOL_PACKETS, cfg->payload_budget) != 0) {
        gw_log(GW_LOG_ERROR, "out of memory for packet buffers");
        return -1;
    }
    if (gw_egress_ifname(cfg, gw->egress_ifname) != 0) {
        gw_log(GW_LOG_ERROR, "egress.interface: no interface holds this address");
        return -1;
    }
    gw_check_igmp_version(gw->egress_ifname);
    if (gw_check_mtu(gw->egress_ifname, cfg->payload_budget) != 0)
        return -1;
    if (gw_egress_init(&gw->egress, gw->loop, cfg, &gw->pool, NULL, gw) != 0)
        return -1;
    gw->egress_ready = true;
    if (gw_packetizer_init(&gw->pz, &gw->pool, &gw->egress, cfg, MAX_PENDING) != 0) {
        gw_log(GW_LOG_ERROR, "out of memory for packet buffers");
        return -1;
    }
    gw_sequencer_init(&gw->sequencer, cfg, gw->stores, &gw->pz, gw->journal);
    if (gw->journal)
        resume_from_journal(gw);
    return 0;
}

static int start_planes(gw_t *gw)
{
    const gw_config_t *cfg = &gw->cfg;
    gw_http_routes_t routes = {render_metrics, is_ready, gw};
    if (gw_http_start(&gw->http, gw->loop, &cfg->metrics_listen, &routes) != 0 ||
        gw_retransmit_start(&gw->retransmit, gw->loop, cfg, gw->stores, gw->pz.flushed_seq,
                            gw->journal, &gw->retransmit_stats) != 0)
        return -1;
    return 0;
}

static int start_ingress(gw_t *gw)
{
    if (gw_ingress_start(&gw->ingress, gw->loop, &gw->cfg, &gw->sequencer, &gw->ingress_stats) !=
            0 ||
        gw_upstream_start(&gw->upstreams, gw->loop, &gw->cfg, &gw->sequencer,
                          &gw->upstream_stats) != 0)
        return -1;
    /* Acknowledgements follow the journal's fsync policy; without a journal, sequencing. */
    gw_ingress_set_deferred_acks(gw->ingress, gw->journal != NULL);
    return 0;
}

static void start_loop_hooks(gw_t *gw)
{
    uv_check_init(gw->loop, &gw->flush_check);
    gw->flush_check.data = gw;
    uv_check_start(&gw->flush_check, on_check);
    gw_packetizer_start_heartbeats(&gw->pz, gw->loop);
    uv_signal_t *sigs[] = {&gw->sigterm, &gw->sigint, &gw->sigusr1};
    int nums[] = {SIGTERM, SIGINT, SIGUSR1};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(gw->loop, sigs[i]);
        sigs[i]->data = gw;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    if (gw->cfg.end_of_session_at_s >= 0) {
        uv_timer_init(gw->loop, &gw->eod_timer);
        gw->eod_timer.data = gw;
        uv_timer_start(&gw->eod_timer, on_eod_timer,
                       ms_until_end_of_day(gw->cfg.end_of_session_at_s), 86400u * 1000u);
    }
}

int gw_pipeline_start(gw_t *gw)
{
    gw->exit_status = 1;
    if (choose_sessions(gw) != 0 || start_stores(gw) != 0 ||
        (gw->cfg.journal_on && open_journal(gw) != 0) || start_egress(gw) != 0 ||
        start_planes(gw) != 0 || start_ingress(gw) != 0)
        return -1;
    start_loop_hooks(gw);
    gw->started = true;
    gw->exit_status = 0;
    return 0;
}

void gw_pipeline_release(gw_t *gw)
{
    gw_upstream_free(gw->upstreams);
    gw->upstreams = NULL;
    gw_packetizer_close(&gw->pz);
    gw_pool_close(&gw->pool);
    for (int ch = 0; ch < gw->cfg.nchannels; ch++)
        gw_store_close(&gw->stores[ch]);
}
