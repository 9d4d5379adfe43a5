-- payments: WeChat Pay-shaped notifies signed here (test/paysign.lua, the
-- documented HMAC) and by the operator's simulated payer; everything unsigned,
-- stale or tampered with is 401 and changes nothing; one transaction pays
-- once; a wrong amount, a second transaction and a payment after the unpaid
-- timeout; prepay for the user's own unpaid order.
-- Three deliveries of one notify at the same moment cannot be driven from the
-- kit (it is sequential); the notify is recorded under its transaction id
-- (PRIMARY KEY) and orders marks paid with a conditional UPDATE, and
-- tests/e2e/test_payments.py races them over HTTP.

local SECRET = "payments-kit-secret-0123456789"
local TIMEOUT = 600

kit.plugins {
  catalog = {},
  orders = { unpaid_timeout_seconds = TIMEOUT, max_unpaid_orders = 5 },
  payments = { secret = SECRET },
}

local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$")
local paysign = dofile(here .. "/paysign.lua")

-- ---- helpers

local shop = require("tp.testshop")

local txs = 0

local function new_sku(price_fen, stock)
  return (shop.sku{ price_fen = price_fen, stock = stock })
end

local function stock(code)
  return kit.query("SELECT stock FROM catalog_skus WHERE code = ?", code)[1].stock
end

local function order(user, sku, qty)
  local res = kit.user(user):post("/orders", { lines = { { sku = sku, qty = qty or 1 } } })
  assert(res.status == 201, ("checkout answered %d"):format(res.status))
  return res.body
end

local function order_now(id)
  return kit.admin():get("/orders/" .. id).body
end

local function tx()
  txs = txs + 1
  return ("42000000%010d"):format(txs)
end

local function trade_no(id) return ("tp%08d"):format(id) end

---POSTs a notify signed with secret at timestamp (default: the tenant's now).
local function notify(id, fen, transaction_id, opts)
  opts = opts or {}
  local body = opts.body or paysign.body({ out_trade_no = opts.trade_no or trade_no(id),
    transaction_id = transaction_id, total = fen, event_type = opts.event_type,
    trade_state = opts.trade_state })
  local headers = opts.headers or paysign.headers(opts.secret or SECRET, opts.at or kit.now(), body)
  return kit.anon():post("/payments/notify", body, headers)
end

local function notifies_of(id)
  return kit.query("SELECT transaction_id, amount_fen, outcome FROM payments_notifies WHERE order_id = ?", id)
end

---Whether orders' unpaid timeout still waits on the order (orders 1.10.0: its
---sweep reads the pending orders by the orders_orders_unpaid index).
local function awaits_timeout(id)
  return #kit.query("SELECT 1 FROM orders_orders INDEXED BY orders_orders_unpaid "
    .. "WHERE id = ? AND status = 'pending_payment'", id) == 1
end

-- ---- a signed notify

describe("a signed notify", function()
  it("marks the order paid and records the transaction", function()
    local a = new_sku(1990, 5)
    local o = order("alice", a, 2)
    local t = tx()
    local res = notify(o.id, 3980, t)
    expect(res.status).to_be(200)
    expect(res.body).to_equal({ code = "SUCCESS", message = "成功", outcome = "paid" })
    local p = order_now(o.id)
    expect({ p.status, p.paid_fen, p.transaction_id, p.paid_at, p.late_payment })
      .to_equal({ "paid", 3980, t, kit.now(), false })
    expect(awaits_timeout(o.id)).to_be(false)
    expect(notifies_of(o.id)).to_equal({ { transaction_id = t, amount_fen = 3980, outcome = "paid" } })
    local listed = kit.admin():get("/payments/notifies").body.items[1]
    expect({ listed.order_id, listed.transaction_id, listed.received_at }).to_equal({ o.id, t, kit.now() })
    expect(stock(a)).to_be(3)
  end)

  it("pays once: the same transaction again is a duplicate that changes nothing", function()
    local o = order("dora", new_sku(4200, 5))
    local t = tx()
    expect(notify(o.id, 4200, t).body.outcome).to_be("paid")
    local before = order_now(o.id)
    kit.advance(60)
    local again = notify(o.id, 4200, t)
    expect(again.status).to_be(200)
    expect(again.body.outcome).to_be("duplicate")
    local after = order_now(o.id)
    expect({ after.paid_at, after.transaction_id, after.refunds }).to_equal({ before.paid_at, t, {} })
    expect(#notifies_of(o.id)).to_be(1)
    -- the same transaction id with other details is not a retry
    local other = order("dora", new_sku(4200, 5))
    for _, res in ipairs({ notify(other.id, 4200, t), notify(o.id, 4300, t) }) do
      expect(res.status).to_be(409)
      expect(res.body.error.code).to_be("transaction_conflict")
    end
    expect(order_now(other.id).status).to_be("pending_payment")
  end)
end)

describe("a notify that does not verify", function()
  it("is 401 whatever is wrong, and changes nothing", function()
    local o = order("sig", new_sku(1500, 5))
    local t = tx()
    local body = paysign.body({ out_trade_no = trade_no(o.id), transaction_id = t, total = 1500 })
    local now = kit.now()
    local good = paysign.headers(SECRET, now, body)
    local function without(name)
      local h = {}
      for k, v in pairs(good) do if k ~= name then h[k] = v end end
      return h
    end
    local function with(name, value)
      local h = without(name)
      h[name] = value
      return h
    end
    local attempts = {
      { "another secret", paysign.headers("not-the-secret-0123456789", now, body), body, "invalid_signature" },
      { "nonce changed", with("Wechatpay-Nonce", good["Wechatpay-Nonce"] .. "x"), body, "invalid_signature" },
      { "body changed", good, body .. " ", "invalid_signature" },
      { "no timestamp", without("Wechatpay-Timestamp"), body, "signature_missing" },
      { "no nonce", without("Wechatpay-Nonce"), body, "signature_missing" },
      { "no signature", without("Wechatpay-Signature"), body, "signature_missing" },
      { "301 s old", paysign.headers(SECRET, now - 301, body), body, "stale_notify" },
      { "301 s ahead", paysign.headers(SECRET, now + 301, body), body, "stale_notify" },
      { "not a time", paysign.headers(SECRET, "soon", body), body, "stale_notify" },
    }
    for _, a in ipairs(attempts) do
      local res = notify(o.id, 1500, t, { headers = a[2], body = a[3] })
      expect({ a[1], res.status, res.body.error.code }).to_equal({ a[1], 401, a[4] })
    end
    local p = order_now(o.id)
    expect({ p.status, p.paid_fen, p.transaction_id }).to_equal({ "pending_payment", 0, nil })
    expect(notifies_of(o.id)).to_equal({})
    expect(awaits_timeout(o.id)).to_be(true)
    -- the very same notify signed 300 s ago is within the skew, and pays
    expect(notify(o.id, 1500, t, { headers = paysign.headers(SECRET, now - 300, body), body = body })
      .body.outcome).to_be("paid")
  end)
end)

describe("what a verified notify carries", function()
  it("a wrong amount is 400 amount_mismatch and recorded nowhere", function()
    local o = order("amt", new_sku(1500, 5))
    local t = tx()
    local res = notify(o.id, 1, t)
    expect(res.status).to_be(400)
    expect(res.body.error.code).to_be("amount_mismatch")
    expect(res.body.error.details).to_equal({ total_fen = 1500, amount_fen = 1 })
    expect(order_now(o.id).status).to_be("pending_payment")
    expect(notifies_of(o.id)).to_equal({})
    expect(notify(o.id, 1500, t).body.outcome).to_be("paid")   -- the right amount still pays
  end)

  it("another event is acknowledged and ignored; an unsuccessful trade or a bad trade number is 400", function()
    local o = order("evt", new_sku(800, 5))
    local ignored = notify(o.id, 800, tx(), { event_type = "REFUND.SUCCESS" })
    expect(ignored.status).to_be(200)
    expect(ignored.body.outcome).to_be("ignored")
    local closed = notify(o.id, 800, tx(), { trade_state = "CLOSED" })
    expect(closed.status).to_be(400)
    expect(closed.body.error.code).to_be("invalid_notify")
    for _, bad in ipairs({ "99999999", "tp", "tp12a", "TP00000001" }) do
      local res = notify(o.id, 800, tx(), { trade_no = bad })
      expect({ bad, res.status, res.body.error.code }).to_equal({ bad, 400, "unknown_out_trade_no" })
    end
    expect(order_now(o.id).status).to_be("pending_payment")
    expect(notifies_of(o.id)).to_equal({})
  end)

  it("a notify for an order that does not exist is 404 and recorded nowhere", function()
    local res = notify(99999999, 100, tx())
    expect(res.status).to_be(404)
    expect(res.body.error.code).to_be("order_not_found")
    expect(notifies_of(99999999)).to_equal({})
  end)

  it("a second transaction for a paid order goes back; the order stays paid by the first", function()
    local a = new_sku(2300, 5)
    local o = order("dup", a)
    local t1, t2 = tx(), tx()
    expect(notify(o.id, 2300, t1).body.outcome).to_be("paid")
    expect(notify(o.id, 2300, t2).body.outcome).to_be("refunding_duplicate")
    kit.drain()                                  -- the refund job runs at once
    expect(kit.query("SELECT transaction_id, amount_fen FROM payments_refunds WHERE order_id = ?", o.id))
      .to_equal({ { transaction_id = t2, amount_fen = 2300 } })
    local p = order_now(o.id)
    expect({ p.status, p.transaction_id, p.paid_fen, p.refunded_fen }).to_equal({ "paid", t1, 2300, 0 })
    expect(p.refunds[1].kind).to_be("duplicate_payment")
    expect(p.refunds[1].status).to_be("succeeded")
    expect(notify(o.id, 2300, t2).body.outcome).to_be("duplicate")
    kit.advance(3600)
    expect(#kit.query("SELECT 1 AS x FROM payments_refunds WHERE order_id = ?", o.id)).to_be(1)
    expect(stock(a)).to_be(4)
  end)
end)

describe("a payment after the unpaid timeout", function()
  it("takes the units again when they are still there", function()
    local a = new_sku(800, 3)
    local o = order("late", a, 2)
    kit.advance(TIMEOUT)
    expect(order_now(o.id).cancel_reason).to_be("timeout")
    expect(stock(a)).to_be(3)
    local t = tx()
    expect(notify(o.id, 1600, t).body.outcome).to_be("paid_after_cancel")
    local p = order_now(o.id)
    expect({ p.status, p.late_payment, p.stock_held, p.paid_fen, p.transaction_id })
      .to_equal({ "paid", true, true, 1600, t })
    expect(stock(a)).to_be(1)
  end)

  it("is refunded in full when the units were sold meanwhile", function()
    local a = new_sku(990, 1)
    local first = order("slow", a)
    kit.advance(TIMEOUT)
    local second = order("quick", a)
    expect(stock(a)).to_be(0)
    expect(notify(first.id, 990, tx()).body.outcome).to_be("refunding")
    local mid = order_now(first.id)
    expect({ mid.status, mid.stock_held, mid.refund_requested_fen }).to_equal({ "refunding", false, 990 })
    kit.drain()
    local done = order_now(first.id)
    expect({ done.status, done.refunded_fen, done.refunded_at }).to_equal({ "refunded", 990, kit.now() })
    expect(stock(a)).to_be(0)
    expect(order_now(second.id).status).to_be("pending_payment")
    expect(notify(second.id, 990, tx()).body.outcome).to_be("paid")
  end)
end)

describe("the simulated payer", function()
  it("signs its notify with the documented HMAC; replayed it is a duplicate, later stale", function()
    local o = order("sim", new_sku(6600, 5))
    local res = kit.admin():post("/payments/simulate", { order_id = o.id })
    expect(res.status).to_be(200)
    expect(res.body.result).to_equal({ outcome = "paid", order_id = o.id, status = "paid" })
    local h, raw = res.body.notify.headers, res.body.notify.body
    expect(h["Wechatpay-Signature"])
      .to_be(paysign.signature(SECRET, h["Wechatpay-Timestamp"], h["Wechatpay-Nonce"], raw))
    expect(raw).to_contain('"out_trade_no":"' .. trade_no(o.id) .. '"')
    local replay = kit.anon():post("/payments/notify", raw, h)
    expect(replay.status).to_be(200)
    expect(replay.body.outcome).to_be("duplicate")
    kit.advance(301)
    local stale = kit.anon():post("/payments/notify", raw, h)
    expect(stale.status).to_be(401)
    expect(stale.body.error.code).to_be("stale_notify")
    expect(#notifies_of(o.id)).to_be(1)
  end)

  it("takes an amount and a transaction id, and is for operators only", function()
    local o = order("sim2", new_sku(500, 5))
    local wrong = kit.admin():post("/payments/simulate", { order_id = o.id, amount_fen = 499 })
    expect(wrong.status).to_be(400)
    expect(wrong.body.error.code).to_be("amount_mismatch")
    local bad = kit.admin():post("/payments/simulate", { order_id = "1" })
    expect(bad.status).to_be(400)
    expect(bad.body.error.details).to_equal({ field = "order_id" })
    expect(kit.admin():post("/payments/simulate", { order_id = 99999999 }).status).to_be(404)
    local key = kit.admin():post("/payments/simulate", { order_id = o.id }, { ["X-Api-Key"] = "wrong" })
    expect(key.status).to_be(403)
    local ok = kit.admin():post("/payments/simulate", { order_id = o.id, transaction_id = "sim-tx-1" })
    expect(ok.body.result.outcome).to_be("paid")
    expect(order_now(o.id).transaction_id).to_be("sim-tx-1")
  end)
end)

describe("prepay", function()
  it("answers signed payment parameters for my unpaid order, and nothing else", function()
    local o = order("pre", new_sku(5200, 5))
    local res = kit.user("pre"):post("/payments/prepay", { order_id = o.id })
    expect(res.status).to_be(200)
    local p = res.body
    expect({ p.order_id, p.out_trade_no, p.total_fen, p.expires_at })
      .to_equal({ o.id, trade_no(o.id), 5200, o.pay_deadline })
    local rp = p.request_payment
    expect({ rp.appId, rp.timeStamp, rp.package, rp.signType })
      .to_equal({ "wx-demo-app", tostring(kit.now()), "prepay_id=wx" .. trade_no(o.id), "HMAC-SHA256" })
    expect(rp.paySign).to_be(paysign.signature(SECRET, rp.timeStamp, rp.nonceStr, rp.package))
    expect(order_now(o.id).status).to_be("pending_payment")
    expect(kit.user("pre-bob"):post("/payments/prepay", { order_id = o.id }).body.error.code)
      .to_be("order_not_found")
    expect(kit.anon():post("/payments/prepay", { order_id = o.id }).status).to_be(401)
    local bad = kit.user("pre"):post("/payments/prepay", { order_id = 0 })
    expect(bad.body.error.details).to_equal({ field = "order_id" })
    notify(o.id, 5200, tx())
    local paid = kit.user("pre"):post("/payments/prepay", { order_id = o.id })
    expect(paid.status).to_be(409)
    expect(paid.body.error.code).to_be("not_payable")
    expect(paid.body.error.details).to_equal({ status = "paid" })
  end)
end)

describe("refunds through orders", function()
  it("are paid out once per refund number, listed with the provider's id", function()
    local o = order("rf", new_sku(3000, 5))
    local t = tx()
    notify(o.id, 3000, t)
    kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = 1000 })
    kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = 2000 })
    kit.drain()
    local mine = {}
    for _, r in ipairs(kit.admin():get("/payments/refunds").body.items) do
      if r.order_id == o.id then mine[#mine + 1] = r end
    end
    expect(#mine).to_be(2)
    expect({ mine[1].refund_no, mine[1].amount_fen, mine[1].transaction_id })
      .to_equal({ "R" .. o.id .. "-2", 2000, t })            -- newest first
    expect({ mine[2].refund_no, mine[2].amount_fen }).to_equal({ "R" .. o.id .. "-1", 1000 })
    expect(mine[1].provider_refund_id).to_match("^50300%d+$")
    kit.advance(3600)
    expect(#kit.query("SELECT 1 AS x FROM payments_refunds WHERE order_id = ?", o.id)).to_be(2)
    expect(order_now(o.id).status).to_be("refunded")
  end)
end)
