#!/usr/bin/env python3
"""Mock of the EC2 instance metadata service, version 2 (IMDSv2), for tests only.

It serves just what eni-ipam (and the seed's bash IPAM) read:

    PUT /latest/api/token                       (needs X-aws-ec2-metadata-token-ttl-seconds)
    GET /latest/meta-data/network/interfaces/macs/
    GET /latest/meta-data/network/interfaces/macs/<mac>/
    GET /latest/meta-data/network/interfaces/macs/<mac>/local-ipv4s
    GET /latest/meta-data/network/interfaces/macs/<mac>/subnet-ipv4-cidr-block

and enforces the token the way IMDSv2 does: a PUT without a valid TTL header gets 400, a PUT
carrying X-Forwarded-For gets 403, a GET without a token (or with an unknown or expired one)
gets 401.

Usage:
    mock_imds.py --listen HOST:PORT --macs FILE.json [--mode MODE] [--slow-ms N]
                 [--fresh-count N] [--log FILE] [--verbose]

HOST may be an IPv4 address or a bracketed IPv6 address ([::1]); PORT 0 picks a free port.
Once the socket listens it prints "listening on HOST:PORT" (the real port) on stdout, then
serves until SIGTERM/SIGINT. FILE.json maps MAC -> {"local-ipv4s": [...],
"subnet-ipv4-cidr-block": "..."}.

Modes (they change the metadata answers; the token endpoint keeps working unless noted):
    ok         answer from FILE.json
    404        every metadata GET answers 404 (an ENI that IMDS does not know yet)
    fresh      the first --fresh-count metadata GETs answer 404, then as ok
    500        every metadata GET answers 500
    throttle   every request, the token PUT included, answers 429 Too Many Requests
    slow       metadata GETs answer after --slow-ms milliseconds (default 3000)
    garbage    local-ipv4s is not an address, subnet-ipv4-cidr-block is not a CIDR
    badprefix  subnet-ipv4-cidr-block carries the prefix /33
    outside    local-ipv4s holds an address outside the subnet
    huge       local-ipv4s is an 8 MiB body
    notoken    the token PUT answers 403 (IMDS access refused)
    close      metadata GETs get the connection closed without an answer

--log FILE appends one line per request: "METHOD PATH STATUS token=yes|no proxy=yes|no".
Python 3 standard library only; threaded, HTTP/1.1 keep-alive, so a benchmark is not timing
the mock.
"""

import argparse
import http.server
import json
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time

TOKEN_PATH = "/latest/api/token"
MACS_PREFIX = "/latest/meta-data/network/interfaces/macs/"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MODES = ("ok", "404", "fresh", "500", "throttle", "slow", "garbage", "badprefix", "outside",
         "huge", "notoken", "close")
HUGE_BYTES = 8 * 1024 * 1024
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class State:
    """Everything the handler threads share; guarded by one lock."""

    def __init__(self, macs, mode, slow_ms, fresh_count, log_path):
        self.macs = macs
        self.mode = mode
        self.slow_ms = slow_ms
        self.fresh_left = fresh_count
        self.log_path = log_path
        self.tokens = {}  # token -> expiry (monotonic seconds)
        self.lock = threading.Lock()

    def new_token(self, ttl):
        token = secrets.token_urlsafe(42)
        with self.lock:
            self.tokens[token] = time.monotonic() + ttl
        return token

    def token_valid(self, token):
        with self.lock:
            expiry = self.tokens.get(token)
        return expiry is not None and expiry > time.monotonic()

    def take_fresh(self):
        """True while the 'fresh' mode still owes a 404."""
        with self.lock:
            if self.fresh_left > 0:
                self.fresh_left -= 1
                return True
        return False

    def log(self, line):
        if not self.log_path:
            return
        with self.lock:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per plugin run
    # One write per response: with a buffered wfile, the status line, headers and body collect
    # in the buffer and handle_one_request() flushes them once after each request, so the
    # client wakes up once to a whole answer instead of once for the headers and again for the
    # body. Nagle stays off so that nothing waits for the client's delayed ACK (~40 ms).
    # Both the plugin and the seed's script talk to this mock, so this is fair to both.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "EC2ws"
    sys_version = ""
    state = None  # set by main()
    verbose = False

    def log_message(self, fmt, *args):  # quiet unless --verbose
        if self.verbose:
            sys.stderr.write("mock_imds: " + (fmt % args) + "\n")

    def _record(self, status):
        token = "yes" if self.headers.get(TOKEN_HEADER) else "no"
        # A request line in absolute form (http://host/path) means a proxy-style request.
        proxy = "yes" if self.path.startswith("http") else "no"
        self.state.log(f"{self.command} {self.path} {status} token={token} proxy={proxy}")

    def _reply(self, status, body=b"", content_type="text/plain"):
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drain_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= 65536:
            self.rfile.read(length)

    def do_PUT(self):
        self._drain_body()
        if self.state.mode == "throttle":
            return self._reply(429, b"Too Many Requests")
        if self.path != TOKEN_PATH:
            return self._reply(404, b"Not Found")
        if self.headers.get("X-Forwarded-For"):
            return self._reply(403, b"Forbidden")
        if self.state.mode == "notoken":
            return self._reply(403, b"Forbidden")
        ttl = self.headers.get(TTL_HEADER, "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self._reply(400, b"Bad Request")
        token = self.state.new_token(int(ttl))
        return self._reply(200, token.encode())

    def do_GET(self):
        state = self.state
        if state.mode == "throttle":
            return self._reply(429, b"Too Many Requests")
        if self.path == TOKEN_PATH:
            return self._reply(405, b"Method Not Allowed")
        if not state.token_valid(self.headers.get(TOKEN_HEADER, "")):
            return self._reply(401, b"Unauthorized")
        if not self.path.startswith(MACS_PREFIX):
            return self._reply(404, b"Not Found")
        mode = state.mode
        if mode == "404" or (mode == "fresh" and state.take_fresh()):
            return self._reply(404, b"Not Found")
        if mode == "500":
            return self._reply(500, b"Internal Server Error")
        if mode == "close":
            self._record("closed")
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if mode == "slow":
            time.sleep(state.slow_ms / 1000.0)
        return self._serve_metadata(self.path[len(MACS_PREFIX):])

    def _serve_metadata(self, rest):
        state = self.state
        if rest == "":
            listing = "".join(mac + "/\n" for mac in state.macs)
            return self._reply(200, listing.encode())
        parts = rest.split("/")
        mac = parts[0]
        entry = state.macs.get(mac)
        if entry is None:
            return self._reply(404, b"Not Found")
        leaf = "/".join(parts[1:])
        if leaf == "":
            return self._reply(200, b"local-ipv4s\nsubnet-ipv4-cidr-block\n")
        mode = state.mode
        if leaf == "local-ipv4s":
            if mode == "garbage":
                return self._reply(200, b"<html><body>not an address</body></html>")
            if mode == "huge":
                return self._reply(200, b"198.18.0.1\n" * (HUGE_BYTES // 11))
            ips = list(entry.get("local-ipv4s", []))
            if mode == "outside" and ips:
                ips[0] = "198.19.255.1"
            return self._reply(200, "\n".join(ips).encode())
        if leaf == "subnet-ipv4-cidr-block":
            cidr = entry.get("subnet-ipv4-cidr-block", "")
            if mode == "garbage":
                cidr = "not-a-cidr"
            elif mode == "badprefix":
                cidr = cidr.split("/")[0] + "/33"
            return self._reply(200, cidr.encode())
        return self._reply(404, b"Not Found")

    do_HEAD = do_GET

    def handle(self):
        # A client that gives up half-way (timeouts, size caps) is expected, not an error.
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class Server6(Server):
    address_family = socket.AF_INET6


def parse_listen(text):
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([0-9.]+|localhost):(\d+)", text)
    if not m:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT or [IPV6]:PORT")
    if m.group(1):
        return m.group(1), int(m.group(2)), True
    return m.group(3), int(m.group(4)), False


def load_macs(path):
    with open(path, encoding="utf-8") as f:
        macs = json.load(f)
    if not isinstance(macs, dict):
        raise ValueError(f"{path}: expected an object mapping MAC -> interface data")
    for mac, entry in macs.items():
        if not MAC_RE.match(mac):
            raise ValueError(f"{path}: {mac!r} is not a lower-case MAC address")
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: {mac}: expected an object")
    return macs


def main():
    ap = argparse.ArgumentParser(description="Mock IMDSv2 server for tests")
    ap.add_argument("--listen", required=True)
    ap.add_argument("--macs", required=True)
    ap.add_argument("--mode", default="ok", choices=MODES)
    ap.add_argument("--slow-ms", type=int, default=3000)
    ap.add_argument("--fresh-count", type=int, default=2)
    ap.add_argument("--log")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    try:
        host, port, v6 = parse_listen(args.listen)
        macs = load_macs(args.macs)
    except (ValueError, OSError) as e:
        print(f"mock_imds: {e}", file=sys.stderr)
        return 2

    Handler.state = State(macs, args.mode, args.slow_ms, args.fresh_count, args.log)
    Handler.verbose = args.verbose
    server = (Server6 if v6 else Server)((host, port), Handler)
    real_port = server.server_address[1]
    shown = f"[{host}]" if v6 else host
    print(f"listening on {shown}:{real_port}", flush=True)

    def stop(_signum, _frame):
        # shutdown() waits for serve_forever(), so call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
