/* eni-ipam: CNI spec I/O — the environment, stdin, and what goes to stdout (the result, the
 * error object, the VERSION answer). Rendering returns malloc'd strings the caller frees. */
#ifndef ENI_IPAM_CNI_H
#define ENI_IPAM_CNI_H

#include <stdio.h>

#include "config.h"
#include "ipam.h"

#define IPAM_MAX_STDIN  (1024 * 1024)
#define IPAM_IFNAME_MAX 15 /* IFNAMSIZ - 1 */

enum ipam_command {
    IPAM_CMD_ADD,
    IPAM_CMD_DEL,
    IPAM_CMD_CHECK,
    IPAM_CMD_VERSION,
    IPAM_CMD_STATUS,
    IPAM_CMD_GC,
};

struct ipam_env {
    enum ipam_command command;
    const char *command_name;
    const char *container_id; /* NULL when absent */
    const char *netns;
    const char *ifname;
    const char *args;
    char pod_namespace[254]; /* from CNI_ARGS K8S_POD_NAMESPACE, for logs */
    char pod_name[254];
};

/* Reads CNI_COMMAND alone. Returns 0 or -4 (missing or unknown command). */
int ipam_env_command(struct ipam_env *env, struct ipam_error *err);

/* Reads and validates the variables the command needs: CNI_CONTAINERID (letters, digits,
 * '_', '.', '-'), CNI_IFNAME (1..15 bytes, no '/', ':' or whitespace, not "." or ".."),
 * CNI_NETNS (present for ADD and CHECK), CNI_ARGS (KEY=VALUE;...). The netns path is checked
 * to be a network namespace by netns.c. Returns 0 or -4. */
int ipam_env_parse(struct ipam_env *env, struct ipam_error *err);

/* Validates an interface name as the kernel would accept it. Returns 0 or -4. */
int ipam_ifname_validate(const char *name, struct ipam_error *err);

/* Reads all of f into a malloc'd buffer (*out, *len), refusing more than cap bytes.
 * Returns 0, -IPAM_E_DECODE when larger than cap, or -IPAM_E_IO on a read error. */
int ipam_read_all(FILE *f, size_t cap, char **out, size_t *len, struct ipam_error *err);

/* The ADD result in the shape of cfg->version: cniVersion, ips (address with prefix, no
 * gateway; "version":"4" for 0.3.x/0.4.0), routes, dns. NULL on allocation failure. */
char *ipam_result_render(const struct ipam_config *cfg, const struct ipam_lease *lease);
/* The CNI error object {cniVersion, code, msg, details}. */
char *ipam_error_render(enum ipam_version version, const struct ipam_error *err);
/* The VERSION answer: cniVersion and supportedVersions. */
char *ipam_version_render(void);

/* Formats an address in network byte order as "a.b.c.d" / "a.b.c.d/n" into buf (>= 20). */
const char *ipam_ipv4_str(uint32_t addr, char *buf);
const char *ipam_cidr_str(const struct ipam_cidr *c, char *buf);

#endif
