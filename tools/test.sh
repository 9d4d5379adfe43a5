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
cd "$build"
ctest --output-on-failure --timeout 600 "$@"
