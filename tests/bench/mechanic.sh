# tests/bench/mechanic.sh - what the per-mechanic benchmarks share; sourced by
# flash_sale.sh, group_buy.sh and bargain.sh (sidebyside.sh uses its helpers:
# tokens, write_requests, port_of, to_ms). Each of them sets, then calls
# bench_main:
#
#   NAME      short name (temp dir, messages)
#   TITLE     what one request does ("flash-sale buy")
#   UNIT      what the count() of a run counts ("orders", "helps")
#   PLUGINS   the bench tenant's plugins, a Lua table constructor
#   PATH_LUA  Lua source of path_of(k, arg): the path of request k (1-based)
#             for the run's argument arg; may use the global start_at(arg)
#             (default 0: where in the token list the run starts)
#   setup PORT        creates the campaign on a fresh host
#   count PORT        durable successes so far, read back from the admin API
#   run_arg BEFORE    the wrk script's argument for the measured run (the
#                     warm-up gets WARMUP_ARG, default 1)
#
# Every request is a different user with their own token (minted here, in
# Python, as core/base/token.h describes); requests are formatted once, up front,
# so wrk's own cost stays low. The table: req/s, p50, p99, non-2xx, the
# successes the database shows for the run and their rate, and the server's
# CPU time per success (every thread, user and system: /proc/PID/stat). With
# the server's core saturated, that last figure is what a change to the
# server's work shows first; the rate moves with it within this VM's noise.
#
# Environment: DURATION (s per run, default 10), WARMUP (s, default 1), CONNS
# (default "64 256"), USERS (distinct users, default 100000), SERVER_CPU
# (default 0), WRK_CPU (default 1), BUILD (Release build dir, default
# build-bench), BENCH_TMPDIR (a real disk; default $TMPDIR or /tmp),
# KEEP_TMP=1 keeps databases and logs, TENANT_EXTRA more keys of the bench
# tenant's table (Lua, e.g. "rate_limits = {...}": flash_sale_limits.sh).
#
# PROFILE=1 runs the server under valgrind's callgrind instead (a
# RelWithDebInfo build in build-profile/, one connection count, default 64):
# counters are zeroed after the warm-up and dumped after the measured run, and
# the table becomes instructions and bytes written to disk per success (the
# server's /proc/PID/io write_bytes: the WAL and checkpoints), then the top
# functions (tests/bench/callgrind.sh); the profile stays in build-profile/callgrind/.
# CALLGRIND_EXTRA adds options to valgrind's (e.g. --separate-callers=12: each
# function's costs by its chain of callers).
# WALPAGES=1 runs the server with walpages.c preloaded and prints, after the
# table, which tables and indexes its commits wrote to the WAL, in pages per
# commit (warm-up included; walpages.py names the pages).
set -euo pipefail

REPO=$(cd "$HERE/../.." && pwd)
PROFILE=${PROFILE:-0}
if [ "$PROFILE" = 1 ]; then
  BUILD=${BUILD:-$REPO/build-profile} CONNS=${CONNS:-64} DURATION=${DURATION:-15} WARMUP=${WARMUP:-3}
  . "$HERE/callgrind.sh"
fi
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-"64 256"}
USERS=${USERS:-100000}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
BUILD=${BUILD:-$REPO/build-bench}
WARMUP_ARG=${WARMUP_ARG:-1}
KEY=bench-only-admin-key-000000000001
SECRET=bench-only-token-secret-0000000001

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

SERVER_PID= TMP=
bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then say "bench: kept $TMP"; else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}

# tokens FILE PREFIX COUNT: COUNT tokens of users PREFIX0.., one per line
tokens() {
  python3 - "$1" "$2" "$3" "$SECRET" <<'PY'
import base64, hashlib, hmac, sys, time
out, prefix, n, secret = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
exp = int(time.time()) + 86400
with open(out, "w") as f:
    for i in range(n):
        msg = "v1.bench.%s%d.%d" % (prefix, i, exp)
        sig = base64.urlsafe_b64encode(hmac.new(secret, msg.encode(), hashlib.sha256).digest()).rstrip(b"=")
        f.write("%s.%s\n" % (msg, sig.decode()))
PY
}

# the wrk script: request k is user k's token on path_of(k, arg)
write_requests() {
  {
    echo "tokens = {"
    sed 's/.*/"&",/' "$TMP/users.txt"
    echo "}"
    echo "function start_at(arg) return 0 end"
    echo "$PATH_LUA"
    cat <<'LUA'
-- formatted by hand rather than with wrk.format, which hung wrk (100% CPU in
-- init, never connecting) in about one start of four with 100000 requests
local reqs, i = {}, 0
function init(args)
  local arg = tonumber(args[1]) or 0
  i = start_at(arg)
  local host = wrk.headers["Host"]
  for k, t in ipairs(tokens) do
    reqs[k] = "POST " .. path_of(k, arg) .. " HTTP/1.1\r\nHost: " .. host ..
      "\r\nContent-Type: application/json\r\nContent-Length: 2\r\nAuthorization: Bearer " ..
      t .. "\r\n\r\n{}"
  end
  tokens = nil
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
LUA
  } >"$TMP/requests.lua"
}

port_of() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
to_ms() {
  awk -v x="$1" 'BEGIN { if (x ~ /us$/) printf "%.2f", substr(x, 1, length(x) - 2) / 1000;
    else if (x ~ /ms$/) printf "%.2f", substr(x, 1, length(x) - 2);
    else if (x ~ /s$/) printf "%.2f", substr(x, 1, length(x) - 1) * 1000; else printf "?" }'
}
admin_post() {  # port path json
  curl -fsS -X POST "http://127.0.0.1:$1/admin/bench$2" -H "X-Api-Key: $KEY" \
    -H 'Content-Type: application/json' -d "$3" >/dev/null
}
admin_get() {  # port path
  curl -fsS "http://127.0.0.1:$1/admin/bench$2" -H "X-Api-Key: $KEY"
}
# orders in the database (paid or not: every acknowledged request that made one)
orders_count() {
  admin_get "$1" "/orders?limit=1" |
    python3 -c 'import json, sys; print(sum(t["orders"] for t in json.load(sys.stdin)["totals"]))'
}
add_product() {  # port price_fen
  admin_post "$1" /catalog/products \
    "{\"name\":\"Bench tea\",\"skus\":[{\"code\":\"tea-1\",\"title\":\"1 kg\",\"price_fen\":$2,\"stock\":100000000}]}"
}

start_host() {  # port conns
  local under=()
  rm -rf "$TMP/data"
  if [ "$PROFILE" = 1 ]; then
    mkdir -p "$BUILD/callgrind"; rm -f "$BUILD/callgrind/$NAME.$2.out"*
    under=(valgrind --tool=callgrind ${CALLGRIND_EXTRA:-} --callgrind-out-file="$BUILD/callgrind/$NAME.$2.out")
  fi
  local preload=()
  [ "${WALPAGES:-0}" != 1 ] || preload=(env LD_PRELOAD="$BUILD/walpages.so" WALPAGES_OUT="$TMP/walpages-$2.txt")
  taskset -c "$SERVER_CPU" "${preload[@]}" "${under[@]}" "$BUILD/tidepool" serve --config "$TMP/tidepool.conf.lua" \
    --listen "127.0.0.1:$1" 2>"$TMP/server-$2.log" &
  SERVER_PID=$!
  for _ in $(seq 600); do curl -fsS -o /dev/null "http://127.0.0.1:$1/healthz" 2>/dev/null && return 0; sleep 0.1; done
  die "the server did not come up; log in $TMP/server-$2.log"
}

stop_host() {  # conns
  kill -0 "$SERVER_PID" 2>/dev/null || die "the server died; log in $TMP/server-$1.log"
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || die "the server did not stop cleanly"
  SERVER_PID=
}

# the server's CPU time so far (every thread, user and system), in clock ticks
cpu_ticks() {  # pid
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# one connection count: a fresh host, setup, warm-up, the measured run
measure() {  # conns
  local conns=$1 port url before after out cpu0 cpu1
  port=$(port_of)
  url="http://127.0.0.1:$port"
  start_host "$port" "$conns"
  setup "$port"
  [ "$WARMUP" = 0 ] || taskset -c "$WRK_CPU" wrk -t1 -c"$conns" -d"${WARMUP}s" -s "$TMP/requests.lua" "$url" -- "$WARMUP_ARG" >/dev/null
  before=$(count "$port")
  cpu0=$(cpu_ticks "$SERVER_PID")
  if [ "$PROFILE" = 1 ]; then cg_begin "$SERVER_PID"; fi
  say "bench: $TITLE, $conns connections, ${DURATION}s"
  out=$TMP/wrk-$conns.txt
  taskset -c "$WRK_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$TMP/requests.lua" "$url" -- "$(run_arg "$before")" >"$out"
  after=$(count "$port")
  cpu1=$(cpu_ticks "$SERVER_PID")
  if [ "$PROFILE" = 1 ]; then cg_end "$SERVER_PID" "$BUILD/callgrind/$NAME.$conns.out" "$((after - before))" "$TMP/profile.txt"; fi
  stop_host "$conns"
  if [ "${WALPAGES:-0}" = 1 ]; then
    { echo; echo "$conns connections: what the commits wrote to the WAL"
      python3 "$HERE/walpages.py" "$TMP/data/bench.db" "$TMP/walpages-$conns.txt"; } >>"$TMP/walpages.txt"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$conns" \
    "$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")" \
    "$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")" \
    "$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")" \
    "$(awk '/Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' "$out")" "$((after - before))" \
    "$(awk -v a="$before" -v b="$after" -v d="$DURATION" 'BEGIN { printf "%.0f", (b - a) / d }')" \
    "$(awk -v c="$((cpu1 - cpu0))" -v t="$(getconf CLK_TCK)" -v n="$((after - before))" \
      'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / t / n; else print "-" }')" >>"$TMP/results.tsv"
}

print_table() {  # detail
  echo
  echo "$TITLE: commit $(git -C "$REPO" rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ), ${DURATION}s per run, $1"
  echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); server on core $SERVER_CPU, wrk -t1 on core $WRK_CPU; data on $(df -T "$TMP" | awk 'NR == 2 { print $2 }'), synchronous=full"
  echo
  printf '%5s | %9s | %7s | %7s | %7s | %9s | %9s | %9s\n' conns "req/s" "p50 ms" "p99 ms" non-2xx "$UNIT" "$UNIT/s" "cpu us/1"
  echo "------+-----------+---------+---------+---------+-----------+-----------+----------"
  awk -F'\t' '{ printf "%5s | %9s | %7s | %7s | %7s | %9s | %9s | %9s\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$TMP/results.tsv"
  echo "(cpu us/1: the server's CPU time, every thread, user and system, per one of the $UNIT)"
}

# bench_main DETAIL: build, config, tokens, every connection count, the table
bench_main() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  bash "$REPO/tools/bootstrap.sh" --bench >&2 || say "bench: bootstrap failed; continuing if the tools are present"
  for tool in wrk taskset curl cmake python3; do command -v "$tool" >/dev/null || die "$tool is missing"; done
  local type=Release static=OFF
  [ "$PROFILE" != 1 ] || { type=RelWithDebInfo; static=ON; }  # static: Lua's functions named
  say "bench: building tidepool ($type) in $BUILD"
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=$type -DTP_LUA_STATIC=$static >/dev/null
  cmake --build "$BUILD" --target tidepool -j"$(nproc)" >/dev/null
  if [ "${WALPAGES:-0}" = 1 ]; then
    cc -std=c11 -O2 -Wall -Wextra -Werror -shared -fPIC -o "$BUILD/walpages.so" "$HERE/walpages.c" -ldl
  fi
  TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tidepool-$NAME.XXXXXX")
  cat >"$TMP/tidepool.conf.lua" <<CONF
return {
  listen = "127.0.0.1:0", data_dir = "$TMP/data", plugin_dirs = { "$REPO/plugins" },
  synchronous = "full", log_level = "warn", limits = { max_connections = 10000 },
  tenants = {
    { id = "bench", token_secret = "$SECRET", api_keys = { "$KEY" }, plugins = $PLUGINS${TENANT_EXTRA:+,
      $TENANT_EXTRA} },
  },
}
CONF
  say "bench: minting $USERS user tokens"
  tokens "$TMP/users.txt" u "$USERS"
  write_requests
  local conns
  for conns in $CONNS; do measure "$conns"; done
  print_table "$1"
  if [ "$PROFILE" = 1 ]; then cat "$TMP/profile.txt"; fi
  if [ "${WALPAGES:-0}" = 1 ]; then cat "$TMP/walpages.txt"; fi
}
