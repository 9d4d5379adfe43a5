-- analytics: a run folds only what came in since the last one into the days
-- it touches (lib/rollup.lua rollup.fold_day). A day rolled up in several runs
-- (its hours arriving in pieces, a late event into an hour already rolled up,
-- another into a day under a later one, a count growing on a row it had,
-- orders created and paid on a day rolled up, a login moving a device's
-- visits to a member, a login in a session without its device (in the same
-- hour, and an hour later), a merge moving part of a day's
-- and its undoing, a chain of two merges and the undoing of the second, two sessions
-- in the same second) has
-- per-day tables equal, after every run, to a rebuild of every day whole, and
-- members' first and last touch too. fold_slices_test.lua runs the same with
-- runs of a few events each (rollup_max_events, the global FOLD_MAX_EVENTS).

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 10 },
  payments = { secret = "analytics-fold-secret-0123456" },
  analytics = { rollup_max_events = FOLD_MAX_EVENTS },
  merger = {},
}

local DAY, HOUR = 86400, 3600
local shop = require("tp.testshop")
local SKU = shop.sku { price_fen = 4900, stock = 100 }
local SKU2 = shop.sku { price_fen = 1900, stock = 100 }

local function date_of(epoch) return kit.local_time(epoch):sub(1, 10) end

local n = 0
---One launch of visitor (a member, a device, or both: a login) at `at` from
---scene, doing kinds (each a kind, or {kind, sku}).
local function visit(who, at, scene, kinds)
  n = n + 1
  local session = "fo" .. n
  local events = { { id = "o" .. n, kind = "enter", at = at * 1000, session = session, scene = scene,
                     query = who.store and { store = who.store } or nil } }
  for i, k in ipairs(kinds) do
    local kind, sku = k, SKU
    if type(k) == "table" then kind, sku = k[1], k[2] end
    events[#events + 1] = { id = "o" .. n .. "-" .. i, kind = kind, at = (at + i) * 1000, session = session,
                            product = (kind == "product_view" or kind == "add_to_cart") and sku or nil,
                            keyword = kind == "search" and "oolong" or nil,
                            share_id = kind == "share" and "sh" .. n or nil }
  end
  local client = who.member and kit.user(who.member) or kit.anon()
  local res = client:post("/track", { device = who.device, events = events })
  expect(res.status).to_be(200)
end

-- the hours' rows, the per-day tables a rollup keeps and members' touch, each in a
-- fixed order
local TABLES = {
  "SELECT * FROM analytics_hits ORDER BY hour, visitor, kind, source, scene, store, guide, content, live, referrer, product",
  "SELECT * FROM analytics_days ORDER BY day, visitor, source, scene, store, guide, content, live, referrer",
  "SELECT * FROM analytics_visits ORDER BY source, visitor, day",
  "SELECT * FROM analytics_day_prev WHERE n <> 0 ORDER BY source, day, prev",
  "SELECT * FROM analytics_day_uv ORDER BY day, source",
  "SELECT * FROM analytics_day_views ORDER BY day, product",
  "SELECT * FROM analytics_reach ORDER BY source, visitor, day",
  "SELECT * FROM analytics_touch ORDER BY member",
}

local function snapshot()
  local t = {}
  for i, q in ipairs(TABLES) do t[i] = kit.query(q) end
  return t
end

local D = {}

-- the posts each run took (FOLD_POSTS, for fold_slices_test.lua)
FOLD_POSTS = {}

---Runs the rollup job's way (POST /analytics/rollup: the pending hours
---only, again while it says more: one slice of rollup_max_events at a time),
---then checks the per-day tables against every day rebuilt whole.
local function run_and_check(label)
  local posts, r = 0, nil
  repeat
    r = kit.admin():post("/analytics/rollup").body
    posts = posts + 1
  until r.more == false or posts == 200
  expect(label .. " more " .. tostring(r.more)).to_be(label .. " more false")
  FOLD_POSTS[#FOLD_POSTS + 1] = posts
  local folded = snapshot()
  for _, d in ipairs(D) do
    expect(kit.admin():post("/analytics/rollup", { day = date_of(d) }).status).to_be(200)
  end
  local whole = snapshot()
  for i, q in ipairs(TABLES) do
    expect(label .. ": " .. q .. " " .. #folded[i]).to_be(label .. ": " .. q .. " " .. #whole[i])
    expect(folded[i]).to_equal(whole[i])
  end
end

local AMY, BO, CY, DEE = { member = "amy", device = "amy-phone" }, { device = "bo-phone" },
  { member = "cy", store = "hz-west" }, { member = "dee" }

describe("a day rolled up in several runs", function()
  it("has the per-day tables of a whole rebuild after every run", function()
    kit.set_local(date_of(kit.now() + 2 * DAY) .. " 10:00:00")
    D[1] = kit.now() - 10 * HOUR
    D[2] = D[1] + DAY
    -- run 1: the day's first hours (a first pass: rebuilt whole)
    visit(AMY, D[1] + 8 * HOUR, 1154, { "product_view" })
    visit(BO, D[1] + 8 * HOUR + 600, 1008, {})
    visit(CY, D[1] + 9 * HOUR, 1008, { "product_view", "add_to_cart" })
    run_and_check("run 1")
    -- run 2: later hours in pieces, a late event into an hour rolled up, a row's count grows
    kit.set_local(date_of(D[1]) .. " 14:00:00")
    visit(AMY, D[1] + 11 * HOUR, 1008, { "add_to_cart", { "product_view", SKU2 } })  -- new source, new slot
    visit(DEE, D[1] + 12 * HOUR, 1053, { "search" })                                 -- a new visitor
    visit(BO, D[1] + 8 * HOUR + 1200, 1008, { "product_view" })                      -- late, into hour 8
    visit(CY, D[1] + 9 * HOUR + 300, 1008, { "product_view" })                       -- only counts grow
    run_and_check("run 2")
    -- run 3: the last hour of the day, more of it
    kit.set_local(date_of(D[1]) .. " 23:40:00")
    visit(DEE, D[1] + 23 * HOUR + 100, 1053, { "product_view", { "product_view", SKU2 } })
    run_and_check("run 3")
    kit.set_local(date_of(D[1]) .. " 23:55:00")
    visit(DEE, D[1] + 23 * HOUR + 3000, 1154, { "share" })
    visit(AMY, D[1] + 23 * HOUR + 3100, 1154, { "product_view" })
    run_and_check("run 4")
    -- run 5: the next day, with an order paid (its day marked: rebuilt whole)
    kit.set_local(date_of(D[2]) .. " 10:00:00")
    visit(CY, D[2] + 9 * HOUR, 1154, { "product_view" })
    local o = kit.user("amy"):post("/orders", { lines = { { sku = SKU, qty = 1 } } })
    expect(o.status).to_be(201)
    kit.drain()
    expect(kit.admin():post("/payments/simulate", { order_id = o.body.id }).status).to_be(200)
    kit.drain()
    run_and_check("run 5")
    -- run 6: a late event into the day before, under the later day's rows (cy's
    -- search on day 1 changes her day-2 reach row; bo's new key points a day-2
    -- visit's prev), and more of day 2 beside the order's bits
    kit.set_local(date_of(D[2]) .. " 12:00:00")
    visit(BO, D[2] + 11 * HOUR, 1047, {})
    visit(CY, D[1] + 20 * HOUR, 1047, { "search" })
    visit(AMY, D[2] + 11 * HOUR, 1008, { "search" })
    run_and_check("run 6")
    -- run 6b: orders on a day already rolled up fold their steps in (cy orders, then
    -- pays; dee, not seen that day, orders: a reach row of its own), beside new hits
    kit.set_local(date_of(D[2]) .. " 12:30:00")
    local cy_order = kit.user("cy"):post("/orders", { lines = { { sku = SKU2, qty = 1 } } })
    expect(cy_order.status).to_be(201)
    local dee_order = kit.user("dee"):post("/orders", { lines = { { sku = SKU, qty = 1 } } })
    expect(dee_order.status).to_be(201)
    kit.drain()
    visit(AMY, D[2] + 12 * HOUR, 1154, { "product_view" })
    run_and_check("run 6b")
    expect(kit.admin():post("/payments/simulate", { order_id = cy_order.body.id }).status).to_be(200)
    kit.drain()
    run_and_check("run 6c")
    -- run 6d: five orders at once, two of them paid (more than a run of fold_slices_test
    -- takes: their steps go in two runs)
    kit.set_local(date_of(D[2]) .. " 12:45:00")
    for i, m in ipairs({ "amy", "cy", "gus", "hal", "ivy" }) do
      local res = kit.user(m):post("/orders", { lines = { { sku = i % 2 == 0 and SKU2 or SKU, qty = 1 } } })
      expect(res.status).to_be(201)
      if i <= 2 then
        kit.drain()
        expect(kit.admin():post("/payments/simulate", { order_id = res.body.id }).status).to_be(200)
      end
    end
    kit.drain()
    run_and_check("run 6d")
    -- run 7: bo logs in on the phone: his device's visits become the member's (rebuilt whole)
    kit.set_local(date_of(D[2]) .. " 13:00:00")
    visit({ member = "bo", device = "bo-phone" }, D[2] + 12 * HOUR + 600, 1008, { "add_to_cart" })
    run_and_check("run 7")
    expect(#kit.query("SELECT 1 FROM analytics_visits WHERE visitor = 'device:bo-phone'")).to_be(0)
    -- run 7b, 7c: an anonymous device's session, then a login in it without the device
    -- (the session, not the device, becomes the member's) within the same hour: the
    -- device's earlier events become the member's (recomputed, not added to)
    kit.set_local(date_of(D[2]) .. " 13:20:00")
    local function ev(id, at, kind) return { id = id, kind = kind, at = at * 1000, session = "fo-nodev", scene = 1047 } end
    expect(kit.anon():post("/track", { device = "nd-phone", events = { ev("nd1", D[2] + 13 * HOUR + 60, "enter"),
      ev("nd2", D[2] + 13 * HOUR + 70, "page_view") } }).status).to_be(200)
    run_and_check("run 7b")
    expect(#kit.query("SELECT 1 FROM analytics_hits WHERE visitor = 'device:nd-phone'") > 0).to_be(true)
    expect(kit.user("eve"):post("/track", { events = { ev("nd3", D[2] + 13 * HOUR + 80, "page_view") } }).status)
      .to_be(200)
    run_and_check("run 7c")
    expect(#kit.query("SELECT 1 FROM analytics_hits WHERE visitor = 'device:nd-phone'")).to_be(0)
    -- run 7d, 7e: the same an hour apart: the run of the login holds no event of the
    -- hour of the device's events, which become the member's all the same (before
    -- 1.9.0 that hour kept them as the device's)
    kit.set_local(date_of(D[2]) .. " 14:30:00")
    local function gv(id, at, kind) return { id = id, kind = kind, at = at * 1000, session = "fo-gap", scene = 1047 } end
    expect(kit.anon():post("/track", { device = "gap-phone", events = { gv("gp1", D[2] + 14 * HOUR + 60, "enter"),
      gv("gp2", D[2] + 14 * HOUR + 70, "page_view") } }).status).to_be(200)
    run_and_check("run 7d")
    kit.set_local(date_of(D[2]) .. " 15:30:00")
    expect(kit.user("gwen"):post("/track", { events = { gv("gp3", D[2] + 15 * HOUR + 60, "page_view") } }).status)
      .to_be(200)
    run_and_check("run 7e")
    expect(#kit.query("SELECT 1 FROM analytics_hits WHERE visitor = 'device:gap-phone'")).to_be(0)
    -- run 8: dee merges into cy; late events of dee's into both her hours of day 1
    -- move them to cy (the fold redoes dee's day 1; her order's day is rebuilt). Both:
    -- the whole rebuild compared with ({"day"}) recomputes every hour of the day
    expect(kit.admin():post("/merger/merge", { plugin = "analytics", from = "dee", into = "cy",
      merge_id = 1 }).status).to_be(200)
    visit(DEE, D[1] + 12 * HOUR + 900, 1053, { "share" })
    visit(DEE, D[1] + 23 * HOUR + 3300, 1154, { "search" })
    run_and_check("run 8")
    expect(#kit.query("SELECT 1 FROM analytics_reach WHERE visitor = 'dee' AND day = ?", D[1])).to_be(0)
    -- run 9: the merge is undone; late events into both hours that hold dee's events as
    -- cy's give them back to dee (those hours are recomputed whole, not added to)
    expect(kit.admin():post("/merger/unmerge", { plugin = "analytics", from = "dee", into = "cy",
      merge_id = 1 }).status).to_be(200)
    visit(DEE, D[1] + 12 * HOUR + 1000, 1053, { "search" })
    visit(DEE, D[1] + 23 * HOUR + 3400, 1154, { "search" })
    run_and_check("run 9")
    expect(#kit.query("SELECT 1 FROM analytics_hits WHERE visitor = 'dee' AND hour >= ?", D[1]) > 0).to_be(true)
    -- run 10: a chain, dee into cy, then cy into amy: dee's raw events (late ones too)
    -- roll up as amy's, not cy's (before 1.7.1 they stopped at cy)
    expect(kit.admin():post("/merger/merge", { plugin = "analytics", from = "dee", into = "cy",
      merge_id = 2 }).status).to_be(200)
    expect(kit.admin():post("/merger/merge", { plugin = "analytics", from = "cy", into = "amy",
      merge_id = 3 }).status).to_be(200)
    -- a merge moves no hour's rows: the hours holding dee's and cy's rows are recomputed
    -- when a run adds to them, so late events go into every one of them (run 8's way)
    local function late_into_their_hours(s)
      visit(DEE, D[1] + 12 * HOUR + s, 1053, { "share" })
      visit(DEE, D[1] + 23 * HOUR + 3400 + s // 10, 1154, { "search" })
      visit(CY, D[1] + 9 * HOUR + s, 1008, { "search" })
      visit(CY, D[1] + 20 * HOUR + s, 1047, { "search" })
      visit(CY, D[2] + 9 * HOUR + s, 1154, { "search" })
    end
    late_into_their_hours(1100)
    run_and_check("run 10")
    local function rows_of(visitor, hour)
      return #kit.query("SELECT 1 FROM analytics_hits WHERE visitor = ? AND hour = ?", visitor, hour)
    end
    expect(#kit.query("SELECT 1 FROM analytics_hits WHERE visitor IN ('dee', 'cy') AND hour >= ?", D[1])).to_be(0)
    expect(rows_of("amy", D[1] + 12 * HOUR) > 0).to_be(true)
    -- run 11: cy's merge into amy is undone: dee's events are cy's again
    expect(kit.admin():post("/merger/unmerge", { plugin = "analytics", from = "cy", into = "amy",
      merge_id = 3 }).status).to_be(200)
    late_into_their_hours(1200)
    run_and_check("run 11")
    expect(rows_of("amy", D[1] + 12 * HOUR)).to_be(0)
    expect(rows_of("cy", D[1] + 12 * HOUR) > 0).to_be(true)
    expect(rows_of("dee", D[1] + 12 * HOUR)).to_be(0)
    -- runs 12 and 13: fay's two sessions begin in the same second, from Moments, then (a
    -- run later, added to the hour) from a group chat: first and last touch are told
    -- apart by the session's whole source, not by which run brought it
    local FAY, T = { member = "fay" }, D[1] + 14 * HOUR + 600
    visit(FAY, T, 1154, { "page_view" })
    run_and_check("run 12")
    visit(FAY, T, 1008, { "page_view" })
    run_and_check("run 13")
    local t = kit.query("SELECT first_source, last_source FROM analytics_touch WHERE member = 'fay'")[1]
    expect(t).to_equal({ first_source = "group_chat", last_source = "moments" })
  end)
end)

if not FOLD_MAX_EVENTS then
  describe("runs", function()
    it("are one post each when rollup_max_events is left at its default", function()
      for i, posts in ipairs(FOLD_POSTS) do expect("run " .. i .. ": " .. posts).to_be("run " .. i .. ": 1") end
    end)
  end)
end

