#!/usr/bin/env bash
# Fuzzes every target in tests/fuzz with libFuzzer: builds them with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer in build-fuzz/, runs each
# for SECONDS (default 20) from its seed corpus, and prints one line per
# target: executions, executions/s, coverage (edges) and features.
#
#   bash tools/fuzz.sh                 # 20 s per target (what CI runs)
#   bash tools/fuzz.sh 3600 fuzz_http  # an hour on one target
#
# New inputs go to build-fuzz/corpus/<target> (the seeds in the repository are
# only read). A crash fails the run and is saved in build-fuzz/crashes/<target>/:
# fix it, then copy the input to tests/fuzz/crashes/<target>/, where ctest
# replays it for ever after (fuzz.<target> tests).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
shift || true
bash tools/bootstrap.sh --fuzz

build=build-fuzz
CC=clang cmake -S . -B "$build" -DTP_FUZZ=ON -DTP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
printf '%-12s %10s %8s %6s %6s %s\n' target execs exec/s cov ft result
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t" "$build/crashes/$t"
  log="$build/$t.log"
  rc=0
  "$build/$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$build/crashes/$t/" \
    "$build/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  if [ "$rc" -eq 0 ]; then result=ok; else result="CRASH (rc $rc): see $log"; failed=1; fi
  printf '%-12s %10s %8s %6s %6s %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: a target crashed; its input is in $build/crashes/" >&2
  for t in "${targets[@]}"; do tail -40 "$build/$t.log" | grep -E "ERROR|SUMMARY|runtime error|==" | head -8 >&2 || true; done
  exit 1
fi
