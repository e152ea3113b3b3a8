/* eni-ipam: CNI IPAM plugin that gives a pod's multicast interface (net1) the address of the
 * node's multicast ENI, read from EC2 instance metadata (DESIGN.md "eni-ipam").
 *
 * host-device calls it after moving the ENI into the pod; it runs in the host network
 * namespace, enters CNI_NETNS only to read the link's MAC, asks IMDSv2 for that MAC's primary
 * address and subnet, and prints the result. One function per CNI verb below. Stdout carries
 * only the result or the error object; logs go to stderr (and ipam.log_file). */
#include <curl/curl.h>
#ifdef ENI_IPAM_OPENSSL_PREINIT
#include <openssl/crypto.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cni.h"
#include "config.h"
#include "imds.h"
#include "ipam.h"
#include "log.h"
#include "netns.h"

/* Prints a malloc'd JSON document as the one line of stdout and frees it. */
static int print_json(char *json, struct ipam_error *err)
{
    if (json == NULL)
        return ipam_fail(err, IPAM_E_INTERNAL, "out of memory rendering the result");
    fputs(json, stdout);
    fputc('\n', stdout);
    free(json);
    if (fflush(stdout) != 0)
        return ipam_fail(err, IPAM_E_IO, "writing the result to stdout failed");
    return 0;
}

static void log_retry(void *data, const char *what, int attempt, const char *why)
{
    (void)data;
    ipam_log(IPAM_LOG_WARN, "IMDS %s: attempt %d failed: %s; retrying", what, attempt, why);
}

/* The plugin speaks plain HTTP only (imds.c restricts libcurl to it), yet libcurl's global
 * init sets OpenSSL up in full: it reads the system openssl.cnf, registers every cipher and
 * digest by name and loads error strings, about a tenth of an ADD's CPU time here. OpenSSL runs
 * each of those steps once per process, so declaring them skipped first turns libcurl's later
 * requests for them into no-ops. */
static void skip_tls_init(void)
{
#ifdef ENI_IPAM_OPENSSL_PREINIT
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
                            OPENSSL_INIT_NO_ADD_ALL_DIGESTS | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS,
                        NULL);
#endif
}

/* libcurl's static archive drags GnuTLS in (through librtmp and OpenLDAP, protocols the plugin
 * never enables), and GnuTLS initialises itself in a library constructor at every start:
 * parsing its ASN.1 trees, registering ciphers, looking for /etc/gnutls/config. This is GnuTLS's
 * documented opt-out of that implicit init: a strong definition of its weak hook. Nothing is
 * lost, because an explicit gnutls_global_init() still does the full set-up. */
#if defined(ENI_IPAM_GNUTLS_SKIP_INIT) && __has_include(<gnutls/gnutls.h>)
#include <gnutls/gnutls.h>
GNUTLS_SKIP_GLOBAL_INIT
#endif

static int cmd_add(const struct ipam_env *env, const struct ipam_config *cfg,
                   struct ipam_error *err)
{
    struct ipam_imds_opts opts = {
        .endpoint = cfg->imds_endpoint,
        .timeout_ms = cfg->imds_timeout_ms,
        .retries = cfg->imds_retries,
        .on_retry = log_retry,
    };
    struct ipam_link link;
    struct ipam_lease lease;
    char addr[32];
    int rc;

    rc = ipam_netns_link_lookup(env->netns, env->ifname, false, &link, err);
    if (rc < 0)
        return rc;
    ipam_log(IPAM_LOG_DEBUG, "link %s in %s has MAC %s", env->ifname, env->netns, link.mac_str);
    /* libcurl (and the TLS library under it) is set up only here: the other verbs never
     * talk HTTP. */
    skip_tls_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = ipam_imds_lookup(&opts, link.mac_str, &lease, err);
    curl_global_cleanup();
    if (rc < 0)
        return rc;
    /* Nothing was changed on the node or in the pod, so a failure above has nothing to undo;
     * host-device applies the result. */
    rc = print_json(ipam_result_render(cfg, &lease), err);
    if (rc == 0)
        ipam_log(IPAM_LOG_INFO, "ADD: %s (MAC %s) gets %s, %zu route(s), pod %s/%s", env->ifname,
                 link.mac_str, ipam_cidr_str(&lease.ip, addr), cfg->n_routes, env->pod_namespace,
                 env->pod_name);
    return rc;
}

/* DEL has nothing to release: the address belongs to the ENI, not to a pool. It never fails
 * (host-device returns the ENI to the node only after IPAM DEL succeeded); problems are
 * logged by the caller. */
static int cmd_del(const struct ipam_env *env)
{
    ipam_log(IPAM_LOG_INFO, "DEL: nothing to release for %s in %s, pod %s/%s",
             env->ifname ? env->ifname : "?", env->netns ? env->netns : "(no netns)",
             env->pod_namespace, env->pod_name);
    return 0;
}

static bool link_has(const struct ipam_link *link, const struct ipam_cidr *c)
{
    for (size_t i = 0; i < link->n_addrs; i++)
        if (link->addrs[i].addr == c->addr && link->addrs[i].prefix == c->prefix)
            return true;
    return false;
}

static int cmd_check(const struct ipam_env *env, const struct ipam_config *cfg,
                     struct ipam_error *err)
{
    struct ipam_link link;
    char want[32], have[32 * IPAM_MAX_LINK_ADDRS / 2] = "";
    int rc;

    if (cfg->version < IPAM_V0_4_0)
        return ipam_fail(err, IPAM_E_INCOMPATIBLE_VERSION,
                         "CHECK needs cniVersion 0.4.0 or later (config has %s)",
                         ipam_version_names[cfg->version]);
    if (!cfg->has_prev_result)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "CHECK needs prevResult in the config");
    if (cfg->n_prev_ips == 0)
        return ipam_fail(err, IPAM_E_INVALID_CONFIG, "prevResult carries no IPv4 address");
    rc = ipam_netns_link_lookup(env->netns, env->ifname, true, &link, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < cfg->n_prev_ips; i++) {
        if (link_has(&link, &cfg->prev_ips[i]))
            continue;
        for (size_t k = 0; k < link.n_addrs && strlen(have) + 20 < sizeof(have); k++) {
            char a[32];
            strcat(have, k ? ", " : "");
            strcat(have, ipam_cidr_str(&link.addrs[k], a));
        }
        return ipam_fail(err, IPAM_E_CHECK_MISMATCH,
                         "CHECK: %s does not carry %s from prevResult (it has: %s)", env->ifname,
                         ipam_cidr_str(&cfg->prev_ips[i], want), have[0] ? have : "none");
    }
    ipam_log(IPAM_LOG_INFO, "CHECK: %s carries the %zu address(es) of prevResult", env->ifname,
             cfg->n_prev_ips);
    return 0;
}

static int cmd_version(struct ipam_error *err)
{
    return print_json(ipam_version_render(), err);
}

/* STATUS and GC (spec 1.1.0): the plugin holds no state and no pool, so it is always ready
 * and there is nothing to collect. */
static int cmd_status(const struct ipam_config *cfg, struct ipam_error *err)
{
    if (cfg->version < IPAM_V1_1_0)
        return ipam_fail(err, IPAM_E_INCOMPATIBLE_VERSION, "STATUS needs cniVersion 1.1.0");
    return 0;
}

static int cmd_gc(const struct ipam_config *cfg, struct ipam_error *err)
{
    if (cfg->version < IPAM_V1_1_0)
        return ipam_fail(err, IPAM_E_INCOMPATIBLE_VERSION, "GC needs cniVersion 1.1.0");
    return 0;
}

static int report_error(enum ipam_version version, const struct ipam_error *err)
{
    char *json = ipam_error_render(version, err);
    ipam_log(IPAM_LOG_ERROR, "code %d: %s%s%s", err->code, err->msg, err->details[0] ? ": " : "",
             err->details);
    if (json != NULL) {
        fputs(json, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        free(json);
    }
    return 1;
}

/* Reads the environment and stdin, validates them, and sets up logging. */
static int load_inputs(struct ipam_env *env, struct ipam_config *cfg, struct ipam_error *err)
{
    char *in = NULL;
    size_t len = 0;
    int rc;

    if ((rc = ipam_env_parse(env, err)) < 0)
        return rc;
    if ((rc = ipam_read_all(stdin, IPAM_MAX_STDIN, &in, &len, err)) < 0)
        return rc;
    rc = ipam_config_parse(in, len, cfg, err);
    free(in);
    if (rc < 0)
        return rc;
    ipam_log_set_level(cfg->log_level);
    if (cfg->log_file[0] != '\0' && (rc = ipam_log_open_file(cfg->log_file)) < 0)
        ipam_log(IPAM_LOG_WARN, "cannot open log_file %s: %s; logging to stderr only",
                 cfg->log_file, strerror(-rc));
    if ((env->command == IPAM_CMD_ADD || env->command == IPAM_CMD_CHECK) &&
        (rc = ipam_netns_validate(env->netns, err)) < 0)
        return rc;
    return 0;
}

static int run(struct ipam_env *env, struct ipam_config *cfg, struct ipam_error *err)
{
    int rc = ipam_env_command(env, err);
    if (rc < 0)
        return rc;
    ipam_log_context(env->command_name, getenv("CNI_CONTAINERID"), getenv("CNI_IFNAME"));
    if (env->command == IPAM_CMD_VERSION)
        return cmd_version(err);

    rc = load_inputs(env, cfg, err);
    if (env->command == IPAM_CMD_DEL) {
        if (rc < 0)
            ipam_log(IPAM_LOG_WARN, "DEL with bad input (code %d: %s); succeeding anyway",
                     err->code, err->msg);
        return cmd_del(env);
    }
    if (rc < 0)
        return rc;
    switch (env->command) {
    case IPAM_CMD_ADD:
        return cmd_add(env, cfg, err);
    case IPAM_CMD_CHECK:
        return cmd_check(env, cfg, err);
    case IPAM_CMD_STATUS:
        return cmd_status(cfg, err);
    case IPAM_CMD_GC:
        return cmd_gc(cfg, err);
    default:
        return ipam_fail(err, IPAM_E_INTERNAL, "unhandled command");
    }
}

int main(void)
{
    static struct ipam_config cfg; /* PATH_MAX-sized members: keep it off the stack */
    struct ipam_env env;
    struct ipam_error err = {0};
    int rc;

    cfg.version = IPAM_V1_0_0; /* the error shape when the config never said */
    rc = run(&env, &cfg, &err);
    if (rc < 0)
        rc = report_error(cfg.version, &err);
    ipam_log_close();
    return rc;
}
