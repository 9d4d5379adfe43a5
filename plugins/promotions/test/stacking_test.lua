-- The brand's stacking settings other than the default (pricing_test.lua):
-- item_with_order = false (an order promotion counts only lines no item
-- promotion took), with_member_price = false (lines at a member price take
-- no promotion), with_coupon = false (an order a promotion applies to takes
-- no coupon).

kit.plugins {
  catalog = {}, coupons = {},
  orders = { promotions_plugin = "promotions", member_price_plugin = "tiers", max_unpaid_orders = 100 },
  payments = { secret = "promotions-kit-payment-secret" },
  tiers = { levels = { { id = "regular", name = "会员", growth = 0 },
                       { id = "gold", name = "金卡", growth = 5000, discount_percent = 95 } } },
  promotions = { item_with_order = false, with_member_price = false, with_coupon = false },
}

local shop = require("tp.testshop")
local A = shop.sku { code = "A", price_fen = 10000, stock = 10000 }
local B = shop.sku { code = "B", price_fen = 4990, stock = 10000 }
assert(kit.admin():post("/tiers/members/gina/growth", { amount = 5000, ref = "setup" }).status == 201)

local function promo(kind, fields)
  local b = { name = kind, kind = kind, starts_at = kit.now() - 60, ends_at = kit.now() + 86400 }
  for k, v in pairs(fields) do b[k] = v end
  local r = kit.admin():post("/promotions", b)
  assert(r.status == 201)
  return r.body.id
end
promo("timed_discount", { skus = { A }, percent = 85 })
promo("full_reduction", { tiers = { { min_fen = 19900, off_fen = 2000 }, { min_fen = 29900, off_fen = 4000 } } })

local function preview(user, body) return kit.user(user):post("/orders/preview", body) end

describe("stacking settings", function()
  local cases = {
    { "item_with_order = false: lines a 限时折扣 took do not count for 满减", "rex", { { sku = A, qty = 3 } }, 25500, 4500 },
    { "item_with_order = false: the other lines still do", "rex", { { sku = A, qty = 3 }, { sku = B, qty = 4 } }, 43460, 6500 },
    { "with_member_price = false: member-priced lines take no promotion", "gina", { { sku = A, qty = 3 } }, 28500, 0 },
    { "with_member_price = false: a buyer without one gets them", "rex", { { sku = B, qty = 4 } }, 17960, 2000 },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local p = preview(c[2], { lines = c[3] })
      expect({ p.body.total_fen, p.body.promotions_fen }).to_equal({ c[4], c[5] })
      local o = kit.user(c[2]):post("/orders", { lines = c[3] })
      expect(o.body.total_fen).to_be(c[4])
    end)
  end

  it("with_coupon = false: an order a promotion applies to refuses the coupon, one it does not takes it", function()
    local t = kit.admin():post("/coupons/templates", { name = "¥10", kind = "fixed", amount_off_fen = 1000,
      valid_days = 7, total_quantity = 100, per_user_limit = 5 }).body.id
    local c1 = kit.user("cara"):post("/coupons/templates/" .. t .. "/claim").body.id
    expect(preview("cara", { lines = { { sku = B, qty = 4 } }, coupon_id = c1 })).to_be_error(409, "coupon_not_stackable")
    expect(kit.user("cara"):post("/orders", { lines = { { sku = B, qty = 4 } }, coupon_id = c1 }))
      .to_be_error(409, "coupon_not_stackable")
    expect(kit.query("SELECT state FROM coupons_coupons WHERE id = ?", c1)[1].state).to_be("unused")
    local o = kit.user("cara"):post("/orders", { lines = { { sku = B, qty = 1 } }, coupon_id = c1 })
    expect(o.body.total_fen).to_be(3990)
  end)
end)
