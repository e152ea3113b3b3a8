# eni-ipam tests (issue 3). Unit tests need no root; the integration tests create network
# namespaces and skip (77) without root. The benchmark is labelled `bench` and left out of the
# default run (scripts/test.sh excludes the label).
if(TARGET ipam_core)
  mdcast_add_c_test(test_ipam_config SOURCES unit/test_ipam_config.c LIBS ipam_core
                    TIMEOUT 30 LABELS unit ipam)
  target_compile_definitions(test_ipam_config PRIVATE MDCAST_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  mdcast_add_c_test(test_ipam_result SOURCES unit/test_ipam_result.c LIBS ipam_core
                    TIMEOUT 30 LABELS unit ipam)
  mdcast_add_c_test(test_ipam_imds SOURCES unit/test_ipam_imds.c LIBS ipam_core
                    TIMEOUT 90 LABELS unit ipam)
  target_compile_definitions(test_ipam_imds PRIVATE
                             MOCK_IMDS="${CMAKE_SOURCE_DIR}/tests/tools/mock_imds.py")

  mdcast_add_sh_test(ipam_errors SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/ipam/errors.sh
                     TIMEOUT 240 LABELS integration ipam)
  mdcast_add_sh_test(ipam_e2e_hostdevice
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/ipam/e2e_hostdevice.sh
                     TIMEOUT 180 LABELS integration ipam)
  mdcast_add_sh_test(ipam_chroot SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/ipam/chroot.sh
                     TIMEOUT 120 LABELS integration ipam)
  mdcast_add_sh_test(ipam_bench SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/bench/ipam_bench.sh
                     TIMEOUT 600 LABELS bench ipam)
endif()
