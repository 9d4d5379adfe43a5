#!/usr/bin/env bash
# Installs what is missing, builds tidepool, and serves the demo brand "leaf"
# (a tea shop) on the embedded SQLite, with a few products, then prints how to
# call it. Ctrl-C stops the server gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash tools/bootstrap.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target tidepool -j"$(nproc)"

export TIDEPOOL_LISTEN=${TIDEPOOL_LISTEN:-127.0.0.1:8080}
export TIDEPOOL_DATA_DIR=${TIDEPOOL_DATA_DIR:-$root/data/demo}
conf=scripts/demo/tidepool.conf.lua
base="http://$TIDEPOOL_LISTEN"
key="X-Api-Key: ${LEAF_API_KEY:-demo-only-leaf-admin-key}"

./build/tidepool serve --config "$conf" &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 50); do
  curl -sf "$base/healthz" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "demo: the server did not start (see the log above)" >&2; exit 1; }
  sleep 0.1
done

bash tools/demo_seed.sh "$base" "${LEAF_API_KEY:-demo-only-leaf-admin-key}"
# the seeded visits in the reports now, not at the rollup job's next run
curl -sf -X POST "$base/admin/leaf/analytics/rollup" -H "$key" >/dev/null
mei=$(curl -sf "$base/admin/leaf/referral/distributors/guide-mei" -H "$key" | grep -o '"code":"[^"]*"' | head -1 | cut -d'"' -f4)

token=$(./build/tidepool token --config "$conf" --tenant leaf --user demo-user)
cat <<MSG

  tidepool is serving the demo brand "leaf" at $base  (data: $TIDEPOOL_DATA_DIR)
  (the README's tour walks through these)

  The console: $base/console/?tenant=leaf
    sign in as demo-owner / demo-only-console-pw  (the owner: every page)
            or demo-store / demo-only-console-pw  (the West Lake store's manager: its figures only)

  T='Authorization: Bearer $token'
  J='Content-Type: application/json'
  K='$key'
  curl -s $base/v1/leaf/catalog/products
  curl -s $base/v1/leaf/flash-sales                                   # live now
  curl -s -X POST $base/v1/leaf/flash-sales/1/buy -H "\$T"              # 201: an order at ¥9.90
  curl -s -X POST $base/admin/leaf/payments/simulate -H "\$K" -H "\$J" -d '{"order_id":1}'
  curl -s $base/v1/leaf/orders -H "\$T"                               # paid
  curl -s $base/v1/leaf/coupons/claimable
  curl -s $base/v1/leaf/group-buys                                    # 拼团: groups of 3
  curl -s $base/v1/leaf/bargain/activities                            # 砍价: 5 cuts to ¥9.90
  curl -s $base/admin/leaf/members/segments/regulars/members -H "\$K"    # the customer pool: 3 regulars
  curl -s -X POST $base/v1/leaf/signin -H "\$T"                        # 签到: 5 points a day
  curl -s $base/v1/leaf/points/me -H "\$T"                            # 积分: balance, expiry
  curl -s $base/v1/leaf/points/mall/items                             # 积分商城
  curl -s $base/v1/leaf/tiers                                         # tiers: 会员, 银卡 98 %, 金卡 95 % + Leaf Club
  curl -s $base/v1/leaf/tiers/me -H "\$T"                              # growth, tier, benefits
  curl -s -X POST $base/admin/leaf/rfm/runs -H "\$K"                    # RFM layers now (and nightly at 03:00)
  curl -s $base/admin/leaf/analytics/overview -H "\$K"                 # data ops: UV, conversion, AOV, GMV
  curl -s $base/admin/leaf/analytics/funnel -H "\$K"                   # enter -> view -> cart -> order -> pay
  curl -s "$base/admin/leaf/analytics/sources?format=csv" -H "\$K"     # by source (group chat, Moments, QR)
  # 分销: shopping guide Mei's referral code is $mei
  curl -s $base/v1/leaf/openapi.json                                  # every route

  Ctrl-C to stop.
MSG
wait $server
