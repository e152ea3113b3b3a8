/* eni-ipam: shared types of the CNI IPAM plugin (DESIGN.md "eni-ipam").
 *
 * The plugin is split so that each part can be tested alone: spec I/O and result rendering
 * (cni.c), the `ipam` configuration (config.c), the network-namespace/netlink look-up
 * (netns.c), the IMDSv2 client (imds.c) and JSON-lines logging (log.c). main.c holds one
 * function per CNI verb. Functions return 0 on success or the negated CNI error code, and fill
 * a struct ipam_error with the message the runtime will show. */
#ifndef ENI_IPAM_IPAM_H
#define ENI_IPAM_IPAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPAM_PLUGIN_NAME    "eni-ipam"
#define IPAM_PLUGIN_VERSION "0.1.0"

/* Error codes: 1-99 are the CNI spec's, 100 and above are this plugin's own. */
enum ipam_code {
    IPAM_E_INCOMPATIBLE_VERSION = 1,
    IPAM_E_UNSUPPORTED_FIELD = 2,
    IPAM_E_INVALID_ENV = 4,
    IPAM_E_IO = 5,
    IPAM_E_DECODE = 6,
    IPAM_E_INVALID_CONFIG = 7,
    IPAM_E_TRY_AGAIN = 11,
    IPAM_E_INTERNAL = 100,
    IPAM_E_LINK_NOT_FOUND = 101,   /* CNI_IFNAME is not in CNI_NETNS */
    IPAM_E_IMDS_BAD_ADDRESS = 102, /* local-ipv4s is not an IPv4 address */
    IPAM_E_IMDS_BAD_SUBNET = 103,  /* subnet-ipv4-cidr-block is not a CIDR / out of range */
    IPAM_E_IMDS_TOO_LARGE = 104,   /* an IMDS body exceeded IPAM_IMDS_MAX_BODY */
    IPAM_E_IMDS_REFUSED = 105,     /* the token PUT was refused (403): IMDS access disabled */
    IPAM_E_IMDS_UNEXPECTED = 106,  /* an HTTP status IMDS does not use for these paths */
    IPAM_E_CHECK_MISMATCH = 107,   /* CHECK: the link lacks the prevResult address */
    IPAM_E_NETNS = 108,            /* entering or leaving CNI_NETNS failed */
};

struct ipam_error {
    int code;
    char msg[256];
    char details[512];
};

/* Records code and message (printf-style) in err; returns -code so callers can
 * `return ipam_fail(err, ...)`. details start empty; ipam_detail() sets them. */
int ipam_fail(struct ipam_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ipam_detail(struct ipam_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The spec versions this plugin speaks, oldest first. */
enum ipam_version {
    IPAM_V0_3_0,
    IPAM_V0_3_1,
    IPAM_V0_4_0,
    IPAM_V1_0_0,
    IPAM_V1_1_0,
    IPAM_V_COUNT,
};
extern const char *const ipam_version_names[IPAM_V_COUNT];
/* Returns the enum value for a version string, or -1 when it is not supported. */
int ipam_version_parse(const char *s);

/* An IPv4 address with its prefix length; addresses are in network byte order. */
struct ipam_cidr {
    uint32_t addr;
    uint8_t prefix;
};

/* What ADD hands out: the ENI's primary address with its subnet's prefix length. */
struct ipam_lease {
    struct ipam_cidr ip;
};

#define IPAM_MAX_ROUTES 32
struct ipam_route {
    struct ipam_cidr dst;
    bool has_gw;
    uint32_t gw;
};

#endif
