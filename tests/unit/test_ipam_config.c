/* eni-ipam: configuration parsing (defaults, every key, every bad value), the documented
 * example config/eni-ipam.conflist.json and its NetworkAttachmentDefinition, the environment
 * checks (CNI_IFNAME, CNI_CONTAINERID, CNI_ARGS, CNI_NETNS) and the stdin size cap. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <fcntl.h>

#include "cni.h"
#include "config.h"
#include "log.h"
#include "netns.h"
#include "task.h"

#ifndef MDCAST_SOURCE_DIR
#error "MDCAST_SOURCE_DIR must be defined by the build"
#endif

static int parse_ipam(const char *version, const char *ipam, struct ipam_config *cfg,
                      struct ipam_error *err)
{
    char json[4096];
    snprintf(json, sizeof(json), "{\"cniVersion\":\"%s\",\"name\":\"mc\",\"ipam\":%s}", version,
             ipam);
    memset(err, 0, sizeof(*err));
    return ipam_config_parse(json, strlen(json), cfg, err);
}

static void test_defaults(void)
{
    struct ipam_config cfg;
    struct ipam_error err;
    ASSERT_EQ(parse_ipam("1.0.0", "{\"type\":\"eni-ipam\"}", &cfg, &err), 0);
    ASSERT_EQ(cfg.version, IPAM_V1_0_0);
    ASSERT_STR_EQ(cfg.name, "mc");
    ASSERT_STR_EQ(cfg.type, "eni-ipam");
    ASSERT_STR_EQ(cfg.imds_endpoint, IPAM_DEFAULT_ENDPOINT);
    ASSERT_EQ(cfg.imds_timeout_ms, IPAM_DEFAULT_TIMEOUT_MS);
    ASSERT_EQ(cfg.imds_retries, IPAM_DEFAULT_RETRIES);
    ASSERT_EQ(cfg.n_routes, 1);
    ASSERT_UEQ(cfg.routes[0].dst.addr, inet_addr("224.0.0.0"));
    ASSERT_EQ(cfg.routes[0].dst.prefix, 4);
    ASSERT(!cfg.routes[0].has_gw);
    ASSERT_EQ(cfg.log_level, IPAM_LOG_INFO);
    ASSERT_STR_EQ(cfg.log_file, "");
    ASSERT(!cfg.has_prev_result);
}

static void test_every_key(void)
{
    struct ipam_config cfg;
    struct ipam_error err;
    ASSERT_EQ(parse_ipam("0.3.1",
                         "{\"type\":\"my-ipam\",\"imds_endpoint\":\"http://127.0.0.1:8080/\","
                         "\"imds_timeout_ms\":250,\"imds_retries\":0,"
                         "\"routes\":[{\"dst\":\"239.1.0.0/16\"},{\"dst\":\"0.0.0.0/0\","
                         "\"gw\":\"198.18.0.1\"}],"
                         "\"log_level\":\"debug\",\"log_file\":\"/tmp/eni-ipam.log\"}",
                         &cfg, &err),
              0);
    ASSERT_EQ(cfg.version, IPAM_V0_3_1);
    ASSERT_STR_EQ(cfg.type, "my-ipam");
    ASSERT_STR_EQ(cfg.imds_endpoint, "http://127.0.0.1:8080"); /* trailing slash dropped */
    ASSERT_EQ(cfg.imds_timeout_ms, 250);
    ASSERT_EQ(cfg.imds_retries, 0);
    ASSERT_EQ(cfg.n_routes, 2);
    ASSERT_UEQ(cfg.routes[0].dst.addr, inet_addr("239.1.0.0"));
    ASSERT_EQ(cfg.routes[0].dst.prefix, 16);
    ASSERT_EQ(cfg.routes[1].dst.prefix, 0);
    ASSERT(cfg.routes[1].has_gw);
    ASSERT_UEQ(cfg.routes[1].gw, inet_addr("198.18.0.1"));
    ASSERT_EQ(cfg.log_level, IPAM_LOG_DEBUG);
    ASSERT_STR_EQ(cfg.log_file, "/tmp/eni-ipam.log");

    /* The IPv6 IMDS endpoint, and an empty route list. */
    ASSERT_EQ(parse_ipam("1.1.0",
                         "{\"type\":\"eni-ipam\",\"imds_endpoint\":\"http://[fd00:ec2::254]\","
                         "\"routes\":[]}",
                         &cfg, &err),
              0);
    ASSERT_STR_EQ(cfg.imds_endpoint, "http://[fd00:ec2::254]");
    ASSERT_EQ(cfg.n_routes, 0);
    ASSERT_EQ(parse_ipam("1.0.0",
                         "{\"type\":\"eni-ipam\",\"imds_endpoint\":\"http://[::1]:18080\"}", &cfg,
                         &err),
              0);
    ASSERT_STR_EQ(cfg.imds_endpoint, "http://[::1]:18080");
}

struct bad_case {
    const char *ipam;
    const char *needle; /* the message must name this */
};

static void test_bad_ipam_values(void)
{
    static const struct bad_case cases[] = {
        {"{}", "ipam.type"},
        {"{\"type\":\"\"}", "ipam.type"},
        {"{\"type\":7}", "ipam.type"},
        {"{\"type\":\"eni-ipam\",\"imds_endpoint\":\"https://127.0.0.1\"}",
         "ipam.imds_endpoint"},
        {"{\"type\":\"eni-ipam\",\"imds_endpoint\":\"http://127.0.0.1/latest\"}", "path"},
        {"{\"type\":\"eni-ipam\",\"imds_endpoint\":\"http://u@127.0.0.1\"}", "valid host"},
        {"{\"type\":\"eni-ipam\",\"imds_endpoint\":\"http://127.0.0.1:0\"}", "port"},
        {"{\"type\":\"eni-ipam\",\"imds_endpoint\":\"http://127.0.0.1:70000\"}", "port"},
        {"{\"type\":\"eni-ipam\",\"imds_endpoint\":\"http://127.0.0.1:80x\"}", "port"},
        {"{\"type\":\"eni-ipam\",\"imds_endpoint\":\"http://[fd00:ec2::zz]\"}", "IPv6"},
        {"{\"type\":\"eni-ipam\",\"imds_endpoint\":\"http://\"}", "host"},
        {"{\"type\":\"eni-ipam\",\"imds_endpoint\":\"http://a b\"}", "valid host"},
        {"{\"type\":\"eni-ipam\",\"imds_endpoint\":42}", "ipam.imds_endpoint"},
        {"{\"type\":\"eni-ipam\",\"imds_timeout_ms\":0}", "ipam.imds_timeout_ms"},
        {"{\"type\":\"eni-ipam\",\"imds_timeout_ms\":60001}", "ipam.imds_timeout_ms"},
        {"{\"type\":\"eni-ipam\",\"imds_timeout_ms\":1.5}", "ipam.imds_timeout_ms"},
        {"{\"type\":\"eni-ipam\",\"imds_timeout_ms\":\"100\"}", "ipam.imds_timeout_ms"},
        {"{\"type\":\"eni-ipam\",\"imds_retries\":-1}", "ipam.imds_retries"},
        {"{\"type\":\"eni-ipam\",\"imds_retries\":11}", "ipam.imds_retries"},
        {"{\"type\":\"eni-ipam\",\"routes\":{}}", "ipam.routes"},
        {"{\"type\":\"eni-ipam\",\"routes\":[\"224.0.0.0/4\"]}", "ipam.routes[0]"},
        {"{\"type\":\"eni-ipam\",\"routes\":[{}]}", "missing \"dst\""},
        {"{\"type\":\"eni-ipam\",\"routes\":[{\"dst\":\"224.0.0.0/33\"}]}", "routes[0].dst"},
        {"{\"type\":\"eni-ipam\",\"routes\":[{\"dst\":\"224.0.0.1/4\"}]}", "host bits"},
        {"{\"type\":\"eni-ipam\",\"routes\":[{\"dst\":\"ff00::/8\"}]}", "routes[0].dst"},
        {"{\"type\":\"eni-ipam\",\"routes\":[{\"dst\":\"224.0.0.0/4\"},{\"dst\":\"x\"}]}",
         "routes[1].dst"},
        {"{\"type\":\"eni-ipam\",\"routes\":[{\"dst\":\"224.0.0.0/4\",\"gw\":\"1.2.3\"}]}",
         "routes[0].gw"},
        {"{\"type\":\"eni-ipam\",\"routes\":[{\"dst\":\"224.0.0.0/4\",\"mtu\":1500}]}",
         "unknown key \"mtu\""},
        {"{\"type\":\"eni-ipam\",\"log_level\":\"verbose\"}", "ipam.log_level"},
        {"{\"type\":\"eni-ipam\",\"log_level\":3}", "ipam.log_level"},
        {"{\"type\":\"eni-ipam\",\"log_file\":\"relative.log\"}", "ipam.log_file"},
        {"{\"type\":\"eni-ipam\",\"imds_timeout\":100}", "unknown key \"imds_timeout\""},
        {"[]", "\"ipam\" must be an object"},
        {"{\"type\":\"eni-ipam\",\"imds_retries\":1,\"imds_retries\":2}", "duplicate key"},
    };
    struct ipam_config cfg;
    struct ipam_error err;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = parse_ipam("1.0.0", cases[i].ipam, &cfg, &err);
        if (rc != -IPAM_E_INVALID_CONFIG || strstr(err.msg, cases[i].needle) == NULL)
            TEST_FAIL_("case %zu %s: rc %d, msg \"%s\", wanted code 7 naming \"%s\"", i,
                       cases[i].ipam, rc, err.msg, cases[i].needle);
    }

    /* More routes than the plugin holds. */
    char many[4096] = "{\"type\":\"eni-ipam\",\"routes\":[";
    for (int i = 0; i <= IPAM_MAX_ROUTES; i++)
        strcat(many, i ? ",{\"dst\":\"239.0.0.0/8\"}" : "{\"dst\":\"239.0.0.0/8\"}");
    strcat(many, "]}");
    ASSERT_EQ(parse_ipam("1.0.0", many, &cfg, &err), -IPAM_E_INVALID_CONFIG);
    ASSERT(strstr(err.msg, "more than") != NULL);
}

static void test_bad_documents(void)
{
    struct ipam_config cfg;
    struct ipam_error err;
    const char *doc;

    doc = "{\"cniVersion\":\"1.0.0\",";
    ASSERT_EQ(ipam_config_parse(doc, strlen(doc), &cfg, &err), -IPAM_E_DECODE);
    ASSERT(strstr(err.msg, "not valid JSON") != NULL);
    ASSERT_EQ(ipam_config_parse("", 0, &cfg, &err), -IPAM_E_DECODE);
    doc = "[1,2]";
    ASSERT_EQ(ipam_config_parse(doc, strlen(doc), &cfg, &err), -IPAM_E_DECODE);
    doc = "\x01\x02garbage";
    ASSERT_EQ(ipam_config_parse(doc, strlen(doc), &cfg, &err), -IPAM_E_DECODE);

    doc = "{\"ipam\":{\"type\":\"eni-ipam\"}}";
    ASSERT_EQ(ipam_config_parse(doc, strlen(doc), &cfg, &err), -IPAM_E_INCOMPATIBLE_VERSION);
    ASSERT(strstr(err.msg, "cniVersion missing") != NULL);
    const char *unsupported[] = {"0.1.0", "0.2.0", "1.2.0", "2.0.0", "1.0", ""};
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        ASSERT_EQ(parse_ipam(unsupported[i], "{\"type\":\"eni-ipam\"}", &cfg, &err),
                  -IPAM_E_INCOMPATIBLE_VERSION);
        ASSERT(strstr(err.msg, "not supported") != NULL);
    }
    doc = "{\"cniVersion\":1,\"ipam\":{\"type\":\"eni-ipam\"}}";
    ASSERT_EQ(ipam_config_parse(doc, strlen(doc), &cfg, &err), -IPAM_E_INVALID_CONFIG);
    doc = "{\"cniVersion\":\"0.4.0\"}";
    ASSERT_EQ(ipam_config_parse(doc, strlen(doc), &cfg, &err), -IPAM_E_INVALID_CONFIG);
    ASSERT(strstr(err.msg, "missing \"ipam\"") != NULL);
    /* The version is known even when a later key fails, so the error uses its shape. */
    ASSERT_EQ(parse_ipam("0.4.0", "{\"type\":\"eni-ipam\",\"imds_retries\":99}", &cfg, &err),
              -IPAM_E_INVALID_CONFIG);
    ASSERT_EQ(cfg.version, IPAM_V0_4_0);
}

static void test_prev_result(void)
{
    struct ipam_config cfg;
    struct ipam_error err;
    const char *doc =
        "{\"cniVersion\":\"1.0.0\",\"ipam\":{\"type\":\"eni-ipam\"},\"prevResult\":{"
        "\"interfaces\":[{\"name\":\"net1\"}],\"ips\":[{\"address\":\"198.18.1.10/24\","
        "\"interface\":0},{\"address\":\"2001:db8::1/64\"}],\"routes\":[]}}";
    ASSERT_EQ(ipam_config_parse(doc, strlen(doc), &cfg, &err), 0);
    ASSERT(cfg.has_prev_result);
    ASSERT_EQ(cfg.n_prev_ips, 1);
    ASSERT_UEQ(cfg.prev_ips[0].addr, inet_addr("198.18.1.10"));
    ASSERT_EQ(cfg.prev_ips[0].prefix, 24);

    doc = "{\"cniVersion\":\"1.0.0\",\"ipam\":{\"type\":\"eni-ipam\"},\"prevResult\":{"
          "\"ips\":[{\"address\":\"198.18.1.10\"}]}}";
    ASSERT_EQ(ipam_config_parse(doc, strlen(doc), &cfg, &err), -IPAM_E_INVALID_CONFIG);
    ASSERT(strstr(err.msg, "prevResult.ips[0].address") != NULL);
    doc = "{\"cniVersion\":\"1.0.0\",\"ipam\":{\"type\":\"eni-ipam\"},\"prevResult\":7}";
    ASSERT_EQ(ipam_config_parse(doc, strlen(doc), &cfg, &err), -IPAM_E_INVALID_CONFIG);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;
    struct ipam_error err;
    ASSERT(f != NULL);
    ASSERT_EQ(ipam_read_all(f, 1 << 20, &buf, &len, &err), 0);
    fclose(f);
    return buf;
}

/* Builds the config host-device hands to its IPAM plugin from plugin list entry 0, as libcni
 * does (name and cniVersion copied in). */
static void test_documented_example(void)
{
    char *text = slurp(MDCAST_SOURCE_DIR "/config/eni-ipam.conflist.json");
    cJSON *list = cJSON_Parse(text);
    ASSERT(list != NULL);
    cJSON *plugin = cJSON_Duplicate(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(list, "plugins"), 0), 1);
    ASSERT(plugin != NULL);
    ASSERT_STR_EQ(cJSON_GetObjectItemCaseSensitive(plugin, "type")->valuestring, "host-device");
    cJSON_AddItemToObject(plugin, "cniVersion",
                          cJSON_Duplicate(cJSON_GetObjectItem(list, "cniVersion"), 1));
    cJSON_AddItemToObject(plugin, "name", cJSON_Duplicate(cJSON_GetObjectItem(list, "name"), 1));
    char *doc = cJSON_PrintUnformatted(plugin);

    struct ipam_config cfg;
    struct ipam_error err = {0};
    int rc = ipam_config_parse(doc, strlen(doc), &cfg, &err);
    if (rc != 0)
        TEST_FAIL_("config/eni-ipam.conflist.json: code %d: %s", err.code, err.msg);
    ASSERT_EQ(cfg.version, IPAM_V1_0_0);
    ASSERT_STR_EQ(cfg.type, "eni-ipam");
    ASSERT_EQ(cfg.n_routes, 1);
    ASSERT_EQ(cfg.routes[0].dst.prefix, 4);

    /* The example NetworkAttachmentDefinition embeds exactly this plugin list. */
    char *yaml = slurp(MDCAST_SOURCE_DIR "/config/nad-example.yaml");
    char *block = strstr(yaml, "config: |\n");
    ASSERT(block != NULL);
    block = strchr(block, '\n') + 1;
    cJSON *embedded = cJSON_Parse(block);
    ASSERT(embedded != NULL);
    ASSERT(cJSON_Compare(embedded, list, 1));

    cJSON_Delete(embedded);
    free(yaml);
    free(doc);
    cJSON_Delete(plugin);
    cJSON_Delete(list);
    free(text);
}

static void test_env(void)
{
    struct ipam_env env;
    struct ipam_error err;

    unsetenv("CNI_COMMAND");
    ASSERT_EQ(ipam_env_command(&env, &err), -IPAM_E_INVALID_ENV);
    setenv("CNI_COMMAND", "ADDD", 1);
    ASSERT_EQ(ipam_env_command(&env, &err), -IPAM_E_INVALID_ENV);
    ASSERT(strstr(err.msg, "unknown") != NULL);

    setenv("CNI_COMMAND", "ADD", 1);
    ASSERT_EQ(ipam_env_command(&env, &err), 0);
    ASSERT_EQ(env.command, IPAM_CMD_ADD);
    setenv("CNI_CONTAINERID", "abc_1.2-3", 1);
    setenv("CNI_NETNS", "/var/run/netns/pod", 1);
    setenv("CNI_IFNAME", "net1", 1);
    setenv("CNI_ARGS", "IgnoreUnknown=true;K8S_POD_NAMESPACE=md;K8S_POD_NAME=gw-0", 1);
    ASSERT_EQ(ipam_env_parse(&env, &err), 0);
    ASSERT_STR_EQ(env.pod_namespace, "md");
    ASSERT_STR_EQ(env.pod_name, "gw-0");

    static const struct {
        const char *var, *value, *needle;
    } bad[] = {
        {"CNI_IFNAME", "0123456789abcdef", "at most 15"},
        {"CNI_IFNAME", "net/1", "invalid character"},
        {"CNI_IFNAME", "net 1", "invalid character"},
        {"CNI_IFNAME", "..", "not a valid name"},
        {"CNI_IFNAME", "", "empty"},
        {"CNI_CONTAINERID", "abc;rm -rf", "CNI_CONTAINERID"},
        {"CNI_CONTAINERID", "", "empty"},
        {"CNI_NETNS", "", "CNI_NETNS is not set"},
        {"CNI_NETNS", "relative/ns", "absolute"},
        {"CNI_ARGS", "novalue", "KEY=VALUE"},
        {"CNI_ARGS", "=x", "KEY=VALUE"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *saved = getenv(bad[i].var);
        char keep[256];
        snprintf(keep, sizeof(keep), "%s", saved ? saved : "");
        setenv(bad[i].var, bad[i].value, 1);
        int rc = ipam_env_parse(&env, &err);
        if (rc != -IPAM_E_INVALID_ENV || strstr(err.msg, bad[i].needle) == NULL)
            TEST_FAIL_("%s=\"%s\": rc %d msg \"%s\", wanted code 4 with \"%s\"", bad[i].var,
                       bad[i].value, rc, err.msg, bad[i].needle);
        setenv(bad[i].var, keep, 1);
    }
    unsetenv("CNI_IFNAME");
    ASSERT_EQ(ipam_env_parse(&env, &err), -IPAM_E_INVALID_ENV);
    setenv("CNI_IFNAME", "net1", 1);

    /* DEL does not need a namespace (it may be gone already). */
    unsetenv("CNI_NETNS");
    setenv("CNI_COMMAND", "DEL", 1);
    ASSERT_EQ(ipam_env_command(&env, &err), 0);
    ASSERT_EQ(ipam_env_parse(&env, &err), 0);
    /* VERSION needs nothing else. */
    unsetenv("CNI_CONTAINERID");
    setenv("CNI_COMMAND", "VERSION", 1);
    ASSERT_EQ(ipam_env_command(&env, &err), 0);
    ASSERT_EQ(ipam_env_parse(&env, &err), 0);
}

static void test_netns_validate(void)
{
    struct ipam_error err;
    ASSERT_EQ(ipam_netns_validate("/proc/self/ns/net", &err), 0);
    ASSERT_EQ(ipam_netns_validate("/proc/self/ns/uts", &err), -IPAM_E_INVALID_ENV);
    ASSERT(strstr(err.msg, "not a network namespace") != NULL);
    ASSERT_EQ(ipam_netns_validate("/etc/hostname", &err), -IPAM_E_INVALID_ENV);
    ASSERT(strstr(err.msg, "not a namespace") != NULL);
    ASSERT_EQ(ipam_netns_validate("/nonexistent/ns", &err), -IPAM_E_INVALID_ENV);
    ASSERT(strstr(err.msg, "No such file") != NULL);
}

static void test_stdin_cap(void)
{
    size_t big = 64 * 1024;
    char *data = malloc(big);
    char *out = NULL;
    size_t len = 0;
    struct ipam_error err;
    ASSERT(data != NULL);
    memset(data, ' ', big);

    FILE *f = fmemopen(data, big, "r");
    ASSERT(f != NULL);
    ASSERT_EQ(ipam_read_all(f, big - 1, &out, &len, &err), -IPAM_E_DECODE);
    ASSERT(strstr(err.msg, "larger than") != NULL);
    fclose(f);

    f = fmemopen(data, big, "r");
    ASSERT_EQ(ipam_read_all(f, big, &out, &len, &err), 0);
    ASSERT_UEQ(len, big);
    ASSERT_EQ(out[len], '\0');
    free(out);
    fclose(f);
    free(data);
}

int main(void)
{
    test_defaults();
    test_every_key();
    test_bad_ipam_values();
    test_bad_documents();
    test_prev_result();
    test_documented_example();
    test_env();
    test_netns_validate();
    test_stdin_cap();
    printf("test_ipam_config: ok\n");
    return 0;
}
