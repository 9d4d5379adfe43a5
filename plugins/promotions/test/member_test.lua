-- Promotions on member prices (the default, with_member_price = true), and
-- never on a campaign's order (a flash sale's price stands).

kit.plugins {
  catalog = {}, coupons = {}, flash_sale = {},
  orders = { promotions_plugin = "promotions", member_price_plugin = "tiers", max_unpaid_orders = 100 },
  payments = { secret = "promotions-kit-payment-secret" },
  tiers = { levels = { { id = "regular", name = "会员", growth = 0 },
                       { id = "gold", name = "金卡", growth = 5000, discount_percent = 95 } } },
  promotions = {},
}

local shop = require("tp.testshop")
local A = shop.sku { code = "A", price_fen = 10000, stock = 10000 }
assert(kit.admin():post("/tiers/members/gina/growth", { amount = 5000, ref = "setup" }).status == 201)
assert(kit.admin():post("/promotions", { name = "满减", kind = "full_reduction", starts_at = kit.now() - 60,
  ends_at = kit.now() + 86400, tiers = { { min_qty = 1, off_fen = 500 }, { min_fen = 29000, off_fen = 3000 } } }).status == 400)
assert(kit.admin():post("/promotions", { name = "满减", kind = "full_reduction", starts_at = kit.now() - 60,
  ends_at = kit.now() + 86400, tiers = { { min_fen = 19900, off_fen = 2000 }, { min_fen = 29900, off_fen = 4000 } } }).status == 201)

describe("promotions and the member price", function()
  it("满减 counts the member price: gold's 3 x ¥95 = ¥285 reaches only the first tier", function()
    local p = kit.user("gina"):post("/orders/preview", { lines = { { sku = A, qty = 3 } } }).body
    expect({ p.lines[1].unit_price_fen, p.promotions_fen, p.total_fen }).to_equal({ 9500, 2000, 26500 })
    expect(p.hints[1].add_fen).to_be(1400)
    local o = kit.user("gina"):post("/orders", { lines = { { sku = A, qty = 3 } } }).body
    expect(o.total_fen).to_be(26500)
  end)

  it("a flash sale's order takes no promotion", function()
    local sale = kit.admin():post("/flash-sales", { sku = A, price_fen = 9000, quantity = 10,
      per_user_limit = 3, per_order_limit = 3, starts_at = kit.now() - 1, ends_at = kit.now() + 3600 })
    expect(sale.status).to_be(201)
    local o = kit.user("rex"):post("/flash-sales/" .. sale.body.id .. "/buy", { qty = 3 })
    expect(o.status).to_be(201)
    expect({ o.body.items_fen, o.body.discount_fen, o.body.total_fen }).to_equal({ 27000, 0, 27000 })
    -- at list price the same three reach the 满减
    expect(kit.user("rex"):post("/orders/preview", { lines = { { sku = A, qty = 3 } } }).body.total_fen).to_be(26000)
  end)
end)
