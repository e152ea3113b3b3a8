/* Metrics: the Prometheus text exposition (0.0.4), rendered from the stages' public stats.
 * Plain counters and gauges are rows of one table (name, type, help, where the value lives
 * and how it is labelled); only what has a shape of its own -- histograms, the backend
 * label, probe figures -- has a function. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf_t;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    for (;;) {
        if (b->oom)
            return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        char *np = realloc(b->p, b->cap * 2);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap *= 2;
    }
}

static void help(sbuf_t *b, const char *name, const char *type, const char *text)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* Where a table row's value lives. */
typedef enum {
    SRC_INGRESS,
    SRC_UPSTREAM,
    SRC_PACKETIZER,
    SRC_EGRESS,
    SRC_RETRANSMIT,
    SRC_NEXT_SEQ,
    SRC_PAUSES,
} source_t;

/* How it is labelled: one value, per channel, per channel with an upstream, per channel and
 * line (egress socket), per publisher, or per reason (a name table). */
typedef enum { ONE, PER_CHANNEL, PER_UPSTREAM, PER_LINE, PER_USER, PER_REASON } scope_t;

typedef struct {
    const char *name, *type, *help;
    source_t src;
    size_t off; /* offset of the uint64_t (array) in the source struct */
    scope_t scope;
    const char *label;               /* PER_CHANNEL: an extra fixed label, or NULL */
    const char *const *reason_names; /* PER_REASON */
    int nreasons;
} row_t;

#define ING(f) SRC_INGRESS, offsetof(gw_ingress_stats_t, f)
#define UP(f)  SRC_UPSTREAM, offsetof(gw_upstream_stats_t, f)
#define PZ(f)  SRC_PACKETIZER, offsetof(gw_packetizer_stats_t, f)
#define EG(f)  SRC_EGRESS, offsetof(gw_egress_stats_t, f)
#define RT(f)  SRC_RETRANSMIT, offsetof(gw_retransmit_stats_t, f)

static const row_t rows[] = {
    {"mdcast_messages_in_total", "counter", "Messages received, by publisher and channel.",
     ING(messages_in), PER_USER, NULL, NULL, 0},
    {"mdcast_bytes_in_total", "counter", "Message bytes received, by publisher and channel.",
     ING(bytes_in), PER_USER, NULL, NULL, 0},
    {"mdcast_publishers_connected", "gauge", "Publishers logged in now.", ING(publishers), ONE,
     NULL, NULL, 0},
    {"mdcast_ingress_pauses_total", "counter",
     "Times reading from publishers stopped because egress was backed up.", SRC_PAUSES, 0, ONE,
     NULL, NULL, 0},
    {"mdcast_publisher_closes_total", "counter",
     "Publisher connections closed by the gateway, by reason.", ING(rejected), PER_REASON, NULL,
     gw_close_reason_names, GW_CLOSE_NREASONS},
    {"mdcast_upstream_connected", "gauge", "Connect mode: 1 while logged in upstream.",
     UP(connected), PER_UPSTREAM, NULL, NULL, 0},
    {"mdcast_upstream_logins_total", "counter", "Connect mode: upstream logins accepted.",
     UP(connects), PER_UPSTREAM, NULL, NULL, 0},
    {"mdcast_upstream_messages_total", "counter", "Connect mode: sequenced messages taken.",
     UP(messages), PER_UPSTREAM, NULL, NULL, 0},
    {"mdcast_upstream_duplicates_total", "counter",
     "Connect mode: replayed messages already sequenced (skipped).", UP(duplicates), PER_UPSTREAM,
     NULL, NULL, 0},
    {"mdcast_upstream_lost_total", "counter",
     "Connect mode: messages the upstream could not replay after a reconnect.", UP(skipped),
     PER_UPSTREAM, NULL, NULL, 0},
    {"mdcast_packets_out_total", "counter", "Datagrams sent, by channel and line.", EG(packets_out),
     PER_LINE, NULL, NULL, 0},
    {"mdcast_bytes_out_total", "counter", "UDP payload bytes sent, by channel and line.",
     EG(bytes_out), PER_LINE, NULL, NULL, 0},
    {"mdcast_heartbeats_sent_total", "counter", "MoldUDP64 heartbeats sent, by channel.",
     PZ(heartbeats), PER_CHANNEL, NULL, NULL, 0},
    {"mdcast_end_of_session_sent_total", "counter",
     "MoldUDP64 end-of-session packets sent, by channel.", PZ(ends), PER_CHANNEL, NULL, NULL, 0},
    {"mdcast_next_sequence", "gauge", "Sequence number the next message gets.", SRC_NEXT_SEQ, 0,
     PER_CHANNEL, NULL, NULL, 0},
    {"mdcast_send_retries_total", "counter", "Sends retried (ENOBUFS, EAGAIN, short).",
     EG(send_retries), ONE, NULL, NULL, 0},
    {"mdcast_send_retry_reasons_total", "counter",
     "Sends retried, by reason: enobufs (the interface queue was full), eagain (the socket "
     "buffer was full), short (or a sendmmsg batch cut short), canceled (io_uring: an earlier "
     "linked send of the socket was refused), other.",
     EG(retry_reasons), PER_REASON, NULL, gw_retry_reason_names, GW_RETRY_NREASONS},
    {"mdcast_egress_errqueue_messages_total", "counter",
     "Messages read from the multicast sockets' error queues (IP_RECVERR).", EG(errqueue_msgs), ONE,
     NULL, NULL, 0},
    {"mdcast_egress_congestion_waits_total", "counter",
     "Sends that waited for room in a full socket buffer (order kept).", EG(congestion_waits), ONE,
     NULL, NULL, 0},
    {"mdcast_egress_async_completions_total", "counter",
     "io_uring sends that completed after their submit (reaped via the eventfd).",
     EG(async_completions), ONE, NULL, NULL, 0},
    {"mdcast_egress_zerocopy_sends_total", "counter", "Sends issued as io_uring SEND_ZC.",
     EG(zc_sends), ONE, NULL, NULL, 0},
    {"mdcast_egress_zerocopy_notifications_total", "counter",
     "SEND_ZC notifications: the buffer was released back to the pool only after these.",
     EG(zc_notifs), ONE, NULL, NULL, 0},
    {"mdcast_egress_zerocopy_copied_total", "counter",
     "SEND_ZC notifications reporting that the kernel copied the data after all.", EG(zc_copied),
     ONE, NULL, NULL, 0},
    {"mdcast_rerequests_total", "counter", "Re-requests by channel and outcome.", RT(served),
     PER_CHANNEL, "result=\"served\"", NULL, 0},
    {"mdcast_rerequests_total", NULL, NULL, RT(ignored), PER_CHANNEL, "result=\"ignored\"", NULL,
     0},
    {"mdcast_rerequests_total", NULL, NULL, RT(limited), PER_CHANNEL, "result=\"rate_limited\"",
     NULL, 0},
    {"mdcast_retransmitted_messages_total", "counter", "Messages resent on re-request.",
     RT(messages), PER_CHANNEL, NULL, NULL, 0},
    {"mdcast_publisher_acks_total", "counter",
     "Messages acknowledged to their publishers (empty sequenced data packets).", ING(acks_sent),
     ONE, NULL, NULL, 0},
    {"mdcast_publisher_acks_dropped_total", "counter",
     "Acknowledgements not sent because the publisher did not read them.", ING(acks_dropped), ONE,
     NULL, NULL, 0},
    {"mdcast_retransmitted_from_journal_total", "counter",
     "Messages resent from the journal (no longer in the ring).", RT(from_journal), PER_CHANNEL,
     NULL, NULL, 0},
    {"mdcast_unservable_messages_total", "counter",
     "Requested messages already gone from the ring.", RT(unservable), PER_CHANNEL, NULL, NULL, 0},
};

static const void *source(const gw_metrics_view_t *v, source_t src)
{
    switch (src) {
    case SRC_INGRESS:
        return v->ingress;
    case SRC_UPSTREAM:
        return v->upstream;
    case SRC_PACKETIZER:
        return v->packetizer;
    case SRC_EGRESS:
        return &v->egress->stats;
    case SRC_RETRANSMIT:
        return v->retransmit;
    case SRC_NEXT_SEQ:
        return v->next_seq;
    case SRC_PAUSES:
        return v->ingress_pauses;
    }
    return NULL;
}

static uint64_t value(const row_t *r, const void *base, int i)
{
    const uint64_t *a = (const uint64_t *)((const char *)base + r->off);
    return a[i];
}

static void render_row(sbuf_t *b, const gw_metrics_view_t *v, const row_t *r)
{
    const gw_config_t *cfg = v->cfg;
    const void *base = source(v, r->src);
    if (r->scope == PER_UPSTREAM) {
        bool any = false;
        for (int ch = 0; ch < cfg->nchannels; ch++)
            any |= cfg->channels[ch].upstream;
        if (!any)
            return; /* no connect-mode channel: the family is absent, as before */
    }
    if (r->help)
        help(b, r->name, r->type, r->help);
    switch (r->scope) {
    case ONE:
        sb_printf(b, "%s %llu\n", r->name, (unsigned long long)value(r, base, 0));
        break;
    case PER_CHANNEL:
    case PER_UPSTREAM:
        for (int ch = 0; ch < cfg->nchannels; ch++) {
            if (r->scope == PER_UPSTREAM && !cfg->channels[ch].upstream)
                continue;
            sb_printf(b, "%s{channel=\"%s\"%s%s} %llu\n", r->name, cfg->channels[ch].name,
                      r->label ? "," : "", r->label ? r->label : "",
                      (unsigned long long)value(r, base, ch));
        }
        break;
    case PER_LINE:
        for (int ch = 0; ch < cfg->nchannels; ch++)
            for (int l = 0; l < cfg->channels[ch].nlines; l++)
                sb_printf(b, "%s{channel=\"%s\",line=\"%c\"} %llu\n", r->name,
                          cfg->channels[ch].name, 'A' + l,
                          (unsigned long long)value(r, base, (int)gw_egress_sock(ch, l)));
        break;
    case PER_USER:
        for (int u = 0; u < cfg->nusers; u++)
            sb_printf(b, "%s{publisher=\"%s\",channel=\"%s\"} %llu\n", r->name,
                      cfg->users[u].username, cfg->channels[cfg->users[u].channel].name,
                      (unsigned long long)value(r, base, u));
        break;
    case PER_REASON:
        for (int k = 0; k < r->nreasons; k++)
            sb_printf(b, "%s{reason=\"%s\"} %llu\n", r->name, r->reason_names[k],
                      (unsigned long long)value(r, base, k));
        break;
    }
}

static void render_histogram(sbuf_t *b, const char *name, const uint64_t *buckets, int nb,
                             const double *bounds, double scale, double sum, uint64_t count)
{
    uint64_t cum = 0;
    for (int i = 0; i < nb; i++) {
        cum += buckets[i];
        sb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i] * scale,
                  (unsigned long long)cum);
    }
    cum += buckets[nb];
    sb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
              (unsigned long long)cum, name, sum, name, (unsigned long long)count);
}

/* What is not a plain counter: state gauges, probe figures, sums, histograms. */
static void render_egress_shape(sbuf_t *b, const gw_metrics_view_t *v)
{
    const gw_egress_t *eg = v->egress;
    const gw_egress_stats_t *st = &eg->stats;
    help(b, "mdcast_ingress_paused", "gauge", "1 while publishers are not read (backpressure).");
    sb_printf(b, "mdcast_ingress_paused %d\n", *v->ingress_paused ? 1 : 0);
    help(b, "mdcast_egress_backend", "gauge", "Egress backend in use (1).");
    sb_printf(b, "mdcast_egress_backend{backend=\"%s\"} 1\n",
              eg->backend_name ? eg->backend_name : "none");
    help(b, "mdcast_egress_uring_fallback", "gauge",
         "1 when io_uring was wanted but refused and egress fell back to sendmmsg.");
    sb_printf(b, "mdcast_egress_uring_fallback %d\n", eg->uring_refused ? 1 : 0);
    if (eg->probe_ns[0] > 0) {
        help(b, "mdcast_egress_probe_seconds_per_datagram", "gauge",
             "io=auto start-up probe: median send time per datagram, by backend.");
        sb_printf(b, "mdcast_egress_probe_seconds_per_datagram{backend=\"io_uring\"} %.9g\n",
                  eg->probe_ns[0] / 1e9);
        sb_printf(b, "mdcast_egress_probe_seconds_per_datagram{backend=\"sendmmsg\"} %.9g\n",
                  eg->probe_ns[1] / 1e9);
    }
    help(b, "mdcast_egress_zerocopy", "gauge",
         "1 when packets of at least the threshold go as io_uring SEND_ZC.");
    sb_printf(b, "mdcast_egress_zerocopy %d\n", eg->ops && eg->zc_min_len != UINT32_MAX ? 1 : 0);
    help(b, "mdcast_egress_registered_buffers", "gauge",
         "1 when the packet pool is registered with io_uring (fixed buffers for SEND_ZC).");
    sb_printf(b, "mdcast_egress_registered_buffers %d\n", eg->fixed_bufs ? 1 : 0);
    if (eg->probe_zc_ns[0] > 0) {
        help(b, "mdcast_egress_zerocopy_probe_seconds_per_datagram", "gauge",
             "zerocopy=auto start-up probe: median send time per datagram, by mode.");
        sb_printf(b, "mdcast_egress_zerocopy_probe_seconds_per_datagram{mode=\"send\"} %.9g\n",
                  eg->probe_zc_ns[0] / 1e9);
        sb_printf(b, "mdcast_egress_zerocopy_probe_seconds_per_datagram{mode=\"send_zc\"} %.9g\n",
                  eg->probe_zc_ns[1] / 1e9);
    }
    help(b, "mdcast_send_errors_total", "counter", "Sends that failed for good.");
    sb_printf(b, "mdcast_send_errors_total %llu\n",
              (unsigned long long)(st->send_errors + v->retransmit->send_errors));
    double fb[GW_FLUSH_BUCKETS];
    for (int i = 0; i < GW_FLUSH_BUCKETS; i++)
        fb[i] = gw_flush_bounds[i];
    help(b, "mdcast_flush_packets", "histogram", "Datagrams per flush (one submission).");
    render_histogram(b, "mdcast_flush_packets", st->flush_buckets, GW_FLUSH_BUCKETS, fb, 1,
                     (double)st->flush_sum, st->flush_count);
    help(b, "mdcast_arrival_to_send_seconds", "histogram",
         "Time from a message's arrival on the ingress socket to its datagram's send.");
    render_histogram(b, "mdcast_arrival_to_send_seconds", st->lat_buckets, GW_LAT_BUCKETS,
                     gw_lat_bounds_us, 1e-6, (double)st->lat_sum_ns / 1e9, st->lat_count);
}

static void gauge(sbuf_t *b, const char *name, const char *text, double v)
{
    help(b, name, "gauge", text);
    sb_printf(b, "%s %.9g\n", name, v);
}

static void counter(sbuf_t *b, const char *name, const char *text, uint64_t v)
{
    help(b, name, "counter", text);
    sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void render_journal(sbuf_t *b, const gw_metrics_view_t *v)
{
    const gw_journal_stats_t *j = v->journal;
    gauge(b, "mdcast_journal_enabled", "1 when a journal is configured.", j ? 1 : 0);
    counter(b, "mdcast_sessions_ended_total", "Explicit ends of session (SIGUSR1, end time).",
            v->sessions_ended);
    gauge(b, "mdcast_egress_held_sends", "Sends held back until the journal wrote them.",
          v->held_sends);
    if (!j)
        return;
    counter(b, "mdcast_journal_records_total", "Records written to the journal.",
            j->records_written);
    counter(b, "mdcast_journal_bytes_total", "Bytes written to the journal.", j->bytes_written);
    counter(b, "mdcast_journal_fsyncs_total", "fdatasync calls.", j->fsyncs);
    help(b, "mdcast_journal_fsync_seconds_total", "counter", "Time spent in fdatasync.");
    sb_printf(b, "mdcast_journal_fsync_seconds_total %.9g\n", (double)j->fsync_ns_total / 1e9);
    counter(b, "mdcast_journal_write_errors_total", "Failed journal writes or fsyncs (retried).",
            j->write_errors);
    gauge(b, "mdcast_journal_failing", "1 while journal writes fail (disk full, EIO).",
          j->failing ? 1 : 0);
    gauge(b, "mdcast_journal_backlog_bytes", "Bytes appended, not yet written.",
          (double)j->backlog_bytes);
    gauge(b, "mdcast_journal_segments", "Segment files now.", (double)j->segments);
    gauge(b, "mdcast_journal_recovery_seconds", "Time the start spent recovering the journal.",
          (double)j->recovery_ns / 1e9);
    counter(b, "mdcast_journal_truncated_bytes_total", "Bytes cut by recovery (torn tails).",
            j->truncated_bytes);
}

char *gw_metrics_render(const gw_metrics_view_t *v, size_t *len)
{
    sbuf_t b = {malloc(16384), 0, 16384, false};
    if (!b.p)
        return NULL;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        render_row(&b, v, &rows[i]);
    render_egress_shape(&b, v);
    render_journal(&b, v);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
