/* eni-ipam: the IMDSv2 client against tests/tools/mock_imds.py on loopback, one mock per
 * mode: the answer in "ok" and "fresh" mode, code 11 for 404/500/throttle/slow/close/down
 * after exactly the configured attempts, the own codes for garbage, prefix /33, an address
 * outside its subnet, an 8 MiB body and a refused token; proxies from the environment are
 * ignored; the token semantics are visible in the mock's request log. */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>

#include "config.h"
#include "imds.h"
#include "task.h"

#ifndef MOCK_IMDS
#error "MOCK_IMDS must be defined by the build"
#endif

extern char **environ;

static char tmpdir[64];
static char macs_path[128];
static char log_path[128];
static const char *mac = "02:00:00:00:00:01";

struct mock {
    pid_t pid;
    char endpoint[64];
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* Starts the mock on a free loopback port and waits for its "listening on" line. */
static void mock_start(struct mock *m, const char *mode, const char *extra)
{
    int pipefd[2];
    posix_spawn_file_actions_t fa;
    char *argv[16];
    int argc = 0;
    char line[128] = "";

    ASSERT_EQ(pipe(pipefd), 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, pipefd[0]);
    posix_spawn_file_actions_addclose(&fa, pipefd[1]);
    unlink(log_path);
    argv[argc++] = "python3";
    argv[argc++] = MOCK_IMDS;
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1:0";
    argv[argc++] = "--macs";
    argv[argc++] = macs_path;
    argv[argc++] = "--log";
    argv[argc++] = log_path;
    argv[argc++] = "--mode";
    argv[argc++] = (char *)mode;
    if (extra != NULL) {
        argv[argc++] = "--slow-ms";
        argv[argc++] = (char *)extra;
    }
    argv[argc] = NULL;
    int rc = posix_spawnp(&m->pid, "python3", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0)
        SKIP("cannot run python3 for the mock IMDS: %s", strerror(rc));

    FILE *out = fdopen(pipefd[0], "r");
    ASSERT(out != NULL);
    if (fgets(line, sizeof(line), out) == NULL)
        TEST_FAIL_("mock_imds.py (mode %s) printed nothing", mode);
    fclose(out);
    unsigned port = 0;
    ASSERT_EQ(sscanf(line, "listening on 127.0.0.1:%u", &port), 1);
    snprintf(m->endpoint, sizeof(m->endpoint), "http://127.0.0.1:%u", port);
}

static void mock_stop(struct mock *m)
{
    int status;
    kill(m->pid, SIGTERM);
    ASSERT_EQ(waitpid(m->pid, &status, 0), m->pid);
}

/* Counts the lines of the mock's request log that contain needle. */
static int log_count(const char *needle)
{
    char line[512];
    int n = 0;
    FILE *f = fopen(log_path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static int retries_seen;
static void count_retry(void *data, const char *what, int attempt, const char *why)
{
    (void)data;
    (void)what;
    (void)why;
    ASSERT_EQ(attempt, retries_seen + 1);
    retries_seen++;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double last_lookup_ms; /* duration of the last ipam_imds_lookup() in lookup() */

/* Runs one lookup against a fresh mock in the given mode. */
static int lookup(const char *mode, const char *slow_ms, long timeout_ms, int retries,
                  struct ipam_lease *lease, struct ipam_error *err)
{
    struct mock m;
    mock_start(&m, mode, slow_ms);
    struct ipam_imds_opts o = {
        .endpoint = m.endpoint,
        .timeout_ms = timeout_ms,
        .retries = retries,
        .backoff_ms = 5,
        .on_retry = count_retry,
    };
    retries_seen = 0;
    memset(err, 0, sizeof(*err));
    double t0 = now_ms();
    int rc = ipam_imds_lookup(&o, mac, lease, err);
    last_lookup_ms = now_ms() - t0;
    mock_stop(&m);
    fprintf(stderr, "mode %-9s -> rc %d code %d: %s\n", mode, rc, err->code, err->msg);
    return rc;
}

static void test_ok(void)
{
    struct ipam_lease lease;
    struct ipam_error err;
    ASSERT_EQ(lookup("ok", NULL, 1000, 2, &lease, &err), 0);
    ASSERT_UEQ(lease.ip.addr, inet_addr("198.18.1.10")); /* first line = primary */
    ASSERT_EQ(lease.ip.prefix, 24);
    ASSERT_EQ(retries_seen, 0);
    /* One token PUT, then two GETs carrying the token, none in proxy form. */
    ASSERT_EQ(log_count("PUT /latest/api/token 200 token=no"), 1);
    ASSERT_EQ(log_count("local-ipv4s 200 token=yes proxy=no"), 1);
    ASSERT_EQ(log_count("subnet-ipv4-cidr-block 200 token=yes proxy=no"), 1);
    ASSERT_EQ(log_count("proxy=yes"), 0);
}

static void test_proxy_ignored(void)
{
    struct ipam_lease lease;
    struct ipam_error err;
    /* Port 9 (discard) on loopback has no listener: a client that used the proxy fails. */
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
    setenv("ALL_PROXY", "http://127.0.0.1:9", 1);
    ASSERT_EQ(lookup("ok", NULL, 1000, 0, &lease, &err), 0);
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("ALL_PROXY");
}

static void test_fresh_eni_recovers(void)
{
    struct ipam_lease lease;
    struct ipam_error err;
    /* The mock owes two 404s: three attempts suffice. */
    ASSERT_EQ(lookup("fresh", NULL, 1000, 2, &lease, &err), 0);
    ASSERT_EQ(retries_seen, 2);
    ASSERT_UEQ(lease.ip.addr, inet_addr("198.18.1.10"));
}

static void test_transient_modes_give_11(void)
{
    static const char *modes[] = {"404", "500", "throttle", "close"};
    struct ipam_lease lease;
    struct ipam_error err;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        ASSERT_EQ(lookup(modes[i], NULL, 1000, 2, &lease, &err), -IPAM_E_TRY_AGAIN);
        ASSERT_EQ(err.code, 11);
        ASSERT_EQ(retries_seen, 2);
        ASSERT(strstr(err.msg, "after 3 attempts") != NULL);
    }
    /* 404 names the likely cause. */
    ASSERT_EQ(lookup("404", NULL, 1000, 0, &lease, &err), -IPAM_E_TRY_AGAIN);
    ASSERT(strstr(err.msg, "freshly attached") != NULL);
    ASSERT_EQ(log_count("local-ipv4s 404"), 1);
    ASSERT_EQ(lookup("throttle", NULL, 1000, 1, &lease, &err), -IPAM_E_TRY_AGAIN);
    ASSERT(strstr(err.msg, "429") != NULL);
}

static void test_slow_times_out(void)
{
    struct ipam_lease lease;
    struct ipam_error err;
    ASSERT_EQ(lookup("slow", "3000", 200, 1, &lease, &err), -IPAM_E_TRY_AGAIN);
    double took = last_lookup_ms;
    ASSERT(strstr(err.msg, "imed out") != NULL || strstr(err.msg, "Timeout") != NULL);
    /* Two attempts of 200 ms each, not the mock's 3 s. */
    ASSERT_LT(took, 2500);
}

static void test_down(void)
{
    struct ipam_lease lease;
    struct ipam_error err;
    struct ipam_imds_opts o = {
        .endpoint = "http://127.0.0.1:9", .timeout_ms = 500, .retries = 1, .backoff_ms = 5};
    ASSERT_EQ(ipam_imds_lookup(&o, mac, &lease, &err), -IPAM_E_TRY_AGAIN);
    ASSERT(strstr(err.msg, "after 2 attempts") != NULL);
}

static void test_garbage_modes(void)
{
    static const struct {
        const char *mode;
        int code;
        const char *needle;
    } cases[] = {
        {"garbage", IPAM_E_IMDS_BAD_ADDRESS, "is not an IPv4 address"},
        {"badprefix", IPAM_E_IMDS_BAD_SUBNET, "out of range"},
        {"outside", IPAM_E_IMDS_BAD_SUBNET, "outside its subnet"},
        {"huge", IPAM_E_IMDS_TOO_LARGE, "larger than"},
        {"notoken", IPAM_E_IMDS_REFUSED, "403"},
    };
    struct ipam_lease lease;
    struct ipam_error err;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ASSERT_EQ(lookup(cases[i].mode, NULL, 2000, 3, &lease, &err), -cases[i].code);
        ASSERT(strstr(err.msg, cases[i].needle) != NULL);
        ASSERT_EQ(retries_seen, 0); /* garbage is not retried */
    }
}

static void test_bad_mac(void)
{
    struct ipam_lease lease;
    struct ipam_error err;
    struct ipam_imds_opts o = {.endpoint = "http://127.0.0.1:9", .timeout_ms = 100};
    ASSERT_EQ(ipam_imds_lookup(&o, "02:00:00:00:00:0G", &lease, &err), -IPAM_E_INTERNAL);
    ASSERT_EQ(ipam_imds_lookup(&o, "../../x", &lease, &err), -IPAM_E_INTERNAL);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_ipam_imds.XXXXXX");
    ASSERT(mkdtemp(tmpdir) != NULL);
    snprintf(macs_path, sizeof(macs_path), "%s/macs.json", tmpdir);
    snprintf(log_path, sizeof(log_path), "%s/requests.log", tmpdir);
    write_file(macs_path, "{\"02:00:00:00:00:01\": {\"local-ipv4s\": [\"198.18.1.10\", "
                          "\"198.18.1.11\"], \"subnet-ipv4-cidr-block\": \"198.18.1.0/24\"}}");

    test_bad_mac();
    test_ok();
    test_proxy_ignored();
    test_fresh_eni_recovers();
    test_transient_modes_give_11();
    test_slow_times_out();
    test_down();
    test_garbage_modes();

    unlink(macs_path);
    unlink(log_path);
    rmdir(tmpdir);
    printf("test_ipam_imds: ok\n");
    return 0;
}
