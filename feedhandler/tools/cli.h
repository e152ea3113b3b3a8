/* Helpers shared by the command-line tools (mdfeed-tap, mdcast-pub): signals, clocks, strict
 * parsing of option values, and the one-line JSON summary. Private to the tools; not part of
 * libmdfeed. */
#ifndef MDFEED_TOOLS_CLI_H
#define MDFEED_TOOLS_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Set by SIGINT/SIGTERM once cli_catch_signals() ran; the main loops poll it. */
extern volatile sig_atomic_t cli_interrupted;

/* Makes SIGINT and SIGTERM set cli_interrupted instead of killing the process, so a tool can
 * still print its summary. */
void cli_catch_signals(void);

uint64_t cli_mono_ns(void); /* CLOCK_MONOTONIC in ns: deadlines and intervals */
uint64_t cli_real_ns(void); /* CLOCK_REALTIME in ns: the clock of benchmark send times */

/* A decimal unsigned integer, digits only: no sign, no blanks, no overflow. */
bool cli_parse_u64(const char *s, uint64_t *out);

/* A finite decimal number in [0, max]; no trailing characters. */
bool cli_parse_number(const char *s, double max, double *out);

/* Prints "<prog>: invalid value for --<opt>: '<value>'" on stderr; returns the usage exit
 * code 2 for `return cli_bad_value(...)`. */
int cli_bad_value(const char *prog, const char *opt, const char *value);

/* A JSON object written member by member to one stream, nesting up to CLI_JSON_DEPTH.
 * Keys are literals of the tools, so they are not escaped. */
enum { CLI_JSON_DEPTH = 4 };
typedef struct {
    FILE *f;
    int depth;
    bool has_member[CLI_JSON_DEPTH];
} cli_json_t;

void cli_json_begin(cli_json_t *j, FILE *f);          /* "{" */
void cli_json_object(cli_json_t *j, const char *key); /* "key":{ */
void cli_json_u64(cli_json_t *j, const char *key, uint64_t v);
void cli_json_num(cli_json_t *j, const char *key, double v, int decimals);
void cli_json_bool(cli_json_t *j, const char *key, bool v);
void cli_json_end(cli_json_t *j); /* "}"; the outermost one ends the line */

#endif
