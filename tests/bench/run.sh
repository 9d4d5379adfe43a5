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
#   REPEAT      runs per server/scenario/connections (default 1); the table shows
#               the run with the median req/s, and the min-max of all of them
#   LOG_INFO    1 (default): also run tidepool at log_level=info (first CONNS value)
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
REPEAT=${REPEAT:-1}
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
WRK_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$WRK_PID" ]; then kill -TERM "$WRK_PID" 2>/dev/null || true; wait "$WRK_PID" 2>/dev/null || true; fi
  stop_server
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    # kept on request, or after a failure (not after Ctrl-C) for its logs
    if [ "${KEEP_TMP:-0}" = 1 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ]; }; then
      say "bench: kept $TMP"
    else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "bench: interrupted"; exit 130' INT
trap 'say "bench: terminated"; exit 143' TERM

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
  "$HERE/baseline.c" "$HERE/benchloop.c" "$BL"/llhttp_*.o $(pkg-config --libs libuv sqlite3) -o "$BL/baseline"
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

# run_wrk ARGS...: wrk pinned to its core. Run in the background and waited
# for, so that a signal to this script runs its trap at once (bash defers traps
# until a foreground child exits).
run_wrk() {
  local st=0
  taskset -c "$WRK_CPU" wrk "$@" &
  WRK_PID=$!
  wait "$WRK_PID" || st=$?
  WRK_PID=
  [ "$st" -eq 0 ] || die "wrk failed (exit status $st)"
}

# server_alive NAME DIR: after a run, the server must still be up.
server_alive() {
  kill -0 "$SERVER_PID" 2>/dev/null && return 0
  local st=0
  wait "$SERVER_PID" || st=$?
  SERVER_PID=
  if [ "$st" -eq 0 ]; then say "bench: $1 was stopped by a signal: interrupted"; exit 130; fi
  tail -20 "$2/server.log" >&2 || true
  die "$1 died during the run (exit status $st); log in $2/server.log"
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

RESULTS=$TMP/results.tsv   # one line per measured run
RUN=0
CLK_TCK=$(getconf CLK_TCK)

# cpu_seconds PID: user + system CPU time the process has used so far
cpu_seconds() {
  awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}

# children_cpu VAR: user + system CPU seconds of this shell's finished children
# (bash's times builtin, which must run in this shell, not in a $(...)
# subshell); the difference around a wrk run is wrk's CPU time.
children_cpu() {
  times >"$TMP/times"
  printf -v "$1" '%s' "$(awk 'NR == 2 { t = 0
    for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
    printf "%.2f", t }' "$TMP/times")"
}

# bench NAME SCENARIO CONNS REP [extra tidepool args...]
bench() {
  local name=$1 scenario=$2 conns=$3 rep=$4
  shift 4
  RUN=$((RUN + 1))
  local dir=$TMP/run-$RUN-$name-$scenario-$conns port url script=() prefix
  dir=${dir// /_}
  dir=${dir//[()]/}
  port=$(free_port)
  case $scenario in
    get)  url="http://127.0.0.1:$port/v1/$TENANT/bench/rows/4242" ;;
    post) url="http://127.0.0.1:$port/v1/$TENANT/bench/rows"; script=(-s "$HERE/post.lua") ;;
  esac
  [ "$name" = baseline ] && prefix=baseline || prefix=tidepool
  start_server "$name" "$dir" "$port" "$@"
  if [ "$WARMUP" != 0 ]; then
    run_wrk -t1 -c"$conns" -d"${WARMUP}s" "${script[@]}" "$url" >/dev/null
  fi
  local sum0 cnt0 cpu0 cpu1 sum1 cnt1
  sum0=$(metric "${prefix}_commit_batch_size_sum" "$port")
  cnt0=$(metric "${prefix}_commit_batch_size_count" "$port")
  say "bench: [$RUN/$NRUNS] $name ${scenario^^} $conns connections, ${DURATION}s"
  local wcpu0 wcpu1
  cpu0=$(cpu_seconds "$SERVER_PID")
  children_cpu wcpu0
  run_wrk -t1 -c"$conns" -d"${DURATION}s" --latency "${script[@]}" "$url" >"$dir/wrk.txt"
  children_cpu wcpu1
  server_alive "$name" "$dir"
  cpu1=$(cpu_seconds "$SERVER_PID")
  sum1=$(metric "${prefix}_commit_batch_size_sum" "$port")
  cnt1=$(metric "${prefix}_commit_batch_size_count" "$port")
  stop_server

  local out=$dir/wrk.txt rps p50 p99 total bad sock logbytes
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  total=$(awk '/requests in/ { print $1 }' "$out")
  bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  sock=$(awk '/Socket errors:/ { sub(/^ *Socket errors: */, ""); print }' "$out")
  if [ -z "$rps" ] || [ -z "$total" ]; then cat "$out" >&2; die "could not parse wrk's output"; fi
  [ -z "$bad" ] || say "bench: WARNING: $bad of $total responses were not 2xx"
  [ -z "$sock" ] || say "bench: WARNING: socket errors: $sock"
  logbytes=$(wc -c <"$dir/server.log")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${scenario^^}" "$conns" \
    "$rep" "$rps" "$p50" "$p99" "$total" "${bad:-0}" "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')" \
    "$(awk -v a="$cnt0" -v b="$cnt1" 'BEGIN { print b - a }')" \
    "$(awk -v a="$sum0" -v b="$sum1" 'BEGIN { print b - a }')" "$logbytes" "${sock:-}" \
    "$(awk -v a="$wcpu0" -v b="$wcpu1" 'BEGIN { print b - a }')" >>"$RESULTS"
  if [ "$scenario" = post ]; then
    awk -v s0="$sum0" -v c0="$cnt0" -v s1="$sum1" -v c1="$cnt1" -v n="$total" -v d="$DURATION" \
      -v who="$name POST $conns conns" 'BEGIN { c = c1 - c0; s = s1 - s0
        printf "bench:   %s: %d durable commits, %.0f commits/s, mean batch %.1f requests (%s requests)\n", who, c, c / d, c ? s / c : 0, n }' >&2
  fi
}

# ---- the runs: tidepool and baseline back to back, so that drift on a shared
# machine hits both sides of a ratio alike

LOG_CONNS=${CONNS%% *}   # the info-logging run uses the first connection count
NRUNS=0
for scenario in $SCENARIOS; do
  for conns in $CONNS; do
    n=2
    [ "$LOG_INFO" = 1 ] && [ "$conns" = "$LOG_CONNS" ] && n=3
    NRUNS=$((NRUNS + n * REPEAT))
  done
done
for scenario in $SCENARIOS; do
  for conns in $CONNS; do
    for rep in $(seq 1 "$REPEAT"); do
      bench tidepool "$scenario" "$conns" "$rep"
      bench baseline "$scenario" "$conns" "$rep"
      if [ "$LOG_INFO" = 1 ] && [ "$conns" = "$LOG_CONNS" ]; then
        bench "tidepool (info)" "$scenario" "$conns" "$rep" --log-level info
      fi
    done
  done
done

# ---- the report

rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
git -C "$REPO" diff --quiet HEAD 2>/dev/null || rev="$rev+dirty"
echo
echo "tidepool bench: commit $rev, $(date -u +%Y-%m-%dT%H:%MZ), ${DURATION}s per run (warm-up ${WARMUP}s), $REPEAT run(s) each"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)"
echo "server on core $SERVER_CPU, wrk -t1 on core $WRK_CPU; data on $(df -T "$TMP" | awk 'NR == 2 { print $2 " (" $1 ")" }'); sqlite $(pkg-config --modversion sqlite3), libuv $(pkg-config --modversion libuv)"
echo
# Per server/scenario/conns: the run with the median req/s (its p50 and p99),
# server CPU over all runs; commits and batch sizes summed over all runs.
awk -F'\t' -v reps="$REPEAT" -v dur="$DURATION" '
  {
    k = $1 SUBSEP $2 SUBSEP $3
    if (!(k in n)) { order[++nk] = k; name[k] = $1; sc[k] = $2; cn[k] = $3 }
    i = ++n[k]; rps[k, i] = $5; p50[k, i] = $6; p99[k, i] = $7
    req[k] += $8; bad[k] += $9; cpu[k] += $10; commits[k] += $11; batch[k] += $12; logb[k] += $13; wcpu[k] += $15
  }
  function median(k,    i, j, t, idx) {
    for (i = 1; i <= n[k]; i++) idx[i] = i
    for (i = 2; i <= n[k]; i++)
      for (j = i; j > 1 && rps[k, idx[j]] < rps[k, idx[j - 1]]; j--) { t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t }
    lo[k] = rps[k, idx[1]]; hi[k] = rps[k, idx[n[k]]]
    return idx[int((n[k] + 1) / 2)]
  }
  function find(nm, s, c) { return nm SUBSEP s SUBSEP c }
  END {
    for (o = 1; o <= nk; o++) { k = order[o]; m[k] = median(k) }
    fmt = "%-16s | %-8s | %5s | %9s | %8s | %8s | %6s | %11s | %7s"
    printf fmt (reps > 1 ? " | %s" : "") "\n", "server", "scenario", "conns", "req/s", "p50 ms", "p99 ms", "cpu %", "cpu us/req", "wrk cpu", "req/s min-max"
    print "-----------------+----------+-------+-----------+----------+----------+--------+-------------+--------" (reps > 1 ? "+--------------" : "")
    for (o = 1; o <= nk; o++) {
      k = order[o]; i = m[k]
      line = sprintf(fmt, name[k], sc[k] " row", cn[k], rps[k, i], p50[k, i], p99[k, i],
                     sprintf("%.0f", 100 * cpu[k] / (n[k] * dur)), sprintf("%.1f", 1e6 * cpu[k] / req[k]), sprintf("%.0f%%", 100 * wcpu[k] / (n[k] * dur)))
      if (reps > 1) line = line sprintf(" | %s-%s", lo[k], hi[k])
      print line
    }
    print ""
    print "tidepool / baseline (same scenario and connections):"
    for (o = 1; o <= nk; o++) {
      k = order[o]; if (name[k] != "tidepool") continue
      b = find("baseline", sc[k], cn[k]); if (!(b in n)) continue
      i = m[k]; j = m[b]
      r50 = (p50[b, j] > 0) ? p50[k, i] / p50[b, j] : 0
      r99 = (p99[b, j] > 0) ? p99[k, i] / p99[b, j] : 0
      rcpu = (cpu[b] > 0) ? (cpu[k] / req[k]) / (cpu[b] / req[b]) : 0
      printf "  %-4s row %4s conns: req/s %.2f, p50 x%.2f, p99 x%.2f, cpu per request x%.2f\n", sc[k], cn[k], rps[k, i] / rps[b, j], r50, r99, rcpu
    }
    for (o = 1; o <= nk; o++) {
      k = order[o]; if (name[k] != "tidepool (info)") continue
      w = find("tidepool", sc[k], cn[k]); if (!(w in n)) continue
      printf "  logging: %-4s row %s conns at log_level=info: req/s x%.2f of log_level=warn, %+.1f us cpu per request, %.0f bytes of log per request\n", sc[k], cn[k], rps[k, m[k]] / rps[w, m[w]], 1e6 * (cpu[k] / req[k] - cpu[w] / req[w]), logb[k] / req[k]
    }
    print ""
    print "durable commits during the measured POST runs (from /metrics, commit_batch_size _sum/_count):"
    for (o = 1; o <= nk; o++) {
      k = order[o]; if (sc[k] != "POST") continue
      mean = commits[k] ? batch[k] / commits[k] : 0
      printf "  %-16s POST %4s conns: %7d commits, %5.0f commits/s, mean batch %6.1f requests\n", name[k], cn[k], commits[k], commits[k] / (n[k] * dur), mean
    }
    for (o = 1; o <= nk; o++) { k = order[o]; if (bad[k]) printf "WARNING: %s %s %s: %d responses were not 2xx\n", name[k], sc[k], cn[k], bad[k] }
  }' "$RESULTS"
