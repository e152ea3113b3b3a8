#!/usr/bin/env python3
"""A minimal IMDSv2 mock for the node installer's ENI discovery, for tests only: the token PUT
(TTL header required), then GET .../network/interfaces/macs/ and .../macs/<mac>/device-number,
401 without a valid token. (tests/tools/mock_imds.py serves eni-ipam's paths, not
device-number.) Prints "listening on HOST:PORT" once ready; serves until killed.
Usage: mock_imds_devices.py --listen 127.0.0.1:0 --devices '{"02:00:00:00:00:01": 0, ...}'"""
import argparse
import http.server
import json
import secrets
import sys

MACS = "/latest/meta-data/network/interfaces/macs/"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--devices", required=True, help="JSON object MAC -> device index")
    args = ap.parse_args()
    devices = json.loads(args.devices)
    tokens = set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, code, body=b""):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if self.path != "/latest/api/token" or not ttl.isdigit():
                return self.reply(400)
            tok = secrets.token_hex(16)
            tokens.add(tok)
            self.reply(200, tok.encode())

        def do_GET(self):
            if self.headers.get("X-aws-ec2-metadata-token") not in tokens:
                return self.reply(401)
            if self.path == MACS:
                return self.reply(200, "".join(m + "/\n" for m in devices).encode())
            rest = self.path[len(MACS):] if self.path.startswith(MACS) else ""
            mac, _, leaf = rest.partition("/")
            if mac in devices and leaf == "device-number":
                return self.reply(200, str(devices[mac]).encode())
            self.reply(404)

        def log_message(self, *a):
            pass

    host, port = args.listen.rsplit(":", 1)
    srv = http.server.HTTPServer((host, int(port)), Handler)
    print("listening on %s:%d" % srv.server_address, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
