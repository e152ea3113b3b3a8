# libmdfeed's subscriber and publisher client, the CLIs, the installed-library example.
mdcast_add_c_test(test_subscriber SOURCES unit/test_subscriber.c LIBS mdfeed_static
                  TIMEOUT 60 LABELS unit feed)
mdcast_add_c_test(test_publisher SOURCES unit/test_publisher.c LIBS mdfeed_static
                  TIMEOUT 60 LABELS unit feed)

# Test tools for the CLI tests: a SoupBinTCP sink and a MoldUDP64 source with drops and a
# re-request server.
add_executable(soup-sink integration/feed/soup_sink.c)
target_link_libraries(soup-sink PRIVATE mdfeed_static)
add_executable(mold-send integration/feed/mold_send.c)
target_link_libraries(mold-send PRIVATE mdfeed_static)
mdcast_add_sh_test(test_feed_cli SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/feed/test_cli.sh
                   TIMEOUT 180 LABELS integration feed)
# ITCH file -> mdcast-pub -> mdcast-gateway -> mdfeed-tap, byte-identical (needs the gateway).
if(TARGET mdcast-gateway)
  mdcast_add_sh_test(test_feed_gateway_replay
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/feed/test_gateway_replay.sh
                     TIMEOUT 120 LABELS integration feed)
endif()
# The example consumer, built against the installed library through pkg-config.
mdcast_add_sh_test(test_feed_example SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/feed/test_example.sh
                   TIMEOUT 120 LABELS integration feed)

# Benchmark: subscriber vs a raw recvmmsg loop over the same packets (label `bench`).
# CONFIGURATIONS keeps it out of the default run: `ctest -C bench -L bench` runs it.
add_executable(consumer_bench bench/consumer_bench.c)
target_include_directories(consumer_bench PRIVATE ${MDCAST_TEST_COMMON})
target_link_libraries(consumer_bench PRIVATE mdfeed_static)
add_test(NAME consumer_bench COMMAND consumer_bench CONFIGURATIONS bench)
set_tests_properties(consumer_bench PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77 LABELS bench)
