#!/usr/bin/env python3
"""Compares two scrapes of the gateway's /metrics (Prometheus text format) taken around one
benchmark run and prints one JSON object: the egress backend in use, the counters' increase
(messages, packets, send retries and errors) and the arrival-to-send histogram of that run
(count, and the p50/p99/p99.9 bucket upper bounds in microseconds).

Usage: promdiff.py BEFORE AFTER   (BEFORE may be an empty file: then AFTER is taken whole)"""
import json
import re
import sys

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEInfNa]+)')


def parse(path):
    vals = {}
    try:
        with open(path) as f:
            for line in f:
                m = LINE.match(line)
                if m:
                    vals[(m.group(1), m.group(2) or "")] = float(m.group(3))
    except OSError:
        pass
    return vals


def total(vals, name):
    return sum(v for (n, _), v in vals.items() if n == name)


def main():
    before, after = parse(sys.argv[1]), parse(sys.argv[2])
    if not after:
        print(json.dumps({"error": "no metrics scraped"}))
        return
    backend = [re.search(r'backend="([^"]+)"', labels).group(1)
               for (n, labels), v in after.items() if n == "mdcast_egress_backend" and v == 1 and "backend=" in labels]
    out = {"backend": backend[0] if backend else None}
    for name in ["mdcast_messages_in_total", "mdcast_packets_out_total", "mdcast_send_retries_total",
                 "mdcast_send_errors_total", "mdcast_bytes_out_total"]:
        out[name.replace("mdcast_", "")] = total(after, name) - total(before, name)
    # Histogram: per-bucket increase, cumulative by `le`.
    hist = "mdcast_arrival_to_send_seconds"
    buckets = []
    for (n, labels), v in after.items():
        if n != hist + "_bucket":
            continue
        le = re.search(r'le="([^"]+)"', labels).group(1)
        bound = float("inf") if le == "+Inf" else float(le)
        buckets.append((bound, v - before.get((n, labels), 0.0)))
    buckets.sort()
    count = total(after, hist + "_count") - total(before, hist + "_count")
    lat = {"count": count}
    if buckets and count > 0:
        for qname, q in [("p50_le_us", 0.5), ("p99_le_us", 0.99), ("p99.9_le_us", 0.999)]:
            for bound, cum in buckets:
                if cum >= q * count:
                    lat[qname] = None if bound == float("inf") else bound * 1e6
                    break
        s = total(after, hist + "_sum") - total(before, hist + "_sum")
        lat["mean_us"] = s / count * 1e6
    out["arrival_to_send"] = lat
    print(json.dumps(out))


if __name__ == "__main__":
    main()
