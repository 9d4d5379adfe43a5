-- bargain (砍价): the plugin's own fast suite, with catalog, orders and
-- payments on the kit's test clock. The cuts are random (tp.random), so the
-- tests check what holds for every draw: each cut >= 1 fen, the cuts add up
-- to original - floor exactly, the last cut takes the remainder (exact when
-- one cut is left), and the replay route reproduces every recorded cut.
-- lib/cuts.lua's properties over every draw path are in test/cuts_spec.lua
-- (plain Lua); the bargain.* events in events_test.lua; racing helpers in
-- tests/e2e/test_bargain.py (the kit is sequential).

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "bargain-kit-secret-0123456789" },
  bargain = {},
}

local DAY = 86400
local LIST_PRICE = 9900

-- ---- helpers

local shop = require("tp.testshop")

local function new_sku(stock)
  return (shop.sku{ price_fen = LIST_PRICE, stock = stock })
end

local function activity_body(fields)
  local now = kit.now()
  local body = { sku = new_sku(fields and fields.stock), original_price_fen = 1000, floor_price_fen = 100, helpers_needed = 3,
                 starts_at = now, ends_at = now + 30 * DAY }
  for k, v in pairs(fields or {}) do
    if k ~= "stock" then body[k] = v end
  end
  return body
end

---A new activity; returns its id.
local function new_activity(fields)
  local res = kit.admin():post("/bargain/activities", activity_body(fields))
  assert(res.status == 201, "activity refused: " .. tostring(res.status))
  return res.body.id
end

local function start(user, aid)
  return kit.user(user):post("/bargain/activities/" .. aid .. "/start")
end

---user starts a bargain; returns its public view.
local function started(user, aid)
  local res = start(user, aid)
  assert(res.status == 201, "start answered " .. tostring(res.status))
  return res.body
end

local function help(user, id)
  return kit.user(user):post("/bargains/" .. id .. "/help")
end

---Helps with each user in turn; returns the cuts made.
local function helped(id, users)
  local cuts = {}
  for i, user in ipairs(users) do
    local res = help(user, id)
    assert(res.status == 201, user .. "'s help answered " .. tostring(res.status))
    cuts[i] = res.body.cut_fen
  end
  return cuts
end

local function buy(user, id)
  return kit.user(user):post("/bargains/" .. id .. "/buy")
end

local function public(id) return kit.anon():get("/bargains/" .. id).body end
local function admin(id) return kit.admin():get("/bargains/" .. id).body end
local function order(id) return kit.admin():get("/orders/" .. id).body end

---Pays an order through the payments simulator and delivers order.paid.
local function pay(order_id)
  local res = kit.admin():post("/payments/simulate", { order_id = order_id })
  assert(res.status == 200, "simulate answered " .. tostring(res.status))
  kit.drain()
  return res.body.result.outcome
end

local function sum(list)
  local total = 0
  for _, v in ipairs(list) do total = total + v end
  return total
end

-- ---- starting and cutting

describe("a bargain", function()
  it("starts at the original price with its rules' cuts and duration", function()
    local aid = new_activity({ helpers_needed = 4, duration_seconds = 7200 })
    local b = started("ann", aid)
    expect({ b.state, b.price_fen, b.cut_fen, b.cuts_total, b.cuts_left, b.cuts_made })
      .to_equal({ "open", 1000, 0, 4, 4, 0 })
    expect({ b.initiator, b.floor_price_fen, b.seconds_left, b.expires_at })
      .to_equal({ "ann", 100, 7200, kit.now() + 7200 })
    expect({ b.can_help, b.can_buy }).to_equal({ true, false })
    expect(b.helps).to_equal({})
    expect(kit.query("SELECT due_ms FROM _tp_jobs WHERE plugin = 'bargain' AND key = ?", "expire:" .. b.id))
      .to_equal({ { due_ms = (kit.now() + 7200) * 1000 } })
    local mine = kit.user("ann"):get("/bargains").body.items
    expect(#mine).to_be(1)
    expect(mine[1].id).to_be(b.id)
  end)

  it("reaches exactly the floor after the helpers it needs, each cut at least 1 fen", function()
    local aid = new_activity({ helpers_needed = 5, pay_window_seconds = 1800 })
    local b = started("bea", aid)
    local price = 1000
    for i = 1, 5 do
      local res = help("bea-f" .. i, b.id)
      expect(res.status).to_be(201)
      local cut, after = res.body.cut_fen, res.body.bargain
      expect(cut >= 1).to_be(true)
      expect(after.price_fen).to_be(price - cut)
      expect(after.cuts_left).to_be(5 - i)
      -- never so much that a later cut would get less than 1 fen
      expect(after.price_fen - 100 >= 5 - i).to_be(true)
      price = after.price_fen
    end
    expect(price).to_be(100)
    local pb = public(b.id)
    expect({ pb.state, pb.price_fen, pb.cut_fen, pb.cuts_left, pb.can_help, pb.can_buy, pb.seconds_left })
      .to_equal({ "floor_reached", 100, 900, 0, false, true, 1800 })
    expect(pb.pay_deadline).to_be(kit.now() + 1800)
    -- the share page lists the helpers newest first
    local shown = {}
    for i, h in ipairs(pb.helps) do shown[i] = { h.seq, h.helper } end
    expect(shown).to_equal({ { 5, "bea-f5" }, { 4, "bea-f4" }, { 3, "bea-f3" }, { 2, "bea-f2" }, { 1, "bea-f1" } })
    -- the expiry gave way to the pay window
    expect(kit.query("SELECT key FROM _tp_jobs WHERE plugin = 'bargain' AND key LIKE '%:' || ?", b.id))
      .to_equal({ { key = "pay:" .. b.id } })
    local late = expect(help("bea-f6", b.id)).to_be_error(409, "floor_reached")
    expect(late.details).to_equal({ state = "floor_reached" })
    local a = kit.admin():get("/bargain/activities/" .. aid).body
    expect(a.stats).to_equal({ bargains = { floor_reached = 1 }, helps = 5, cut_fen = 900 })
  end)

  it("gives the last cut the remainder exactly, and replays every cut from its seed", function()
    local aid = new_activity({ helpers_needed = 2, original_price_fen = 5000, floor_price_fen = 1000 })
    local b = started("cat", aid)
    local cuts = helped(b.id, { "cat-1", "cat-2" })
    expect(cuts[1] >= 1 and cuts[1] <= 3999).to_be(true)   -- [1, min(4000 - 1, 2 * 4000 // 2)]
    expect(cuts[2]).to_be(4000 - cuts[1])
    local ab = admin(b.id)
    expect(ab.helps[2].draw).to_be_nil()                     -- the last cut draws nothing
    expect(ab.helps[1].draw).to_be(cuts[1])
    local r = kit.admin():get("/bargains/" .. b.id .. "/replay").body
    expect({ r.match, r.state_match, r.cut_total_fen, r.price_fen, r.replayed_price_fen })
      .to_equal({ true, true, 4000, 1000, 1000 })
    expect({ r.cuts[1].seed_gives_draw, r.cuts[1].replayed_cut_fen, r.cuts[2].replayed_cut_fen })
      .to_equal({ true, cuts[1], cuts[2] })
  end)

  it("with a first cut, lets the initiator cut once at start: one more cut than the helpers", function()
    local aid = new_activity({ helpers_needed = 1, first_cut = true, original_price_fen = 300,
                               floor_price_fen = 100 })
    local b = started("dan", aid)
    expect({ b.cuts_total, b.cuts_left, #b.helps, b.helps[1].helper }).to_equal({ 2, 1, 1, "dan" })
    local first = b.helps[1].cut_fen
    expect(b.price_fen).to_be(300 - first)
    local res = help("dan-1", b.id)
    expect(res.body.cut_fen).to_be(200 - first)
    expect(res.body.bargain.price_fen).to_be(100)
    expect(help("dan", b.id)).to_be_error(409, "floor_reached")
  end)
end)

describe("helpers", function()
  it("help once, never their own bargain, and at most K times per activity", function()
    local aid = new_activity({ helpers_needed = 5, helps_per_helper = 2 })
    local b1, b2, b3 = started("eve", aid), started("fay", aid), started("gus", aid)
    local first = helped(b1.id, { "xavier" })[1]
    expect(help("eve", b1.id)).to_be_error(409, "own_bargain")
    expect(help("xavier", b1.id)).to_be_error(409, "already_helped")
    helped(b2.id, { "xavier" })
    local over = expect(help("xavier", b3.id)).to_be_error(409, "help_limit_reached")
    expect(over.details).to_equal({ helps_per_helper = 2 })
    -- the refusals changed nothing
    local pb = public(b1.id)
    expect({ pb.cuts_left, pb.price_fen }).to_equal({ 4, 1000 - first })
    expect(public(b3.id).cuts_left).to_be(5)
    expect(kit.query("SELECT helps FROM bargain_helpers WHERE activity_id = ? AND helper = 'xavier'", aid))
      .to_equal({ { helps = 2 } })
    expect(kit.anon():post("/bargains/" .. b3.id .. "/help").status).to_be(401)
    expect(help("xavier", 999999)).to_be_error(404, "bargain_not_found")
  end)

  it("must be new users when the activity says so", function()
    local aid = new_activity({ helpers_needed = 2, new_users_only = true })
    -- old-hand has a paid order: a bargain of another activity, bought at the floor
    local other = new_activity({ helpers_needed = 1 })
    local ob = started("old-hand", other)
    helped(ob.id, { "someone" })
    expect(pay(buy("old-hand", ob.id).body.id)).to_be("paid")

    local b = started("hal", aid)
    expect(help("old-hand", b.id)).to_be_error(409, "new_users_only")
    expect(public(b.id).cuts_left).to_be(2)
    expect(help("newcomer", b.id).status).to_be(201)
  end)
end)

describe("starting", function()
  it("is one live bargain at a time, and at most starts_per_user in the activity", function()
    local aid = new_activity({ duration_seconds = 600, starts_per_user = 2 })
    local b1 = started("ida", aid)
    local busy = expect(start("ida", aid)).to_be_error(409, "bargain_in_progress")
    expect(busy.details).to_equal({ bargain_id = b1.id })
    kit.advance(600)
    expect(public(b1.id).state).to_be("expired")
    local b2 = started("ida", aid)
    expect(b2.id ~= b1.id).to_be(true)
    kit.advance(600)
    local used = expect(start("ida", aid)).to_be_error(409, "start_limit_reached")
    expect(used.details).to_equal({ starts_per_user = 2 })
  end)

  it("keeps the rules it started with when the operator changes the activity", function()
    local aid = new_activity({ helpers_needed = 3, floor_price_fen = 100, title = "old title" })
    local b = started("jay", aid)
    local patched = kit.admin():patch("/bargain/activities/" .. aid,
      { helpers_needed = 5, floor_price_fen = 500, buy_before_floor = true, title = "new title" })
    expect(patched.status).to_be(200)
    local frozen = admin(b.id)
    expect({ frozen.rules.helpers_needed, frozen.rules.floor_price_fen, frozen.rules.buy_before_floor,
             frozen.title, frozen.cuts_total })
      .to_equal({ 3, 100, false, "old title", 3 })
    expect(buy("jay", b.id)).to_be_error(409, "floor_not_reached")
    helped(b.id, { "jay-1", "jay-2", "jay-3" })
    expect(public(b.id).price_fen).to_be(100)
    local newer = started("kay", aid)
    expect({ newer.cuts_total, newer.floor_price_fen, newer.title }).to_equal({ 5, 500, "new title" })
  end)
end)

-- ---- buying

describe("buying", function()
  it("at the floor makes one order at the floor price, with what is left of the pay window", function()
    local aid = new_activity({ helpers_needed = 2, floor_price_fen = 990, original_price_fen = 9900,
                               pay_window_seconds = 1800 })
    local b = started("ivy", aid)
    local early = expect(buy("ivy", b.id)).to_be_error(409, "floor_not_reached")
    expect(early.details).to_equal({ price_fen = 9900, cuts_left = 2 })
    helped(b.id, { "ivy-1", "ivy-2" })
    kit.advance(600)
    expect(buy("not-ivy", b.id)).to_be_error(403, "not_initiator")
    local res = buy("ivy", b.id)
    expect(res.status).to_be(201)
    local o = res.body
    expect({ o.user, o.total_fen, o.status, o.pay_deadline }).to_equal({ "ivy", 990, "pending_payment", kit.now() + 1200 })
    expect({ o.lines[1].sku, o.lines[1].qty, o.lines[1].unit_price_fen }).to_equal({ b.sku, 1, 990 })
    expect({ o.campaign.plugin, o.campaign.id }).to_equal({ "bargain", tostring(b.id) })
    local again = buy("ivy", b.id)
    expect({ again.status, again.body.id }).to_equal({ 200, o.id })
    local pb = public(b.id)
    expect({ pb.state, pb.order_id, pb.can_buy }).to_equal({ "ordered", o.id, false })
    expect(help("ivy-3", b.id)).to_be_error(409, "bargain_bought")

    expect(pay(o.id)).to_be("paid")
    expect(public(b.id).state).to_be("paid")
    local bought = expect(buy("ivy", b.id)).to_be_error(409, "already_bought")
    expect(bought.details).to_equal({ order_id = o.id })
    -- paid: the clock no longer touches it
    expect(kit.query("SELECT count(*) AS n FROM _tp_jobs WHERE plugin = 'bargain' AND key IN (?, ?)",
      "pay:" .. b.id, "expire:" .. b.id)).to_equal({ { n = 0 } })
  end)

  it("early when allowed; a cancelled early order reopens the bargain, and its late payment is refunded", function()
    local aid = new_activity({ helpers_needed = 3, buy_before_floor = true, pay_window_seconds = 900 })
    local b = started("kim", aid)
    local cut = helped(b.id, { "kim-1" })[1]
    local early = buy("kim", b.id).body
    expect({ early.total_fen, early.pay_deadline }).to_equal({ 1000 - cut, kit.now() + 900 })
    expect(help("kim-2", b.id)).to_be_error(409, "bargain_bought")
    expect(kit.user("kim"):post("/orders/" .. early.id .. "/cancel").status).to_be(200)
    local pb = public(b.id)
    expect({ pb.state, pb.order_id, pb.cuts_left }).to_equal({ "open", nil, 2 })
    helped(b.id, { "kim-2", "kim-3" })
    local at_floor = buy("kim", b.id).body
    expect(at_floor.total_fen).to_be(100)
    -- the early order paid late: the bargain has another order, so the money goes back
    expect(pay(early.id)).to_be("refunding")
    expect(order(early.id).status).to_be("refunded")
    expect(public(b.id).order_id).to_be(at_floor.id)
    expect(pay(at_floor.id)).to_be("paid")
    expect(public(b.id).state).to_be("paid")
  end)

  it("a late payment takes the bargain back while it still waits; a full refund closes it", function()
    local aid = new_activity({ helpers_needed = 1, floor_price_fen = 500, pay_window_seconds = 3600 })
    local b = started("lea", aid)
    helped(b.id, { "lea-1" })
    local o = buy("lea", b.id).body
    expect(kit.admin():post("/orders/" .. o.id .. "/cancel").status).to_be(200)
    expect(public(b.id).state).to_be("floor_reached")
    expect(pay(o.id)).to_be("paid_after_cancel")
    expect({ public(b.id).state, public(b.id).order_id }).to_equal({ "paid", o.id })
    expect(kit.admin():post("/orders/" .. o.id .. "/refund", {}).status).to_be(202)
    kit.drain()
    local ab = admin(b.id)
    expect({ ab.state, ab.end_reason }).to_equal({ "closed", "refunded" })
    expect(buy("lea", b.id)).to_be_error(409, "bargain_closed")
  end)
end)

describe("buying when the catalog runs out", function()
  it("answers sold_out and leaves the bargain at the floor", function()
    local aid = new_activity({ helpers_needed = 1, stock = 1 })
    local first, second = started("so-1", aid), started("so-2", aid)
    helped(first.id, { "so-h1" })
    helped(second.id, { "so-h2" })
    expect(buy("so-1", first.id).status).to_be(201)
    expect(buy("so-2", second.id)).to_be_error(409, "sold_out")
    local pb = public(second.id)
    expect({ pb.state, pb.order_id, pb.can_buy }).to_equal({ "floor_reached", nil, true })
  end)
end)

-- ---- the clock

describe("the clock", function()
  it("closes a bargain at the floor when its pay window passes unbought", function()
    local aid = new_activity({ helpers_needed = 2, pay_window_seconds = 600 })
    local b = started("max", aid)
    helped(b.id, { "max-1", "max-2" })
    local deadline = public(b.id).pay_deadline
    expect(deadline).to_be(kit.now() + 600)
    kit.advance(599)
    local pb = public(b.id)
    expect({ pb.state, pb.seconds_left }).to_equal({ "floor_reached", 1 })
    local _, failed = kit.advance(1)
    expect(failed).to_be(0)
    local ab = admin(b.id)
    expect({ ab.stored_state, ab.end_reason, ab.ended_at, ab.seconds_left, ab.can_buy })
      .to_equal({ "closed", "pay_window_passed", deadline, 0, false })
    expect(buy("max", b.id)).to_be_error(409, "bargain_closed")
  end)

  it("closes a bargain bought at the floor whose order is never paid, and refunds a payment after", function()
    local aid = new_activity({ helpers_needed = 2, pay_window_seconds = 600 })
    local b = started("ned", aid)
    helped(b.id, { "ned-1", "ned-2" })
    kit.advance(200)
    local o = buy("ned", b.id).body
    expect(o.pay_deadline).to_be(public(b.id).pay_deadline)  -- the rest of the window, 400 s
    kit.advance(400)
    expect(order(o.id).status).to_be("cancelled")
    local ab = admin(b.id)
    expect({ ab.stored_state, ab.end_reason }).to_equal({ "closed", "order_cancelled" })
    expect(buy("ned", b.id)).to_be_error(409, "bargain_closed")
    expect(pay(o.id)).to_be("refunding")
    expect(order(o.id).status).to_be("refunded")
  end)

  it("expires an open bargain when its time is up; an early order outlives the expiry until cancelled", function()
    local aid = new_activity({ helpers_needed = 3, duration_seconds = 3600, buy_before_floor = true,
                               pay_window_seconds = 3000 })
    local b = started("ola", aid)
    helped(b.id, { "ola-1" })
    kit.advance(1000)
    expect({ public(b.id).state, public(b.id).seconds_left }).to_equal({ "open", 2600 })
    kit.advance(2599)
    helped(b.id, { "ola-2" })                                 -- the last second still cuts
    kit.advance(1)
    local ab = admin(b.id)
    expect({ ab.stored_state, ab.end_reason, ab.seconds_left, ab.can_help, ab.can_buy })
      .to_equal({ "expired", "time_up", 0, false, false })
    expect(help("ola-3", b.id)).to_be_error(409, "bargain_expired")
    expect(buy("ola", b.id)).to_be_error(409, "bargain_expired")

    local b2 = started("pia", aid)
    helped(b2.id, { "pia-1" })
    kit.advance(1000)
    local o = buy("pia", b2.id).body                          -- 3000 s to pay, past the expiry
    kit.advance(2600)
    expect(admin(b2.id).stored_state).to_be("ordered")        -- the expire job left it
    kit.advance(400)
    expect(order(o.id).status).to_be("cancelled")
    ab = admin(b2.id)
    expect({ ab.stored_state, ab.end_reason }).to_equal({ "expired", "order_cancelled" })
  end)
end)

-- ---- the operator's input

describe("activities", function()
  it("refuse each bad field, naming it, and store nothing", function()
    local cases = {
      { { floor_price_fen = 0 }, "floor_price_fen" },
      { { floor_price_fen = 1000 }, "floor_price_fen" },
      { { helpers_needed = 901 }, "helpers_needed" },                 -- 900 fen for 901 cuts
      { { helpers_needed = 900, first_cut = true }, "helpers_needed" },
      { { helpers_needed = 0 }, "helpers_needed" },
      { { original_price_fen = LIST_PRICE + 1 }, "original_price_fen" },
      { { original_price_fen = 10.5 }, "original_price_fen" },
      { { pay_window_seconds = 59 }, "pay_window_seconds" },
      { { duration_seconds = 10 }, "duration_seconds" },
      { { helps_per_helper = 0 }, "helps_per_helper" },
      { { first_cut = "yes" }, "first_cut" },
      { { status = "paused" }, "status" },
      { { surprise = 1 }, "surprise" },
    }
    local before = kit.query("SELECT count(*) AS n FROM bargain_activities")[1].n
    for _, case in ipairs(cases) do
      local res = kit.admin():post("/bargain/activities", activity_body(case[1]))
      expect({ case[2], res.status, res.body.error.code, res.body.error.details })
        .to_equal({ case[2], 400, "invalid_field", { field = case[2] } })
    end
    local body = activity_body()
    body.ends_at = body.starts_at
    expect(kit.admin():post("/bargain/activities", body).body.error.details).to_equal({ field = "ends_at" })
    expect(kit.admin():post("/bargain/activities", activity_body({ sku = "nope" }))).to_be_error(400, "sku_not_found")
    expect(kit.admin():post("/bargain/activities", { 1, 2 })).to_be_error(400, "invalid_body")
    expect(kit.query("SELECT count(*) AS n FROM bargain_activities")[1].n).to_be(before)
  end)

  it("take the tight case, fill defaults, and refuse a PATCH of the SKU", function()
    local tight = kit.admin():post("/bargain/activities", activity_body({ helpers_needed = 899, first_cut = true }))
    expect(tight.status).to_be(201)
    local body = activity_body()
    body.original_price_fen = nil
    local a = kit.admin():post("/bargain/activities", body).body
    expect({ a.original_price_fen, a.title, a.pay_window_seconds, a.duration_seconds, a.helps_per_helper,
             a.starts_per_user, a.first_cut, a.buy_before_floor, a.new_users_only, a.status, a.state })
      .to_equal({ LIST_PRICE, "title " .. a.sku, 1800, DAY, 1, 1, false, false, false, "active", "open" })
    local path = "/bargain/activities/" .. a.id
    expect(kit.admin():patch(path, { sku = "other" })).to_be_error(400, "invalid_field")
    -- 9 800 fen between the list price and the floor: one fen for each of at most 9 800 cuts
    local too_many = expect(kit.admin():patch(path, { helpers_needed = 9801 })).to_be_error(400, "invalid_field")
    expect(too_many.details).to_equal({ field = "helpers_needed" })
    expect(kit.admin():patch(path, { helpers_needed = 9800 }).status).to_be(200)
    expect(kit.admin():patch("/bargain/activities/999999", { title = "x" })).to_be_error(404, "activity_not_found")
  end)

  it("start nothing when disabled or not yet open", function()
    local aid = new_activity()
    expect(kit.admin():patch("/bargain/activities/" .. aid, { status = "disabled" }).status).to_be(200)
    expect(start("rex", aid)).to_be_error(404, "activity_not_found")
    expect(kit.anon():get("/bargain/activities/" .. aid)).to_be_error(404, "activity_not_found")
    local later = new_activity({ starts_at = kit.now() + 100 })
    local early = expect(start("rex", later)).to_be_error(409, "not_started")
    expect(early.details).to_equal({ opens_at = kit.now() + 100 })
    kit.advance(100)
    expect(start("rex", later).status).to_be(201)
  end)
end)
