#!/usr/bin/env bash
# Installs what is missing, builds tidepool with AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs every test (C unit tests and end-to-end
# tests against the real binary) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/bootstrap.sh --test

build=${TP_TEST_BUILD:-build-test}
cmake -S . -B "$build" -DTP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j"$(nproc)"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Every test cleans up after itself: ctest runs with a TMPDIR of its own, and
# a file or folder a passing run leaves in it fails the run (a scratch folder
# per run would otherwise pile up on the machine: 968 of `tidepool campaign`).
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tidepool-tests-XXXXXX")
cd "$build"
rc=0
TMPDIR=$scratch ctest --output-on-failure --timeout 600 "$@" || rc=$?
left=$(ls -A "$scratch")
if [ -n "$left" ]; then
  echo "tests left these in TMPDIR ($scratch):" >&2
  printf '  %s\n' $left >&2
  [ "$rc" -ne 0 ] || rc=1
fi
rm -rf "$scratch"
exit "$rc"
