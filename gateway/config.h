/* Config stage: the gateway's JSON config (cJSON), validated whole at start. Every other
 * stage reads its part of gw_config_t; nothing changes it after gw_config_load(). */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include "journal.h"
#include "mdfeed/moldudp64.h"
#include "mdfeed/soupbintcp.h"

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_MAX_CHANNELS 32
#define GW_MAX_USERS    128
#define GW_MAX_LINES    2
#define GW_MAX_SOCKETS  (GW_MAX_CHANNELS * GW_MAX_LINES)
#define GW_NAME_LEN     32

typedef enum { GW_IO_AUTO = 0, GW_IO_URING = 1, GW_IO_MMSG = 2 } gw_io_t;
typedef enum { GW_ZC_AUTO = 0, GW_ZC_ON = 1, GW_ZC_OFF = 2 } gw_zerocopy_t;

typedef struct {
    char name[GW_NAME_LEN];
    char session[MDFEED_MOLD_SESSION_LEN]; /* space-padded, as on the wire */
    int nlines;
    struct sockaddr_in lines[GW_MAX_LINES]; /* group:port of line A (and B) */
    uint16_t retransmit_port;
    uint32_t ring_messages;
    uint64_t ring_bytes;
    /* Connect mode (optional): the gateway logs in to an upstream SoupBinTCP server. */
    bool upstream;
    struct sockaddr_in upstream_addr;
    char upstream_user[MDFEED_SOUP_USERNAME_LEN + 1];
    char upstream_pass[MDFEED_SOUP_PASSWORD_LEN + 1];
    char upstream_session[MDFEED_SOUP_SESSION_LEN + 1]; /* "" = the server's current one */
    uint32_t reconnect_ms;
} gw_channel_config_t;

typedef struct {
    char username[MDFEED_SOUP_USERNAME_LEN + 1];
    char password[MDFEED_SOUP_PASSWORD_LEN + 1];
    int channel; /* index into gw_config_t.channels */
} gw_user_config_t;

typedef struct {
    struct sockaddr_in ingress_listen;
    uint32_t ingress_heartbeat_ms; /* SoupBinTCP server heartbeat after this much silence */
    uint32_t idle_timeout_ms;      /* drop a publisher silent for this long */
    int nusers;
    gw_user_config_t users[GW_MAX_USERS];

    char egress_ifname[IF_NAMESIZE]; /* "" when the interface was given as an address */
    struct in_addr egress_addr;      /* INADDR_ANY when given by name */
    int ttl;
    bool loop;
    uint32_t payload_budget; /* bytes of UDP payload, MoldUDP64 header included */
    gw_io_t io;
    uint32_t mold_heartbeat_ms;
    uint32_t end_of_session_repeats;
    uint32_t socket_buffer_bytes; /* SO_SNDBUF of each multicast socket (capped by wmem_max) */
    gw_zerocopy_t zerocopy;       /* io_uring SEND_ZC for packets of >= zerocopy_threshold */
    uint32_t zerocopy_threshold;  /* bytes */
    bool registered_buffers;      /* register the packet pool with io_uring (used by SEND_ZC) */

    int nchannels;
    gw_channel_config_t channels[GW_MAX_CHANNELS];

    struct in_addr retransmit_addr;
    uint32_t retransmit_max_messages; /* per request */
    double retransmit_rate;           /* messages per second per requester */
    double retransmit_burst;          /* bucket depth, messages */

    struct sockaddr_in metrics_listen;
    int log_level;

    bool journal_on; /* key `journal` given */
    gw_journal_config_t journal;
    int32_t end_of_session_at_s; /* seconds after 00:00 UTC, or -1 (only on request) */
} gw_config_t;

/* Fills `cfg` from JSON text. Returns 0, or -1 with "key: reason" in `err`. */
int gw_config_parse(const char *json, gw_config_t *cfg, char *err, size_t errlen);
/* Reads and parses a file. Returns 0, or -1 with the reason in `err`. */
int gw_config_load(const char *path, gw_config_t *cfg, char *err, size_t errlen);
const char *gw_io_name(gw_io_t io);

#endif /* GW_CONFIG_H */
