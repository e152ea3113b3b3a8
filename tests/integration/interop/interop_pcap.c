/* Writes a pcap of packets built by libmdfeed's encoders, for Wireshark's own MoldUDP64 and
 * SoupBinTCP dissectors to read back (interop.sh), and prints on stdout what they must find.
 *
 *   interop_pcap OUT.pcap [BAD.pcap]
 *
 * The capture format is written here by hand: the pcap global header, then per packet a
 * record header, Ethernet II, IPv4 (checksummed), and UDP or TCP (checksummed). Addresses
 * are from 198.18.0.0/15, the group from 239.0.0.0/8 (the project's network rule); nothing
 * is sent anywhere.
 *
 * MoldUDP64 (UDP 198.18.0.1 -> 239.1.1.1:MOLD_PORT): packets of 1..3 ITCH-sized messages,
 * a heartbeat, an end of session. A re-request (198.18.0.2 -> 198.18.0.1:MOLD_PORT) and its
 * unicast answer are on the same port so the dissector sees them too.
 * SoupBinTCP (TCP, SYN handshake, consistent sequence and acknowledgement numbers): one
 * session with every packet type of both directions, frames both batched into one segment
 * and split across two; a second connection that is rejected.
 *
 * Expected lines (stdout), matched by interop.sh against tshark:
 *   mold <session>|<sequence>|<count>|<msglen,...>      one per MoldUDP64 datagram
 *   soup_types <type,...>                               every SoupBinTCP packet type, in order
 *   soup_users <username,...>                           usernames of the login requests
 *   soup_sessions <session,...>                         sessions of login requests/accepts
 *                                                       ("-" for a blank one)
 *   soup_seqnums <seq,...>                              of each sequenced data packet, as
 *                                                       Wireshark computes them from 'A'
 *   soup_req_seqnums <seq,...>                          requested, in the login requests
 *   soup_next_seqnums <seq,...>                         next, in the login accepts
 *
 * With a second file argument it also writes a capture of two defective MoldUDP64 packets
 * (a count that disagrees with the blocks, an end of session with payload), for interop.sh
 * to prove that its "no warnings" check does catch what it should. */
#include "mdfeed/moldudp64.h"
#include "mdfeed/soupbintcp.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOLD_PORT 30001
#define SOUP_PORT 30010

static FILE *pcap;
static uint32_t clock_us = 0;

static void die(const char *what)
{
    fprintf(stderr, "interop_pcap: %s\n", what);
    exit(1);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The Internet checksum (RFC 1071) over `n` bytes, continuing from `sum`. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)(p[n - 1] << 8);
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void write_global_header(void)
{
    /* Native byte order with magic 0xa1b2c3d4 tells readers which order that is. */
    struct {
        uint32_t magic;
        uint16_t major, minor;
        int32_t zone;
        uint32_t sigfigs, snaplen, linktype;
    } gh = {0xa1b2c3d4u, 2, 4, 0, 0, 65535, 1 /* Ethernet */};
    if (fwrite(&gh, sizeof(gh), 1, pcap) != 1)
        die("write failed");
}

/* Wraps an L4 segment (`l4`, checksum field zero) in Ethernet + IPv4 and writes a record. */
static void write_ip_packet(uint32_t src, uint32_t dst, uint8_t proto, uint8_t *l4, size_t l4len)
{
    static uint16_t ip_id = 1;
    uint8_t frame[14 + 20 + 70000];
    if (l4len > 65535 - 20)
        die("packet too large");
    uint8_t *eth = frame, *ip = frame + 14;

    /* Ethernet: multicast IPv4 maps to 01:00:5e + the low 23 bits of the group. */
    if ((dst >> 28) == 0xe) {
        static const uint8_t mc[3] = {0x01, 0x00, 0x5e};
        memcpy(eth, mc, 3);
        eth[3] = (uint8_t)((dst >> 16) & 0x7f);
        eth[4] = (uint8_t)(dst >> 8);
        eth[5] = (uint8_t)dst;
    } else {
        static const uint8_t uc[6] = {0x02, 0, 0, 0, 0, 0};
        memcpy(eth, uc, 6);
        eth[5] = (uint8_t)dst;
    }
    static const uint8_t srcmac[6] = {0x02, 0, 0, 0, 0, 0};
    memcpy(eth + 6, srcmac, 6);
    eth[11] = (uint8_t)src;
    put16(eth + 12, 0x0800);

    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(20 + l4len));
    put16(ip + 4, ip_id++);
    put16(ip + 6, 0x4000); /* DF: the TGW drops fragments, so do we */
    ip[8] = 32;
    ip[9] = proto;
    put32(ip + 12, src);
    put32(ip + 16, dst);
    put16(ip + 10, csum_fold(csum_add(0, ip, 20)));

    /* L4 checksum over the pseudo-header and the segment. */
    uint8_t pseudo[12];
    put32(pseudo, src);
    put32(pseudo + 4, dst);
    pseudo[8] = 0;
    pseudo[9] = proto;
    put16(pseudo + 10, (uint16_t)l4len);
    uint16_t c = csum_fold(csum_add(csum_add(0, pseudo, 12), l4, l4len));
    if (proto == 17 && c == 0)
        c = 0xffff; /* UDP sends a computed 0 as all ones */
    put16(l4 + (proto == 17 ? 6 : 16), c);
    memcpy(ip + 20, l4, l4len);

    size_t n = 14 + 20 + l4len;
    clock_us += 100;
    uint32_t rec[4] = {1700000000u + clock_us / 1000000u, clock_us % 1000000u, (uint32_t)n,
                       (uint32_t)n};
    if (fwrite(rec, sizeof(rec), 1, pcap) != 1 || fwrite(frame, 1, n, pcap) != n)
        die("write failed");
}

static uint32_t ip4(const char *s)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        die("bad address");
    return ntohl(a.s_addr);
}

static void write_udp(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                      const uint8_t *payload, size_t len)
{
    static uint8_t seg[8 + 65536];
    put16(seg, sport);
    put16(seg + 2, dport);
    put16(seg + 4, (uint16_t)(8 + len));
    put16(seg + 6, 0);
    memcpy(seg + 8, payload, len);
    write_ip_packet(src, dst, 17, seg, 8 + len);
}

/* ---- MoldUDP64 -------------------------------------------------------------------------- */

/* Prints the expectation line for a datagram by decoding it with libmdfeed. */
static void expect_mold(const uint8_t *pkt, size_t len, bool is_request)
{
    mdfeed_mold_header_t h;
    char session[MDFEED_MOLD_SESSION_LEN + 1];
    if (is_request) {
        if (mdfeed_mold_request_decode(pkt, len, &h) != 0)
            die("bad re-request");
        printf("mold %s|%llu|%u|\n", mdfeed_mold_session_str(h.session, session),
               (unsigned long long)h.seq, h.count);
        return;
    }
    mdfeed_mold_packet_t p;
    if (mdfeed_mold_decode(pkt, len, &p) != 0)
        die("encoder produced an invalid MoldUDP64 packet");
    printf("mold %s|%llu|%u|", mdfeed_mold_session_str(p.hdr.session, session),
           (unsigned long long)p.hdr.seq, p.hdr.count);
    mdfeed_mold_iter_t it;
    const uint8_t *m;
    uint16_t mlen;
    uint64_t seq;
    mdfeed_mold_iter_init(&it, &p);
    for (bool first = true; mdfeed_mold_iter_next(&it, &m, &mlen, &seq); first = false)
        printf("%s%u", first ? "" : ",", mlen);
    printf("\n");
}

static void mold_flow(void)
{
    const uint32_t server = ip4("198.18.0.1"), group = ip4("239.1.1.1"), client = ip4("198.18.0.2");
    char session[MDFEED_MOLD_SESSION_LEN];
    if (mdfeed_mold_session_set(session, "MDC0001") != 0)
        die("session");
    uint8_t buf[1400], msg[64];
    mdfeed_mold_builder_t b;
    if (mdfeed_mold_builder_init(&b, buf, sizeof(buf), session) != 0)
        die("builder");

    /* Packets of 1, 2 and 3 messages of ITCH sizes (Add Order 36, Delete 19, Trade 44). */
    static const uint16_t sizes[] = {36, 19, 44, 36, 36, 23};
    uint64_t seq = 1;
    size_t k = 0;
    for (int per = 1; per <= 3; per++) {
        mdfeed_mold_builder_open(&b, seq);
        for (int i = 0; i < per; i++, k++) {
            memset(msg, 'A' + (int)k, sizeof(msg));
            if (mdfeed_mold_builder_append(&b, msg, sizes[k]) != 0)
                die("append");
            seq++;
        }
        size_t n = mdfeed_mold_builder_finish(&b);
        write_udp(server, 40001, group, MOLD_PORT, buf, n);
        expect_mold(buf, n, false);
    }
    /* A heartbeat, then the re-request for messages 2..4 and its unicast answer. */
    size_t n = mdfeed_mold_header_encode(buf, session, seq, MDFEED_MOLD_COUNT_HEARTBEAT);
    write_udp(server, 40001, group, MOLD_PORT, buf, n);
    expect_mold(buf, n, false);
    n = mdfeed_mold_header_encode(buf, session, 2, 3);
    write_udp(client, 40002, server, MOLD_PORT, buf, n);
    expect_mold(buf, n, true);
    mdfeed_mold_builder_open(&b, 2);
    for (size_t i = 1; i < 4; i++) {
        memset(msg, 'A' + (int)i, sizeof(msg));
        if (mdfeed_mold_builder_append(&b, msg, sizes[i]) != 0)
            die("append");
    }
    n = mdfeed_mold_builder_finish(&b);
    write_udp(server, MOLD_PORT, client, 40002, buf, n);
    expect_mold(buf, n, false);
    /* End of session. */
    n = mdfeed_mold_header_encode(buf, session, seq, MDFEED_MOLD_COUNT_END);
    write_udp(server, 40001, group, MOLD_PORT, buf, n);
    expect_mold(buf, n, false);
}

/* ---- SoupBinTCP ------------------------------------------------------------------------- */

typedef struct {
    uint32_t cli, srv;
    uint16_t cport, sport;
    uint32_t cseq, sseq; /* next sequence number each side sends */
} tcp_conn_t;

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_PSH 0x08
#define TCP_ACK 0x10

/* Sends one segment in the given direction; every segment acknowledges all the peer sent. */
static void tcp_send(tcp_conn_t *c, bool from_client, uint8_t flags, const uint8_t *data,
                     size_t len)
{
    static uint8_t seg[20 + 65536];
    uint32_t *seq = from_client ? &c->cseq : &c->sseq;
    uint32_t ack = from_client ? c->sseq : c->cseq;
    put16(seg, from_client ? c->cport : c->sport);
    put16(seg + 2, from_client ? c->sport : c->cport);
    put32(seg + 4, *seq);
    put32(seg + 8, (flags & TCP_ACK) ? ack : 0);
    seg[12] = 5 << 4;
    seg[13] = flags;
    put16(seg + 14, 65535);
    put16(seg + 16, 0);
    put16(seg + 18, 0);
    if (len)
        memcpy(seg + 20, data, len);
    write_ip_packet(from_client ? c->cli : c->srv, from_client ? c->srv : c->cli, 6, seg, 20 + len);
    *seq += (uint32_t)len + ((flags & (TCP_SYN | TCP_FIN)) ? 1 : 0);
}

static void tcp_open(tcp_conn_t *c)
{
    tcp_send(c, true, TCP_SYN, NULL, 0);
    tcp_send(c, false, TCP_SYN | TCP_ACK, NULL, 0);
    tcp_send(c, true, TCP_ACK, NULL, 0);
}

static void tcp_close(tcp_conn_t *c)
{
    tcp_send(c, true, TCP_FIN | TCP_ACK, NULL, 0);
    tcp_send(c, false, TCP_FIN | TCP_ACK, NULL, 0);
    tcp_send(c, true, TCP_ACK, NULL, 0);
}

/* Collected expectations, printed at the end in stream order. */
static char exp_types[256], exp_users[256], exp_sessions[256];

static void note(char *list, const char *item)
{
    if (list[0])
        strcat(list, ",");
    strcat(list, item);
}

/* Appends one encoded frame to an output batch and records its type. */
static size_t frame(uint8_t *out, int n)
{
    if (n <= 0)
        die("SoupBinTCP encoder failed");
    char t[2] = {(char)out[2], 0};
    note(exp_types, t);
    return (size_t)n;
}

static void soup_flow(void)
{
    tcp_conn_t c = {ip4("198.18.0.2"), ip4("198.18.0.1"), 40010, SOUP_PORT, 1000, 5000000};
    uint8_t out[4096];
    size_t n;
    tcp_open(&c);

    mdfeed_soup_login_t login = {
        .username = "alice", .password = "s3cret", .session = "", .seq = 1};
    n = frame(out, mdfeed_soup_encode_login_request(out, sizeof(out), &login));
    note(exp_users, "alice");
    note(exp_sessions, "-"); /* blank: the current session */
    tcp_send(&c, true, TCP_PSH | TCP_ACK, out, n);

    /* Login accepted and three sequenced messages in one segment (batched frames). */
    mdfeed_soup_accept_t acc = {.session = "MDC0001", .seq = 1};
    n = frame(out, mdfeed_soup_encode_login_accepted(out, sizeof(out), &acc));
    note(exp_sessions, "MDC0001");
    uint8_t msg[44];
    for (int i = 0; i < 3; i++) {
        memset(msg, 'a' + i, sizeof(msg));
        n += frame(out + n,
                   mdfeed_soup_encode(out + n, sizeof(out) - n, 'S', msg, 36 + 4 * (size_t)i));
    }
    tcp_send(&c, false, TCP_PSH | TCP_ACK, out, n);

    /* Client heartbeat and an unsequenced message together. */
    n = frame(out, mdfeed_soup_encode(out, sizeof(out), 'R', NULL, 0));
    n += frame(out + n, mdfeed_soup_encode(out + n, sizeof(out) - n, 'U', "order", 5));
    tcp_send(&c, true, TCP_PSH | TCP_ACK, out, n);

    /* A sequenced message split across two segments, then heartbeat and debug. */
    memset(msg, 'z', sizeof(msg));
    n = frame(out, mdfeed_soup_encode(out, sizeof(out), 'S', msg, sizeof(msg)));
    tcp_send(&c, false, TCP_PSH | TCP_ACK, out, 10);
    tcp_send(&c, false, TCP_PSH | TCP_ACK, out + 10, n - 10);
    n = frame(out, mdfeed_soup_encode(out, sizeof(out), 'H', NULL, 0));
    n += frame(out + n, mdfeed_soup_encode(out + n, sizeof(out) - n, '+', "server debug", 12));
    tcp_send(&c, false, TCP_PSH | TCP_ACK, out, n);

    /* Client debug and logout; server end of session. */
    n = frame(out, mdfeed_soup_encode(out, sizeof(out), '+', "client debug", 12));
    n += frame(out + n, mdfeed_soup_encode(out + n, sizeof(out) - n, 'O', NULL, 0));
    tcp_send(&c, true, TCP_PSH | TCP_ACK, out, n);
    n = frame(out, mdfeed_soup_encode(out, sizeof(out), 'Z', NULL, 0));
    tcp_send(&c, false, TCP_PSH | TCP_ACK, out, n);
    tcp_close(&c);

    /* A second connection, asking for session "OTHER" from sequence 42: rejected. */
    tcp_conn_t r = {ip4("198.18.0.3"), ip4("198.18.0.1"), 40011, SOUP_PORT, 7000, 9000000};
    tcp_open(&r);
    mdfeed_soup_login_t bad = {
        .username = "bob", .password = "wrong", .session = "OTHER", .seq = 42};
    n = frame(out, mdfeed_soup_encode_login_request(out, sizeof(out), &bad));
    note(exp_users, "bob");
    note(exp_sessions, "OTHER");
    tcp_send(&r, true, TCP_PSH | TCP_ACK, out, n);
    n = frame(out, mdfeed_soup_encode_login_rejected(out, sizeof(out), 'S'));
    tcp_send(&r, false, TCP_PSH | TCP_ACK, out, n);
    tcp_close(&r);

    printf("soup_types %s\n", exp_types);
    printf("soup_users %s\n", exp_users);
    printf("soup_sessions %s\n", exp_sessions);
    /* Login accepted says 1: the four sequenced data packets are 1, 2, 3, 4. */
    printf("soup_seqnums 1,2,3,4\n");
    printf("soup_req_seqnums 1,42\n");
    printf("soup_next_seqnums 1\n");
}

/* Two packets our decoder rejects, written raw (the encoders would not make them). */
static void bad_flow(void)
{
    const uint32_t server = ip4("198.18.0.1"), group = ip4("239.1.1.1");
    char session[MDFEED_MOLD_SESSION_LEN];
    uint8_t buf[64];
    mdfeed_mold_packet_t p;
    if (mdfeed_mold_session_set(session, "MDC0001") != 0)
        die("session");
    size_t n = mdfeed_mold_header_encode(buf, session, 1, 3);
    memcpy(buf + n,
           "\x00\x01"
           "a"
           "\x00\x01"
           "b",
           6); /* count 3, two blocks */
    if (mdfeed_mold_decode(buf, n + 6, &p) != MDFEED_EMOLD_COUNT_MISMATCH)
        die("count mismatch not rejected");
    write_udp(server, 40001, group, MOLD_PORT, buf, n + 6);
    n = mdfeed_mold_header_encode(buf, session, 4, MDFEED_MOLD_COUNT_END);
    memcpy(buf + n,
           "\x00\x01"
           "c",
           3);
    if (mdfeed_mold_decode(buf, n + 3, &p) != MDFEED_EMOLD_EOS_PAYLOAD)
        die("end of session with payload not rejected");
    write_udp(server, 40001, group, MOLD_PORT, buf, n + 3);
}

static void write_capture(const char *path, void (*flow)(void))
{
    pcap = fopen(path, "wb");
    if (!pcap)
        die("cannot open the output file");
    write_global_header();
    flow();
    if (fclose(pcap) != 0)
        die("close failed");
}

static void good_flow(void)
{
    mold_flow();
    soup_flow();
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: interop_pcap OUT.pcap [BAD.pcap]\n");
        return 2;
    }
    write_capture(argv[1], good_flow);
    if (argc == 3)
        write_capture(argv[2], bad_flow);
    return 0;
}
