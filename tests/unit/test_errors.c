/* The error table: every code has its own value, name and text; errno values pass through;
 * anything else is named as unknown, never NULL. */
#include "task.h"

#include "mdfeed/mdfeed.h"

#include <errno.h>

typedef struct {
    int value;
    const char *name;
    const char *text;
} entry_t;

static const entry_t codec_codes[] = {
#define ENTRY_(name, value, text) {value, "MDFEED_E" #name, text},
    MDFEED_CODEC_ERRNO_MAP(ENTRY_)
#undef ENTRY_
};

static const entry_t all_codes[] = {
#define ENTRY_(name, value, text) {value, "MDFEED_E" #name, text},
    MDFEED_ERRNO_MAP(ENTRY_)
#undef ENTRY_
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

int main(void)
{
    /* Codec codes live in -10000 .. -10099, clear of every -errno. */
    for (size_t i = 0; i < COUNT(codec_codes); i++) {
        ASSERT_LE(codec_codes[i].value, -10000);
        ASSERT_GE(codec_codes[i].value, -10099);
    }
    ASSERT_GE(COUNT(codec_codes), 20);

    for (size_t i = 0; i < COUNT(all_codes); i++) {
        const entry_t *e = &all_codes[i];
        ASSERT_LT(e->value, -4095);
        ASSERT_STR_EQ(mdfeed_strerror(e->value), e->text);
        ASSERT_STR_EQ(mdfeed_err_name(e->value), e->name);
        ASSERT_GT(strlen(e->text), 10);
        for (size_t j = 0; j < i; j++) {
            ASSERT_NE(all_codes[j].value, e->value);
            ASSERT(strcmp(all_codes[j].text, e->text) != 0);
        }
    }
    /* Spot checks that the table says what the codecs mean. */
    ASSERT_STR_EQ(mdfeed_err_name(MDFEED_EMOLD_SHORT_HEADER), "MDFEED_EMOLD_SHORT_HEADER");
    ASSERT(strstr(mdfeed_strerror(MDFEED_ESOUP_OVERSIZE), "maximum frame size") != NULL);
    ASSERT(strstr(mdfeed_strerror(MDFEED_EITCH_UNKNOWN_TYPE), "unknown message type") != NULL);

    /* Success, system errors, unknown values. */
    ASSERT_STR_EQ(mdfeed_strerror(0), "success");
    ASSERT_STR_EQ(mdfeed_err_name(0), "OK");
    ASSERT_STR_EQ(mdfeed_strerror(-EINVAL), strerror(EINVAL));
    ASSERT_STR_EQ(mdfeed_err_name(-EINVAL), "EINVAL");
    ASSERT_STR_EQ(mdfeed_err_name(-ENOMEM), "ENOMEM");
    ASSERT_STR_EQ(mdfeed_strerror(-10098), "unknown error");
    ASSERT_STR_EQ(mdfeed_err_name(-10098), "UNKNOWN");
    ASSERT_STR_EQ(mdfeed_strerror(12345), "unknown error");
    /* An errno value the C library does not know: a constant text, not a formatted one. */
    ASSERT_STR_EQ(mdfeed_strerror(-4000), "unknown error");
    ASSERT_STR_EQ(mdfeed_err_name(-4000), "EUNKNOWN");
    ASSERT_STR_EQ(mdfeed_strerror(-2147483647 - 1), "unknown error");

    ASSERT_EQ(mdfeed_version(), MDFEED_VERSION_HEX);
    return 0;
}
