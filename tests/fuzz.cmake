# libFuzzer targets for the wire codecs (tests/fuzz/). Built only with clang and
# MDCAST_FUZZ=ON (scripts/build.sh ... sanitize sets both). Each binary compiles the codec
# sources itself with -fsanitize=fuzzer,address,undefined and runs as a CTest test for a
# bounded time from the committed seeds; run one longer as docs/CODECS.md shows.
if(NOT MDCAST_FUZZ)
  return()
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(STATUS "fuzz targets skipped: MDCAST_FUZZ needs clang (have ${CMAKE_C_COMPILER_ID})")
  return()
endif()

set(MDCAST_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzz target runs under CTest")
set(MDCAST_FUZZ_FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
set(MDCAST_CODEC_SRC ${PROJECT_SOURCE_DIR}/feedhandler/src)

# mdcast_add_fuzz(<name> <codec source>): tests/fuzz/fuzz_<name>.c + that codec + errors.c.
function(mdcast_add_fuzz name codec)
  set(target fuzz_${name})
  add_executable(${target} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${target}.c
                 ${MDCAST_CODEC_SRC}/${codec} ${MDCAST_CODEC_SRC}/errors.c)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/feedhandler/include)
  target_compile_options(${target} PRIVATE ${MDCAST_FUZZ_FLAGS})
  target_link_options(${target} PRIVATE ${MDCAST_FUZZ_FLAGS})
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz)
  # New inputs go to a scratch corpus in the build tree; the committed seeds stay read-only.
  set(work ${CMAKE_CURRENT_BINARY_DIR}/fuzz/corpus-${name})
  file(MAKE_DIRECTORY ${work})
  add_test(NAME ${target}
           COMMAND ${target} -max_total_time=${MDCAST_FUZZ_SECONDS} -timeout=10 -rss_limit_mb=2048
                   -print_final_stats=1 -artifact_prefix=${CMAKE_CURRENT_BINARY_DIR}/fuzz/${name}-
                   ${work} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/seeds/${name})
  set_tests_properties(${target} PROPERTIES TIMEOUT 120 LABELS fuzz
                       ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1")
endfunction()

mdcast_add_fuzz(moldudp64 moldudp64.c)
mdcast_add_fuzz(soupbintcp soupbintcp.c)
mdcast_add_fuzz(itch itch.c)
# The gateway's hot-path helpers against the general paths (both codecs' sources).
mdcast_add_fuzz(fastpath soupbintcp.c)
target_sources(fuzz_fastpath PRIVATE ${MDCAST_CODEC_SRC}/moldudp64.c)

# The agent's control protocol (header-only parser in feedhandler/agent/agent_wire.h); it has
# no committed seeds: libFuzzer starts from the empty input and a scratch corpus.
add_executable(fuzz_agent ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_agent.c)
target_include_directories(fuzz_agent PRIVATE ${PROJECT_SOURCE_DIR}/feedhandler/agent)
target_compile_options(fuzz_agent PRIVATE ${MDCAST_FUZZ_FLAGS})
target_link_options(fuzz_agent PRIVATE ${MDCAST_FUZZ_FLAGS})
set_target_properties(fuzz_agent PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz)
file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz/corpus-agent)
add_test(NAME fuzz_agent
         COMMAND fuzz_agent -max_total_time=${MDCAST_FUZZ_SECONDS} -timeout=10 -rss_limit_mb=2048
                 -print_final_stats=1 -artifact_prefix=${CMAKE_CURRENT_BINARY_DIR}/fuzz/agent-
                 ${CMAKE_CURRENT_BINARY_DIR}/fuzz/corpus-agent)
set_tests_properties(fuzz_agent PROPERTIES TIMEOUT 120 LABELS "fuzz;agent"
                     ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1")
