-- analytics: the funnel over whole days comes from analytics_reach (each
-- visitor's last day in the period, with how many days before it the visitor
-- last did each step). Visitors do their steps on different days, from
-- different sources, order one day and pay another; days are rolled up in
-- order, then late (a day rebuilt under later ones) and again alone. Every
-- funnel over every run of days, overall and by source, for several step
-- lists, equals the plain count over the hours' rows and the order facts.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 10 },
  payments = { secret = "analytics-funnel-secret-0123" },
  analytics = {},
}

local DAY, HOUR = 86400, 3600
local shop = require("tp.testshop")
local SKU = shop.sku { price_fen = 4900, stock = 100 }

local function date_of(epoch) return kit.local_time(epoch):sub(1, 10) end

local n = 0
---One launch of visitor (a member, or a device alone) at `at` from scene, doing kinds.
local function visit(who, at, scene, kinds)
  n = n + 1
  local session = "fs" .. n
  local events = { { id = "f" .. n, kind = "enter", at = at * 1000, session = session, scene = scene } }
  for i, k in ipairs(kinds) do
    events[#events + 1] = { id = "f" .. n .. "-" .. i, kind = k, at = (at + i) * 1000, session = session,
                            product = (k == "product_view" or k == "add_to_cart") and SKU or nil,
                            keyword = k == "search" and "oolong" or nil, share_id = k == "share" and "sh" .. n or nil }
  end
  local client = who.member and kit.user(who.member) or kit.anon()
  local res = client:post("/track", { device = who.device, events = events })
  expect(res.status).to_be(200)
end

local function order(member)
  local o = kit.user(member):post("/orders", { lines = { { sku = SKU, qty = 1 } } })
  expect(o.status).to_be(201)
  kit.drain()
  return o.body.id
end

local function pay(id)
  expect(kit.admin():post("/payments/simulate", { order_id = id }).status).to_be(200)
  kit.drain()
end

local STEPS = { "enter,product_view,add_to_cart,order,pay", "product_view,pay", "add_to_cart,enter",
                "order,pay", "search,share" }

---The funnel counted plainly: visitors with a hit in [a, b) (of the source),
---the kinds they did and the orders they created and paid in it.
local function plain(a, b, steps, source)
  local done = {}
  for _, r in ipairs(kit.query([[SELECT DISTINCT visitor, kind FROM analytics_hits
      WHERE hour >= ?1 AND hour < ?2 AND (?3 = '' OR source = ?3)]], a, b, source)) do
    done[r.visitor] = done[r.visitor] or {}
    done[r.visitor][r.kind] = true
  end
  for _, r in ipairs(kit.query([[SELECT member, created_at >= ?1 AND created_at < ?2 AS o,
      coalesce(paid_at >= ?1 AND paid_at < ?2, 0) AS p FROM analytics_orders
      WHERE (?3 = '' OR source = ?3)]], a, b, source)) do
    if done[r.member] then
      if r.o == 1 then done[r.member].order = true end
      if r.p == 1 then done[r.member].pay = true end
    end
  end
  local out, list = {}, {}
  for s in steps:gmatch("[^,]+") do list[#list + 1] = s end
  for i = 1, #list do
    local c = 0
    for _, kinds in pairs(done) do
      local all = true
      for j = 1, i do all = all and kinds[list[j]] == true end
      if all then c = c + 1 end
    end
    out[i] = c
  end
  return table.concat(out, ",")
end

local function counts(steps)
  local t = {}
  for i, s in ipairs(steps) do t[i] = s.visitors end
  return table.concat(t, ",")
end

local D = {}   -- D[1..3]: three local midnights in a row

---Every funnel over every run of the three days agrees with the plain count.
local function funnels_agree()
  for i = 1, 3 do
    for j = i, 3 do
      local q = "?from=" .. date_of(D[i]) .. "&to=" .. date_of(D[j])
      for _, steps in ipairs(STEPS) do
        local got = kit.admin():get("/analytics/funnel" .. q .. "&steps=" .. steps).body
        local label = ("days %d-%d %s"):format(i, j, steps)
        expect(label .. " all " .. counts(got.steps))
          .to_be(label .. " all " .. plain(D[i], D[j] + DAY, steps, ""))
        local seen = {}
        for _, r in ipairs(got.by_source) do
          seen[r.source] = true
          expect(label .. " " .. r.source .. " " .. counts(r.steps))
            .to_be(label .. " " .. r.source .. " " .. plain(D[i], D[j] + DAY, steps, r.source))
        end
        for _, r in ipairs(kit.query([[SELECT DISTINCT source FROM analytics_hits
            WHERE hour >= ? AND hour < ?]], D[i], D[j] + DAY)) do
          expect(label .. " lists " .. r.source .. " " .. tostring(seen[r.source] == true))
            .to_be(label .. " lists " .. r.source .. " true")
        end
        local one = kit.admin():get("/analytics/funnel" .. q .. "&steps=" .. steps .. "&source=moments").body
        expect(label .. " moments " .. counts(one.steps))
          .to_be(label .. " moments " .. plain(D[i], D[j] + DAY, steps, "moments"))
      end
    end
  end
end

local AMY, BO, CY, DEE = { member = "amy", device = "amy-phone" }, { device = "bo-phone" },
  { member = "cy" }, { member = "dee" }
local cy_order

describe("the funnel over whole days", function()
  it("counts a visitor whose steps fall on different days, once, in every period holding them", function()
    kit.set_local(date_of(kit.now() + 2 * DAY) .. " 20:00:00")
    D[1] = kit.now() - 20 * HOUR
    D[2], D[3] = D[1] + DAY, D[1] + 2 * DAY
    -- day 1: amy views from Moments, bo enters from a group chat, cy adds to cart from one
    visit(AMY, D[1] + 9 * HOUR, 1154, { "product_view" })
    visit(BO, D[1] + 10 * HOUR, 1008, {})
    visit(CY, D[1] + 11 * HOUR, 1008, { "product_view", "add_to_cart" })
    kit.admin():post("/analytics/rollup")
    funnels_agree()
    -- day 2: amy adds to cart from a group chat and buys; cy orders and does not pay yet
    kit.set_local(date_of(D[2]) .. " 20:00:00")
    visit(AMY, D[2] + 12 * HOUR, 1008, { "add_to_cart" })
    pay(order("amy"))
    cy_order = order("cy")
    kit.admin():post("/analytics/rollup")
    funnels_agree()
    expect(plain(D[1], D[2] + DAY, STEPS[1], "")).to_be("3,2,2,2,1")
  end)

  it("folds late events and payments into the days they belong to", function()
    kit.set_local(date_of(D[3]) .. " 20:00:00")
    pay(cy_order)                                                        -- cy pays on day 3
    visit(DEE, D[3] + 8 * HOUR, 1053, { "product_view", "add_to_cart", "search", "share" })
    pay(order("dee"))
    visit(AMY, D[3] + 9 * HOUR, 1154, { "search" })
    visit(BO, D[1] + 22 * HOUR, 1008, { "product_view", "add_to_cart" })   -- 46 h late, into day 1
    visit(CY, D[2] + 23 * HOUR, 1154, { "share" })                          -- 21 h late, into day 2
    kit.admin():post("/analytics/rollup")
    funnels_agree()
    expect(plain(D[1], D[3] + DAY, STEPS[1], "")).to_be("4,4,4,3,3")
    -- a late search of cy's on day 2, rolled up alone: her day-3 row (she paid) learns it
    visit(CY, D[2] + 23 * HOUR + 1800, 1008, { "search" })
    expect(kit.admin():post("/analytics/rollup").body.hours).to_be(1)
    funnels_agree()
    expect(plain(D[2], D[3] + DAY, "search,share,pay", "")).to_be("3,2,2")
  end)

  it("gives the same rows and figures when any day is recomputed alone", function()
    local before = kit.query("SELECT * FROM analytics_reach ORDER BY source, visitor, day")
    for _, i in ipairs({ 2, 1, 3 }) do
      expect(kit.admin():post("/analytics/rollup", { day = date_of(D[i]) }).status).to_be(200)
      expect(kit.query("SELECT * FROM analytics_reach ORDER BY source, visitor, day")).to_equal(before)
    end
    funnels_agree()
    -- each row's next is the visitor's next day, and its x<s> how long ago it last did s
    local bad = kit.query([[SELECT count(*) AS n FROM analytics_reach r WHERE next <> coalesce(
      (SELECT min(q.day) FROM analytics_reach q WHERE q.source = r.source AND q.visitor = r.visitor
         AND q.day > r.day), 1 << 46)
      OR x4 <> coalesce((SELECT (r.day - max(q.day) + 43200) / 86400 FROM analytics_reach q
         WHERE q.source = r.source AND q.visitor = r.visitor AND q.day <= r.day AND q.mask & 16), 32767)]])[1].n
    expect(bad).to_be(0)
  end)
end)
