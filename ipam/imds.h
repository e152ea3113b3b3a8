/* eni-ipam: the IMDSv2 client (libcurl).
 *
 * One lookup = a token PUT (with the TTL header) and two GETs on one keep-alive connection:
 * network/interfaces/macs/<mac>/local-ipv4s (first line = primary address) and
 * .../subnet-ipv4-cidr-block (for the prefix length). Proxies are off whatever the
 * environment says; every request has a timeout; transient failures (connection errors,
 * timeouts, 404 on a freshly attached ENI, 401 on an expired token, 429, 5xx) are retried a
 * bounded number of times with a doubling pause; bodies are capped at IPAM_IMDS_MAX_BODY.
 * Never logs: retries are reported through on_retry. */
#ifndef ENI_IPAM_IMDS_H
#define ENI_IPAM_IMDS_H

#include "ipam.h"

#define IPAM_IMDS_MAX_BODY       16384
#define IPAM_IMDS_TOKEN_TTL_S    60
#define IPAM_IMDS_BACKOFF_MS     50
#define IPAM_IMDS_BACKOFF_MAX_MS 1000

/* Called before each retry: what was being fetched, the attempt that failed (1-based), why. */
typedef void (*ipam_imds_retry_cb)(void *data, const char *what, int attempt, const char *why);

struct ipam_imds_opts {
    const char *endpoint;        /* "http://host[:port]", normalised by ipam_endpoint_normalise */
    long timeout_ms;             /* per request, connect included */
    int retries;                 /* retries after the first attempt, per request */
    long backoff_ms;             /* first pause; 0 means IPAM_IMDS_BACKOFF_MS */
    ipam_imds_retry_cb on_retry; /* may be NULL */
    void *data;
};

/* Asks IMDS for the primary IPv4 address of the ENI with this MAC ("xx:xx:xx:xx:xx:xx",
 * lower case) and its subnet's prefix length. Blocks for up to about
 * 3 * (retries + 1) * timeout_ms plus the pauses. Returns 0, or -code with err set:
 * 11 (unreachable, throttled, 404, 5xx after the retries), 102 (not an address), 103 (not a
 * CIDR, prefix out of range, address outside the subnet), 104 (body too large), 105 (token
 * refused), 106 (unexpected status), 100 (internal). */
int ipam_imds_lookup(const struct ipam_imds_opts *opts, const char *mac, struct ipam_lease *out,
                     struct ipam_error *err);

#endif
