/* eni-ipam: network configuration parsing and validation (cJSON).
 *
 * Every rejected value names its key and the reason, so an operator reading the pod's events
 * knows what to fix. Unknown keys under `ipam` are refused: a misspelt `imds_timeout` would
 * otherwise be silently ignored and the default used. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "log.h"

const char *const ipam_version_names[IPAM_V_COUNT] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};

int ipam_version_parse(const char *s)
{
    for (int i = 0; i < IPAM_V_COUNT; i++)
        if (strcmp(s, ipam_version_names[i]) == 0)
            return i;
    return -1;
}

int ipam_ipv4_parse(const char *s, uint32_t *out)
{
    struct in_addr a;
    /* inet_pton accepts only the strict dotted quad (no octal, no short forms). */
    if (inet_pton(AF_INET, s, &a) != 1)
        return -1;
    *out = a.s_addr;
    return 0;
}

int ipam_cidr_parse(const char *s, struct ipam_cidr *out)
{
    const char *slash = strchr(s, '/');
    char host[INET_ADDRSTRLEN];
    size_t hlen;

    if (slash == NULL)
        return -1;
    hlen = (size_t)(slash - s);
    if (hlen == 0 || hlen >= sizeof(host))
        return -1;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (ipam_ipv4_parse(host, &out->addr) != 0)
        return -1;
    /* One or two digits, no sign, no leading zero except "0" itself. */
    const char *p = slash + 1;
    size_t plen = strlen(p);
    if (plen == 0 || plen > 2 || !isdigit((unsigned char)p[0]) ||
        (plen == 2 && (!isdigit((unsigned char)p[1]) || p[0] == '0')))
        return -1;
    int prefix = atoi(p);
    if (prefix > 32)
        return -1;
    out->prefix = (uint8_t)prefix;
    return 0;
}

static bool host_is_name(const char *h, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '.')
            return false;
    return true;
}

int ipam_endpoint_normalise(const char *url, char *out, size_t outsz, struct ipam_error *err)
{
    static const char scheme[] = "http://";
    const char *key = "ipam.imds_endpoint";
    const char *auth, *end, *port = NULL;
    char host[256];
    size_t alen, hlen;

    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                         "%s \"%.64s\": must start with http:// (IMDS speaks plain HTTP)", key,
                         url);
    auth = url + sizeof(scheme) - 1;
    end = strchr(auth, '/');
    if (end == NULL)
        end = auth + strlen(auth);
    else if (strcmp(end, "/") != 0)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                         "%s \"%.64s\": must not carry a path (the plugin appends /latest/...)",
                         key, url);
    alen = (size_t)(end - auth);
    if (alen == 0 || alen >= sizeof(host))
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "%s \"%.64s\": missing or overlong host", key,
                         url);

    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        struct in6_addr a6;
        if (close == NULL)
            return ipam_fail(err, IPAM_E_INVALID_CONFIG, "%s \"%.64s\": unterminated [IPv6]", key,
                             url);
        hlen = (size_t)(close - auth - 1);
        memcpy(host, auth + 1, hlen);
        host[hlen] = '\0';
        if (inet_pton(AF_INET6, host, &a6) != 1)
            return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                             "%s \"%.64s\": \"%s\" is not an IPv6 address", key, url, host);
        if (close + 1 < end) {
            if (close[1] != ':')
                return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                                 "%s \"%.64s\": junk after the IPv6 address", key, url);
            port = close + 2;
        }
    } else {
        const char *colon = memchr(auth, ':', alen);
        hlen = colon ? (size_t)(colon - auth) : alen;
        memcpy(host, auth, hlen);
        host[hlen] = '\0';
        if (!host_is_name(host, hlen))
            return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                             "%s \"%.64s\": \"%.64s\" is not a valid host (use a numeric address "
                             "such as 169.254.169.254 or [fd00:ec2::254])",
                             key, url, host);
        if (colon)
            port = colon + 1;
    }

    if (port != NULL) {
        size_t plen = (size_t)(end - port);
        long v = 0;
        if (plen == 0 || plen > 5)
            return ipam_fail(err, IPAM_E_INVALID_CONFIG, "%s \"%.64s\": bad port", key, url);
        for (size_t i = 0; i < plen; i++) {
            if (!isdigit((unsigned char)port[i]))
                return ipam_fail(err, IPAM_E_INVALID_CONFIG, "%s \"%.64s\": bad port", key, url);
            v = v * 10 + (port[i] - '0');
        }
        if (v < 1 || v > 65535)
            return ipam_fail(err, IPAM_E_INVALID_CONFIG, "%s \"%.64s\": port out of range 1..65535",
                             key, url);
    }

    if ((size_t)(end - url) >= outsz)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "%s: too long", key);
    memcpy(out, url, (size_t)(end - url));
    out[end - url] = '\0';
    return 0;
}

/* Reads an integer key into *out within [lo, hi]; absent keeps the default. */
static int get_int(const cJSON *ipam, const char *name, long lo, long hi, long *out,
                   struct ipam_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ipam, name);
    if (v == NULL)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long)v->valuedouble)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "ipam.%s: must be an integer", name);
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "ipam.%s: %.0f is out of range %ld..%ld", name,
                         v->valuedouble, lo, hi);
    *out = (long)v->valuedouble;
    return 0;
}

/* Copies a string key into out; absent keeps the default. */
static int get_string(const cJSON *ipam, const char *name, char *out, size_t outsz,
                      struct ipam_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ipam, name);
    if (v == NULL)
        return 0;
    if (!cJSON_IsString(v))
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "ipam.%s: must be a string", name);
    if (strlen(v->valuestring) >= outsz)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "ipam.%s: longer than %zu bytes", name,
                         outsz - 1);
    strcpy(out, v->valuestring);
    return 0;
}

static int parse_route(const cJSON *r, size_t i, struct ipam_route *out, struct ipam_error *err)
{
    const cJSON *it;
    bool have_dst = false;

    if (!cJSON_IsObject(r))
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "ipam.routes[%zu]: must be an object", i);
    memset(out, 0, sizeof(*out));
    cJSON_ArrayForEach(it, r)
    {
        if (strcmp(it->string, "dst") == 0) {
            if (!cJSON_IsString(it) || ipam_cidr_parse(it->valuestring, &out->dst) != 0)
                return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                                 "ipam.routes[%zu].dst: must be an IPv4 CIDR such as "
                                 "\"224.0.0.0/4\"",
                                 i);
            uint32_t mask = out->dst.prefix ? htonl(~0u << (32 - out->dst.prefix)) : 0;
            if ((out->dst.addr & ~mask) != 0)
                return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                                 "ipam.routes[%zu].dst: \"%s\" has host bits set", i,
                                 it->valuestring);
            have_dst = true;
        } else if (strcmp(it->string, "gw") == 0) {
            if (!cJSON_IsString(it) || ipam_ipv4_parse(it->valuestring, &out->gw) != 0)
                return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                                 "ipam.routes[%zu].gw: must be an IPv4 address", i);
            out->has_gw = true;
        } else {
            return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                             "ipam.routes[%zu]: unknown key \"%.64s\" (known: dst, gw)", i,
                             it->string);
        }
    }
    if (!have_dst)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "ipam.routes[%zu]: missing \"dst\"", i);
    return 0;
}

static int parse_routes(const cJSON *ipam, struct ipam_config *cfg, struct ipam_error *err)
{
    const cJSON *routes = cJSON_GetObjectItemCaseSensitive(ipam, "routes");
    const cJSON *r;
    size_t i = 0;

    if (routes == NULL)
        return 0; /* keep the default 224.0.0.0/4 */
    if (!cJSON_IsArray(routes))
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "ipam.routes: must be an array");
    if (cJSON_GetArraySize(routes) > IPAM_MAX_ROUTES)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "ipam.routes: more than %d entries",
                         IPAM_MAX_ROUTES);
    cJSON_ArrayForEach(r, routes)
    {
        int rc = parse_route(r, i, &cfg->routes[i], err);
        if (rc < 0)
            return rc;
        i++;
    }
    cfg->n_routes = i;
    return 0;
}

static int parse_ipam(const cJSON *ipam, struct ipam_config *cfg, struct ipam_error *err)
{
    static const char *const known[] = {"type",         "imds_endpoint", "imds_timeout_ms",
                                        "imds_retries", "routes",        "log_level",
                                        "log_file"};
    const cJSON *it;
    char endpoint[256] = "";
    char level[16] = "";
    long timeout = cfg->imds_timeout_ms, retries = cfg->imds_retries;
    int rc;

    cJSON_ArrayForEach(it, ipam)
    {
        bool ok = false;
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            ok = ok || strcmp(it->string, known[k]) == 0;
        if (!ok)
            return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                             "ipam: unknown key \"%.64s\" (known: type, imds_endpoint, "
                             "imds_timeout_ms, imds_retries, routes, log_level, log_file)",
                             it->string);
        /* Go's encoding/json (the runtime, host-device) keeps the last of duplicate keys,
         * cJSON the first: refuse them rather than disagree with the caller. */
        for (const cJSON *prev = ipam->child; prev != it; prev = prev->next)
            if (strcmp(prev->string, it->string) == 0)
                return ipam_fail(err, IPAM_E_INVALID_CONFIG, "ipam.%s: duplicate key", it->string);
    }
    if ((rc = get_string(ipam, "type", cfg->type, sizeof(cfg->type), err)) < 0)
        return rc;
    if (cfg->type[0] == '\0')
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "ipam.type: missing or empty");
    if ((rc = get_string(ipam, "imds_endpoint", endpoint, sizeof(endpoint), err)) < 0)
        return rc;
    if (endpoint[0] != '\0' && (rc = ipam_endpoint_normalise(endpoint, cfg->imds_endpoint,
                                                             sizeof(cfg->imds_endpoint), err)) < 0)
        return rc;
    if ((rc = get_int(ipam, "imds_timeout_ms", 1, IPAM_MAX_TIMEOUT_MS, &timeout, err)) < 0)
        return rc;
    if ((rc = get_int(ipam, "imds_retries", 0, IPAM_MAX_RETRIES, &retries, err)) < 0)
        return rc;
    cfg->imds_timeout_ms = timeout;
    cfg->imds_retries = (int)retries;
    if ((rc = parse_routes(ipam, cfg, err)) < 0)
        return rc;
    if ((rc = get_string(ipam, "log_level", level, sizeof(level), err)) < 0)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                         "ipam.log_level: must be one of debug, info, warn, error");
    if (level[0] != '\0' && (cfg->log_level = ipam_log_level_parse(level)) < 0)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                         "ipam.log_level: \"%s\" is not one of debug, info, warn, error", level);
    if ((rc = get_string(ipam, "log_file", cfg->log_file, sizeof(cfg->log_file), err)) < 0)
        return rc;
    if (cfg->log_file[0] != '\0' && cfg->log_file[0] != '/')
        return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                         "ipam.log_file: \"%.64s\" must be an absolute path", cfg->log_file);
    return 0;
}

/* prevResult (CHECK): collects the IPv4 addresses of its `ips`. The shape is the same in
 * 0.3.x..1.1.0 for what we read (0.3.x adds a "version" field we ignore). */
static int parse_prev_result(const cJSON *prev, struct ipam_config *cfg, struct ipam_error *err)
{
    const cJSON *ips, *ip;
    size_t i = 0;

    if (!cJSON_IsObject(prev))
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "prevResult: must be an object");
    cfg->has_prev_result = true;
    ips = cJSON_GetObjectItemCaseSensitive(prev, "ips");
    if (ips == NULL)
        return 0;
    if (!cJSON_IsArray(ips))
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "prevResult.ips: must be an array");
    cJSON_ArrayForEach(ip, ips)
    {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(ip, "address");
        struct ipam_cidr c;
        if (!cJSON_IsString(a))
            return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                             "prevResult.ips[%zu].address: missing or not a string", i);
        if (strchr(a->valuestring, ':') != NULL) { /* IPv6: not ours to check */
            i++;
            continue;
        }
        if (ipam_cidr_parse(a->valuestring, &c) != 0)
            return ipam_fail(err, IPAM_E_INVALID_CONFIG,
                             "prevResult.ips[%zu].address: \"%.64s\" is not an IPv4 CIDR", i,
                             a->valuestring);
        if (cfg->n_prev_ips < IPAM_MAX_PREV_IPS)
            cfg->prev_ips[cfg->n_prev_ips++] = c;
        i++;
    }
    return 0;
}

static void set_defaults(struct ipam_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->version = IPAM_V1_0_0;
    strcpy(cfg->imds_endpoint, IPAM_DEFAULT_ENDPOINT);
    cfg->imds_timeout_ms = IPAM_DEFAULT_TIMEOUT_MS;
    cfg->imds_retries = IPAM_DEFAULT_RETRIES;
    /* The multicast range on net1, with no gateway: host-device would otherwise make the
     * gateway the next hop of the multicast route. */
    cfg->routes[0].dst.addr = htonl(0xE0000000u);
    cfg->routes[0].dst.prefix = 4;
    cfg->n_routes = 1;
    cfg->log_level = IPAM_LOG_INFO;
}

static int parse_root(const cJSON *root, struct ipam_config *cfg, struct ipam_error *err)
{
    const cJSON *ver, *name, *ipam, *prev;
    int v;

    if (!cJSON_IsObject(root))
        return ipam_fail(err, IPAM_E_DECODE, "network configuration must be a JSON object");
    ver = cJSON_GetObjectItemCaseSensitive(root, "cniVersion");
    if (ver == NULL)
        return ipam_fail(err, IPAM_E_INCOMPATIBLE_VERSION,
                         "cniVersion missing (read as 0.1.0, which is not supported; supported: "
                         "0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)");
    if (!cJSON_IsString(ver))
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "cniVersion: must be a string");
    if ((v = ipam_version_parse(ver->valuestring)) < 0)
        return ipam_fail(err, IPAM_E_INCOMPATIBLE_VERSION,
                         "cniVersion \"%.32s\" is not supported (supported: 0.3.0, 0.3.1, "
                         "0.4.0, 1.0.0, 1.1.0)",
                         ver->valuestring);
    cfg->version = (enum ipam_version)v;

    name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (cJSON_IsString(name) && strlen(name->valuestring) < sizeof(cfg->name))
        strcpy(cfg->name, name->valuestring);

    ipam = cJSON_GetObjectItemCaseSensitive(root, "ipam");
    if (ipam == NULL)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "missing \"ipam\" section");
    if (!cJSON_IsObject(ipam))
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "\"ipam\" must be an object");
    int rc = parse_ipam(ipam, cfg, err);
    if (rc < 0)
        return rc;

    prev = cJSON_GetObjectItemCaseSensitive(root, "prevResult");
    if (prev != NULL && !cJSON_IsNull(prev))
        return parse_prev_result(prev, cfg, err);
    return 0;
}

int ipam_config_parse(const char *json, size_t len, struct ipam_config *cfg, struct ipam_error *err)
{
    const char *end = NULL;
    cJSON *root;
    int rc;

    set_defaults(cfg);
    if (len == 0)
        return ipam_fail(err, IPAM_E_DECODE, "no network configuration on stdin");
    root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (root == NULL) {
        size_t at = end ? (size_t)(end - json) : 0;
        return ipam_fail(err, IPAM_E_DECODE,
                         "network configuration on stdin is not valid JSON (error near byte %zu)",
                         at);
    }
    rc = parse_root(root, cfg, err);
    cJSON_Delete(root);
    return rc;
}
