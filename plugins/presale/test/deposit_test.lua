-- presale through the test clock: a deposit presale (定金膨胀) from the
-- deposit to the balance, the money exact to the fen on every line, the
-- balance window in the brand's zone (tenant "test": Asia/Shanghai, UTC+8),
-- the reminders, a balance never paid (forfeited by default), and nothing
-- shipped before the balance.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "presale-kit-payment-secret-0123" },
  fulfilment = {},
  presale = { balance_reminder_before_close_seconds = 7200 },
  balancewatch = {},
}

local shop = require("tp.testshop")

local HOUR, DAY = 3600, 86400
local LIST, PRICE, DEPOSIT, WORTH = 29900, 25900, 5000, 10000

local function stock(sku)
  return kit.query("SELECT stock FROM catalog_skus WHERE code = ?", sku)[1].stock
end

---A deposit presale of a new SKU: deposits from a minute ago for a day,
---the balance the next local day (00:00-23:59 in Asia/Shanghai).
local function new_presale(fields)
  local sku = shop.sku { price_fen = LIST, stock = 20 }
  local t = kit.localtime(kit.now() + DAY)
  local day = ("%04d-%02d-%02d"):format(t.year, t.month, t.day)
  local body = { sku = sku, kind = "deposit", price_fen = PRICE, deposit_fen = DEPOSIT, deposit_worth_fen = WORTH,
                 quantity = 5, per_user_limit = 2, per_order_limit = 2,
                 starts_at = kit.now() - 60, ends_local = day .. " 00:00",
                 balance_starts_local = day .. " 00:00", balance_ends_local = day .. " 23:59" }
  for k, v in pairs(fields or {}) do body[k] = v end
  local res = kit.admin():post("/presales", body)
  assert(res.status == 201, ("the presale was refused: %d %s"):format(res.status,
    type(res.body) == "table" and res.body.error and res.body.error.message or ""))
  return res.body, sku
end

local function pay(order_id, extra)
  local body = { order_id = order_id }
  for k, v in pairs(extra or {}) do body[k] = v end
  return kit.admin():post("/payments/simulate", body)
end

local function order(id) return kit.admin():get("/orders/" .. id).body end

describe("a deposit presale", function()
  it("reads its windows as the brand's wall clock and shows the balance per unit", function()
    local p = new_presale()
    expect(p.kind).to_be("deposit")
    expect(p.state).to_be("deposit_open")
    expect(p.balance_fen).to_be(PRICE - WORTH)
    expect(p.deposit_refund).to_be("forfeit")
    expect(kit.local_time(p.balance_starts_at):sub(12)).to_be("00:00:00")
    expect(kit.local_time(p.balance_ends_at):sub(12)).to_be("23:59:00")
    expect(p.window_local.balance_ends:sub(12)).to_be("23:59")
    expect(p.window_local.timezone).to_be("Asia/Shanghai")
    expect(kit.anon():get("/presales").body.items[1].id).to_be(p.id)
  end)

  it("takes a deposit for two units: the 膨胀 is a discount split exactly, the balance is what is left", function()
    local p, sku = new_presale()
    local res = kit.user("ann"):post("/presales/" .. p.id .. "/buy", { qty = 2 })
    expect(res.status).to_be(201)
    local o = res.body
    expect(o.status).to_be("pending_payment")
    expect({ o.items_fen, o.discount_fen, o.total_fen }).to_equal({ 2 * PRICE, 2 * (WORTH - DEPOSIT),
                                                                   2 * PRICE - 2 * (WORTH - DEPOSIT) })
    expect(o.deposit.deposit_fen).to_be(2 * DEPOSIT)
    expect(o.deposit.worth_fen).to_be(2 * WORTH)
    expect(o.deposit.balance_fen).to_be(2 * (PRICE - WORTH))
    expect(o.deposit.deposit_fen + o.deposit.balance_fen).to_be(o.total_fen)
    expect(o.payment_due).to_equal({ stage = 1, amount_fen = 2 * DEPOSIT, closes_at = o.pay_deadline })
    expect(o.lines[1].paid_fen).to_be(o.total_fen)
    expect(o.campaign.plugin).to_be("presale")
    -- the units are reserved at the deposit
    expect(stock(sku)).to_be(18)
    expect(kit.admin():get("/presales/" .. p.id).body.remaining).to_be(3)
  end)

  it("awaits its balance once the deposit is paid, and takes the balance only in its window", function()
    local p = new_presale()
    local o = kit.user("bo"):post("/presales/" .. p.id .. "/buy", {}).body
    local paid = pay(o.id)
    expect(paid.body.result.outcome).to_be("deposit_paid")
    o = order(o.id)
    expect(o.status).to_be("awaiting_balance")
    expect(o.paid_fen).to_be(DEPOSIT)
    expect(o.paid_at).to_be_nil()
    expect(o.payment_due.stage).to_be(2)
    expect(o.payment_due.amount_fen).to_be(PRICE - WORTH)
    -- the buyer cannot cancel it, nor confirm it
    expect(kit.user("bo"):post("/orders/" .. o.id .. "/cancel")).to_be_error(409, "not_cancellable")
    expect(kit.user("bo"):post("/orders/" .. o.id .. "/confirm")).to_be_error(409, "not_confirmable")
    -- before the window: no prepay, no payment
    local early = kit.user("bo"):post("/payments/prepay", { order_id = o.id })
    expect(early).to_be_error(409, "balance_not_open")
    expect(early.body.error.details.opens_at).to_be(p.balance_starts_at)
    expect(pay(o.id)).to_be_error(409, "balance_not_open")
    kit.set_now(p.balance_starts_at)
    local prepay = kit.user("bo"):post("/payments/prepay", { order_id = o.id }).body
    expect({ prepay.stage, prepay.total_fen, prepay.out_trade_no }).to_equal({ 2, PRICE - WORTH,
      ("tp%08d_2"):format(o.id) })
    -- a balance of another amount is refused
    expect(pay(o.id, { amount_fen = PRICE - DEPOSIT })).to_be_error(400, "amount_mismatch")
    expect(pay(o.id).body.result.outcome).to_be("paid")
    o = order(o.id)
    expect({ o.status, o.paid_fen, o.total_fen }).to_equal({ "paid", PRICE - WORTH + DEPOSIT, PRICE - WORTH + DEPOSIT })
    expect(o.payment_due).to_be_nil()
    expect(o.deposit.balance_transaction_id ~= nil).to_be(true)
    kit.drain()
    expect(kit.admin():get("/presales/" .. p.id .. "/orders").body.counts.paid.orders).to_be(1)
  end)

  it("reminds the buyer when the balance opens and two hours before it closes, not after she paid", function()
    local p = new_presale()
    local a = kit.user("cy"):post("/presales/" .. p.id .. "/buy", {}).body
    local b = kit.user("di"):post("/presales/" .. p.id .. "/buy", {}).body
    pay(a.id); pay(b.id)
    kit.set_now(p.balance_starts_at)
    kit.drain()
    local seen = kit.query([[SELECT order_id, reminder, balance_fen, at FROM balancewatch_seen
      WHERE name = 'presale.balance_due' AND order_id IN (?, ?) ORDER BY order_id]], a.id, b.id)
    expect(#seen).to_be(2)
    expect({ seen[1].reminder, seen[1].balance_fen, seen[1].at }).to_equal({ "opens", PRICE - WORTH, p.balance_starts_at })
    pay(a.id)
    kit.set_now(p.balance_ends_at - 2 * HOUR)
    kit.drain()
    seen = kit.query([[SELECT order_id, reminder FROM balancewatch_seen
      WHERE name = 'presale.balance_due' AND reminder = 'closing' AND order_id IN (?, ?)]], a.id, b.id)
    expect(#seen).to_be(1)
    expect(seen[1].order_id).to_be(b.id)
  end)

  it("keeps the deposit of a balance never paid (forfeit, the default) and gives the units back", function()
    local p, sku = new_presale()
    local o = kit.user("ed"):post("/presales/" .. p.id .. "/buy", { qty = 2 }).body
    pay(o.id)
    expect(stock(sku)).to_be(18)
    kit.set_now(p.balance_ends_at)
    kit.drain()
    o = order(o.id)
    expect({ o.status, o.cancel_reason, o.paid_fen, o.forfeited_fen, o.refunded_fen }).to_equal(
      { "cancelled", "balance_unpaid", 2 * DEPOSIT, 2 * DEPOSIT, 0 })
    expect(#o.refunds).to_be(0)
    expect(stock(sku)).to_be(20)
    expect(kit.admin():get("/presales/" .. p.id).body.remaining).to_be(5)
    local ev = kit.query("SELECT reason, deposit FROM balancewatch_seen WHERE name = 'order.cancelled' AND order_id = ?", o.id)
    expect(ev[1]).to_equal({ reason = "balance_unpaid", deposit = "forfeited" })
    -- a balance that arrives after the close goes back whole; the order stays as it is
    local late = pay(o.id, { stage = 2, amount_fen = 2 * (PRICE - WORTH) })
    expect(late.body.result.outcome).to_be("refunding_late_balance")
    kit.drain()
    o = order(o.id)
    expect({ o.status, o.forfeited_fen }).to_equal({ "cancelled", 2 * DEPOSIT })
    expect(o.refunds[1].kind).to_be("duplicate_payment")
    expect(o.refunds[1].amount_fen).to_be(2 * (PRICE - WORTH))
  end)

  it("gives an unpaid deposit's units back at its unpaid timeout", function()
    local p, sku = new_presale({ unpaid_timeout_seconds = 600 })
    local o = kit.user("fi"):post("/presales/" .. p.id .. "/buy", {}).body
    kit.advance(601)
    expect(order(o.id).status).to_be("cancelled")
    expect(stock(sku)).to_be(20)
    expect(kit.admin():get("/presales/" .. p.id).body.remaining).to_be(5)
  end)
end)

describe("shipping a presale", function()
  it("is refused while the balance is unpaid, and allowed once it is", function()
    local p = new_presale()
    local u = kit.user("gu")
    u:post("/fulfilment/addresses", { name = "顾", phone = "13800002222", province = "浙江", city = "杭州", detail = "2号" })
    local o = u:post("/presales/" .. p.id .. "/buy", {}).body
    pay(o.id)
    expect(u:post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "express" }).status).to_be(200)
    local ship = kit.admin():post("/fulfilment/orders/" .. o.id .. "/shipments", { carrier = "SF", tracking_no = "P1" })
    expect(ship).to_be_error(409, "not_fulfillable")
    expect(ship.body.error.message).to_match("balance")
    kit.set_now(p.balance_starts_at)
    pay(o.id)
    expect(kit.admin():post("/fulfilment/orders/" .. o.id .. "/shipments",
      { carrier = "SF", tracking_no = "P1" }).status).to_be(201)
  end)
end)
