# mdcast-agent (feedhandler/agent/, docs/AGENT.md): the ring, the client source against a real
# agent, the integration run with hostile clients, the rendered Kubernetes manifests. The fuzz
# target of the control protocol is in tests/fuzz.cmake (fuzz_agent).
find_package(Threads REQUIRED)

mdcast_add_c_test(test_agent_ring SOURCES unit/test_agent_ring.c
                  LIBS mdcast_agent_core Threads::Threads TIMEOUT 120 LABELS unit agent)

# The client source against a real agent (private network namespace, loopback multicast).
mdcast_add_c_test(test_agent_client SOURCES unit/test_agent_client.c LIBS mdfeed_static
                  TIMEOUT 120 LABELS unit agent)
add_dependencies(test_agent_client mdcast-agent)
target_compile_definitions(test_agent_client PRIVATE
                           MDCAST_AGENT_BIN="$<TARGET_FILE:mdcast-agent>")
target_include_directories(test_agent_client PRIVATE ${PROJECT_SOURCE_DIR}/feedhandler/src)

# Integration: agent + 4 readers (one SIGSTOPped) + hostile clients, in a namespace of its own.
add_executable(agent-it integration/agent/agent_it.c)
target_include_directories(agent-it PRIVATE ${PROJECT_SOURCE_DIR}/feedhandler/src)
target_link_libraries(agent-it PRIVATE mdfeed_static)
mdcast_add_sh_test(test_agent_it SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/agent/test_agent_it.sh
                   TIMEOUT 120 LABELS integration agent)

# deploy/k8s/agent rendered and checked offline (style of tests/deploy/check_k8s.py).
add_test(NAME deploy_agent_k8s COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/deploy/check_agent_k8s.py)
set_tests_properties(deploy_agent_k8s PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77 LABELS "deploy;agent"
                     ENVIRONMENT "MDCAST_BUILD_DIR=${CMAKE_BINARY_DIR};MDCAST_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
