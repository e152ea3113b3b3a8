#!/usr/bin/env python3
"""Counts the IPv4 UDP multicast frames that reach one interface, joined or not.

A packet socket sees every frame the link delivers, before the IP layer drops datagrams for
groups the host did not join; so a count of 0 here proves the TGW bridge did not forward the
group to this port (the testbed's "non-member gets nothing" check).

Usage: mcount.py --iface IF [--group G] [--port P] --duration S [--ready-file F]
Prints the count on stdout when S seconds have passed or on SIGTERM/SIGINT. Creates F once the
socket is bound, so a caller can wait for it before sending: a counter that is not yet
listening would count 0 and prove nothing.
"""
import argparse
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iface", required=True)
    ap.add_argument("--group", help="only this group (default: any of 224.0.0.0/4 but 224.0.0.0/24)")
    ap.add_argument("--port", type=int, help="only this UDP destination port")
    ap.add_argument("--duration", type=float, required=True, help="upper bound, seconds")
    ap.add_argument("--ready-file", help="created once the socket is bound")
    args = ap.parse_args()
    if not 0 < args.duration <= 600:
        sys.exit("mcount: --duration must be in (0, 600]")
    want_group = socket.inet_aton(args.group) if args.group else None

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((args.iface, 0))
    s.settimeout(0.1)
    if args.ready_file:
        with open(args.ready_file, "w", encoding="ascii") as f:
            f.write("ready\n")
    count = 0
    deadline = time.monotonic() + args.duration
    while not stop and time.monotonic() < deadline:
        try:
            frame, addr = s.recvfrom(65536)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        if addr[2] == PACKET_OUTGOING or len(frame) < 14 + 20 + 8:
            continue
        if struct.unpack("!H", frame[12:14])[0] != 0x0800:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17 or len(ip) < ihl + 8:
            continue
        dst = ip[16:20]
        if want_group is not None:
            if dst != want_group:
                continue
        elif not (224 <= dst[0] <= 239) or dst[:3] == b"\xe0\x00\x00":
            continue
        if args.port is not None and struct.unpack("!H", ip[ihl + 2:ihl + 4])[0] != args.port:
            continue
        count += 1
    print(count, flush=True)


if __name__ == "__main__":
    main()
