#!/usr/bin/env bash
# Lints deploy/: yamllint (strict, deploy/.yamllint) on every YAML file, shellcheck on every shell
# script of deploy/ and tests/deploy/. Usage: test_lint.sh yaml|shell
# shellcheck source=tests/common/lib.sh
source "$(dirname "$0")/../common/lib.sh"
cd "$MDCAST_SOURCE_DIR"

case ${1:-} in
  yaml)
    need_cmd yamllint "Debian package yamllint"
    mapfile -t files < <(find deploy -name '*.yaml' -o -name '*.yml' -o -name '.yamllint' | sort)
    [ "${#files[@]}" -ge 8 ] || fail "expected the deploy/ YAML files, found ${#files[@]}"
    yamllint -c deploy/.yamllint -s "${files[@]}" || fail "yamllint found problems"
    echo "PASS: yamllint clean on ${#files[@]} files"
    ;;
  shell)
    need_cmd shellcheck "Debian package shellcheck"
    mapfile -t files < <(find deploy tests/deploy -name '*.sh' | sort)
    [ "${#files[@]}" -ge 3 ] || fail "expected the deploy/ shell scripts, found ${#files[@]}"
    for f in "${files[@]}"; do
      head -1 "$f" | grep -q '^#!/usr/bin/env bash$\|^#!/bin/bash$\|^#!/bin/sh$' || fail "$f: no shebang"
    done
    shellcheck -x -P SCRIPTDIR "${files[@]}" || fail "shellcheck found problems"
    echo "PASS: shellcheck clean on ${#files[@]} scripts"
    ;;
  *) fail "usage: $0 yaml|shell" ;;
esac
