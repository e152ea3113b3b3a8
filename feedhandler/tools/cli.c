/* Helpers shared by mdfeed-tap and mdcast-pub; see cli.h. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

volatile sig_atomic_t cli_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

void cli_catch_signals(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t cli_mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t cli_real_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

bool cli_parse_u64(const char *s, uint64_t *out)
{
    /* strtoull alone would accept " 5", "+5" and wrap "-1" to 2^64-1. */
    if (!s || !isdigit((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

bool cli_parse_number(const char *s, double max, double *out)
{
    if (!s || !(isdigit((unsigned char)*s) || *s == '.'))
        return false; /* no sign, no blanks, no "inf"/"nan" */
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v > max)
        return false;
    *out = v;
    return true;
}

int cli_bad_value(const char *prog, const char *opt, const char *value)
{
    fprintf(stderr, "%s: invalid value for --%s: '%s'\n", prog, opt, value ? value : "");
    return 2;
}

void cli_json_begin(cli_json_t *j, FILE *f)
{
    *j = (cli_json_t){.f = f};
    fputc('{', f);
}

static void key(cli_json_t *j, const char *k)
{
    fprintf(j->f, "%s\"%s\":", j->has_member[j->depth] ? "," : "", k);
    j->has_member[j->depth] = true;
}

void cli_json_object(cli_json_t *j, const char *k)
{
    if (j->depth + 1 >= CLI_JSON_DEPTH)
        abort(); /* a programming error of the tool, not input */
    key(j, k);
    fputc('{', j->f);
    j->has_member[++j->depth] = false;
}

void cli_json_u64(cli_json_t *j, const char *k, uint64_t v)
{
    key(j, k);
    fprintf(j->f, "%" PRIu64, v);
}

void cli_json_num(cli_json_t *j, const char *k, double v, int decimals)
{
    key(j, k);
    fprintf(j->f, "%.*f", decimals, isfinite(v) ? v : 0.0);
}

void cli_json_bool(cli_json_t *j, const char *k, bool v)
{
    key(j, k);
    fputs(v ? "true" : "false", j->f);
}

void cli_json_end(cli_json_t *j)
{
    fputc('}', j->f);
    if (j->depth-- == 0)
        fputc('\n', j->f);
}
