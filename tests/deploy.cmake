# deploy/ checked offline (issue 8): lint, rendered manifests, the NAD's JSON, the ENI script
# against a fake aws, the CloudFormation template, the Dockerfile, the seccomp profile, the VM
# files, and the node installer in a throwaway network namespace.
set(MDCAST_DEPLOY_TESTS ${CMAKE_CURRENT_SOURCE_DIR}/deploy)

mdcast_add_sh_test(deploy_yamllint SCRIPT ${MDCAST_DEPLOY_TESTS}/test_lint.sh ARGS yaml
                   TIMEOUT 60 LABELS deploy)
mdcast_add_sh_test(deploy_shellcheck SCRIPT ${MDCAST_DEPLOY_TESTS}/test_lint.sh ARGS shell
                   TIMEOUT 60 LABELS deploy)
mdcast_add_sh_test(deploy_eni_script SCRIPT ${MDCAST_DEPLOY_TESTS}/test_eni_script.sh
                   TIMEOUT 120 LABELS deploy)

# mdcast_add_deploy_py_test(<name> <script.py>): a Python check; exit 77 = skipped.
function(mdcast_add_deploy_py_test name script)
  add_test(NAME ${name} COMMAND python3 ${MDCAST_DEPLOY_TESTS}/${script} ${ARGN})
  set_tests_properties(${name} PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77 LABELS deploy
                       ENVIRONMENT "MDCAST_BUILD_DIR=${CMAKE_BINARY_DIR};MDCAST_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()

mdcast_add_deploy_py_test(deploy_nad_json check_nad.py)
mdcast_add_deploy_py_test(deploy_k8s_render check_k8s.py)
mdcast_add_deploy_py_test(deploy_cfn check_cfn.py)
mdcast_add_deploy_py_test(deploy_dockerfile check_dockerfile.py)
mdcast_add_deploy_py_test(deploy_seccomp check_seccomp.py)
mdcast_add_sh_test(deploy_gateway_config SCRIPT ${MDCAST_DEPLOY_TESTS}/test_gateway_config.sh
                   TIMEOUT 60 LABELS deploy)
mdcast_add_sh_test(deploy_node_installer SCRIPT ${MDCAST_DEPLOY_TESTS}/test_node_installer.sh
                   TIMEOUT 180 LABELS deploy)
mdcast_add_sh_test(deploy_vm SCRIPT ${MDCAST_DEPLOY_TESTS}/test_vm.sh TIMEOUT 60 LABELS deploy)
mdcast_add_deploy_py_test(deploy_eks check_eks.py)
mdcast_add_sh_test(deploy_seccomp_profile SCRIPT ${MDCAST_DEPLOY_TESTS}/test_seccomp_profile.sh
                   TIMEOUT 120 LABELS deploy)
mdcast_add_deploy_py_test(deploy_docs check_docs.py)
mdcast_add_sh_test(deploy_nad_ipam SCRIPT ${MDCAST_DEPLOY_TESTS}/test_nad_ipam.sh TIMEOUT 60 LABELS deploy)
