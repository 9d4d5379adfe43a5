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
#   DURATION=30 CONNS="64 256 1024" USERS=300000 bash tests/bench/bargain.sh
#
# Environment and the table: tests/bench/mechanic.sh, and BARGAINS (default
# 50) and HELPERS (cuts each bargain needs, default 10000; BARGAINS x HELPERS
# must exceed the requests sent or later helps hit the floor). The last
# columns count accepted helps in the database afterwards.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/mechanic.sh"

BARGAINS=${BARGAINS:-50}
HELPERS=${HELPERS:-10000}
LIST_PRICE=19900
FLOOR=100
[ $((LIST_PRICE - FLOOR)) -ge "$HELPERS" ] || die "HELPERS must be at most $((LIST_PRICE - FLOOR)) (a fen per cut)"

NAME=bargain TITLE="help a bargain" UNIT=helps
PLUGINS='{ catalog = {}, orders = {}, payments = { secret = "bench-only-payment-secret-01" },
  bargain = {} }'
PATH_LUA="function path_of(k, arg) return (\"/v1/bench/bargains/%d/help\"):format((k - 1 + arg) % $BARGAINS + 1) end"

setup() {  # port: the activity and bargains 1..BARGAINS, one per initiator
  local now token
  now=$(date +%s)
  add_product "$1" "$LIST_PRICE"
  admin_post "$1" /bargain/activities "{\"sku\":\"tea-1\",\"original_price_fen\":$LIST_PRICE,
    \"floor_price_fen\":$FLOOR,\"helpers_needed\":$HELPERS,\"helps_per_helper\":$BARGAINS,
    \"duration_seconds\":86400,\"starts_at\":$((now - 60)),\"ends_at\":$((now + 86400))}"
  [ -f "$TMP/initiators.txt" ] || tokens "$TMP/initiators.txt" initiator "$BARGAINS"
  while read -r token; do
    curl -fsS -o /dev/null -X POST "http://127.0.0.1:$1/v1/bench/bargain/activities/1/start" \
      -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{}'
  done <"$TMP/initiators.txt"
}
count() { admin_get "$1" /bargain/activities/1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["stats"]["helps"])'; }
run_arg() { echo 0; }

bench_main "$USERS helpers over $BARGAINS bargains of $HELPERS cuts"
