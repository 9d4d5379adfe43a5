#!/usr/bin/env bash
# tests/bench/sidebyside.sh - on-demand, side by side: the same durable
# flash-sale buy (window and stock checks, per-user limit, stock taken, an
# order record) served by
#   tidepool            the real plugins (catalog, orders, payments, flash_sale),
#                       synchronous=full, group commit: tests/bench/flash_sale.sh's setup
#   nginx+redis(always) nginx + Debian's lua-nginx-module, one worker, calling one
#                       Redis script (EVALSHA) per buy; appendonly yes, appendfsync always
#   nginx+redis(evsec)  the same with appendfsync everysec (up to ~1 s of
#                       acknowledged orders can be lost on a crash)
#   flashloop           bare libuv + llhttp + SQLite: tidepool's SQL for the buy,
#                       one transaction and one fsync per loop iteration
#   ceiling             bare libuv + llhttp answering 200 without any work
# Every request is a different user with their own signed token (the same
# request bytes for every server). Not part of ctest or CI. Prints one table.
#
#   bash tests/bench/sidebyside.sh
#   DURATION=3 CONNS=64 SERVERS="tidepool flashloop" bash tests/bench/sidebyside.sh
#
# Environment: DURATION (s per run, 10), WARMUP (s, 1), CONNS ("64 256"), USERS
# (distinct users cycled through, 100000), SERVERS ("tidepool redis-always
# redis-everysec flashloop ceiling"), SERVER_CPU (0), WRK_CPU (1), BENCH_TMPDIR
# (a real disk; default $TMPDIR or /tmp), KEEP_TMP=1 keeps databases and logs,
# TIDEPOOL (a tidepool binary to use instead of building build-bench/tidepool).
# nginx and redis-server run as foreground processes of this script with their
# config in the temp dir; the system's services are neither used nor changed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shared with the per-mechanic benchmarks: REPO, DURATION, WARMUP, CONNS, USERS,
# SERVER_CPU, WRK_CPU, BUILD, KEY, SECRET, tokens, write_requests, port_of, to_ms
. "$HERE/mechanic.sh"
SBS=$HERE/sidebyside
SERVERS=${SERVERS:-"tidepool redis-always redis-everysec flashloop ceiling"}

say() { printf '%s\n' "$*" >&2; }
die() { say "sidebyside: $*"; exit 1; }

# ---- cleanup: every process this script started, then the temp dir

PIDS=()      # servers running now (tidepool, flashloop, nginx master, redis-server)
WRK_PID=
TMP=
stop_pid() {  # pid: TERM, wait up to 10 s, then KILL
  local pid=$1
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "sidebyside: process $pid did not stop on SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
stop_servers() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done  # nginx before redis
  PIDS=()
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$WRK_PID" ]; then kill -TERM "$WRK_PID" 2>/dev/null || true; wait "$WRK_PID" 2>/dev/null || true; fi
  stop_servers
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "${KEEP_TMP:-0}" = 1 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ]; }; then
      say "sidebyside: kept $TMP"
    else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "sidebyside: interrupted"; exit 130' INT
trap 'say "sidebyside: terminated"; exit 143' TERM

# ---- dependencies (Debian packages; nginx and redis are not run as services)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
had_nginx=0 had_redis=0
installed nginx && had_nginx=1
installed redis-server && had_redis=1
bash "$REPO/tools/bootstrap.sh" --sidebyside >&2 || say "sidebyside: bootstrap failed; continuing if the tools are present"
# On a machine with systemd, installing the packages starts their services:
# stop the ones this install started, so the machine is left as it was.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  [ "$had_nginx" = 1 ] || ! systemctl is-active -q nginx 2>/dev/null || systemctl stop nginx || true
  [ "$had_redis" = 1 ] || ! systemctl is-active -q redis-server 2>/dev/null || systemctl stop redis-server || true
fi
for tool in wrk taskset curl cmake cc pkg-config python3 nginx redis-server redis-cli; do
  command -v "$tool" >/dev/null || die "$tool is missing (tools/bootstrap.sh --sidebyside installs it)"
done
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || die "lua-nginx-module is missing (libnginx-mod-http-lua)"
[ "$(nproc)" -ge 2 ] || say "sidebyside: warning: fewer than 2 cores; servers and wrk will share one"

# ---- builds

if [ -n "${TIDEPOOL:-}" ]; then
  [ -x "$TIDEPOOL" ] || die "TIDEPOOL=$TIDEPOOL is not an executable"
  say "sidebyside: using the tidepool binary $TIDEPOOL (not built here)"
else
  say "sidebyside: building tidepool (Release) in $BUILD"
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" --target tidepool -j"$(nproc)" >/dev/null
  TIDEPOOL=$BUILD/tidepool
fi
say "sidebyside: building flashloop"
LLHTTP_SRC=/usr/share/llhttp
LLHTTP_INC=/usr/share/include/llhttp
OBJ=$BUILD/sidebyside
mkdir -p "$OBJ"
for f in api http llhttp; do  # generated third-party C: not ours to warn about
  [ "$OBJ/llhttp_$f.o" -nt "$LLHTTP_SRC/$f.c" ] ||
    cc -O2 -w -I"$LLHTTP_INC" -c "$LLHTTP_SRC/$f.c" -o "$OBJ/llhttp_$f.o"
done
# shellcheck disable=SC2046
cc -std=c11 -O2 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
  -I"$LLHTTP_INC" $(pkg-config --cflags libuv sqlite3 libcrypto) \
  "$SBS/flashloop.c" "$HERE/benchloop.c" "$OBJ"/llhttp_*.o $(pkg-config --libs libuv sqlite3 libcrypto) -o "$OBJ/flashloop"
FLASHLOOP=$OBJ/flashloop

# ---- the temp dir, the tokens and the wrk script (flash_sale.sh's approach)

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tidepool-sidebyside.XXXXXX")
cat >"$TMP/tidepool.conf.lua" <<EOF
return {
  listen = "127.0.0.1:0", data_dir = "$TMP/data", plugin_dirs = { "$REPO/plugins" },
  synchronous = "full", log_level = "warn", limits = { max_connections = 10000 },
  tenants = {
    { id = "bench", token_secret = "$SECRET", api_keys = { "$KEY" },
      plugins = { catalog = {}, orders = { max_unpaid_orders = 1000000 },
                  payments = { secret = "bench-only-payment-secret-01" }, flash_sale = {} } },
  },
}
EOF

say "sidebyside: minting $USERS user tokens"
tokens "$TMP/users.txt" u "$USERS"
PATH_LUA='function path_of(k, arg) return "/v1/bench/flash-sales/1/buy" end'
write_requests

wait_http() {  # url pid log: up to 10 s for the server to answer
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$3" >&2 || true
  die "the server did not come up ($1); log in $3"
}
run_wrk() {  # wrk pinned to its core, in the background so that Ctrl-C runs the trap at once;
  local st=0  # killed if it is still running a minute after its duration
  timeout -s KILL $((DURATION + WARMUP + 60)) taskset -c "$WRK_CPU" wrk "$@" &
  WRK_PID=$!
  wait "$WRK_PID" || st=$?
  WRK_PID=
  [ "$st" -eq 0 ] || die "wrk failed (exit status $st)"
}
rcli() { redis-cli -p "$RPORT" "$@"; }
CLK_TCK=$(getconf CLK_TCK)
server_cpu() {  # user + system CPU seconds of the running servers and their children (nginx's worker)
  local p pids=("${PIDS[@]}")
  for p in "${PIDS[@]}"; do pids+=($(pgrep -P "$p" || true)); done
  for p in "${pids[@]}"; do cat "/proc/$p/stat" 2>/dev/null || true; done |
    awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%.2f", t / hz }'
}

# ---- the servers: start_<name> DIR PORT starts it and its data; count_<name>
# PORT prints the number of orders it has recorded

start_tidepool() {
  local dir=$1 port=$2 now
  taskset -c "$SERVER_CPU" "$TIDEPOOL" serve --config "$TMP/tidepool.conf.lua" \
    --listen "127.0.0.1:$port" --data-dir "$dir/data" 2>"$dir/server.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/healthz" "$!" "$dir/server.log"
  now=$(date +%s)
  curl -fsS -o /dev/null -X POST "http://127.0.0.1:$port/admin/bench/catalog/products" -H "X-Api-Key: $KEY" \
    -H 'Content-Type: application/json' \
    -d '{"name":"Bench tea","skus":[{"code":"tea-1","title":"1 kg","price_fen":19900,"stock":100000000}]}'
  curl -fsS -o /dev/null -X POST "http://127.0.0.1:$port/admin/bench/flash-sales" -H "X-Api-Key: $KEY" \
    -H 'Content-Type: application/json' -d "{\"sku\":\"tea-1\",\"price_fen\":990,\"quantity\":10000000,
    \"per_user_limit\":1000,\"starts_at\":$((now - 60)),\"ends_at\":$((now + 86400))}"
}
count_tidepool() {  # every acknowledged buy is an order (paid or not): the admin totals
  curl -fsS "http://127.0.0.1:$1/admin/bench/orders?limit=1" -H "X-Api-Key: $KEY" |
    python3 -c 'import json, sys; print(sum(t["orders"] for t in json.load(sys.stdin)["totals"]))'
}

# flashloop runs on a database tidepool's own migrations made (the plugins' tables,
# CHECKs, triggers and indexes, and the host's _tp_jobs as they are today), so
# the two cannot drift: tidepool is started once on an empty data dir and stopped.
schema_db() {
  local dir=$TMP/schema
  [ -f "$dir/data/bench.db" ] && return 0
  mkdir -p "$dir"
  "$TIDEPOOL" serve --config "$TMP/tidepool.conf.lua" --listen "127.0.0.1:$1" --data-dir "$dir/data" \
    2>"$dir/server.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$1/healthz" "$!" "$dir/server.log"
  stop_servers
  [ -f "$dir/data/bench.db" ] || die "tidepool made no bench.db in $dir/data"
}
start_flashloop() {
  schema_db "$2"
  cp "$TMP/schema/data/bench.db" "$1/flashloop.db"
  [ ! -f "$TMP/schema/data/bench.db-wal" ] || cp "$TMP/schema/data/bench.db-wal" "$1/flashloop.db-wal"
  taskset -c "$SERVER_CPU" "$FLASHLOOP" "$2" "$1/flashloop.db" "$SECRET" 2>"$1/server.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$2/healthz" "$!" "$1/server.log"
}
count_flashloop() {
  curl -fsS "http://127.0.0.1:$1/orders/count" | python3 -c 'import json, sys; print(json.load(sys.stdin)["orders"])'
}

start_ceiling() {
  taskset -c "$SERVER_CPU" "$FLASHLOOP" --ceiling "$2" 2>"$1/server.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$2/healthz" "$!" "$1/server.log"
}

RPORT=
start_redis() {  # dir port fsync: redis-server and nginx, both on the server core
  local dir=$1 port=$2 fsync=$3 now sha
  RPORT=$(port_of)
  mkdir -p "$dir/redis" "$dir/nginx/logs"
  # Redis's defaults otherwise (its RDB "save" rules included): only the AOF is set
  cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1
port $RPORT
daemonize no
dir $dir/redis
logfile $dir/redis.log
appendonly yes
appendfsync $fsync
EOF
  taskset -c "$SERVER_CPU" redis-server "$dir/redis.conf" &
  PIDS+=($!)
  for _ in $(seq 100); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done
  [ "$(rcli ping 2>/dev/null)" = PONG ] || { tail -20 "$dir/redis.log" >&2; die "redis-server did not come up"; }
  now=$(date +%s)
  rcli hset sku:tea-1 product_id 1 title "1 kg" price_fen 19900 stock 100000000 product_status on_sale >/dev/null
  rcli hset sale:1 status active sku tea-1 title "1 kg" price_fen 990 quantity 10000000 remaining 10000000 \
    per_user_limit 1000 per_order_limit 1 starts_at $((now - 60)) ends_at $((now + 86400)) \
    unpaid_timeout_seconds 300 stacks 0 >/dev/null
  sha=$(rcli -x script load <"$SBS/buy.redis.lua")
  [[ "$sha" =~ ^[0-9a-f]{40}$ ]] || die "SCRIPT LOAD failed: $sha"
  local init="require(\"buy\").configure({ tenant = \"bench\", secret = \"$SECRET\", redis_port = $RPORT,"
  init="$init sha = \"$sha\", script_file = \"$SBS/buy.redis.lua\", max_unpaid = 1000000 })"
  sed -e "s|@TMP@|$dir/nginx|g" -e "s|@PORT@|$port|g" -e "s|@HERE@|$SBS|g" -e "s|@INIT@|$init|" \
    "$SBS/nginx.conf.in" >"$dir/nginx.conf"
  taskset -c "$SERVER_CPU" nginx -p "$dir/nginx" -e "$dir/nginx/nginx-error.log" -c "$dir/nginx.conf" \
    2>"$dir/server.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/healthz" "$!" "$dir/server.log"
}
start_redis-always() { start_redis "$1" "$2" always; }
start_redis-everysec() { start_redis "$1" "$2" everysec; }
count_redis() {  # the order id counter, and the unpaid-timeout entries (one per order): they must agree
  local seq due
  seq=$(rcli get order:seq)
  due=$(rcli zcard orders:due)
  [ "${seq:-0}" = "${due:-0}" ] || say "sidebyside: WARNING: redis order:seq $seq but orders:due has $due"
  echo "${seq:-0}"
}
count_redis-always() { count_redis; }
count_redis-everysec() { count_redis; }

label() {
  case $1 in
    redis-always) echo "nginx+redis(always)" ;;
    redis-everysec) echo "nginx+redis(everysec)" ;;
    *) echo "$1" ;;
  esac
}

# ---- one run

RESULTS=$TMP/results.tsv
FAILED=0
bench() {  # name conns
  local name=$1 conns=$2 dir port before=- after=- out
  dir=$TMP/$name-$conns
  mkdir -p "$dir"
  port=$(port_of)
  "start_$name" "$dir" "$port"
  local url="http://127.0.0.1:$port"
  [ "$WARMUP" = 0 ] || run_wrk -t1 -c"$conns" -d"${WARMUP}s" -s "$TMP/requests.lua" "$url" >/dev/null
  sleep 0.3  # the warm-up's last requests settle
  [ "$name" = ceiling ] || before=$("count_$name" "$port")
  say "sidebyside: $(label "$name"), $conns connections, ${DURATION}s"
  out=$dir/wrk.txt
  local cpu0 cpu1
  cpu0=$(server_cpu)
  run_wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$TMP/requests.lua" "$url" >"$out"
  cpu1=$(server_cpu)
  sleep 0.3  # requests in flight when wrk stopped are answered (and stored) too
  local pid
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "$name died during the run; logs in $dir"; done
  [ "$name" = ceiling ] || after=$("count_$name" "$port")
  stop_servers

  local rps p50 p99 total bad ok orders check
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  total=$(awk '/requests in/ { print $1 }' "$out")
  bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  bad=${bad:-0}
  if [ -z "$rps" ] || [ -z "$total" ]; then cat "$out" >&2; die "could not parse wrk's output"; fi
  ! grep -q 'Socket errors' "$out" || say "sidebyside: WARNING: $(grep 'Socket errors' "$out")"
  ok=$((total - bad))
  if [ "$name" = ceiling ]; then
    orders=- check="(no orders)"
  else
    # Every 2xx must be a stored order. wrk counts the responses it read; the
    # requests in flight when it stopped (at most one per connection) may be
    # stored without their response being counted.
    orders=$((after - before))
    if [ "$orders" -ge "$ok" ] && [ "$orders" -le $((ok + conns)) ]; then check="ok (+$((orders - ok)) in flight)"
    else check="MISMATCH"; FAILED=1; fi
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conns" "$rps" "$p50" "$p99" "$bad" "$ok" \
    "$orders" "$check" "$(awk -v a="$cpu0" -v b="$cpu1" -v d="$DURATION" 'BEGIN { printf "%.0f", 100 * (b - a) / d }')" \
    >>"$RESULTS"
}

for conns in $CONNS; do
  for name in $SERVERS; do
    declare -F "start_$name" >/dev/null || die "unknown server $name (SERVERS)"
    bench "$name" "$conns"
  done
done

# ---- the report

rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
git -C "$REPO" diff --quiet HEAD 2>/dev/null || rev="$rev+dirty"
echo
echo "side by side, durable flash-sale buy: commit $rev, $(date -u +%Y-%m-%dT%H:%MZ), ${DURATION}s per run (warm-up ${WARMUP}s), $USERS users"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r); data on $(df -T "$TMP" | awk 'NR == 2 { print $2 " (" $1 ")" }')"
echo "wrk -t1 on core $WRK_CPU; every server on core $SERVER_CPU (nginx, one worker, and redis-server SHARE core $SERVER_CPU)"
echo "versions: nginx $(nginx -v 2>&1 | sed 's|.*/||'), lua-nginx-module $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua), redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), sqlite $(pkg-config --modversion sqlite3), libuv $(pkg-config --modversion libuv), wrk $(dpkg-query -W -f='${Version}' wrk)"
echo
awk -F'\t' '
  function label(n) { return n == "redis-always" ? "nginx+redis(always)" : n == "redis-everysec" ? "nginx+redis(everysec)" : n }
  {
    k = $1 SUBSEP $2; rps[k] = $3; row[++nr] = $0; conns[$2] = 1
  }
  END {
    fmt = "%-22s | %5s | %9s | %8s | %8s | %7s | %6s | %9s | %9s | %s\n"
    printf fmt, "server", "conns", "req/s", "p50 ms", "p99 ms", "non-2xx", "cpu %", "2xx", "orders", "orders = 2xx?"
    print "-----------------------+-------+-----------+----------+----------+---------+--------+-----------+-----------+---------------"
    for (i = 1; i <= nr; i++) {
      split(row[i], f, "\t")
      printf fmt, label(f[1]), f[2], f[3], f[4], f[5], f[6], f[10], f[7], f[8], f[9]
    }
    print ""
    print "req/s ratios, tidepool / other:"
    n = split("redis-always redis-everysec flashloop ceiling", others, " ")
    for (c in conns) cl[++nc] = c + 0
    for (i = 2; i <= nc; i++) for (j = i; j > 1 && cl[j] < cl[j - 1]; j--) { t = cl[j]; cl[j] = cl[j - 1]; cl[j - 1] = t }
    for (ci = 1; ci <= nc; ci++) {
      c = cl[ci]; t = "tidepool" SUBSEP c
      if (!(t in rps)) continue
      line = sprintf("  %4d conns:", c)
      for (o = 1; o <= n; o++) {
        k = others[o] SUBSEP c
        if (k in rps && rps[k] > 0) line = line sprintf("  tidepool/%s %.2f", label(others[o]), rps[t] / rps[k])
      }
      print line
    }
  }' "$RESULTS"
if [ "$FAILED" = 1 ]; then
  say "sidebyside: a server recorded a different number of orders than it acknowledged (MISMATCH above)"
  exit 1
fi
