/* A consumer of the installed libmdfeed, built by install.sh with nothing but pkg-config:
 * it touches each codec once and prints what it got, so the test sees the library work. */
#include <mdfeed/itch.h>
#include <mdfeed/mdfeed.h>
#include <mdfeed/moldudp64.h>
#include <mdfeed/soupbintcp.h>

#include <stdio.h>

int main(void)
{
    if (mdfeed_version() != MDFEED_VERSION_HEX) {
        fprintf(stderr, "header version %x, library version %x\n", MDFEED_VERSION_HEX,
                mdfeed_version());
        return 1;
    }
    /* MoldUDP64: one packet with one ITCH Order Delete (ref 42) in it, decoded back. */
    static const unsigned char del[19] = {'D', 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                          1,   0, 0, 0, 0, 0, 0, 0, 42};
    char session[MDFEED_MOLD_SESSION_LEN];
    unsigned char pkt[64];
    mdfeed_mold_builder_t b;
    mdfeed_mold_packet_t p;
    mdfeed_mold_iter_t it;
    const uint8_t *msg;
    uint16_t len;
    uint64_t seq;
    if (mdfeed_mold_session_set(session, "HELLO") || mdfeed_mold_builder_init(&b, pkt, 64, session))
        return 1;
    mdfeed_mold_builder_open(&b, 7);
    if (mdfeed_mold_builder_append(&b, del, sizeof(del)))
        return 1;
    size_t n = mdfeed_mold_builder_finish(&b);
    if (mdfeed_mold_decode(pkt, n, &p))
        return 1;
    mdfeed_mold_iter_init(&it, &p);
    if (!mdfeed_mold_iter_next(&it, &msg, &len, &seq))
        return 1;
    char line[MDFEED_ITCH_LINE_MAX];
    if (mdfeed_itch_format(msg, len, line, sizeof(line)) < 0)
        return 1;
    /* SoupBinTCP: a login request's length. */
    mdfeed_soup_login_t login = {.username = "me", .password = "pw", .session = "", .seq = 1};
    unsigned char frame[64];
    int flen = mdfeed_soup_encode_login_request(frame, sizeof(frame), &login);
    printf("mdfeed %u.%u.%u: seq %llu: %s; login frame %d bytes; %s\n", MDFEED_VERSION_MAJOR,
           MDFEED_VERSION_MINOR, MDFEED_VERSION_PATCH, (unsigned long long)seq, line, flen,
           mdfeed_strerror(MDFEED_EMOLD_SHORT_HEADER));
    return 0;
}
