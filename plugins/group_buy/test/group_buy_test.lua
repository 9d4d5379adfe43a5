-- group_buy (拼团): the plugin's own fast suite, with catalog, orders and
-- payments on the kit's test clock. A seat counts when orders' order.paid is
-- delivered, so every payment is followed by kit.drain(); expiries and pay
-- windows are reached with kit.advance. The e2e suite (tests/e2e/test_group_buy.py)
-- keeps what the kit cannot do: fifty payers racing for one seat, a kill -9
-- in the middle of refunds, and the group.* events (the kit has no subscriber
-- to record them; see the tests' note at "the group.* events").

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "group-buy-kit-secret-0123456789" },
  group_buy = {},
}

local DAY, HOUR = 86400, 3600
local LIST_PRICE, GROUP_PRICE, LEADER_PRICE = 9900, 5900, 4900

-- ---- helpers

local shop = require("tp.testshop")

---A fresh SKU at the list price; returns its code.
local function new_sku(stock)
  return (shop.sku{ price_fen = LIST_PRICE, stock = stock })
end

---The body of a valid activity on a fresh SKU, with fields overriding it.
local function activity_body(fields)
  local now = kit.now()
  local body = { sku = new_sku(fields and fields.stock), group_size = 3, price_fen = GROUP_PRICE,
    group_ttl_seconds = DAY, unpaid_timeout_seconds = 900, starts_at = now - 60,
    ends_at = now + 30 * DAY, per_user_limit = 1, per_order_limit = 1 }
  for k, v in pairs(fields or {}) do
    if k ~= "stock" then body[k] = v end
  end
  return body
end

---A new activity; returns its id.
local function new_activity(fields)
  local res = kit.admin():post("/group-buys", activity_body(fields))
  assert(res.status == 201, "activity refused: " .. tostring(res.status) .. " "
    .. tostring(res.body.error and res.body.error.details and res.body.error.details.field))
  return res.body.id
end

local function open(user, aid, body, key)
  return kit.user(user):post("/group-buys/" .. aid .. "/open", body or {},
    key and { ["Idempotency-Key"] = key } or nil)
end

local function join(user, aid, gid, body, key)
  return kit.user(user):post("/group-buys/" .. aid .. "/groups/" .. gid .. "/join", body or {},
    key and { ["Idempotency-Key"] = key } or nil)
end

---Pays an order through the payments simulator and delivers order.paid.
local function pay(order_id)
  local res = kit.admin():post("/payments/simulate", { order_id = order_id })
  assert(res.status == 200, "simulate answered " .. tostring(res.status))
  kit.drain()
  return res.body.result.outcome
end

---A group as the operator sees it (with members).
local function group(aid, gid)
  return kit.admin():get("/group-buys/" .. aid .. "/groups/" .. gid).body
end

local function order(id)
  return kit.admin():get("/orders/" .. id).body
end

local function stock(code)
  return kit.anon():get("/catalog/skus/" .. code).body.stock
end

---user opens a group and pays: returns the group id and the order.
local function opened_and_paid(user, aid)
  local res = open(user, aid)
  assert(res.status == 201, "open answered " .. tostring(res.status))
  assert(pay(res.body.order.id) == "paid")
  return res.body.group.id, res.body.order
end

---user joins the group and pays: returns the order.
local function joined_and_paid(user, aid, gid)
  local res = join(user, aid, gid)
  assert(res.status == 201, "join answered " .. tostring(res.status))
  assert(pay(res.body.order.id) == "paid")
  return res.body.order
end

---The members' {user, role, seat_no, state} in seat order.
local function seats(g)
  local out = {}
  for i, m in ipairs(g.members) do out[i] = { m.user, m.role, m.seat_no, m.state } end
  return out
end

---Refunds of an order as {reason, amount_fen, status}.
local function refunds(id)
  local out = {}
  for i, r in ipairs(order(id).refunds or {}) do out[i] = { r.reason, r.amount_fen, r.status } end
  return out
end

local function expire_jobs(gid)
  return kit.query("SELECT count(*) AS n FROM _tp_jobs WHERE plugin = 'group_buy' AND key = ?",
    "gb-expire:" .. gid)[1].n
end

-- ---- forming

describe("a group forms", function()
  it("when its last seat is paid, and only then are its orders released", function()
    local aid = new_activity({ leader_price_fen = LEADER_PRICE, stock = 50 })
    local code = kit.admin():get("/group-buys/" .. aid).body.sku
    local t0 = kit.now()
    local res = open("leader", aid)
    expect(res.status).to_be(201)
    local lead, gid = res.body.order, res.body.group.id
    expect(lead.total_fen).to_be(LEADER_PRICE)
    expect(lead.campaign).to_equal({ plugin = "group_buy", id = tostring(gid), stacks_with_coupon = false })
    expect(lead.pay_deadline).to_be(lead.created_at + 900)
    expect(res.body.group.state).to_be("pending")

    -- nobody joins before the leader has paid
    local early = join("early", aid, gid)
    expect(early.status).to_be(409)
    expect(early.body.error.code).to_be("group_not_open")

    kit.advance(100)
    expect(pay(lead.id)).to_be("paid")
    local g = group(aid, gid)
    expect({ g.state, g.paid, g.opened_at, g.expires_at }).to_equal({ "open", 1, t0 + 100, t0 + 100 + DAY })
    expect({ g.leader, g.leader_order_id }).to_equal({ "leader", lead.id })
    expect(expire_jobs(gid)).to_be(1)
    expect(order(lead.id).held).to_be(true)
    local held = kit.admin():post("/orders/" .. lead.id .. "/complete")
    expect(held.status).to_be(409)
    expect(held.body.error.code).to_be("order_held")

    -- an unpaid joiner holds no seat
    local amy = join("amy", aid, gid).body.order
    expect(amy.total_fen).to_be(GROUP_PRICE)
    local public = kit.anon():get("/group-buys/" .. aid .. "/groups/" .. gid).body
    expect({ public.paid, public.seats_left, public.seconds_left }).to_equal({ 1, 2, DAY })

    local bob = joined_and_paid("bob", aid, gid)
    expect(group(aid, gid).state).to_be("open")
    expect(pay(amy.id)).to_be("paid")
    g = group(aid, gid)
    expect({ g.state, g.paid, g.seats_left, g.virtual_seats, g.formed_at })
      .to_equal({ "formed", 3, 0, 0, t0 + 100 })
    expect(seats(g)).to_equal({ { "leader", "leader", 1, "seated" }, { "bob", "member", 2, "seated" },
                                { "amy", "member", 3, "seated" } })
    for _, id in ipairs({ lead.id, bob.id, amy.id }) do expect(order(id).held).to_be(false) end
    expect(kit.admin():post("/orders/" .. lead.id .. "/complete").body.status).to_be("completed")
    expect(expire_jobs(gid)).to_be(0)  -- the expiry went with the formation

    local _, failed = kit.advance(DAY + 10)
    expect(failed).to_be(0)
    expect(group(aid, gid).state).to_be("formed")
    expect(stock(code)).to_be(47)
    local mine = kit.user("amy"):get("/group-buys/orders/" .. amy.id).body
    expect({ mine.state, mine.role, mine.group.state }).to_equal({ "seated", "member", "formed" })
    expect(kit.user("bob"):get("/group-buys/orders/" .. amy.id).status).to_be(404)  -- not bob's
  end)

  it("with virtual seats at expiry when enough are paid, and fails below the threshold", function()
    local aid = new_activity({ group_size = 4, group_ttl_seconds = HOUR, virtual_fill = true,
                               virtual_fill_min_percent = 50 })
    local half, lead_a = opened_and_paid("v-lead-a", aid)          -- 2 of 4 paid: 50 %
    local joiner = joined_and_paid("v-a1", aid, half)
    local quarter, lead_b = opened_and_paid("v-lead-b", aid)       -- 1 of 4: 25 %
    expect(order(joiner.id).held).to_be(true)

    local _, failed = kit.advance(HOUR)
    expect(failed).to_be(0)
    local g = group(aid, half)
    expect({ g.state, g.paid, g.virtual_seats, g.seats_left }).to_equal({ "formed", 2, 2, 0 })
    expect(order(lead_a.id).held).to_be(false)
    expect(order(joiner.id).held).to_be(false)
    g = group(aid, quarter)
    expect({ g.state, g.fail_reason, g.virtual_seats }).to_equal({ "failed", "expired", 0 })
    expect(order(lead_b.id).status).to_be("refunded")
    expect(refunds(lead_b.id)).to_equal({ { "group_failed", GROUP_PRICE, "succeeded" } })

    -- the operator raises the threshold: the same 2 of 4 now fails
    expect(kit.admin():patch("/group-buys/" .. aid, { virtual_fill_min_percent = 75 }).status).to_be(200)
    local gid = opened_and_paid("v-lead-c", aid)
    joined_and_paid("v-c1", aid, gid)
    kit.advance(HOUR)
    expect(group(aid, gid).state).to_be("failed")
  end)
end)

-- ---- failing

describe("a group short at its expiry", function()
  it("fails, and every paid member is refunded exactly once", function()
    local aid = new_activity({ group_size = 5, group_ttl_seconds = 2 * HOUR, stock = 50 })
    local code = kit.admin():get("/group-buys/" .. aid).body.sku
    local gid, lead = opened_and_paid("f-leader", aid)
    local paid_ids = { lead.id }
    for i = 1, 3 do paid_ids[#paid_ids + 1] = joined_and_paid("f-" .. i, aid, gid).id end
    local unpaid = join("f-unpaid", aid, gid).body.order
    expect(unpaid.pay_deadline - unpaid.created_at).to_be(900)
    expect(stock(code)).to_be(45)

    local _, failed = kit.advance(2 * HOUR)
    expect(failed).to_be(0)
    local g = group(aid, gid)
    expect({ g.state, g.fail_reason, g.paid }).to_equal({ "failed", "expired", 4 })
    for _, id in ipairs(paid_ids) do
      expect(order(id).status).to_be("refunded")
      expect(refunds(id)).to_equal({ { "group_failed", GROUP_PRICE, "succeeded" } })
    end
    expect(order(unpaid.id).status).to_be("cancelled")
    expect(stock(code)).to_be(50)
    local states = {}
    for _, m in ipairs(g.members) do states[m.user] = m.state end
    expect(states).to_equal({ ["f-leader"] = "refunded", ["f-1"] = "refunded", ["f-2"] = "refunded",
                              ["f-3"] = "refunded", ["f-unpaid"] = "cancelled" })

    -- a day later nothing is refunded twice, and the failed group takes nobody
    kit.advance(DAY)
    for _, id in ipairs(paid_ids) do
      expect(kit.query("SELECT count(*) AS n FROM payments_refunds WHERE order_id = ?", id)).to_equal({ { n = 1 } })
    end
    local late = join("f-late", aid, gid)
    expect(late.status).to_be(409)
    expect(late.body.error.code).to_be("group_failed")
    -- the refunds gave the users' units back
    expect(open("f-leader", aid).status).to_be(201)
  end)

  it("never outlives its activity, and a payment after the end is refunded", function()
    local now = kit.now()
    local aid = new_activity({ group_ttl_seconds = DAY, ends_at = now + HOUR })
    local gid = opened_and_paid("e-lead", aid)
    expect(group(aid, gid).expires_at).to_be(now + HOUR)
    kit.advance(HOUR - 30)
    -- 30 s left of the group, but never under 60 s to pay
    local joined = join("e-last", aid, gid)
    expect(joined.status).to_be(201)
    local last = joined.body.order
    expect(last.pay_deadline).to_be(now + HOUR + 30)
    kit.advance(40)
    expect(group(aid, gid).state).to_be("failed")
    local ended = open("e-after", aid)
    expect(ended.status).to_be(409)
    expect({ ended.body.error.code, ended.body.error.details }).to_equal({ "ended", { ends_at = now + HOUR } })
    expect(pay(last.id)).to_be("paid")
    expect(order(last.id).status).to_be("refunded")
    expect(refunds(last.id)).to_equal({ { "group_unavailable", GROUP_PRICE, "succeeded" } })
    expect(kit.user("e-last"):get("/group-buys/orders/" .. last.id).body.state).to_be("refunded")
  end)
end)

-- ---- payments that find their group closed

describe("a payment whose group closed meanwhile", function()
  it("is reclaimed into another open group after its order was cancelled", function()
    local now = kit.now()
    local aid = new_activity({ group_ttl_seconds = HOUR, unpaid_timeout_seconds = 3000 })
    local gid = opened_and_paid("t-leader", aid)
    kit.advance(HOUR - 1000)
    local slow = join("t-slow", aid, gid).body.order
    expect(slow.pay_deadline).to_be(now + HOUR)  -- 3000 s cut to what the group has left
    kit.advance(1000)
    expect(group(aid, gid).state).to_be("failed")
    expect(order(slow.id).status).to_be("cancelled")
    local fresh = opened_and_paid("t-fresh", aid)
    expect(pay(slow.id)).to_be("paid_after_cancel")
    local mine = kit.user("t-slow"):get("/group-buys/orders/" .. slow.id).body
    expect({ mine.state, mine.role, mine.group.id }).to_equal({ "seated", "member", fresh })
  end)

  it("opens a new group with the payer as leader when no open group has room", function()
    local aid = new_activity({ group_size = 2 })
    local gid = opened_and_paid("o-leader", aid)
    local lonely = join("o-lonely", aid, gid).body.order
    joined_and_paid("o-second", aid, gid)
    expect(group(aid, gid).state).to_be("formed")
    expect(pay(lonely.id)).to_be("paid")
    local mine = kit.user("o-lonely"):get("/group-buys/orders/" .. lonely.id).body
    expect({ mine.state, mine.role, mine.group.state, mine.group.paid }).to_equal({ "seated", "leader", "open", 1 })
    expect(mine.group.id ~= gid).to_be(true)
    expect(order(lonely.id).total_fen).to_be(GROUP_PRICE)  -- at the price already paid
  end)
end)

-- ---- members leaving

describe("a member refunded", function()
  it("before forming frees the seat; a leader hands over to the earliest member, same expiry", function()
    local aid = new_activity({ group_size = 4 })
    local gid, lead = opened_and_paid("l-leader", aid)
    local before = group(aid, gid)
    kit.advance(HOUR)
    local first = joined_and_paid("l-first", aid, gid)
    joined_and_paid("l-second", aid, gid)
    kit.advance(HOUR)
    expect(kit.admin():post("/orders/" .. lead.id .. "/refund", { reason = "changed mind" }).status).to_be(202)
    kit.drain()
    local g = group(aid, gid)
    expect({ g.state, g.paid, g.leader, g.leader_order_id, g.expires_at })
      .to_equal({ "open", 2, "l-first", first.id, before.expires_at })
    expect(seats(g)).to_equal({ { "l-leader", "leader", 1, "left" }, { "l-first", "leader", 2, "seated" },
                                { "l-second", "member", 3, "seated" } })
    expect(order(lead.id).status).to_be("refunded")

    joined_and_paid("l-third", aid, gid)
    joined_and_paid("l-fourth", aid, gid)
    g = group(aid, gid)
    expect({ g.state, g.paid, g.leader }).to_equal({ "formed", 4, "l-first" })
  end)

  it("who was alone empties the group: it fails with nobody else to refund", function()
    local aid = new_activity({})
    local gid, lone = opened_and_paid("l-lone", aid)
    expect(kit.admin():post("/orders/" .. lone.id .. "/refund", {}).status).to_be(202)
    kit.drain()
    local g = group(aid, gid)
    expect({ g.state, g.fail_reason, g.paid }).to_equal({ "failed", "emptied", 0 })
    expect(expire_jobs(gid)).to_be(0)
    expect(refunds(lone.id)).to_equal({ { "operator", GROUP_PRICE, "succeeded" } })
  end)

  it("after forming leaves the group formed, counted in members_left", function()
    local aid = new_activity({ group_size = 2 })
    local gid, lead = opened_and_paid("m-lead", aid)
    local member = joined_and_paid("m-member", aid, gid)
    expect(kit.admin():post("/orders/" .. member.id .. "/refund", {}).status).to_be(202)
    kit.drain()
    local g = group(aid, gid)
    expect({ g.state, g.members_left, g.paid }).to_equal({ "formed", 1, 2 })
    expect(seats(g)).to_equal({ { "m-lead", "leader", 1, "seated" }, { "m-member", "member", 2, "left" } })
    expect(order(lead.id).held).to_be(false)
  end)
end)

-- ---- refusals

describe("refusals", function()
  local aid, gid
  before_each(function()
    aid = new_activity({ group_size = 2, group_ttl_seconds = HOUR, per_user_limit = 3, per_order_limit = 2 })
    gid = opened_and_paid("n-leader", aid)
  end)

  it("a second join, by an unpaid joiner or the leader herself", function()
    local pending = join("n-twice", aid, gid).body.order
    local again = join("n-twice", aid, gid)
    expect(again).to_be_error(409, "already_joined")
    expect(again.body.error.details).to_equal({ order_id = pending.id, state = "unpaid" })
    expect(join("n-leader", aid, gid)).to_be_error(409, "already_joined")
    pay(pending.id)
    expect(join("n-twice", aid, gid)).to_be_error(409, "group_formed")
    expect(join("n-other", aid, gid)).to_be_error(409, "group_formed")
  end)

  it("unknown groups and activities, and disabled activities", function()
    expect(join("n-other", aid, 999999)).to_be_error(404, "group_not_found")
    expect(join("n-other", 999999, gid)).to_be_error(404, "activity_not_found")
    expect(kit.admin():patch("/group-buys/" .. aid, { status = "disabled" }).status).to_be(200)
    expect(open("n-other", aid)).to_be_error(404, "activity_not_found")
    expect(kit.anon():get("/group-buys/" .. aid)).to_be_error(404, "activity_not_found")
  end)

  it("the per-order and per-user limits, counted at order creation", function()
    local big = join("n-big", aid, gid, { qty = 3 })
    expect(big).to_be_error(409, "order_limit_exceeded")
    expect(big.body.error.details).to_equal({ per_order_limit = 2 })
    expect(open("n-many", aid, { qty = 2 }).status).to_be(201)
    local over = open("n-many", aid, { qty = 2 })
    expect(over).to_be_error(409, "limit_reached")
    expect(over.body.error.details).to_equal({ per_user_limit = 3 })
    expect(open("n-many", aid, { qty = 1 }).status).to_be(201)
    expect(open("n-many", aid)).to_be_error(409, "limit_reached")
    expect(kit.query("SELECT units FROM group_buy_buyers WHERE activity_id = ? AND user = 'n-many'", aid))
      .to_equal({ { units = 3 } })
  end)

  it("a bad qty or an unknown field, naming the field", function()
    local zero = join("n-bad", aid, gid, { qty = 0 })
    expect(zero).to_be_error(400, "invalid_field")
    expect(zero.body.error.details).to_equal({ field = "qty" })
    local extra = join("n-bad", aid, gid, { qty = 1, coupon = 5 })
    expect(extra).to_be_error(400, "invalid_field")
    expect(extra.body.error.details).to_equal({ field = "coupon" })
    expect(kit.query("SELECT count(*) AS n FROM group_buy_orders WHERE user = 'n-bad'")).to_equal({ { n = 0 } })
  end)

  it("a group that ran out of time", function()
    kit.advance(HOUR)
    expect(join("n-late", aid, gid)).to_be_error(409, "group_failed")
  end)

  it("a returning customer joining a new-users-only group (a leader may be anyone)", function()
    local nid = new_activity({ new_users_only = true })
    local g3 = opened_and_paid("n-leader", nid)          -- n-leader has paid before
    opened_and_paid("n-old", aid)                        -- a paid order elsewhere
    expect(join("n-old", nid, g3)).to_be_error(409, "new_users_only")
    expect(join("n-fresh", nid, g3).status).to_be(201)
  end)
end)

-- ---- the window, the 凑团 list, retries

describe("the activity window", function()
  it("refuses orders before it starts", function()
    local now = kit.now()
    local aid = new_activity({ starts_at = now + HOUR, ends_at = now + DAY })
    local res = open("w-early", aid)
    expect(res.status).to_be(409)
    expect({ res.body.error.code, res.body.error.details })
      .to_equal({ "not_started", { starts_at = now + HOUR } })
    expect(kit.anon():get("/group-buys/" .. aid).body.phase).to_be("not_started")
  end)
end)

describe("the open groups list (凑团)", function()
  it("shows nearly full groups first, then the soonest to expire, with seconds left", function()
    local aid = new_activity({ group_size = 5, group_ttl_seconds = 10 * HOUR })
    local g_one = opened_and_paid("s-a", aid)                 -- 4 left, expires +10 h
    kit.advance(HOUR)
    local g_three = opened_and_paid("s-b", aid)               -- 2 left, expires +11 h
    joined_and_paid("s-b1", aid, g_three)
    joined_and_paid("s-b2", aid, g_three)
    kit.advance(HOUR)
    local g_late = opened_and_paid("s-c", aid)                -- 2 left, expires +12 h
    joined_and_paid("s-c1", aid, g_late)
    joined_and_paid("s-c2", aid, g_late)
    local pending = open("s-d", aid).body.group.id            -- not paid: not listed
    kit.advance(1800)

    local body = kit.anon():get("/group-buys/" .. aid .. "/groups").body
    local listed = {}
    for i, g in ipairs(body.items) do listed[i] = { g.id, g.paid, g.seats_left, g.seconds_left } end
    local elapsed = 2 * HOUR + 1800
    expect(listed).to_equal({ { g_three, 3, 2, 11 * HOUR - elapsed }, { g_late, 3, 2, 12 * HOUR - elapsed },
                              { g_one, 1, 4, 10 * HOUR - elapsed } })
    expect(body.items[1].leader).to_be("s-b***")
    -- the unpaid leader's group never opened (abandoned when her order timed out
    -- after 900 s) and is not in the list above
    expect(kit.anon():get("/group-buys/" .. aid .. "/groups/" .. pending).body.state).to_be("abandoned")
    local first = kit.anon():get("/group-buys/" .. aid .. "/groups?limit=1").body.items
    expect(#first).to_be(1)
    expect(first[1].id).to_be(g_three)

    kit.advance(10 * HOUR - elapsed)  -- g_one runs out
    local ids = {}
    for i, g in ipairs(kit.anon():get("/group-buys/" .. aid .. "/groups").body.items) do ids[i] = g.id end
    expect(ids).to_equal({ g_three, g_late })
  end)
end)

describe("retries and unpaid leaders", function()
  it("replays an open with the same Idempotency-Key and refuses the key for a join", function()
    local aid = new_activity({ group_size = 2 })
    local first = open("i-a", aid, {}, "open-1")
    expect(first.status).to_be(201)
    local again = open("i-a", aid, {}, "open-1")
    expect(again.status).to_be(200)
    expect({ again.body.order.id, again.body.group.id }).to_equal({ first.body.order.id, first.body.group.id })
    local reused = join("i-a", aid, first.body.group.id, {}, "open-1")
    expect(reused.status).to_be(409)
    expect(reused.body.error.code).to_be("idempotency_key_reused")
    expect(#kit.admin():get("/group-buys/" .. aid .. "/groups").body.items).to_be(1)
  end)

  it("abandons the group of a leader who never pays, and gives the units back", function()
    local aid = new_activity({ group_size = 2, stock = 20 })
    local code = kit.admin():get("/group-buys/" .. aid).body.sku
    local res = open("i-b", aid)
    expect(stock(code)).to_be(19)
    kit.advance(900)
    expect(order(res.body.order.id).status).to_be("cancelled")
    local g = group(aid, res.body.group.id)
    expect({ g.state, g.paid }).to_equal({ "abandoned", 0 })
    expect(stock(code)).to_be(20)
    expect(open("i-b", aid).status).to_be(201)  -- per_user_limit 1: the unit came back
  end)
end)

-- ---- the operator's input

describe("activities", function()
  local cases = {
    { "group_size", 1 }, { "group_size", 101 }, { "price_fen", 0 }, { "leader_price_fen", 0 },
    { "group_ttl_seconds", 10 }, { "unpaid_timeout_seconds", 30 }, { "per_user_limit", 0 },
    { "virtual_fill_min_percent", 0 }, { "virtual_fill", "yes" }, { "new_users_only", 1 },
    { "status", "paused" }, { "per_order_limit", 5 }, { "price_fen", LIST_PRICE + 1 },
    { "leader_price_fen", LIST_PRICE + 1 }, { "bogus", 1 },
  }
  it("refuses each bad field, naming it, and stores nothing", function()
    local before = kit.query("SELECT count(*) AS n FROM group_buy_activities")[1].n
    for _, case in ipairs(cases) do
      local res = kit.admin():post("/group-buys", activity_body({ [case[1]] = case[2] }))
      expect({ case[1], res.status, res.body.error.code, res.body.error.details })
        .to_equal({ case[1], 400, "invalid_field", { field = case[1] } })
    end
    local body = activity_body({})
    body.ends_at = body.starts_at
    expect(kit.admin():post("/group-buys", body).body.error.details).to_equal({ field = "ends_at" })
    local missing = kit.admin():post("/group-buys", activity_body({ sku = "nope" }))
    expect({ missing.status, missing.body.error.code, missing.body.error.details })
      .to_equal({ 400, "sku_not_found", { field = "sku" } })
    expect(kit.query("SELECT count(*) AS n FROM group_buy_activities")[1].n).to_be(before)
  end)

  it("fills defaults, and a PATCH clears the leader price but not the SKU or a price", function()
    local res = kit.admin():post("/group-buys", activity_body({ leader_price_fen = 4000 }))
    expect(res.status).to_be(201)
    local a = res.body
    expect({ a.title, a.leader_price_fen, a.phase, a.status, a.virtual_fill, a.virtual_fill_min_percent })
      .to_equal({ "title " .. a.sku, 4000, "running", "active", false, 100 })
    expect(a.groups).to_equal({})
    local patched = kit.admin():patch("/group-buys/" .. a.id, { leader_price_fen = kit.null, group_size = 5 })
    expect(patched.status).to_be(200)
    expect({ patched.body.leader_price_fen, patched.body.group_size }).to_equal({ nil, 5 })
    local sku = kit.admin():patch("/group-buys/" .. a.id, { sku = "other" })
    expect({ sku.status, sku.body.error.details }).to_equal({ 400, { field = "sku" } })
    local price = kit.admin():patch("/group-buys/" .. a.id, { price_fen = kit.null })
    expect({ price.status, price.body.error.details }).to_equal({ 400, { field = "price_fen" } })
    expect(kit.admin():patch("/group-buys/999999", {}).body.error.code).to_be("activity_not_found")
  end)
end)
