-- points at checkout and after: earning from a paid order, part payment with
-- the brand's rate and cap after the coupon, a cancel and a timeout giving the
-- points back, a refund returning spent points and clawing back earned ones
-- pro rata (clamped at zero: allow_negative is off here), through the real
-- routes of orders, payments and coupons.

kit.plugins {
  catalog = {},
  orders = { unpaid_timeout_seconds = 600, max_unpaid_orders = 5 },
  payments = { secret = "points-kit-payment-secret-0123" },
  coupons = {},
  points = { earn = { points = 1, per_fen = 100 },
             redeem = { points_per_fen = 1, max_percent = 50, max_points = 6000 } },
}

local shop = require("tp.testshop")

local function balance(user)
  return kit.user(user):get("/points/me").body.balance
end

local function give(user, n)
  local res = kit.admin():post("/points/accounts/" .. user .. "/adjust", { points = n, reason = "test grant" })
  assert(res.status == 201, "adjust answered " .. res.status)
end

local function checkout(user, lines, extra)
  local body = { lines = lines }
  for k, v in pairs(extra or {}) do body[k] = v end
  return kit.user(user):post("/orders", body)
end

local function pay(id)
  local res = kit.admin():post("/payments/simulate", { order_id = id })
  assert(res.status == 200, "pay answered " .. res.status)
  kit.drain()
end

local function entries(user)
  local out = {}
  for _, e in ipairs(kit.user(user):get("/points/me/entries?limit=100").body.items) do
    table.insert(out, 1, { e.kind, e.points })
  end
  return out
end

describe("points at checkout", function()
  it("pays part of an order after the coupon, capped at max_percent of what is left", function()
    local sku = shop.sku{ price_fen = 10000, stock = 10 }
    give("ann", 9000)
    local tpl = kit.admin():post("/coupons/templates", { name = "¥20 off", kind = "fixed", amount_off_fen = 2000,
      valid_days = 30, total_quantity = 10 })
    assert(tpl.status == 201, "template " .. tpl.status .. " " .. tostring(tpl.body.error and tpl.body.error.message))
    local coupon = kit.user("ann"):post("/coupons/templates/" .. tpl.body.id .. "/claim").body.id
    local res = checkout("ann", { { sku = sku, qty = 1 } }, { coupon_id = coupon, points = 9000 })
    expect(res.status).to_be(201)
    -- 10000 - 2000 (coupon) = 8000 left; 50 % of it is 4000 fen = 4000 points
    expect({ res.body.items_fen, res.body.discount_fen, res.body.points, res.body.points_fen, res.body.total_fen })
      .to_equal({ 10000, 6000, 4000, 4000, 4000 })
    expect(res.body.lines[1].paid_fen).to_be(4000)
    expect(balance("ann")).to_be(5000)
    expect(entries("ann")).to_equal({ { "adjust", 9000 }, { "spend", -4000 } })
  end)

  it("takes at most max_points and leaves a balance that cannot cover it untouched", function()
    local sku = shop.sku{ price_fen = 100000, stock = 10 }
    give("bob", 7000)
    local res = checkout("bob", { { sku = sku, qty = 1 } }, { points = 7000 })
    expect({ res.status, res.body.points, res.body.total_fen }).to_equal({ 201, 6000, 94000 })
    expect(balance("bob")).to_be(1000)
    local stock = kit.query("SELECT stock FROM catalog_skus WHERE code = ?", sku)[1].stock
    local short = checkout("bob", { { sku = sku, qty = 1 } }, { points = 5000 })
    local err = expect(short).to_be_error(409, "insufficient_points")
    expect(err.details).to_equal({ balance = 1000, points = 5000 })
    -- the refused checkout reserved nothing and spent nothing
    expect(kit.query("SELECT stock FROM catalog_skus WHERE code = ?", sku)[1].stock).to_be(stock)
    expect(balance("bob")).to_be(1000)
  end)

  it("refuses points that are not a positive integer", function()
    local sku = shop.sku{ price_fen = 1000, stock = 10 }
    for _, bad in ipairs({ 0, -5, 1.5, "100", true }) do
      local err = expect(checkout("cy", { { sku = sku, qty = 1 } }, { points = bad })).to_be_error(400, "invalid_field")
      expect(err.details.field).to_be("points")
    end
  end)

  it("gives the points back when the user cancels, and when the unpaid timeout does", function()
    local sku = shop.sku{ price_fen = 2000, stock = 10 }
    give("dee", 1500)
    local o1 = checkout("dee", { { sku = sku, qty = 1 } }, { points = 1000 }).body
    expect(o1.points).to_be(1000)
    expect(balance("dee")).to_be(500)
    expect(kit.user("dee"):post("/orders/" .. o1.id .. "/cancel").status).to_be(200)
    expect(balance("dee")).to_be(1500)
    local o2 = checkout("dee", { { sku = sku, qty = 1 } }, { points = 1000 }).body
    expect(balance("dee")).to_be(500)
    kit.advance(601)
    expect(kit.user("dee"):get("/orders/" .. o2.id).body.status).to_be("cancelled")
    expect(balance("dee")).to_be(1500)
    expect(entries("dee")).to_equal({ { "adjust", 1500 }, { "spend", -1000 }, { "return", 1000 },
                                      { "spend", -1000 }, { "return", 1000 } })
  end)
end)

describe("a payment after the cancel", function()
  it("takes the points again when the balance still has them", function()
    local sku = shop.sku{ price_fen = 2000, stock = 10 }
    give("ivy", 1000)
    local o = checkout("ivy", { { sku = sku, qty = 1 } }, { points = 1000 }).body
    kit.user("ivy"):post("/orders/" .. o.id .. "/cancel")
    expect(balance("ivy")).to_be(1000)
    local res = kit.admin():post("/payments/simulate", { order_id = o.id })
    expect(res.body.result.outcome).to_be("paid_after_cancel")
    kit.drain()
    expect(balance("ivy")).to_be(0 + 10)             -- spent again; 10 earned on the 1000 fen paid
  end)

  it("refunds the payment when the balance no longer covers them", function()
    local sku = shop.sku{ price_fen = 2000, stock = 10 }
    give("jon", 1000)
    local o = checkout("jon", { { sku = sku, qty = 1 } }, { points = 1000 }).body
    kit.user("jon"):post("/orders/" .. o.id .. "/cancel")
    give("jon", -500)
    local res = kit.admin():post("/payments/simulate", { order_id = o.id })
    expect(res.body.result.outcome).to_be("refunding")
    kit.drain()
    expect(balance("jon")).to_be(500)
    expect(kit.user("jon"):get("/orders/" .. o.id).body.status).to_be("refunded")
  end)
end)

describe("earning and refunds", function()
  it("earns 1 point per ¥1 paid, once, when the order is paid", function()
    local sku = shop.sku{ price_fen = 12850, stock = 10 }
    local o = checkout("eve", { { sku = sku, qty = 1 } }).body
    pay(o.id)
    expect(balance("eve")).to_be(128)
    kit.drain()
    expect(entries("eve")).to_equal({ { "earn", 128 } })
  end)

  it("returns spent points and claws back earned ones pro rata on a partial refund, all on the last", function()
    local sku = shop.sku{ price_fen = 10000, stock = 10 }
    give("fay", 3000)
    local o = checkout("fay", { { sku = sku, qty = 1 } }, { points = 3000 }).body
    expect(o.total_fen).to_be(7000)
    pay(o.id)                                    -- earns 70 on the 7000 fen paid
    expect(balance("fay")).to_be(70)
    kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = 3500 })
    kit.drain()
    -- half of the money: half the spent points back (1500), half the earned taken (35)
    expect(balance("fay")).to_be(70 + 1500 - 35)
    kit.admin():post("/orders/" .. o.id .. "/refund", {})
    kit.drain()
    expect(balance("fay")).to_be(3000)
    expect(entries("fay")).to_equal({ { "adjust", 3000 }, { "spend", -3000 }, { "earn", 70 },
      { "return", 1500 }, { "clawback", -35 }, { "return", 1500 }, { "clawback", -35 } })
  end)

  it("claws back only what the balance holds: never below zero, the rest recorded as shortfall", function()
    local sku = shop.sku{ price_fen = 50000, stock = 10 }
    local o = checkout("gus", { { sku = sku, qty = 1 } }).body
    pay(o.id)
    expect(balance("gus")).to_be(500)
    give("gus", -400)                            -- the operator takes 400 back first
    kit.admin():post("/orders/" .. o.id .. "/refund", {})
    kit.drain()
    expect(balance("gus")).to_be(0)
    expect(kit.query("SELECT earned, clawed, shortfall FROM points_orders WHERE order_id = ?", o.id))
      .to_equal({ { earned = 500, clawed = 100, shortfall = 400 } })
  end)
end)

describe("an operator's adjustment", function()
  it("needs a reason and may not take more than the balance", function()
    give("hal", 100)
    expect(kit.admin():post("/points/accounts/hal/adjust", { points = 5 })).to_be_error(400, "invalid_field")
    expect(kit.admin():post("/points/accounts/hal/adjust", { points = 0, reason = "x" })).to_be_error(400, "invalid_field")
    expect(kit.admin():post("/points/accounts/hal/adjust", { points = 5, reason = "x", extra = 1 }))
      .to_be_error(400, "invalid_field")
    local err = expect(kit.admin():post("/points/accounts/hal/adjust", { points = -101, reason = "x" }))
      .to_be_error(409, "insufficient_points")
    expect(err.details.balance).to_be(100)
    local res = kit.admin():get("/points/accounts/hal")
    expect({ res.body.balance, res.body.entries[1].reason }).to_equal({ 100, "test grant" })
  end)
end)
