#!/usr/bin/env bash
# tests/bench/soak.sh - on-demand soak: tidepool (Release, synchronous=full)
# under steady write load for DURATION seconds (default 1800: 30 minutes),
# sampling every INTERVAL seconds the host's RSS, its open connections and a
# separate client's GET latency. Prints one line per sample, then a summary:
# RSS at the first sample and at the end, its peak, and the probe latencies.
# RSS that keeps climbing after the first minutes is a leak; a probe latency
# that grows is a host that falls behind.
#
#   bash tests/bench/soak.sh                       # 30 minutes
#   DURATION=120 INTERVAL=10 bash tests/bench/soak.sh
#
# Environment: DURATION, INTERVAL (default 30), CONNS (default 256), SERVER_CPU
# (default 0), WRK_CPU (default 1), BENCH_TMPDIR (a real disk), KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DURATION=${DURATION:-1800}
INTERVAL=${INTERVAL:-30}
CONNS=${CONNS:-256}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
BUILD=$REPO/build-bench

say() { printf '%s\n' "$*" >&2; }
die() { say "soak: $*"; exit 1; }

SERVER_PID= WRK_PID= TMP=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$WRK_PID" ] && { kill -TERM "$WRK_PID" 2>/dev/null || true; wait "$WRK_PID" 2>/dev/null || true; }
  [ -n "$SERVER_PID" ] && { kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then say "soak: kept $TMP"; else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash "$REPO/tools/bootstrap.sh" --bench
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target tidepool -j"$(nproc)" >/dev/null

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tidepool-soak.XXXXXX")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$TMP/tidepool.conf.lua" <<CONF
return {
  listen = "127.0.0.1:$PORT", data_dir = "$TMP/data", synchronous = "full", log_level = "warn",
  plugin_dirs = { "$REPO/tests/bench/plugins" }, limits = { max_connections = 10000 },
  tenants = { { id = "bench", token_secret = "soak-only-token-secret-0000000001",
                plugins = { bench = true } } },
}
CONF
taskset -c "$SERVER_CPU" "$BUILD/tidepool" serve --config "$TMP/tidepool.conf.lua" 2>"$TMP/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" || die "tidepool did not come up"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
metric() { curl -fsS "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'; }
probe_ms() { curl -fsS -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/v1/bench/bench/rows/1" |
             awk '{ printf "%.2f", $1 * 1000 }'; }

say "soak: ${DURATION}s of POST load at $CONNS connections; a sample every ${INTERVAL}s"
taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$HERE/post.lua" \
  "http://127.0.0.1:$PORT/v1/bench/bench/rows" >"$TMP/wrk.txt" &
WRK_PID=$!
printf '%8s %10s %8s %10s\n' seconds rss_MiB conns probe_ms
start=$(date +%s)
: >"$TMP/samples"
while kill -0 "$WRK_PID" 2>/dev/null; do
  sleep "$INTERVAL"
  kill -0 "$SERVER_PID" 2>/dev/null || die "tidepool died; log in $TMP/server.log"
  kill -0 "$WRK_PID" 2>/dev/null || break
  s=$(( $(date +%s) - start ))
  r=$(rss_kib) c=$(metric tidepool_open_connections) p=$(probe_ms)
  printf '%8d %10.1f %8d %10s\n' "$s" "$(awk -v k="$r" 'BEGIN { print k / 1024 }')" "$c" "$p"
  echo "$s $r $p" >>"$TMP/samples"
done
wait "$WRK_PID" || die "wrk failed"
WRK_PID=
grep -E "Requests/sec|Latency |Non-2xx|Socket errors" "$TMP/wrk.txt" || true
awk 'NR == 1 { first = $2 } { last = $2; if ($2 > peak) peak = $2 }
     END { if (NR == 0) { print "soak: no samples (DURATION shorter than INTERVAL)"; exit }
           printf "RSS: first sample %.1f MiB, last %.1f MiB, peak %.1f MiB\n", first / 1024, last / 1024, peak / 1024 }' "$TMP/samples"
sort -n -k3 "$TMP/samples" | awk '{ p[NR] = $3 } END { if (NR) printf "probe GET: median %.2f ms, worst %.2f ms over %d samples\n", p[int((NR + 1) / 2)], p[NR], NR }'
