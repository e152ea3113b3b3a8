/* eni-ipam: network-namespace and netlink look-up. */
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <netlink/addr.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

/* Opens path and checks it is a network namespace; returns the fd or -4. */
static int open_netns(const char *path, struct ipam_error *err)
{
    struct statfs sfs;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0)
        return ipam_fail(err, IPAM_E_INVALID_ENV, "CNI_NETNS \"%.128s\": %s", path,
                         strerror(errno));
    if (fstatfs(fd, &sfs) != 0 || sfs.f_type != NSFS_MAGIC) {
        close(fd);
        return ipam_fail(err, IPAM_E_INVALID_ENV,
                         "CNI_NETNS \"%.128s\" is not a namespace (not on nsfs)", path);
    }
    /* NS_GET_NSTYPE (Linux 4.11) tells a network namespace from a mount or PID one. */
    int type = ioctl(fd, NS_GET_NSTYPE);
    if (type >= 0 && type != CLONE_NEWNET) {
        close(fd);
        return ipam_fail(err, IPAM_E_INVALID_ENV,
                         "CNI_NETNS \"%.128s\" is a namespace but not a network namespace", path);
    }
    return fd;
}

int ipam_netns_validate(const char *path, struct ipam_error *err)
{
    int fd = open_netns(path, err);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

/* Opens a NETLINK_ROUTE socket inside the namespace target_fd and returns to the caller's
 * namespace. Failing to return would leave the process in the pod's namespace, where
 * nothing it does next would be right, so that case aborts. */
static int socket_in_netns(int target_fd, struct nl_sock **out, struct ipam_error *err)
{
    struct nl_sock *sk = NULL;
    int self_fd = -1, rc = 0, nlrc;

    self_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self_fd < 0)
        return ipam_fail(err, IPAM_E_NETNS, "cannot open own network namespace: %s",
                         strerror(errno));
    sk = nl_socket_alloc();
    if (sk == NULL) {
        close(self_fd);
        return ipam_fail(err, IPAM_E_INTERNAL, "out of memory (netlink socket)");
    }
    if (setns(target_fd, CLONE_NEWNET) != 0) {
        rc = ipam_fail(err, IPAM_E_NETNS, "entering CNI_NETNS failed: %s", strerror(errno));
        goto fail;
    }
    nlrc = nl_connect(sk, NETLINK_ROUTE);
    if (setns(self_fd, CLONE_NEWNET) != 0) {
        fprintf(stderr, IPAM_PLUGIN_NAME ": cannot return to own network namespace: %s\n",
                strerror(errno));
        abort();
    }
    if (nlrc < 0) {
        rc = ipam_fail(err, IPAM_E_IO, "netlink socket in CNI_NETNS: %s", nl_geterror(nlrc));
        goto fail;
    }
    close(self_fd);
    *out = sk;
    return 0;
fail:
    nl_socket_free(sk);
    close(self_fd);
    return rc;
}

static void format_mac(const unsigned char *m, char *out)
{
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static int read_link(struct nl_sock *sk, const char *ifname, struct ipam_link *out,
                     struct ipam_error *err)
{
    struct rtnl_link *link = NULL;
    struct nl_addr *lladdr;
    int rc = rtnl_link_get_kernel(sk, 0, ifname, &link);

    if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV)
        return ipam_fail(err, IPAM_E_LINK_NOT_FOUND, "link \"%s\" not found in CNI_NETNS", ifname);
    if (rc < 0)
        return ipam_fail(err, IPAM_E_IO, "netlink: reading link \"%s\": %s", ifname,
                         nl_geterror(rc));
    out->ifindex = rtnl_link_get_ifindex(link);
    lladdr = rtnl_link_get_addr(link);
    if (lladdr == NULL || nl_addr_get_len(lladdr) != 6) {
        rtnl_link_put(link);
        return ipam_fail(err, IPAM_E_LINK_NOT_FOUND,
                         "link \"%s\" has no Ethernet MAC address (is it an ENI?)", ifname);
    }
    memcpy(out->mac, nl_addr_get_binary_addr(lladdr), 6);
    format_mac(out->mac, out->mac_str);
    rtnl_link_put(link);
    return 0;
}

static int read_addrs(struct nl_sock *sk, struct ipam_link *out, struct ipam_error *err)
{
    struct nl_cache *cache = NULL;
    struct nl_object *obj;
    int rc = rtnl_addr_alloc_cache(sk, &cache);

    if (rc < 0)
        return ipam_fail(err, IPAM_E_IO, "netlink: reading addresses: %s", nl_geterror(rc));
    for (obj = nl_cache_get_first(cache); obj != NULL; obj = nl_cache_get_next(obj)) {
        struct rtnl_addr *a = (struct rtnl_addr *)obj;
        struct nl_addr *local = rtnl_addr_get_local(a);
        if (rtnl_addr_get_ifindex(a) != out->ifindex || rtnl_addr_get_family(a) != AF_INET ||
            local == NULL || nl_addr_get_len(local) != 4)
            continue;
        if (out->n_addrs == IPAM_MAX_LINK_ADDRS)
            break;
        struct ipam_cidr *c = &out->addrs[out->n_addrs++];
        memcpy(&c->addr, nl_addr_get_binary_addr(local), 4);
        c->prefix = (uint8_t)rtnl_addr_get_prefixlen(a);
    }
    nl_cache_free(cache);
    return 0;
}

int ipam_netns_link_lookup(const char *netns_path, const char *ifname, bool want_addrs,
                           struct ipam_link *out, struct ipam_error *err)
{
    struct nl_sock *sk = NULL;
    int fd, rc;

    memset(out, 0, sizeof(*out));
    fd = open_netns(netns_path, err);
    if (fd < 0)
        return fd;
    rc = socket_in_netns(fd, &sk, err);
    close(fd);
    if (rc < 0)
        return rc;
    rc = read_link(sk, ifname, out, err);
    if (rc == 0 && want_addrs)
        rc = read_addrs(sk, out, err);
    nl_socket_free(sk);
    return rc;
}
