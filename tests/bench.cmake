# Benchmark harness (issue 7): the programs tests/bench/run.sh drives. Built in every build dir;
# measurements use a release build. The harness's own tests (label `harness`: its tools, its
# histogram, a few-second smoke run) are ordinary tests and run in CI; the benchmarks
# themselves (label `bench`) never run as default tests.
set(MDCAST_BENCH_DIR ${CMAKE_CURRENT_SOURCE_DIR}/bench)
foreach(prog blaster sink bench_pub tcp_fanout)
  add_executable(${prog} ${MDCAST_BENCH_DIR}/${prog}.c)
  target_link_libraries(${prog} PRIVATE mdfeed_static)
  set_target_properties(${prog} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/bench)
endforeach()

# A few seconds: the harness on tiny loads, checked for its tables, JSON and PNGs.
mdcast_add_sh_test(bench_smoke SCRIPT ${MDCAST_BENCH_DIR}/smoke_test.sh TIMEOUT 120 LABELS harness)

# The latency histogram and parsers the tools share (no root, milliseconds).
mdcast_add_c_test(test_bench_hist SOURCES ${MDCAST_BENCH_DIR}/test_bench_hist.c LIBS mdfeed_static
                  TIMEOUT 30 LABELS unit harness)
target_include_directories(test_bench_hist PRIVATE ${MDCAST_BENCH_DIR})

# The tools themselves: counts, loss and gap detection (netem), latency, TCP fan-out (seconds).
mdcast_add_sh_test(bench_tools SCRIPT ${MDCAST_BENCH_DIR}/tools_test.sh TIMEOUT 90 LABELS harness)
