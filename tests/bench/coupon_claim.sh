#!/usr/bin/env bash
# tests/bench/coupon_claim.sh - on-demand benchmark of "grab a coupon" (抢券):
# the real plugins (catalog, orders, payments, coupons), durable group commit
# (synchronous = full), every request a user's claim of the one public
# template, with their own token. Each claim checks the template's window and
# audience, counts the user's coupons of it (per_user_limit 1000, so no claim
# is refused while fewer than USERS x 1000 are sent), takes one from the
# template's quantity with a conditional UPDATE and writes the coupon row: one
# transaction, answered only once it is on disk.
#
#   bash tests/bench/coupon_claim.sh
#   PROFILE=1 DURATION=6 USERS=20000 bash tests/bench/coupon_claim.sh   # instructions per claim
#
# Environment and the table: tests/bench/mechanic.sh. The last columns count
# the coupons issued in the database afterwards.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/mechanic.sh"

NAME=coupon TITLE="grab a coupon" UNIT=claims
PLUGINS='{ catalog = {}, orders = {}, payments = { secret = "bench-only-payment-secret-01" },
  coupons = {} }'
PATH_LUA='function path_of(k, arg) return "/v1/bench/coupons/templates/1/claim" end'

setup() {  # port: one public template that outlasts the run
  admin_post "$1" /coupons/templates '{"name":"10 off","kind":"fixed","amount_off_fen":1000,
    "valid_days":7,"total_quantity":100000000,"per_user_limit":1000}'
}
count() { admin_get "$1" /coupons/templates/1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["issued"])'; }
run_arg() { echo 0; }

bench_main "$USERS users"
