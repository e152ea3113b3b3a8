#!/usr/bin/env bash
# Benchmark (CTest label `bench`, not part of the default run): wall time of one CNI ADD of
# eni-ipam against the mock IMDSv2, and in the same run, against the same mock, the seed's bash
# IPAM (tests/bench/seed-ipam.sh, metadata address swapped for the mock's).
#
#   MDCAST_BUILD_DIR=build MDCAST_SOURCE_DIR=. bash tests/bench/ipam_bench.sh [RUNS]
#   (or: cd build && ctest -L bench -R ipam_bench --verbose)
#
# Both plugins run from one bash loop inside the node namespace (no `ip netns exec` per run),
# interleaved run by run so drift hits both alike, after 3 warm-up runs each; every ADD's
# output is checked for the mock's address. A third series execs /bin/true the same way: the
# floor of starting any process from this loop. Prints medians, min-max and the ratio, and a
# JSON summary as the last line.
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

ip netns exec "$IPAM_NODE" env -i PATH="$PATH" CNI_COMMAND=ADD CNI_CONTAINERID=bench \
    CNI_NETNS="/run/netns/$IPAM_NODE" CNI_IFNAME=eth1 SEED_IMDS_ENDPOINT="$IPAM_ENDPOINT" \
    bash -c '
    runs=$1 bin=$2 seed=$3 conf=$4 dir=$5 addr=$6
    one() { # one NAME CMD...: times one run, appends microseconds, checks the output
        local t0 t1
        t0=$EPOCHREALTIME
        "${@:2}" <"$conf" >"$dir/out" 2>/dev/null
        t1=$EPOCHREALTIME
        echo $(( (${t1/./} - ${t0/./}) )) >>"$dir/$1.us"
        [ "$1" = floor ] || grep -q "$addr" "$dir/out" || { echo "bad output from $1: $(cat "$dir/out")" >&2; exit 1; }
    }
    for i in 1 2 3; do one warm "$bin"; one warm bash "$seed"; done
    rm -f "$dir"/*.us
    for i in $(seq "$runs"); do
        one eni-ipam "$bin"
        one seed bash "$seed"
        one floor /bin/true
    done' bench "$RUNS" "$IPAM_BIN" "$SEED" "$conf" "$IPAM_TMP" "$IPAM_ADDR/$IPAM_PREFIX" ||
    fail "a benchmark run failed"

python3 - "$IPAM_TMP" "$RUNS" <<'EOF'
import json, statistics, sys
d, runs = sys.argv[1], int(sys.argv[2])
def load(name):
    with open(f"{d}/{name}.us") as f:
        v = [int(x) / 1000.0 for x in f]
    assert len(v) == runs, (name, len(v))
    return v
series = {n: load(n) for n in ("eni-ipam", "seed", "floor")}
med = {n: statistics.median(v) for n, v in series.items()}
for n, v in series.items():
    print(f"{n:9s} ADD over {runs} runs: median {med[n]:8.2f} ms   min-max {min(v):7.2f}-{max(v):7.2f} ms"
          if n != "floor" else
          f"{'floor':9s} /bin/true, same loop: median {med[n]:8.2f} ms   min-max {min(v):7.2f}-{max(v):7.2f} ms")
ratio = med["seed"] / med["eni-ipam"]
print(f"ratio seed/eni-ipam (medians): {ratio:.1f}x")
print(json.dumps({"runs": runs, "eni_ipam_median_ms": round(med["eni-ipam"], 3),
                  "seed_median_ms": round(med["seed"], 3), "floor_median_ms": round(med["floor"], 3),
                  "eni_ipam_min_ms": round(min(series["eni-ipam"]), 3),
                  "eni_ipam_max_ms": round(max(series["eni-ipam"]), 3),
                  "seed_min_ms": round(min(series["seed"]), 3), "seed_max_ms": round(max(series["seed"]), 3),
                  "ratio": round(ratio, 2)}))
EOF
