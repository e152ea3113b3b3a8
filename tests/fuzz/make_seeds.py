#!/usr/bin/env python3
"""Writes the committed seed corpus of the fuzz targets (tests/fuzz/seeds/<target>/).

Run from anywhere; it rewrites the seed folders next to this script. The seeds are small,
valid (and a few nearly valid) inputs so each fuzzer starts from the formats' real shapes."""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(5)


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def mold(seq, msgs, count=None):
    head = b"SESS01    " + struct.pack(">QH", seq, len(msgs) if count is None else count)
    return head + b"".join(struct.pack(">H", len(m)) + m for m in msgs)


write("moldudp64", "heartbeat", mold(256, []))
write("moldudp64", "end_of_session", mold(256, [], 0xFFFF))
write("moldudp64", "data3", mold(0x0102030405060708, [b"hi", b"", b"xyz"]))
write("moldudp64", "data_itch", mold(1, [bytes([0x41]) + bytes(35)] * 30))
write("moldudp64", "request", b"SESS01    " + struct.pack(">QH", 12345, 100))
write("moldudp64", "count_mismatch", mold(1, [b"a", b"b"], 3))
write("moldudp64", "seq_edge", mold(2**64 - 2, [b"a"]))


def soup(t, payload=b""):
    return struct.pack(">H", len(payload) + 1) + t + payload


login = b"bob   pw            SESS01" + b"12345".rjust(20)
accept = b"    SESS01" + b"1".rjust(20)
stream = (soup(b"L", login) + soup(b"A", accept) + soup(b"S", b"first") + soup(b"H")
          + soup(b"S", bytes(range(200))) + soup(b"U", b"u") + soup(b"R") + soup(b"+", b"debug")
          + soup(b"J", b"S") + soup(b"O") + soup(b"Z"))
write("soupbintcp", "all_types", bytes([6, 1, 2]) + stream)
write("soupbintcp", "small_max", bytes([4, 9, 9]) + stream[:120])
write("soupbintcp", "empty_frame", bytes([5, 0, 0]) + soup(b"S", b"a") + b"\x00\x00" + soup(b"H"))
write("soupbintcp", "oversize", bytes([1, 3, 3]) + soup(b"S", b"x" * 40))

LENGTHS = {"S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35,
           "h": 21, "A": 36, "F": 40, "E": 31, "C": 36, "X": 23, "D": 19, "U": 35, "P": 44,
           "Q": 40, "B": 19, "I": 50, "N": 20, "O": 48}
for t, n in LENGTHS.items():
    body = bytes(rng.randrange(256) for _ in range(n - 1))
    body = body[:10] + b"AAPL    " * 5
    body = body[: n - 1].ljust(n - 1, b" ")
    name = "type_" + (t if t.isupper() else t + "_lower")
    write("itch", name, bytes([255]) + t.encode() + body)
write("itch", "small_cap", bytes([17]) + b"A" + bytes(35))
write("itch", "wrong_len", bytes([255]) + b"D" + bytes(20))


# ---- journal segments (gateway/journal.c, docs/JOURNAL.md): little-endian, CRC32C ----
def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def jheader(channel, session, first_seq):
    h = (b"MDCJRNL\0" + struct.pack("<HHI", 1, 72, 0) + channel.ljust(32, b"\0")
         + session.ljust(10) + b"\0\0" + struct.pack("<Q", first_seq))
    return h + struct.pack("<I", crc32c(h))


def jrecord(seq, user, user_seq, msg):
    head = struct.pack("<I", len(msg))
    rest = struct.pack("<Q", seq) + user.ljust(6) + b"\0\0" + struct.pack("<Q", user_seq) + msg
    return head + struct.pack("<I", crc32c(rest, crc32c(head))) + rest


jrng = random.Random(11)
jmsgs = [bytes(jrng.randrange(256) for _ in range(jrng.randrange(0, 60))) for _ in range(12)]
jgood = jheader(b"alpha", b"SESSA", 1) + b"".join(
    jrecord(i + 1, b"pubA", 2 * i + 2, m) for i, m in enumerate(jmsgs))
write("journal", "good", jgood)
write("journal", "header_only", jheader(b"beta", b"MDCAST0001", 1000))
write("journal", "torn_cut", jgood[:-7])
write("journal", "torn_zeros", jgood + bytes(300))
mid = bytearray(jgood)
mid[72 + 40] ^= 0x10
write("journal", "corrupt_middle", bytes(mid))
write("journal", "bad_seq", jheader(b"alpha", b"S", 5) + jrecord(5, b"u", 1, b"a")
      + jrecord(7, b"u", 2, b"b"))
write("journal", "big_record", jheader(b"alpha", b"S", 2**64 - 3) + jrecord(2**64 - 3, b"", 0,
                                                                             bytes(4000)))
write("journal", "bad_header_crc", jgood[:68] + b"\0\0\0\0" + jgood[72:])
