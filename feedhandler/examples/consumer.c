/* A minimal libmdfeed consumer with its own epoll loop, built against the installed library:
 *
 *   cc consumer.c $(pkg-config --cflags --libs mdfeed) -o consumer
 *   ./consumer 239.192.1.1:30001 net1 [COUNT] [LINE_B] [RETRANSMIT]
 *
 * It subscribes to a MoldUDP64 channel, waits on the subscriber's fd next to anything else
 * the application watches (here: nothing else), and prints every message's sequence number
 * and length, every gap and loss, and a summary. Stops after COUNT messages (default 10),
 * at end of session, or after 30 s. */
#include <mdfeed/mdfeed.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct app {
    uint64_t want, got;
};

static void on_message(void *data, const mdfeed_msg_t *m)
{
    struct app *app = data;
    if (app->got++ < app->want)
        printf("message %" PRIu64 ": %u bytes\n", m->seq, m->len);
}

static void on_loss(void *data, uint64_t first, uint64_t count, mdfeed_loss_reason_t reason)
{
    (void)data;
    printf("lost %" PRIu64 " messages from %" PRIu64 ": %s\n", count, first,
           mdfeed_loss_reason_str(reason));
}

static void on_warning(void *data, int code, const char *text)
{
    (void)data;
    (void)code;
    fprintf(stderr, "warning: %s\n", text);
}

/* COUNT: a positive decimal number (strtoull alone takes "-1" as 2^64-1 and "abc" as 0). */
static int parse_count(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!isdigit((unsigned char)s[0]) || *end || errno || v == 0)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct app app = {.want = 10};
    if (argc < 3 || argc > 6 || (argc > 3 && parse_count(argv[3], &app.want) != 0)) {
        fprintf(stderr, "usage: %s GROUP:PORT INTERFACE [COUNT] [LINE_B] [RETRANSMIT]\n", argv[0]);
        return 2;
    }
    mdfeed_sub_config_t cfg;
    mdfeed_sub_config_init(&cfg);
    cfg.group_a = argv[1];
    cfg.interface = argv[2];
    cfg.group_b = argc > 4 ? argv[4] : NULL;
    cfg.retransmit = argc > 5 ? argv[5] : NULL;
    mdfeed_sub_callbacks_t cbs = {
        .data = &app, .on_message = on_message, .on_loss = on_loss, .on_warning = on_warning};
    mdfeed_sub_t *sub;
    int rc = mdfeed_sub_new(&sub, &cfg, &cbs);
    if (rc) {
        fprintf(stderr, "subscribe: %s\n", mdfeed_strerror(rc));
        return 1;
    }
    /* The application's own epoll set; the subscriber's fd is one member of it. */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = sub};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, mdfeed_sub_fd(sub), &ev) < 0) {
        perror("epoll");
        mdfeed_sub_free(sub);
        return 1;
    }
    time_t end = time(NULL) + 30;
    while (app.got < app.want && time(NULL) < end) {
        if (epoll_wait(ep, &ev, 1, 100) > 0 && (rc = mdfeed_sub_dispatch(sub)) < 0)
            break;
    }
    mdfeed_sub_stats_t st;
    mdfeed_sub_stats(sub, &st);
    printf("received %" PRIu64 " messages, %" PRIu64 " duplicates, %" PRIu64 " gaps, %" PRIu64
           " recovered, %" PRIu64 " lost (libmdfeed %06x)\n",
           st.messages, st.duplicates, st.gaps, st.recovered, st.lost, mdfeed_version());
    mdfeed_sub_free(sub);
    close(ep);
    return app.got >= app.want || rc == MDFEED_EENDED ? 0 : 1;
}
