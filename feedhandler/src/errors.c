/* The error table behind mdfeed_strerror(); one source of truth in MDFEED_ERRNO_MAP. */
#include "mdfeed/mdfeed.h"

#include <errno.h>
#include <string.h>

const char *mdfeed_strerror(int err)
{
    switch (err) {
#define MDFEED_STRERROR_CASE_(name, value, text)                                                   \
    case value:                                                                                    \
        return text;
        MDFEED_ERRNO_MAP(MDFEED_STRERROR_CASE_)
#undef MDFEED_STRERROR_CASE_
    default:
        break;
    }
    if (err == 0)
        return "success";
    if (err < 0 && err > -4096) {
        /* Not strerror(): for an errno it does not know it formats into a static buffer,
         * which is neither constant nor thread-safe. */
        const char *d = strerrordesc_np(-err);
        return d ? d : "unknown error";
    }
    return "unknown error";
}

const char *mdfeed_err_name(int err)
{
    switch (err) {
#define MDFEED_NAME_CASE_(name, value, text)                                                       \
    case value:                                                                                    \
        return "MDFEED_E" #name;
        MDFEED_ERRNO_MAP(MDFEED_NAME_CASE_)
#undef MDFEED_NAME_CASE_
    default:
        break;
    }
    if (err == 0)
        return "OK";
    if (err < 0 && err > -4096) {
        const char *n = strerrorname_np(-err);
        return n ? n : "EUNKNOWN";
    }
    return "UNKNOWN";
}

unsigned mdfeed_version(void)
{
    return MDFEED_VERSION_HEX;
}
