/* Datagram buffers: the pool the packetizer fills and egress sends from. It sits below both
 * stages (neither owns the other's buffers): a packet is taken by the packetizer, handed to
 * egress with one reference per send, and returned by egress after its last completion. */
#ifndef GW_PACKET_H
#define GW_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One datagram buffer. Its bytes must not change from the moment it is handed to egress
 * until every send that references it has completed (`refs` drops to 0): io_uring reads the
 * payload asynchronously, so a buffer is reused only after its last CQE. */
typedef struct gw_packet {
    uint8_t *buf;
    uint32_t len;
    uint32_t refs;
    uint16_t count;            /* messages in it (0 for heartbeats and end of session) */
    uint64_t seq;              /* sequence number of its first message (data packets) */
    int channel;               /* index of its channel */
    uint64_t first_arrival_ns; /* arrival of its first message (uv_hrtime) */
    struct gw_packet *next_free;
} gw_packet_t;

typedef struct {
    gw_packet_t *pkts;
    uint8_t *mem;
    uint32_t n;
    uint32_t free_count;
    uint32_t size; /* bytes per buffer */
    size_t stride; /* distance between buffers; mem spans n * stride bytes */
    bool scribble; /* tests: overwrite each buffer as it is released (catches early reuse) */
    gw_packet_t *free;
} gw_pool_t;

int gw_pool_init(gw_pool_t *p, uint32_t n, uint32_t size);
void gw_pool_close(gw_pool_t *p);
gw_packet_t *gw_pool_get(gw_pool_t *p); /* NULL when every buffer is in flight */
void gw_pool_put(gw_pool_t *p, gw_packet_t *pkt);

#endif /* GW_PACKET_H */
