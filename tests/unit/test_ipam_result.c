/* eni-ipam: result, error and VERSION rendering for every supported cniVersion. Each rendered
 * document is parsed back with cJSON and checked field by field. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>

#include "cni.h"
#include "config.h"
#include "task.h"

static cJSON *parse(char *json)
{
    ASSERT(json != NULL);
    cJSON *root = cJSON_Parse(json);
    ASSERT(root != NULL);
    free(json);
    return root;
}

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static struct ipam_config config_for(const char *version, const char *ipam_extra)
{
    char json[512];
    struct ipam_config cfg;
    struct ipam_error err = {0};
    snprintf(json, sizeof(json),
             "{\"cniVersion\":\"%s\",\"name\":\"mc\",\"type\":\"host-device\","
             "\"ipam\":{\"type\":\"eni-ipam\"%s}}",
             version, ipam_extra);
    int rc = ipam_config_parse(json, strlen(json), &cfg, &err);
    if (rc != 0)
        fprintf(stderr, "config error %d: %s\n", err.code, err.msg);
    ASSERT_EQ(rc, 0);
    return cfg;
}

static void test_result_every_version(void)
{
    struct ipam_lease lease;
    lease.ip.addr = inet_addr("198.18.1.10");
    lease.ip.prefix = 24;

    for (int v = 0; v < IPAM_V_COUNT; v++) {
        struct ipam_config cfg = config_for(ipam_version_names[v], "");
        ASSERT_EQ(cfg.version, v);
        cJSON *root = parse(ipam_result_render(&cfg, &lease));

        ASSERT_STR_EQ(str(root, "cniVersion"), ipam_version_names[v]);
        /* An IPAM result names no interfaces: host-device adds its own. */
        ASSERT(cJSON_GetObjectItemCaseSensitive(root, "interfaces") == NULL);
        const cJSON *ips = cJSON_GetObjectItemCaseSensitive(root, "ips");
        ASSERT(cJSON_IsArray(ips));
        ASSERT_EQ(cJSON_GetArraySize(ips), 1);
        const cJSON *ip = cJSON_GetArrayItem(ips, 0);
        ASSERT_STR_EQ(str(ip, "address"), "198.18.1.10/24");
        ASSERT(cJSON_GetObjectItemCaseSensitive(ip, "gateway") == NULL);
        ASSERT(cJSON_GetObjectItemCaseSensitive(ip, "interface") == NULL);
        if (v < IPAM_V1_0_0)
            ASSERT_STR_EQ(str(ip, "version"), "4");
        else
            ASSERT(cJSON_GetObjectItemCaseSensitive(ip, "version") == NULL);

        const cJSON *routes = cJSON_GetObjectItemCaseSensitive(root, "routes");
        ASSERT(cJSON_IsArray(routes));
        ASSERT_EQ(cJSON_GetArraySize(routes), 1);
        ASSERT_STR_EQ(str(cJSON_GetArrayItem(routes, 0), "dst"), "224.0.0.0/4");
        ASSERT(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(routes, 0), "gw") == NULL);
        ASSERT(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "dns")));
        cJSON_Delete(root);
    }
}

static void test_result_custom_routes(void)
{
    struct ipam_lease lease;
    lease.ip.addr = inet_addr("198.19.0.7");
    lease.ip.prefix = 20;
    struct ipam_config cfg =
        config_for("0.4.0", ",\"routes\":[{\"dst\":\"239.0.0.0/8\"},{\"dst\":\"198.19.16.0/20\","
                            "\"gw\":\"198.19.0.1\"}]");
    cJSON *root = parse(ipam_result_render(&cfg, &lease));
    const cJSON *routes = cJSON_GetObjectItemCaseSensitive(root, "routes");
    ASSERT_EQ(cJSON_GetArraySize(routes), 2);
    ASSERT_STR_EQ(str(cJSON_GetArrayItem(routes, 0), "dst"), "239.0.0.0/8");
    ASSERT(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(routes, 0), "gw") == NULL);
    ASSERT_STR_EQ(str(cJSON_GetArrayItem(routes, 1), "dst"), "198.19.16.0/20");
    ASSERT_STR_EQ(str(cJSON_GetArrayItem(routes, 1), "gw"), "198.19.0.1");
    ASSERT_STR_EQ(
        str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "ips"), 0), "address"),
        "198.19.0.7/20");
    cJSON_Delete(root);

    /* No routes at all is allowed: an empty list, not the default. */
    cfg = config_for("1.0.0", ",\"routes\":[]");
    root = parse(ipam_result_render(&cfg, &lease));
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "routes")), 0);
    cJSON_Delete(root);
}

static void test_error_render(void)
{
    struct ipam_error err;
    for (int v = 0; v < IPAM_V_COUNT; v++) {
        ASSERT_EQ(ipam_fail(&err, IPAM_E_TRY_AGAIN, "IMDS %s failed", "token"), -IPAM_E_TRY_AGAIN);
        ipam_detail(&err, "http://%s/x", "127.0.0.1");
        cJSON *root = parse(ipam_error_render((enum ipam_version)v, &err));
        ASSERT_STR_EQ(str(root, "cniVersion"), ipam_version_names[v]);
        ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(root, "code")->valueint, 11);
        ASSERT_STR_EQ(str(root, "msg"), "IMDS token failed");
        ASSERT_STR_EQ(str(root, "details"), "http://127.0.0.1/x");
        cJSON_Delete(root);
    }
    /* A message carrying quotes and control bytes still renders as valid JSON. */
    ipam_fail(&err, IPAM_E_IMDS_BAD_ADDRESS, "bad \"%s\"\n\t\\", "x");
    cJSON *root = parse(ipam_error_render(IPAM_V1_0_0, &err));
    ASSERT_STR_EQ(str(root, "msg"), "bad \"x\"\n\t\\");
    cJSON_Delete(root);
}

static void test_version_render(void)
{
    cJSON *root = parse(ipam_version_render());
    ASSERT_STR_EQ(str(root, "cniVersion"), "1.1.0");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "supportedVersions");
    ASSERT_EQ(cJSON_GetArraySize(list), IPAM_V_COUNT);
    for (int v = 0; v < IPAM_V_COUNT; v++)
        ASSERT_STR_EQ(cJSON_GetArrayItem(list, v)->valuestring, ipam_version_names[v]);
    cJSON_Delete(root);
}

int main(void)
{
    test_result_every_version();
    test_result_custom_routes();
    test_error_render();
    test_version_render();
    printf("test_ipam_result: ok\n");
    return 0;
}
