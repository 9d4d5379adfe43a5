#!/usr/bin/env bash
# tests/bench/flash_sale.sh - on-demand benchmark of the flash-sale buy: the
# real plugins (catalog, orders, payments, flash_sale), durable group commit
# (synchronous = full), every request a different user with their own token.
# Each buy checks the sale's window and the user's limit, takes a unit from the
# sale and from the catalog, writes the order and its line and schedules the
# unpaid timeout: one transaction, answered only once it is on disk.
#
#   bash tests/bench/flash_sale.sh
#   DURATION=30 CONNS="64 256 1024" USERS=200000 bash tests/bench/flash_sale.sh
#   WITH_ANALYTICS=1 PROFILE=1 DURATION=6 USERS=20000 bash tests/bench/flash_sale.sh
#   WITH_BRAND=1 PROFILE=1 DURATION=6 USERS=20000 bash tests/bench/flash_sale.sh
#
# Environment and the table: tests/bench/mechanic.sh. The last column counts
# orders in the database afterwards, so only durable orders count.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/mechanic.sh"

NAME=flash TITLE="flash-sale buy" UNIT=orders
# WITH_ANALYTICS=1: the analytics plugin too, which subscribes to order.created
# (each buy then also runs its order event, as a brand with analytics does).
# WITH_BRAND=1: the demo brand's plugins (brand_plugins.py): orders asks referral,
# tiers and analytics at every buy, and its events reach their subscribers. Its
# orders allow a user 3 unpaid orders: give USERS above a third of the buys.
EXTRA=
if [ "${WITH_ANALYTICS:-0}" = 1 ]; then NAME=flash-analytics EXTRA=', analytics = {}'; fi
PLUGINS='{ catalog = {}, orders = { max_unpaid_orders = 1000000 },
  payments = { secret = "bench-only-payment-secret-01" }, flash_sale = {}'"$EXTRA"' }'
if [ "${WITH_BRAND:-0}" = 1 ]; then NAME=flash-brand PLUGINS=$(python3 "$HERE/brand_plugins.py") || exit 1; fi
# BRAND_SED: a sed script applied to that table, to run the brand without a part
# (README "Where the demo brand's buy goes"), e.g. 's/attribution_plugin = "referral",//'
if [ -n "${BRAND_SED:-}" ]; then PLUGINS=$(printf '%s\n' "$PLUGINS" | sed "$BRAND_SED") || exit 1; fi
PATH_LUA='function path_of(k, arg) return "/v1/bench/flash-sales/1/buy" end'

setup() {  # port: a sale that outlasts the run, a user may buy 1000
  local now
  now=$(date +%s)
  add_product "$1" 19900
  admin_post "$1" /flash-sales "{\"sku\":\"tea-1\",\"price_fen\":990,\"quantity\":10000000,
    \"per_user_limit\":1000,\"starts_at\":$((now - 60)),\"ends_at\":$((now + 86400))}"
}
count() { orders_count "$1"; }
run_arg() { echo 0; }

bench_main "$USERS users"
