/* mdcast-gateway: SoupBinTCP in, sequenced MoldUDP64 multicast out.
 *   mdcast-gateway --config FILE [--check] [--log-level debug|info|warn|error]
 * Exit status: 0 after a clean shutdown (SIGTERM/SIGINT) or a good --check, 2 for a bad
 * config or command line (the message names the key and the reason), 1 at run time. */
#include "gateway.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_PACKETS 1024 /* datagram buffers: bounds memory beyond the rings */
#define MAX_PENDING  256  /* sends queued before a flush is submitted early */

static void usage(FILE *f)
{
    fprintf(f, "usage: mdcast-gateway --config FILE [--check] [--log-level LEVEL]\n"
               "  --config FILE      JSON config (see config/gateway.json)\n"
               "  --check            validate the config and exit (0 good, 2 bad)\n"
               "  --log-level LEVEL  debug, info, warn or error (overrides the config)\n");
}

/* Submits everything queued now (pending batch full). */
static void pz_submit(gw_packetizer_t *pz)
{
    gw_t *gw = pz->data;
    unsigned n = pz->npending;
    pz->npending = 0;
    gw_egress_submit(&gw->egress, pz->pending, n);
}

/* Every buffer is in flight: submit what is queued and wait for completions. */
static void pz_need_buffer(gw_packetizer_t *pz)
{
    gw_t *gw = pz->data;
    pz_submit(pz);
    gw->egress.ops->drain(&gw->egress, 100);
}

/* Backpressure: when egress cannot keep up (a slow link, a full socket buffer), packet
 * buffers pile up in flight. Before they run out, stop reading from publishers and let TCP
 * push back on them; resume when half the buffers are free again. Nothing that was accepted
 * is dropped, and nobody is disconnected for being slowed down. */
static void apply_backpressure(gw_t *gw)
{
    uint32_t free_bufs = gw->pool.free_count, n = gw->pool.n;
    if (!gw->ingress_paused && free_bufs < n / 4) {
        gw->ingress_paused = true;
        gw_metrics.ingress_pauses++;
        gw_ingress_set_paused(gw, true);
        gw_upstream_set_paused(gw, true);
        gw_log(GW_LOG_DEBUG, "egress backed up (%u of %u buffers free): ingress paused", free_bufs,
               n);
    } else if (gw->ingress_paused && free_bufs > n / 2) {
        gw->ingress_paused = false;
        gw_ingress_set_paused(gw, false);
        gw_upstream_set_paused(gw, false);
        gw_log(GW_LOG_DEBUG, "egress caught up: ingress resumed");
    }
}

/* End of every loop iteration: close the open packets and send the whole flush at once. */
static void on_check(uv_check_t *h)
{
    gw_t *gw = h->data;
    gw_flush(gw);
    if (!gw->stopping)
        apply_backpressure(gw);
}

static void send_headers(gw_t *gw, int ch, uint16_t count)
{
    gw_packetizer_header(&gw->pz, ch, gw->cfg.channels[ch].session, gw->chans[ch].next_seq, count);
}

/* MoldUDP64 heartbeats on every line of a channel without data for mold_heartbeat_ms. */
static void on_heartbeat_timer(uv_timer_t *t)
{
    gw_t *gw = t->data;
    uint64_t now = uv_hrtime();
    uint64_t period = (uint64_t)gw->cfg.mold_heartbeat_ms * 1000000u;
    /* IP_RECVERR queues local errors on the sockets' error queues: read them now and then
     * (a recvmsg per socket that finds nothing, normally). */
    if (gw->egress.ops)
        gw_egress_drain_errqueue(&gw->egress);
    for (int ch = 0; ch < gw->cfg.nchannels; ch++)
        if (now - gw->chans[ch].last_send_ns >= period) {
            gw_flush(gw); /* nothing may overtake data still queued */
            send_headers(gw, ch, MDFEED_MOLD_COUNT_HEARTBEAT);
            gw->chans[ch].last_send_ns = now;
            gw_metrics.heartbeats[ch]++;
        }
    if (gw->pz.npending)
        pz_submit(&gw->pz);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void shutdown_gateway(gw_t *gw)
{
    if (gw->stopping)
        return;
    gw->stopping = true;
    gw_log(GW_LOG_INFO, "shutting down: stopping ingress, flushing, sending end of session");
    gw_ingress_stop(gw);
    gw_upstream_stop(gw);
    if (gw->egress.ops && gw->started) {
        /* Only a gateway that ran ends the session: one that failed to start must not tell
         * receivers of another instance on the same groups that the session is over. */
        gw_flush(gw);
        /* End of session a few times: a receiver that misses one still learns the end. */
        for (uint32_t r = 0; r < gw->cfg.end_of_session_repeats; r++)
            for (int ch = 0; ch < gw->cfg.nchannels; ch++)
                send_headers(gw, ch, MDFEED_MOLD_COUNT_END);
        if (gw->pz.npending)
            pz_submit(&gw->pz);
    }
    if (gw->egress.ops)
        gw_egress_close(&gw->egress);
    gw_retransmit_stop(gw);
    gw_http_stop(gw);
    /* Whatever start() got to initialise (a failed start stops half way). */
    uv_walk(gw->loop, close_walk_cb, NULL); /* metrics connections still open */
    /* Closing the signal watchers restored the default action: a second SIGTERM (timeout(1)
     * and some supervisors send one) must not kill a shutdown that is already under way. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
}

static void on_signal(uv_signal_t *h, int signum)
{
    gw_t *gw = h->data;
    gw_log(GW_LOG_INFO, "received signal %d", signum);
    shutdown_gateway(gw);
}

static int start(gw_t *gw)
{
    const gw_config_t *cfg = &gw->cfg;
    for (int ch = 0; ch < cfg->nchannels; ch++) {
        gw->chans[ch].next_seq = 1;
        gw->chans[ch].flushed_seq = 1;
        gw->chans[ch].last_send_ns = uv_hrtime();
        int rc = gw_store_init(&gw->chans[ch].store, cfg->channels[ch].ring_messages,
                               cfg->channels[ch].ring_bytes);
        if (rc) {
            gw_log(GW_LOG_ERROR, "channel %s: ring: %s", cfg->channels[ch].name, strerror(-rc));
            return -1;
        }
    }
    if (gw_pool_init(&gw->pool, POOL_PACKETS, cfg->payload_budget) != 0 ||
        gw_packetizer_init(&gw->pz, &gw->pool, cfg, MAX_PENDING) != 0) {
        gw_log(GW_LOG_ERROR, "out of memory for packet buffers");
        return -1;
    }
    gw->pz.data = gw;
    gw->pz.submit = pz_submit;
    gw->pz.need_buffer = pz_need_buffer;
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
    if (gw_http_start(gw) != 0 || gw_retransmit_start(gw) != 0 || gw_ingress_start(gw) != 0 ||
        gw_upstream_start(gw) != 0)
        return -1;
    uv_check_init(gw->loop, &gw->flush_check);
    gw->flush_check.data = gw;
    uv_check_start(&gw->flush_check, on_check);
    uv_timer_init(gw->loop, &gw->hb_timer);
    gw->hb_timer.data = gw;
    uint64_t tick = cfg->mold_heartbeat_ms / 4 ? cfg->mold_heartbeat_ms / 4 : 1;
    uv_timer_start(&gw->hb_timer, on_heartbeat_timer, tick, tick);
    uv_signal_init(gw->loop, &gw->sigterm);
    uv_signal_init(gw->loop, &gw->sigint);
    gw->sigterm.data = gw->sigint.data = gw;
    uv_signal_start(&gw->sigterm, on_signal, SIGTERM);
    uv_signal_start(&gw->sigint, on_signal, SIGINT);
    gw->started = true;
    return 0;
}

static void release(gw_t *gw)
{
    gw_upstream_free(gw);
    gw_packetizer_close(&gw->pz);
    gw_pool_close(&gw->pool);
    for (int ch = 0; ch < gw->cfg.nchannels; ch++)
        gw_store_close(&gw->chans[ch].store);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL, *level = NULL;
    bool check = false;
    int o;
    while ((o = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'l':
            level = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (level && gw_log_level_parse(level) < 0) {
        gw_log(GW_LOG_ERROR, "--log-level: must be debug, info, warn or error, got \"%s\"", level);
        return 2;
    }
    static gw_t gw; /* large (config tables): not on the stack */
    char err[512];
    if (gw_config_load(path, &gw.cfg, err, sizeof(err)) != 0) {
        gw_log(GW_LOG_ERROR, "config %s: %s", path, err);
        return 2;
    }
    gw_log_set_level(level ? gw_log_level_parse(level) : gw.cfg.log_level);
    if (check) {
        gw_log(GW_LOG_INFO, "config %s: valid (%d channels, %d users)", path, gw.cfg.nchannels,
               gw.cfg.nusers);
        return 0;
    }
    /* A publisher or a scraper that vanishes while we write must cost an EPIPE, not the
     * process. */
    signal(SIGPIPE, SIG_IGN);
    gw.loop = uv_default_loop();
    int status = 0;
    if (start(&gw) != 0) {
        status = 1;
        shutdown_gateway(&gw);
    }
    uv_run(gw.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(gw.loop) != 0)
        gw_log(GW_LOG_WARN, "event loop closed with handles still open");
    release(&gw);
    gw_log(GW_LOG_INFO, "exit %d", status);
    return status;
}
