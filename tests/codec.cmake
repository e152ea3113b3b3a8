# Wire codec tests (MoldUDP64, SoupBinTCP, ITCH 5.0), the ITCH generator, interop, install.

# itchgen: the ITCH 5.0 file generator other tests and the demo use (B/tests/tools/itchgen).
add_executable(itchgen ${CMAKE_CURRENT_SOURCE_DIR}/tools/itchgen.c)
target_link_libraries(itchgen PRIVATE mdfeed_static)
set_target_properties(itchgen PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/tools)

mdcast_add_c_test(test_moldudp64 SOURCES unit/test_moldudp64.c LIBS mdfeed_static TIMEOUT 30 LABELS unit)
mdcast_add_c_test(test_itch SOURCES unit/test_itch.c LIBS mdfeed_static TIMEOUT 30 LABELS unit)

# The same executable checks a generated file: every message decodes, the mix is realistic.
add_test(NAME test_itchgen COMMAND test_itch --itchgen $<TARGET_FILE:itchgen>)
set_tests_properties(test_itchgen PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77 LABELS unit)
mdcast_add_c_test(test_soupbintcp SOURCES unit/test_soupbintcp.c LIBS mdfeed_static TIMEOUT 60 LABELS unit)
mdcast_add_c_test(test_fastpath SOURCES unit/test_fastpath.c LIBS mdfeed_static TIMEOUT 60 LABELS unit)
mdcast_add_c_test(test_errors SOURCES unit/test_errors.c LIBS mdfeed_static TIMEOUT 30 LABELS unit)

# Interop: packets from our encoders, in a pcap written by the test, read by Wireshark.
add_executable(interop_pcap ${CMAKE_CURRENT_SOURCE_DIR}/integration/interop/interop_pcap.c)
target_link_libraries(interop_pcap PRIVATE mdfeed_static)
set_target_properties(interop_pcap PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/integration)
mdcast_add_sh_test(test_interop_tshark SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/interop/interop.sh
                   TIMEOUT 120 LABELS integration)

# Install: the library, headers and mdfeed.pc, consumed with pkg-config alone. The test
# compiles with this build's compiler and sanitizer flags so it can link the instrumented
# library.
set(MDCAST_INSTALL_TEST_CFLAGS "")
if(MDCAST_SANITIZE)
  set(MDCAST_INSTALL_TEST_CFLAGS "-fsanitize=address,undefined")
endif()
mdcast_add_sh_test(test_install SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/install/install.sh
                   TIMEOUT 180 LABELS integration
                   ENV "MDCAST_TEST_CC=${CMAKE_C_COMPILER}" "MDCAST_TEST_CFLAGS=${MDCAST_INSTALL_TEST_CFLAGS}")
