-- group_buy and merged members: member_merge gives every group order, every
-- group led and every per-activity count of the younger id `from` to the
-- survivor `into` (counts summed, so one person never passes per_user_limit
-- with two ids); two ids in one group keep their paid seats; member_unmerge
-- moves back exactly what moved. The exports are called as the members
-- plugin will call them, through the test-only helper sdk/testplugins/merger.
-- After a merge the host names `from`'s tokens `into`: here kit.user(into).

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "group-buy-kit-secret-0123456789" },
  group_buy = {},
  merger = {},
}

local DAY = 86400
local shop = require("tp.testshop")

-- ---- helpers

---A new activity (groups of 3, one unit per user) on a fresh SKU; returns its id.
local function new_activity(fields)
  local now = kit.now()
  local body = { sku = (shop.sku{ price_fen = 9900, stock = 100 }), group_size = 3, price_fen = 5900,
    group_ttl_seconds = DAY, unpaid_timeout_seconds = 900, starts_at = now - 60, ends_at = now + 30 * DAY,
    per_user_limit = 1, per_order_limit = 1 }
  for k, v in pairs(fields or {}) do body[k] = v end
  local res = kit.admin():post("/group-buys", body)
  assert(res.status == 201, "activity refused: " .. res.status)
  return res.body.id
end

local function open(user, aid)
  return kit.user(user):post("/group-buys/" .. aid .. "/open", {})
end

local function join(user, aid, gid)
  return kit.user(user):post("/group-buys/" .. aid .. "/groups/" .. gid .. "/join", {})
end

local function pay(order_id)
  local res = kit.admin():post("/payments/simulate", { order_id = order_id })
  assert(res.status == 200, "simulate answered " .. res.status)
  kit.drain()
  return res.body.result.outcome
end

---user opens a group (and pays, unless unpaid): the group id and the order.
local function opened(user, aid, unpaid)
  local res = open(user, aid)
  assert(res.status == 201, user .. "'s open answered " .. res.status)
  if not unpaid then assert(pay(res.body.order.id) == "paid") end
  return res.body.group.id, res.body.order
end

---user joins the group (and pays, unless unpaid): the order.
local function joined(user, aid, gid, unpaid)
  local res = join(user, aid, gid)
  assert(res.status == 201, user .. "'s join answered " .. res.status)
  if not unpaid then assert(pay(res.body.order.id) == "paid") end
  return res.body.order
end

local function group(aid, gid)
  return kit.admin():get("/group-buys/" .. aid .. "/groups/" .. gid).body
end

---The members' {user, merged_from, role, seat_no, state} in seat order.
local function seats(aid, gid)
  local out = {}
  for i, m in ipairs(group(aid, gid).members) do
    out[i] = { m.user, m.merged_from or "-", m.role, m.seat_no or 0, m.state }
  end
  return out
end

---Everything group_buy keeps per person, whole rows.
local function state()
  return {
    orders = kit.query("SELECT * FROM group_buy_orders ORDER BY order_id"),
    groups = kit.query("SELECT * FROM group_buy_groups ORDER BY id"),
    buyers = kit.query("SELECT * FROM group_buy_buyers ORDER BY activity_id, user"),
    merges = kit.query("SELECT * FROM group_buy_merges ORDER BY merge_id"),
    moves = kit.query("SELECT * FROM group_buy_merge_moves ORDER BY merge_id, kind, row_id"),
  }
end

local mt = require("tp.mergetest").new { plugin = "group_buy", state = state }
local merged, unmerged = mt.merged, mt.unmerged
local NONE = { orders = 0, groups = 0, buyers = 0 }

local function units(user)
  return kit.query("SELECT activity_id, units FROM group_buy_buyers WHERE user = ? ORDER BY activity_id", user)
end

-- ---- the limit

describe("a merged person", function()
  it("cannot order again under a limit of 1 that `from` used: into gets 409 limit_reached", function()
    local aid = new_activity({ per_user_limit = 1 })
    local gid = opened("lim-from", aid)
    opened("lim-other", aid)
    expect(merged("lim-from", "lim-into", 1)).to_equal({ orders = 1, groups = 1, buyers = 1 })
    expect(open("lim-into", aid)).to_be_error(409, "limit_reached")
    local other = kit.query("SELECT id FROM group_buy_groups WHERE leader = 'lim-other'")[1].id
    expect(join("lim-into", aid, other)).to_be_error(409, "limit_reached")
    expect(join("lim-into", aid, gid)).to_be_error(409, "already_joined")  -- from's seat is into's
    expect(units("lim-into")).to_equal({ { activity_id = aid, units = 1 } })
  end)

  it("sums both ids' units, and may sit above the limit, which only blocks further orders", function()
    local aid = new_activity({ per_user_limit = 2 })
    opened("sum-from", aid, true)
    opened("sum-into", aid, true)
    merged("sum-from", "sum-into", 2)
    expect(units("sum-into")).to_equal({ { activity_id = aid, units = 2 } })
    expect(units("sum-from")).to_equal({})
    expect(open("sum-into", aid)).to_be_error(409, "limit_reached")
  end)

  it("sees from's orders as their own", function()
    local aid = new_activity()
    local _, o = opened("see-from", aid)
    merged("see-from", "see-into", 3)
    local res = kit.user("see-into"):get("/group-buys/orders/" .. o.id)
    expect(res.status).to_be(200)
    expect({ res.body.user, res.body.role, res.body.state }).to_equal({ "see-into", "leader", "seated" })
  end)
end)

-- ---- what moves

describe("member_merge", function()
  it("moves every order, the groups led and the counts of `from`, and says how many", function()
    local a = new_activity()
    local b = new_activity()
    local g1 = opened("mv-from", a)                    -- leads g1, paid
    local g2 = opened("mv-lead", b)
    joined("mv-from", b, g2, true)                     -- in g2, unpaid
    opened("mv-into", b, true)                         -- into's own pending group in b
    expect(merged("mv-from", "mv-into", 10)).to_equal({ orders = 2, groups = 1, buyers = 2 })
    expect(kit.query("SELECT count(*) AS n FROM group_buy_orders WHERE user = 'mv-from'")[1].n).to_be(0)
    expect(group(a, g1).leader).to_be("mv-into")
    expect(seats(a, g1)).to_equal({ { "mv-into", "mv-from", "leader", 1, "seated" } })
    expect(seats(b, g2)).to_equal({ { "mv-lead", "-", "leader", 1, "seated" },
                                    { "mv-into", "mv-from", "member", 0, "unpaid" } })
    expect(units("mv-into")).to_equal({ { activity_id = a, units = 1 }, { activity_id = b, units = 2 } })
  end)

  it("keeps both paid seats when both ids sit in one group: into holds two, the group counts both", function()
    local aid = new_activity({ group_size = 3 })
    local gid, lead = opened("two-from", aid)
    local seat = joined("two-into", aid, gid)
    merged("two-from", "two-into", 11)
    local g = group(aid, gid)
    expect({ g.state, g.paid, g.leader, g.leader_order_id }).to_equal({ "open", 2, "two-into", lead.id })
    expect(seats(aid, gid)).to_equal({ { "two-into", "two-from", "leader", 1, "seated" },
                                       { "two-into", "-", "member", 2, "seated" } })
    -- the third seat forms the group; both of into's orders are released
    joined("two-third", aid, gid)
    expect(group(aid, gid).state).to_be("formed")
    expect(kit.admin():get("/orders/" .. lead.id).body.held).to_be(false)
    expect(kit.admin():get("/orders/" .. seat.id).body.held).to_be(false)
  end)

  it("gives the seat to the survivor when one id sat and the other had not paid; that order, paid, overflows", function()
    local aid = new_activity({ group_size = 3 })
    local gid = opened("half-from", aid)
    local pending = joined("half-into", aid, gid, true)
    merged("half-from", "half-into", 12)
    expect(seats(aid, gid)).to_equal({ { "half-into", "half-from", "leader", 1, "seated" },
                                       { "half-into", "-", "member", 0, "unpaid" } })
    expect(pay(pending.id)).to_be("paid")
    -- into already sits in gid: the payment opens a new group with into as its leader
    local row = kit.query("SELECT group_id, role, state FROM group_buy_orders WHERE order_id = ?", pending.id)[1]
    expect(row.group_id ~= gid).to_be(true)
    expect({ row.role, row.state }).to_equal({ "leader", "seated" })
    expect(group(aid, row.group_id).leader).to_be("half-into")
    expect(group(aid, gid).paid).to_be(1)
  end)

  it("does nothing the second time with the same merge_id", function()
    local a = new_activity()
    local b = new_activity()
    opened("rep-from", a)
    expect(merged("rep-from", "rep-into", 13)).to_equal({ orders = 1, groups = 1, buyers = 1 })
    -- an order placed as rep-from after the merge (the kit's token still says
    -- rep-from): the repeat must not take it as part of merge 13
    opened("rep-from", b, true)
    mt.again("rep-from", "rep-into", 13, NONE)
  end)

  it("leaves nothing behind when the caller's transaction fails after it", function()
    local aid = new_activity()
    opened("tx-from", aid)
    mt.failing("tx-from", "tx-into", 14)
  end)
end)

-- ---- undo

describe("member_unmerge", function()
  it("restores exactly what there was before the merge, two seats of one group included", function()
    local a = new_activity({ group_size = 3 })
    local b = new_activity({ per_user_limit = 2 })
    local gid = opened("un-from", a)
    joined("un-into", a, gid)                          -- both seated in gid
    opened("un-from", b, true)                         -- a pending group of from's in b
    opened("un-into", b)
    local before = state()
    expect(merged("un-from", "un-into", 20)).to_equal({ orders = 2, groups = 2, buyers = 2 })
    expect(unmerged("un-from", "un-into", 20)).to_equal({ orders = 2, groups = 2, buyers = 2 })
    expect(state()).to_equal(before)
  end)

  it("keeps with `into` what into did after the merge, and a group whose leader changed since", function()
    local a = new_activity({ group_size = 4 })
    local b = new_activity()
    local gid, lead = opened("la-from", a)
    local own = joined("la-into", a, gid)
    merged("la-from", "la-into", 21)
    local newgid = opened("la-into", b)                -- into's own, after the merge
    -- from's leader seat (into's now) is refunded: into's own seat leads
    expect(kit.admin():post("/orders/" .. lead.id .. "/refund", {}).status).to_be(202)
    kit.drain()
    expect({ group(a, gid).leader, group(a, gid).leader_order_id }).to_equal({ "la-into", own.id })
    expect(unmerged("la-from", "la-into", 21)).to_equal({ orders = 1, groups = 0, buyers = 1 })
    expect(seats(a, gid)).to_equal({ { "la-from", "-", "leader", 1, "left" },
                                     { "la-into", "-", "leader", 2, "seated" } })
    expect(group(a, gid).leader).to_be("la-into")      -- into leads by its own seat now
    expect(group(b, newgid).leader).to_be("la-into")
    expect(units("la-into")).to_equal({ { activity_id = a, units = 1 }, { activity_id = b, units = 1 } })
    -- the refund gave the unit of from's order back (on into's count then):
    -- after the undo from holds nothing, into its own seat
    expect(units("la-from")).to_equal({ { activity_id = a, units = 0 } })
    expect(open("la-into", a)).to_be_error(409, "limit_reached")
  end)

  it("does nothing for an unknown merge_id, nor a second time", function()
    local aid = new_activity()
    opened("unk-from", aid)
    merged("unk-from", "unk-into", 22)
    expect(mt.undone_again("unk-from", "unk-into", 22, NONE)).to_equal({ orders = 1, groups = 1, buyers = 1 })
  end)
end)

-- ---- refusals

describe("invalid merges", function()
  it("are refused with 400 invalid_merge, and change nothing", function()
    local aid = new_activity()
    opened("bad-from", aid)
    mt.refuses_malformed()
  end)

  it("refuses a merge_id already used for other members", function()
    local aid = new_activity()
    opened("id-from", aid)
    merged("id-from", "id-into", 31)
    mt.refuses_reused("id-from", "id-into", 31)
  end)
end)
