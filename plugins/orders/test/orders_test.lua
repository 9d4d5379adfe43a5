-- orders: checkout at list price, validation, Idempotency-Key, the unpaid cap,
-- cancel and the unpaid timeout, paid -> completed, and refunds, through the
-- real routes of a test host with catalog and payments beside it.
-- Payments arrive through the operator's simulated payer (POST
-- /admin/test/payments/simulate), which signs and applies the notify exactly
-- as /payments/notify would.
-- Concurrency (two checkouts racing for the last unit, one key sent twenty
-- times at once) cannot be driven from the kit, which is sequential: every
-- state change here is a conditional UPDATE, and tests/e2e/test_orders.py
-- races them over HTTP.

kit.plugins {
  catalog = {},
  orders = { unpaid_timeout_seconds = 600, max_unpaid_orders = 2 },
  payments = { secret = "orders-kit-payment-secret-0123" },
}

local TIMEOUT = 600

-- ---- helpers

local shop = require("tp.testshop")

---A fresh product with one SKU; returns its code.
local function new_sku(price_fen, stock)
  return (shop.sku{ price_fen = price_fen, stock = stock })
end

local function stock(code)
  return kit.query("SELECT stock FROM catalog_skus WHERE code = ?", code)[1].stock
end

local function checkout(user, lines, headers)
  return kit.user(user):post("/orders", { lines = lines }, headers)
end

local function created(user, lines, headers)
  local res = checkout(user, lines, headers)
  assert(res.status == 201, ("checkout answered %d"):format(res.status))
  return res.body
end

local function order_of(user, id)
  return kit.user(user):get("/orders/" .. id).body
end

local function pay(id, extra)
  local body = { order_id = id }
  for k, v in pairs(extra or {}) do body[k] = v end
  return kit.admin():post("/payments/simulate", body)
end

local function paid(user, lines)
  local o = created(user, lines)
  expect(pay(o.id).body.result.outcome).to_be("paid")
  return order_of(user, o.id)
end

---When the unpaid sweep (lib/unpaid.lua) is due, in ms; nil if it is not scheduled.
local function sweep_due()
  local j = kit.query("SELECT due_ms FROM _tp_jobs WHERE plugin = 'orders' AND name = 'sweep_unpaid' AND dead_ms IS NULL")
  return j[1] and j[1].due_ms
end

---Whether the order is among those the sweep looks at (orders_orders_unpaid).
local function swept(id)
  return #kit.query("SELECT 1 FROM orders_orders INDEXED BY orders_orders_unpaid WHERE id = ? "
    .. "AND status = 'pending_payment'", id) == 1
end

-- ---- checkout

describe("checkout", function()
  it("prices every line at its list price and the sums add up", function()
    local a, b = new_sku(1280, 10), new_sku(333, 5)
    local res = checkout("alice", { { sku = a, qty = 2 }, { sku = b, qty = 3 } })
    expect(res.status).to_be(201)
    local o = res.body
    expect(o.status).to_be("pending_payment")
    expect(o.user).to_be("alice")
    expect(o.lines).to_equal({
      { sku = a, product_id = o.lines[1].product_id, title = "title " .. a, qty = 2, list_price_fen = 1280,
        unit_price_fen = 1280, amount_fen = 2560, discount_fen = 0, paid_fen = 2560 },
      { sku = b, product_id = o.lines[2].product_id, title = "title " .. b, qty = 3, list_price_fen = 333,
        unit_price_fen = 333, amount_fen = 999, discount_fen = 0, paid_fen = 999 },
    })
    expect({ o.items_fen, o.discount_fen, o.total_fen, o.paid_fen }).to_equal({ 3559, 0, 3559, 0 })
    expect(o.stock_held).to_be(true)
    expect(o.created_at).to_be(kit.now())
    expect(o.pay_deadline).to_be(kit.now() + TIMEOUT)
    expect(stock(a)).to_be(8)
    expect(stock(b)).to_be(2)
    -- what the user reads back is what was answered
    local again = order_of("alice", o.id)
    expect(again.total_fen).to_be(3559)
    expect(again.lines).to_equal(o.lines)
    expect(again.refunds).to_equal({})
  end)

  it("refuses bad lines naming the field, and takes nothing", function()
    local a = new_sku(500, 10)
    local cases = {
      { {}, "lines" },
      { { { sku = a, qty = 0 } }, "lines[1].qty" },
      { { { sku = a, qty = 100 } }, "lines[1].qty" },       -- max_qty_per_line defaults to 99
      { { { sku = a, qty = 1.5 } }, "lines[1].qty" },
      { { { sku = a, qty = "2" } }, "lines[1].qty" },
      { { { qty = 1 } }, "lines[1].sku" },
      { { { sku = a, qty = 1 }, { sku = a, qty = 2 } }, "lines[2].sku" },
      { { { sku = a, qty = 1, unit_price_fen = 1 } }, "lines[1].unit_price_fen" },
    }
    for _, case in ipairs(cases) do
      local res = checkout("vera", case[1])
      expect(res.status).to_be(400)
      expect(res.body.error.code).to_be("invalid_field")
      expect(res.body.error.details).to_equal({ field = case[2] })
    end
    local no_body = kit.user("vera"):post("/orders")
    expect(no_body.status).to_be(400)
    expect(no_body.body.error.code).to_be("invalid_body")
    expect(stock(a)).to_be(10)
    expect(kit.user("vera"):get("/orders").body.items).to_equal({})
  end)

  it("is all or nothing: an unknown SKU or too little stock gives every unit back", function()
    local a, b = new_sku(500, 10), new_sku(500, 2)
    local unknown = checkout("sam", { { sku = a, qty = 2 }, { sku = "no-such", qty = 1 } })
    expect(unknown.status).to_be(404)
    expect(unknown.body.error.code).to_be("sku_not_found")
    local short = checkout("sam", { { sku = a, qty = 5 }, { sku = b, qty = 3 } })
    expect(short.status).to_be(409)
    expect(short.body.error.code).to_be("insufficient_stock")
    expect(short.body.error.details).to_equal({ sku = b, stock = 2 })
    expect({ stock(a), stock(b) }).to_equal({ 10, 2 })
    -- a coupon needs the coupons plugin, which this tenant does not run
    local coupon = kit.user("sam"):post("/orders", { lines = { { sku = a, qty = 1 } }, coupon_id = 1 })
    expect(coupon.status).to_be(409)
    expect(coupon.body.error.code).to_be("coupons_unavailable")
    expect(stock(a)).to_be(10)
    expect(kit.query("SELECT count(*) AS n FROM orders_orders WHERE user = 'sam'")[1].n).to_be(0)
  end)

  it("caps an order at 10^9 fen, the cap itself allowed", function()
    local big = new_sku(600000000, 5)
    local res = checkout("bigspender", { { sku = big, qty = 2 } })
    expect(res.status).to_be(400)
    expect(res.body.error.code).to_be("order_too_large")
    expect(stock(big)).to_be(5)
    local cap = new_sku(1000000000, 1)
    expect(created("bigspender", { { sku = cap, qty = 1 } }).total_fen).to_be(1000000000)
  end)
end)

-- ---- Idempotency-Key

describe("an Idempotency-Key", function()
  it("answers a retried checkout with the same order, 200 and replayed", function()
    local a = new_sku(700, 10)
    local key = { ["Idempotency-Key"] = "checkout-1" }
    local first = checkout("kim", { { sku = a, qty = 2 } }, key)
    expect(first.status).to_be(201)
    expect(first.body.replayed).to_be_nil()
    local again = checkout("kim", { { sku = a, qty = 2 } }, key)
    expect(again.status).to_be(200)
    expect(again.body.replayed).to_be(true)
    again.body.replayed = nil
    expect(again.body).to_equal(first.body)
    expect(stock(a)).to_be(8)
    -- another user's key is another user's
    local other = checkout("lee", { { sku = a, qty = 1 } }, key)
    expect(other.status).to_be(201)
    expect(other.body.id ~= first.body.id).to_be(true)
  end)

  it("refuses the same key with another request, and malformed keys", function()
    local a = new_sku(700, 10)
    local first = created("kai", { { sku = a, qty = 2 } }, { ["Idempotency-Key"] = "k-x" })
    local reused = checkout("kai", { { sku = a, qty = 3 } }, { ["Idempotency-Key"] = "k-x" })
    expect(reused.status).to_be(409)
    expect(reused.body.error.code).to_be("idempotency_key_reused")
    expect(#kit.query("SELECT id FROM orders_orders WHERE user = 'kai'")).to_be(1)
    expect(first.id).to_be(kit.query("SELECT id FROM orders_orders WHERE user = 'kai'")[1].id)
    for _, bad in ipairs({ string.rep("k", 129), "has space" }) do
      local res = checkout("kai", { { sku = a, qty = 1 } }, { ["Idempotency-Key"] = bad })
      expect(res.status).to_be(400)
      expect(res.body.error.code).to_be("invalid_idempotency_key")
    end
    expect(stock(a)).to_be(8)
  end)
end)

-- ---- the unpaid cap, cancel, the unpaid timeout

describe("unpaid orders", function()
  it("are capped per user at max_unpaid_orders; a cancel frees a place", function()
    local a = new_sku(100, 10)
    local o1 = created("cap", { { sku = a, qty = 1 } })
    created("cap", { { sku = a, qty = 1 } })
    local third = checkout("cap", { { sku = a, qty = 1 } })
    expect(third.status).to_be(409)
    expect(third.body.error.code).to_be("too_many_unpaid_orders")
    expect(third.body.error.details).to_equal({ unpaid = 2 })
    expect(checkout("cap-other", { { sku = a, qty = 1 } }).status).to_be(201)
    expect(kit.user("cap"):post("/orders/" .. o1.id .. "/cancel").status).to_be(200)
    expect(checkout("cap", { { sku = a, qty = 1 } }).status).to_be(201)
    expect(checkout("cap", { { sku = a, qty = 1 } }).body.error.code).to_be("too_many_unpaid_orders")
    expect(stock(a)).to_be(7)                    -- 4 taken, the cancelled one given back
  end)

  it("give their units back when the user cancels, once", function()
    local a, b = new_sku(100, 10), new_sku(100, 10)
    local o = created("xena", { { sku = a, qty = 4 }, { sku = b, qty = 1 } })
    expect(swept(o.id)).to_be(true)
    local res = kit.user("xena"):post("/orders/" .. o.id .. "/cancel")
    expect(res.status).to_be(200)
    expect(res.body.status).to_be("cancelled")
    expect(res.body.cancel_reason).to_be("user")
    expect(res.body.cancelled_at).to_be(kit.now())
    expect(res.body.stock_held).to_be(false)
    expect({ stock(a), stock(b) }).to_equal({ 10, 10 })
    expect(swept(o.id)).to_be(false)            -- the timeout no longer looks at it
    local twice = kit.user("xena"):post("/orders/" .. o.id .. "/cancel")
    expect(twice.status).to_be(409)
    expect(twice.body.error.code).to_be("not_cancellable")
    expect(twice.body.error.details).to_equal({ status = "cancelled" })
    expect({ stock(a), stock(b) }).to_equal({ 10, 10 })
  end)

  it("are cancelled by the clock at pay_deadline, not a second before", function()
    local a = new_sku(100, 5)
    local o = created("tim", { { sku = a, qty = 2 } })
    expect(sweep_due()).to_be(o.pay_deadline * 1000)
    kit.advance(TIMEOUT - 1)
    expect(order_of("tim", o.id).status).to_be("pending_payment")
    expect(stock(a)).to_be(3)
    kit.advance(1)
    local c = order_of("tim", o.id)
    expect(c.status).to_be("cancelled")
    expect(c.cancel_reason).to_be("timeout")
    expect(c.cancelled_at).to_be(o.pay_deadline)
    expect(c.stock_held).to_be(false)
    expect(stock(a)).to_be(5)
    expect(sweep_due()).to_be(nil)               -- nothing left to sweep
    kit.advance(86400)                           -- nothing more happens
    expect(stock(a)).to_be(5)
  end)
end)

-- ---- one user's orders are nobody else's

describe("ownership and listing", function()
  it("hides another user's order as if it did not exist", function()
    local a = new_sku(100, 10)
    local o = created("own-a", { { sku = a, qty = 1 } })
    for _, res in ipairs({
      kit.user("own-b"):get("/orders/" .. o.id),
      kit.user("own-b"):post("/orders/" .. o.id .. "/cancel"),
      kit.user("own-b"):post("/orders/" .. o.id .. "/confirm"),
      kit.user("own-b"):get("/orders/99999999"),
    }) do
      expect(res.status).to_be(404)
      expect(res.body.error.code).to_be("order_not_found")
    end
    expect(kit.user("own-b"):get("/orders").body.items).to_equal({})
    expect(kit.anon():get("/orders").status).to_be(401)
    expect(order_of("own-a", o.id).status).to_be("pending_payment")
  end)

  it("lists my orders newest first, pages by next_after and filters by status", function()
    local a = new_sku(100, 10)
    local ids = {}
    for i = 1, 3 do
      local o = created("pager", { { sku = a, qty = 1 } })
      ids[i] = o.id
      if i < 3 then pay(o.id) end
    end
    local p1 = kit.user("pager"):get("/orders?limit=2").body
    expect({ p1.items[1].id, p1.items[2].id }).to_equal({ ids[3], ids[2] })
    expect(p1.next_after).to_be(ids[2])
    local p2 = kit.user("pager"):get("/orders?limit=2&after=" .. p1.next_after).body
    expect(#p2.items).to_be(1)
    expect(p2.items[1].id).to_be(ids[1])
    expect(p2.next_after).to_be_nil()
    local paid_ones = kit.user("pager"):get("/orders?status=paid").body.items
    expect({ paid_ones[1].id, paid_ones[2].id, #paid_ones }).to_equal({ ids[2], ids[1], 2 })
    for _, bad in ipairs({ "?status=lost", "?limit=0", "?limit=101", "?after=x" }) do
      expect(kit.user("pager"):get("/orders" .. bad).status).to_be(400)
    end
    local bad_status = kit.user("pager"):get("/orders?status=lost")
    expect(bad_status.body.error.details).to_equal({ field = "status" })
  end)
end)

-- ---- paid, completed, refunds

describe("a paid order", function()
  it("can be confirmed once and is then completed; it can no longer be cancelled", function()
    local a = new_sku(1990, 10)
    local o = created("pia", { { sku = a, qty = 1 } })
    local early = kit.user("pia"):post("/orders/" .. o.id .. "/confirm")
    expect(early.status).to_be(409)
    expect(early.body.error.code).to_be("not_confirmable")
    expect(pay(o.id).body.result).to_equal({ outcome = "paid", order_id = o.id, status = "paid" })
    local p = order_of("pia", o.id)
    expect({ p.status, p.paid_fen, p.paid_at }).to_equal({ "paid", 1990, kit.now() })
    expect(p.transaction_id).to_match("^4200%d+$")
    expect(swept(o.id)).to_be(false)             -- the timeout no longer looks at it
    expect(kit.user("pia"):post("/orders/" .. o.id .. "/cancel").body.error.code).to_be("not_cancellable")
    local c = kit.user("pia"):post("/orders/" .. o.id .. "/confirm")
    expect(c.status).to_be(200)
    expect(c.body.status).to_be("completed")
    expect(c.body.completed_at).to_be(kit.now())
    expect(kit.user("pia"):post("/orders/" .. o.id .. "/confirm").status).to_be(409)
    kit.advance(TIMEOUT + 1)
    expect(order_of("pia", o.id).status).to_be("completed")
    expect(stock(a)).to_be(9)
  end)

  it("is refunded in full: refunding at once, refunded when the job ran, units back", function()
    local a = new_sku(2500, 10)
    local o = paid("rfa", { { sku = a, qty = 2 } })
    expect(stock(a)).to_be(8)
    local res = kit.admin():post("/orders/" .. o.id .. "/refund", { reason = "customer asked" })
    expect(res.status).to_be(202)
    expect(res.body.refund).to_equal({ refund_no = "R" .. o.id .. "-1", amount_fen = 5000,
      reason = "customer asked", kind = "order", status = "pending" })
    expect(res.body.order.status).to_be("refunding")
    expect(res.body.order.refund_requested_fen).to_be(5000)
    expect(res.body.order.stock_held).to_be(false)
    expect(stock(a)).to_be(10)
    kit.drain()                                  -- the refund job is due at once
    local done = kit.admin():get("/orders/" .. o.id).body
    expect({ done.status, done.refunded_fen, done.refunded_at }).to_equal({ "refunded", 5000, kit.now() })
    expect(done.refunds[1].status).to_be("succeeded")
    expect(kit.query("SELECT refund_no, amount_fen, transaction_id FROM payments_refunds WHERE order_id = ?", o.id))
      .to_equal({ { refund_no = "R" .. o.id .. "-1", amount_fen = 5000, transaction_id = o.transaction_id } })
    kit.advance(3600)
    expect(stock(a)).to_be(10)                   -- the units came back once
    local again = kit.admin():post("/orders/" .. o.id .. "/refund", {})
    expect(again.status).to_be(409)
    expect(again.body.error.code).to_be("not_refundable")
  end)

  it("takes partial refunds up to what was paid, keeping its status until the last fen", function()
    local a = new_sku(1000, 10)
    local o = paid("rfp", { { sku = a, qty = 3 } })
    local first = kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = 1200 })
    expect(first.status).to_be(202)
    expect(first.body.order.status).to_be("paid")
    expect(first.body.order.stock_held).to_be(true)
    kit.drain()
    local mid = kit.admin():get("/orders/" .. o.id).body
    expect({ mid.status, mid.refunded_fen, mid.refund_requested_fen }).to_equal({ "paid", 1200, 1200 })
    local over = kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = 1801 })
    expect(over.status).to_be(409)
    expect(over.body.error.code).to_be("refund_exceeds_paid")
    expect(over.body.error.details).to_equal({ refundable_fen = 1800 })
    local zero = kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = 0 })
    expect(zero.status).to_be(400)
    expect(zero.body.error.details).to_equal({ field = "amount_fen" })
    local last = kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = 1800 })
    expect(last.body.order.status).to_be("refunding")
    expect(last.body.refund.refund_no).to_be("R" .. o.id .. "-2")
    kit.drain()
    local done = kit.admin():get("/orders/" .. o.id).body
    expect({ done.status, done.refunded_fen, done.paid_fen }).to_equal({ "refunded", 3000, 3000 })
    expect(stock(a)).to_be(10)
  end)

  it("is the only kind that can be refunded", function()
    local a = new_sku(100, 10)
    local unpaid = created("rfn", { { sku = a, qty = 1 } })
    local res = kit.admin():post("/orders/" .. unpaid.id .. "/refund", {})
    expect(res.status).to_be(409)
    expect(res.body.error.details).to_equal({ status = "pending_payment" })
    expect(kit.admin():post("/orders/99999999/refund", {}).status).to_be(404)
    expect(kit.admin():get("/orders/" .. unpaid.id).body.refunds).to_equal({})
  end)
end)

describe("operators", function()
  it("list every order with totals by status, and filter by user", function()
    local res = kit.admin():get("/orders?user=rfa&limit=500")
    expect(res.status).to_be(200)
    expect(#res.body.items).to_be(1)
    expect(res.body.items[1].status).to_be("refunded")
    local totals = {}
    for _, row in ipairs(res.body.totals) do totals[row.status] = row end
    -- totals cover the whole tenant: the full refund of 5000 and the partial one of 3000
    expect(totals.refunded.total_fen).to_be(8000)
    expect(totals.refunded.orders).to_be(2)
    local bad = kit.admin():get("/orders?user=" .. string.rep("x", 65))
    expect(bad.status).to_be(400)
    expect(bad.body.error.details).to_equal({ field = "user" })
  end)

  it("cancel an unpaid order and complete a paid one, and nothing else", function()
    local a = new_sku(100, 10)
    local o = created("op", { { sku = a, qty = 3 } })
    expect(kit.admin():post("/orders/" .. o.id .. "/complete").body.error.code).to_be("not_completable")
    local c = kit.admin():post("/orders/" .. o.id .. "/cancel")
    expect(c.status).to_be(200)
    expect(c.body.cancel_reason).to_be("admin")
    expect(stock(a)).to_be(10)
    local p = paid("op", { { sku = a, qty = 1 } })
    expect(kit.admin():post("/orders/" .. p.id .. "/cancel").body.error.code).to_be("not_cancellable")
    expect(kit.admin():post("/orders/" .. p.id .. "/complete").body.status).to_be("completed")
    expect(kit.admin():post("/orders/99999999/complete").status).to_be(404)
  end)
end)
