-- Orders paid in two payments (1.8.0), as any campaign makes them (here the
-- test-only campaign depositor): the deposit's 膨胀 split over several lines
-- by largest remainder, table-driven, every line and total exact to the fen;
-- the terms a campaign may not set wrong; a refund drawn from the balance's
-- payment first, then the deposit's.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 50 },
  payments = { secret = "orders-kit-two-payments-secret" },
  depositor = {},
}

local shop = require("tp.testshop")
local DAY = 86400

local function create(spec)
  return kit.admin():post("/depositor/orders", spec)
end

local function deposit(d, w)
  return { deposit_fen = d, worth_fen = w, balance_starts_at = kit.now() + DAY, balance_ends_at = kit.now() + 2 * DAY }
end

describe("the 膨胀 of a deposit", function()
  -- unit prices and quantities of the lines, the deposit and its worth, and each line's expected discount
  local cases = {
    { "one line", { { 25900, 1 } }, 5000, 10000, { 5000 } },
    { "two equal lines", { { 1000, 1 }, { 1000, 1 } }, 1, 2, { 1, 0 } },
    { "a remainder to the larger part", { { 3333, 3 }, { 1, 1 } }, 100, 1100, { 1000, 0 } },
    { "three lines, 7 fen over 3 equal", { { 500, 1 }, { 500, 1 }, { 500, 1 } }, 10, 17, { 3, 2, 2 } },
    { "uneven lines", { { 999, 2 }, { 1999, 1 }, { 7, 3 } }, 300, 1301, { 498, 498, 5 } },
    { "no 膨胀", { { 5000, 2 } }, 3000, 3000, { 0 } },
    { "the balance left at 1 fen", { { 100, 1 } }, 1, 99, { 98 } },
  }
  for _, c in ipairs(cases) do
    it("is split exactly: " .. c[1], function()
      local lines, items = {}, 0
      for i, l in ipairs(c[2]) do
        lines[i] = { sku = shop.sku { price_fen = l[1], stock = 10 }, qty = l[2], unit_price_fen = l[1] }
        items = items + l[1] * l[2]
      end
      local res = create({ user = "buyer", lines = lines, deposit = deposit(c[3], c[4]) })
      expect(res.status).to_be(201)
      local o = res.body
      local got, sum = {}, 0
      for i, l in ipairs(o.lines) do got[i] = l.discount_fen; sum = sum + l.paid_fen end
      expect(got).to_equal(c[5])
      expect(sum).to_be(o.total_fen)
      expect({ o.items_fen, o.discount_fen, o.total_fen }).to_equal({ items, c[4] - c[3], items - (c[4] - c[3]) })
      expect(o.deposit.deposit_fen + o.deposit.balance_fen).to_be(o.total_fen)
      expect(o.deposit.balance_fen).to_be(items - c[4])
      expect(o.payment_due.amount_fen).to_be(c[3])
    end)
  end
end)

describe("a campaign's two-payment terms", function()
  it("are refused when they cannot be", function()
    local sku = shop.sku { price_fen = 1000, stock = 10 }
    local line = { { sku = sku, qty = 1, unit_price_fen = 1000 } }
    local now = kit.now()
    local bad = {
      { deposit(1000, 1000), 409, "deposit_exceeds_price" },
      { deposit(500, 400), 400, "invalid_field" },
      { deposit(0, 10), 400, "invalid_field" },
      { { deposit_fen = 10, balance_starts_at = now + 10, balance_ends_at = now + 5 }, 400, "invalid_field" },
      { { deposit_fen = 10, balance_starts_at = now - 20, balance_ends_at = now - 10 }, 400, "invalid_field" },
      { { deposit_fen = 10 }, 400, "invalid_field" },
      { "ten", 400, "invalid_field" },
    }
    for _, b in ipairs(bad) do
      expect(create({ user = "u", lines = line, deposit = b[1] })).to_be_error(b[2], b[3])
    end
    expect(create({ user = "u", lines = line, deposit = deposit(10, 20), coupon_id = 1 }))
      .to_be_error(400, "invalid_field")
    expect(create({ user = "u", lines = { { sku = sku, qty = 1 } }, deposit = deposit(10, 20), no_campaign = true }))
      .to_be_error(403, "campaign_forbidden")
    expect(kit.query("SELECT stock FROM catalog_skus WHERE code = ?", sku)[1].stock).to_be(10)
  end)
end)

describe("a refund of a paid two-payment order", function()
  it("comes from the balance's payment first, then the deposit's, one number each", function()
    local sku = shop.sku { price_fen = 10000, stock = 10 }
    local o = create({ user = "r", lines = { { sku = sku, qty = 1, unit_price_fen = 10000 } },
                       deposit = deposit(2000, 3000) }).body
    expect(kit.admin():post("/payments/simulate", { order_id = o.id }).body.result.outcome).to_be("deposit_paid")
    kit.set_now(o.deposit.balance_starts_at)
    expect(kit.admin():post("/payments/simulate", { order_id = o.id }).body.result.outcome).to_be("paid")
    local r = kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = 7500 }).body.refund
    expect({ r.parts[1].refund_no, r.parts[1].amount_fen, r.parts[2].refund_no, r.parts[2].amount_fen })
      .to_equal({ "R" .. o.id .. "-1", 7000, "R" .. o.id .. "-2", 500 })
    kit.drain()
    local rows = kit.query("SELECT transaction_id, amount_fen FROM payments_refunds WHERE order_id = ? ORDER BY id", o.id)
    local after = kit.admin():get("/orders/" .. o.id).body
    expect(rows).to_equal({ { transaction_id = after.deposit.balance_transaction_id, amount_fen = 7000 },
                            { transaction_id = after.transaction_id, amount_fen = 500 } })
    expect({ after.status, after.refunded_fen }).to_equal({ "paid", 7500 })
    -- the rest of the deposit's payment is all there is left
    expect(kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = 1501 })).to_be_error(409, "refund_exceeds_paid")
    kit.admin():post("/orders/" .. o.id .. "/refund", {})
    kit.drain()
    expect(kit.admin():get("/orders/" .. o.id).body.status).to_be("refunded")
  end)

  it("a one-payment order answers a balance with 400 no_balance_due", function()
    local sku = shop.sku { price_fen = 1000, stock = 10 }
    local o = kit.user("p"):post("/orders", { lines = { { sku = sku, qty = 1 } } }).body
    expect(kit.admin():post("/payments/simulate", { order_id = o.id, stage = 2 })).to_be_error(400, "no_balance_due")
    expect(kit.admin():get("/orders/" .. o.id).body.status).to_be("pending_payment")
  end)
end)
