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

#endif /* GW_LOG_H */
