#!/usr/bin/env bash
# tests/bench/group_buy.sh - on-demand benchmark of joining a group (拼团): the
# real plugins (catalog, orders, payments, group_buy), durable group commit
# (synchronous = full), every request a different user with their own token.
# Each join checks the activity's window and limits, that the group is open,
# unexpired, has room and does not have this user yet, counts the user's
# units, reserves the catalog's stock, writes the held order and its line,
# schedules its unpaid timeout and records the member's row: one transaction,
# answered only once it is on disk. An unpaid join holds no seat, so one open
# group takes every join of the run.
#
#   bash tests/bench/group_buy.sh
#   DURATION=5 CONNS=64 bash tests/bench/group_buy.sh
#
# Environment: DURATION (s per run, default 10), WARMUP (s, default 1), CONNS
# (default "64 256"), USERS (distinct users cycled through, default 100000; a
# user seen twice is refused as already_joined, so keep USERS above the joins
# of a run), SERVER_CPU (default 0), WRK_CPU (default 1), BUILD (default
# build-bench), BENCH_TMPDIR (a real disk; default $TMPDIR or /tmp),
# KEEP_TMP=1 keeps databases and logs.
# Prints one table: req/s, p50, p99, non-2xx, and orders per second counted in
# the database afterwards (so only durable orders count).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-"64 256"}
USERS=${USERS:-100000}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
BUILD=${BUILD:-$REPO/build-bench}
KEY=bench-only-admin-key-000000000001
SECRET=bench-only-token-secret-0000000001

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

SERVER_PID= TMP=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then say "bench: kept $TMP"; else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash "$REPO/tools/bootstrap.sh" --bench >&2 || say "bench: bootstrap failed; continuing if the tools are present"
for tool in wrk taskset curl cmake python3; do command -v "$tool" >/dev/null || die "$tool is missing"; done

say "bench: building tidepool (Release) in $BUILD"
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target tidepool -j"$(nproc)" >/dev/null

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tidepool-group.XXXXXX")
cat >"$TMP/tidepool.conf.lua" <<EOF
return {
  listen = "127.0.0.1:0", data_dir = "$TMP/data", plugin_dirs = { "$REPO/plugins" },
  synchronous = "full", log_level = "warn", limits = { max_connections = 10000 },
  tenants = {
    { id = "bench", token_secret = "$SECRET", api_keys = { "$KEY" },
      plugins = { catalog = {}, orders = { max_unpaid_orders = 1000000 },
                  payments = { secret = "bench-only-payment-secret-01" }, group_buy = {} } },
  },
}
EOF

say "bench: minting $USERS user tokens"
python3 - "$TMP/requests.lua" "$USERS" "$SECRET" <<'PY'
import base64, hashlib, hmac, sys, time
out, n, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
exp = int(time.time()) + 86400
def token(user):
    msg = "v1.bench.%s.%d" % (user, exp)
    sig = base64.urlsafe_b64encode(hmac.new(secret, msg.encode(), hashlib.sha256).digest()).rstrip(b"=")
    return "%s.%s" % (msg, sig.decode())
with open(out, "w") as f:
    f.write("tokens = {\n")
    for i in range(n):
        f.write('"%s",\n' % token("u%d" % i))
    f.write("}\n")
with open(out + ".leader", "w") as f:
    f.write(token("leader"))
PY
cat >>"$TMP/requests.lua" <<'EOF'
-- every request a different user joining group 1: requests are formatted once, up front;
-- the first user is the script's argument (the warm-up's users must not join again)
local reqs, i = {}, 0
function init(args)
  i = tonumber(args[1] or "0")
  for k, t in ipairs(tokens) do
    reqs[k] = wrk.format("POST", "/v1/bench/group-buys/1/groups/1/join",
      { ["Authorization"] = "Bearer " .. t, ["Content-Type"] = "application/json" }, "{}")
  end
  tokens = nil
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
EOF

port_of() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
to_ms() {
  awk -v x="$1" 'BEGIN { if (x ~ /us$/) printf "%.2f", substr(x, 1, length(x) - 2) / 1000;
    else if (x ~ /ms$/) printf "%.2f", substr(x, 1, length(x) - 2);
    else if (x ~ /s$/) printf "%.2f", substr(x, 1, length(x) - 1) * 1000; else printf "?" }'
}
# orders in the database, from the admin API (paid or not: every acknowledged join)
orders_count() {
  curl -fsS "http://127.0.0.1:$1/admin/bench/orders?limit=1" -H "X-Api-Key: $KEY" |
    python3 -c 'import json, sys; print(sum(t["orders"] for t in json.load(sys.stdin)["totals"]))'
}
admin_post() {  # port path json
  curl -fsS -X POST "http://127.0.0.1:$1/admin/bench$2" -H "X-Api-Key: $KEY" \
    -H 'Content-Type: application/json' -d "$3" >/dev/null
}
# the leader opens group 1 and pays; joins are taken once the payment has opened it
open_group() {  # port
  curl -fsS -X POST "http://127.0.0.1:$1/v1/bench/group-buys/1/open" \
    -H "Authorization: Bearer $(cat "$TMP/requests.lua.leader")" -H 'Content-Type: application/json' -d '{}' >/dev/null
  admin_post "$1" /payments/simulate '{"order_id":1}'
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$1/v1/bench/group-buys/1/groups/1" | grep -q '"state":"open"' && return 0
    sleep 0.1
  done
  die "group 1 did not open"
}

RESULTS=$TMP/results.tsv
for conns in $CONNS; do
  port=$(port_of)
  rm -rf "$TMP/data"
  taskset -c "$SERVER_CPU" "$BUILD/tidepool" serve --config "$TMP/tidepool.conf.lua" \
    --listen "127.0.0.1:$port" 2>"$TMP/server-$conns.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break; sleep 0.1; done
  now=$(date +%s)
  admin_post "$port" /catalog/products \
    '{"name":"Bench tea","skus":[{"code":"tea-1","title":"1 kg","price_fen":19900,"stock":100000000}]}'
  admin_post "$port" /group-buys "{\"sku\":\"tea-1\",\"group_size\":100,\"price_fen\":5900,
    \"per_user_limit\":1,\"starts_at\":$((now - 60)),\"ends_at\":$((now + 86400))}"
  open_group "$port"
  url="http://127.0.0.1:$port"
  [ "$WARMUP" = 0 ] || taskset -c "$WRK_CPU" wrk -t1 -c"$conns" -d"${WARMUP}s" -s "$TMP/requests.lua" "$url" -- 0 >/dev/null
  before=$(orders_count "$port")   # the leader's order and one per user who joined so far
  say "bench: group-buy join, $conns connections, ${DURATION}s"
  taskset -c "$WRK_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$TMP/requests.lua" "$url" -- "$before" >"$TMP/wrk-$conns.txt"
  after=$(orders_count "$port")
  kill -0 "$SERVER_PID" 2>/dev/null || die "the server died; log in $TMP/server-$conns.log"
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || die "the server did not stop cleanly"
  SERVER_PID=
  out=$TMP/wrk-$conns.txt
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$conns" "$rps" "$p50" "$p99" "${bad:-0}" \
    "$(awk -v a="$before" -v b="$after" -v d="$DURATION" 'BEGIN { printf "%.0f", (b - a) / d }')" >>"$RESULTS"
done

echo
echo "group-buy join: commit $(git -C "$REPO" rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ), ${DURATION}s per run, $USERS users"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); server on core $SERVER_CPU, wrk -t1 on core $WRK_CPU; data on $(df -T "$TMP" | awk 'NR == 2 { print $2 }'), synchronous=full"
echo
printf '%5s | %9s | %7s | %7s | %7s | %9s\n' conns "req/s" "p50 ms" "p99 ms" non-2xx "orders/s"
echo "------+-----------+---------+---------+---------+----------"
awk -F'\t' '{ printf "%5s | %9s | %7s | %7s | %7s | %9s\n", $1, $2, $3, $4, $5, $6 }' "$RESULTS"
