/* The gateway's logging (Redis serverLog style): one JSON object per line on stderr. */
#ifndef GW_LOG_H
#define GW_LOG_H

enum { GW_LOG_DEBUG = 0, GW_LOG_INFO = 1, GW_LOG_WARN = 2, GW_LOG_ERROR = 3 };

/* Returns the level for "debug|info|warn|error", or -1. */
int gw_log_level_parse(const char *name);
void gw_log_set_level(int level);
/* One JSON object per line on stderr: {"ts":..., "level":..., "msg":...}. The level is
 * checked before anything is formatted; safe to call from any thread (one write() a line). */
void gw_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An errno value (either sign) by name and text, "ENOBUFS (No buffer space available)", for
 * log lines: operators grep names, not numbers. Thread-local buffer, valid until the next
 * call on the same thread. */
const char *gw_strerror(int err);

/* The gateway's error rule (STYLE.md), written once: a function returns 0, a count, or
 * -errno (library codes from mdfeed.h where the library decided); it logs nothing unless it
 * is where the decision is made -- drop a publisher, refuse a message, fall back, exit -- and
 * that place logs once, with the context (channel, peer, file) and the error by name. */

#endif /* GW_LOG_H */
