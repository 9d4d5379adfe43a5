-- 优惠码: a promotion that requires a code runs only for a checkout that
-- gives one; a single-use code is redeemed by one order and given back when
-- that order is cancelled; a shared code serves every buyer.

kit.plugins {
  catalog = {}, promotions = {},
  orders = { promotions_plugin = "promotions", max_unpaid_orders = 100 },
}

local shop = require("tp.testshop")
local A = shop.sku { code = "A", price_fen = 10000, stock = 10000 }

local function promo(fields)
  local b = { name = "code ¥30", kind = "full_reduction", requires_code = true,
              tiers = { { min_fen = 10000, off_fen = 3000 } },
              starts_at = kit.now() - 60, ends_at = kit.now() + 86400 }
  for k, v in pairs(fields or {}) do b[k] = v end
  local r = kit.admin():post("/promotions", b)
  assert(r.status == 201)
  return r.body.id
end

local LINES = { { sku = A, qty = 1 } }

describe("优惠码", function()
  local id = promo()
  it("a promotion that requires a code does not run without one", function()
    expect(kit.user("u1"):post("/orders/preview", { lines = LINES }).body.total_fen).to_be(10000)
    expect(kit.anon():get("/promotions").body.items).to_equal({})
  end)

  it("a shared code serves every buyer, typed in any case", function()
    local r = kit.admin():post("/promotions/" .. id .. "/codes", { code = "leaf30" })
    expect(r.status).to_be(201)
    expect(r.body.codes).to_equal({ "LEAF30" })
    for _, u in ipairs({ "u1", "u2" }) do
      local p = kit.user(u):post("/orders/preview", { lines = LINES, promo_code = " Leaf30 " })
      expect({ p.body.total_fen, p.body.promo_code.applied }).to_equal({ 7000, true })
      local o = kit.user(u):post("/orders", { lines = LINES, promo_code = "LEAF30" })
      expect(o.body.total_fen).to_be(7000)
    end
    expect(kit.admin():get("/promotions/" .. id .. "/codes").body.items[1].uses).to_be(2)
    expect(kit.admin():post("/promotions/" .. id .. "/codes", { code = "LEAF30" })).to_be_error(409, "code_taken")
  end)

  it("a single-use code is used once, and comes back when its order is cancelled", function()
    local r = kit.admin():post("/promotions/" .. id .. "/codes", { count = 5 })
    expect(#r.body.codes).to_be(5)
    expect(r.body.single_use).to_be(true)
    expect(r.body.codes[1]).to_match("^[A-HJ-NP-Z2-9]+$")
    local code = r.body.codes[1]
    local o = kit.user("u3"):post("/orders", { lines = LINES, promo_code = code })
    expect(o.body.total_fen).to_be(7000)
    expect(kit.user("u4"):post("/orders/preview", { lines = LINES, promo_code = code }))
      .to_be_error(409, "promo_code_used")
    expect(kit.user("u4"):post("/orders", { lines = LINES, promo_code = code })).to_be_error(409, "promo_code_used")
    expect(kit.user("u3"):post("/orders/" .. o.body.id .. "/cancel").status).to_be(200)
    kit.drain()
    expect(kit.user("u4"):post("/orders", { lines = LINES, promo_code = code }).body.total_fen).to_be(7000)
  end)

  it("a code whose promotion took nothing is not used up", function()
    local r = kit.admin():post("/promotions/" .. id .. "/codes", { count = 1 })
    local code = r.body.codes[1]
    local cheap = shop.sku { price_fen = 500, stock = 100 }
    local o = kit.user("u5"):post("/orders", { lines = { { sku = cheap, qty = 1 } }, promo_code = code })
    expect(o.body.total_fen).to_be(500)
    expect(kit.user("u6"):post("/orders", { lines = LINES, promo_code = code }).body.total_fen).to_be(7000)
  end)

  it("refuses unknown codes, codes of a promotion not running, and a code for a promotion without one", function()
    expect(kit.user("u7"):post("/orders", { lines = LINES, promo_code = "NOPE1234" })).to_be_error(404, "promo_code_not_found")
    expect(kit.user("u7"):post("/orders", { lines = LINES, promo_code = "x" })).to_be_error(400, "invalid_field")
    local later = promo { starts_at = kit.now() + 3600, ends_at = kit.now() + 7200 }
    kit.admin():post("/promotions/" .. later .. "/codes", { code = "LATER1" })
    expect(kit.user("u7"):post("/orders/preview", { lines = LINES, promo_code = "LATER1" }))
      .to_be_error(409, "promo_code_not_active")
    local open = promo { requires_code = false }
    expect(kit.admin():post("/promotions/" .. open .. "/codes", { code = "OPEN1" })).to_be_error(409, "code_not_required")
    expect(kit.admin():post("/promotions/" .. id .. "/codes", { code = "A1B2", count = 2 })).to_be_error(400, "invalid_field")
    expect(kit.admin():post("/promotions/" .. id .. "/codes", { count = 10001 })).to_be_error(400, "invalid_field")
    expect(kit.query("SELECT count(*) AS n FROM orders_orders WHERE user = 'u7'")[1].n).to_be(0)
  end)
end)
