#!/usr/bin/env python3
"""Checks what a plain (non-project) client captured against the ITCH 5.0 file that was sent.

The VM in the end-to-end test joins the group with socat, which writes the payload of every
datagram it receives back to back into one file. MoldUDP64 packets delimit themselves (a
20-byte header with the message count, then u16 big-endian length-prefixed blocks), so the file
splits back into packets without any help from project code; this script is the independent
oracle that the gateway's output is standard MoldUDP64 carrying the file's messages unchanged.

It also checks what a consumer printed with `mdfeed-tap --format hex` ("SEQ HEX" lines): every
message of the file, in order, byte for byte, nothing else.

Usage: mold_verify.py --itch FILE (--mold-stream FILE [--session S] [--extra-ok] | --tap-hex FILE)
                      [--json]
--extra-ok: sequences after the file's last message (a later publisher) are counted, not errors.
Exit 0 when every message of FILE arrived once at its sequence number (1..N) byte for byte;
1 otherwise, naming the first difference.
"""
import re
import argparse
import gzip
import json
import struct
import sys

HEADER = struct.Struct("!10sQH")
END_OF_SESSION = 0xFFFF


def read_itch(path):
    """ITCH 5.0 as NASDAQ distributes it: u16 big-endian length, then the message."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    msgs, off = [], 0
    while off < len(data):
        if off + 2 > len(data):
            raise ValueError(f"{path}: truncated length prefix at byte {off}")
        (n,) = struct.unpack_from("!H", data, off)
        if n == 0 or off + 2 + n > len(data):
            raise ValueError(f"{path}: bad message length {n} at byte {off}")
        msgs.append(data[off + 2:off + 2 + n])
        off += 2 + n
    return msgs


def parse_mold_stream(path):
    """Splits back-to-back MoldUDP64 packets; returns counters and {sequence: [payloads]}."""
    with open(path, "rb") as f:
        data = f.read()
    st = {"packets": 0, "heartbeats": 0, "end_of_session": 0, "sessions": set(), "bytes": len(data),
          "next_session_packets": 0}
    ended = None  # the session that ended: packets of another one after it are the next day's
    seen = {}
    off = 0
    while off < len(data):
        if off + HEADER.size > len(data):
            raise ValueError(f"truncated MoldUDP64 header at byte {off}")
        session, seq, count = HEADER.unpack_from(data, off)
        off += HEADER.size
        if ended is not None and session != ended:
            st["next_session_packets"] += 1
            if count not in (0, END_OF_SESSION):
                for _ in range(count):
                    (n,) = struct.unpack_from("!H", data, off)
                    off += 2 + n
            continue
        st["packets"] += 1
        st["sessions"].add(session.decode("ascii", "replace"))
        if count == 0:
            st["heartbeats"] += 1
            continue
        if count == END_OF_SESSION:
            st["end_of_session"] += 1
            ended = session
            continue
        for i in range(count):
            if off + 2 > len(data):
                raise ValueError(f"truncated block length in packet at sequence {seq}")
            (n,) = struct.unpack_from("!H", data, off)
            if off + 2 + n > len(data):
                raise ValueError(f"block of {n} bytes runs past the capture at sequence {seq + i}")
            seen.setdefault(seq + i, []).append(data[off + 2:off + 2 + n])
            off += 2 + n
    st["sessions"] = sorted(st["sessions"])
    return st, seen


def check_tap_hex(path, msgs):
    """Problems with an mdfeed-tap --format hex listing (empty list: all good)."""
    line_re = re.compile(r"^(\d+) ([0-9a-f]*)$")
    expect = 1
    with open(path, encoding="ascii", errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = line_re.match(line.rstrip("\n"))
            if not m:
                continue  # interval statistics, the JSON summary
            seq = int(m.group(1))
            if seq != expect:
                return [f"line {n}: sequence {seq} where {expect} was due (order or loss)"], expect - 1
            if seq > len(msgs):
                return [f"line {n}: sequence {seq} beyond the file's {len(msgs)} messages"], expect - 1
            if bytes.fromhex(m.group(2)) != msgs[seq - 1]:
                return [f"line {n}: message {seq} differs from the file"], expect - 1
            expect += 1
    if expect - 1 != len(msgs):
        return [f"{expect - 1} of {len(msgs)} messages, last at sequence {expect - 1}"], expect - 1
    return [], expect - 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--itch", required=True)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--mold-stream")
    src.add_argument("--tap-hex")
    ap.add_argument("--session")
    ap.add_argument("--extra-ok", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    msgs = read_itch(args.itch)
    if args.tap_hex:
        problems, good = check_tap_hex(args.tap_hex, msgs)
        if args.json:
            print(json.dumps({"sent": len(msgs), "in_order_identical": good, "ok": not problems}))
        else:
            print(f"mold_verify: {args.tap_hex}: {good}/{len(msgs)} messages in order, byte-identical")
        for p in problems:
            print(f"mold_verify: {p}", file=sys.stderr)
        return 0 if not problems else 1
    try:
        st, seen = parse_mold_stream(args.mold_stream)
    except ValueError as e:
        print(f"mold_verify: {args.mold_stream}: not a MoldUDP64 stream: {e}", file=sys.stderr)
        return 1
    problems = []
    if args.session and st["sessions"] and st["sessions"] != [args.session]:
        problems.append(f"sessions {st['sessions']}, expected {args.session}")
    dups = sum(len(v) - 1 for v in seen.values())
    missing = [s for s in range(1, len(msgs) + 1) if s not in seen]
    extra = sorted(s for s in seen if s < 1 or s > len(msgs))
    if missing:
        problems.append(f"{len(missing)} message(s) missing, first at sequence {missing[0]}")
    if extra and not args.extra_ok:
        problems.append(f"{len(extra)} sequence(s) beyond the file, first {extra[0]}")
    if dups:
        problems.append(f"{dups} duplicate message(s)")
    for s in range(1, len(msgs) + 1):
        if s in seen and seen[s][0] != msgs[s - 1]:
            problems.append(f"sequence {s} differs from message {s} of the file "
                            f"({seen[s][0][:8].hex()}... vs {msgs[s - 1][:8].hex()}...)")
            break
    summary = dict(st, sent=len(msgs), received=len(seen) - len(extra), extra=len(extra),
                   duplicates=dups,
                   missing=len(missing), ok=not problems)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"mold_verify: {len(seen) - len(extra)}/{len(msgs)} messages (+{len(extra)} after) in {st['packets']} packets "
              f"({st['heartbeats']} heartbeats, {st['end_of_session']} end-of-session), "
              f"sessions {st['sessions']}")
    for p in problems:
        print(f"mold_verify: {p}", file=sys.stderr)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
