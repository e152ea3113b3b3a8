# mdcast-gateway: unit tests of the parts, integration tests on a namespace the test creates,
# and the quick benchmark (label `bench`, not in the default run).
if(TARGET gateway_core)
  mdcast_add_c_test(test_gw_config SOURCES unit/test_gw_config.c LIBS gateway_core
                    TIMEOUT 60 LABELS unit gateway)
  target_compile_definitions(test_gw_config PRIVATE
      GW_SOURCE_DIR="${CMAKE_SOURCE_DIR}" GW_BINARY="$<TARGET_FILE:mdcast-gateway>")
  add_dependencies(test_gw_config mdcast-gateway)
  mdcast_add_c_test(test_gw_store SOURCES unit/test_gw_store.c LIBS gateway_core
                    TIMEOUT 60 LABELS unit gateway)
  foreach(stage packetizer egress sequencer retransmit)
    mdcast_add_c_test(test_gw_${stage} SOURCES unit/test_gw_${stage}.c LIBS gateway_core
                      TIMEOUT 60 LABELS unit gateway)
  endforeach()
endif()

if(TARGET mdcast-gateway)
  # Runs a program with io_uring refused by a seccomp filter (the fallback test).
  add_executable(gw_noring integration/gateway/gw_noring.c)
  foreach(scenario restart flow retransmit malformed framing backends fallback congestion upstream zerocopy
                   qdiscfull)
    mdcast_add_sh_test(test_gw_it_${scenario}
                       SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/gateway/run.sh
                       ARGS ${scenario} TIMEOUT 120 LABELS integration gateway)
  endforeach()
endif()

# Quick benchmark (label bench; `ctest -L bench`): figures and ratios, bounded in time.
add_executable(gateway_bench_tool bench/gateway_bench_tool.c)
target_link_libraries(gateway_bench_tool PRIVATE mdfeed_static)
if(TARGET mdcast-gateway)
  mdcast_add_sh_test(gateway_bench SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/bench/gateway_bench.sh
                     TIMEOUT 300 LABELS bench)
endif()
