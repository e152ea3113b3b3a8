/* mdcast-gateway: SoupBinTCP in, sequenced MoldUDP64 multicast out.
 *   mdcast-gateway --config FILE [--check] [--log-level debug|info|warn|error]
 * Exit status: 0 after a clean shutdown (SIGTERM/SIGINT) or a good --check, 2 for a bad
 * config or command line (the message names the key and the reason), 1 at run time. */
#include "config.h"
#include "log.h"
#include "pipeline.h"

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: mdcast-gateway --config FILE [--check] [--log-level LEVEL]\n"
               "       mdcast-gateway --journal-verify DIR [--dump]\n"
               "  --config FILE      JSON config (see config/gateway.json)\n"
               "  --check            validate the config and exit (0 good, 2 bad)\n"
               "  --log-level LEVEL  debug, info, warn or error (overrides the config)\n"
               "  --journal-verify DIR  check every record of a journal (exit 0 good, 1 torn\n"
               "                     tail only, 2 corruption); --dump prints each record\n");
}

/* Runs the pipeline until a signal shuts it down. Returns the exit status. */
static int run(gw_t *gw)
{
    /* A publisher or a scraper that vanishes while we write must cost an EPIPE, not the
     * process. */
    signal(SIGPIPE, SIG_IGN);
    gw->loop = uv_default_loop();
    int status = 0;
    if (gw_pipeline_start(gw) != 0) {
        status = gw->exit_status;
        gw_pipeline_shutdown(gw);
    }
    uv_run(gw->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(gw->loop) != 0)
        gw_log(GW_LOG_WARN, "event loop closed with handles still open");
    gw_pipeline_release(gw);
    gw_log(GW_LOG_INFO, "exit %d", status);
    return status;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"journal-verify", required_argument, NULL, 'j'},
                                         {"dump", no_argument, NULL, 'd'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL, *level = NULL, *verify = NULL;
    bool check = false, dump = false;
    int o;
    while ((o = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'l':
            level = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'j':
            verify = optarg;
            break;
        case 'd':
            dump = true;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (verify && !path && optind == argc)
        return gw_journal_verify(verify, dump, stdout);
    if (!path || optind != argc || dump) {
        usage(stderr);
        return 2;
    }
    if (level && gw_log_level_parse(level) < 0) {
        gw_log(GW_LOG_ERROR, "--log-level: must be debug, info, warn or error, got \"%s\"", level);
        return 2;
    }
    static gw_t gw; /* large (config tables): not on the stack */
    char err[512];
    if (gw_config_load(path, &gw.cfg, err, sizeof(err)) != 0) {
        gw_log(GW_LOG_ERROR, "config %s: %s", path, err);
        return 2;
    }
    gw_log_set_level(level ? gw_log_level_parse(level) : gw.cfg.log_level);
    if (check) {
        gw_log(GW_LOG_INFO, "config %s: valid (%d channels, %d users)", path, gw.cfg.nchannels,
               gw.cfg.nusers);
        return 0;
    }
    return run(&gw);
}
