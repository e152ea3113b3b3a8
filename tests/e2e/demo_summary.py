#!/usr/bin/env python3
"""Prints the demo's closing summary from the programs' --json summaries (last stdout lines).

Usage: demo_summary.py --pub FILE --bench FILE --tap LABEL=FILE... [--vm FILE] [--idle TEXT]
                       [--served N]
"""
import argparse
import json
import sys


def last_json(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [ln for ln in f.read().splitlines() if ln.startswith("{")]
    if not lines:
        raise ValueError(f"{path}: no JSON summary")
    return json.loads(lines[-1])


def tap_line(label, s):
    lat = s.get("latency_ns")
    lat_txt = (f"p50 {lat['p50'] / 1e3:.1f} us, p99 {lat['p99'] / 1e3:.1f} us ({lat['samples']} samples)"
               if lat else "no samples")
    fa = s["first_arrivals"]
    return (f"  {label:<30} received {s['received']} (seq {s['first_seq']}..{s['last_seq']}), "
            f"gaps {s['gaps']}, recovered {s['recovered']}, lost {s['lost']}; first from line B "
            f"{fa['b']}, by re-request {fa['retransmit']}; latency {lat_txt}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pub", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--tap", action="append", default=[], help="LABEL=FILE")
    ap.add_argument("--vm")
    ap.add_argument("--idle")
    ap.add_argument("--served")
    args = ap.parse_args()
    ok = True
    pub, bench = last_json(args.pub), last_json(args.bench)
    total = pub["sent"] + bench["sent"]
    print(f"  {'messages sent':<30} {pub['sent']} ITCH 5.0 + {bench['sent']} timestamped = {total}")
    for item in args.tap:
        label, _, path = item.partition("=")
        try:
            s = last_json(path)
            print(tap_line(label, s))
            ok = ok and s["received"] == total and s["lost"] == 0
        except (OSError, ValueError, KeyError) as e:
            print(f"  {label:<30} no summary ({e})")
            ok = False
    if args.vm:
        try:
            v = last_json(args.vm)
            same = v["received"] == v["sent"] and v["missing"] == 0 and v["duplicates"] == 0
            print(f"  {'vm1 (plain socat, line A)':<30} {v['received']}/{v['sent']} ITCH messages "
                  f"byte-identical to the file: {'yes' if same else 'NO'}; + {v['extra']} timestamped; "
                  f"{v['packets']} datagrams, {v['end_of_session']} end-of-session")
            ok = ok and same
        except (OSError, ValueError, KeyError) as e:
            print(f"  {'vm1 (plain socat, line A)':<30} capture unreadable ({e})")
            ok = False
    if args.idle:
        print(f"  {'vm2 (joined nothing)':<30} {args.idle}")
    if args.served is not None:
        print(f"  {'re-requests served (gateway)':<30} {args.served or 0}")
    print(f"  {'result':<30} {'everything arrived' if ok else 'SOMETHING IS MISSING'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
