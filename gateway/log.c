/* JSON-line logging (Redis serverLog style): the level is checked before formatting, one
 * object per line on stderr, written with a single write() so lines never interleave. */
#include "log.h"

#include "mdfeed/mdfeed.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int log_level = GW_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

int gw_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name && strcasecmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void gw_log_set_level(int level)
{
    log_level = level;
}

/* Appends `s` as JSON string contents (quotes, backslashes and control bytes escaped). */
static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return n;
}

void gw_log(int level, const char *fmt, ...)
{
    if (level < log_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[1400];
    size_t n = (size_t)snprintf(line, sizeof(line),
                                "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\",\"level\":\"%s\","
                                "\"msg\":\"",
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                                tm.tm_sec, ts.tv_nsec / 1000,
                                level_names[level < 0   ? 0
                                            : level > 3 ? 3
                                                        : level]);
    n += json_escape(line + n, sizeof(line) - n - 4, msg);
    memcpy(line + n, "\"}\n", 3);
    n += 3;
    ssize_t rc = write(STDERR_FILENO, line, n);
    (void)rc; /* nowhere left to report a failing stderr */
}

const char *gw_strerror(int err)
{
    static __thread char buf[96];
    int e = err < 0 ? -err : err;
    snprintf(buf, sizeof(buf), "%s (%s)", mdfeed_err_name(-e), strerror(e));
    return buf;
}
