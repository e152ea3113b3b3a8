/* eni-ipam: CNI spec I/O — environment variables, stdin, and the JSON written to stdout. */
#include "cni.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int ipam_fail(struct ipam_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->details[0] = '\0';
    return -code;
}

void ipam_detail(struct ipam_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->details, sizeof(err->details), fmt, ap);
    va_end(ap);
}

static const struct {
    const char *name;
    enum ipam_command cmd;
} commands[] = {
    {"ADD", IPAM_CMD_ADD},         {"DEL", IPAM_CMD_DEL},       {"CHECK", IPAM_CMD_CHECK},
    {"VERSION", IPAM_CMD_VERSION}, {"STATUS", IPAM_CMD_STATUS}, {"GC", IPAM_CMD_GC},
};

int ipam_env_command(struct ipam_env *env, struct ipam_error *err)
{
    const char *c = getenv("CNI_COMMAND");

    memset(env, 0, sizeof(*env));
    if (c == NULL || *c == '\0')
        return ipam_fail(err, IPAM_E_INVALID_ENV,
                         "CNI_COMMAND is not set (expected ADD, DEL, CHECK, VERSION, STATUS or "
                         "GC)");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(c, commands[i].name) == 0) {
            env->command = commands[i].cmd;
            env->command_name = commands[i].name;
            return 0;
        }
    }
    return ipam_fail(err, IPAM_E_INVALID_ENV,
                     "CNI_COMMAND \"%.32s\" is unknown (expected ADD, DEL, CHECK, VERSION, "
                     "STATUS or GC)",
                     c);
}

int ipam_ifname_validate(const char *name, struct ipam_error *err)
{
    size_t n = strlen(name);

    if (n == 0)
        return ipam_fail(err, IPAM_E_INVALID_ENV, "CNI_IFNAME is empty");
    if (n > IPAM_IFNAME_MAX)
        return ipam_fail(err, IPAM_E_INVALID_ENV,
                         "CNI_IFNAME \"%.32s\" is %zu bytes; interface names have at most %d", name,
                         n, IPAM_IFNAME_MAX);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return ipam_fail(err, IPAM_E_INVALID_ENV, "CNI_IFNAME \"%s\" is not a valid name", name);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c == ':' || isspace(c) || c < 0x20 || c == 0x7f)
            return ipam_fail(err, IPAM_E_INVALID_ENV,
                             "CNI_IFNAME \"%s\" contains an invalid character (no '/', ':' or "
                             "whitespace)",
                             name);
    }
    return 0;
}

static int container_id_validate(const char *id, struct ipam_error *err)
{
    size_t n = strlen(id);
    if (n == 0)
        return ipam_fail(err, IPAM_E_INVALID_ENV, "CNI_CONTAINERID is empty");
    if (n > 1024)
        return ipam_fail(err, IPAM_E_INVALID_ENV, "CNI_CONTAINERID is longer than 1024 bytes");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!isalnum(c) && c != '_' && c != '.' && c != '-')
            return ipam_fail(err, IPAM_E_INVALID_ENV,
                             "CNI_CONTAINERID contains '%c' (allowed: letters, digits, '_', "
                             "'.', '-')",
                             isprint(c) ? c : '?');
    }
    return 0;
}

/* CNI_ARGS is "KEY=VALUE;KEY=VALUE". Only K8S_POD_NAMESPACE and K8S_POD_NAME are used (for
 * logs); the rest is accepted as the runtime's business, but the form is checked. */
static int args_parse(struct ipam_env *env, struct ipam_error *err)
{
    const char *p = env->args;

    if (p == NULL || *p == '\0')
        return 0;
    if (strlen(p) > 65536)
        return ipam_fail(err, IPAM_E_INVALID_ENV, "CNI_ARGS is longer than 64 KiB");
    while (*p != '\0') {
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (n > 0 && (eq == NULL || eq == p))
            return ipam_fail(err, IPAM_E_INVALID_ENV, "CNI_ARGS: \"%.*s\" is not KEY=VALUE",
                             (int)(n > 64 ? 64 : n), p);
        if (eq != NULL) {
            size_t klen = (size_t)(eq - p), vlen = n - klen - 1;
            char *dst = NULL;
            if (klen == 17 && memcmp(p, "K8S_POD_NAMESPACE", 17) == 0)
                dst = env->pod_namespace;
            else if (klen == 12 && memcmp(p, "K8S_POD_NAME", 12) == 0)
                dst = env->pod_name;
            if (dst != NULL && vlen < sizeof(env->pod_name)) {
                memcpy(dst, eq + 1, vlen);
                dst[vlen] = '\0';
            }
        }
        p += n;
        if (*p == ';')
            p++;
    }
    return 0;
}

int ipam_env_parse(struct ipam_env *env, struct ipam_error *err)
{
    bool needs_netns = env->command == IPAM_CMD_ADD || env->command == IPAM_CMD_CHECK;
    bool needs_ids = needs_netns || env->command == IPAM_CMD_DEL;
    int rc;

    env->container_id = getenv("CNI_CONTAINERID");
    env->netns = getenv("CNI_NETNS");
    env->ifname = getenv("CNI_IFNAME");
    env->args = getenv("CNI_ARGS");
    if (!needs_ids)
        return 0;

    if (env->container_id == NULL)
        return ipam_fail(err, IPAM_E_INVALID_ENV, "CNI_CONTAINERID is not set");
    if ((rc = container_id_validate(env->container_id, err)) < 0)
        return rc;
    if (env->ifname == NULL)
        return ipam_fail(err, IPAM_E_INVALID_ENV, "CNI_IFNAME is not set");
    if ((rc = ipam_ifname_validate(env->ifname, err)) < 0)
        return rc;
    if (needs_netns && (env->netns == NULL || *env->netns == '\0'))
        return ipam_fail(err, IPAM_E_INVALID_ENV, "CNI_NETNS is not set");
    if (env->netns != NULL && *env->netns != '\0' && env->netns[0] != '/')
        return ipam_fail(err, IPAM_E_INVALID_ENV, "CNI_NETNS \"%.64s\" is not an absolute path",
                         env->netns);
    return args_parse(env, err);
}

int ipam_read_all(FILE *f, size_t cap, char **out, size_t *len, struct ipam_error *err)
{
    size_t size = 4096, used = 0;
    char *buf = malloc(size + 1);

    if (buf == NULL)
        return ipam_fail(err, IPAM_E_INTERNAL, "out of memory reading stdin");
    for (;;) {
        size_t n = fread(buf + used, 1, size - used, f);
        used += n;
        if (used < size) {
            if (ferror(f)) {
                free(buf);
                return ipam_fail(err, IPAM_E_IO, "reading stdin failed: %s", strerror(errno));
            }
            break; /* EOF */
        }
        if (size > cap) {
            free(buf);
            return ipam_fail(err, IPAM_E_DECODE,
                             "network configuration on stdin is larger than %zu bytes", cap);
        }
        size *= 2;
        char *bigger = realloc(buf, size + 1);
        if (bigger == NULL) {
            free(buf);
            return ipam_fail(err, IPAM_E_INTERNAL, "out of memory reading stdin");
        }
        buf = bigger;
    }
    if (used > cap) {
        free(buf);
        return ipam_fail(err, IPAM_E_DECODE,
                         "network configuration on stdin is larger than %zu bytes", cap);
    }
    buf[used] = '\0';
    *out = buf;
    *len = used;
    return 0;
}

const char *ipam_ipv4_str(uint32_t addr, char *buf)
{
    struct in_addr a = {.s_addr = addr};
    inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
    return buf;
}

const char *ipam_cidr_str(const struct ipam_cidr *c, char *buf)
{
    ipam_ipv4_str(c->addr, buf);
    snprintf(buf + strlen(buf), 5, "/%u", (unsigned)(c->prefix & 63));
    return buf;
}

static char *print_and_free(cJSON *root)
{
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

char *ipam_result_render(const struct ipam_config *cfg, const struct ipam_lease *lease)
{
    char buf[32];
    cJSON *root = cJSON_CreateObject();
    cJSON *ver = cJSON_AddStringToObject(root, "cniVersion", ipam_version_names[cfg->version]);
    cJSON *ips = cJSON_AddArrayToObject(root, "ips");
    cJSON *routes = cJSON_AddArrayToObject(root, "routes");
    cJSON *ip = cJSON_CreateObject();

    if (root == NULL || ver == NULL || ips == NULL || routes == NULL || ip == NULL) {
        cJSON_Delete(ip);
        cJSON_Delete(root);
        return NULL;
    }
    /* 0.3.x and 0.4.0 tag each IP with its family; 1.0.0 dropped the field. No "gateway":
     * host-device would make it the next hop of every route, the multicast one included. */
    if (cfg->version < IPAM_V1_0_0)
        cJSON_AddStringToObject(ip, "version", "4");
    cJSON_AddStringToObject(ip, "address", ipam_cidr_str(&lease->ip, buf));
    cJSON_AddItemToArray(ips, ip);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        cJSON *r = cJSON_CreateObject();
        if (r == NULL)
            break;
        cJSON_AddStringToObject(r, "dst", ipam_cidr_str(&cfg->routes[i].dst, buf));
        if (cfg->routes[i].has_gw)
            cJSON_AddStringToObject(r, "gw", ipam_ipv4_str(cfg->routes[i].gw, buf));
        cJSON_AddItemToArray(routes, r);
    }
    cJSON_AddObjectToObject(root, "dns");
    return print_and_free(root);
}

char *ipam_error_render(enum ipam_version version, const struct ipam_error *err)
{
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return NULL;
    cJSON_AddStringToObject(root, "cniVersion", ipam_version_names[version]);
    cJSON_AddNumberToObject(root, "code", err->code);
    cJSON_AddStringToObject(root, "msg", err->msg);
    cJSON_AddStringToObject(root, "details", err->details);
    return print_and_free(root);
}

char *ipam_version_render(void)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_CreateStringArray(ipam_version_names, IPAM_V_COUNT);
    if (root == NULL || list == NULL) {
        cJSON_Delete(list);
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddStringToObject(root, "cniVersion", ipam_version_names[IPAM_V_COUNT - 1]);
    cJSON_AddItemToObject(root, "supportedVersions", list);
    return print_and_free(root);
}
