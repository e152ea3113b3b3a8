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
