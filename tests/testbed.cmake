# The local EKS + TGW stand-in (tests/testbed) and the end-to-end walkthrough (tests/e2e).
# Root only: they skip (77) with the reason otherwise.
mdcast_add_sh_test(testbed_netns SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/testbed/test_testbed.sh
                   TIMEOUT 60 LABELS "testbed;netns")
