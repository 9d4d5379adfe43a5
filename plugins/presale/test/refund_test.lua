-- presale's refund rules, for a brand whose deposits are refundable
-- (deposit_refund = "refund"): a balance never paid refunds the deposit; an
-- operator refunds a deposit awaiting its balance only whole; a paid order's
-- refund is drawn from the balance's payment first, then the deposit's, one
-- refund number each, exact to the fen; a presale the brand cancels refunds
-- every deposit; a deposit paid after its order timed out is reclaimed.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "presale-kit-payment-secret-0123" },
  presale = { deposit_refund = "refund", balance_reminder_before_close_seconds = 0 },
  balancewatch = {},
}

local shop = require("tp.testshop")

local DAY = 86400
local LIST, PRICE, DEPOSIT, WORTH = 39900, 33300, 3333, 7777

local function stock(sku)
  return kit.query("SELECT stock FROM catalog_skus WHERE code = ?", sku)[1].stock
end

local function new_presale(fields)
  local sku = shop.sku { price_fen = LIST, stock = 30 }
  local now = kit.now()
  local body = { sku = sku, kind = "deposit", price_fen = PRICE, deposit_fen = DEPOSIT, deposit_worth_fen = WORTH,
                 quantity = 10, per_user_limit = 3, per_order_limit = 3, starts_at = now - 60, ends_at = now + DAY,
                 balance_starts_at = now + DAY, balance_ends_at = now + 2 * DAY }
  for k, v in pairs(fields or {}) do body[k] = v end
  local res = kit.admin():post("/presales", body)
  assert(res.status == 201, ("the presale was refused: %d"):format(res.status))
  return res.body, sku
end

local function pay(order_id, extra)
  local body = { order_id = order_id }
  for k, v in pairs(extra or {}) do body[k] = v end
  return kit.admin():post("/payments/simulate", body)
end

local function order(id) return kit.admin():get("/orders/" .. id).body end

local function payment_refunds(order_id)
  return kit.query([[SELECT refund_no, transaction_id, amount_fen FROM payments_refunds
    WHERE order_id = ? ORDER BY id]], order_id)
end

describe("a refundable deposit", function()
  it("comes back in full when the balance is never paid; the units go back too", function()
    local p, sku = new_presale()
    local o = kit.user("ann"):post("/presales/" .. p.id .. "/buy", { qty = 3 }).body
    expect(p.deposit_refund).to_be("refund")
    pay(o.id)
    kit.set_now(p.balance_ends_at)
    kit.drain()
    o = order(o.id)
    expect({ o.status, o.paid_fen, o.refunded_fen, o.forfeited_fen }).to_equal({ "refunded", 3 * DEPOSIT, 3 * DEPOSIT, 0 })
    expect(#o.refunds).to_be(1)
    expect(o.refunds[1].amount_fen).to_be(3 * DEPOSIT)
    expect(payment_refunds(o.id)[1].transaction_id).to_be(o.transaction_id)
    expect(stock(sku)).to_be(30)
    local ev = kit.query("SELECT deposit FROM balancewatch_seen WHERE name = 'order.cancelled' AND order_id = ?", o.id)
    expect(ev[1].deposit).to_be("refunded")
  end)

  it("is refunded by an operator only whole, and the order is called off", function()
    local p, sku = new_presale()
    local o = kit.user("bo"):post("/presales/" .. p.id .. "/buy", {}).body
    pay(o.id)
    expect(kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = DEPOSIT - 1 }))
      .to_be_error(409, "refund_must_be_whole")
    local res = kit.admin():post("/orders/" .. o.id .. "/refund", { reason = "缺货" })
    expect(res.status).to_be(202)
    kit.drain()
    o = order(o.id)
    expect({ o.status, o.refunded_fen }).to_equal({ "refunded", DEPOSIT })
    expect(stock(sku)).to_be(30)
    expect(kit.admin():get("/presales/" .. p.id).body.remaining).to_be(10)
    -- the balance window's close finds nothing to do
    kit.set_now(p.balance_ends_at)
    expect(order(o.id).status).to_be("refunded")
  end)
end)

describe("refunding a paid presale order", function()
  it("draws from the balance's payment first, then the deposit's, exact to the fen", function()
    local p = new_presale()
    local o = kit.user("cy"):post("/presales/" .. p.id .. "/buy", { qty = 3 }).body
    pay(o.id)
    kit.set_now(p.balance_starts_at + 60)
    pay(o.id)
    o = order(o.id)
    local balance = 3 * (PRICE - WORTH)
    expect({ o.status, o.paid_fen }).to_equal({ "paid", 3 * DEPOSIT + balance })
    -- within the balance: one refund number
    local r1 = kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = balance - 10 }).body.refund
    expect(r1.parts).to_be_nil()
    -- across both payments: two numbers, the balance's last 10 fen and 90 of the deposit
    local r2 = kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = 100 }).body.refund
    expect(#r2.parts).to_be(2)
    expect({ r2.parts[1].amount_fen, r2.parts[2].amount_fen }).to_equal({ 10, 90 })
    -- the rest: all from the deposit's payment
    kit.admin():post("/orders/" .. o.id .. "/refund", {})
    kit.drain()
    o = order(o.id)
    expect({ o.status, o.refunded_fen }).to_equal({ "refunded", o.paid_fen })
    local by_tx = {}
    for _, r in ipairs(payment_refunds(o.id)) do by_tx[r.transaction_id] = (by_tx[r.transaction_id] or 0) + r.amount_fen end
    expect(by_tx[o.deposit.balance_transaction_id]).to_be(balance)
    expect(by_tx[o.transaction_id]).to_be(3 * DEPOSIT)
  end)
end)

describe("a presale the brand cancels", function()
  it("refunds every deposit awaiting its balance and cancels the unpaid ones, whatever the rule", function()
    local p, sku = new_presale()
    local a = kit.user("di"):post("/presales/" .. p.id .. "/buy", { qty = 2 }).body
    local b = kit.user("ed"):post("/presales/" .. p.id .. "/buy", {}).body
    pay(a.id)
    local res = kit.admin():post("/presales/" .. p.id .. "/cancel")
    expect(res.body.state).to_be("cancelled")
    kit.drain()
    expect({ order(a.id).status, order(a.id).refunded_fen }).to_equal({ "refunded", 2 * DEPOSIT })
    expect(order(b.id).status).to_be("cancelled")
    expect(stock(sku)).to_be(30)
    expect(kit.user("fi"):post("/presales/" .. p.id .. "/buy", {})).to_be_error(404, "presale_not_found")
    expect(kit.admin():patch("/presales/" .. p.id, { status = "active" })).to_be_error(409, "presale_cancelled")
  end)
end)

describe("a deposit paid after its order timed out", function()
  it("is reclaimed while the presale has the units", function()
    local p, sku = new_presale({ unpaid_timeout_seconds = 60 })
    local o = kit.user("gu"):post("/presales/" .. p.id .. "/buy", {}).body
    kit.advance(61)
    expect(order(o.id).status).to_be("cancelled")
    expect(pay(o.id).body.result.outcome).to_be("paid_after_cancel")
    o = order(o.id)
    expect({ o.status, o.paid_fen }).to_equal({ "awaiting_balance", DEPOSIT })
    expect(stock(sku)).to_be(29)
    expect(kit.admin():get("/presales/" .. p.id).body.remaining).to_be(9)
  end)
end)
