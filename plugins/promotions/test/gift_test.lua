-- 满送 and 赠品 (kind gift): a gift SKU taken from stock with the order (赠完即止:
-- an order past the gift's stock still goes through, without it), given back
-- by a cancel; a gift coupon issued when the order is paid; gifts change no
-- price.

kit.plugins {
  catalog = {}, coupons = {}, promotions = {},
  orders = { promotions_plugin = "promotions", max_unpaid_orders = 100 },
  payments = { secret = "promotions-gift-kit-secret-01" },
}

local shop = require("tp.testshop")
local A = shop.sku { code = "A", price_fen = 10000, stock = 1000 }
local TEA = shop.sku { code = "TEA", price_fen = 2990, stock = 1000 }
local CUP = shop.sku { code = "CUP", price_fen = 1500, stock = 100 }
local SAMPLE = shop.sku { code = "SAMPLE", price_fen = 500, stock = 1 }

local made = kit.admin():post("/coupons/templates", { name = "next time ¥15", kind = "fixed", amount_off_fen = 1500,
  valid_days = 30, total_quantity = 100, audience = "issue_only" })
assert(made.status == 201, "template refused")
local T = made.body.id

local function promo(fields)
  local b = { name = "gift", kind = "gift", starts_at = kit.now() - 60, ends_at = kit.now() + 86400 }
  for k, v in pairs(fields) do b[k] = v end
  local r = kit.admin():post("/promotions", b)
  assert(r.status == 201, r.body and r.body.error and r.body.error.message)
  return r.body.id
end
local GIFT = promo { name = "满199送杯", skus = { A }, tiers = { { min_fen = 19900, gift_sku = CUP },
  { min_fen = 29900, gift_sku = CUP, gift_qty = 2, coupon_template_id = T } } }
local ZENG = promo { name = "买茶送小样", skus = { TEA }, tiers = { { min_qty = 1, gift_sku = SAMPLE } } }

local function stock(code) return kit.query("SELECT stock FROM catalog_skus WHERE code = ?", code)[1].stock end
local function gifts(order_id) return kit.admin():get("/promotions/orders/" .. order_id .. "/gifts").body.items end

describe("满送 and 赠品", function()
  it("below the tier: no gift, a hint, the price unchanged", function()
    local p = kit.user("u1"):post("/orders/preview", { lines = { { sku = A, qty = 1 } } }).body
    expect({ #p.gifts, p.total_fen, p.promotions_fen }).to_equal({ 0, 10000, 0 })
    expect(p.hints[1].message).to_be("add ¥99.00 for a gift (满199送杯)")
    expect(p.hints[1].gift_sku).to_be(CUP)
  end)

  it("a gift SKU comes out of stock with the order and goes back with a cancel", function()
    local p = kit.user("u1"):post("/orders/preview", { lines = { { sku = A, qty = 2 } } }).body
    expect({ p.gifts[1].promotion_id, p.gifts[1].gift_sku, p.gifts[1].gift_qty, p.total_fen })
      .to_equal({ GIFT, CUP, 1, 20000 })
    local o = kit.user("u1"):post("/orders", { lines = { { sku = A, qty = 2 } } }).body
    expect(o.total_fen).to_be(20000)
    expect(stock(CUP)).to_be(99)
    expect({ gifts(o.id)[1].kind, gifts(o.id)[1].state }).to_equal({ "sku", "reserved" })
    expect(kit.user("u1"):post("/orders/" .. o.id .. "/cancel").status).to_be(200)
    kit.drain()
    expect(stock(CUP)).to_be(100)
    expect(gifts(o.id)[1].state).to_be("released")
  end)

  it("the top tier: two cups now, a coupon once paid", function()
    local o = kit.user("u2"):post("/orders", { lines = { { sku = A, qty = 3 } } }).body
    expect(stock(CUP)).to_be(98)
    local g = gifts(o.id)
    expect({ g[1].kind, g[1].state, g[2].kind, g[2].qty, g[2].state }).to_equal({ "coupon", "pending", "sku", 2, "reserved" })
    expect(kit.admin():post("/payments/simulate", { order_id = o.id }).status).to_be(200)
    kit.drain()
    g = gifts(o.id)
    expect(g[1].note).to_be_nil()
    expect(g[1].state).to_be("issued")
    local mine = kit.user("u2"):get("/coupons/mine").body.items
    expect(#mine).to_be(1)
    expect(mine[1].id).to_be(g[1].coupon_id)
  end)

  it("赠品: while its stock lasts; past it the order goes through without", function()
    local o1 = kit.user("u3"):post("/orders", { lines = { { sku = TEA, qty = 1 } } }).body
    expect(gifts(o1.id)[1].state).to_be("reserved")
    local o2 = kit.user("u4"):post("/orders", { lines = { { sku = TEA, qty = 1 } } })
    expect(o2.status).to_be(201)
    expect(gifts(o2.body.id)[1].state).to_be("out_of_stock")
    expect(stock(SAMPLE)).to_be(0)
  end)

  it("refuses a gift tier without a gift, or with a discount", function()
    local bad = { { tiers = { { min_fen = 100 } } }, { tiers = { { min_fen = 100, gift_sku = CUP, off_fen = 10 } } },
                  { tiers = { { min_fen = 100, gift_sku = "nope" } } }, { tiers = { { min_fen = 100, gift_qty = 2, coupon_template_id = T } } } }
    for _, b in ipairs(bad) do
      b.name, b.kind, b.starts_at, b.ends_at = "x", "gift", kit.now(), kit.now() + 60
      expect(kit.admin():post("/promotions", b).status).to_be(400)
    end
    expect(kit.admin():post("/promotions", { name = "x", kind = "full_reduction", starts_at = kit.now(),
      ends_at = kit.now() + 60, tiers = { { min_fen = 100, off_fen = 10, gift_sku = CUP } } })).to_be_error(400, "invalid_field")
  end)
end)
