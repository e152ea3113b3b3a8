/* The wiring of the gateway's stages (pipeline.h). */
#include "pipeline.h"

#include "log.h"
#include "metrics.h"

#include <signal.h>
#include <string.h>

#define POOL_PACKETS 1024 /* datagram buffers: bounds memory beyond the rings */
#define MAX_PENDING  256  /* sends queued before a flush is submitted early */

static void set_ingress_paused(gw_t *gw, bool paused)
{
    gw->ingress_paused = paused;
    gw_ingress_set_paused(gw->ingress, paused);
    gw_upstream_set_paused(gw->upstreams, paused);
}

/* Backpressure: when egress cannot keep up (a slow link, a full socket buffer), packet
 * buffers pile up in flight. Before they run out, stop reading from publishers and let TCP
 * push back on them; resume when half the buffers are free again. Nothing that was accepted
 * is dropped, and nobody is disconnected for being slowed down. */
static void apply_backpressure(gw_t *gw)
{
    uint32_t free_bufs = gw->pool.free_count, n = gw->pool.n;
    if (!gw->ingress_paused && free_bufs < n / 4) {
        gw->ingress_pauses++;
        set_ingress_paused(gw, true);
        gw_log(GW_LOG_DEBUG, "egress backed up (%u of %u buffers free): ingress paused", free_bufs,
               n);
    } else if (gw->ingress_paused && free_bufs > n / 2) {
        set_ingress_paused(gw, false);
        gw_log(GW_LOG_DEBUG, "egress caught up: ingress resumed");
    }
}

/* End of every loop iteration: close the open packets and send the whole flush at once. */
static void on_check(uv_check_t *h)
{
    gw_t *gw = h->data;
    gw_packetizer_flush(&gw->pz);
    if (!gw->stopping)
        apply_backpressure(gw);
}

static char *render_metrics(void *data, size_t *len)
{
    const gw_t *gw = data;
    gw_metrics_view_t v = {.cfg = &gw->cfg,
                           .ingress = &gw->ingress_stats,
                           .upstream = &gw->upstream_stats,
                           .next_seq = gw->sequencer.next_seq,
                           .packetizer = &gw->pz.stats,
                           .egress = &gw->egress,
                           .retransmit = &gw->retransmit_stats,
                           .ingress_pauses = &gw->ingress_pauses,
                           .ingress_paused = &gw->ingress_paused};
    return gw_metrics_render(&v, len);
}

/* Ready: egress is set up, we are not stopping, and the egress interface holds its IPv4
 * address (on EKS, net1 is gone when the ENI was detached). */
static bool is_ready(void *data)
{
    const gw_t *gw = data;
    return gw->egress_ready && !gw->stopping &&
           gw_iface_has_addr(gw->egress_ifname, &gw->cfg.egress_addr);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void gw_pipeline_shutdown(gw_t *gw)
{
    if (gw->stopping)
        return;
    gw->stopping = true;
    gw_log(GW_LOG_INFO, "shutting down: stopping ingress, flushing, sending end of session");
    gw_ingress_stop(gw->ingress);
    gw->ingress = NULL;
    gw_upstream_stop(gw->upstreams);
    gw_packetizer_stop_heartbeats(&gw->pz);
    /* Only a gateway that ran ends the session: one that failed to start must not tell
     * receivers of another instance on the same groups that the session is over. */
    if (gw->egress.ops && gw->started)
        gw_packetizer_end_session(&gw->pz);
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
}

static void on_signal(uv_signal_t *h, int signum)
{
    gw_t *gw = h->data;
    gw_log(GW_LOG_INFO, "received signal %d", signum);
    gw_pipeline_shutdown(gw);
}

static int start_stores(gw_t *gw)
{
    const gw_config_t *cfg = &gw->cfg;
    for (int ch = 0; ch < cfg->nchannels; ch++) {
        int rc = gw_store_init(&gw->stores[ch], cfg->channels[ch].ring_messages,
                               cfg->channels[ch].ring_bytes);
        if (rc) {
            gw_log(GW_LOG_ERROR, "channel %s: ring: %s", cfg->channels[ch].name, gw_strerror(-rc));
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
    gw_sequencer_init(&gw->sequencer, cfg, gw->stores, &gw->pz);
    return 0;
}

static int start_planes(gw_t *gw)
{
    const gw_config_t *cfg = &gw->cfg;
    gw_http_routes_t routes = {render_metrics, is_ready, gw};
    if (gw_http_start(&gw->http, gw->loop, &cfg->metrics_listen, &routes) != 0 ||
        gw_retransmit_start(&gw->retransmit, gw->loop, cfg, gw->stores, gw->pz.flushed_seq,
                            &gw->retransmit_stats) != 0)
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
    return 0;
}

static void start_loop_hooks(gw_t *gw)
{
    uv_check_init(gw->loop, &gw->flush_check);
    gw->flush_check.data = gw;
    uv_check_start(&gw->flush_check, on_check);
    gw_packetizer_start_heartbeats(&gw->pz, gw->loop);
    uv_signal_init(gw->loop, &gw->sigterm);
    uv_signal_init(gw->loop, &gw->sigint);
    gw->sigterm.data = gw->sigint.data = gw;
    uv_signal_start(&gw->sigterm, on_signal, SIGTERM);
    uv_signal_start(&gw->sigint, on_signal, SIGINT);
}

int gw_pipeline_start(gw_t *gw)
{
    if (start_stores(gw) != 0 || start_egress(gw) != 0 || start_planes(gw) != 0 ||
        start_ingress(gw) != 0)
        return -1;
    start_loop_hooks(gw);
    gw->started = true;
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
