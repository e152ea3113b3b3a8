/* eni-ipam: the network configuration read from stdin, validated (keys under `ipam` are
 * documented in config/eni-ipam.md). */
#ifndef ENI_IPAM_CONFIG_H
#define ENI_IPAM_CONFIG_H

#include <limits.h>

#include "ipam.h"

#define IPAM_DEFAULT_ENDPOINT   "http://169.254.169.254"
#define IPAM_DEFAULT_TIMEOUT_MS 1000
#define IPAM_DEFAULT_RETRIES    3
#define IPAM_MAX_TIMEOUT_MS     60000
#define IPAM_MAX_RETRIES        10
#define IPAM_MAX_PREV_IPS       16

struct ipam_config {
    enum ipam_version version;
    char name[256]; /* the network name, for logs; may be empty */
    char type[64];
    char imds_endpoint[256]; /* normalised: "http://host[:port]", no trailing slash */
    long imds_timeout_ms;
    int imds_retries;
    struct ipam_route routes[IPAM_MAX_ROUTES];
    size_t n_routes;
    int log_level;
    char log_file[PATH_MAX]; /* empty: stderr only */
    /* IPv4 addresses of prevResult (CHECK); has_prev_result tells whether it was present. */
    bool has_prev_result;
    struct ipam_cidr prev_ips[IPAM_MAX_PREV_IPS];
    size_t n_prev_ips;
};

/* Parses and validates the network configuration (len bytes of JSON, need not be
 * NUL-terminated). Fills cfg with the values or their defaults. Returns 0, or -code with err
 * set: 6 undecodable JSON, 1 missing/unsupported cniVersion, 7 bad ipam value (the message
 * names the key and why). When the JSON carried a supported cniVersion, cfg->version holds it
 * even on failure, so the error can be rendered in that version. */
int ipam_config_parse(const char *json, size_t len, struct ipam_config *cfg,
                      struct ipam_error *err);

/* Validates an imds_endpoint value and writes its normalised form to out (outsz bytes).
 * Returns 0 or -IPAM_E_INVALID_CONFIG with err naming the problem. */
int ipam_endpoint_normalise(const char *url, char *out, size_t outsz, struct ipam_error *err);

/* Parses "a.b.c.d/n" (strict dotted quad, n in 0..32). Returns 0 or -1. */
int ipam_cidr_parse(const char *s, struct ipam_cidr *out);
/* Parses a strict dotted-quad IPv4 address into network byte order. Returns 0 or -1. */
int ipam_ipv4_parse(const char *s, uint32_t *out);

#endif
