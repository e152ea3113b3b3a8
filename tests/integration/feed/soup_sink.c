/* soup-sink: a SoupBinTCP server for the CLI tests. Accepts logins (or rejects them), writes
 * every unsequenced message it receives to --out as a 2-byte big-endian length prefix plus
 * the bytes (the layout of an ITCH file, so a replay can be compared with cmp), and exits
 * after a logout or --timeout seconds. Prints "listening on 127.0.0.1:PORT" once ready. */
#include "soup_server.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>

static void write_msg(void *data, const uint8_t *msg, size_t len)
{
    FILE *f = data;
    uint8_t pre[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    if (fwrite(pre, 1, 2, f) != 2 || fwrite(msg, 1, len, f) != len) {
        perror("soup-sink: write");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"port", required_argument, 0, 'P'},
                                         {"user", required_argument, 0, 'u'},
                                         {"password", required_argument, 0, 'p'},
                                         {"reject", required_argument, 0, 'R'},
                                         {"out", required_argument, 0, 'o'},
                                         {"timeout", required_argument, 0, 't'},
                                         {0, 0, 0, 0}};
    soup_server_t s = {0};
    const char *out = "/dev/null";
    long port = 0, timeout_s = 30;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'P':
            port = strtol(optarg, NULL, 10);
            break;
        case 'u':
            s.user = optarg;
            break;
        case 'p':
            s.password = optarg;
            break;
        case 'R':
            s.reject = optarg[0];
            break;
        case 'o':
            out = optarg;
            break;
        case 't':
            timeout_s = strtol(optarg, NULL, 10);
            break;
        default:
            fprintf(stderr, "usage: soup-sink [--port P] [--user U --password P] [--reject A|S] "
                            "[--out FILE] [--timeout S]\n");
            return 2;
        }
    }
    FILE *f = fopen(out, "wb");
    if (!f) {
        perror(out);
        return 1;
    }
    s.on_msg = write_msg;
    s.data = f;
    s.heartbeat_ms = 500;
    if (port < 0 || port > 65535 || soup_server_init(&s, (uint16_t)port) != 0) {
        perror("soup-sink: listen");
        return 1;
    }
    printf("listening on 127.0.0.1:%u\n", s.port);
    fflush(stdout);
    uint64_t end = soup_server_now_ms() + (uint64_t)timeout_s * 1000u;
    while (soup_server_now_ms() < end && s.logouts == 0 && (s.rejects == 0 || s.cfd >= 0)) {
        soup_server_poll(&s);
        usleep(200);
    }
    fclose(f);
    printf("soup-sink: logins %" PRIu64 " rejects %" PRIu64 " messages %" PRIu64
           " heartbeats %" PRIu64 " logouts %" PRIu64 "\n",
           s.logins, s.rejects, s.messages, s.heartbeats, s.logouts);
    soup_server_close(&s);
    return s.logouts || s.rejects ? 0 : 1;
}
