---@diagnostic disable: undefined-global
-- payments: the payment provider's side of an order, in the shape of WeChat Pay
-- (APIv3). The mini-program asks for payment parameters (prepay), the provider
-- calls back (notify) when the user paid, and the orders plugin's refund jobs
-- call refund() here.
--
-- A notify is verified before anything is read from it: the headers
-- Wechatpay-Timestamp, Wechatpay-Nonce and Wechatpay-Signature carry
-- base64(HMAC-SHA256(secret, timestamp .. "\n" .. nonce .. "\n" .. body .. "\n"))
-- over the body exactly as sent, with the tenant's payment secret (this
-- plugin's config `secret`). WeChat signs with RSA and encrypts the resource
-- with AES-256-GCM; an adapter for the live provider replaces verify() and
-- reads `resource.ciphertext` instead of `resource.plaintext` — nothing else
-- changes. A repeated notify (same transaction_id) is answered from the record
-- of the first and changes nothing.
--
-- Refunds: until the host can make outbound calls, refund() books the refund
-- in payments_refunds as the provider would: once per refund number, never
-- more than the transaction's total.

---@class PaymentsConfig
---@field secret string the tenant's payment secret (at least 16 bytes)
---@field appid string? the mini-program's app id (default "wx-demo-app")
---@field mchid string? the merchant id (default "1900000001")
---@field max_clock_skew_seconds integer? how old a notify's timestamp may be (default 300)

local check = require("tp.check")

local SUCCESS = { code = "SUCCESS", message = "成功" }

local function config()
  local c = tp.config()
  if type(c.secret) ~= "string" or #c.secret < 16 then
    tp.fail(503, "payments_not_configured", "the tenant has no payment secret (plugins.payments.secret)")
  end
  return { secret = c.secret, appid = c.appid or "wx-demo-app", mchid = c.mchid or "1900000001",
           skew = c.max_clock_skew_seconds or 300 }
end

local function out_trade_no(order_id) return ("tp%08d"):format(order_id) end

local function order_of_trade_no(no)
  local id = type(no) == "string" and math.tointeger(tonumber(no:match("^tp(%d+)$") or ""))
  if not id then tp.fail(400, "unknown_out_trade_no", "out_trade_no does not name an order") end
  return id
end

local function signature(secret, timestamp, nonce, body)
  return tp.crypto.hmac_sha256(secret, timestamp .. "\n" .. nonce .. "\n" .. body .. "\n", "base64")
end

local function nonce()
  return ("%08x%08x"):format(tp.random(0, 0x7fffffff), tp.random(0, 0x7fffffff))
end

-- ---- notify

---Checks the signature headers over the raw body; 401 and nothing else otherwise.
local function verify(headers, raw, cfg)
  local ts, n, sig = headers["wechatpay-timestamp"], headers["wechatpay-nonce"],
    headers["wechatpay-signature"]
  if not ts or not n or not sig or not raw then
    tp.fail(401, "signature_missing", "Wechatpay-Timestamp, -Nonce and -Signature and a body are required")
  end
  local at = math.tointeger(tonumber(ts))
  if not at or math.abs(tp.now() - at) > cfg.skew then
    tp.fail(401, "stale_notify", ("the notify's timestamp is more than %d s away"):format(cfg.skew))
  end
  if not tp.crypto.equal(signature(cfg.secret, ts, n, raw), sig) then
    tp.log("warn", "payment notify with a wrong signature", { nonce = n, timestamp = ts })
    tp.fail(401, "invalid_signature", "the notify's signature does not verify")
  end
end

---The transaction inside a verified notify body.
local function transaction_of(body)
  if type(body) ~= "table" or type(body.resource) ~= "table" or type(body.resource.plaintext) ~= "table" then
    tp.fail(400, "invalid_notify", "the notify must carry resource.plaintext")
  end
  local t = body.resource.plaintext
  if type(t.amount) ~= "table" then check.field_error("amount", "must be an object") end
  return {
    order_id = order_of_trade_no(t.out_trade_no),
    transaction_id = check.ident(t.transaction_id, "transaction_id", 64),
    trade_state = check.ident(t.trade_state, "trade_state", 32),
    amount_fen = check.integer(t.amount.total, "amount.total", 1),
    currency = t.amount.currency or "CNY",
  }
end

---Applies a verified notify once per transaction id. Returns the outcome.
local function apply_notify(body)
  local event = type(body) == "table" and body.event_type
  if event ~= "TRANSACTION.SUCCESS" then
    return { outcome = "ignored", event_type = event }
  end
  local t = transaction_of(body)
  if t.trade_state ~= "SUCCESS" or t.currency ~= "CNY" then
    tp.fail(400, "invalid_notify", "only successful CNY transactions can pay an order")
  end
  local seen = tp.db.one("SELECT order_id, amount_fen, outcome FROM payments_notifies WHERE transaction_id = ?",
    t.transaction_id)
  if seen then
    if seen.order_id ~= t.order_id or seen.amount_fen ~= t.amount_fen then
      tp.log("warn", "a notify reuses a transaction id with other details", { transaction_id = t.transaction_id })
      tp.fail(409, "transaction_conflict", "this transaction id was notified with other details")
    end
    return { outcome = "duplicate", first_outcome = seen.outcome, order_id = t.order_id }
  end
  local result = tp.call("orders", "pay", { order_id = t.order_id, transaction_id = t.transaction_id,
    amount_fen = t.amount_fen, paid_at = tp.now() })
  tp.db.exec([[INSERT INTO payments_notifies (transaction_id, order_id, amount_fen, outcome, received_at)
    VALUES (?, ?, ?, ?, ?)]], t.transaction_id, t.order_id, t.amount_fen, result.outcome, tp.now())
  return { outcome = result.outcome, order_id = t.order_id, status = result.order.status }
end

---POST /payments/notify: the provider's callback.
local function notify(req)
  local cfg = config()
  verify(req.headers, req.raw_body, cfg)
  local result = apply_notify(req.body)
  return 200, { code = SUCCESS.code, message = SUCCESS.message, outcome = result.outcome }
end

-- ---- the mini-program's side

---POST /payments/prepay {order_id}: the parameters wx.requestPayment needs, for
---the caller's own unpaid order.
local function prepay(req)
  local cfg = config()
  local body = check.body(req.body)
  local id = check.integer(body.order_id, "order_id", 1)
  local o = tp.call("orders", "get", id)
  if not o or o.user ~= req.user then tp.fail(404, "order_not_found", "no such order") end
  if o.status ~= "pending_payment" then
    tp.fail(409, "not_payable", ("an order that is %s cannot be paid"):format(o.status), { status = o.status })
  end
  local ts, n = tostring(tp.now()), nonce()
  local package = "prepay_id=wx" .. out_trade_no(id)
  return 200, { order_id = id, out_trade_no = out_trade_no(id), total_fen = o.total_fen,
    expires_at = o.pay_deadline,
    request_payment = { appId = cfg.appid, timeStamp = ts, nonceStr = n, package = package,
      signType = "HMAC-SHA256", paySign = signature(cfg.secret, ts, n, package) } }
end

-- ---- operators: a simulated payer, and the records

---POST /payments/simulate {order_id, amount_fen?, transaction_id?}: builds the
---notify WeChat would send for this order, signs it with the tenant's secret,
---applies it exactly as /payments/notify would, and returns it so it can be
---replayed with curl.
local function simulate(req)
  local cfg = config()
  local body = check.body(req.body)
  local id = check.integer(body.order_id, "order_id", 1)
  local o = tp.call("orders", "get", id)
  if not o then tp.fail(404, "order_not_found", "no such order") end
  local transaction = {
    appid = cfg.appid, mchid = cfg.mchid, out_trade_no = out_trade_no(id),
    transaction_id = check.ident(body.transaction_id, "transaction_id", 64, true)
      -- 28 digits like WeChat's: 4200, the second, 14 random digits. Six random
      -- digits collided among the hundreds simulated in one second of a load
      -- test (a second payment with another order's id: transaction_conflict)
      or ("4200%d%014d"):format(tp.now(), tp.random(0, 99999999999999)),
    trade_type = "JSAPI", trade_state = "SUCCESS", success_time = tp.now(),
    amount = { total = check.integer(body.amount_fen, "amount_fen", 1, nil, true) or o.total_fen,
               payer_total = o.total_fen, currency = "CNY" },
    payer = { openid = "sim-" .. o.user },
  }
  local notice = { id = "sim-" .. nonce(), create_time = tp.now(), event_type = "TRANSACTION.SUCCESS",
    resource_type = "encrypt-resource",
    resource = { original_type = "transaction", algorithm = "none", plaintext = transaction } }
  local raw = tp.json.encode(notice)
  local ts, n = tostring(tp.now()), nonce()
  local headers = { ["Content-Type"] = "application/json", ["Wechatpay-Timestamp"] = ts,
    ["Wechatpay-Nonce"] = n, ["Wechatpay-Signature"] = signature(cfg.secret, ts, n, raw),
    ["Wechatpay-Serial"] = "tidepool-simulated" }
  return 200, { notify = { headers = headers, body = raw }, result = apply_notify(notice) }
end

local function list_notifies(req)
  local limit = check.page(req.query, 50, 500)
  return 200, { items = tp.json.array(tp.db.query([[SELECT transaction_id, order_id, amount_fen, outcome,
    received_at FROM payments_notifies ORDER BY received_at DESC, rowid DESC LIMIT ?]], limit)) }
end

local function list_refunds(req)
  local limit = check.page(req.query, 50, 500)
  return 200, { items = tp.json.array(tp.db.query([[SELECT refund_no, provider_refund_id, transaction_id,
    order_id, amount_fen, created_at FROM payments_refunds ORDER BY id DESC LIMIT ?]], limit)) }
end

-- ---- the answers, as the OpenAPI document states them

local INT, STR = { type = "integer" }, { type = "string" }
local FEN = { type = "integer", minimum = 0, description = "integer fen" }
local EPOCH = { type = "integer", minimum = 0, description = "UTC epoch seconds" }

-- POST /payments/prepay: wx.requestPayment(request_payment) in the mini-program
local PREPAY = { type = "object", required = { "order_id", "out_trade_no", "total_fen", "request_payment" },
  properties = { order_id = INT, out_trade_no = STR, total_fen = FEN,
    expires_at = { type = "integer", minimum = 0, description = "the order's pay_deadline (UTC epoch seconds)" },
    request_payment = { type = "object", description = "the parameters of wx.requestPayment, as they are",
      required = { "appId", "timeStamp", "nonceStr", "package", "signType", "paySign" },
      properties = { appId = STR, timeStamp = { type = "string", description = "epoch seconds, as a string" },
        nonceStr = STR, package = { type = "string", description = "prepay_id=..." },
        signType = { type = "string", enum = { "HMAC-SHA256" } }, paySign = STR } } } }

-- what a notify did: paid (or another outcome of orders.pay), duplicate, ignored
local APPLIED = { type = "object", required = { "outcome" }, properties = {
  outcome = STR, order_id = INT, status = STR, first_outcome = STR, event_type = STR } }

-- ---- exports

local exports = {}

---Moves a refund's money back to the payer, once per refund number.
---@param r {refund_no: string, order_id: integer, transaction_id: string, amount_fen: integer, total_fen: integer}
---@return {provider_refund_id: string, status: string}
function exports.refund(r)
  local done = tp.db.one("SELECT provider_refund_id FROM payments_refunds WHERE refund_no = ?", r.refund_no)
  if done then return { provider_refund_id = done.provider_refund_id, status = "SUCCESS" } end
  local refunded = tp.db.one("SELECT coalesce(sum(amount_fen), 0) AS fen FROM payments_refunds WHERE transaction_id = ?",
    r.transaction_id).fen
  if refunded + r.amount_fen > r.total_fen then
    tp.fail(409, "refund_exceeds_transaction", ("transaction %s has only %d fen left to refund"):format(
      r.transaction_id, r.total_fen - refunded))
  end
  local _, id = tp.db.exec([[INSERT INTO payments_refunds (refund_no, transaction_id, order_id, amount_fen,
    created_at) VALUES (?, ?, ?, ?, ?)]], r.refund_no, r.transaction_id, r.order_id, r.amount_fen, tp.now())
  local provider_id = ("50300%d"):format(id)
  tp.db.exec("UPDATE payments_refunds SET provider_refund_id = ? WHERE id = ?", provider_id, id)
  return { provider_refund_id = provider_id, status = "SUCCESS" }
end

return {
  name = "payments",
  version = "1.0.0",
  description = "WeChat Pay-shaped prepay, signed payment notifies and refunds",
  migrations = {
    [[
    CREATE TABLE payments_notifies (
      transaction_id TEXT PRIMARY KEY,
      order_id INTEGER NOT NULL,
      amount_fen INTEGER NOT NULL,
      outcome TEXT NOT NULL,
      received_at INTEGER NOT NULL
    );
    CREATE TABLE payments_refunds (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      refund_no TEXT NOT NULL UNIQUE,
      provider_refund_id TEXT,
      transaction_id TEXT NOT NULL,
      order_id INTEGER NOT NULL,
      amount_fen INTEGER NOT NULL CHECK (amount_fen >= 1),
      created_at INTEGER NOT NULL
    );
    CREATE INDEX payments_refunds_transaction ON payments_refunds(transaction_id);
    ]],
  },
  routes = {
    { method = "POST", path = "/payments/notify", auth = "none", handler = notify,
      summary = "WeChat Pay notify: signed callback that marks an order paid",
      headers = { ["Wechatpay-Timestamp"] = { required = true }, ["Wechatpay-Nonce"] = { required = true },
                  ["Wechatpay-Signature"] = { required = true,
                    description = "base64 HMAC-SHA256 of timestamp\\nnonce\\nbody\\n with the payment secret" } },
      body = { type = "object", required = { "event_type", "resource" } },
      response = { type = "object", required = { "code", "message", "outcome" }, properties = {
        code = { type = "string", description = "SUCCESS: WeChat Pay stops retrying" }, message = STR,
        outcome = { type = "string", description = "what the notify did to the order (paid, duplicate, ignored, ...)" } } },
      errors = { [400] = { "invalid_notify", "unknown_out_trade_no", "amount_mismatch" },
                 [401] = { "signature_missing", "stale_notify", "invalid_signature" },
                 [404] = { "order_not_found" }, [409] = { "transaction_conflict" },
                 [503] = { "payments_not_configured" } } },
    { method = "POST", path = "/payments/prepay", handler = prepay,
      summary = "Payment parameters for wx.requestPayment, for my unpaid order",
      body = { type = "object", required = { "order_id" }, properties = { order_id = { type = "integer" } } },
      response = PREPAY,
      errors = { [400] = { "invalid_field" }, [404] = { "order_not_found" }, [409] = { "not_payable" },
                 [503] = { "payments_not_configured" } } },
    { method = "POST", path = "/payments/simulate", auth = "admin", handler = simulate,
      summary = "Simulate the payer: build, sign and apply the notify WeChat would send",
      body = { type = "object", required = { "order_id" }, properties = {
        order_id = { type = "integer" }, amount_fen = { type = "integer" }, transaction_id = { type = "string" } } },
      response = { type = "object", required = { "notify", "result" }, properties = {
        notify = { type = "object", required = { "headers", "body" }, description = "the notify, to replay with curl",
          properties = { headers = { type = "object", additionalProperties = STR },
                         body = { type = "string", description = "the signed body, as sent" } } },
        result = APPLIED } },
      errors = { [400] = { "invalid_field", "invalid_notify", "amount_mismatch" }, [404] = { "order_not_found" },
                 [409] = { "transaction_conflict" }, [503] = { "payments_not_configured" } } },
    { method = "GET", path = "/payments/notifies", auth = "admin", handler = list_notifies,
      summary = "Payment notifies received, newest first", query = { limit = { type = "integer" } },
      response = { type = "object", required = { "items" }, properties = { items = { type = "array", items = {
        type = "object", required = { "transaction_id", "order_id", "amount_fen", "outcome", "received_at" },
        properties = { transaction_id = STR, order_id = INT, amount_fen = FEN, outcome = STR, received_at = EPOCH } } } } },
      errors = { [400] = { "invalid_query" } } },
    { method = "GET", path = "/payments/refunds", auth = "admin", handler = list_refunds,
      summary = "Refunds paid out, newest first", query = { limit = { type = "integer" } },
      response = { type = "object", required = { "items" }, properties = { items = { type = "array", items = {
        type = "object", required = { "refund_no", "provider_refund_id", "transaction_id", "order_id", "amount_fen",
                                      "created_at" },
        properties = { refund_no = STR, provider_refund_id = STR, transaction_id = STR, order_id = INT,
                       amount_fen = FEN, created_at = EPOCH } } } } },
      errors = { [400] = { "invalid_query" } } },
  },
  exports = exports,
}
