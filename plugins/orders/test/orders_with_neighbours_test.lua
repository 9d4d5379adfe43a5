-- orders with the plugins that price and follow its orders: a coupon's
-- discount split over the lines by largest remainder (coupons), and the
-- events order.paid / order.completed / order.refunded seen through their
-- effect on a subscriber (referral books commission from them). Events are
-- delivered only when the test drains the queue or advances the clock, so each
-- test checks the effect is absent before kit.drain() and present after.

kit.plugins {
  catalog = {},
  coupons = {},
  orders = { attribution_plugin = "referral", max_unpaid_orders = 5 },
  payments = { secret = "orders-kit-payment-secret-0123" },
  referral = { level1_rate_bp = 1000, level2_rate_bp = 500, settle_after_seconds = 86400 },
}

local shop = require("tp.testshop")

local function new_sku(price_fen, stock)
  return (shop.sku{ price_fen = price_fen, stock = stock })
end

---A coupon of amount_off_fen claimed by user; returns its id.
local function coupon_for(user, amount_off_fen)
  local t = kit.admin():post("/coupons/templates", { name = "off", kind = "fixed",
    amount_off_fen = amount_off_fen, valid_days = 7, total_quantity = 100 })
  assert(t.status == 201, "coupons refused the template")
  local c = kit.user(user):post("/coupons/templates/" .. t.body.id .. "/claim")
  assert(c.status == 201, "coupons refused the claim")
  return c.body.id
end

local function coupon_state(user, id)
  for _, c in ipairs(kit.user(user):get("/coupons/mine").body.items) do
    if c.id == id then return c.state end
  end
end

local function pay(id)
  return kit.admin():post("/payments/simulate", { order_id = id }).body.result.outcome
end

local function balance(user)
  return kit.user(user):get("/referral/me").body.earnings
end

describe("a coupon", function()
  it("is split over the lines by largest remainder, the parts summing to the discount", function()
    local a, b = new_sku(1280, 10), new_sku(333, 10)
    local id = coupon_for("cora", 1000)
    local res = kit.user("cora"):post("/orders", { coupon_id = id,
      lines = { { sku = a, qty = 2 }, { sku = b, qty = 3 } } })
    expect(res.status).to_be(201)
    local o = res.body
    expect({ o.items_fen, o.discount_fen, o.total_fen, o.coupon_id }).to_equal({ 3559, 1000, 2559, id })
    -- 1000 * 2560 / 3559 = 719.3, 1000 * 999 / 3559 = 280.7: the spare fen goes to the larger remainder
    expect({ o.lines[1].discount_fen, o.lines[1].paid_fen }).to_equal({ 719, 1841 })
    expect({ o.lines[2].discount_fen, o.lines[2].paid_fen }).to_equal({ 281, 718 })
    expect(coupon_state("cora", id)).to_be("locked")
    expect(pay(o.id)).to_be("paid")
    expect(coupon_state("cora", id)).to_be("used")
  end)

  it("never brings an order below 1 fen, and goes back when the order is cancelled", function()
    local a = new_sku(500, 10)
    local id = coupon_for("cleo", 2000)
    local o = kit.user("cleo"):post("/orders", { coupon_id = id, lines = { { sku = a, qty = 1 } } }).body
    expect({ o.items_fen, o.discount_fen, o.total_fen }).to_equal({ 500, 499, 1 })
    expect(kit.user("cleo"):post("/orders/" .. o.id .. "/cancel").status).to_be(200)
    expect(coupon_state("cleo", id)).to_be("unused")
  end)
end)

describe("events", function()
  local promoter_code

  it("carry the attribution stored at checkout to the subscriber of order.paid", function()
    local joined = kit.user("pro"):post("/referral/join", {})
    expect(joined.status).to_be(201)
    promoter_code = kit.user("pro"):get("/referral/me").body.distributor.code
    expect(kit.user("buyer"):post("/referral/bind", { code = promoter_code }).status).to_be(201)
    local a = new_sku(2000, 10)
    local o = kit.user("buyer"):post("/orders", { lines = { { sku = a, qty = 2 } } }).body
    expect(o.attribution.referrer).to_be("pro")
    expect(pay(o.id)).to_be("paid")
    expect(balance("pro").frozen_fen).to_be(0)   -- order.paid waits in the queue
    kit.drain()
    expect(balance("pro").frozen_fen).to_be(400) -- 10 % of 4000 fen
    kit.drain()                                  -- nothing is delivered twice
    expect(balance("pro").frozen_fen).to_be(400)
  end)

  it("order.completed opens the refund window; order.refunded reverses in proportion", function()
    local a = new_sku(1000, 10)
    local o = kit.user("buyer"):post("/orders", { lines = { { sku = a, qty = 3 } } }).body
    pay(o.id)
    kit.drain()
    expect(balance("pro").frozen_fen).to_be(700)
    local r = kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = 1000 })
    expect(r.status).to_be(202)
    kit.drain()                                  -- the refund job runs, then order.refunded
    expect(kit.admin():get("/orders/" .. o.id).body.refunded_fen).to_be(1000)
    expect(balance("pro").frozen_fen).to_be(600) -- 300 * (3000 - 1000) / 3000 = 200 kept
    expect(kit.user("buyer"):post("/orders/" .. o.id .. "/confirm").body.status).to_be("completed")
    kit.drain()
    expect(balance("pro").settled_fen).to_be(0)
    kit.advance(86400)                           -- settle_after_seconds after completion
    expect(balance("pro").settled_fen).to_be(200)
    expect(balance("pro").frozen_fen).to_be(400)
  end)
end)
