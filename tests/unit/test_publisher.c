/* The publisher client against an in-process SoupBinTCP server on loopback: login, many
 * messages coalesced into few writes, heartbeats, rejection, reconnect with backoff after the
 * server drops the connection or goes silent, giving up, and configuration errors. */
#include "task.h"

#include "../integration/feed/soup_server.h"
#include "mdfeed/mdfeed.h"
#include "mdfeed/moldudp64.h"

#include <pthread.h>
#include <sys/epoll.h>

#define NMSG 20000

typedef struct {
    uint64_t next; /* counter expected in the next message */
    uint64_t received;
    uint64_t bad; /* messages out of order or with wrong content */
} check_t;

static size_t make_msg(uint64_t i, uint8_t *out)
{
    size_t len = 8 + i % 40;
    mdfeed_put_be64(out, i);
    for (size_t k = 8; k < len; k++)
        out[k] = (uint8_t)(i + k);
    return len;
}

static void on_msg(void *data, const uint8_t *msg, size_t len)
{
    check_t *c = data;
    uint8_t want[64];
    size_t wl = make_msg(c->next, want);
    if (len != wl || memcmp(msg, want, wl) != 0)
        c->bad++;
    c->next++;
    c->received++;
}

static int states[3];
static int last_err;
static void on_state(void *data, mdfeed_pub_state_t s, int err)
{
    (void)data;
    states[s]++;
    last_err = err;
}

static void *serve_until_logout(void *arg)
{
    soup_server_t *srv = arg;
    uint64_t end = soup_server_now_ms() + 3000;
    while (soup_server_now_ms() < end && (srv->logouts == 0 || srv->cfd >= 0)) {
        soup_server_poll(srv);
        usleep(500);
    }
    return NULL;
}

static const mdfeed_pub_callbacks_t cbs = {.on_state = on_state};

/* Runs the client and the server side by side for `ms`, or until `*flag` >= want. */
static void pump(mdfeed_pub_t *pub, soup_server_t *srv, int ms, const uint64_t *flag, uint64_t want)
{
    uint64_t end = soup_server_now_ms() + (uint64_t)ms;
    while (soup_server_now_ms() < end) {
        struct epoll_event ev;
        (void)epoll_wait(mdfeed_pub_fd(pub), &ev, 1, 1);
        (void)mdfeed_pub_dispatch(pub);
        soup_server_poll(srv);
        if (flag && *flag >= want)
            return;
    }
}

static void config(mdfeed_pub_config_t *c, char *addr, size_t cap, uint16_t port)
{
    memset(c, 0, sizeof(*c));
    snprintf(addr, cap, "127.0.0.1:%u", port);
    c->connect = addr;
    c->username = "user1";
    c->password = "secret";
}

static void test_send_coalesced(void)
{
    soup_server_t srv = {0};
    check_t chk = {0};
    srv.user = "user1";
    srv.password = "secret";
    srv.on_msg = on_msg;
    srv.data = &chk;
    ASSERT_EQ(soup_server_init(&srv, 0), 0);
    mdfeed_pub_config_t c;
    char addr[32];
    config(&c, addr, sizeof(addr), srv.port);
    mdfeed_pub_t *pub;
    ASSERT_EQ(mdfeed_pub_new(&pub, &c, &cbs), 0);
    ASSERT_EQ(mdfeed_pub_state(pub), MDFEED_PUB_CONNECTING);
    /* Messages queued before the login completes wait for it. */
    uint8_t m[64];
    uint64_t i = 0;
    for (; i < 100; i++)
        ASSERT_EQ(mdfeed_pub_send(pub, m, make_msg(i, m)), 0);
    pump(pub, &srv, 2000, &srv.logins, 1);
    ASSERT_UEQ(srv.logins, 1);
    ASSERT_EQ(mdfeed_pub_wait_ready(pub, 1000), 0); /* reads the login accepted */
    ASSERT_EQ(mdfeed_pub_state(pub), MDFEED_PUB_READY);
    while (i < NMSG) {
        int rc = mdfeed_pub_send(pub, m, make_msg(i, m));
        if (rc == MDFEED_EAGAIN) {
            pump(pub, &srv, 1, NULL, 0);
            continue;
        }
        ASSERT_EQ(rc, 0);
        i++;
        if (i % 1000 == 0)
            pump(pub, &srv, 1, NULL, 0);
    }
    pump(pub, &srv, 5000, &chk.received, NMSG);
    ASSERT_UEQ(chk.received, NMSG);
    ASSERT_UEQ(chk.bad, 0);
    mdfeed_pub_stats_t st;
    mdfeed_pub_stats(pub, &st);
    ASSERT_UEQ(st.messages_sent, NMSG);
    ASSERT(st.writes * 10 < st.messages_sent); /* coalesced: far fewer writes than messages */
    ASSERT_EQ(mdfeed_pub_send(pub, m, 65535), MDFEED_ETOOBIG);

    /* Idle: heartbeats keep the connection alive. */
    mdfeed_pub_free(pub);
    soup_server_drop(&srv);
    c.heartbeat_ms = 20;
    ASSERT_EQ(mdfeed_pub_new(&pub, &c, &cbs), 0);
    uint64_t hb0 = srv.heartbeats;
    pump(pub, &srv, 2000, &srv.logins, 2);
    pump(pub, &srv, 200, NULL, 0);
    ASSERT(srv.heartbeats - hb0 >= 3);
    /* Close flushes, logs out and waits for the server to close; it blocks, so the server
     * runs in a thread meanwhile. */
    uint64_t before = chk.received;
    ASSERT_EQ(mdfeed_pub_send(pub, m, make_msg(chk.next, m)), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, serve_until_logout, &srv), 0);
    ASSERT_EQ(mdfeed_pub_close(pub, 2000), 0);
    ASSERT_EQ(pthread_join(th, NULL), 0);
    ASSERT_UEQ(srv.logouts, 1);
    ASSERT_UEQ(chk.received, before + 1);
    ASSERT_EQ(mdfeed_pub_state(pub), MDFEED_PUB_CLOSED);
    ASSERT_EQ(mdfeed_pub_send(pub, m, 1), MDFEED_ECLOSED);
    soup_server_close(&srv);
    mdfeed_pub_free(pub);
}

static void test_reject(void)
{
    for (int reason = 0; reason < 2; reason++) {
        soup_server_t srv = {0};
        srv.user = "user1";
        srv.password = "right";
        srv.reject = reason ? 'S' : 0;
        ASSERT_EQ(soup_server_init(&srv, 0), 0);
        mdfeed_pub_config_t c;
        char addr[32];
        config(&c, addr, sizeof(addr), srv.port);
        c.password = reason ? "right" : "wrong";
        mdfeed_pub_t *pub;
        ASSERT_EQ(mdfeed_pub_new(&pub, &c, &cbs), 0);
        pump(pub, &srv, 2000, &srv.rejects, 1);
        pump(pub, &srv, 50, NULL, 0);
        int want = reason ? MDFEED_EREJECTED_SESSION : MDFEED_EREJECTED_AUTH;
        ASSERT_EQ(mdfeed_pub_wait_ready(pub, 100), want);
        ASSERT_EQ(mdfeed_pub_state(pub), MDFEED_PUB_CLOSED);
        ASSERT_EQ(mdfeed_pub_send(pub, "x", 1), want);
        ASSERT_EQ(mdfeed_pub_dispatch(pub), want);
        mdfeed_pub_stats_t st;
        mdfeed_pub_stats(pub, &st);
        ASSERT_UEQ(st.reconnects, 0); /* a rejection is final, not retried */
        mdfeed_pub_free(pub);
        soup_server_close(&srv);
    }
}

static void test_reconnect(void)
{
    soup_server_t srv = {0};
    check_t chk = {0};
    srv.on_msg = on_msg;
    srv.data = &chk;
    ASSERT_EQ(soup_server_init(&srv, 0), 0);
    mdfeed_pub_config_t c;
    char addr[32];
    config(&c, addr, sizeof(addr), srv.port);
    c.reconnect_min_ms = 10;
    c.timeout_ms = 300;
    mdfeed_pub_t *pub;
    ASSERT_EQ(mdfeed_pub_new(&pub, &c, &cbs), 0);
    uint8_t m[64];
    for (uint64_t i = 0; i < 100; i++)
        ASSERT_EQ(mdfeed_pub_send(pub, m, make_msg(i, m)), 0);
    pump(pub, &srv, 2000, &chk.received, 100);
    ASSERT_UEQ(chk.received, 100);

    /* The server drops the connection; the client notices, backs off and reconnects; what
     * was queued meanwhile arrives after the new login. */
    int before = states[MDFEED_PUB_CONNECTING];
    soup_server_drop(&srv);
    uint64_t t0 = soup_server_now_ms();
    while (states[MDFEED_PUB_CONNECTING] == before && soup_server_now_ms() - t0 < 2000) {
        (void)mdfeed_pub_dispatch(pub);
        usleep(1000);
    }
    ASSERT_EQ(mdfeed_pub_state(pub), MDFEED_PUB_CONNECTING);
    for (uint64_t i = 100; i < 200; i++)
        ASSERT_EQ(mdfeed_pub_send(pub, m, make_msg(i, m)), 0);
    pump(pub, &srv, 3000, &chk.received, 200);
    ASSERT_UEQ(chk.received, 200);
    ASSERT_UEQ(chk.bad, 0);
    ASSERT_UEQ(srv.logins, 2);

    /* The server goes silent (no heartbeats, no answers): the client times out and
     * reconnects. */
    mdfeed_pub_stats_t st;
    mdfeed_pub_stats(pub, &st);
    uint64_t rec = st.reconnects;
    t0 = soup_server_now_ms();
    while (soup_server_now_ms() - t0 < 600) {
        (void)mdfeed_pub_dispatch(pub); /* the server is not polled: it says nothing */
        usleep(2000);
    }
    mdfeed_pub_stats(pub, &st);
    ASSERT(st.reconnects > rec);
    ASSERT_EQ(last_err == MDFEED_EPEER_TIMEOUT || last_err == 0 || last_err < 0, 1);
    mdfeed_pub_free(pub);
    soup_server_close(&srv);
}

static void test_give_up_and_config(void)
{
    /* Nothing listens on the port: bounded attempts, then MDFEED_EGAVE_UP. */
    soup_server_t srv = {0};
    ASSERT_EQ(soup_server_init(&srv, 0), 0);
    uint16_t port = srv.port;
    soup_server_close(&srv);
    mdfeed_pub_config_t c;
    char addr[32];
    config(&c, addr, sizeof(addr), port);
    c.reconnect_min_ms = 5;
    c.reconnect_max_ms = 20;
    c.reconnect_attempts = 3;
    mdfeed_pub_t *pub;
    ASSERT_EQ(mdfeed_pub_new(&pub, &c, &cbs), 0);
    ASSERT_EQ(mdfeed_pub_wait_ready(pub, 3000), MDFEED_EGAVE_UP);
    mdfeed_pub_stats_t st;
    mdfeed_pub_stats(pub, &st);
    ASSERT_UEQ(st.reconnects, 4);
    mdfeed_pub_free(pub);

    c.username = "toolonguser";
    ASSERT_EQ(mdfeed_pub_new(&pub, &c, &cbs), MDFEED_EBAD_CONFIG);
    c.username = "u";
    c.connect = "127.0.0.1";
    ASSERT_EQ(mdfeed_pub_new(&pub, &c, &cbs), MDFEED_EBAD_ADDRESS);
    c.connect = "127.0.0.1:0";
    ASSERT_EQ(mdfeed_pub_new(&pub, &c, &cbs), MDFEED_EBAD_ADDRESS);
    mdfeed_pub_free(NULL);
}

int main(void)
{
    test_send_coalesced();
    test_reject();
    test_reconnect();
    test_give_up_and_config();
    printf("test_publisher: all passed\n");
    return 0;
}
