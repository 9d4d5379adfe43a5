#!/usr/bin/env bash
# tests/bench/outbound.sh - on-demand (issue 19): calls out while serving.
#
# A tidepool host makes tp.http calls to a local upstream (a second tidepool
# process answering GET /healthz in C, so the upstream is never the limit)
# at a target rate, and wrk measures the same host's inbound p99 on a plain
# read (GET /v1/bench/catalog/products) beside them. The same read is
# measured first with no calls out: the claim is p99 with calls <= 2x idle.
#
#   bash tests/bench/outbound.sh
#   RATE=5000 DURATION=10 bash tests/bench/outbound.sh
#
# Two ways to read, the same in both runs: as fast as wrk goes (the default:
# the host's core is saturated, so p99 counts the queue as much as any wait),
# or at a fixed rate, READ_RATE reads a second (wrk waits CONNS*1000/READ_RATE
# ms between a connection's reads): p99 is then what a read waits at a load
# the host has room for, the way a brand's traffic meets it.
#
# wrk shares its core with the upstream and the driver; they run at nice
# LOAD_NICE (default 19), else wrk waits behind the upstream's 5,000 answers a
# second and counts that wait as the host's latency (at equal priority the
# busy p99 was 0.2-0.5 ms higher).
#
# Environment: RATE (calls out per second to aim at, default 5000), DURATION
# (s, default 10), CONNS (wrk connections for the read, default 16),
# READ_RATE (reads a second, default 0: as fast as they go), SYNC (the host's
# synchronous, default full; off shows what the commits' fsync costs),
# LOAD_NICE (default 19), SERVER_CPU (default 0), LOAD_CPU (wrk, the driver
# and the upstream, default 1), BUILD (Release build dir, default build-bench),
# REPEAT (idle-then-busy pairs, default 1; with more, the medians: the idle
# p99 is the noisy one, so a single pair's ratio moves by a third).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
RATE=${RATE:-5000}
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
READ_RATE=${READ_RATE:-0}
REPEAT=${REPEAT:-1}
SYNC=${SYNC:-full}
LOAD_NICE=${LOAD_NICE:-19}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BUILD=${BUILD:-$REPO/build-bench}
KEY=bench-only-admin-key-000000000001

for tool in wrk taskset curl cmake python3; do command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }; done
echo "bench: building tidepool (Release) in $BUILD" >&2
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target tidepool -j"$(nproc)" >/dev/null
BIN=$BUILD/tidepool
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tidepool-outbound.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port)
HOST_PORT=$(free_port)

cat >"$TMP/upstream.conf.lua" <<CONF
return { listen = "127.0.0.1:$UP_PORT", data_dir = "$TMP/up", plugin_dirs = { "$REPO/plugins" },
  log_level = "error", limits = { max_connections = 10000 },
  tenants = { { id = "up", token_secret = "bench-only-token-secret-0000000001", plugins = {} } } }
CONF
cat >"$TMP/host.conf.lua" <<CONF
return { listen = "127.0.0.1:$HOST_PORT", data_dir = "$TMP/host",
  plugin_dirs = { "$REPO/plugins", "$REPO/tests/e2e/plugins" }, synchronous = "$SYNC",
  log_level = "error", limits = { max_connections = 10000 },
  tenants = { { id = "bench", token_secret = "bench-only-token-secret-0000000001", api_keys = { "$KEY" },
    plugins = { catalog = {}, caller = {} },
    http = { up = { url = "http://127.0.0.1:$UP_PORT", plugins = { "caller" }, timeout_ms = 5000,
                    max_attempts = 1 } } } } }
CONF
taskset -c "$LOAD_CPU" nice -n "$LOAD_NICE" "$BIN" serve --config "$TMP/upstream.conf.lua" 2>"$TMP/up.log" &
PIDS+=($!)
taskset -c "$SERVER_CPU" "$BIN" serve --config "$TMP/host.conf.lua" 2>"$TMP/host.log" &
PIDS+=($!)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$HOST_PORT/healthz" >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$UP_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
URL=http://127.0.0.1:$HOST_PORT/v1/bench/catalog/products

read_p99() {  # the read's req/s and p99 over DURATION
  local paced=()
  if [ "$READ_RATE" -gt 0 ]; then  # wrk's delay() is in whole ms, per connection
    echo "function delay() return $(( (CONNS * 1000 + READ_RATE / 2) / READ_RATE )) end" >"$TMP/paced.lua"
    paced=(-s "$TMP/paced.lua")
  fi
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" "${paced[@]}" --latency "$URL" >"$TMP/wrk.txt"
  local rps p99
  rps=$(awk '/Requests\/sec/ { print $2 }' "$TMP/wrk.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$TMP/wrk.txt")
  echo "$rps $p99"
}

calls_ok() {
  curl -s "http://127.0.0.1:$HOST_PORT/metrics" |
    awk -F' ' '/^tidepool_calls_out_total\{tenant="bench",to="up",result="ok"\}/ { print $2 }' | head -1
}

# wrk's 485.00us / 1.23ms / 2.00s as microseconds
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else print n * 1000000 }'; }

# One pair: the idle read, then the read while calling out. Prints
# "idle_rps idle_p99 busy_rps busy_p99 calls_per_s".
one_pair() {
  echo "bench: idle read" >&2
  local idle busy before after t0 t1 driver
  idle=$(read_p99)
  before=$(calls_ok); before=${before:-0}
  echo "bench: the read while calling out at $RATE/s" >&2
  # the driver: 50 calls per POST, RATE/50 POSTs a second, for DURATION + 1 s
  taskset -c "$LOAD_CPU" nice -n "$LOAD_NICE" python3 - "$HOST_PORT" "$RATE" "$((DURATION + 1))" <<'PY' &
import http.client, json, sys, time
port, rate, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
per, body = 50, json.dumps({"to": "up", "path": "/healthz", "times": 50, "no_reply": True})
c = http.client.HTTPConnection("127.0.0.1", port)
start, sent = time.monotonic(), 0
while time.monotonic() - start < seconds:
    due = start + sent * per / rate
    if due > time.monotonic():
        time.sleep(due - time.monotonic())
    c.request("POST", "/v1/bench/caller/calls", body, {"Content-Type": "application/json"})
    c.getresponse().read()
    sent += 1
PY
  driver=$!
  PIDS+=("$driver")
  sleep 1
  t0=$(date +%s.%N)
  busy=$(read_p99)
  t1=$(date +%s.%N)
  wait "$driver" || true
  sleep 2
  after=$(calls_ok); after=${after:-0}
  echo "$idle $busy $(python3 -c "print(round(($after - $before) / ($t1 - $t0 + 2)))")"
}

PAIRS=()
for _ in $(seq 1 "$REPEAT"); do PAIRS+=("$(one_pair)"); done

echo
echo "calls out while serving: commit $(git -C "$REPO" rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ), ${DURATION}s per run"
echo "machine: $(nproc) cores; host on core $SERVER_CPU, wrk + driver + upstream (nice $LOAD_NICE) on core $LOAD_CPU;" \
  "synchronous=$SYNC; reads: $([ "$READ_RATE" -gt 0 ] && echo "$READ_RATE/s aimed at" || echo "as fast as they go")"
echo
echo "pair | idle read/s | idle p99 | busy read/s | busy p99 | calls out/s (ok) | p99 ratio"
echo "-----+-------------+----------+-------------+----------+------------------+----------"
ratios=() idles=() busies=()
i=0
for pair in "${PAIRS[@]}"; do
  read -r irps ip99 brps bp99 calls <<<"$pair"
  i=$((i + 1))
  iu=$(to_us "$ip99"); bu=$(to_us "$bp99")
  ratio=$(awk -v a="$bu" -v b="$iu" 'BEGIN { printf "%.2f", a / b }')
  ratios+=("$ratio"); idles+=("$iu"); busies+=("$bu")
  printf "%4d | %11s | %8s | %11s | %8s | %16s | %8sx\n" "$i" "$irps" "$ip99" "$brps" "$bp99" "$calls" "$ratio"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
if [ "$REPEAT" -gt 1 ]; then
  echo
  echo "medians of $REPEAT pairs: idle p99 $(median "${idles[@]}") us, busy p99 $(median "${busies[@]}") us;" \
    "the ratio's median $(median "${ratios[@]}")x (the target: <= 2x)"
fi
echo
echo "\$ RATE=$RATE DURATION=$DURATION CONNS=$CONNS READ_RATE=$READ_RATE SYNC=$SYNC REPEAT=$REPEAT bash tests/bench/outbound.sh"
