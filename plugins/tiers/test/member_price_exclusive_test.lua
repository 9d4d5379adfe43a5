-- member price with the other stacking rules: with_coupon = false (an order
-- that uses a coupon is at list prices: coupon or member price, not both) and
-- with_campaign = "lower" (a campaign order takes the lower of the two).

kit.plugins {
  catalog = {}, coupons = {}, tierfeed = {},
  orders = { member_price_plugin = "tiers", max_unpaid_orders = 50 },
  payments = { secret = "tiers-kit-payment-secret-0123" },
  tiers = {
    levels = {
      { id = "regular", name = "会员", growth = 0 },
      { id = "gold", name = "金卡", growth = 5000, discount_percent = 95 },
    },
    member_price = { with_coupon = false, with_campaign = "lower" },
  },
}

local shop = require("tp.testshop")
local LIST = shop.sku { price_fen = 10000, stock = 1000 }
kit.admin():post("/tiers/members/gina/growth", { amount = 5000, ref = "setup" })

local function coupon_for(user, off_fen)
  local t = kit.admin():post("/coupons/templates", { name = "off", kind = "fixed", amount_off_fen = off_fen,
    valid_days = 7, total_quantity = 100 })
  return kit.user(user):post("/coupons/templates/" .. t.body.id .. "/claim").body.id
end

describe("member price, exclusive of coupons", function()
  it("applies without a coupon", function()
    local o = kit.user("gina"):post("/orders", { lines = { { sku = LIST, qty = 1 } } }).body
    expect(o.lines[1].unit_price_fen).to_be(9500)
  end)

  it("gives way to a coupon: the order is at list price less the coupon", function()
    local o = kit.user("gina"):post("/orders", { lines = { { sku = LIST, qty = 1 } },
      coupon_id = coupon_for("gina", 2000) }).body
    expect(o.lines[1].unit_price_fen).to_be(10000)
    expect(o.discount_fen).to_be(2000)
    expect(o.total_fen).to_be(8000)
  end)
end)

describe("member price against a campaign price, the lower wins", function()
  local cases = {
    { "the member price when it is lower", 9900, 9500 },
    { "the campaign price when it is lower", 8000, 8000 },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local res = kit.admin():post("/tierfeed/campaign-order", { user = "gina", sku = LIST, price_fen = c[2] })
      expect(res.status).to_be(201)
      expect(res.body.lines[1].unit_price_fen).to_be(c[3])
    end)
  end
end)
