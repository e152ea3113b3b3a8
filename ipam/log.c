/* eni-ipam: JSON-lines logging (Redis serverLog style: check the level before formatting). */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipam.h"

static int log_level = IPAM_LOG_INFO;
static int log_fd = -1;
static const char *ctx_command = "";
static const char *ctx_container = "";
static const char *ctx_ifname = "";

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int ipam_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void ipam_log_context(const char *command, const char *container_id, const char *ifname)
{
    ctx_command = command ? command : "";
    ctx_container = container_id ? container_id : "";
    ctx_ifname = ifname ? ifname : "";
}

void ipam_log_set_level(int level)
{
    log_level = level;
}

int ipam_log_open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0)
        return -errno;
    ipam_log_close();
    log_fd = fd;
    return 0;
}

void ipam_log_close(void)
{
    if (log_fd >= 0)
        close(log_fd);
    log_fd = -1;
}

/* Appends s to buf as the body of a JSON string; returns the new length (capped). */
static size_t json_escape(char *buf, size_t len, size_t cap, const char *s)
{
    for (; *s != '\0' && len + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[len++] = '\\';
            buf[len++] = (char)c;
        } else if (c < 0x20) {
            len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", c);
        } else {
            buf[len++] = (char)c;
        }
    }
    return len;
}

static size_t append(char *buf, size_t len, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (len + n >= cap)
        n = cap - len - 1;
    memcpy(buf + len, s, n);
    return len + n;
}

/* A log line is written whole with one write() so concurrent plugin runs that share a log
 * file (O_APPEND) do not interleave within a line. */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

void ipam_log(int level, const char *fmt, ...)
{
    char msg[1024], line[2048], ts[96];
    struct timespec now;
    struct tm tm;
    size_t len = 0;
    va_list ap;

    if (level < log_level || level < IPAM_LOG_DEBUG || level > IPAM_LOG_ERROR)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts) - 6, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + strlen(ts), 6, ".%03uZ", (unsigned)(now.tv_nsec / 1000000) % 1000u);

    len = append(line, len, sizeof(line), "{\"ts\":\"");
    len = append(line, len, sizeof(line), ts);
    len = append(line, len, sizeof(line), "\",\"level\":\"");
    len = append(line, len, sizeof(line), level_names[level]);
    len = append(line, len, sizeof(line), "\",\"plugin\":\"" IPAM_PLUGIN_NAME "\",\"cmd\":\"");
    len = json_escape(line, len, sizeof(line), ctx_command);
    len = append(line, len, sizeof(line), "\",\"containerid\":\"");
    len = json_escape(line, len, sizeof(line), ctx_container);
    len = append(line, len, sizeof(line), "\",\"ifname\":\"");
    len = json_escape(line, len, sizeof(line), ctx_ifname);
    len = append(line, len, sizeof(line), "\",\"msg\":\"");
    len = json_escape(line, len, sizeof(line), msg);
    len = append(line, len, sizeof(line) - 1, "\"}");
    line[len++] = '\n';

    write_all(STDERR_FILENO, line, len);
    if (log_fd >= 0)
        write_all(log_fd, line, len);
}
