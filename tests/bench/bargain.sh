#!/usr/bin/env bash
# tests/bench/bargain.sh - on-demand benchmark of "help a bargain" (帮砍): the
# real plugins (catalog, orders, payments, bargain), durable group commit
# (synchronous = full), every request a different helper with their own token.
# BARGAINS bargains are started up front on one activity that needs HELPERS
# cuts each and lets a helper help every bargain once; request k is helper k
# on bargain k mod BARGAINS (the warm-up shifts by one bargain), so no help is
# refused for a repeat or a reached floor while fewer than USERS requests are
# sent. Each help reads the bargain, checks the helper (not the initiator, not
# twice, the activity's per-helper count), draws the cut, takes it off with a
# conditional UPDATE and records the cut with its seed: one transaction,
# answered only once it is on disk.
#
#   bash tests/bench/bargain.sh
#   DURATION=5 CONNS=64 bash tests/bench/bargain.sh
#   DURATION=30 CONNS="64 256 1024" USERS=300000 bash tests/bench/bargain.sh
#
# Environment: DURATION (s per run, default 10), WARMUP (s, default 1), CONNS
# (default "64 256"), USERS (distinct helpers, default 100000), BARGAINS
# (default 50), HELPERS (cuts each bargain needs, default 10000; BARGAINS x
# HELPERS must exceed the requests sent or later helps hit the floor),
# SERVER_CPU (default 0), WRK_CPU (default 1), BUILD (Release build dir,
# default build-bench), BENCH_TMPDIR (a real disk; default $TMPDIR or /tmp),
# KEEP_TMP=1 keeps databases and logs.
# Prints one table: req/s, p50, p99, non-2xx, and accepted helps per second
# counted in the database afterwards (so only durable cuts count).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-"64 256"}
USERS=${USERS:-100000}
BARGAINS=${BARGAINS:-50}
HELPERS=${HELPERS:-10000}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
BUILD=${BUILD:-$REPO/build-bench}
KEY=bench-only-admin-key-000000000001
SECRET=bench-only-token-secret-0000000001
LIST_PRICE=19900
FLOOR=100

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

[ $((LIST_PRICE - FLOOR)) -ge "$HELPERS" ] || die "HELPERS must be at most $((LIST_PRICE - FLOOR)) (a fen per cut)"

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

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tidepool-bargain.XXXXXX")
cat >"$TMP/tidepool.conf.lua" <<EOF
return {
  listen = "127.0.0.1:0", data_dir = "$TMP/data", plugin_dirs = { "$REPO/plugins" },
  synchronous = "full", log_level = "warn", limits = { max_connections = 10000 },
  tenants = {
    { id = "bench", token_secret = "$SECRET", api_keys = { "$KEY" },
      plugins = { catalog = {}, orders = {}, payments = { secret = "bench-only-payment-secret-01" },
                  bargain = {} } },
  },
}
EOF

say "bench: minting $USERS helper and $BARGAINS initiator tokens"
python3 - "$TMP" "$USERS" "$BARGAINS" "$SECRET" <<'PY'
import base64, hashlib, hmac, sys, time
tmp, n, bargains, secret = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
exp = int(time.time()) + 86400
def token(user):
    msg = "v1.bench.%s.%d" % (user, exp)
    sig = base64.urlsafe_b64encode(hmac.new(secret, msg.encode(), hashlib.sha256).digest()).rstrip(b"=")
    return "%s.%s" % (msg, sig.decode())
with open(tmp + "/initiators.txt", "w") as f:
    for i in range(bargains):
        f.write(token("initiator%d" % i) + "\n")
with open(tmp + "/requests.lua", "w") as f:
    f.write("bargains = %d\ntokens = {\n" % bargains)
    for i in range(n):
        f.write('"%s",\n' % token("helper%d" % i))
    f.write("}\n")
PY
cat >>"$TMP/requests.lua" <<'EOF'
-- request k: helper k helps bargain (k + shift) mod bargains (ids 1..bargains),
-- formatted once, up front; the warm-up runs with shift 1 and the measured run
-- with shift 0, so the measured helps are not repeats of the warm-up's
local reqs, i = {}, 0
function init(args)
  local shift = tonumber(args[1]) or 0
  for k, t in ipairs(tokens) do
    reqs[k] = wrk.format("POST", ("/v1/bench/bargains/%d/help"):format((k - 1 + shift) % bargains + 1),
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
# accepted helps in the database, from the admin API (every acknowledged cut)
helps_count() {
  curl -fsS "http://127.0.0.1:$1/admin/bench/bargain/activities/1" -H "X-Api-Key: $KEY" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["stats"]["helps"])'
}
admin_post() {  # port path json
  curl -fsS -X POST "http://127.0.0.1:$1/admin/bench$2" -H "X-Api-Key: $KEY" \
    -H 'Content-Type: application/json' -d "$3" >/dev/null
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
    "{\"name\":\"Bench tea\",\"skus\":[{\"code\":\"tea-1\",\"title\":\"1 kg\",\"price_fen\":$LIST_PRICE,\"stock\":100000000}]}"
  admin_post "$port" /bargain/activities "{\"sku\":\"tea-1\",\"original_price_fen\":$LIST_PRICE,
    \"floor_price_fen\":$FLOOR,\"helpers_needed\":$HELPERS,\"helps_per_helper\":$BARGAINS,
    \"duration_seconds\":86400,\"starts_at\":$((now - 60)),\"ends_at\":$((now + 86400))}"
  while read -r token; do  # bargains 1..BARGAINS, one per initiator
    curl -fsS -o /dev/null -X POST "http://127.0.0.1:$port/v1/bench/bargain/activities/1/start" \
      -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{}'
  done <"$TMP/initiators.txt"
  url="http://127.0.0.1:$port"
  [ "$WARMUP" = 0 ] || taskset -c "$WRK_CPU" wrk -t1 -c"$conns" -d"${WARMUP}s" -s "$TMP/requests.lua" "$url" -- 1 >/dev/null
  before=$(helps_count "$port")
  say "bench: help a bargain, $conns connections, ${DURATION}s"
  taskset -c "$WRK_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$TMP/requests.lua" "$url" -- 0 >"$TMP/wrk-$conns.txt"
  after=$(helps_count "$port")
  kill -0 "$SERVER_PID" 2>/dev/null || die "the server died; log in $TMP/server-$conns.log"
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || die "the server did not stop cleanly"
  SERVER_PID=
  out=$TMP/wrk-$conns.txt
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$conns" "$rps" "$p50" "$p99" "${bad:-0}" "$((after - before))" \
    "$(awk -v a="$before" -v b="$after" -v d="$DURATION" 'BEGIN { printf "%.0f", (b - a) / d }')" >>"$RESULTS"
done

echo
echo "help a bargain: commit $(git -C "$REPO" rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ), ${DURATION}s per run, $USERS helpers over $BARGAINS bargains of $HELPERS cuts"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); server on core $SERVER_CPU, wrk -t1 on core $WRK_CPU; data on $(df -T "$TMP" | awk 'NR == 2 { print $2 }'), synchronous=full"
echo
printf '%5s | %9s | %7s | %7s | %7s | %9s | %7s\n' conns "req/s" "p50 ms" "p99 ms" non-2xx "accepted" "helps/s"
echo "------+-----------+---------+---------+---------+-----------+--------"
awk -F'\t' '{ printf "%5s | %9s | %7s | %7s | %7s | %9s | %7s\n", $1, $2, $3, $4, $5, $6, $7 }' "$RESULTS"
