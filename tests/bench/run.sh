#!/usr/bin/env bash
# tests/bench/run.sh - on-demand benchmark: tidepool against a bare
# libuv + llhttp + SQLite server with the same group commit (baseline.c).
#
#   bash tests/bench/run.sh                 # DURATION=10 s per run
#   DURATION=30 CONNS="64 256 1024" bash tests/bench/run.sh
#
# Environment (all optional):
#   DURATION    seconds each measured wrk run lasts (default 10)
#   WARMUP      seconds of unmeasured load before each run (default 1; 0 = none)
#   CONNS       connection counts to run (default "64 256")
#   SCENARIOS   "get post" by default
#   LOG_INFO    1 (default): also run tidepool at log_level=info, 64 connections
#   SERVER_CPU  core the server is pinned to (default 0)
#   WRK_CPU     core wrk is pinned to (default 1)
#   BENCH_TMPDIR  where the databases go (default $TMPDIR or /tmp). Must be a real
#               disk: on tmpfs fsync is free and the POST numbers mean nothing.
#   KEEP_TMP    1: keep the temporary directory (databases, logs, raw wrk output)
#
# Every server this script starts is stopped when it exits, Ctrl-C included.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-"64 256"}
SCENARIOS=${SCENARIOS:-"get post"}
LOG_INFO=${LOG_INFO:-1}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
BUILD=$REPO/build-bench
TENANT=bench

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

# ---- cleanup: stop whatever server is running, remove the temp dir

SERVER_PID=
TMP=
stop_server() {
  local pid=$SERVER_PID
  [ -n "$pid" ] || return 0
  SERVER_PID=
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do  # 10 s for a graceful stop
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "bench: server $pid did not stop on SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_server
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then say "bench: kept $TMP"
    else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "bench: interrupted"; exit 130' INT
trap 'exit 143' TERM

# ---- dependencies

if [ -f "$REPO/tools/bootstrap.sh" ]; then
  if ! bash "$REPO/tools/bootstrap.sh" --bench; then
    say "bench: tools/bootstrap.sh --bench failed; continuing if the tools are present"
  fi
elif ! command -v wrk >/dev/null; then
  [ "$(id -u)" -eq 0 ] || die "wrk is missing: apt-get install wrk (as root)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null
fi
for tool in wrk taskset curl cmake cc pkg-config; do
  command -v "$tool" >/dev/null || die "$tool is missing (tools/bootstrap.sh --bench installs it)"
done
[ "$(nproc)" -ge 2 ] || say "bench: warning: fewer than 2 cores; server and wrk will share one"

# ---- builds

say "bench: building tidepool (Release) in $BUILD"
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target tidepool -j"$(nproc)" >/dev/null
TIDEPOOL=$BUILD/tidepool

say "bench: building the baseline"
LLHTTP_SRC=/usr/share/llhttp
LLHTTP_INC=/usr/share/include/llhttp
BL=$BUILD/bench-baseline
mkdir -p "$BL"
for f in api http llhttp; do  # generated third-party C: not ours to warn about
  [ "$BL/llhttp_$f.o" -nt "$LLHTTP_SRC/$f.c" ] ||
    cc -O2 -w -I"$LLHTTP_INC" -c "$LLHTTP_SRC/$f.c" -o "$BL/llhttp_$f.o"
done
# shellcheck disable=SC2046
cc -std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
  -I"$LLHTTP_INC" $(pkg-config --cflags libuv sqlite3) \
  "$HERE/baseline.c" "$BL"/llhttp_*.o $(pkg-config --libs libuv sqlite3) -o "$BL/baseline"
BASELINE=$BL/baseline

# ---- the temporary config

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tidepool-bench.XXXXXX")
CONF=$TMP/tidepool.conf.lua
cat >"$CONF" <<EOF
-- written by tests/bench/run.sh; the port and data dir are overridden per run
return {
  listen = "127.0.0.1:0",
  data_dir = "$TMP/data",
  plugin_dirs = { "$REPO/tests/bench/plugins" },
  synchronous = "full",
  log_level = "warn",   -- request logs are info: they would dominate a benchmark
  limits = { max_connections = 10000 },
  tenants = {
    { id = "$TENANT", token_secret = "bench-only-token-secret-0000000001",
      plugins = { bench = true } },
  },
}
EOF
"$TIDEPOOL" config --config "$CONF" >/dev/null || die "the generated config does not load"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    2>/dev/null || echo $((20000 + RANDOM % 20000))
}

# ---- one run

# start_server NAME DIR PORT [extra tidepool args...]
start_server() {
  local name=$1 dir=$2 port=$3
  shift 3
  mkdir -p "$dir"
  case $name in
    tidepool*)
      taskset -c "$SERVER_CPU" "$TIDEPOOL" serve --config "$CONF" --listen "127.0.0.1:$port" \
        --data-dir "$dir/data" "$@" 2>"$dir/server.log" &
      ;;
    baseline)
      taskset -c "$SERVER_CPU" "$BASELINE" "$port" "$dir/baseline.db" 2>"$dir/server.log" &
      ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/server.log" >&2 || true
  die "$name did not come up on port $port"
}

# metric NAME PORT: the value of one unlabelled metric from /metrics (0 if absent)
metric() {
  curl -fsS "http://127.0.0.1:$2/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'
}

# wrk latency ("1.23ms", "850.00us", "1.02s") to milliseconds
to_ms() {
  awk -v x="$1" 'BEGIN {
    if (x ~ /us$/) printf "%.2f", substr(x, 1, length(x) - 2) / 1000;
    else if (x ~ /ms$/) printf "%.2f", substr(x, 1, length(x) - 2);
    else if (x ~ /s$/) printf "%.2f", substr(x, 1, length(x) - 1) * 1000;
    else printf "?" }'
}

RESULTS=()   # "server|scenario|conns|rps|p50|p99"
NOTES=()
RUN=0

# bench NAME SCENARIO CONNS [extra tidepool args...]
bench() {
  local name=$1 scenario=$2 conns=$3
  shift 3
  RUN=$((RUN + 1))
  local dir=$TMP/run-$RUN-$name-$scenario-$conns port url script=() prefix
  dir=${dir// /_}
  port=$(free_port)
  case $scenario in
    get)  url="http://127.0.0.1:$port/v1/$TENANT/bench/rows/4242" ;;
    post) url="http://127.0.0.1:$port/v1/$TENANT/bench/rows"; script=(-s "$HERE/post.lua") ;;
  esac
  [ "$name" = baseline ] && prefix=baseline || prefix=tidepool
  start_server "$name" "$dir" "$port" "$@"
  if [ "$WARMUP" != 0 ]; then
    taskset -c "$WRK_CPU" wrk -t1 -c"$conns" -d"${WARMUP}s" "${script[@]}" "$url" >/dev/null
  fi
  local sum0 cnt0
  sum0=$(metric "${prefix}_commit_batch_size_sum" "$port")
  cnt0=$(metric "${prefix}_commit_batch_size_count" "$port")
  say "bench: $name ${scenario^^} $conns connections, ${DURATION}s"
  taskset -c "$WRK_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" --latency "${script[@]}" "$url" \
    >"$dir/wrk.txt"
  local sum1 cnt1
  sum1=$(metric "${prefix}_commit_batch_size_sum" "$port")
  cnt1=$(metric "${prefix}_commit_batch_size_count" "$port")
  stop_server

  local out=$dir/wrk.txt rps p50 p99 total bad sock
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  total=$(awk '/requests in/ { print $1 }' "$out")
  bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  sock=$(awk '/Socket errors:/ { sub(/^ *Socket errors: */, ""); print }' "$out")
  [ -n "$rps" ] || { cat "$out" >&2; die "could not parse wrk's output"; }
  RESULTS+=("$name|${scenario^^} row|$conns|$rps|$p50|$p99")
  [ -z "$bad" ] || NOTES+=("WARNING $name ${scenario^^} $conns: $bad of $total responses were not 2xx")
  [ -z "$sock" ] || NOTES+=("WARNING $name ${scenario^^} $conns: socket errors: $sock")
  if [ "$scenario" = post ]; then
    local line
    line=$(awk -v s0="$sum0" -v c0="$cnt0" -v s1="$sum1" -v c1="$cnt1" -v n="$total" \
      -v who="$name POST $conns conns" 'BEGIN {
        c = c1 - c0; s = s1 - s0
        printf "%s: %d durable commits in %s requests, mean batch %.1f requests/commit, %.0f commits/s", \
          who, c, n, c ? s / c : 0, c / '"$DURATION"' }')
    say "bench:   $line"
    NOTES+=("$line")
  fi
  if [ "$name" = "tidepool (info)" ]; then
    NOTES+=("$name ${scenario^^} $conns: $(wc -c <"$dir/server.log") bytes of log written to a file")
  fi
}

# ---- the runs

for server in tidepool baseline; do
  for scenario in $SCENARIOS; do
    for conns in $CONNS; do bench "$server" "$scenario" "$conns"; done
  done
done
if [ "$LOG_INFO" = 1 ]; then
  for scenario in $SCENARIOS; do bench "tidepool (info)" "$scenario" 64 --log-level info; done
fi

# ---- the report

rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
git -C "$REPO" diff --quiet HEAD 2>/dev/null || rev="$rev+dirty"
echo
echo "tidepool bench: commit $rev, $(date -u +%Y-%m-%dT%H:%MZ), ${DURATION}s per run (warm-up ${WARMUP}s)"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)"
echo "server on core $SERVER_CPU, wrk -t1 on core $WRK_CPU; data on $(df -T "$TMP" | awk 'NR == 2 { print $2 " (" $1 ")" }'); sqlite $(pkg-config --modversion sqlite3), libuv $(pkg-config --modversion libuv)"
echo
printf '%-16s | %-8s | %5s | %9s | %8s | %8s\n' server scenario conns req/s "p50 ms" "p99 ms"
printf '%s\n' "-----------------+----------+-------+-----------+----------+---------"
for r in "${RESULTS[@]}"; do
  IFS='|' read -r s sc c rps p50 p99 <<<"$r"
  printf '%-16s | %-8s | %5s | %9s | %8s | %8s\n' "$s" "$sc" "$c" "$rps" "$p50" "$p99"
done
echo
echo "tidepool / baseline:"
for r in "${RESULTS[@]}"; do
  IFS='|' read -r s sc c rps p50 p99 <<<"$r"
  [ "$s" = tidepool ] || continue
  for b in "${RESULTS[@]}"; do
    IFS='|' read -r bs bsc bc brps bp50 bp99 <<<"$b"
    [ "$bs" = baseline ] && [ "$bsc" = "$sc" ] && [ "$bc" = "$c" ] || continue
    awk -v sc="$sc" -v c="$c" -v a="$rps" -v b="$brps" -v a50="$p50" -v b50="$bp50" \
      -v a99="$p99" -v b99="$bp99" 'BEGIN {
        printf "  %-8s %4s conns: req/s %.2f (%.0f%% of baseline), p50 x%.2f, p99 x%.2f\n",
          sc, c, a / b, 100 * a / b, b50 > 0 ? a50 / b50 : 0, b99 > 0 ? a99 / b99 : 0 }'
  done
done
for r in "${RESULTS[@]}"; do
  IFS='|' read -r s sc c rps _ <<<"$r"
  [ "$s" = "tidepool (info)" ] || continue
  for b in "${RESULTS[@]}"; do
    IFS='|' read -r bs bsc bc brps _ <<<"$b"
    [ "$bs" = tidepool ] && [ "$bsc" = "$sc" ] && [ "$bc" = "$c" ] || continue
    awk -v sc="$sc" -v c="$c" -v a="$rps" -v b="$brps" 'BEGIN {
      printf "  logging: %-8s %s conns at log_level=info runs at %.0f%% of log_level=warn\n",
        sc, c, 100 * a / b }'
  done
done
echo
for n in "${NOTES[@]}"; do echo "$n"; done
