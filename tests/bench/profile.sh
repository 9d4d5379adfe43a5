#!/usr/bin/env bash
# tests/bench/profile.sh - where a server's instructions go under a wrk load,
# with valgrind's callgrind (perf counters are not available everywhere).
#
#   bash tests/bench/profile.sh                          # tidepool, POST, 64 connections
#   SERVER=baseline SCENARIO=get CONNS=256 bash tests/bench/profile.sh
#
# Environment: SERVER (tidepool | baseline), SCENARIO (get | post), CONNS (64),
# DURATION (measured seconds, default 15), WARMUP (3), TOP (functions shown, 45),
# LOG_LEVEL (tidepool's --log-level, default warn; logs go to a temp file).
# The server (built RelWithDebInfo in build-profile/) runs under callgrind on
# core 0, wrk on core 1. Counters are zeroed after the warm-up and dumped right
# after the measured run, so start-up and shutdown are not in the profile.
# Requests are counted from the server's commit batch metrics (every request
# that reaches the store counts), and every number is also given per request.
# The profile is kept in build-profile/callgrind/ for callgrind_annotate or
# kcachegrind.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SERVER=${SERVER:-tidepool}
SCENARIO=${SCENARIO:-post}
CONNS=${CONNS:-64}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
TOP=${TOP:-45}
LOG_LEVEL=${LOG_LEVEL:-warn}
BUILD=$REPO/build-profile
. "$HERE/callgrind.sh"
OUT=$BUILD/callgrind
TENANT=bench

say() { printf '%s\n' "$*" >&2; }
die() { say "profile: $*"; exit 1; }

SERVER_PID=
TMP=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  [ -z "$TMP" ] || rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in valgrind callgrind_control callgrind_annotate wrk taskset curl cmake cc; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian: valgrind, wrk, util-linux, curl)"
done
case $SERVER in tidepool | baseline) ;; *) die "SERVER must be tidepool or baseline" ;; esac
case $SCENARIO in get | post) ;; *) die "SCENARIO must be get or post" ;; esac

say "profile: building (RelWithDebInfo) in $BUILD"
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTP_LUA_STATIC=ON >/dev/null  # Lua named
cmake --build "$BUILD" --target tidepool -j"$(nproc)" >/dev/null
mkdir -p "$BUILD/bench-baseline" "$OUT"
for f in api http llhttp; do
  [ "$BUILD/bench-baseline/llhttp_$f.o" -nt "/usr/share/llhttp/$f.c" ] ||
    cc -O2 -g -w -I/usr/share/include/llhttp -c "/usr/share/llhttp/$f.c" -o "$BUILD/bench-baseline/llhttp_$f.o"
done
# shellcheck disable=SC2046
cc -std=c11 -O2 -g -Wall -Wextra -Werror -I/usr/share/include/llhttp $(pkg-config --cflags libuv sqlite3) \
  "$HERE/baseline.c" "$HERE/benchloop.c" "$BUILD"/bench-baseline/llhttp_*.o $(pkg-config --libs libuv sqlite3) \
  -o "$BUILD/bench-baseline/baseline"

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tidepool-profile.XXXXXX")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$TMP/tidepool.conf.lua" <<EOF
return {
  listen = "127.0.0.1:$port",
  data_dir = "$TMP/data",
  plugin_dirs = { "$REPO/tests/bench/plugins" },
  synchronous = "full",
  log_level = "warn",
  tenants = {
    { id = "$TENANT", token_secret = "bench-only-token-secret-0000000001", plugins = { bench = true } },
  },
}
EOF
name=$SERVER.$SCENARIO.$CONNS
[ "$SERVER" != tidepool ] || [ "$LOG_LEVEL" = warn ] || name=$name.$LOG_LEVEL
rm -f "$OUT/$name.out"*
if [ "$SERVER" = tidepool ]; then
  cmd=("$BUILD/tidepool" serve --config "$TMP/tidepool.conf.lua" --log-level "$LOG_LEVEL")
  prefix=tidepool
else
  cmd=("$BUILD/bench-baseline/baseline" "$port" "$TMP/baseline.db")
  prefix=baseline
fi
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.out" "${cmd[@]}" \
  2>"$TMP/server.log" &
SERVER_PID=$!
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; die "the server did not start"; }
  sleep 0.1
done

script=()
url=http://127.0.0.1:$port/v1/$TENANT/bench/rows/4242
if [ "$SCENARIO" = post ]; then
  script=(-s "$HERE/post.lua")
  url=http://127.0.0.1:$port/v1/$TENANT/bench/rows
fi
batch() {
  curl -fsS "http://127.0.0.1:$port/metrics" | awk -v p="$prefix" '
    $1 == p "_commit_batch_size_sum" { s = $2 } $1 == p "_commit_batch_size_count" { c = $2 }
    END { printf "%d %d\n", s, c }'
}
say "profile: warm-up ${WARMUP}s"
taskset -c 1 wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${script[@]}" "$url" >/dev/null
callgrind_control -z "$SERVER_PID" >/dev/null
read -r s0 c0 < <(batch)
say "profile: $SERVER ${SCENARIO^^} $CONNS connections, ${DURATION}s under callgrind"
taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "${script[@]}" "$url" >"$TMP/wrk.txt"
read -r s1 c1 < <(batch)
callgrind_control -d "$SERVER_PID" >/dev/null
for _ in $(seq 1 50); do [ -s "$OUT/$name.out.1" ] && break; sleep 0.1; done
requests=$((s1 - s0)); commits=$((c1 - c0))
[ "$requests" -gt 0 ] || die "no requests reached the store"

file=$OUT/$name.out.1
callgrind_annotate --auto=no --inclusive=yes "$file" >"$OUT/$name.inclusive.txt" 2>/dev/null
callgrind_annotate --auto=no --threshold=100 "$file" >"$OUT/$name.self.txt" 2>/dev/null
callgrind_annotate --auto=no --inclusive=yes --tree=calling "$file" >"$OUT/$name.tree.txt" 2>/dev/null
total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$OUT/$name.inclusive.txt")

echo
echo "$SERVER ${SCENARIO^^} $CONNS connections: $requests requests, $commits commits (mean batch" \
  "$(awk -v r="$requests" -v c="$commits" 'BEGIN { printf "%.1f", c ? r / c : 0 }')), $total instructions," \
  "$(awk -v t="$total" -v r="$requests" 'BEGIN { printf "%.0f", t / r }') per request"
echo
echo "inclusive (the function and everything it calls), top $TOP:"
printf '%14s %7s %9s  %s\n' Ir "" Ir/req function
cg_top "$OUT/$name.inclusive.txt" "$TOP" "$requests" "$total"
echo
echo "self (instructions in the function itself), top 25:"
printf '%14s %7s %9s  %s\n' Ir "" Ir/req function
cg_top "$OUT/$name.self.txt" 25 "$requests" "$total" 1
echo
echo "profile: $file (callgrind_annotate --inclusive=yes --tree=calling $file)"
