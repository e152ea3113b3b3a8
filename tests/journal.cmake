# The journal stage (gateway/journal.c, docs/JOURNAL.md): unit tests (the disk-full case is its
# own test: it needs root for a private mount namespace and skips with 77 otherwise) and the
# benchmark tool (label bench: never a default test).
if(TARGET gateway_core)
  mdcast_add_c_test(test_gw_journal SOURCES unit/test_gw_journal.c LIBS gateway_core
                    TIMEOUT 120 LABELS unit gateway journal)
  add_test(NAME test_gw_journal_diskfull COMMAND test_gw_journal diskfull)
  set_tests_properties(test_gw_journal_diskfull PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77
                       LABELS "unit;gateway;journal")

  add_executable(journal_bench bench/journal_bench.c)
  target_link_libraries(journal_bench PRIVATE gateway_core)
  target_include_directories(journal_bench PRIVATE ${MDCAST_TEST_COMMON})
  set_target_properties(journal_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                        ${CMAKE_CURRENT_BINARY_DIR}/bench)
  add_test(NAME journal_bench COMMAND journal_bench)
  set_tests_properties(journal_bench PROPERTIES TIMEOUT 600 LABELS bench)
endif()

# libFuzzer target on the segment scanner (tests/fuzz/fuzz_journal.c), built as fuzz.cmake
# builds the codec targets (clang + MDCAST_FUZZ), with the journal and log sources compiled
# in; kept here so the journal's registrations live in one file.
if(MDCAST_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang" AND TARGET gateway_core)
  set(MDCAST_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzz target runs under CTest")
  set(jfuzz_flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
                  -fno-omit-frame-pointer)
  add_executable(fuzz_journal ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_journal.c
                 ${PROJECT_SOURCE_DIR}/gateway/journal.c ${PROJECT_SOURCE_DIR}/gateway/log.c)
  target_include_directories(fuzz_journal PRIVATE ${PROJECT_SOURCE_DIR}/gateway)
  find_package(Threads REQUIRED)
  target_link_libraries(fuzz_journal PRIVATE mdfeed_static PkgConfig::LIBUV PkgConfig::LIBCJSON
                        Threads::Threads m)
  target_compile_options(fuzz_journal PRIVATE ${jfuzz_flags})
  target_link_options(fuzz_journal PRIVATE ${jfuzz_flags})
  set_target_properties(fuzz_journal PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                        ${CMAKE_CURRENT_BINARY_DIR}/fuzz)
  set(jwork ${CMAKE_CURRENT_BINARY_DIR}/fuzz/corpus-journal)
  file(MAKE_DIRECTORY ${jwork})
  add_test(NAME fuzz_journal
           COMMAND fuzz_journal -max_total_time=${MDCAST_FUZZ_SECONDS} -timeout=10
                   -rss_limit_mb=2048 -print_final_stats=1
                   -artifact_prefix=${CMAKE_CURRENT_BINARY_DIR}/fuzz/journal-
                   ${jwork} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/seeds/journal)
  set_tests_properties(fuzz_journal PROPERTIES TIMEOUT 120 LABELS fuzz
                       ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1")
endif()
