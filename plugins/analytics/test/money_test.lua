-- analytics: money over whole days comes from per-day tables (analytics_day_orders,
-- analytics_day_products, the payer/buyer/part keys, analytics_buyers), rebuilt by
-- the rollup for every day an order event touched. An order paid on one day and
-- refunded on the next lowers the day it was paid, once the rollup has run; every
-- report agrees with the order facts counted plainly.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 10 },
  payments = { secret = "analytics-money-secret-01234" },
  analytics = {},
}

local DAY = 86400
local shop = require("tp.testshop")
local TEA = shop.sku { price_fen = 5000, stock = 100 }
local CUP = shop.sku { price_fen = 1200, stock = 100 }

local function date_of(epoch) return kit.local_time(epoch):sub(1, 10) end

local function buy(member, lines)
  local o = kit.user(member):post("/orders", { lines = lines })
  expect(o.status).to_be(201)
  expect(kit.admin():post("/payments/simulate", { order_id = o.body.id }).status).to_be(200)
  kit.drain()
  return o.body.id
end

local D1

---Runs the rollup until nothing is left (a run rebuilds one dirty day beside its hours).
local function rollup()
  local runs = 0
  repeat
    local r = kit.admin():post("/analytics/rollup")
    expect(r.status).to_be(200)
    runs = runs + 1
  until not r.body.more or runs > 10
end

---Overview, products, campaigns and retention over [from, to] against the facts.
local function money_agrees(from, to)
  local a, b = from, to + DAY
  local q = "?from=" .. date_of(from) .. "&to=" .. date_of(to)
  local want = kit.query([[SELECT coalesce(sum(paid_fen > refunded_fen), 0) AS orders,
      count(DISTINCT CASE WHEN paid_fen > refunded_fen THEN member END) AS payers,
      coalesce(sum(paid_fen - refunded_fen), 0) AS gmv_fen FROM analytics_orders
    WHERE paid_at >= ? AND paid_at < ?]], a, b)[1]
  local got = kit.admin():get("/analytics/overview" .. q).body.total
  expect(("%d %d %d"):format(got.orders, got.payers, got.gmv_fen))
    .to_be(("%d %d %d"):format(want.orders, want.payers, want.gmv_fen))
  local products = {}
  for _, r in ipairs(kit.admin():get("/analytics/products" .. q).body.items) do products[r.product] = r end
  for _, w in ipairs(kit.query([[SELECT l.sku AS sku,
      count(DISTINCT CASE WHEN o.paid_fen > o.refunded_fen THEN o.member END) AS buyers,
      coalesce(sum(CASE WHEN o.paid_fen > o.refunded_fen THEN l.qty END), 0) AS units,
      sum(l.paid_fen - l.refunded_fen) AS gmv FROM analytics_orders o
      JOIN analytics_lines l ON l.order_id = o.order_id
      WHERE o.paid_at >= ? AND o.paid_at < ? GROUP BY l.sku]], a, b)) do
    local p = products[w.sku]
    expect(("%s %d %d %d"):format(w.sku, p.buyers, p.units, p.gmv_fen))
      .to_be(("%s %d %d %d"):format(w.sku, w.buyers, w.units, w.gmv))
  end
  local camps = {}
  for _, r in ipairs(kit.admin():get("/analytics/campaigns" .. q).body.items) do camps[r.campaign] = r end
  for _, w in ipairs(kit.query([[SELECT coalesce(campaign, 'none') AS campaign,
      count(DISTINCT member) AS participants,
      coalesce(sum(paid_at >= ?1 AND paid_at < ?2 AND paid_fen > refunded_fen), 0) AS orders,
      coalesce(sum(CASE WHEN paid_at >= ?1 AND paid_at < ?2 THEN paid_fen - refunded_fen END), 0) AS gmv
      FROM analytics_orders WHERE (created_at >= ?1 AND created_at < ?2) OR (paid_at >= ?1 AND paid_at < ?2)
      GROUP BY 1]], a, b)) do
    local c = camps[w.campaign]
    expect(("%s %d %d %d"):format(w.campaign, c.participants, c.orders, c.gmv_fen))
      .to_be(("%s %d %d %d"):format(w.campaign, w.participants, w.orders, w.gmv))
  end
end

describe("money over whole days", function()
  it("follows the orders within two seconds, without a rollup", function()
    kit.set_local(date_of(kit.now() + 5 * DAY) .. " 09:00:00")
    local day = date_of(kit.now())
    local function total()
      return kit.admin():get("/analytics/overview?from=" .. day .. "&to=" .. day).body.total
    end
    expect(total().orders).to_be(0)
    buy("cat", { { sku = TEA, qty = 1 } })
    kit.advance(2)   -- the money job of these two seconds
    local t = total()
    expect(("%d %d %d"):format(t.orders, t.payers, t.gmv_fen)).to_be("1 1 5000")
    expect(#kit.admin():get("/analytics/campaigns?from=" .. day .. "&to=" .. day).body.items).to_be(1)
  end)

  it("follows a refund back to the day the order was paid, once rolled up", function()
    kit.set_local(date_of(kit.now() + 2 * DAY) .. " 10:00:00")
    D1 = kit.now() - 10 * 3600
    local first = buy("ann", { { sku = TEA, qty = 2 }, { sku = CUP, qty = 1 } })
    buy("ben", { { sku = TEA, qty = 1 } })
    rollup()
    money_agrees(D1, D1)
    local day1 = kit.admin():get("/analytics/overview?from=" .. date_of(D1) .. "&to=" .. date_of(D1)).body.total
    expect(("%d %d %d"):format(day1.orders, day1.payers, day1.gmv_fen)).to_be("2 2 16200")
    -- the next day: ann buys again, and her first order is refunded in full
    kit.advance(DAY)
    buy("ann", { { sku = CUP, qty = 3 } })
    expect(kit.admin():post("/orders/" .. first .. "/refund", {}).status).to_be(202)
    kit.drain()
    rollup()
    money_agrees(D1, D1)
    money_agrees(D1 + DAY, D1 + DAY)
    money_agrees(D1, D1 + DAY)
    day1 = kit.admin():get("/analytics/overview?from=" .. date_of(D1) .. "&to=" .. date_of(D1)).body.total
    expect(("%d %d %d"):format(day1.orders, day1.payers, day1.gmv_fen)).to_be("1 1 5000")
    -- ann's first purchase is now the second day's: no repurchase yet
    local cohorts = kit.admin():get("/analytics/retention?from=" .. date_of(D1) .. "&to=" .. date_of(D1 + DAY))
      .body.cohorts
    local members, again = 0, 0
    for _, c in ipairs(cohorts) do members, again = members + c.members, again + c.repurchased_30 end
    expect(("%d %d"):format(members, again)).to_be("2 0")
  end)
end)
