#!/usr/bin/env python3
"""The plain-socket way to receive an mdcast feed, for a client with its own MoldUDP64 decoder:
join the group on the multicast interface with IP_ADD_MEMBERSHIP and read datagrams. Nothing of
mdcast is needed on the client; this prints each packet's MoldUDP64 header.

  python3 join_group.py --group 239.192.10.1:31001 --interface ens5 [--count N] [--timeout S]

What matters, in any language:
- force IGMPv2 first (60-mdcast-igmp.conf): the TGW ignores IGMPv3 reports;
- join on the multicast interface by index (struct ip_mreqn), never INADDR_ANY, which joins on
  whatever interface the default route uses (eth0) and never reaches the TGW's multicast domain;
- bind to the group address, so the socket gets only that group's datagrams, with SO_REUSEADDR
  so several clients on one host can share the group;
- a MoldUDP64 packet is a 20-byte header (session: 10 ASCII bytes, sequence of the first
  message: u64 big-endian, message count: u16 big-endian; 0 = heartbeat, 0xFFFF = end of
  session) and message blocks (u16 big-endian length, bytes).
Exit status: 0 when --count packets arrived (or end of session), 1 on timeout, 2 on bad usage.
"""
import argparse
import socket
import struct
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--group", required=True, help="GROUP:PORT, e.g. 239.192.10.1:31001")
    ap.add_argument("--interface", required=True, help="interface name, e.g. ens5 or net1")
    ap.add_argument("--count", type=int, default=10, help="stop after this many packets (default 10)")
    ap.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds")
    args = ap.parse_args()
    group, _, port = args.group.rpartition(":")
    try:
        if socket.inet_aton(group)[0] & 0xF0 != 0xE0:
            ap.error("%s is not a multicast group" % group)
        args.group_addr, args.port = group, int(port)
        args.ifindex = socket.if_nametoindex(args.interface)
    except (OSError, ValueError) as e:
        ap.error("bad --group or --interface: %s" % e)
    return args


def join(group, port, ifindex):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((group, port))
    # struct ip_mreqn { imr_multiaddr; imr_address; imr_ifindex; }: join on that interface.
    mreqn = struct.pack("=4s4si", socket.inet_aton(group), socket.inet_aton("0.0.0.0"), ifindex)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
    return sock


def main():
    args = parse_args()
    sock = join(args.group_addr, args.port, args.ifindex)
    deadline = time.monotonic() + args.timeout
    got = 0
    while got < args.count:
        left = deadline - time.monotonic()
        if left <= 0:
            print("timeout: %d of %d packets" % (got, args.count), file=sys.stderr)
            return 1
        sock.settimeout(left)
        try:
            data, src = sock.recvfrom(65535)
        except socket.timeout:
            continue
        if len(data) < 20:
            print("short packet (%d bytes) from %s" % (len(data), src[0]))
            continue
        session, seq, count = struct.unpack("!10sQH", data[:20])
        got += 1
        kind = {0: "heartbeat", 0xFFFF: "end-of-session"}.get(count, "%d messages" % count)
        print("%s session=%s seq=%d %s (%d bytes)" % (src[0], session.decode("ascii", "replace"),
                                                      seq, kind, len(data)), flush=True)
        if count == 0xFFFF:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
