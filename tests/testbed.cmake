# The local EKS + TGW stand-in (tests/testbed) and the end-to-end walkthrough (tests/e2e).
# Root only: they skip (77) with the reason otherwise.
mdcast_add_sh_test(testbed_netns SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/testbed/test_testbed.sh
                   TIMEOUT 60 LABELS "testbed;netns")
mdcast_add_sh_test(e2e_walkthrough SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_e2e.sh
                   TIMEOUT 180 LABELS "e2e;netns")
