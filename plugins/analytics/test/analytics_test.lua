-- analytics: an order freezes the last touch within the window; the rollup
-- and the overview; a member merge moves facts and later rollups. Intake
-- runs in the host (POST /track), through the kit's real router.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 10 },
  payments = { secret = "analytics-kit-secret-0123" },
  analytics = { attribution_window_days = 7 },
  merger = {},
}

local DAY = 86400
local shop = require("tp.testshop")
local SKU = shop.sku { price_fen = 9900, stock = 100 }

local n = 0
local DATE
---Posts one batch for user (or a device alone); the events' ids are fresh.
local function track(user, device, events)
  local client = user and kit.user(user) or kit.anon()
  for _, e in ipairs(events) do
    n = n + 1
    e.id = e.id or ("ev-" .. n)
    e.at = e.at or kit.now() * 1000
  end
  return client:post("/track", { device = device, events = events })
end

local function buy(user)
  local o = kit.user(user):post("/orders", { lines = { { sku = SKU, qty = 1 } } })
  expect(o.status).to_be(201)
  expect(kit.admin():post("/payments/simulate", { order_id = o.body.id }).status).to_be(200)
  return o.body
end

describe("attribution", function()
  it("freezes the member's last touch on the order, device sessions included", function()
    expect(track(nil, "dev-1", { { kind = "enter", session = "s1", scene = 1047,
      query = { store = "hz-west" } } }).body).to_equal({ accepted = 1, duplicates = 0 })
    track("lin", "dev-1", { { kind = "page_view", session = "s1" } })   -- she logs in
    local o = buy("lin")
    expect(o.attribution.source.source).to_be("qr_code")
    expect(o.attribution.source.store).to_be("hz-west")
  end)

  it("takes the latest of her own and her devices' sessions, never a crawler's", function()
    track("kai", "dev-k1", { { kind = "enter", session = "k1", scene = 1008 } })   -- group chat
    kit.advance(60)
    track(nil, "dev-k2", { { kind = "enter", session = "k2", scene = 1047 } })     -- a QR code
    track("kai", "dev-k2", { { kind = "page_view", session = "k2" } })            -- she logs in there
    expect(buy("kai").attribution.source.source).to_be("qr_code")
    kit.advance(60)
    track("kai", "dev-k1", { { kind = "enter", session = "k3", scene = 1129 } })   -- a crawler
    expect(buy("kai").attribution.source.source).to_be("qr_code")
    kit.advance(60)
    track("kai", "dev-k1", { { kind = "enter", session = "k4", scene = 1008 } })
    local o = buy("kai")
    expect({ o.attribution.source.source, o.attribution.source.at }).to_equal({ "group_chat", kit.now() })
  end)

  it("gives no source once the last touch is older than the window", function()
    kit.advance(8 * DAY)
    local o = buy("lin")
    expect(o.attribution.source).to_be_nil()
  end)
end)

describe("rollup and overview", function()
  it("counts visitors, payers and GMV of the day from the rollups", function()
    local t = kit.localtime(kit.now() + DAY)
    DATE = ("%04d-%02d-%02d"):format(t.year, t.month, t.day)
    kit.set_local(DATE .. " 10:00:00")
    track("amy", "dev-2", { { kind = "enter", session = "s2", scene = 1008 } })
    track(nil, "dev-3", { { kind = "enter", session = "s3", scene = 1154 } })
    buy("amy")
    kit.drain()
    expect(kit.admin():post("/analytics/rollup").body.hours).to_be(1)
    local r = kit.admin():get("/analytics/overview?from=" .. DATE .. "&to=" .. DATE)
    expect(r.status).to_be(200)
    expect(r.body.total.uv).to_be(2)
    expect(r.body.total.payers).to_be(1)
    expect(r.body.total.gmv_fen).to_be(9900)
    expect(r.body.total.conversion).to_be(0.5)
  end)

  it("moves a merged member's facts at once, and her visits when their day is rolled up again", function()
    local res = kit.admin():post("/merger/merge", { plugin = "analytics", from = "amy", into = "bea", merge_id = 1 })
    expect(res.status).to_be(200)
    expect(kit.query("SELECT count(*) AS n FROM analytics_hits WHERE visitor = 'amy'")[1].n).to_be(1)
    expect(kit.admin():post("/analytics/rollup", { day = DATE }).status).to_be(200)
    expect(kit.query("SELECT count(*) AS n FROM analytics_hits WHERE visitor = 'amy'")[1].n).to_be(0)
    expect(kit.query("SELECT count(*) AS n FROM analytics_hits WHERE visitor = 'bea'")[1].n).to_be(1)
    local src = kit.admin():get("/analytics/sources?from=" .. DATE .. "&to=" .. DATE).body
    local rows = {}
    for _, row in ipairs(src.items) do rows[row.key] = row end
    expect(rows.group_chat.visitors).to_be(1)
    expect(kit.query("SELECT member FROM analytics_orders WHERE member IN ('amy', 'bea')")[1].member).to_be("bea")
    expect(kit.admin():get("/analytics/members/bea").body.first.source).to_be("group_chat")
    -- her orders take the merged member's last touch: bea has no session of her own
    expect(buy("bea").attribution.source.source).to_be("group_chat")
  end)

  it("moves a merged member's touch whole: the earlier first, the later last", function()
    local t0 = kit.now()
    track("gus", nil, { { kind = "enter", session = "g1", scene = 1008, at = (t0 - 300) * 1000,
      query = { store = "hz-west" } } })
    track("hal", nil, { { kind = "enter", session = "h1", scene = 1154, at = (t0 - 200) * 1000 } })
    track("gus", nil, { { kind = "enter", session = "g2", scene = 1047, at = (t0 - 100) * 1000 } })
    expect(kit.admin():post("/analytics/rollup").status).to_be(200)
    local res = kit.admin():post("/merger/merge", { plugin = "analytics", from = "gus", into = "hal", merge_id = 10 })
    expect(res.status).to_be(200)
    local hal = kit.admin():get("/analytics/members/hal").body
    expect({ hal.first.source, hal.first.scene, hal.first.store, hal.first.at })
      .to_equal({ "group_chat", 1008, "hz-west", t0 - 300 })
    expect({ hal.last.source, hal.last.scene, hal.last.at }).to_equal({ "qr_code", 1047, t0 - 100 })
    expect(kit.admin():get("/analytics/members/gus").body.first).to_be_nil()
  end)

  it("follows a chain of merges to the last touch: amy into bea, then bea into cat", function()
    local res = kit.admin():post("/merger/merge", { plugin = "analytics", from = "bea", into = "cat", merge_id = 2 })
    expect(res.status).to_be(200)
    expect(kit.query("SELECT from_user, into_user FROM analytics_merge_final WHERE from_user IN ('amy', 'bea') ORDER BY from_user"))
      .to_equal({ { from_user = "amy", into_user = "cat" }, { from_user = "bea", into_user = "cat" } })
    expect(buy("cat").attribution.source.source).to_be("group_chat")
    res = kit.admin():post("/merger/unmerge", { plugin = "analytics", from = "bea", into = "cat", merge_id = 2 })
    expect(res.status).to_be(200)
    expect(kit.query("SELECT from_user, into_user FROM analytics_merge_final WHERE from_user IN ('amy', 'bea') ORDER BY from_user"))
      .to_equal({ { from_user = "amy", into_user = "bea" } })
  end)
end)
