/* Gateway config: the documented example loads; every bad config is refused naming its key,
 * both by the parser and by `mdcast-gateway --check` (exit status 2). */
#include "config.h"
#include "task.h"

#include <arpa/inet.h>
#include <sys/wait.h>

#ifndef GW_SOURCE_DIR
#error "GW_SOURCE_DIR must be defined"
#endif
#ifndef GW_BINARY
#error "GW_BINARY must be defined"
#endif

/* A small valid config; bad ones replace one fragment of it. */
static const char *const base =
    "{\"ingress\":{\"listen\":\"127.0.0.1:7000\",\"heartbeat_ms\":1000,\"idle_timeout_ms\":15000,"
    "\"users\":[{\"username\":\"pub1\",\"password\":\"pw\",\"channel\":\"c1\"}]},"
    "\"egress\":{\"interface\":\"lo\",\"ttl\":32,\"loop\":false,\"payload_budget\":1400,"
    "\"io\":\"auto\"},"
    "\"channels\":[{\"name\":\"c1\",\"session\":\"SESS1\",\"lines\":[\"239.1.1.1:30001\","
    "\"239.1.1.2:30001\"],\"retransmit_port\":31001,\"ring_messages\":1000,"
    "\"ring_bytes\":100000}],"
    "\"retransmit\":{\"max_messages_per_request\":100},"
    "\"metrics\":{\"listen\":\"127.0.0.1:9100\"}}";

typedef struct {
    const char *from, *to; /* replace the first `from` in base by `to` */
    const char *key;       /* the error must name this key */
} bad_t;

static const bad_t bads[] = {
    {"\"ttl\":32", "\"ttl\":0", "egress.ttl"},
    {"\"ttl\":32", "\"ttl\":256", "egress.ttl"},
    {"\"ttl\":32", "\"ttl\":\"32\"", "egress.ttl"},
    {"\"ttl\":32", "\"ttl\":1.5", "egress.ttl"},
    {"\"loop\":false", "\"loop\":1", "egress.loop"},
    {"\"loop\":false", "\"loop\":false,\"socket_buffer_bytes\":100", "egress.socket_buffer_bytes"},
    {"\"payload_budget\":1400", "\"payload_budget\":8473", "egress.payload_budget"},
    {"\"payload_budget\":1400", "\"payload_budget\":10", "egress.payload_budget"},
    {"\"io\":\"auto\"", "\"io\":\"epoll\"", "egress.io"},
    {"\"io\":\"auto\"", "\"io\":\"auto\",\"zerocopy\":\"yes\"", "egress.zerocopy"},
    {"\"io\":\"auto\"", "\"io\":\"auto\",\"zerocopy\":true", "egress.zerocopy"},
    {"\"io\":\"auto\"", "\"io\":\"auto\",\"zerocopy\":\"\"", "egress.zerocopy"},
    {"\"io\":\"auto\"", "\"io\":\"auto\",\"zerocopy_threshold\":63", "egress.zerocopy_threshold"},
    {"\"io\":\"auto\"", "\"io\":\"auto\",\"zerocopy_threshold\":8473", "egress.zerocopy_threshold"},
    {"\"io\":\"auto\"", "\"io\":\"auto\",\"zerocopy_threshold\":\"4k\"",
     "egress.zerocopy_threshold"},
    {"\"io\":\"auto\"", "\"io\":\"auto\",\"zerocopy_threshold\":1500.5",
     "egress.zerocopy_threshold"},
    {"\"io\":\"auto\"", "\"io\":\"auto\",\"registered_buffers\":\"on\"",
     "egress.registered_buffers"},
    {"\"io\":\"auto\"", "\"io\":\"auto\",\"registered_buffers\":1", "egress.registered_buffers"},
    {"\"interface\":\"lo\"", "\"interface\":\"\"", "egress.interface"},
    {"\"interface\":\"lo\",", "", "egress.interface"},
    {"\"ttl\":32", "\"ttl\":32,\"tll\":3", "egress.tll"},
    {"\"listen\":\"127.0.0.1:7000\"", "\"listen\":\"127.0.0.1\"", "ingress.listen"},
    {"\"listen\":\"127.0.0.1:7000\"", "\"listen\":\"127.0.0.1:70000\"", "ingress.listen"},
    {"\"listen\":\"127.0.0.1:7000\"", "\"listen\":\"localhost:7000\"", "ingress.listen"},
    {"\"idle_timeout_ms\":15000", "\"idle_timeout_ms\":500", "ingress.idle_timeout_ms"},
    {"\"heartbeat_ms\":1000", "\"heartbeat_ms\":0", "ingress.heartbeat_ms"},
    {"\"username\":\"pub1\"", "\"username\":\"toolong7\"", "ingress.users[0].username"},
    {"\"username\":\"pub1\",", "", "ingress.users[0].username"},
    {"\"password\":\"pw\"", "\"password\":\"elevenchars\"", "ingress.users[0].password"},
    {"\"channel\":\"c1\"", "\"channel\":\"nope\"", "ingress.users[0].channel"},
    {"\"channel\":\"c1\"}", "\"channel\":\"c1\",\"x\":1}", "ingress.users[0].x"},
    {"\"users\":[{\"username\":\"pub1\",\"password\":\"pw\",\"channel\":\"c1\"}]",
     "\"users\":[{\"username\":\"pub1\",\"password\":\"pw\",\"channel\":\"c1\"},"
     "{\"username\":\"pub1\",\"password\":\"p2\",\"channel\":\"c1\"}]",
     "ingress.users[1].username"},
    {"\"users\":[{\"username\":\"pub1\",\"password\":\"pw\",\"channel\":\"c1\"}]", "\"users\":[]",
     "channels[0]"},
    {"\"users\":[{\"username\":\"pub1\",\"password\":\"pw\",\"channel\":\"c1\"}]", "\"users\":{}",
     "ingress.users"},
    {"\"ring_bytes\":100000}",
     "\"ring_bytes\":100000,\"upstream\":{\"connect\":\"127.0.0.1:1\","
     "\"username\":\"up\"}}",
     "ingress.users[0].channel"},
    {"\"ring_bytes\":100000}", "\"ring_bytes\":100000,\"upstream\":{\"username\":\"up\"}}",
     "channels[0].upstream.connect"},
    {"\"ring_bytes\":100000}",
     "\"ring_bytes\":100000,\"upstream\":{\"connect\":\"x:1\","
     "\"username\":\"up\"}}",
     "channels[0].upstream.connect"},
    {"\"ring_bytes\":100000}",
     "\"ring_bytes\":100000,\"upstream\":{\"connect\":\"127.0.0.1:1\","
     "\"username\":\"toolong7\"}}",
     "channels[0].upstream.username"},
    {"\"ring_bytes\":100000}",
     "\"ring_bytes\":100000,\"upstream\":{\"connect\":\"127.0.0.1:1\","
     "\"username\":\"up\",\"reconnect_ms\":1}}",
     "channels[0].upstream.reconnect_ms"},
    {"\"ring_bytes\":100000}",
     "\"ring_bytes\":100000,\"upstream\":{\"connect\":\"127.0.0.1:1\","
     "\"username\":\"up\",\"port\":1}}",
     "channels[0].upstream.port"},
    {"\"session\":\"SESS1\"", "\"session\":\"ELEVENCHARS\"", "channels[0].session"},
    {"\"session\":\"SESS1\"", "\"session\":\"\"", "channels[0].session"},
    {"\"lines\":[\"239.1.1.1:30001\",\"239.1.1.2:30001\"]", "\"lines\":[]", "channels[0].lines"},
    {"\"239.1.1.1:30001\"", "\"224.0.0.1:30001\"", "channels[0].lines[0]"},
    {"\"239.1.1.1:30001\"", "\"198.18.0.1:30001\"", "channels[0].lines[0]"},
    {"\"239.1.1.2:30001\"", "\"239.1.1.1:30002\"", "channels[0].lines[1]"},
    {"\"239.1.1.2:30001\"", "\"239.1.1.2:30001\",\"239.1.1.3:1\"", "channels[0].lines"},
    {"\"retransmit_port\":31001", "\"retransmit_port\":0", "channels[0].retransmit_port"},
    {"\"retransmit_port\":31001,", "", "channels[0].retransmit_port"},
    {"\"ring_messages\":1000", "\"ring_messages\":1", "channels[0].ring_messages"},
    {"\"ring_bytes\":100000", "\"ring_bytes\":1000", "channels[0].ring_bytes"},
    {"\"ring_bytes\":100000}", "\"ring_bytes\":100000,\"ringsize\":5}", "channels[0].ringsize"},
    {"\"name\":\"c1\"", "\"name\":\"has space\"", "channels[0].name"},
    {"\"channels\":[",
     "\"channels\":[{\"name\":\"c1\",\"session\":\"S2\",\"lines\":"
     "[\"239.1.1.9:1\"],\"retransmit_port\":2},",
     "channels[1].name"},
    {"\"max_messages_per_request\":100", "\"max_messages_per_request\":0",
     "retransmit.max_messages_per_request"},
    {"\"max_messages_per_request\":100", "\"address\":\"nowhere\"", "retransmit.address"},
    {"\"metrics\":{\"listen\":\"127.0.0.1:9100\"}", "\"metrics\":{}", "metrics.listen"},
    {"{\"ingress\"", "{\"log_level\":\"loud\",\"ingress\"", "log_level"},
    {"{\"ingress\"", "{\"ingres\":{},\"ingress\"", "ingres"},
    {"\"egress\":{", "\"egress\":{\"ttl\":3,", "egress.ttl"}, /* duplicate key */
    {"}}", "}", "(file)"},                                    /* not JSON */
};

static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    ASSERT(at != NULL);
    size_t n = strlen(s) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    ASSERT(out != NULL);
    memcpy(out, s, (size_t)(at - s));
    strcpy(out + (at - s), to);
    strcat(out, at + strlen(from));
    return out;
}

/* Runs `mdcast-gateway --config path --check`; returns the exit status, stderr in `err`. */
static int run_check(const char *path, char *err, size_t cap)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        execl(GW_BINARY, GW_BINARY, "--config", path, "--check", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fds[0], err + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = '\0';
    close(fds[0]);
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void test_example_loads(void)
{
    static gw_config_t cfg;
    char err[256];
    int rc = gw_config_load(GW_SOURCE_DIR "/config/gateway.json", &cfg, err, sizeof(err));
    if (rc)
        fprintf(stderr, "%s\n", err);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(cfg.nchannels, 2);
    ASSERT_EQ(cfg.nusers, 3);
    ASSERT_EQ(cfg.channels[0].nlines, 2);
    ASSERT_EQ(cfg.payload_budget, 1400);
    ASSERT_GT(cfg.ttl, 1);
    ASSERT_EQ(cfg.loop, false);
    ASSERT_EQ(cfg.io, GW_IO_AUTO);
    ASSERT_STR_EQ(cfg.egress_ifname, "net1");
    ASSERT_EQ(cfg.zerocopy, GW_ZC_AUTO);
    ASSERT_EQ(cfg.zerocopy_threshold, 4096);
    ASSERT_EQ(cfg.registered_buffers, true);
    ASSERT_EQ(cfg.users[2].channel, 1);
    ASSERT_MEM_EQ(cfg.channels[0].session, "MDCAST0001", 10);
    char out[4096];
    ASSERT_EQ(run_check(GW_SOURCE_DIR "/config/gateway.json", out, sizeof(out)), 0);
}

static void test_connect_example_loads(void)
{
    static gw_config_t cfg;
    char err[256];
    int rc = gw_config_load(GW_SOURCE_DIR "/config/gateway-connect.json", &cfg, err, sizeof(err));
    if (rc)
        fprintf(stderr, "%s\n", err);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(cfg.nusers, 0);
    ASSERT(cfg.channels[0].upstream);
    ASSERT_STR_EQ(cfg.channels[0].upstream_user, "mdgw");
    ASSERT_EQ(ntohs(cfg.channels[0].upstream_addr.sin_port), 26400);
    ASSERT_EQ(cfg.channels[0].reconnect_ms, 1000);
    ASSERT_EQ(cfg.socket_buffer_bytes, 4194304);
    char out[4096];
    ASSERT_EQ(run_check(GW_SOURCE_DIR "/config/gateway-connect.json", out, sizeof(out)), 0);
}

static void test_defaults(void)
{
    static gw_config_t cfg;
    char err[256];
    char *j = replace(base, "\"ttl\":32,\"loop\":false,\"payload_budget\":1400,\"io\":\"auto\"",
                      "\"interface2\":1");
    ASSERT_EQ(gw_config_parse(j, &cfg, err, sizeof(err)), -1); /* unknown key */
    free(j);
    j = replace(base, ",\"ttl\":32,\"loop\":false,\"payload_budget\":1400,\"io\":\"auto\"", "");
    ASSERT_EQ(gw_config_parse(j, &cfg, err, sizeof(err)), 0);
    ASSERT_GT(cfg.ttl, 1);
    ASSERT_EQ(cfg.loop, false);
    ASSERT_EQ(cfg.payload_budget, 1400);
    ASSERT_EQ(cfg.io, GW_IO_AUTO);
    ASSERT_EQ(cfg.mold_heartbeat_ms, 1000);
    ASSERT_EQ(cfg.socket_buffer_bytes, 4 << 20);
    ASSERT_EQ(cfg.zerocopy, GW_ZC_AUTO);
    ASSERT_EQ(cfg.zerocopy_threshold, 4096);
    ASSERT_EQ(cfg.registered_buffers, true);
    free(j);
    /* The zero-copy keys, each value accepted. */
    static const struct {
        const char *frag;
        gw_zerocopy_t zc;
        uint32_t thr;
        bool reg;
    } zcs[] = {
        {"\"zerocopy\":\"off\"", GW_ZC_OFF, 4096, true},
        {"\"zerocopy\":\"on\",\"zerocopy_threshold\":64", GW_ZC_ON, 64, true},
        {"\"zerocopy\":\"auto\",\"zerocopy_threshold\":8472,\"registered_buffers\":false",
         GW_ZC_AUTO, 8472, false},
    };
    for (size_t i = 0; i < sizeof(zcs) / sizeof(zcs[0]); i++) {
        char frag[160];
        snprintf(frag, sizeof(frag), "\"io\":\"auto\",%s", zcs[i].frag);
        j = replace(base, "\"io\":\"auto\"", frag);
        ASSERT_EQ(gw_config_parse(j, &cfg, err, sizeof(err)), 0);
        ASSERT_EQ(cfg.zerocopy, zcs[i].zc);
        ASSERT_EQ(cfg.zerocopy_threshold, zcs[i].thr);
        ASSERT_EQ(cfg.registered_buffers, zcs[i].reg);
        free(j);
    }
    /* An IPv4 address as the interface. */
    j = replace(base, "\"interface\":\"lo\"", "\"interface\":\"198.18.0.1\"");
    ASSERT_EQ(gw_config_parse(j, &cfg, err, sizeof(err)), 0);
    ASSERT_STR_EQ(cfg.egress_ifname, "");
    ASSERT_EQ(cfg.egress_addr.s_addr, inet_addr("198.18.0.1"));
    free(j);
}

static void test_bad_configs(void)
{
    static gw_config_t cfg;
    char path[] = "/tmp/test_gw_config_XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    close(fd);
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        char *j = replace(base, bads[i].from, bads[i].to);
        char err[512], out[4096];
        int rc = gw_config_parse(j, &cfg, err, sizeof(err));
        if (rc != -1 || strncmp(err, bads[i].key, strlen(bads[i].key)) != 0 ||
            err[strlen(bads[i].key)] != ':')
            TEST_FAIL_("case %zu: want an error naming %s, got rc %d \"%s\"", i, bads[i].key, rc,
                       err);
        write_file(path, j);
        int st = run_check(path, out, sizeof(out));
        if (st != 2 || !strstr(out, bads[i].key))
            TEST_FAIL_("case %zu: --check exit %d (want 2), stderr: %s", i, st, out);
        free(j);
    }
    unlink(path);
    /* A missing file is a config error too. */
    char out[4096];
    ASSERT_EQ(run_check("/nonexistent/gw.json", out, sizeof(out)), 2);
    printf("test_gw_config: %zu bad configs refused\n", sizeof(bads) / sizeof(bads[0]));
}

int main(void)
{
    test_example_loads();
    test_connect_example_loads();
    test_defaults();
    test_bad_configs();
    printf("test_gw_config: ok\n");
    return 0;
}
