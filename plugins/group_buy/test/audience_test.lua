-- group_buy for members only (会员专享): an activity whose audience is a tag
-- or a segment of the members plugin lets only the members inside it open or
-- join a group, judged when they ask; anyone else gets 403 members_only and
-- no group, order, seat or unit count is made. The audience shows in every
-- read, a PATCH sets or clears it, and it is checked against the members
-- plugin when written. Without the members plugin:
-- audience_without_members_test.lua.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "group-buy-kit-secret-0123456789" },
  members = {},
  group_buy = {},
}

local DAY = 86400
local LIST_PRICE, GROUP_PRICE = 9900, 5900

local shop = require("tp.testshop")

-- ---- helpers

local function activity_body(fields)
  local now = kit.now()
  local body = { sku = (shop.sku{ price_fen = LIST_PRICE, stock = 50 }), group_size = 3,
    price_fen = GROUP_PRICE, starts_at = now - 60, ends_at = now + 30 * DAY, per_user_limit = 2 }
  for k, v in pairs(fields or {}) do body[k] = v end
  return body
end

---A new activity; returns it as the create answered.
local function new_activity(fields)
  local res = kit.admin():post("/group-buys", activity_body(fields))
  assert(res.status == 201, "activity refused: " .. tostring(res.status) .. " "
    .. tostring(res.body.error and res.body.error.message))
  return res.body
end

local function open(user, aid, key)
  return kit.user(user):post("/group-buys/" .. aid .. "/open", {}, key and { ["Idempotency-Key"] = key } or nil)
end

local function join(user, aid, gid, key)
  return kit.user(user):post("/group-buys/" .. aid .. "/groups/" .. gid .. "/join", {},
    key and { ["Idempotency-Key"] = key } or nil)
end

local function pay(order_id)
  local res = kit.admin():post("/payments/simulate", { order_id = order_id })
  assert(res.status == 200, "simulate answered " .. tostring(res.status))
  kit.drain()
end

---user opens a group and pays; returns the group's id.
local function opened_and_paid(user, aid)
  local res = open(user, aid)
  assert(res.status == 201, "open answered " .. tostring(res.status))
  pay(res.body.order.id)
  return res.body.group.id
end

local function count(sql, ...)
  return kit.query("SELECT count(*) AS n FROM " .. sql, ...)[1].n
end

---The user's units in the activity (nil: no count at all).
local function units(aid, user)
  local row = kit.query("SELECT units FROM group_buy_buyers WHERE activity_id = ? AND user = ?", aid, user)[1]
  return row and row.units
end

local at = require("tp.audiencetest").new { path = "/group-buys", table = "group_buy_activities",
  body = function(fields) return activity_body(fields) end }
local member, tag = at.member, at.tag
at.pool()

-- ---- opening and joining

describe("a group buy for a tag's members", function()
  it("lets a member carrying the tag open a group, and refuses anyone else, making nothing", function()
    local id, plain = at.admits_only_the_tag(open, function(aid, user)
      return units(aid, user) ~= nil and 1 or 0                -- no count at all, not even 0
    end, "gb-gold-1", "gb-plain-1")
    expect(count("group_buy_groups WHERE activity_id = ?", id)).to_be(1)
    expect(count("group_buy_orders WHERE activity_id = ?", id)).to_be(1)
    expect(count("orders_orders WHERE user = ?", plain)).to_be(0)
  end)

  it("lets only members carrying the tag join, whoever opened the group", function()
    local a = new_activity({ audience = { tag = "gold" } })
    local leader, joiner, plain = member("gb-gold-2"), member("gb-gold-3"), member("gb-plain-2")
    tag(leader, "gold")
    tag(joiner, "gold")
    local gid = opened_and_paid(leader, a.id)
    local err = expect(join(plain, a.id, gid)).to_be_error(403, "members_only")
    expect(err.details).to_equal({ tag = "gold" })
    expect(units(a.id, plain)).to_be_nil()
    expect(count("group_buy_orders WHERE group_id = ?", gid)).to_be(1)
    expect(join(joiner, a.id, gid).status).to_be(201)
    expect(count("group_buy_orders WHERE group_id = ?", gid)).to_be(2)
    -- the tag taken off: she cannot open a group of her own any more
    kit.admin():delete("/members/" .. joiner .. "/tags/gold")
    expect(open(joiner, a.id)).to_be_error(403, "members_only")
    expect(units(a.id, joiner)).to_be(1)
  end)

  it("answers a retried join its order after the member left the audience", function()
    local a = new_activity({ audience = { tag = "gold" } })
    local leader, joiner = member("gb-gold-4"), member("gb-gold-5")
    tag(leader, "gold")
    tag(joiner, "gold")
    local gid = opened_and_paid(leader, a.id)
    local first = join(joiner, a.id, gid, "gb-aud-1")
    expect(first.status).to_be(201)
    kit.admin():delete("/members/" .. joiner .. "/tags/gold")
    local again = join(joiner, a.id, gid, "gb-aud-1")
    expect(again.status).to_be(200)
    expect(again.body.order.id).to_be(first.body.order.id)
    expect(open(joiner, a.id, "gb-aud-2")).to_be_error(403, "members_only")
  end)
end)

describe("a group buy for a segment's members", function()
  it("lets the segment's members open and join, and refuses the others", function()
    local a = new_activity({ audience = { segment = "shanghai" } })
    local sh1, sh2 = member("gb-sh-1", { city = "上海" }), member("gb-sh-2", { city = "上海" })
    local hz = member("gb-hz-1", { city = "杭州" })
    local err = expect(open(hz, a.id)).to_be_error(403, "members_only")
    expect(err.details).to_equal({ segment = "shanghai" })
    local gid = opened_and_paid(sh1, a.id)
    err = expect(join(hz, a.id, gid)).to_be_error(403, "members_only")
    expect(err.details).to_equal({ segment = "shanghai" })
    expect(units(a.id, hz)).to_be_nil()
    expect(join(sh2, a.id, gid).status).to_be(201)
    expect(count("group_buy_orders WHERE group_id = ?", gid)).to_be(2)
  end)
end)

-- ---- operators

describe("the audience in reads", function()
  it("shows in the admin and public views, and is null for everyone", function()
    at.shown_in_reads({ segment = "shanghai" })
  end)
end)

describe("PATCH", function()
  it("sets an audience, keeps it when left out, and null clears it", function()
    at.patch_sets_keeps_clears(open, { title = "会员拼团" }, "gb-plain-3")
  end)

  it("refuses an unknown tag and keeps the audience it had", function()
    at.patch_keeps_on_refusal({ segment = "shanghai" }, { tag = "silver" }, "audience.tag")
  end)
end)

describe("validation", function()
  it("refuses each wrong audience naming its field, and saves nothing", function()
    at.refuses_wrong_audiences()
  end)
end)

describe("the route docs", function()
  it("document the audience on create, PATCH and the public reads alike", function()
    at.documents_audience()
  end)
end)
