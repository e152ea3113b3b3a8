#!/usr/bin/env python3
"""Integration tests of mdcast-gateway: publishers -> gateway -> receivers.

Each scenario runs in a network namespace this script creates (unique tag, removed on exit):
lo plus a veth pair `va`/`vb` with 198.18.0.1/24 on `va`; the gateway sends its multicast out
of `va` with IP_MULTICAST_LOOP on, and the receivers here join the groups on `va`. The MoldUDP64
and SoupBinTCP handling below is written from the specifications, independently of libmdfeed,
so it is a second opinion on the gateway's bytes.

  gwtest.py SCENARIO        (flow | retransmit | malformed | backends | fallback | congestion | upstream | zerocopy
                            | qdiscfull)
"""
import ctypes
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("MDCAST_BUILD_DIR", "")
GATEWAY = os.path.join(BUILD, "gateway", "mdcast-gateway")
NORING = os.path.join(BUILD, "tests", "gw_noring")
IFACE, IFADDR = "va", "198.18.0.1"
INGRESS_PORT, METRICS_PORT = 7000, 9100
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # Linux <linux/in.h>; older Pythons lack the name


class TestFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------- namespace
def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def netns_create(ns):
    run("ip", "netns", "add", ns)
    x = ("ip", "-n", ns)
    run(*x, "link", "set", "lo", "up")
    run(*x, "link", "add", "va", "type", "veth", "peer", "name", "vb")
    run(*x, "addr", "add", IFADDR + "/24", "dev", "va")
    run(*x, "link", "set", "va", "up")
    run(*x, "link", "set", "vb", "up")
    for k in ("all", "default", "va"):
        run("ip", "netns", "exec", ns, "sysctl", "-qw",
            f"net.ipv4.conf.{k}.force_igmp_version=2")


# ----------------------------------------------------------------------------- wire formats
def soup_frame(ptype, payload=b""):
    return struct.pack(">H", len(payload) + 1) + ptype + payload


def soup_login(user, password, session="", seq=0):
    return soup_frame(b"L", user.encode().ljust(6) + password.encode().ljust(10) +
                      session.encode().ljust(10) + str(seq).encode().rjust(20))


def mold_parse(d):
    """Strict MoldUDP64 decode: returns (session, seq, count, [messages]) or raises."""
    check(len(d) >= 20, f"datagram shorter than a header: {len(d)}")
    session, seq, count = d[:10], struct.unpack(">Q", d[10:18])[0], struct.unpack(">H", d[18:20])[0]
    msgs, p = [], 20
    if count in (0, 0xFFFF):
        check(len(d) == 20, "heartbeat / end of session with a payload")
        return session, seq, count, msgs
    for _ in range(count):
        check(p + 2 <= len(d), "block header past the end")
        n = struct.unpack(">H", d[p:p + 2])[0]
        check(p + 2 + n <= len(d), "block past the end")
        msgs.append(d[p + 2:p + 2 + n])
        p += 2 + n
    check(p == len(d), "trailing bytes after the last block")
    return session, seq, count, msgs


def mold_request(session, seq, count):
    return session.encode().ljust(10) + struct.pack(">QH", seq, count)


# ----------------------------------------------------------------------------- gateway
def base_config(io="auto", **over):
    cfg = {
        "ingress": {"listen": f"127.0.0.1:{INGRESS_PORT}", "heartbeat_ms": 1000,
                    "idle_timeout_ms": 15000,
                    "users": [{"username": "pub1", "password": "pw1", "channel": "c1"},
                              {"username": "pub2", "password": "pw2", "channel": "c1"},
                              {"username": "pub3", "password": "pw3", "channel": "c2"}]},
        "egress": {"interface": IFACE, "ttl": 4, "loop": True, "payload_budget": 1400, "io": io,
                   "heartbeat_ms": 1000},
        "channels": [
            {"name": "c1", "session": "SESSIONC1", "lines": ["239.1.1.1:30001", "239.1.2.1:30001"],
             "retransmit_port": 31001, "ring_messages": 100000, "ring_bytes": 8 << 20},
            {"name": "c2", "session": "SESSIONC2", "lines": ["239.1.1.2:30002"],
             "retransmit_port": 31002, "ring_messages": 1000, "ring_bytes": 1 << 20}],
        "retransmit": {"address": "127.0.0.1", "max_messages_per_request": 1000,
                       "rate_messages_per_s": 50000, "burst_messages": 10000},
        "metrics": {"listen": f"127.0.0.1:{METRICS_PORT}"},
        # A journal (in the gateway's own temporary directory): the session keeps its
        # configured name. Without one every start takes a new name (scenario "restart").
        "journal": {"dir": "@GWDIR@/journal", "fsync": "never"},
    }
    for path, value in over.items():
        node = cfg
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[keys[-1]] = value
    return cfg


def _die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the test


class Gateway:
    def __init__(self, cfg, wrapper=None, reuse_dir=None):
        """reuse_dir: the directory (and journal) of an earlier gateway: a restart."""
        self.dir = reuse_dir or tempfile.mkdtemp(prefix="gwtest")
        self.cfg_path = os.path.join(self.dir, "gateway.json")
        self.log_path = os.path.join(self.dir, "gateway.log")
        if isinstance(cfg.get("journal"), dict) and "@GWDIR@" in cfg["journal"].get("dir", ""):
            cfg = json.loads(json.dumps(cfg))
            cfg["journal"]["dir"] = cfg["journal"]["dir"].replace("@GWDIR@", self.dir)
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)
        cmd = ([wrapper] if wrapper else []) + [GATEWAY, "--config", self.cfg_path]
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stderr=self.logf, stdout=self.logf,
                                     preexec_fn=_die_with_parent)
        deadline = time.time() + 10
        while "ingress listening" not in self.log():
            check(self.proc.poll() is None, f"gateway exited early:\n{self.log()}")
            check(time.time() < deadline, f"gateway did not start:\n{self.log()}")
            time.sleep(0.02)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def log_lines(self):
        out = []
        for line in self.log().splitlines():
            out.append(json.loads(line))  # every line must be one JSON object
        return out

    def stop(self, sig=signal.SIGTERM, timeout=10, twice=False):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if twice:  # as timeout(1) does: the second must not end the shutdown early
                time.sleep(0.001)
                if self.proc.poll() is None:
                    self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise TestFailure("gateway did not exit after SIGTERM")
        self.logf.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def http_get(path, port=METRICS_PORT):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    clen = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    check(clen == len(body), f"Content-Length {clen} but body {len(body)}")
    return status, body.decode()


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
                         r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*)?\})? (\S+)$')


def scrape():
    return scrape_port(METRICS_PORT)


def scrape_port(port):
    """Parses /metrics (Prometheus text format 0.0.4) into {(name, labels): value}."""
    status, body = http_get("/metrics", port)
    check(status == 200, f"/metrics status {status}")
    out, types = {}, {}
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            check(kind in ("counter", "gauge", "histogram"), f"bad type line {line}")
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        m = METRIC_LINE.match(line)
        check(m is not None, f"not an exposition line: {line!r}")
        labels = tuple(sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', m.group(3) or "")))
        base = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        check(m.group(1) in types or base in types, f"sample without TYPE: {line}")
        out[(m.group(1), labels)] = float(m.group(5))
    # Histograms: cumulative buckets never decrease and +Inf equals _count.
    for name, kind in types.items():
        if kind != "histogram":
            continue
        buckets = sorted(((float("inf") if dict(l)["le"] == "+Inf" else float(dict(l)["le"])), v)
                         for (n, l), v in out.items() if n == name + "_bucket")
        check(buckets, f"histogram {name} has no buckets")
        for (_, a), (_, b) in zip(buckets, buckets[1:]):
            check(a <= b, f"histogram {name} buckets decrease")
        check(buckets[-1][1] == out[(name + "_count", ())], f"{name}: +Inf bucket != _count")
    return out


def metric(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), None)


# ----------------------------------------------------------------------------- clients
class Publisher:
    def __init__(self, user, password, session="", port=INGRESS_PORT):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.s.sendall(soup_login(user, password, session))
        self.reply = self.read_frame()

    def accepted(self):
        t, p = self.reply
        check(t == b"A", f"login not accepted: {self.reply}")
        return p[:10].decode().strip(), int(p[10:30].decode().strip())

    def read_frame(self, timeout=5):
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                n = struct.unpack(">H", self.buf[:2])[0]
                if len(self.buf) >= 2 + n:
                    f = self.buf[2:2 + n]
                    self.buf = self.buf[2 + n:]
                    return f[:1], f[1:]
            b = self.s.recv(65536)
            if not b:
                return None
            self.buf += b

    def send(self, msgs):
        self.s.sendall(b"".join(soup_frame(b"U", m) for m in msgs))

    def closed_by_peer(self, timeout=3):
        """True when the gateway closes the connection (other frames are skipped)."""
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                if self.read_frame(max(0.05, deadline - time.time())) is None:
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True
        return False

    def close(self):
        self.s.close()


class Receiver:
    """Joins groups on the egress interface and keeps every datagram per group, in order."""

    def __init__(self, groups):
        self.socks = {}
        for g in groups:
            addr, port = g.split(":")
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            s.bind((addr, int(port)))
            mreq = socket.inet_aton(addr) + socket.inet_aton(IFADDR)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            s.setblocking(False)
            self.socks[g] = s
        self.got = {g: [] for g in groups}
        self.ttls = set()

    def poll(self, seconds):
        import select
        deadline = time.time() + seconds
        while True:
            left = deadline - time.time()
            if left <= 0:
                return
            r, _, _ = select.select(list(self.socks.values()), [], [], min(left, 0.05))
            for g, s in self.socks.items():
                if s in r:
                    while True:
                        try:
                            data, anc, _, _ = s.recvmsg(65536, 64)
                        except BlockingIOError:
                            break
                        self.got[g].append(data)
                        for level, kind, val in anc:
                            if level == socket.IPPROTO_IP and kind == socket.IP_TTL:
                                self.ttls.add(int.from_bytes(val[:4], sys.byteorder))

    def wait_for(self, pred, timeout, what):
        deadline = time.time() + timeout
        while not pred():
            check(time.time() < deadline, f"timed out waiting for {what}")
            self.poll(0.05)

    def data_messages(self, g):
        out = []
        for d in self.got[g]:
            _, seq, count, msgs = mold_parse(d)
            if count not in (0, 0xFFFF):
                out.extend((seq + i, m) for i, m in enumerate(msgs))
        return out

    def count_messages(self, g):
        return len(self.data_messages(g))


def check_stream(datagrams, session, budget, first_seq=1):
    """Every data datagram: right session, within budget, contiguous sequence numbers."""
    expect, msgs = first_seq, []
    for d in datagrams:
        check(len(d) <= budget, f"datagram of {len(d)} bytes exceeds the budget {budget}")
        s, seq, count, m = mold_parse(d)
        check(s == session.encode().ljust(10), f"session {s!r}, want {session!r}")
        if count == 0xFFFF or count == 0:
            check(seq == expect, f"heartbeat/end seq {seq}, want next {expect}")
            continue
        check(seq == expect, f"sequence gap or duplicate: packet seq {seq}, want {expect}")
        expect += count
        msgs.extend(m)
    return msgs


def make_msgs(tag, n, rng, maxlen=200):
    return [f"{tag}:{i}:".encode() + bytes(rng.randrange(256) for _ in range(rng.randrange(maxlen)))
            for i in range(n)]


# ----------------------------------------------------------------------------- scenarios
def scenario_flow():
    """Several publishers and channels, A/B identical, heartbeats, metrics, end of session."""
    cfg = base_config()
    rx = Receiver(["239.1.1.1:30001", "239.1.2.1:30001", "239.1.1.2:30002"])
    gw = Gateway(cfg)
    # A second gateway on the same journal (and ports) fails to start cleanly: exit 1, the
    # reason logged, and the first one's session is not touched.
    r = subprocess.run([GATEWAY, "--config", gw.cfg_path], capture_output=True, text=True,
                       timeout=10)
    check(r.returncode == 1 and "in use by another process" in r.stderr,
          f"second gateway: exit {r.returncode}: {r.stderr}")
    rng = random.Random(4)
    pubs = {u: Publisher(u, "pw" + u[-1]) for u in ("pub1", "pub2", "pub3")}
    check(pubs["pub1"].accepted() == ("SESSIONC1", 1), f"accept {pubs['pub1'].accepted()}")
    check(pubs["pub3"].accepted() == ("SESSIONC2", 1), f"accept {pubs['pub3'].accepted()}")
    bad = Publisher("pub1", "wrong")
    check(bad.reply == (b"J", b"A"), f"wrong password: want reject 'A', got {bad.reply}")
    bad = Publisher("pub1", "pw1", session="OTHER")
    check(bad.reply == (b"J", b"S"), f"other session: want reject 'S', got {bad.reply}")
    sent = {u: [] for u in pubs}
    for r in range(20):
        for u, p in pubs.items():
            m = make_msgs(f"{u}:{r}", 50, rng)
            p.send(m)
            sent[u] += m
        # Debug packets and client heartbeats are accepted and carry no message.
        pubs["pub2"].s.sendall(soup_frame(b"+", b"debug text") + soup_frame(b"R"))
        time.sleep(0.005)
    n1 = len(sent["pub1"]) + len(sent["pub2"])
    n2 = len(sent["pub3"])
    rx.wait_for(lambda: rx.count_messages("239.1.1.1:30001") >= n1 and
                rx.count_messages("239.1.2.1:30001") >= n1 and
                rx.count_messages("239.1.1.2:30002") >= n2, 20, "all messages")
    a = check_stream(rx.got["239.1.1.1:30001"], "SESSIONC1", 1400)
    b = check_stream(rx.got["239.1.2.1:30001"], "SESSIONC1", 1400)
    c = check_stream(rx.got["239.1.1.2:30002"], "SESSIONC2", 1400)
    check(len(a) == n1 and len(c) == n2, f"counts {len(a)}/{n1} {len(c)}/{n2}")
    check(rx.got["239.1.1.1:30001"] == rx.got["239.1.2.1:30001"], "lines A and B differ")
    check(rx.ttls == {4}, f"multicast TTL {rx.ttls}, configured 4")
    check("force_igmp_version" not in gw.log(), "IGMP warning although the version is 2")
    # Merged in arrival order: each publisher's own messages keep their order.
    for u in ("pub1", "pub2"):
        mine = [m for m in a if m.startswith(u.encode() + b":")]
        check(mine == sent[u], f"{u}: messages lost, duplicated or reordered")
    check(c == sent["pub3"], "pub3: messages lost, duplicated or reordered")
    npk = len(rx.got["239.1.1.1:30001"])
    log(f"flow: {n1}+{n2} messages, {npk} packets on line A, A == B")
    # Natural batching under load: far fewer packets than messages.
    check(npk < n1 / 3, f"{npk} packets for {n1} messages: no batching")

    # Idle: MoldUDP64 heartbeats on every line, SoupBinTCP server heartbeats to publishers.
    before = {g: len(v) for g, v in rx.got.items()}
    rx.poll(1.6)
    for g, want_seq in (("239.1.1.1:30001", n1 + 1), ("239.1.2.1:30001", n1 + 1),
                        ("239.1.1.2:30002", n2 + 1)):
        hb = [mold_parse(d) for d in rx.got[g][before[g]:]]
        check(any(x[2] == 0 and x[1] == want_seq for x in hb),
              f"{g}: no heartbeat with seq {want_seq} after 1.6 s idle: {hb}")
    # Acknowledgements (empty sequenced data packets, one per message) come first, then the
    # server heartbeat.
    acks, f = 0, pubs["pub1"].read_frame(2)
    while f is not None and f == (b"S", b""):
        acks, f = acks + 1, pubs["pub1"].read_frame(2)
    check(f is not None and f[0] == b"H", f"no SoupBinTCP server heartbeat: {f}")
    check(acks == len(sent["pub1"]), f"pub1: {acks} acks for {len(sent['pub1'])} messages")

    got_before = len(rx.got["239.1.1.1:30001"])
    m = scrape()
    rx.poll(0.3)  # a heartbeat may leave between our last poll and the scrape
    got_after = len(rx.got["239.1.1.1:30001"])
    check(metric(m, "mdcast_messages_in_total", publisher="pub1", channel="c1") == 1000, "msgs in")
    check(metric(m, "mdcast_messages_in_total", publisher="pub3", channel="c2") == 1000, "msgs in")
    check(metric(m, "mdcast_bytes_in_total", publisher="pub2", channel="c1") ==
          sum(len(x) for x in sent["pub2"]), "bytes in")
    check(metric(m, "mdcast_publishers_connected") == 3, "publishers_connected")
    pa = metric(m, "mdcast_packets_out_total", channel="c1", line="A")
    check(got_before <= pa <= got_after, f"packets_out A {pa}, received {got_before}..{got_after}")
    check(metric(m, "mdcast_heartbeats_sent_total", channel="c1") >= 1, "heartbeats metric")
    check(metric(m, "mdcast_arrival_to_send_seconds_count") == n1 + n2, "latency histogram count")
    check(metric(m, "mdcast_next_sequence", channel="c1") == n1 + 1, "next_sequence")
    check(metric(m, "mdcast_send_errors_total") == 0, "send errors")
    check(http_get("/healthz")[0] == 200, "/healthz")
    check(http_get("/readyz")[0] == 200, "/readyz")
    check(http_get("/nope")[0] == 404, "404")
    # Bad HTTP is answered and closed; silent connections are capped and timed out.
    def raw_http(data):
        c = socket.create_connection(("127.0.0.1", METRICS_PORT), timeout=5)
        c.sendall(data)
        r = b""
        while True:
            b_ = c.recv(4096)
            if not b_:
                break
            r += b_
        c.close()
        return r.split(b"\r\n", 1)[0]
    check(raw_http(b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405"), "405")
    # Exactly the 8191 bytes the server reads before it gives up (more would be unread at
    # its close and turn into a RST that can overtake the answer).
    check(raw_http(b"GET /" + b"x" * 8186).startswith(b"HTTP/1.1 431"), "431")
    check(raw_http(b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400"), "400")
    idle = [socket.create_connection(("127.0.0.1", METRICS_PORT)) for _ in range(40)]
    time.sleep(0.2)
    check(gw.proc.poll() is None, "gateway died with 40 idle HTTP connections")
    for c in idle:
        c.close()
    time.sleep(0.1)
    check(http_get("/healthz")[0] == 200, "/healthz after idle connections")

    # The explicit end of session (SIGUSR1): end of session (count 0xFFFF, seq = next) on
    # every line, publishers logged out; then SIGTERM drains and exits 0 sending no more.
    before = {g: len(v) for g, v in rx.got.items()}
    gw.proc.send_signal(signal.SIGUSR1)
    rx.poll(0.5)
    rc = gw.stop(twice=True)
    check(rc == 0, f"exit status {rc} after SIGTERM (twice)")
    rx.poll(0.3)
    for g, want_seq in (("239.1.1.1:30001", n1 + 1), ("239.1.2.1:30001", n1 + 1),
                        ("239.1.1.2:30002", n2 + 1)):
        # The ended session's packets (the next session's heartbeats may follow them).
        tail = [x for x in (mold_parse(d) for d in rx.got[g][before[g]:])
                if x[0].startswith(b"SESSIONC")]
        eos = [x for x in tail if x[2] == 0xFFFF]  # a last heartbeat may precede them
        check(len(eos) == 3 and all(x[1] == want_seq for x in eos) and
              all(x[2] in (0, 0xFFFF) for x in tail) and tail[-1][2] == 0xFFFF,
              f"{g}: end of session missing or wrong: {tail}")
    for p in pubs.values():
        check(p.closed_by_peer(2), "publisher connection not closed at shutdown")
    lines = gw.log_lines()
    check(all({"ts", "level", "msg"} <= set(x) for x in lines), "log line without ts/level/msg")
    log(f"flow: heartbeats, end of session x{len(eos)}, metrics, {len(lines)} JSON log lines ok")


def scenario_retransmit():
    """Re-requests answered with the exact bytes; ignored / unservable / rate-limited."""
    cfg = base_config(**{"channels__0__ring_messages": 100,
                         "retransmit": {"address": "127.0.0.1", "max_messages_per_request": 50,
                                        "rate_messages_per_s": 1000, "burst_messages": 300}})
    rx = Receiver(["239.1.1.1:30001"])
    gw = Gateway(cfg)
    p = Publisher("pub1", "pw1")
    sent = make_msgs("rt", 300, random.Random(7), maxlen=60)
    for i in range(0, 300, 30):
        p.send(sent[i:i + 30])
        time.sleep(0.002)
    rx.wait_for(lambda: rx.count_messages("239.1.1.1:30001") >= 300, 10, "300 messages")
    check(check_stream(rx.got["239.1.1.1:30001"], "SESSIONC1", 1400) == sent, "multicast stream")

    q = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    q.bind(("127.0.0.1", 0))
    q.settimeout(0.3)

    def ask(session, seq, count, expect=0):
        """Sends a re-request; collects the answer: `expect` messages (waiting up to 3 s on a
        loaded machine), then whatever else comes within 0.3 s."""
        q.sendto(mold_request(session, seq, count), ("127.0.0.1", 31001))
        got = []
        deadline = time.time() + 3
        while True:
            q.settimeout(0.3 if len(got) >= expect else max(0.01, deadline - time.time()))
            try:
                d = q.recv(65536)
            except (socket.timeout, TimeoutError):
                return got
            s, sq, cnt, msgs = mold_parse(d)
            check(s == b"SESSIONC1 ", f"reply session {s!r}")
            check(len(d) <= 1400, "reply over budget")
            got.extend((sq + i, m) for i, m in enumerate(msgs))

    got = ask("SESSIONC1", 250, 10, 10)
    check(got == [(250 + i, sent[249 + i]) for i in range(10)], f"re-request 250+10: {got[:3]}")
    got = ask("SESSIONC1", 201, 100, 50)
    check(len(got) == 50 and got[0] == (201, sent[200]) and got[-1] == (250, sent[249]),
          f"max per request: got {len(got)}")
    # Gone from the ring (1000 messages) but in the journal: served from there, byte-exact.
    got = ask("SESSIONC1", 150, 10, 10)
    check(got == [(150 + i, sent[149 + i]) for i in range(10)],
          f"evicted messages not served from the journal: {got[:3]}")
    got = ask("SESSIONC1", 195, 10, 10)  # 195..200 from the journal, 201..204 from the ring
    check(got == [(195 + i, sent[194 + i]) for i in range(10)], f"across journal and ring: {got}")
    check(ask("OTHERSESS", 250, 10) == [], "other session answered")
    check(ask("SESSIONC1", 250, 0) == [], "zero count answered")
    check(ask("SESSIONC1", 400, 5) == [], "future sequence answered")
    got = ask("SESSIONC1", 299, 10, 2)
    check(got == [(299, sent[298]), (300, sent[299])], f"clamped to what was sent: {got}")
    m = scrape()
    check(metric(m, "mdcast_unservable_messages_total", channel="c1") == 0, "unservable")
    check(metric(m, "mdcast_retransmitted_from_journal_total", channel="c1") == 10 + 6,
          "served from the journal")
    check(metric(m, "mdcast_rerequests_total", channel="c1", result="ignored") == 3, "ignored")

    # Flood: 200 requests of 50 messages as fast as possible. The bucket (burst 300, then
    # 1000 msg/s) caps what comes back.
    q.settimeout(0.01)
    served_before = metric(m, "mdcast_retransmitted_messages_total", channel="c1")
    t0 = time.time()
    for _ in range(200):
        q.sendto(mold_request("SESSIONC1", 201, 50), ("127.0.0.1", 31001))
    elapsed = time.time() - t0
    time.sleep(0.3)
    m = scrape()
    served = metric(m, "mdcast_retransmitted_messages_total", channel="c1") - served_before
    limited = metric(m, "mdcast_rerequests_total", channel="c1", result="rate_limited")
    cap = 300 + 1000 * (elapsed + 0.3)
    log(f"retransmit: flood of 10000 requested messages: {served:.0f} served "
        f"(cap {cap:.0f}), {limited:.0f} requests rate-limited")
    check(served <= cap, f"flood served {served} > cap {cap}")
    check(limited > 0, "flood was not rate-limited")
    check(gw.stop() == 0, "exit status")


def scenario_malformed():
    """Each malformed SoupBinTCP case closes only its connection; a good publisher flows on."""
    cfg = base_config(**{"ingress__heartbeat_ms": 100, "ingress__idle_timeout_ms": 800})
    rx = Receiver(["239.1.1.1:30001"])
    gw = Gateway(cfg)
    good = Publisher("pub1", "pw1")
    good.accepted()
    stop = threading.Event()
    sent = []

    def feed():
        i = 0
        while not stop.is_set():
            batch = [f"good:{i + k}".encode() for k in range(20)]
            good.send(batch)
            sent.extend(batch)
            i += 20
            time.sleep(0.01)

    t = threading.Thread(target=feed)
    t.start()
    login2 = soup_login("pub2", "pw2")
    cases = [
        ("garbage (unknown type)", [soup_login("pub2", "pw2"), soup_frame(b"X", b"junk")], "unknown packet type"),
        ("garbage (HTTP)", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"], "frame longer"),
        ("oversize", [login2, soup_frame(b"U", b"x" * 1379)], "frame longer"),
        ("zero length", [login2, b"\x00\x00"], "zero-length frame"),
        ("data before login", [soup_frame(b"U", b"early")], "data before login"),
        ("second login", [login2, login2], "second login"),
        ("bad login (wrong password)", [soup_login("pub2", "nope")], "login rejected (A)"),
        ("bad login (unknown session)", [soup_login("pub2", "pw2", "NOSUCH")], "login rejected (S)"),
        ("bad login (short request)", [soup_frame(b"L", b"pub2")], "bad login request"),
        ("server packet from client", [login2, soup_frame(b"S", b"x")], "unexpected packet type"),
        ("idle past the timeout", [login2], "silent past the idle timeout"),
    ]
    for name, frames, reason in cases:
        s = socket.create_connection(("127.0.0.1", INGRESS_PORT), timeout=5)
        for f in frames:
            s.sendall(f)
            time.sleep(0.02)
        s.settimeout(3)
        closed = False
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    closed = True
                    break
        except (socket.timeout, TimeoutError):
            pass
        except ConnectionResetError:
            closed = True
        s.close()
        check(closed, f"{name}: connection not closed")
        check(reason in gw.log(), f"{name}: no log line with {reason!r}")
        log(f"malformed: {name}: closed, logged")
    # The oversize edge: the largest message that fits (1400 - 22 = 1378 bytes) is accepted.
    edge = Publisher("pub2", "pw2")
    edge.send([b"E" * 1378])
    stop.set()
    t.join()
    total = len(sent) + 1
    rx.wait_for(lambda: rx.count_messages("239.1.1.1:30001") >= total, 10, "good publisher")
    got = check_stream(rx.got["239.1.1.1:30001"], "SESSIONC1", 1400)
    check([x for x in got if x.startswith(b"good:")] == sent, "good publisher lost messages")
    check(b"E" * 1378 in got, "1378-byte message missing")
    check(not good.closed_by_peer(0.2), "good publisher was disconnected")
    m = scrape()
    for reason, want in (("garbage", 2), ("oversize", 2), ("empty_frame", 1),
                         ("before_login", 1), ("second_login", 1), ("idle", 1)):
        v = metric(m, "mdcast_publisher_closes_total", reason=reason)
        check(v == want, f"closes{{reason={reason}}} = {v}, want {want}")
    log(f"malformed: good publisher delivered {len(sent)} messages in order throughout")
    # Random bytes from 100 connections (some after a valid login): each is closed or
    # ignored, the gateway stays up, the good publisher keeps flowing.
    grng = random.Random(13)
    for i in range(100):
        s = socket.create_connection(("127.0.0.1", INGRESS_PORT), timeout=5)
        junk = bytes(grng.randrange(256) for _ in range(grng.randrange(1, 300)))
        s.sendall((login2 if i % 2 else b"") + junk)
        s.close()
    check(gw.proc.poll() is None, "gateway died on random input")
    check(http_get("/healthz")[0] == 200, "/healthz after random input")
    good.send([b"after-junk"])
    rx.wait_for(lambda: rx.count_messages("239.1.1.1:30001") >= total + 1, 5, "after junk")
    check(rx.data_messages("239.1.1.1:30001")[-1][1] == b"after-junk", "good publisher after junk")
    log("malformed: 100 connections of random bytes: gateway up")
    check(gw.stop() == 0, "exit status")


def run_deterministic(io):
    """Bursts a fixed input through a gateway; returns the datagrams of line A and B."""
    rx = Receiver(["239.1.1.1:30001", "239.1.2.1:30001"])
    # No heartbeats during the run: an idle second on a loaded machine would add one to
    # one run and not the other.
    gw = Gateway(base_config(io=io, egress__heartbeat_ms=60000))
    p = Publisher("pub1", "pw1")
    rng = random.Random(11)
    total = 0
    for burst in range(30):
        msgs = make_msgs(f"b{burst}", 100, rng, maxlen=100)
        p.send(msgs)  # one write: one read in the gateway, one flush
        total += len(msgs)
        rx.wait_for(lambda: rx.count_messages("239.1.2.1:30001") >= total, 10, f"burst {burst}")
    m = scrape()
    backend = [dict(k[1])["backend"] for k in m if k[0] == "mdcast_egress_backend"]
    check(gw.stop() == 0, "exit status")
    rx.poll(0.2)
    for s in rx.socks.values():
        s.close()
    return backend, rx.got["239.1.1.1:30001"], rx.got["239.1.2.1:30001"]


def scenario_framing():
    """Ingress framing at every boundary: a stream of data frames (with debug frames and client
    heartbeats between them) cut into reads at random byte positions arrives whole, in order;
    data frames followed by a bad frame in one write are all taken before the close."""
    cfg = base_config()
    rx = Receiver(["239.1.1.1:30001"])
    gw = Gateway(cfg)
    rng = random.Random(21)
    pub = Publisher("pub1", "pw1")
    check(pub.accepted() == ("SESSIONC1", 1), f"accept {pub.accepted()}")
    msgs = make_msgs("cut", 600, rng, maxlen=60) + [b""] * 3
    stream = b"".join(soup_frame(b"U", m) + (soup_frame(b"+", b"dbg") if i % 7 == 0 else b"") +
                      (soup_frame(b"R") if i % 11 == 0 else b"") for i, m in enumerate(msgs))
    pub.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    off, chunks = 0, 0
    while off < len(stream):  # bounded: every chunk takes at least one byte
        k = rng.choice((1, 2, 3, rng.randrange(1, 120)))
        pub.s.sendall(stream[off:off + k])
        off += k
        chunks += 1
        if chunks % 4 == 0:
            time.sleep(0.001)  # let the gateway read: the cuts then fall inside frames
    rx.wait_for(lambda: rx.count_messages("239.1.1.1:30001") >= len(msgs), 20, "cut stream")
    got = check_stream(rx.got["239.1.1.1:30001"], "SESSIONC1", 1400)
    check(got == msgs, f"cut stream: {len(got)} messages, want {len(msgs)} in order")
    m = scrape()
    check(metric(m, "mdcast_messages_in_total", publisher="pub1", channel="c1") == len(msgs),
          "messages_in after the cut stream")
    check(metric(m, "mdcast_bytes_in_total", publisher="pub1", channel="c1") ==
          sum(len(x) for x in msgs), "bytes_in after the cut stream")
    log(f"framing: {len(msgs)} messages in {chunks} writes of 1..119 bytes, in order")
    # Good data frames and a bad one in a single write: the good ones are sequenced, then
    # the connection closes for the bad one (each bad kind on its own connection).
    total = len(msgs)
    for name, bad, reason in (("oversize", soup_frame(b"U", b"x" * 1379), "frame longer"),
                              ("zero length", b"\x00\x00", "zero-length frame"),
                              ("unknown type", soup_frame(b"X", b"junk"), "unknown packet type")):
        p = Publisher("pub2", "pw2")
        p.accepted()
        good = [f"{name}:{i}".encode() for i in range(50)]
        p.s.sendall(b"".join(soup_frame(b"U", g) for g in good) + bad +
                    soup_frame(b"U", b"after the bad frame"))
        check(p.closed_by_peer(3), f"{name}: connection not closed")
        check(reason in gw.log(), f"{name}: no log line with {reason!r}")
        total += len(good)
        rx.wait_for(lambda: rx.count_messages("239.1.1.1:30001") >= total, 10, name)
        got = check_stream(rx.got["239.1.1.1:30001"], "SESSIONC1", 1400)
        check(got[-len(good):] == good and len(got) == total,
              f"{name}: the frames before the bad one were not all taken, or more were")
        log(f"framing: 50 data frames then {name} in one write: 50 taken, closed, logged")


def scenario_backends():
    """io_uring and sendmmsg send byte-identical datagrams for the same input."""
    bu, ua, ub = run_deterministic("io_uring")
    bm, ma, mb = run_deterministic("sendmmsg")
    check(bu == ["io_uring"], f"io=io_uring ran backend {bu}")
    check(bm == ["sendmmsg"], f"io=sendmmsg ran backend {bm}")
    check(ua == ub and ma == mb, "A and B differ")
    check_stream(ua, "SESSIONC1", 1400)
    def hdr(d):
        s_, q, c, _ = mold_parse(d)
        return f"seq {q} count {c} len {len(d)}"

    for i, (x, y) in enumerate(zip(ua, ma)):
        check(x == y, f"datagram {i} differs: io_uring {hdr(x)}, sendmmsg {hdr(y)}")
    check(len(ua) == len(ma), f"{len(ua)} vs {len(ma)} datagrams")
    log(f"backends: {len(ua)} datagrams byte-identical (io_uring vs sendmmsg), incl. end of session")


def scenario_fallback():
    """io_uring refused by seccomp: egress falls back to sendmmsg, logs once, keeps working."""
    check(os.path.exists(NORING), f"{NORING} not built")
    # The egress interface answers IGMPv3 here: the gateway must warn (the TGW needs 2).
    run("sysctl", "-qw", f"net.ipv4.conf.{IFACE}.force_igmp_version=0")
    for io in ("auto", "io_uring"):
        rx = Receiver(["239.1.1.1:30001"])
        gw = Gateway(base_config(io=io), wrapper=NORING)
        p = Publisher("pub1", "pw1")
        msgs = make_msgs("fb", 500, random.Random(3))
        p.send(msgs)
        rx.wait_for(lambda: rx.count_messages("239.1.1.1:30001") >= 500, 10, "messages")
        check(check_stream(rx.got["239.1.1.1:30001"], "SESSIONC1", 1400) == msgs, "stream")
        m = scrape()
        check(metric(m, "mdcast_egress_backend", backend="sendmmsg") == 1, "backend metric")
        check(metric(m, "mdcast_egress_uring_fallback") == 1, "fallback metric")
        check(http_get("/readyz")[0] == 200, "/readyz")
        check(gw.stop() == 0, "exit status")
        warn = [x for x in gw.log_lines() if "io_uring egress unavailable" in x["msg"]]
        check(len(warn) == 1 and warn[0]["level"] == "warn", f"fallback log lines: {warn}")
        check("Operation not permitted" in warn[0]["msg"], f"reason not logged: {warn[0]}")
        igmp = [x for x in gw.log_lines() if "force_igmp_version" in x["msg"]]
        check(len(igmp) == 1 and igmp[0]["level"] == "warn", f"IGMP warning: {igmp}")
        for s in rx.socks.values():
            s.close()
        log(f"fallback (io={io}): sendmmsg under seccomp, 500 messages, one warning")
    # A budget the interface MTU cannot carry unfragmented is refused at start (exit 1).
    run("ip", "link", "set", IFACE, "mtu", "1400")
    cfg_path = os.path.join(tempfile.mkdtemp(prefix="gwtest"), "gw.json")
    with open(cfg_path, "w") as f:
        json.dump(base_config(), f)
    r = subprocess.run([GATEWAY, "--config", cfg_path], capture_output=True, text=True, timeout=10)
    check(r.returncode == 1 and "exceeds the MTU 1400" in r.stderr,
          f"budget over MTU: exit {r.returncode}, {r.stderr}")
    run("ip", "link", "set", IFACE, "mtu", "1500")


def scenario_congestion():
    """A slow egress link (tbf rate limit, with a queue long enough never to drop) fills the socket buffer: no loss, no reordering,
    the waits are counted, with both backends."""
    run("tc", "qdisc", "add", "dev", IFACE, "root", "tbf", "rate", "40mbit", "burst", "16kb",
        "limit", "50mb")
    try:
        for io in ("io_uring", "sendmmsg"):
            rx = Receiver(["239.1.1.1:30001", "239.1.2.1:30001"])
            # A small socket buffer (2 x 32 KiB as the kernel doubles it) fills in milliseconds.
            gw = Gateway(base_config(io=io, egress__socket_buffer_bytes=32768))
            p = Publisher("pub1", "pw1")
            msgs = make_msgs(f"cg-{io}", 12000, random.Random(5), maxlen=160)
            t0 = time.time()
            for i in range(0, len(msgs), 2000):
                p.send(msgs[i:i + 2000])
            rx.wait_for(lambda: rx.count_messages("239.1.2.1:30001") >= len(msgs), 30,
                        "all messages through the slow link")
            elapsed = time.time() - t0
            a = check_stream(rx.got["239.1.1.1:30001"], "SESSIONC1", 1400)
            b = check_stream(rx.got["239.1.2.1:30001"], "SESSIONC1", 1400)
            check(a == msgs and b == msgs, f"{io}: messages lost or reordered under congestion")
            m = scrape()
            retries = metric(m, "mdcast_send_retries_total")
            waits = retries + metric(m, "mdcast_egress_congestion_waits_total")
            check(metric(m, "mdcast_send_errors_total") == 0, f"{io}: send errors")
            check(waits > 0, f"{io}: the link was never congested ({elapsed:.2f} s)")
            # sendmmsg meets the full socket buffer as EAGAIN: each is a counted retry. io_uring
            # never does (its flow control waits before the buffer is full): waits only.
            check(io != "sendmmsg" or retries > 0, "sendmmsg: EAGAIN never counted as a retry")
            check(gw.stop() == 0, "exit status")
            for s in rx.socks.values():
                s.close()
            log(f"congestion ({io}): {len(msgs)} messages in order over a 40 Mbit/s link in "
                f"{elapsed:.2f} s, {waits:.0f} congestion waits/retries")
        # Sustained overload: far more than the 1024 packet buffers must wait for the link.
        # Ingress pauses (TCP pushes back on the publisher) instead of dropping or
        # disconnecting anyone; everything arrives in order.
        for io in ("io_uring", "sendmmsg"):
            rx = Receiver(["239.1.1.1:30001"])
            gw = Gateway(base_config(io=io, egress__socket_buffer_bytes=32768))
            p = Publisher("pub1", "pw1")
            msgs = make_msgs(f"ov-{io}", 60000, random.Random(8), maxlen=60)
            t0 = time.time()
            sender = threading.Thread(target=lambda: [p.send(msgs[i:i + 5000])
                                                      for i in range(0, len(msgs), 5000)])
            sender.start()
            rx.wait_for(lambda: rx.count_messages("239.1.1.1:30001") >= len(msgs), 60,
                        "overload through the slow link")
            sender.join()
            check(check_stream(rx.got["239.1.1.1:30001"], "SESSIONC1", 1400) == msgs,
                  f"{io}: overload lost or reordered messages")
            m = scrape()
            check(metric(m, "mdcast_send_errors_total") == 0, f"{io}: send errors")
            check(metric(m, "mdcast_publisher_closes_total", reason="other") == 0,
                  f"{io}: a publisher was closed")
            pauses = metric(m, "mdcast_ingress_pauses_total")
            check(pauses > 0, f"{io}: ingress never paused under overload")
            check(not p.closed_by_peer(0.1), f"{io}: publisher disconnected")
            check(gw.stop() == 0, "exit status")
            for s in rx.socks.values():
                s.close()
            log(f"overload ({io}): {len(msgs)} messages in order in {time.time() - t0:.2f} s, "
                f"ingress paused {pauses:.0f} times")
        # io_uring's own waiting, flow control off: sends that find the buffer full complete
        # later through the eventfd (DEFER_TASKRUN: get_events) and nothing is lost; order is
        # not promised on this path, which is why flow control exists.
        os.environ["MDCAST_URING_FLOW_CONTROL"] = "off"
        try:
            rx = Receiver(["239.1.1.1:30001"])
            gw = Gateway(base_config(io="io_uring", egress__socket_buffer_bytes=32768))
        finally:
            del os.environ["MDCAST_URING_FLOW_CONTROL"]
        p = Publisher("pub1", "pw1")
        msgs = make_msgs("cg-async", 12000, random.Random(6), maxlen=160)
        for i in range(0, len(msgs), 2000):
            p.send(msgs[i:i + 2000])
        rx.wait_for(lambda: rx.count_messages("239.1.1.1:30001") >= len(msgs), 30, "async path")
        got = rx.data_messages("239.1.1.1:30001")
        check(sorted(m for _, m in got) == sorted(msgs), "async path lost or duplicated messages")
        check(sorted(q for q, _ in got) == list(range(1, len(msgs) + 1)), "async path sequences")
        m = scrape()
        asyncs = metric(m, "mdcast_egress_async_completions_total")
        check(asyncs > 0, "no send completed through the eventfd")
        check(metric(m, "mdcast_send_errors_total") == 0, "async path: send errors")
        check(gw.stop() == 0, "exit status")
        log(f"congestion (io_uring, flow control off): {len(msgs)} messages, none lost, "
            f"{asyncs:.0f} completions through the eventfd")
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", IFACE, "root"], stderr=subprocess.DEVNULL)


def rx_to_file(out, ifaddr, count, timeout, groups):
    """Helper process (run in another namespace): receives `groups` until each carried
    `count` data messages (by header count) or `timeout`, then writes every datagram,
    length-prefixed per group, to `out`."""
    import select
    socks = {}
    for g in groups:
        addr, port = g.split(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        s.bind((addr, int(port)))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     socket.inet_aton(addr) + socket.inet_aton(ifaddr))
        s.setblocking(False)
        socks[g] = s
    got = {g: [] for g in groups}
    msgs = {g: 0 for g in groups}
    print("rx ready", flush=True)
    deadline = time.time() + timeout
    while time.time() < deadline and min(msgs.values()) < count:
        r, _, _ = select.select(list(socks.values()), [], [], 0.05)
        for g, s in socks.items():
            while s in r:
                try:
                    d = s.recv(65536)
                except BlockingIOError:
                    break
                got[g].append(d)
                if len(d) >= 20:
                    c = struct.unpack(">H", d[18:20])[0]
                    msgs[g] += 0 if c in (0, 0xFFFF) else c
    with open(out, "wb") as f:
        for g in groups:
            f.write(struct.pack(">I", len(got[g])))
            for d in got[g]:
                f.write(struct.pack(">I", len(d)) + d)


def read_rx_file(path, ngroups):
    with open(path, "rb") as f:
        data = f.read()
    p, out = 0, []
    for _ in range(ngroups):
        n = struct.unpack(">I", data[p:p + 4])[0]
        p += 4
        grams = []
        for _ in range(n):
            ln = struct.unpack(">I", data[p:p + 4])[0]
            grams.append(data[p + 4:p + 4 + ln])
            p += 4 + ln
        out.append(grams)
    return out


def zerocopy_run(rxns, budget, early_release=False):
    """One gateway with zero copy on for every data packet, buffers scribbled as soon as they
    are released, a tbf-limited link (the qdisc holds the zero-copy pages after the send's
    result CQE) and a tiny socket buffer; the receiver sits in another namespace behind it.
    Returns (messages sent, datagrams of line A, line B, metrics)."""
    groups = ["239.1.1.1:30001", "239.1.2.1:30001"]
    out = os.path.join(tempfile.mkdtemp(prefix="gwzc"), "rx.bin")
    n = 20000 if budget == 1400 else 12000
    rxp = subprocess.Popen(["ip", "netns", "exec", rxns, sys.executable, __file__, "--rx", out,
                            "198.18.0.2", str(n), "6" if early_release else "40"] + groups,
                           stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
    check(rxp.stdout.readline().strip() == "rx ready", "receiver did not start")
    os.environ["MDCAST_TEST_SCRIBBLE_RELEASED"] = "1"
    if early_release:
        os.environ["MDCAST_TEST_ZC_EARLY_RELEASE"] = "1"
    try:
        gw = Gateway(base_config(io="io_uring", egress__loop=False, egress__payload_budget=budget,
                                 egress__zerocopy="on", egress__zerocopy_threshold=64,
                                 egress__socket_buffer_bytes=32768,
                                 egress__heartbeat_ms=60000))
    finally:
        os.environ.pop("MDCAST_TEST_SCRIBBLE_RELEASED", None)
        os.environ.pop("MDCAST_TEST_ZC_EARLY_RELEASE", None)
    try:
        p = Publisher("pub1", "pw1")
        msgs = make_msgs(f"zc{budget}", n, random.Random(budget), maxlen=300)
        for i in range(0, n, 2000):
            p.send(msgs[i:i + 2000])
        try:
            rxp.wait(45)
        except subprocess.TimeoutExpired:
            rxp.kill()
            raise TestFailure("receiver did not finish")
        m = scrape()
        check(gw.stop() == 0, "exit status")
    finally:
        gw.kill()
    a, b = read_rx_file(out, 2)
    snmp = subprocess.run(["ip", "netns", "exec", rxns, "cat", "/proc/net/snmp"],
                          capture_output=True, text=True).stdout
    udp = [line.split() for line in snmp.splitlines() if line.startswith("Udp:")]
    drops = dict(zip(udp[0][1:], udp[1][1:]))
    check(drops["RcvbufErrors"] == "0", f"the receiver dropped {drops['RcvbufErrors']} datagrams")
    return msgs, a, b, m


def scenario_zerocopy():
    """Zero-copy send: a buffer is reused only after its notification CQE. The receiver must
    see byte-identical packets even though every released buffer is overwritten at once; a
    deliberately early release (test hook) must be caught by the same check."""
    rxns = f"gwzc{os.getpid():x}{random.randrange(256):02x}"
    run("ip", "netns", "add", rxns)
    try:
        run("ip", "link", "set", "vb", "netns", rxns)
        x = ("ip", "-n", rxns)
        run(*x, "link", "set", "lo", "up")
        run(*x, "addr", "add", "198.18.0.2/24", "dev", "vb")
        run(*x, "link", "set", "vb", "mtu", "9000")
        run(*x, "link", "set", "vb", "up")
        run("ip", "link", "set", IFACE, "mtu", "9000")
        for k in ("all", "default"):
            run("ip", "netns", "exec", rxns, "sysctl", "-qw",
                f"net.ipv4.conf.{k}.force_igmp_version=2")
        # The qdisc keeps each datagram (and so its zero-copy pages) for a while after the
        # send's result CQE; a big limit so it never drops.
        run("tc", "qdisc", "add", "dev", IFACE, "root", "tbf", "rate", "100mbit", "burst",
            "32kb", "limit", "64mb")
        for budget in (1400, 8472):
            msgs, a, b, m = zerocopy_run(rxns, budget)
            check(check_stream(a, "SESSIONC1", budget) == msgs, f"{budget}: line A not intact")
            check(check_stream(b, "SESSIONC1", budget) == msgs, f"{budget}: line B not intact")
            check(a == b, f"{budget}: lines A and B differ")
            zc = metric(m, "mdcast_egress_zerocopy_sends_total")
            notifs = metric(m, "mdcast_egress_zerocopy_notifications_total")
            copied = metric(m, "mdcast_egress_zerocopy_copied_total")
            waits = metric(m, "mdcast_egress_congestion_waits_total") + \
                metric(m, "mdcast_send_retries_total")
            check(metric(m, "mdcast_egress_zerocopy") == 1, f"{budget}: zero copy not on")
            check(metric(m, "mdcast_egress_registered_buffers") == 1, "buffers not registered")
            check(zc >= len(a) * 2 - 10, f"{budget}: {zc:.0f} zero-copy sends for {len(a)} x 2")
            check(notifs > 0, f"{budget}: no notification")
            check(metric(m, "mdcast_send_errors_total") == 0, f"{budget}: send errors")
            check(waits > 0, f"{budget}: the link was never congested")
            log(f"zerocopy (budget {budget}): {len(msgs)} messages in {len(a)} datagrams per "
                f"line intact with scribbled releases; {zc:.0f} SEND_ZC, {notifs:.0f} "
                f"notifications ({copied:.0f} say copied), {waits:.0f} congestion waits/retries")
        # The check can fail: releasing at the result CQE instead of the notification.
        msgs, a, b, m = zerocopy_run(rxns, 1400, early_release=True)
        try:
            intact = check_stream(a, "SESSIONC1", 1400) == msgs
        except TestFailure:
            intact = False
        check(not intact, "early release (test hook) went unnoticed: the check is blind")
        log("zerocopy: releasing buffers at the result CQE (test hook) corrupts what the "
            "receiver sees, and the check catches it")
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", IFACE, "root"], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", rxns], stderr=subprocess.DEVNULL)


def qdisc_drops():
    out = subprocess.run(["tc", "-s", "qdisc", "show", "dev", IFACE], capture_output=True,
                         text=True).stdout
    m = re.search(r"dropped (\d+)", out)
    return int(m.group(1)) if m else 0


def scenario_qdiscfull():
    """A full interface queue (a tbf with a queue of about two datagrams): the kernel drops
    what does not fit, and only IP_RECVERR turns that into ENOBUFS. Each backend must keep the
    refused send and everything behind it, retry after a backoff and count it: the receiver,
    in another namespace behind the qdisc, gets every message once, in order, byte-identical."""
    rxns = f"gwqd{os.getpid():x}{random.randrange(256):02x}"
    groups = ["239.1.1.1:30001", "239.1.2.1:30001"]
    run("ip", "netns", "add", rxns)
    try:
        run("ip", "link", "set", "vb", "netns", rxns)
        x = ("ip", "-n", rxns)
        run(*x, "link", "set", "lo", "up")
        run(*x, "addr", "add", "198.18.0.2/24", "dev", "vb")
        run(*x, "link", "set", "vb", "up")
        for k in ("all", "default"):
            run("ip", "netns", "exec", rxns, "sysctl", "-qw",
                f"net.ipv4.conf.{k}.force_igmp_version=2")
        # limit 3000 bytes: the qdisc holds two 1400-byte datagrams; the socket buffer (the
        # default, far larger) never fills first, so only the qdisc refuses.
        run("tc", "qdisc", "add", "dev", IFACE, "root", "tbf", "rate", "50mbit", "burst",
            "10kb", "limit", "3000")
        for io in ("io_uring", "sendmmsg"):
            n = 20000
            out = os.path.join(tempfile.mkdtemp(prefix="gwqd"), "rx.bin")
            rxp = subprocess.Popen(["ip", "netns", "exec", rxns, sys.executable, __file__, "--rx",
                                    out, "198.18.0.2", str(n), "40"] + groups,
                                   stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
            check(rxp.stdout.readline().strip() == "rx ready", "receiver did not start")
            dropped0 = qdisc_drops()
            gw = Gateway(base_config(io=io, egress__loop=False, egress__heartbeat_ms=60000))
            try:
                p = Publisher("pub1", "pw1")
                msgs = make_msgs(f"qd-{io}", n, random.Random(11), maxlen=200)
                t0 = time.time()
                for i in range(0, n, 2000):
                    p.send(msgs[i:i + 2000])
                try:
                    rxp.wait(45)
                except subprocess.TimeoutExpired:
                    rxp.kill()
                    raise TestFailure(f"{io}: receiver did not finish")
                elapsed = time.time() - t0
                m = scrape()
                check(gw.stop() == 0, f"{io}: exit status")
            finally:
                gw.kill()
            a, b = read_rx_file(out, 2)
            enobufs = metric(m, "mdcast_send_retry_reasons_total", reason="enobufs")
            retries = metric(m, "mdcast_send_retries_total")
            canceled = metric(m, "mdcast_send_retry_reasons_total", reason="canceled")
            log(f"qdiscfull ({io}): {n} messages, {len(a)}/{len(b)} datagrams on lines A/B in "
                f"{elapsed:.2f} s; qdisc dropped {qdisc_drops() - dropped0}, retries "
                f"{retries} (enobufs {enobufs}, canceled {canceled}), ingress pauses "
                f"{metric(m, 'mdcast_ingress_pauses_total')}, error queue "
                f"{metric(m, 'mdcast_egress_errqueue_messages_total')}")
            check(check_stream(a, "SESSIONC1", 1400) == msgs, f"{io}: line A lost or reordered")
            check(check_stream(b, "SESSIONC1", 1400) == msgs, f"{io}: line B lost or reordered")
            check(enobufs is not None and enobufs > 0, f"{io}: no ENOBUFS retry counted")
            check(retries >= enobufs, f"{io}: retries {retries} < enobufs {enobufs}")
            check(metric(m, "mdcast_send_errors_total") == 0, f"{io}: send errors")
            snmp = subprocess.run(["ip", "netns", "exec", rxns, "cat", "/proc/net/snmp"],
                                  capture_output=True, text=True).stdout
            udp = [line.split() for line in snmp.splitlines() if line.startswith("Udp:")]
            check(dict(zip(udp[0][1:], udp[1][1:]))["RcvbufErrors"] == "0",
                  "the receiver itself dropped datagrams")
            log(f"qdiscfull ({io}): every message arrived once, in order, intact")
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", IFACE, "root"], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", rxns], stderr=subprocess.DEVNULL)


class FakeUpstream:
    """A SoupBinTCP server with a growing list of sequenced messages (connect-mode tests).
    `replay_back[user]` makes the next login of `user` be accepted that many messages before
    what it asked for (a replay the gateway must skip)."""

    def __init__(self, port, session="UPSESS"):
        self.session = session
        self.feed = []
        self.lock = threading.Lock()
        self.logins = []  # (user, requested seq)
        self.logouts = []
        self.conns = {}
        self.replay_back = {}
        self.stop = threading.Event()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(8)
        self.srv.settimeout(0.1)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except (socket.timeout, TimeoutError):
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(5)
        buf = b""
        while len(buf) < 49:
            b = c.recv(4096)
            if not b:
                return
            buf += b
        check(buf[2:3] == b"L", "upstream: first frame is not a login")
        user = buf[3:9].decode().strip()
        req = int(buf[29:49].decode().strip() or "0")
        buf = buf[49:]
        with self.lock:
            self.logins.append((user, req))
            start = max(1, req - self.replay_back.pop(user, 0))
            self.conns[user] = c
        c.sendall(soup_frame(b"A", self.session.encode().ljust(10) + str(start).encode().rjust(20)))
        nxt, last_tx = start, time.time()
        c.setblocking(False)
        while not self.stop.is_set():
            with self.lock:
                batch = self.feed[nxt - 1:nxt - 1 + 200]
            if batch:
                try:
                    c.setblocking(True)
                    c.sendall(b"".join(soup_frame(b"S", m) for m in batch))
                    c.setblocking(False)
                except OSError:
                    return
                nxt += len(batch)
                last_tx = time.time()
            elif time.time() - last_tx > 0.3:
                try:
                    c.sendall(soup_frame(b"H"))
                except OSError:
                    return
                last_tx = time.time()
            try:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
                if b"\x00\x01O" in buf:
                    self.logouts.append(user)
            except BlockingIOError:
                pass
            except OSError:
                return
            time.sleep(0.005)

    def append(self, msgs):
        with self.lock:
            self.feed.extend(msgs)

    def kick(self, user):
        with self.lock:
            c = self.conns.pop(user)
        c.shutdown(socket.SHUT_RDWR)
        c.close()

    def close(self):
        self.stop.set()
        self.srv.close()


def scenario_upstream():
    """Connect mode: two gateways on one upstream session publish the same sequence (lines A
    and B on two pods); a reconnect resumes at the next needed message, replays are skipped."""
    up = FakeUpstream(7100)
    rng = random.Random(9)
    first = make_msgs("up1", 500, rng)
    up.append(first)

    def cfg(tag, n, group):
        c = base_config(**{"ingress__listen": f"127.0.0.1:{7000 + n}",
                           "metrics__listen": f"127.0.0.1:{9100 + n}",
                           "retransmit": {"address": "127.0.0.1"}})
        c["ingress"]["users"] = [u for u in c["ingress"]["users"] if u["channel"] == "c2"]
        c["channels"][0]["lines"] = [group]
        c["channels"][0]["retransmit_port"] = 31001 + 10 * n
        c["channels"][1]["retransmit_port"] = 31002 + 10 * n
        c["channels"][1]["lines"] = [f"239.1.9.{n + 1}:30002"]
        c["channels"][0]["upstream"] = {"connect": "127.0.0.1:7100", "username": tag,
                                        "password": "pw", "reconnect_ms": 200}
        return c

    rx = Receiver(["239.1.1.1:30001", "239.1.2.1:30001"])
    gwa = Gateway(cfg("gwa", 0, "239.1.1.1:30001"))
    gwb = Gateway(cfg("gwb", 1, "239.1.2.1:30001"))
    rx.wait_for(lambda: rx.count_messages("239.1.1.1:30001") >= 500 and
                rx.count_messages("239.1.2.1:30001") >= 500, 10, "first 500 from upstream")
    # Pod A loses its upstream connection; more data arrives meanwhile; on reconnect the
    # server replays 100 messages A already has.
    up.replay_back["gwa"] = 100
    up.kick("gwa")
    second = make_msgs("up2", 500, rng)
    up.append(second)
    rx.wait_for(lambda: rx.count_messages("239.1.1.1:30001") >= 1000 and
                rx.count_messages("239.1.2.1:30001") >= 1000, 15, "all 1000 on both lines")
    a = check_stream(rx.got["239.1.1.1:30001"], "SESSIONC1", 1400)
    b = check_stream(rx.got["239.1.2.1:30001"], "SESSIONC1", 1400)
    check(a == first + second, "line A (pod A) lost, duplicated or reordered messages")
    check(b == first + second, "line B (pod B) lost, duplicated or reordered messages")
    check(rx.data_messages("239.1.1.1:30001") == rx.data_messages("239.1.2.1:30001"),
          "pods A and B numbered the messages differently")
    logins_a = [r for u, r in up.logins if u == "gwa"]
    check(logins_a == [1, 501], f"pod A asked for {logins_a}, want [1, 501]")
    ma = scrape_port(9100)
    check(metric(ma, "mdcast_upstream_duplicates_total", channel="c1") == 100, "duplicates")
    check(metric(ma, "mdcast_upstream_logins_total", channel="c1") == 2, "logins")
    check(metric(ma, "mdcast_upstream_connected", channel="c1") == 1, "connected")
    check(metric(ma, "mdcast_upstream_messages_total", channel="c1") == 1000, "messages")
    check(gwa.stop() == 0 and gwb.stop() == 0, "exit status")
    time.sleep(0.1)
    check(sorted(up.logouts) == ["gwa", "gwb"], f"logouts {up.logouts}")
    up.close()
    log("upstream: 2 pods, 1000 messages identically numbered on lines A and B; reconnect "
        "asked for 501, 100 replayed duplicates skipped; logout at shutdown")


def _data_by_session(datagrams):
    """{session: [(seq, msg), ...]} of the data packets, in arrival order."""
    out = {}
    for d in datagrams:
        sess, seq, count, msgs = mold_parse(d)
        if count not in (0, 0xFFFF):
            out.setdefault(sess, []).extend((seq + i, m) for i, m in enumerate(msgs))
    return out


def _restart_run(cfg, rx, group):
    """Issue 11's reproduction: 100 messages, SIGKILL, restart, 150, SIGTERM, restart, 150."""
    rng = random.Random(11)
    batches = [make_msgs(f"r{k}", n, rng, maxlen=40) for k, n in enumerate((100, 150, 150))]
    sessions = []
    for k, msgs in enumerate(batches):
        gw = Gateway(cfg) if k == 0 else Gateway(cfg, reuse_dir=gw.dir)
        p = Publisher("pub1", "pw1")
        sessions.append(p.reply[1][:10])
        p.send(msgs)
        total = sum(len(b) for b in batches[:k + 1])
        rx.wait_for(lambda: sum(len(v) for v in _data_by_session(rx.got[group]).values()) >= total,
                    10, f"{total} messages")
        if k == 0:
            gw.proc.kill()
            gw.proc.wait(5)
        else:
            check(gw.stop() == 0, "SIGTERM exit status")
    return batches, sessions


def scenario_restart():
    """Killed, restarted, stopped and restarted: with a journal one session, 400 of 400 in
    order; without one a new session per start, each from 1, nothing swallowed."""
    group = "239.1.1.1:30001"
    jcfg = base_config(**{"journal": {"dir": "@GWDIR@/journal", "fsync": "batch"}})
    rx = Receiver([group])
    batches, sessions = _restart_run(jcfg, rx, group)
    by = _data_by_session(rx.got[group])
    check(list(by) == [b"SESSIONC1 "], f"journal: one session, got {list(by)}")
    want = [(i + 1, m) for i, m in enumerate(batches[0] + batches[1] + batches[2])]
    got = by[b"SESSIONC1 "]
    check(got == want, f"journal: {len(got)} messages, want 400 in order (first bad: "
          f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)})")
    check(len(set(sessions)) == 1, f"journal: login sessions {sessions}")
    eos = [d for d in rx.got[group] if mold_parse(d)[2] == 0xFFFF]
    check(not eos, "journal: SIGTERM sent an end of session")
    log("restart (journal): 400/400 in order in one session across SIGKILL and SIGTERM")

    rx2 = Receiver(["239.1.2.1:30001"])
    ncfg = base_config()
    del ncfg["journal"]
    batches, sessions = _restart_run(ncfg, rx2, "239.1.2.1:30001")
    by = _data_by_session(rx2.got["239.1.2.1:30001"])
    check(len(by) == 3, f"no journal: want 3 sessions, got {list(by)}")
    for (sess, got), msgs in zip(by.items(), batches):
        check(sess.startswith(b"SESS") and got == [(i + 1, m) for i, m in enumerate(msgs)],
              f"no journal: session {sess!r}: {len(got)} messages, want {len(msgs)} from 1")
    log(f"restart (no journal): sessions {[x.decode() for x in by]}, each from 1, all delivered")



SCENARIOS = {
    "restart": scenario_restart,
    "upstream": scenario_upstream,
    "congestion": scenario_congestion,
    "flow": scenario_flow,
    "retransmit": scenario_retransmit,
    "malformed": scenario_malformed,
    "framing": scenario_framing,
    "backends": scenario_backends,
    "fallback": scenario_fallback,
    "zerocopy": scenario_zerocopy,
    "qdiscfull": scenario_qdiscfull,
}


def main():
    if len(sys.argv) > 6 and sys.argv[1] == "--rx":
        rx_to_file(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6:])
        return 0
    if len(sys.argv) < 2 or sys.argv[1] not in SCENARIOS:
        print(f"usage: {sys.argv[0]} {{{'|'.join(SCENARIOS)}}}", file=sys.stderr)
        return 2
    name = sys.argv[1]
    if len(sys.argv) > 2 and sys.argv[2] == "--inside":
        try:
            SCENARIOS[name]()
        except TestFailure as e:
            print(f"FAIL: {name}: {e}", file=sys.stderr)
            return 1
        print(f"PASS: {name}")
        return 0
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)")
        return 77
    if not os.path.exists(GATEWAY):
        print(f"FAIL: {GATEWAY} not built", file=sys.stderr)
        return 1
    ns = f"gw{os.getpid():x}{random.randrange(256):02x}"
    try:
        netns_create(ns)
        return subprocess.call(["ip", "netns", "exec", ns, sys.executable, __file__, name,
                                "--inside"], timeout=100)
    except subprocess.TimeoutExpired:
        print(f"FAIL: {name}: timed out", file=sys.stderr)
        return 1
    finally:
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
