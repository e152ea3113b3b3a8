/* The gateway's JSON config (cJSON). Every key is checked: unknown keys, wrong types and
 * values out of range are errors that name the key path and the reason, e.g.
 * "channels[1].session: must be 1-10 printable ASCII characters". */
#include "config.h"

#include "log.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *err;
    size_t errlen;
} ctx_t;

__attribute__((format(printf, 3, 4))) static int fail(ctx_t *c, const char *key, const char *fmt,
                                                      ...)
{
    int n = snprintf(c->err, c->errlen, "%s: ", key);
    if (n < 0 || (size_t)n >= c->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static void key_path(char *out, size_t cap, const char *parent, const char *key)
{
    if (parent[0])
        snprintf(out, cap, "%s.%s", parent, key);
    else
        snprintf(out, cap, "%s", key);
}

/* Rejects keys that are not in `allowed` (NULL-terminated). */
static int check_keys(ctx_t *c, const cJSON *obj, const char *path, const char *const *allowed)
{
    char k[160];
    if (!cJSON_IsObject(obj))
        return fail(c, path[0] ? path : "(top level)", "must be an object");
    for (const cJSON *it = obj->child; it; it = it->next) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, it->string) == 0;
        key_path(k, sizeof(k), path, it->string);
        if (!ok)
            return fail(c, k, "unknown key");
        for (const cJSON *dup = it->next; dup; dup = dup->next)
            if (strcmp(dup->string, it->string) == 0)
                return fail(c, k, "duplicate key");
    }
    return 0;
}

/* Reads an integer in [min, max]; absent -> `def` unless def < 0 (then required). */
static int get_int(ctx_t *c, const cJSON *obj, const char *path, const char *key, double min,
                   double max, double def, double *out)
{
    char k[160];
    key_path(k, sizeof(k), path, key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (def < 0)
            return fail(c, k, "required");
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return fail(c, k, "must be a number");
    double d = v->valuedouble;
    if (d != floor(d))
        return fail(c, k, "must be an integer");
    if (d < min || d > max)
        return fail(c, k, "must be between %.0f and %.0f", min, max);
    *out = d;
    return 0;
}

static int get_number(ctx_t *c, const cJSON *obj, const char *path, const char *key, double min,
                      double max, double def, double *out)
{
    char k[160];
    key_path(k, sizeof(k), path, key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return fail(c, k, "must be a number");
    if (!(v->valuedouble >= min && v->valuedouble <= max))
        return fail(c, k, "must be between %g and %g", min, max);
    *out = v->valuedouble;
    return 0;
}

/* Returns the string or NULL; `required` makes absence an error (*bad set). */
static const char *get_str(ctx_t *c, const cJSON *obj, const char *path, const char *key,
                           bool required, bool *bad)
{
    char k[160];
    key_path(k, sizeof(k), path, key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (required) {
            fail(c, k, "required");
            *bad = true;
        }
        return NULL;
    }
    if (!cJSON_IsString(v) || !v->valuestring) {
        fail(c, k, "must be a string");
        *bad = true;
        return NULL;
    }
    return v->valuestring;
}

static int get_bool(ctx_t *c, const cJSON *obj, const char *path, const char *key, bool def,
                    bool *out)
{
    char k[160];
    key_path(k, sizeof(k), path, key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v))
        return fail(c, k, "must be true or false");
    *out = cJSON_IsTrue(v);
    return 0;
}

/* "a.b.c.d:port" with a port in [1, 65535] (or [0, 65535] when port 0 is allowed). */
static int parse_hostport(ctx_t *c, const char *k, const char *s, bool allow_port0,
                          struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host) || colon == s)
        return fail(c, k, "must be IPV4:PORT, got \"%s\"", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port < (allow_port0 ? 0 : 1) || port > 65535)
        return fail(c, k, "bad port in \"%s\"", s);
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
        return fail(c, k, "bad IPv4 address in \"%s\"", s);
    return 0;
}

static bool is_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static int parse_users(ctx_t *c, const cJSON *ingress, gw_config_t *cfg)
{
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(ingress, "users");
    if (!users)
        return fail(c, "ingress.users", "required");
    if (!cJSON_IsArray(users))
        return fail(c, "ingress.users", "must be an array");
    if (cJSON_GetArraySize(users) > GW_MAX_USERS)
        return fail(c, "ingress.users", "at most %d users", GW_MAX_USERS);
    static const char *const keys[] = {"username", "password", "channel", NULL};
    int i = 0;
    for (const cJSON *u = users->child; u; u = u->next, i++) {
        char p[64], k[96];
        bool bad = false;
        snprintf(p, sizeof(p), "ingress.users[%d]", i);
        if (check_keys(c, u, p, keys))
            return -1;
        gw_user_config_t *uc = &cfg->users[i];
        const char *name = get_str(c, u, p, "username", true, &bad);
        const char *pass = get_str(c, u, p, "password", true, &bad);
        const char *chan = get_str(c, u, p, "channel", true, &bad);
        if (bad)
            return -1;
        snprintf(k, sizeof(k), "%s.username", p);
        if (!*name || strlen(name) > MDFEED_SOUP_USERNAME_LEN || !is_printable(name))
            return fail(c, k, "must be 1-6 printable ASCII characters without spaces");
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->users[j].username, name) == 0)
                return fail(c, k, "duplicate username \"%s\"", name);
        snprintf(k, sizeof(k), "%s.password", p);
        if (strlen(pass) > MDFEED_SOUP_PASSWORD_LEN || !is_printable(pass))
            return fail(c, k, "must be 0-10 printable ASCII characters without spaces");
        strcpy(uc->username, name);
        strcpy(uc->password, pass);
        uc->channel = -1;
        for (int j = 0; j < cfg->nchannels; j++)
            if (strcmp(cfg->channels[j].name, chan) == 0)
                uc->channel = j;
        snprintf(k, sizeof(k), "%s.channel", p);
        if (uc->channel < 0)
            return fail(c, k, "no channel named \"%s\"", chan);
        if (cfg->channels[uc->channel].upstream)
            return fail(c, k, "channel \"%s\" takes its sequence from an upstream (connect mode)",
                        chan);
    }
    cfg->nusers = i;
    return 0;
}

static int parse_ingress(ctx_t *c, const cJSON *root, gw_config_t *cfg)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "ingress");
    if (!in)
        return fail(c, "ingress", "required");
    static const char *const keys[] = {"listen", "heartbeat_ms", "idle_timeout_ms", "users", NULL};
    if (check_keys(c, in, "ingress", keys))
        return -1;
    bool bad = false;
    const char *listen = get_str(c, in, "ingress", "listen", true, &bad);
    if (bad || parse_hostport(c, "ingress.listen", listen, true, &cfg->ingress_listen))
        return -1;
    double hb, idle;
    if (get_int(c, in, "ingress", "heartbeat_ms", 10, 60000, 1000, &hb) ||
        get_int(c, in, "ingress", "idle_timeout_ms", 100, 3600000, 15000, &idle))
        return -1;
    if (idle <= hb)
        return fail(c, "ingress.idle_timeout_ms", "must be larger than ingress.heartbeat_ms");
    cfg->ingress_heartbeat_ms = (uint32_t)hb;
    cfg->idle_timeout_ms = (uint32_t)idle;
    return parse_users(c, in, cfg);
}

/* Zero-copy send (io_uring only) and registered buffers: egress_uring.c explains the cost. */
static int parse_zerocopy(ctx_t *c, const cJSON *eg, gw_config_t *cfg)
{
    bool bad = false;
    double thr;
    if (get_int(c, eg, "egress", "zerocopy_threshold", 64, MDFEED_MOLD_MAX_DATAGRAM, 4096, &thr) ||
        get_bool(c, eg, "egress", "registered_buffers", true, &cfg->registered_buffers))
        return -1;
    cfg->zerocopy_threshold = (uint32_t)thr;
    const char *zc = get_str(c, eg, "egress", "zerocopy", false, &bad);
    if (bad)
        return -1;
    if (!zc || strcmp(zc, "auto") == 0)
        cfg->zerocopy = GW_ZC_AUTO;
    else if (strcmp(zc, "on") == 0)
        cfg->zerocopy = GW_ZC_ON;
    else if (strcmp(zc, "off") == 0)
        cfg->zerocopy = GW_ZC_OFF;
    else
        return fail(c, "egress.zerocopy", "must be \"off\", \"on\" or \"auto\", got \"%s\"", zc);
    return 0;
}

static int parse_egress(ctx_t *c, const cJSON *root, gw_config_t *cfg)
{
    const cJSON *eg = cJSON_GetObjectItemCaseSensitive(root, "egress");
    if (!eg)
        return fail(c, "egress", "required");
    static const char *const keys[] = {"interface",
                                       "ttl",
                                       "loop",
                                       "payload_budget",
                                       "io",
                                       "heartbeat_ms",
                                       "end_of_session_repeats",
                                       "socket_buffer_bytes",
                                       "zerocopy",
                                       "zerocopy_threshold",
                                       "registered_buffers",
                                       NULL};
    if (check_keys(c, eg, "egress", keys))
        return -1;
    bool bad = false;
    const char *ifc = get_str(c, eg, "egress", "interface", true, &bad);
    if (bad)
        return -1;
    if (inet_pton(AF_INET, ifc, &cfg->egress_addr) == 1) {
        cfg->egress_ifname[0] = '\0';
    } else {
        if (!*ifc || strlen(ifc) >= IF_NAMESIZE || !is_printable(ifc) || strchr(ifc, '/'))
            return fail(c, "egress.interface", "must be an interface name or an IPv4 address");
        strcpy(cfg->egress_ifname, ifc);
        cfg->egress_addr.s_addr = htonl(INADDR_ANY);
    }
    double ttl, budget, hb, eos, sndbuf;
    /* A TTL above 1 by default: the TGW forwards across subnets. */
    if (get_int(c, eg, "egress", "ttl", 1, 255, 32, &ttl) ||
        get_bool(c, eg, "egress", "loop", false, &cfg->loop) ||
        get_int(c, eg, "egress", "payload_budget", 64, MDFEED_MOLD_MAX_DATAGRAM, 1400, &budget) ||
        get_int(c, eg, "egress", "heartbeat_ms", 50, 60000, 1000, &hb) ||
        get_int(c, eg, "egress", "end_of_session_repeats", 1, 10, 3, &eos) ||
        get_int(c, eg, "egress", "socket_buffer_bytes", 4096, 64 << 20, 4 << 20, &sndbuf))
        return -1;
    cfg->socket_buffer_bytes = (uint32_t)sndbuf;
    cfg->ttl = (int)ttl;
    cfg->payload_budget = (uint32_t)budget;
    cfg->mold_heartbeat_ms = (uint32_t)hb;
    cfg->end_of_session_repeats = (uint32_t)eos;
    const char *io = get_str(c, eg, "egress", "io", false, &bad);
    if (bad)
        return -1;
    if (!io || strcmp(io, "auto") == 0)
        cfg->io = GW_IO_AUTO;
    else if (strcmp(io, "io_uring") == 0)
        cfg->io = GW_IO_URING;
    else if (strcmp(io, "sendmmsg") == 0)
        cfg->io = GW_IO_MMSG;
    else
        return fail(c, "egress.io", "must be \"auto\", \"io_uring\" or \"sendmmsg\", got \"%s\"",
                    io);
    return parse_zerocopy(c, eg, cfg);
}

static int parse_line(ctx_t *c, const char *k, const cJSON *v, struct sockaddr_in *out)
{
    if (!cJSON_IsString(v))
        return fail(c, k, "must be a string GROUP:PORT");
    if (parse_hostport(c, k, v->valuestring, false, out))
        return -1;
    uint32_t a = ntohl(out->sin_addr.s_addr);
    /* Administratively scoped groups only (RFC 2365); never the 224.0.0.0/24 control block. */
    if ((a >> 24) != 239)
        return fail(c, k, "group must be in 239.0.0.0/8, got \"%s\"", v->valuestring);
    return 0;
}

/* Connect mode: the channel's messages and their sequence numbers come from an upstream
 * SoupBinTCP server, so every gateway on that upstream session publishes the same sequence. */
static int parse_upstream(ctx_t *c, const cJSON *ch, const char *p, gw_channel_config_t *cc)
{
    char up[96], k[128];
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(ch, "upstream");
    if (!u)
        return 0;
    snprintf(up, sizeof(up), "%s.upstream", p);
    static const char *const keys[] = {"connect", "username",     "password",
                                       "session", "reconnect_ms", NULL};
    if (check_keys(c, u, up, keys))
        return -1;
    bool bad = false;
    const char *addr = get_str(c, u, up, "connect", true, &bad);
    const char *user = get_str(c, u, up, "username", true, &bad);
    const char *pass = get_str(c, u, up, "password", false, &bad);
    const char *sess = get_str(c, u, up, "session", false, &bad);
    if (bad)
        return -1;
    snprintf(k, sizeof(k), "%s.connect", up);
    if (parse_hostport(c, k, addr, false, &cc->upstream_addr))
        return -1;
    snprintf(k, sizeof(k), "%s.username", up);
    if (!*user || strlen(user) > MDFEED_SOUP_USERNAME_LEN || !is_printable(user))
        return fail(c, k, "must be 1-6 printable ASCII characters without spaces");
    snprintf(k, sizeof(k), "%s.password", up);
    if (pass && (strlen(pass) > MDFEED_SOUP_PASSWORD_LEN || !is_printable(pass)))
        return fail(c, k, "must be 0-10 printable ASCII characters without spaces");
    snprintf(k, sizeof(k), "%s.session", up);
    if (sess && (strlen(sess) > MDFEED_SOUP_SESSION_LEN || !is_printable(sess)))
        return fail(c, k, "must be 0-10 printable ASCII characters without spaces");
    double rms;
    if (get_int(c, u, up, "reconnect_ms", 10, 60000, 1000, &rms))
        return -1;
    cc->upstream = true;
    strcpy(cc->upstream_user, user);
    strcpy(cc->upstream_pass, pass ? pass : "");
    strcpy(cc->upstream_session, sess ? sess : "");
    cc->reconnect_ms = (uint32_t)rms;
    return 0;
}

static int parse_channel(ctx_t *c, const cJSON *ch, int i, gw_config_t *cfg)
{
    char p[64], k[96];
    snprintf(p, sizeof(p), "channels[%d]", i);
    static const char *const keys[] = {"name",          "session",    "lines",    "retransmit_port",
                                       "ring_messages", "ring_bytes", "upstream", NULL};
    if (check_keys(c, ch, p, keys))
        return -1;
    gw_channel_config_t *cc = &cfg->channels[i];
    bool bad = false;
    const char *name = get_str(c, ch, p, "name", true, &bad);
    const char *session = get_str(c, ch, p, "session", true, &bad);
    if (bad)
        return -1;
    snprintf(k, sizeof(k), "%s.name", p);
    if (!*name || strlen(name) >= GW_NAME_LEN || !is_printable(name) || strchr(name, '"') ||
        strchr(name, '\\'))
        return fail(c, k, "must be 1-%d printable characters without spaces or quotes",
                    GW_NAME_LEN - 1);
    for (int j = 0; j < i; j++)
        if (strcmp(cfg->channels[j].name, name) == 0)
            return fail(c, k, "duplicate channel name \"%s\"", name);
    strcpy(cc->name, name);
    snprintf(k, sizeof(k), "%s.session", p);
    if (mdfeed_mold_session_set(cc->session, session) != 0)
        return fail(c, k, "must be 1-10 printable ASCII characters, not starting with a space");

    const cJSON *lines = cJSON_GetObjectItemCaseSensitive(ch, "lines");
    snprintf(k, sizeof(k), "%s.lines", p);
    if (!lines)
        return fail(c, k, "required");
    if (!cJSON_IsArray(lines) || cJSON_GetArraySize(lines) < 1 ||
        cJSON_GetArraySize(lines) > GW_MAX_LINES)
        return fail(c, k, "must be an array of one or two \"GROUP:PORT\" (lines A and B)");
    cc->nlines = 0;
    for (const cJSON *l = lines->child; l; l = l->next) {
        snprintf(k, sizeof(k), "%s.lines[%d]", p, cc->nlines);
        if (parse_line(c, k, l, &cc->lines[cc->nlines]))
            return -1;
        cc->nlines++;
    }
    if (cc->nlines == 2 && cc->lines[0].sin_addr.s_addr == cc->lines[1].sin_addr.s_addr) {
        snprintf(k, sizeof(k), "%s.lines[1]", p);
        return fail(c, k, "line B must use a different group than line A");
    }
    for (int j = 0; j < i; j++)
        for (int a = 0; a < cfg->channels[j].nlines; a++)
            for (int b = 0; b < cc->nlines; b++)
                if (cfg->channels[j].lines[a].sin_addr.s_addr == cc->lines[b].sin_addr.s_addr &&
                    cfg->channels[j].lines[a].sin_port == cc->lines[b].sin_port) {
                    snprintf(k, sizeof(k), "%s.lines[%d]", p, b);
                    return fail(c, k, "group:port already used by channel \"%s\"",
                                cfg->channels[j].name);
                }
    double port, msgs, bytes;
    if (get_int(c, ch, p, "retransmit_port", 1, 65535, -1, &port) ||
        get_int(c, ch, p, "ring_messages", 16, 1 << 26, 1 << 20, &msgs) ||
        get_int(c, ch, p, "ring_bytes", 65536, 4294967295.0, 64 << 20, &bytes))
        return -1;
    cc->retransmit_port = (uint16_t)port;
    for (int j = 0; j < i; j++)
        if (cfg->channels[j].retransmit_port == cc->retransmit_port) {
            snprintf(k, sizeof(k), "%s.retransmit_port", p);
            return fail(c, k, "port %u already used by channel \"%s\"", cc->retransmit_port,
                        cfg->channels[j].name);
        }
    cc->ring_messages = (uint32_t)msgs;
    cc->ring_bytes = (uint64_t)bytes;
    return parse_upstream(c, ch, p, cc);
}

static int parse_channels(ctx_t *c, const cJSON *root, gw_config_t *cfg)
{
    const cJSON *chs = cJSON_GetObjectItemCaseSensitive(root, "channels");
    if (!chs)
        return fail(c, "channels", "required");
    if (!cJSON_IsArray(chs) || cJSON_GetArraySize(chs) == 0)
        return fail(c, "channels", "must be a non-empty array");
    if (cJSON_GetArraySize(chs) > GW_MAX_CHANNELS)
        return fail(c, "channels", "at most %d channels", GW_MAX_CHANNELS);
    int i = 0;
    for (const cJSON *ch = chs->child; ch; ch = ch->next, i++) {
        cfg->nchannels = i;
        if (parse_channel(c, ch, i, cfg))
            return -1;
    }
    cfg->nchannels = i;
    return 0;
}

static int parse_retransmit(ctx_t *c, const cJSON *root, gw_config_t *cfg)
{
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(root, "retransmit");
    cfg->retransmit_addr.s_addr = htonl(INADDR_ANY);
    cfg->retransmit_max_messages = 1000;
    cfg->retransmit_rate = 50000;
    cfg->retransmit_burst = 10000;
    if (!rt)
        return 0;
    static const char *const keys[] = {"address", "max_messages_per_request", "rate_messages_per_s",
                                       "burst_messages", NULL};
    if (check_keys(c, rt, "retransmit", keys))
        return -1;
    bool bad = false;
    const char *addr = get_str(c, rt, "retransmit", "address", false, &bad);
    if (bad)
        return -1;
    if (addr && inet_pton(AF_INET, addr, &cfg->retransmit_addr) != 1)
        return fail(c, "retransmit.address", "must be an IPv4 address, got \"%s\"", addr);
    double maxm, rate, burst;
    if (get_int(c, rt, "retransmit", "max_messages_per_request", 1, 65534, 1000, &maxm) ||
        get_number(c, rt, "retransmit", "rate_messages_per_s", 1, 1e9, 50000, &rate) ||
        get_number(c, rt, "retransmit", "burst_messages", 1, 1e9, 10000, &burst))
        return -1;
    cfg->retransmit_max_messages = (uint32_t)maxm;
    cfg->retransmit_rate = rate;
    cfg->retransmit_burst = burst;
    return 0;
}

/* `journal` (optional): the journal stage's own parser validates the object. A channel's
 * journal directory is named after it, so the name must be a safe file name. */
static int parse_journal(ctx_t *c, const cJSON *root, gw_config_t *cfg)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "journal");
    gw_journal_config_default(&cfg->journal);
    if (!j)
        return 0;
    if (gw_journal_config_parse(j, "journal", &cfg->journal, c->err, c->errlen) != 0)
        return -1;
    for (int i = 0; i < cfg->nchannels; i++) {
        const char *n = cfg->channels[i].name;
        bool ok = strcmp(n, ".") != 0 && strcmp(n, "..") != 0;
        for (const char *p = n; *p && ok; p++)
            ok = isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-';
        if (!ok) {
            char k[64];
            snprintf(k, sizeof(k), "channels[%d].name", i);
            return fail(c, k, "with a journal it names a directory: use [A-Za-z0-9._-] only");
        }
    }
    cfg->journal_on = true;
    return 0;
}

/* `end_of_session_at` (optional): "HH:MM" or "HH:MM:SS", UTC -- the end of the trading day,
 * when the gateway ends every channel's session on its own. */
static int parse_end_time(ctx_t *c, const cJSON *root, gw_config_t *cfg)
{
    bool bad = false;
    const char *t = get_str(c, root, "", "end_of_session_at", false, &bad);
    cfg->end_of_session_at_s = -1;
    if (bad || !t)
        return bad ? -1 : 0;
    unsigned h, m, sec = 0;
    char tail;
    int n = sscanf(t, "%2u:%2u:%2u%c", &h, &m, &sec, &tail);
    if (!(n == 2 || n == 3) || h > 23 || m > 59 || sec > 59 || strlen(t) != (n == 2 ? 5u : 8u))
        return fail(c, "end_of_session_at", "must be \"HH:MM\" or \"HH:MM:SS\" (UTC), got \"%s\"",
                    t);
    cfg->end_of_session_at_s = (int32_t)(h * 3600 + m * 60 + sec);
    return 0;
}

static int parse_root(ctx_t *c, const cJSON *root, gw_config_t *cfg)
{
    static const char *const keys[] = {"ingress", "egress",    "channels", "retransmit",
                                       "metrics", "log_level", "journal",  "end_of_session_at",
                                       "comment", NULL};
    if (check_keys(c, root, "", keys))
        return -1;
    /* Channels first: users refer to them by name. */
    if (parse_channels(c, root, cfg) || parse_ingress(c, root, cfg) || parse_egress(c, root, cfg) ||
        parse_retransmit(c, root, cfg))
        return -1;
    for (int i = 0; i < cfg->nchannels; i++) {
        bool fed = cfg->channels[i].upstream;
        for (int u = 0; u < cfg->nusers && !fed; u++)
            fed = cfg->users[u].channel == i;
        if (!fed) {
            char k[64];
            snprintf(k, sizeof(k), "channels[%d]", i);
            return fail(c, k, "nothing feeds this channel (no ingress user and no upstream)");
        }
    }
    for (int i = 0; i < cfg->nchannels; i++)
        if (cfg->channels[i].ring_bytes < cfg->payload_budget) {
            char k[64];
            snprintf(k, sizeof(k), "channels[%d].ring_bytes", i);
            return fail(c, k, "must be at least egress.payload_budget (%u)", cfg->payload_budget);
        }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "metrics");
    if (!m)
        return fail(c, "metrics", "required");
    static const char *const mkeys[] = {"listen", NULL};
    if (check_keys(c, m, "metrics", mkeys))
        return -1;
    bool bad = false;
    const char *ml = get_str(c, m, "metrics", "listen", true, &bad);
    if (bad || parse_hostport(c, "metrics.listen", ml, true, &cfg->metrics_listen))
        return -1;
    if (parse_journal(c, root, cfg) || parse_end_time(c, root, cfg))
        return -1;
    const char *lvl = get_str(c, root, "", "log_level", false, &bad);
    if (bad)
        return -1;
    cfg->log_level = GW_LOG_INFO;
    if (lvl && (cfg->log_level = gw_log_level_parse(lvl)) < 0)
        return fail(c, "log_level", "must be debug, info, warn or error, got \"%s\"", lvl);
    return 0;
}

int gw_config_parse(const char *json, gw_config_t *cfg, char *err, size_t errlen)
{
    ctx_t c = {err, errlen};
    memset(cfg, 0, sizeof(*cfg));
    err[0] = '\0';
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        char near[24] = "";
        if (at)
            snprintf(near, sizeof(near), "%.20s", at);
        return fail(&c, "(file)", "not valid JSON near \"%s\"", near);
    }
    int rc = parse_root(&c, root, cfg);
    cJSON_Delete(root);
    return rc;
}

int gw_config_load(const char *path, gw_config_t *cfg, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, gw_strerror(errno));
        return -1;
    }
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    bool too_big = buf && n == (1 << 20) - 1 && fgetc(f) != EOF;
    fclose(f);
    if (!buf || too_big) {
        free(buf);
        snprintf(err, errlen, "%s: %s", path, buf ? "larger than 1 MiB" : "out of memory");
        return -1;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        free(buf);
        snprintf(err, errlen, "%s: contains a NUL byte", path);
        return -1;
    }
    int rc = gw_config_parse(buf, cfg, err, errlen);
    free(buf);
    return rc;
}

const char *gw_io_name(gw_io_t io)
{
    return io == GW_IO_URING ? "io_uring" : io == GW_IO_MMSG ? "sendmmsg" : "auto";
}
