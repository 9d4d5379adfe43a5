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

post() {  # path json
  curl -sf -X POST "$base$1" -H "$key" -H 'Content-Type: application/json' -d "$2" >/dev/null
}
count() {  # path: how many items a list answers with
  curl -sf "$base$1" -H "$key" | grep -o '"id":' | wc -l
}
if [ "$(count /v1/leaf/catalog/products)" -eq 0 ]; then
  post /admin/leaf/catalog/products '{"name":"West Lake Longjing 2026","description":"Spring harvest, Hangzhou",
    "skus":[{"code":"tea-001","title":"250 g tin","price_fen":12800,"stock":500},
            {"code":"tea-002","title":"50 g sampler","price_fen":2990,"stock":2000}]}'
  post /admin/leaf/catalog/products '{"name":"Anji White Tea","skus":[{"code":"tea-101","title":"100 g","price_fen":9900,"stock":300}]}'
  post /admin/leaf/catalog/products '{"name":"Tea cup set","skus":[{"code":"cup-001","title":"4 cups","price_fen":15900,"stock":80}]}'
fi
now=$(date +%s)
# a 满减 coupon: ¥20 off from ¥199, valid 7 days from claim, one per user
if [ "$(count /admin/leaf/coupons/templates)" -eq 0 ]; then
  post /admin/leaf/coupons/templates "{\"name\":\"¥20 off from ¥199\",\"kind\":\"threshold\",
    \"amount_off_fen\":2000,\"min_spend_fen\":19900,\"valid_days\":7,\"total_quantity\":1000,
    \"per_user_limit\":1}"
fi
# a flash sale of the sampler that is live now and for a week: ¥9.90, one per user
if [ "$(count /v1/leaf/flash-sales)" -eq 0 ]; then
  post /admin/leaf/flash-sales "{\"sku\":\"tea-002\",\"price_fen\":990,\"quantity\":100,
    \"per_user_limit\":1,\"starts_at\":$now,\"ends_at\":$((now + 7 * 86400))}"
fi

token=$(./build/tidepool token --config "$conf" --tenant leaf --user demo-user)
cat <<MSG

  tidepool is serving the demo brand "leaf" at $base  (data: $TIDEPOOL_DATA_DIR)
  (the README's tour walks through these)

  T='Authorization: Bearer $token'
  J='Content-Type: application/json'
  K='$key'
  curl -s $base/v1/leaf/catalog/products
  curl -s $base/v1/leaf/flash-sales                                   # live now
  curl -s -X POST $base/v1/leaf/flash-sales/1/buy -H "\$T"              # 201: an order at ¥9.90
  curl -s -X POST $base/admin/leaf/payments/simulate -H "\$K" -H "\$J" -d '{"order_id":1}'
  curl -s $base/v1/leaf/orders -H "\$T"                               # paid
  curl -s $base/v1/leaf/coupons/claimable
  curl -s $base/v1/leaf/openapi.json                                  # every route

  Ctrl-C to stop.
MSG
wait $server
