-- flash_sale for members only (会员专享): a sale whose audience is a tag or a
-- segment of the members plugin sells only to the members inside it, judged
-- when they buy; anyone else gets 403 members_only and the sale, the buyer's
-- count and the catalog stay as they were. The audience shows in every read,
-- a PATCH sets or clears it, and it is checked against the members plugin
-- when written, by an operator or a campaign's apply. Without the members
-- plugin: audience_without_members_test.lua.

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "flash-sale-kit-secret-0123" },
  members = {},
  flash_sale = {},
  campaign_probe = {},
}

local DAY = 86400
local LIST_PRICE, SALE_PRICE = 9900, 1990

local shop = require("tp.testshop")

-- ---- helpers

local function new_sku(stock)
  return (shop.sku{ price_fen = LIST_PRICE, stock = stock or 100 })
end

local function stock(code)
  return kit.query("SELECT stock FROM catalog_skus WHERE code = ?", code)[1].stock
end

local function sale_body(sku, fields)
  local now = kit.now()
  local body = { sku = sku, price_fen = SALE_PRICE, quantity = 10, per_user_limit = 2, per_order_limit = 1,
                 starts_at = now - 60, ends_at = now + DAY }
  for k, v in pairs(fields or {}) do body[k] = v end
  return body
end

---A sale on a fresh SKU open for a day; returns it as the create answered.
local function new_sale(fields)
  local res = kit.admin():post("/flash-sales", sale_body(new_sku(), fields))
  assert(res.status == 201, ("the sale was refused: %d %s"):format(res.status,
    type(res.body) == "table" and res.body.error and res.body.error.message or ""))
  return res.body
end

local function buy(id, user, headers)
  return kit.user(user):post("/flash-sales/" .. id .. "/buy", {}, headers)
end

local function sale(id)
  return kit.admin():get("/flash-sales/" .. id).body
end

---What user has bought of the sale (nil: no count at all).
local function bought(id, user)
  local row = kit.query("SELECT bought FROM flash_sale_buyers WHERE sale_id = ? AND user = ?", id, user)[1]
  return row and row.bought
end

local at = require("tp.audiencetest").new { path = "/flash-sales", table = "flash_sale_sales",
  body = function(fields) return sale_body(new_sku(), fields) end }
local member, tag = at.member, at.tag
at.pool()

-- ---- buying

describe("a sale for a tag's members", function()
  it("sells to a member carrying the tag", function()
    local s = new_sale({ audience = { tag = "gold" } })
    local m = member("fs-gold-1")
    tag(m, "gold")
    local res = buy(s.id, m)
    expect(res.status).to_be(201)
    expect(res.body.user).to_be(m)
    expect(sale(s.id).remaining).to_be(9)
    expect(bought(s.id, m)).to_be(1)
  end)

  it("refuses anyone else with 403 members_only, and nothing changes", function()
    local s = new_sale({ audience = { tag = "gold" } })
    local plain = member("fs-plain-1")
    local before = stock(s.sku)
    for _, user in ipairs({ plain, "not-a-member" }) do
      local err = expect(buy(s.id, user)).to_be_error(403, "members_only")
      expect(err.details).to_equal({ tag = "gold" })
      expect(err.message).to_match("members only")
      expect(bought(s.id, user)).to_be_nil()
    end
    expect(sale(s.id).remaining).to_be(10)
    expect(stock(s.sku)).to_be(before)
    expect(kit.query("SELECT count(*) AS n FROM orders_orders WHERE user = ?", plain)[1].n).to_be(0)
  end)

  it("judges the member when she buys: a tag taken off shuts her out", function()
    local s = new_sale({ audience = { tag = "gold" } })
    local m = member("fs-gold-2")
    expect(buy(s.id, m)).to_be_error(403, "members_only")
    tag(m, "gold")
    expect(buy(s.id, m).status).to_be(201)
    expect(kit.admin():delete("/members/" .. m .. "/tags/gold").status).to_be(200)
    expect(buy(s.id, m)).to_be_error(403, "members_only")
    expect(bought(s.id, m)).to_be(1)
    expect(sale(s.id).remaining).to_be(9)
  end)
end)

describe("a sale for a segment's members", function()
  it("sells inside the segment, refuses outside it, and follows the member's profile", function()
    local s = new_sale({ audience = { segment = "shanghai" } })
    local inside = member("fs-sh-1", { city = "上海" })
    local outside = member("fs-hz-1", { city = "杭州" })
    expect(buy(s.id, inside).status).to_be(201)
    local err = expect(buy(s.id, outside)).to_be_error(403, "members_only")
    expect(err.details).to_equal({ segment = "shanghai" })
    expect(bought(s.id, outside)).to_be_nil()
    expect(sale(s.id).remaining).to_be(9)
    -- she moves to Shanghai: now she is in the segment
    expect(kit.admin():patch("/members/" .. outside, { city = "上海" }).status).to_be(200)
    expect(buy(s.id, outside).status).to_be(201)
    expect(sale(s.id).remaining).to_be(8)
  end)

  it("admits nobody once the segment is deleted (403, not 404)", function()
    kit.admin():post("/members/segments", { name = "fleeting", rule = { field = "city", op = "eq", value = "上海" } })
    local s = new_sale({ audience = { segment = "fleeting" } })
    local m = member("fs-sh-2", { city = "上海" })
    expect(kit.admin():delete("/members/segments/fleeting").status).to_be(200)
    local err = expect(buy(s.id, m)).to_be_error(403, "members_only")
    expect(err.details).to_equal({ segment = "fleeting" })
    expect(sale(s.id).remaining).to_be(10)
  end)
end)

describe("a retried buy", function()
  it("still answers its order after the member left the audience; a new buy is refused", function()
    local s = new_sale({ audience = { tag = "gold" } })
    local m = member("fs-gold-3")
    tag(m, "gold")
    local first = buy(s.id, m, { ["Idempotency-Key"] = "fs-aud-1" })
    expect(first.status).to_be(201)
    kit.admin():delete("/members/" .. m .. "/tags/gold")
    local again = buy(s.id, m, { ["Idempotency-Key"] = "fs-aud-1" })
    expect(again.status).to_be(200)
    expect(again.body.id).to_be(first.body.id)
    expect(buy(s.id, m, { ["Idempotency-Key"] = "fs-aud-2" })).to_be_error(403, "members_only")
    expect(bought(s.id, m)).to_be(1)
    expect(sale(s.id).remaining).to_be(9)
  end)
end)

-- ---- operators

describe("the audience in reads", function()
  it("shows in the admin and public views, and is null for everyone", function()
    local id = at.shown_in_reads({ tag = "gold" })
    expect(kit.query("SELECT audience FROM flash_sale_sales WHERE id = ?", id)[1].audience)
      .to_be('{"tag":"gold"}')
  end)
end)

describe("PATCH", function()
  it("sets an audience, keeps it when left out, and null clears it", function()
    local id, plain = at.patch_sets_keeps_clears(function(user, sale_id) return buy(sale_id, user) end,
      { title = "会员专享" }, "fs-plain-2")
    expect(bought(id, plain)).to_be(1)                 -- the refused buys counted nothing
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

describe("a campaign's sale", function()
  it("takes an audience from its settings, checks it, and loses it when the settings drop it", function()
    local sku = new_sku()
    local settings = sale_body(sku, { audience = { tag = "gold" } })
    local function apply(body)
      return kit.admin():post("/campaign_probe/apply", { plugin = "flash_sale", ref = "vip/flash/1", settings = body })
    end
    local first = apply(settings)
    expect(first.status).to_be(200)
    expect(sale(first.body.id).audience).to_equal({ tag = "gold" })
    settings.audience = { tag = "silver" }
    local err = expect(apply(settings)).to_be_error(400, "invalid_field")
    expect(err.details.field).to_be("audience.tag")
    expect(sale(first.body.id).audience).to_equal({ tag = "gold" })
    settings.audience = nil
    expect(apply(settings).status).to_be(200)
    expect(sale(first.body.id).audience).to_be(kit.null)
  end)
end)

describe("the route docs", function()
  it("document the audience on create, PATCH and the public reads alike", function()
    at.documents_audience()
  end)
end)
