/* Metrics: renders the Prometheus exposition from the stages' public stats structs and name
 * tables. It reads, through the view the wiring fills, and includes no stage internals. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include "config.h"
#include "egress.h"
#include "ingress.h"
#include "journal.h"
#include "packetizer.h"
#include "retransmit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const gw_config_t *cfg;
    const gw_ingress_stats_t *ingress;
    const gw_upstream_stats_t *upstream;
    const uint64_t *next_seq; /* per channel, the sequencer's */
    const gw_packetizer_stats_t *packetizer;
    unsigned held_sends; /* held for the journal now */
    const gw_egress_t *egress;
    const gw_retransmit_stats_t *retransmit;
    const gw_journal_stats_t *journal; /* NULL without a journal */
    uint64_t sessions_ended;           /* explicit ends of session */
    const uint64_t *ingress_pauses;    /* the wiring's back-pressure */
    const bool *ingress_paused;
} gw_metrics_view_t;

/* Renders the exposition into a malloc'd string (*len bytes), or NULL when out of memory. */
char *gw_metrics_render(const gw_metrics_view_t *v, size_t *len);

#endif /* GW_METRICS_H */
