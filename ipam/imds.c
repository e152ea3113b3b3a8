/* eni-ipam: IMDSv2 client (libcurl easy interface, one handle, one connection). */
#include "imds.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "config.h"

#define STR_(x)   #x
#define STR(x)    STR_(x)
#define MACS_PATH "/latest/meta-data/network/interfaces/macs/"

enum outcome {
    OUTCOME_OK,
    OUTCOME_RETRY, /* transient: worth another attempt */
    OUTCOME_FATAL, /* err is set */
};

struct body {
    char buf[IPAM_IMDS_MAX_BODY + 1];
    size_t len;
    bool overflow;
};

struct imds {
    const struct ipam_imds_opts *opts;
    CURL *curl;
    char token[512]; /* empty until a token PUT succeeded, cleared on 401 */
    struct body body;
    char why[192]; /* the last transient failure, for the final message */
};

/* Copies up to n bytes of s into out, replacing anything unprintable, so that garbage from
 * the metadata service can be quoted in an error message safely. */
static const char *printable(const char *s, size_t n, char *out, size_t outsz)
{
    size_t i = 0;
    for (; i < n && i + 1 < outsz && s[i] != '\0'; i++)
        out[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
    out[i] = '\0';
    return out;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct body *b = userp;
    size_t n = size * nmemb;
    if (b->len + n > IPAM_IMDS_MAX_BODY) {
        b->overflow = true;
        return 0; /* makes curl abort the transfer with CURLE_WRITE_ERROR */
    }
    memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return n;
}

static int setup_handle(struct imds *m, struct ipam_error *err)
{
    CURL *c = curl_easy_init();
    const struct ipam_imds_opts *o = m->opts;

    if (c == NULL)
        return ipam_fail(err, IPAM_E_INTERNAL, "libcurl initialisation failed");
    m->curl = c;
    /* IMDS is link-local: a proxy from the environment (HTTP_PROXY, ALL_PROXY) must never
     * see the token or the request. */
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTP);
#endif
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE, (long)IPAM_IMDS_MAX_BODY);
    curl_easy_setopt(c, CURLOPT_USERAGENT, IPAM_PLUGIN_NAME "/" IPAM_PLUGIN_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &m->body);
    return 0;
}

/* Runs one request; fills m->body and *status, or m->why on a transport failure. */
static enum outcome perform(struct imds *m, const char *what, long *status, struct ipam_error *err)
{
    char url[512];
    CURLcode rc;

    m->body.len = 0;
    m->body.overflow = false;
    m->body.buf[0] = '\0';
    rc = curl_easy_perform(m->curl);
    if (m->body.overflow || rc == CURLE_FILESIZE_EXCEEDED) {
        char *u = NULL;
        curl_easy_getinfo(m->curl, CURLINFO_EFFECTIVE_URL, &u);
        snprintf(url, sizeof(url), "%s", u ? u : "");
        ipam_fail(err, IPAM_E_IMDS_TOO_LARGE, "IMDS answer to %s is larger than %d bytes", what,
                  IPAM_IMDS_MAX_BODY);
        ipam_detail(err, "%s", url);
        return OUTCOME_FATAL;
    }
    if (rc != CURLE_OK) {
        snprintf(m->why, sizeof(m->why), "%s", curl_easy_strerror(rc));
        return OUTCOME_RETRY;
    }
    curl_easy_getinfo(m->curl, CURLINFO_RESPONSE_CODE, status);
    return OUTCOME_OK;
}

/* Maps an HTTP status to an outcome; 200 is OK. */
static enum outcome classify(struct imds *m, const char *what, long status, struct ipam_error *err)
{
    if (status == 200)
        return OUTCOME_OK;
    if (status == 401) {
        m->token[0] = '\0'; /* expired or unknown token: fetch a new one */
        snprintf(m->why, sizeof(m->why), "HTTP 401 (token rejected)");
        return OUTCOME_RETRY;
    }
    if (status == 404) {
        snprintf(m->why, sizeof(m->why),
                 "HTTP 404 (no metadata for this MAC yet: freshly attached ENI?)");
        return OUTCOME_RETRY;
    }
    if (status == 429) {
        snprintf(m->why, sizeof(m->why), "HTTP 429 (throttled)");
        return OUTCOME_RETRY;
    }
    if (status >= 500 && status <= 599) {
        snprintf(m->why, sizeof(m->why), "HTTP %ld (server error)", status);
        return OUTCOME_RETRY;
    }
    ipam_fail(err, IPAM_E_IMDS_UNEXPECTED, "IMDS answered HTTP %ld to %s", status, what);
    return OUTCOME_FATAL;
}

static bool token_is_sane(const char *t, size_t n)
{
    if (n == 0 || n >= 512)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)t[i]) && strchr("+/=_-.", t[i]) == NULL)
            return false;
    return true;
}

static enum outcome get_token(struct imds *m, struct ipam_error *err)
{
    char url[320];
    struct curl_slist *hdrs = NULL, *h;
    long status = 0;
    enum outcome oc;

    snprintf(url, sizeof(url), "%s/latest/api/token", m->opts->endpoint);
    h = curl_slist_append(NULL,
                          "X-aws-ec2-metadata-token-ttl-seconds: " STR(IPAM_IMDS_TOKEN_TTL_S));
    if (h == NULL) {
        ipam_fail(err, IPAM_E_INTERNAL, "out of memory (headers)");
        return OUTCOME_FATAL;
    }
    hdrs = h;
    curl_easy_setopt(m->curl, CURLOPT_URL, url);
    curl_easy_setopt(m->curl, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(m->curl, CURLOPT_POSTFIELDS, ""); /* Content-Length: 0 */
    curl_easy_setopt(m->curl, CURLOPT_HTTPHEADER, hdrs);
    oc = perform(m, "the token request", &status, err);
    curl_easy_setopt(m->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(m->curl, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(m->curl, CURLOPT_HTTPGET, 1L);
    curl_slist_free_all(hdrs);
    if (oc != OUTCOME_OK)
        return oc;
    if (status == 403) {
        ipam_fail(err, IPAM_E_IMDS_REFUSED,
                  "IMDS refused the token request (HTTP 403): is IMDS access disabled for this "
                  "instance, or the PUT hop limit too low?");
        ipam_detail(err, "%s", url);
        return OUTCOME_FATAL;
    }
    if ((oc = classify(m, "the token request", status, err)) != OUTCOME_OK)
        return oc;
    /* Strip a trailing newline, then refuse anything that could not be a token (it goes
     * into a header line). */
    size_t n = m->body.len;
    while (n > 0 && (m->body.buf[n - 1] == '\n' || m->body.buf[n - 1] == '\r'))
        n--;
    if (!token_is_sane(m->body.buf, n)) {
        char q[48];
        ipam_fail(err, IPAM_E_IMDS_UNEXPECTED, "IMDS token answer \"%s\" is not a token",
                  printable(m->body.buf, n, q, sizeof(q)));
        return OUTCOME_FATAL;
    }
    memcpy(m->token, m->body.buf, n);
    m->token[n] = '\0';
    return OUTCOME_OK;
}

static enum outcome get_metadata(struct imds *m, const char *what, const char *url,
                                 struct ipam_error *err)
{
    char hdr[600];
    struct curl_slist *hdrs;
    long status = 0;
    enum outcome oc;

    snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s", m->token);
    hdrs = curl_slist_append(NULL, hdr);
    if (hdrs == NULL) {
        ipam_fail(err, IPAM_E_INTERNAL, "out of memory (headers)");
        return OUTCOME_FATAL;
    }
    curl_easy_setopt(m->curl, CURLOPT_URL, url);
    curl_easy_setopt(m->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(m->curl, CURLOPT_HTTPHEADER, hdrs);
    oc = perform(m, what, &status, err);
    curl_easy_setopt(m->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    if (oc != OUTCOME_OK)
        return oc;
    return classify(m, what, status, err);
}

static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Fetches url into m->body with the bounded retries; a token is (re)fetched first whenever
 * none is held. */
static int fetch(struct imds *m, const char *what, const char *url, struct ipam_error *err)
{
    const struct ipam_imds_opts *o = m->opts;
    long backoff = o->backoff_ms > 0 ? o->backoff_ms : IPAM_IMDS_BACKOFF_MS;

    for (int attempt = 0;; attempt++) {
        enum outcome oc = OUTCOME_OK;
        if (m->token[0] == '\0' && (oc = get_token(m, err)) == OUTCOME_RETRY) {
            char why[sizeof(m->why)];
            snprintf(why, sizeof(why), "%s", m->why);
            snprintf(m->why, sizeof(m->why), "token request: %.160s", why);
        }
        if (oc == OUTCOME_OK)
            oc = get_metadata(m, what, url, err);
        if (oc == OUTCOME_OK)
            return 0;
        if (oc == OUTCOME_FATAL) {
            if (err->details[0] == '\0')
                ipam_detail(err, "%s", url);
            return -err->code;
        }
        if (attempt >= o->retries) {
            ipam_fail(err, IPAM_E_TRY_AGAIN, "IMDS %s failed after %d attempt%s: %s", what,
                      attempt + 1, attempt ? "s" : "", m->why);
            ipam_detail(err, "%s", url);
            return -IPAM_E_TRY_AGAIN;
        }
        if (o->on_retry != NULL)
            o->on_retry(o->data, what, attempt + 1, m->why);
        pause_ms(backoff);
        backoff = backoff * 2 > IPAM_IMDS_BACKOFF_MAX_MS ? IPAM_IMDS_BACKOFF_MAX_MS : backoff * 2;
    }
}

/* Trims surrounding whitespace of the first line of the body, in place. */
static char *first_line(struct body *b)
{
    char *s = b->buf, *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strcspn(s, "\n");
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    *e = '\0';
    return s;
}

static bool body_is_text(const struct body *b)
{
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->buf[i];
        if (c == '\0' || (c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static int parse_address(struct imds *m, const char *mac, uint32_t *addr, struct ipam_error *err)
{
    char q[64];
    const char *line;

    if (!body_is_text(&m->body))
        return ipam_fail(err, IPAM_E_IMDS_BAD_ADDRESS,
                         "IMDS local-ipv4s for %s is not text (binary bytes in the answer)", mac);
    line = first_line(&m->body);
    if (*line == '\0')
        return ipam_fail(err, IPAM_E_IMDS_BAD_ADDRESS, "IMDS local-ipv4s for %s is empty", mac);
    if (ipam_ipv4_parse(line, addr) != 0)
        return ipam_fail(err, IPAM_E_IMDS_BAD_ADDRESS,
                         "IMDS local-ipv4s for %s: first line \"%s\" is not an IPv4 address", mac,
                         printable(line, strlen(line), q, sizeof(q)));
    return 0;
}

static int parse_subnet(struct imds *m, const char *mac, struct ipam_cidr *subnet,
                        struct ipam_error *err)
{
    char q[64];
    const char *line, *slash;

    if (!body_is_text(&m->body))
        return ipam_fail(err, IPAM_E_IMDS_BAD_SUBNET,
                         "IMDS subnet-ipv4-cidr-block for %s is not text", mac);
    line = first_line(&m->body);
    printable(line, strlen(line), q, sizeof(q));
    slash = strchr(line, '/');
    if (slash != NULL && slash[1] != '\0' && strspn(slash + 1, "0123456789") == strlen(slash + 1)) {
        long prefix = strlen(slash + 1) > 3 ? 999 : strtol(slash + 1, NULL, 10);
        if (prefix < 1 || prefix > 32)
            return ipam_fail(err, IPAM_E_IMDS_BAD_SUBNET,
                             "IMDS subnet-ipv4-cidr-block for %s: prefix in \"%s\" is out of "
                             "range 1..32",
                             mac, q);
    }
    if (ipam_cidr_parse(line, subnet) != 0)
        return ipam_fail(err, IPAM_E_IMDS_BAD_SUBNET,
                         "IMDS subnet-ipv4-cidr-block for %s: \"%s\" is not an IPv4 CIDR", mac, q);
    return 0;
}

static bool mac_is_valid(const char *mac)
{
    if (strlen(mac) != 17)
        return false;
    for (int i = 0; i < 17; i++) {
        if (i % 3 == 2 ? mac[i] != ':' : !isxdigit((unsigned char)mac[i]) || isupper(mac[i]))
            return false;
    }
    return true;
}

int ipam_imds_lookup(const struct ipam_imds_opts *opts, const char *mac, struct ipam_lease *out,
                     struct ipam_error *err)
{
    static struct imds m; /* 17 KiB of body: static, the plugin does one lookup per run */
    char url[400];
    struct ipam_cidr subnet;
    uint32_t addr = 0;
    int rc;

    if (!mac_is_valid(mac))
        return ipam_fail(err, IPAM_E_INTERNAL, "\"%.32s\" is not a lower-case MAC address", mac);
    memset(&m, 0, sizeof(m));
    m.opts = opts;
    if ((rc = setup_handle(&m, err)) < 0)
        return rc;

    snprintf(url, sizeof(url), "%s" MACS_PATH "%s/local-ipv4s", opts->endpoint, mac);
    if ((rc = fetch(&m, "local-ipv4s", url, err)) < 0)
        goto out;
    if ((rc = parse_address(&m, mac, &addr, err)) < 0)
        goto out;

    snprintf(url, sizeof(url), "%s" MACS_PATH "%s/subnet-ipv4-cidr-block", opts->endpoint, mac);
    if ((rc = fetch(&m, "subnet-ipv4-cidr-block", url, err)) < 0)
        goto out;
    if ((rc = parse_subnet(&m, mac, &subnet, err)) < 0)
        goto out;

    uint32_t mask = htonl(~0u << (32 - subnet.prefix));
    if ((addr & mask) != (subnet.addr & mask)) {
        char a[INET_ADDRSTRLEN], s[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &addr, a, sizeof(a));
        inet_ntop(AF_INET, &subnet.addr, s, sizeof(s));
        rc = ipam_fail(err, IPAM_E_IMDS_BAD_SUBNET,
                       "IMDS gave address %s for %s, outside its subnet %s/%u", a, mac, s,
                       (unsigned)subnet.prefix);
        goto out;
    }
    out->ip.addr = addr;
    out->ip.prefix = subnet.prefix;
    rc = 0;
out:
    curl_easy_cleanup(m.curl);
    return rc;
}
