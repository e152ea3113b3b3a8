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

python3 - "$out/results.json" <<'PY' || fail "results.json lacks measured figures"
import json, sys
r = json.load(open(sys.argv[1]))
k = r["throughput"]["blaster 1400"]
assert k["msgs_per_s"]["median"] > 0, k
assert k["lost"]["median"] == 0, ("the kernel blaster's consumer lost messages", k)
d = r["latency"]["10000"]["direct"]["latency_us"]
assert 0 < d["p50"]["median"] <= d["p99"]["median"] <= d["max"]["median"], d
t = r["fanout"]["2"]["tcp"]
assert t["bytes_per_msg"]["median"] >= 2 * 43, ("two consumers get each 43-byte frame", t)
PY

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
