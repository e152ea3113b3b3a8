#!/usr/bin/env bash
# CTest smoke run of the benchmark harness (label `bench`): `run.sh --smoke` on tiny loads, then
# checks that it printed the machine and the tables, wrote results.json with measured figures,
# valid PNG plots, and left no namespace behind. Seconds, not a benchmark.
. "$MDCAST_SOURCE_DIR/tests/common/lib.sh"
need_root
for c in gnuplot socat python3; do need_cmd "$c" "scripts/deps.sh test"; done

tag=$(test_tag)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
BENCH_TAG=$tag bash "$MDCAST_SOURCE_DIR/tests/bench/run.sh" --smoke --out "$out" \
  --build "$MDCAST_BUILD_DIR" >"$out/stdout" 2>"$out/stderr" || {
  cat "$out/stderr" >&2
  fail "run.sh --smoke exited non-zero"
}

grep -q '^Machine: [0-9]* cores' "$out/stdout" || fail "no machine line in the output"
grep -q '^| system | msgs/s |' "$out/stdout" || fail "no throughput table in the output"
grep -q '^| offered msgs/s | system |' "$out/stdout" || fail "no latency table in the output"
grep -q '^| N | system |' "$out/stdout" || fail "no fan-out table in the output"

have_gw=0
[ -x "$MDCAST_BUILD_DIR/gateway/mdcast-gateway" ] && have_gw=1
if ! python3 - "$out/results.json" "$have_gw" <<'PY'; then
import json, sys
r = json.load(open(sys.argv[1]))
if sys.argv[2] == "1":
    # The gateway is built: the harness's config must still be one it accepts, and it must
    # have carried the smoke loads losslessly with framing intact.
    g = r["throughput"]["gateway sendmmsg 1400 1p"]
    assert g["msgs_per_s"]["median"] > 0 and g["lost"]["median"] == 0, g
    assert g["framing"] == "intact; backend sendmmsg" or g["framing"].startswith("intact"), g
    assert g["max_datagram"]["max"] <= 1400, g
    lg = r["latency"]["10000"]["gateway"]["latency_us"]
    assert 0 < lg["p50"]["median"] <= lg["max"]["median"], lg
    assert r["fanout"]["2"]["multicast"]["lost"]["median"] == 0, r["fanout"]["2"]
k = r["throughput"]["blaster 1400"]
assert k["msgs_per_s"]["median"] > 0, k
assert k["lost"]["median"] == 0, ("the kernel blaster's consumer lost messages", k)
d = r["latency"]["10000"]["direct"]["latency_us"]
assert 0 < d["p50"]["median"] <= d["p99"]["median"] <= d["max"]["median"], d
t = r["fanout"]["2"]["tcp"]
assert t["bytes_per_msg"]["median"] >= 2 * 43, ("two consumers get each 43-byte frame", t)
PY
  grep -E 'did not|not built|giving up' "$out/stderr" >&2 || true
  fail "results.json lacks measured figures"
fi

for png in throughput.png latency_10000.png fanout.png; do
  [ -s "$out/$png" ] || fail "$png not written"
  [ "$(head -c 8 "$out/$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$png is not a PNG"
done
# In the sanitizer build the tools' stderr would carry any ASan/UBSan report.
if grep -l -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$out"/logs/*.err 2>/dev/null; then
  fail "a sanitizer reported an error in a benchmark tool (files above)"
fi
if ip netns list | grep -q "^$tag-"; then
  fail "namespaces left behind: $(ip netns list | grep "^$tag-" | tr '\n' ' ')"
fi
echo "bench smoke: ok ($(grep -c '^|' "$out/stdout") table lines)"
