-- member price (会员价) as orders price it (plugins/orders/lib/pricing.lua
-- step 2), with the brand's default stacking: a coupon applies on top of the
-- member prices (with_coupon = true), a campaign order keeps its campaign
-- price (with_campaign = "never"). member_price_exclusive_test.lua has the
-- other two rules.

kit.plugins {
  catalog = {}, coupons = {}, tierfeed = {},
  orders = { member_price_plugin = "tiers", max_unpaid_orders = 50 },
  payments = { secret = "tiers-kit-payment-secret-0123" },
  tiers = {
    levels = {
      { id = "regular", name = "会员", growth = 0 },
      { id = "silver", name = "银卡", growth = 1000, discount_percent = 98 },
      { id = "gold", name = "金卡", growth = 5000, discount_percent = 95, prices = { ["tea-gold"] = 11800 } },
    },
  },
}

local shop = require("tp.testshop")
local LIST = shop.sku { price_fen = 10000, stock = 1000 }
local ODD = shop.sku { price_fen = 999, stock = 1000 }
shop.sku { code = "tea-gold", price_fen = 12800, stock = 1000 }

local function grow(user, amount)
  local r = kit.admin():post("/tiers/members/" .. user .. "/growth", { amount = amount, ref = "setup" })
  assert(r.status == 201, "growth refused")
end
grow("gina", 5000)   -- gold
grow("sam", 1000)    -- silver
grow("rex", 10)      -- regular: no member price

local function checkout(user, lines, coupon_id)
  local res = kit.user(user):post("/orders", { lines = lines, coupon_id = coupon_id })
  expect(res.status).to_be(201)
  return res.body
end

local function coupon_for(user, off_fen)
  local t = kit.admin():post("/coupons/templates", { name = "off", kind = "fixed", amount_off_fen = off_fen,
    valid_days = 7, total_quantity = 100 })
  return kit.user(user):post("/coupons/templates/" .. t.body.id .. "/claim").body.id
end

describe("member price", function()
  -- table-driven: who buys what, at which unit price
  local cases = {
    { "gold: 95 % of the list price", "gina", LIST, 10000, 9500 },
    { "silver: 98 %", "sam", LIST, 10000, 9800 },
    { "regular: none", "rex", LIST, 10000, 10000 },
    { "no tier at all: none", "nobody", LIST, 10000, 10000 },
    { "rounded down, in the member's favour", "gina", ODD, 999, 949 },
    { "a SKU's own member price beats the percentage", "gina", "tea-gold", 12800, 11800 },
    { "a SKU's own price is only its tier's", "sam", "tea-gold", 12800, 12544 },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local o = checkout(c[2], { { sku = c[3], qty = 2 } })
      expect(o.lines[1].list_price_fen).to_be(c[4])
      expect(o.lines[1].unit_price_fen).to_be(c[5])
      expect(o.total_fen).to_be(c[5] * 2)
    end)
  end

  it("stacks with a coupon: the coupon applies to the member-priced lines", function()
    local id = coupon_for("gina", 2000)
    local o = checkout("gina", { { sku = LIST, qty = 1 } }, id)
    expect(o.lines[1].unit_price_fen).to_be(9500)
    expect(o.discount_fen).to_be(2000)
    expect(o.total_fen).to_be(7500)
  end)

  it("does not apply to a campaign order: the campaign's price stands", function()
    local res = kit.admin():post("/tierfeed/campaign-order", { user = "gina", sku = LIST, price_fen = 9900 })
    expect(res.status).to_be(201)
    expect(res.body.lines[1].unit_price_fen).to_be(9900)
    res = kit.admin():post("/tierfeed/campaign-order", { user = "gina", sku = LIST, price_fen = 8000 })
    expect(res.body.lines[1].unit_price_fen).to_be(8000)
  end)

  it("follows the tier at the moment of checkout", function()
    expect(kit.admin():post("/tiers/members/rex/growth", { amount = 4990, ref = "later" }).status).to_be(201)
    expect(checkout("rex", { { sku = LIST, qty = 1 } }).lines[1].unit_price_fen).to_be(9500)
  end)
end)
