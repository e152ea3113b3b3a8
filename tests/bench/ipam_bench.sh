#!/usr/bin/env bash
# Benchmark (CTest label `bench`, not part of the default run): wall time of one CNI ADD of
# eni-ipam against the mock IMDSv2, and in the same run, against the same mock, the seed's bash
# IPAM (tests/bench/seed-ipam.sh, metadata address swapped for the mock's).
#
#   MDCAST_BUILD_DIR=build MDCAST_SOURCE_DIR=. bash tests/bench/ipam_bench.sh [RUNS]
#   (or: cd build && ctest -L bench -R ipam_bench --verbose)
#
# Both plugins run from one Python loop inside the node namespace (no `ip netns exec` per run),
# interleaved run by run so drift and neighbours hit both alike, after 3 warm-up runs each;
# every ADD's output is checked for the mock's address. Per run it records the wall time
# (spawn to reaped) and the CPU time of the process and its children (wait4 rusage), which
# depends much less on what else the machine is doing. A third series execs /bin/true the
# same way: the floor of starting any process from this loop. Prints medians, min-max, the
# ratios and the load average, and a JSON summary as the last line.
source "$MDCAST_SOURCE_DIR/tests/common/lib.sh"
source "$MDCAST_SOURCE_DIR/tests/integration/ipam/common.sh"

RUNS=${1:-${IPAM_BENCH_RUNS:-30}}
[ "$RUNS" -ge 20 ] 2>/dev/null || fail "RUNS must be a number >= 20 (got '$RUNS')"
[ "$RUNS" -le 1000 ] || fail "RUNS capped at 1000"
need_cmd curl "apt-get install curl (the seed's script uses it)"
ipam_setup
ipam_mock_start ok

SEED=$MDCAST_SOURCE_DIR/tests/bench/seed-ipam.sh
conf=$IPAM_TMP/conf.json
printf '{"cniVersion":"0.3.1","name":"mc","type":"host-device","ipam":{"type":"eni-ipam","imds_endpoint":"%s"}}' \
    "$IPAM_ENDPOINT" >"$conf"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
ip netns exec "$IPAM_NODE" env -i PATH="$PATH" CNI_COMMAND=ADD CNI_CONTAINERID=bench \
    CNI_NETNS="/run/netns/$IPAM_NODE" CNI_IFNAME=eth1 SEED_IMDS_ENDPOINT="$IPAM_ENDPOINT" \
    python3 - "$RUNS" "$IPAM_BIN" "$SEED" "$conf" "$IPAM_ADDR/$IPAM_PREFIX" "$load_before" <<'EOF' ||
import json, os, statistics, sys, time
runs, binary, seed, conf, addr, load_before = sys.argv[1:7]
runs = int(runs)
cmds = {"eni-ipam": [binary], "seed": ["bash", seed], "floor": ["/bin/true"]}
devnull = os.open(os.devnull, os.O_WRONLY)

def one(name):
    """Runs one ADD; returns (wall ms, CPU ms of the process and its children)."""
    r, w = os.pipe()
    fin = os.open(conf, os.O_RDONLY)
    # posix_spawn (vfork-like in glibc), not fork: copying this Python process would cost
    # more than some of what is measured.
    actions = [(os.POSIX_SPAWN_DUP2, fin, 0), (os.POSIX_SPAWN_DUP2, w, 1),
               (os.POSIX_SPAWN_DUP2, devnull, 2), (os.POSIX_SPAWN_CLOSE, r)]
    t0 = time.perf_counter_ns()
    pid = os.posix_spawnp(cmds[name][0], cmds[name], os.environ, file_actions=actions)
    os.close(w); os.close(fin)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    _, status, ru = os.wait4(pid, 0)
    wall = (time.perf_counter_ns() - t0) / 1e6
    if name != "floor" and (status != 0 or addr.encode() not in out):
        sys.exit(f"bad ADD from {name}: status {status}, output {out[:200]!r}")
    return wall, (ru.ru_utime + ru.ru_stime) * 1e3

for _ in range(3):  # warm-up: page cache, the mock's first connections
    one("eni-ipam"); one("seed")
res = {n: ([], []) for n in cmds}
for _ in range(runs):  # interleaved so that drift and neighbours hit all series alike
    for n in cmds:
        wall, cpu = one(n)
        res[n][0].append(wall); res[n][1].append(cpu)

med = {n: statistics.median(v[0]) for n, v in res.items()}
cpu = {n: statistics.median(v[1]) for n, v in res.items()}
for n, (walls, _) in res.items():
    label = "ADD" if n != "floor" else "/bin/true"
    print(f"{n:9s} {label:9s} x{runs}: wall median {med[n]:7.2f} ms  min-max {min(walls):6.2f}-{max(walls):7.2f} ms"
          f"  | CPU median {cpu[n]:6.2f} ms")
ratio, cpu_ratio = med["seed"] / med["eni-ipam"], cpu["seed"] / cpu["eni-ipam"]
with open("/proc/loadavg") as f:
    load_after = " ".join(f.read().split()[:3])
print(f"ratio seed/eni-ipam: wall {ratio:.1f}x, CPU {cpu_ratio:.1f}x"
      f"   (load average before {load_before}, after {load_after}; 2 vCPUs)")
print(json.dumps({"runs": runs, "eni_ipam_wall_median_ms": round(med["eni-ipam"], 3),
                  "seed_wall_median_ms": round(med["seed"], 3), "floor_wall_median_ms": round(med["floor"], 3),
                  "eni_ipam_wall_min_ms": round(min(res["eni-ipam"][0]), 3),
                  "eni_ipam_wall_max_ms": round(max(res["eni-ipam"][0]), 3),
                  "seed_wall_min_ms": round(min(res["seed"][0]), 3),
                  "seed_wall_max_ms": round(max(res["seed"][0]), 3),
                  "eni_ipam_cpu_median_ms": round(cpu["eni-ipam"], 3),
                  "seed_cpu_median_ms": round(cpu["seed"], 3),
                  "ratio_wall": round(ratio, 2), "ratio_cpu": round(cpu_ratio, 2),
                  "loadavg_before": load_before, "loadavg_after": load_after}))
EOF
    fail "a benchmark run failed"
