-- bargain for members only (会员专享): an activity whose audience is a tag or
-- a segment of the members plugin lets only the members inside it start a
-- bargain, judged when they start; anyone else gets 403 members_only and no
-- bargain or start count is made. Helping stays open to everyone, and the
-- initiator buys what she started even after leaving the audience. The
-- audience shows in every read of the activity, a PATCH sets or clears it,
-- and it is checked against the members plugin when written. Without the
-- members plugin: audience_without_members_test.lua.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "bargain-kit-secret-0123456789" },
  members = {},
  bargain = {},
}

local DAY = 86400

local shop = require("tp.testshop")

-- ---- helpers

local function activity_body(fields)
  local now = kit.now()
  local body = { sku = (shop.sku{ price_fen = 9900, stock = 50 }), original_price_fen = 1000,
                 floor_price_fen = 100, helpers_needed = 1, starts_at = now, ends_at = now + 30 * DAY }
  for k, v in pairs(fields or {}) do body[k] = v end
  return body
end

---A new activity; returns it as the create answered.
local function new_activity(fields)
  local res = kit.admin():post("/bargain/activities", activity_body(fields))
  assert(res.status == 201, "activity refused: " .. tostring(res.status) .. " "
    .. tostring(res.body.error and res.body.error.message))
  return res.body
end

local function start(user, aid)
  return kit.user(user):post("/bargain/activities/" .. aid .. "/start")
end

local function count(sql, ...)
  return kit.query("SELECT count(*) AS n FROM " .. sql, ...)[1].n
end

local at = require("tp.audiencetest").new { path = "/bargain/activities", table = "bargain_activities",
  body = function(fields) return activity_body(fields) end }
local member, tag = at.member, at.tag
at.pool()

-- ---- starting, helping, buying

describe("a bargain activity for a tag's members", function()
  it("lets a member carrying the tag start, and refuses anyone else, making nothing", function()
    local id = at.admits_only_the_tag(start, function(aid, user)
      return count("bargain_starters WHERE activity_id = ? AND user = ?", aid, user)
    end, "bg-gold-1", "bg-plain-1")
    expect(count("bargain_bargains WHERE activity_id = ?", id)).to_be(1)
  end)

  it("lets anyone help, and the initiator buy after leaving the audience", function()
    local a = new_activity({ audience = { tag = "gold" } })
    local gold, friend = member("bg-gold-2"), member("bg-plain-2")
    tag(gold, "gold")
    local b = start(gold, a.id).body
    local helped = kit.user(friend):post("/bargains/" .. b.id .. "/help")
    expect(helped.status).to_be(201)
    expect(helped.body.bargain.state).to_be("floor_reached")
    kit.admin():delete("/members/" .. gold .. "/tags/gold")
    local bought = kit.user(gold):post("/bargains/" .. b.id .. "/buy")
    expect(bought.status).to_be(201)
    expect(bought.body.total_fen).to_be(100)
    -- but she cannot start another
    expect(start(gold, a.id)).to_be_error(403, "members_only")
  end)
end)

describe("a bargain activity for a segment's members", function()
  it("lets the segment's members start and refuses the others", function()
    local a = new_activity({ audience = { segment = "shanghai" } })
    local sh, hz = member("bg-sh-1", { city = "上海" }), member("bg-hz-1", { city = "杭州" })
    local err = expect(start(hz, a.id)).to_be_error(403, "members_only")
    expect(err.details).to_equal({ segment = "shanghai" })
    expect(count("bargain_bargains WHERE initiator = ?", hz)).to_be(0)
    expect(start(sh, a.id).status).to_be(201)
    expect(count("bargain_bargains WHERE activity_id = ?", a.id)).to_be(1)
  end)
end)

-- ---- operators

describe("the audience in reads", function()
  it("shows in the admin and public views, and is null for everyone", function()
    at.shown_in_reads({ tag = "gold" })
  end)
end)

describe("PATCH", function()
  it("sets an audience, keeps it when left out, and null clears it", function()
    -- another field's null counts as absent; the audience stays
    at.patch_sets_keeps_clears(start, { title = kit.null }, "bg-plain-3")
  end)

  it("refuses an unknown segment and keeps the audience it had", function()
    at.patch_keeps_on_refusal({ tag = "gold" }, { segment = "nowhere" }, "audience.segment")
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
