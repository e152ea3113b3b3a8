/* eni-ipam: the network-namespace and netlink look-up (libnl-3, libnl-route-3).
 *
 * The caller's namespace is entered for no longer than it takes to open a netlink socket in
 * CNI_NETNS: a netlink socket stays bound to the namespace it was created in, so the queries
 * run from the caller's namespace on that socket. */
#ifndef ENI_IPAM_NETNS_H
#define ENI_IPAM_NETNS_H

#include "ipam.h"

#define IPAM_MAX_LINK_ADDRS 32

struct ipam_link {
    int ifindex;
    unsigned char mac[6];
    char mac_str[18]; /* "02:00:00:00:00:01", lower case, as IMDS spells it */
    size_t n_addrs;   /* IPv4 addresses on the link (filled when asked for) */
    struct ipam_cidr addrs[IPAM_MAX_LINK_ADDRS];
};

/* Checks that path is a network namespace (nsfs, CLONE_NEWNET). Returns 0 or -4 with err
 * saying what it is instead. */
int ipam_netns_validate(const char *path, struct ipam_error *err);

/* Looks up ifname inside the namespace at netns_path: its index and MAC and, when
 * want_addrs, its IPv4 addresses. The calling thread is back in its own namespace when this
 * returns. Returns 0, -IPAM_E_INVALID_ENV (not a netns), -IPAM_E_LINK_NOT_FOUND,
 * -IPAM_E_NETNS (setns failed) or -IPAM_E_IO (netlink). May block briefly on netlink. */
int ipam_netns_link_lookup(const char *netns_path, const char *ifname, bool want_addrs,
                           struct ipam_link *out, struct ipam_error *err);

#endif
