/* eni-ipam: JSON-lines logging on stderr and, when configured, a log file. Stdout is kept for
 * the CNI result or error only. */
#ifndef ENI_IPAM_LOG_H
#define ENI_IPAM_LOG_H

enum ipam_log_level {
    IPAM_LOG_DEBUG,
    IPAM_LOG_INFO,
    IPAM_LOG_WARN,
    IPAM_LOG_ERROR,
};

/* Returns the level for "debug", "info", "warn" or "error", or -1. */
int ipam_log_level_parse(const char *name);

/* Context added to every line (pointers are kept: they must outlive logging). */
void ipam_log_context(const char *command, const char *container_id, const char *ifname);
void ipam_log_set_level(int level);
/* Appends to path (created 0600 when missing). Returns 0 or -errno; on failure logging
 * continues on stderr alone. */
int ipam_log_open_file(const char *path);
void ipam_log_close(void);

/* One JSON object per line: ts, level, plugin, cmd, containerid, ifname, msg. The message is
 * formatted only when the level is enabled. */
void ipam_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
