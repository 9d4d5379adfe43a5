-- A brand that allows a negative balance: a refund's claw-back takes all it
-- earned even when the balance no longer holds it, and the next points pay
-- the debt first. And points spent at checkout are rolled back with the
-- transaction they were spent in.

kit.plugins {
  catalog = {}, orders = {}, payments = { secret = "points-kit-payment-secret-0123" },
  points = { earn = { points = 1, per_fen = 100 }, redeem = { points_per_fen = 1 }, allow_negative = true },
  checkout_probe = {},
}

local shop = require("tp.testshop")

local function balance(user) return kit.user(user):get("/points/me").body.balance end
local function adjust(user, n)
  return kit.admin():post("/points/accounts/" .. user .. "/adjust", { points = n, reason = "test" })
end

describe("a negative balance, when the brand allows it", function()
  it("comes from a claw-back the balance cannot cover, and is paid first by the next points", function()
    local sku = shop.sku{ price_fen = 50000, stock = 10 }
    local o = kit.user("ann"):post("/orders", { lines = { { sku = sku, qty = 1 } } }).body
    kit.admin():post("/payments/simulate", { order_id = o.id })
    kit.drain()
    expect(balance("ann")).to_be(500)
    expect(adjust("ann", -450).status).to_be(201)
    kit.admin():post("/orders/" .. o.id .. "/refund", {})
    kit.drain()
    expect(balance("ann")).to_be(-450)
    expect(adjust("ann", 500).status).to_be(201)
    expect(balance("ann")).to_be(50)
    -- the lots hold only what the balance has: 50, not 500
    expect(kit.query("SELECT sum(remaining) AS n FROM points_lots WHERE user = 'ann'")[1].n).to_be(50)
  end)
end)

describe("points spent at checkout", function()
  it("are rolled back with the transaction that spent them", function()
    local sku = shop.sku{ price_fen = 1000, stock = 5 }
    expect(adjust("bob", 300).status).to_be(201)
    local res = kit.admin():post("/checkout_probe/create_then_fail", { user = "bob", sku = sku, points = 200 })
    local err = expect(res).to_be_error(409, "later_step_failed")
    expect(err.message).to_match("spent 200 points")
    expect(balance("bob")).to_be(300)
    expect(kit.query("SELECT count(*) AS n FROM orders_orders WHERE user = 'bob'")[1].n).to_be(0)
    expect(kit.query("SELECT count(*) AS n FROM points_entries WHERE user = 'bob'")[1].n).to_be(1)
  end)
end)
