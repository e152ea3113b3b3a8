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
