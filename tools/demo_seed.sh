#!/usr/bin/env bash
# Seeds the demo brand on a running host, once (what exists is left alone): in
# both tenants, leaf and leaf-rehearsal, five products (one the Leaf Club membership, one sold
# only in presale), a coupon, a 满减, and one
# campaign of each kind: a flash sale, a group buy, a bargain, a presale, a store with a
# shopping guide (and a pickup counter with its clerk), three regular members with their tag, two points-mall items; then it reloads the
# Double 12 campaign, which needs those products and the tag; six anonymous visits to
# leaf (data ops); and two console users of leaf. tools/demo.sh calls it; so does
# tests/e2e/test_demo.py.
#
#   bash tools/demo_seed.sh http://127.0.0.1:8080 demo-only-leaf-admin-key
set -euo pipefail
base=$1
key="X-Api-Key: $2"

post() {  # path json
  curl -sf -X POST "$base$1" -H "$key" -H 'Content-Type: application/json' -d "$2" >/dev/null
}
count() {  # path: how many items a list answers with
  curl -sf "$base$1" -H "$key" | grep -o '"id":' | wc -l
}

# seed TENANT: the demo brand's products and one campaign of each kind, once
seed() {
  local t=$1 now
  now=$(curl -sf "$base/admin/$t/clock" -H "$key" | grep -o '"now":[0-9]*' | cut -d: -f2)
  if [ "$(count /v1/$t/catalog/products)" -eq 0 ]; then
    post /admin/$t/catalog/products '{"name":"West Lake Longjing 2026","description":"Spring harvest, Hangzhou",
      "skus":[{"code":"tea-001","title":"250 g tin","price_fen":12800,"stock":500},
              {"code":"tea-002","title":"50 g sampler","price_fen":2990,"stock":2000}]}'
    post /admin/$t/catalog/products '{"name":"Anji White Tea","skus":[{"code":"tea-101","title":"100 g","price_fen":9900,"stock":300}]}'
    post /admin/$t/catalog/products '{"name":"Tea cup set","skus":[{"code":"cup-001","title":"4 cups","price_fen":15900,"stock":80}]}'
    # 付费会员: the Leaf Club, gold for 30 days (the tiers plugin's paid membership)
    post /admin/$t/catalog/products '{"name":"Leaf Club","skus":[{"code":"club-30","title":"30 days of gold","price_fen":1990,"stock":100000}]}'
  fi
  # a 满减 coupon: ¥20 off from ¥199, valid 7 days from claim, one per user
  if [ "$(count /admin/$t/coupons/templates)" -eq 0 ]; then
    post /admin/$t/coupons/templates "{\"name\":\"¥20 off from ¥199\",\"kind\":\"threshold\",
      \"amount_off_fen\":2000,\"min_spend_fen\":19900,\"valid_days\":7,\"total_quantity\":1000,
      \"per_user_limit\":1}"
  fi
  # 促销: a 满减 in two tiers on every checkout at list price, for 30 days: ¥30 off from
  # ¥300, ¥60 off from ¥500
  if [ "$(count /admin/$t/promotions)" -eq 0 ]; then
    post /admin/$t/promotions "{\"name\":\"满300减30, 满500减60\",\"kind\":\"full_reduction\",
      \"tiers\":[{\"min_fen\":30000,\"off_fen\":3000},{\"min_fen\":50000,\"off_fen\":6000}],
      \"starts_at\":$now,\"ends_at\":$((now + 30 * 86400))}"
  fi
  # 秒杀: the sampler at ¥9.90, live now and for a week, one per user
  if [ "$(count /v1/$t/flash-sales)" -eq 0 ]; then
    post /admin/$t/flash-sales "{\"sku\":\"tea-002\",\"price_fen\":990,\"quantity\":100,
      \"per_user_limit\":1,\"starts_at\":$now,\"ends_at\":$((now + 7 * 86400))}"
  fi
  # 拼团: white tea in groups of 3 at ¥69 (the leader pays ¥59), a day to fill; a group
  # two-thirds paid at expiry is filled (模拟成团)
  if [ "$(count /admin/$t/group-buys)" -eq 0 ]; then
    post /admin/$t/group-buys "{\"sku\":\"tea-101\",\"group_size\":3,\"price_fen\":6900,
      \"leader_price_fen\":5900,\"group_ttl_seconds\":86400,\"starts_at\":$now,
      \"ends_at\":$((now + 30 * 86400)),\"per_user_limit\":2,\"per_order_limit\":1,
      \"virtual_fill\":true,\"virtual_fill_min_percent\":67}"
  fi
  # 砍价: the cup set from ¥159 to ¥9.90 with 5 friends' cuts, a day to bargain
  if [ "$(count /admin/$t/bargain/activities)" -eq 0 ]; then
    post /admin/$t/bargain/activities "{\"sku\":\"cup-001\",\"original_price_fen\":15900,
      \"floor_price_fen\":990,\"helpers_needed\":5,\"duration_seconds\":86400,
      \"pay_window_seconds\":1800,\"starts_at\":$now,\"ends_at\":$((now + 30 * 86400))}"
  fi
  # 分销: the West Lake store and its shopping guide Mei
  if [ "$(count /admin/$t/referral/stores)" -eq 0 ]; then
    post /admin/$t/referral/stores '{"id":"hz-west","name":"West Lake store"}'
    post /admin/$t/referral/distributors '{"user":"guide-mei","kind":"guide","store":"hz-west"}'
  fi
  # 自提: the West Lake store takes pickups; clerk Lan redeems its codes (核销)
  if [ "$(count /admin/$t/fulfilment/stores)" -eq 0 ]; then
    post /admin/$t/fulfilment/stores '{"id":"hz-west","name":"West Lake store","address":"杭州市西湖区北山街 9 号",
      "hours":"10:00-21:00"}'
    post /admin/$t/fulfilment/stores/hz-west/staff '{"user":"clerk-lan"}'
  fi
  # the customer pool: three regulars (store cards), tagged by hand, and a rule tag
  # the pool keeps true; Double 12 drops its coupon to the segment of regulars
  if [ "$(count /admin/$t/members)" -eq 0 ]; then
    post /admin/$t/members/tags '{"name":"regular"}'
    post /admin/$t/members/tags '{"name":"big_spender","kind":"rule",
      "rule":{"field":"net_fen","op":"gte","value":50000}}'
    for card in 001 002 003; do
      post /admin/$t/members/identify "{\"identities\":[{\"channel\":\"card\",\"id\":\"leaf-$card\"}],
        \"profile\":{\"city\":\"杭州\",\"tea\":\"green\"},\"source\":{\"channel\":\"store\",\"store\":\"hz-west\"}}"
    done
    post /admin/$t/members/tags/regular/assign '{"members":["m1","m2","m3"]}'
  fi
  # 积分商城: the cup set for 20,000 points, the ¥20 coupon for 500
  if [ "$(count /admin/$t/points/mall/items)" -eq 0 ]; then
    post /admin/$t/points/mall/items '{"kind":"sku","sku":"cup-001","title":"Tea cup set","points_price":20000,"stock":10}'
    post /admin/$t/points/mall/items '{"kind":"coupon","template_id":1,"title":"¥20 off from ¥199","points_price":500,"stock":100}'
  fi
  # 预售: next spring's Longjing before it is picked, 定金膨胀: a ¥50 deposit worth ¥100 at the
  # balance, on ¥259 (list ¥299). Deposits from now for 10 days (to the minute), the balance
  # (尾款) the 2 days after; it ships from the day after
  if [ "$(count /admin/$t/presales)" -eq 0 ]; then
    post /admin/$t/catalog/products '{"name":"Longjing 2027 Pre-Qingming","skus":[{"code":"tea-201",
      "title":"250 g tin, 2027 harvest","price_fen":29900,"stock":200}]}'
    post /admin/$t/presales "{\"sku\":\"tea-201\",\"kind\":\"deposit\",\"price_fen\":25900,
      \"deposit_fen\":5000,\"deposit_worth_fen\":10000,\"quantity\":100,\"per_user_limit\":2,
      \"per_order_limit\":2,\"starts_at\":$now,\"ends_at\":$((now / 60 * 60 + 10 * 86400)),
      \"balance_starts_at\":$((now / 60 * 60 + 10 * 86400)),\"balance_ends_at\":$((now / 60 * 60 + 12 * 86400)),
      \"ships_from\":$((now / 60 * 60 + 13 * 86400))}"
  fi
  # the campaign scripts: refused at the first start (no products yet), loaded now
  post /admin/$t/reload '{"plugin":"campaign_double12"}'
}
# data ops: visits the mini-program reported in the last minutes (anonymous devices from
# a group chat, Moments and a QR code in the store; one adds to cart), so that the
# reports have visitors before anyone buys. Event ids are fixed: a rerun is skipped as
# duplicates by the host.
visits() {
  local t=$1 at i scene q extra
  at=$(( $(curl -sf "$base/admin/$t/clock" -H "$key" | grep -o '"now":[0-9]*' | cut -d: -f2) * 1000 ))
  for i in 1 2 3 4 5 6; do
    scene=1008 q='{"store":"hz-west","guide":"guide-mei"}' extra=""
    if [ $i -gt 3 ]; then scene=1154 q='{"content":"spring-harvest"}'; fi
    if [ $i -gt 5 ]; then scene=1011 q='{"store":"hz-west"}'; fi
    if [ $i -eq 2 ]; then
      extra=",{\"id\":\"seed-2-3\",\"kind\":\"add_to_cart\",\"at\":$((at - 580000)),\"session\":\"seed-s2\",\"product\":\"tea-001\"}"
    fi
    curl -sf -X POST "$base/v1/$t/track" -H 'Content-Type: application/json' -H "X-Device-Id: seed-device-$i" \
      -d "{\"events\":[{\"id\":\"seed-$i-1\",\"kind\":\"enter\",\"at\":$((at - 600000 + i * 1000)),
           \"session\":\"seed-s$i\",\"scene\":$scene,\"query\":$q},
          {\"id\":\"seed-$i-2\",\"kind\":\"product_view\",\"at\":$((at - 590000 + i * 1000)),
           \"session\":\"seed-s$i\",\"product\":\"tea-00$(( i % 2 + 1 ))\"}$extra]}" >/dev/null
  done
}
# the console (/console/?tenant=leaf): an owner, and the West Lake store's manager, who
# sees that store's figures only; demo passwords, like the demo's keys: never ship them
console_users() {
  local t=$1
  if ! curl -sf "$base/admin/$t/console/users" -H "$key" | grep -q '"name":"demo-owner"'; then
    post /admin/$t/console/users '{"name":"demo-owner","password":"demo-only-console-pw","role":"owner"}'
    post /admin/$t/console/users '{"name":"demo-store","password":"demo-only-console-pw","role":"store_manager","store":"hz-west"}'
  fi
}
seed leaf
seed leaf-rehearsal
visits leaf
console_users leaf
