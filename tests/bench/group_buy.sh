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
# Environment and the table: tests/bench/mechanic.sh. A user seen twice is
# refused as already_joined, so keep USERS above the joins of a run; the
# measured run starts with the users after the warm-up's.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/mechanic.sh"

NAME=group TITLE="group-buy join" UNIT=orders WARMUP_ARG=0
PLUGINS='{ catalog = {}, orders = { max_unpaid_orders = 1000000 },
  payments = { secret = "bench-only-payment-secret-01" }, group_buy = {} }'
PATH_LUA='function path_of(k, arg) return "/v1/bench/group-buys/1/groups/1/join" end
function start_at(arg) return arg end'

# the leader opens group 1 and pays; joins are taken once the payment has opened it
setup() {  # port
  local now
  now=$(date +%s)
  add_product "$1" 19900
  admin_post "$1" /group-buys "{\"sku\":\"tea-1\",\"group_size\":100,\"price_fen\":5900,
    \"per_user_limit\":1,\"starts_at\":$((now - 60)),\"ends_at\":$((now + 86400))}"
  tokens "$TMP/leader.txt" leader 1
  curl -fsS -X POST "http://127.0.0.1:$1/v1/bench/group-buys/1/open" \
    -H "Authorization: Bearer $(cat "$TMP/leader.txt")" -H 'Content-Type: application/json' -d '{}' >/dev/null
  admin_post "$1" /payments/simulate '{"order_id":1}'
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$1/v1/bench/group-buys/1/groups/1" | grep -q '"state":"open"' && return 0
    sleep 0.1
  done
  die "group 1 did not open"
}
count() { orders_count "$1"; }   # the leader's order and one per user who joined so far
run_arg() { echo "$1"; }         # skip the users the warm-up used

bench_main "$USERS users"
