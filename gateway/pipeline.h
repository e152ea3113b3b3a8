/* The wiring: gw_t holds one of each stage and connects them in the order of DESIGN.md,
 *   ingress -> sequencer -> store / packetizer -> egress,
 * with the retransmission server reading the stores and the HTTP plane reading every
 * stage's stats. Feedback travels up only through what this file installs: the egress
 * completion callback, back-pressure (pause / resume of ingress), the flush at the end of
 * every loop iteration. Everything runs on one libuv loop thread. */
#ifndef GW_PIPELINE_H
#define GW_PIPELINE_H

#include "config.h"
#include "egress.h"
#include "http.h"
#include "ingress.h"
#include "journal.h"
#include "packet.h"
#include "packetizer.h"
#include "retransmit.h"
#include "sequencer.h"
#include "store.h"

#include <stdbool.h>
#include <uv.h>

typedef struct gw {
    uv_loop_t *loop;
    gw_config_t cfg;
    /* The stages, in data-flow order. */
    gw_ingress_t *ingress;
    gw_upstreams_t *upstreams; /* connect-mode clients (NULL when none) */
    gw_sequencer_t sequencer;
    gw_store_t stores[GW_MAX_CHANNELS];
    gw_packetizer_t pz;
    gw_pool_t pool;
    gw_egress_t egress;
    gw_retransmit_t *retransmit;
    gw_http_t *http;
    gw_journal_t *journal; /* NULL without one */
    /* Their stats, owned here so they outlive a stage that stops. */
    gw_ingress_stats_t ingress_stats;
    gw_upstream_stats_t upstream_stats;
    gw_retransmit_stats_t retransmit_stats;
    uint64_t ingress_pauses;
    bool ingress_paused;  /* back-pressure: publishers are not read while egress is backed up */
    bool journal_failing; /* writes fail (disk full, EIO): not ready, ingress paused */
    uint64_t sessions_ended;
    uv_check_t flush_check;
    uv_signal_t sigterm, sigint, sigusr1;
    uv_timer_t eod_timer; /* end_of_session_at */
    bool stopping;
    int exit_status; /* set by a failed start: 1, or 2 for a journal that must not be cut */
    bool started;    /* start completed: shutdown sends the end of session */
    bool egress_ready;
    char egress_ifname[IF_NAMESIZE];                                 /* resolved egress interface */
    char base_session[GW_MAX_CHANNELS][MDFEED_MOLD_SESSION_LEN + 1]; /* as configured */
} gw_t;

/* Sets every stage up over gw->cfg and gw->loop. Returns 0, or -1 (logged): the caller
 * then shuts down what was started. */
int gw_pipeline_start(gw_t *gw);
/* Stops ingress and drains: flushes, and with a journal waits for it to write everything and
 * keeps the session open for the next process; without one sends end of session (when
 * started: the next start takes a new session name anyway). Closes every stage's handles;
 * the loop then runs out. Safe to call twice. */
void gw_pipeline_shutdown(gw_t *gw);
/* The explicit end of a session (SIGUSR1, end_of_session_at): end of session on every line,
 * then each listen-mode channel continues in a new session from sequence 1 (journaled, so a
 * restart continues the new one); publishers are logged out to log in to it. */
void gw_pipeline_end_session(gw_t *gw);
/* Takes a new session name for channel `ch`: the configured name's first 4 characters and
 * 6 base-36 digits of the tenths of a second since 2026-01-01 UTC, after waiting for the
 * next tenth so that two processes in a row never share one (docs/GATEWAY.md). */
void gw_pipeline_new_session_name(gw_t *gw, int ch, const char *base);

/* Frees what outlives the loop (after uv_run returned). */
void gw_pipeline_release(gw_t *gw);

#endif /* GW_PIPELINE_H */
