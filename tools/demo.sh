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
if [ "$(curl -sf "$base/v1/leaf/catalog/products" | grep -c '"id"')" -eq 0 ]; then
  post /admin/leaf/catalog/products '{"name":"West Lake Longjing 2026","description":"Spring harvest, Hangzhou",
    "skus":[{"code":"tea-001","title":"250 g tin","price_fen":12800,"stock":500},
            {"code":"tea-002","title":"50 g sampler","price_fen":2990,"stock":2000}]}'
  post /admin/leaf/catalog/products '{"name":"Anji White Tea","skus":[{"code":"tea-101","title":"100 g","price_fen":9900,"stock":300}]}'
  post /admin/leaf/catalog/products '{"name":"Tea cup set","skus":[{"code":"cup-001","title":"4 cups","price_fen":15900,"stock":80}]}'
fi

token=$(./build/tidepool token --config "$conf" --tenant leaf --user demo-user)
cat <<MSG

  tidepool is serving the demo brand "leaf" at $base  (data: $TIDEPOOL_DATA_DIR)

  curl -s $base/v1/leaf/catalog/products
  curl -s $base/v1/leaf/catalog/products/1
  curl -s $base/v1/leaf/catalog/skus/tea-001
  curl -s -X POST $base/admin/leaf/catalog/skus/tea-001/stock -H '$key' \\
       -H 'Content-Type: application/json' -d '{"delta":-10}'
  curl -s $base/admin/leaf/plugins -H '$key'
  curl -s $base/metrics
  a user token:  $token

  Ctrl-C to stop.
MSG
wait $server
