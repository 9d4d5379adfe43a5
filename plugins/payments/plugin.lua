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
-- Refunds: the simulator books the refund in payments_refunds as the provider
-- would: once per refund number, never more than the transaction's total.
--
-- A brand chooses its provider with `provider`: "simulator" (the default, the
-- demo's) or "wechatpay", WeChat Pay API v3 for real (lib/wechatpay.lua and
-- the README: RSA request signatures by the host, paySign, notifies verified
-- with the platform public key and decrypted with the APIv3 key, refunds
-- settled by their notify, a reconcile job for notifies that never came).
--
-- Transfers to users (商家转账, lib/transfer.lua): the exports transfer,
-- transfer_bill and cancel_transfer, for referral's approved withdrawals; the
-- simulator makes a bill waiting for the user, WeChat Pay is asked for one
-- (POST /v3/fund-app/mch-transfer/transfer-bills) after the caller commits, and
-- its MCHTRANSFER.BILL.FINISHED notify comes to /payments/notify.

---@class PaymentsConfig
---@field provider "simulator"|"wechatpay"|nil default "simulator"
---@field secret string? the simulator's payment secret (at least 16 bytes)
---@field wechatpay table? the live provider's settings (README "WeChat Pay")
---@field appid string? the mini-program's app id (default "wx-demo-app")
---@field mchid string? the merchant id (default "1900000001")
---@field max_clock_skew_seconds integer? how old a notify's timestamp may be (default 300)

local check = require("tp.check")
local wechatpay = require("lib.wechatpay")
local transfer = require("lib.transfer")

local SUCCESS = { code = "SUCCESS", message = "成功" }

local function provider()
  local p = tp.config().provider or "simulator"
  if p ~= "simulator" and p ~= "wechatpay" then
    tp.fail(503, "payments_not_configured", "plugins.payments.provider must be simulator or wechatpay")
  end
  return p
end

local function config()
  local c = tp.config()
  if provider() == "wechatpay" then
    local w = wechatpay.settings(c)
    w.provider = "wechatpay"
    w.transfer = transfer.settings(w, c.wechatpay.transfer)
    return w
  end
  if type(c.secret) ~= "string" or #c.secret < 16 then
    tp.fail(503, "payments_not_configured", "the tenant has no payment secret (plugins.payments.secret)")
  end
  return { provider = "simulator", secret = c.secret, appid = c.appid or "wx-demo-app",
           mchid = c.mchid or "1900000001", skew = c.max_clock_skew_seconds or 300 }
end

-- One out_trade_no per payment of an order (WeChat Pay takes each number
-- once): tp00000042 for its first payment (the whole order, or a presale's
-- deposit), tp00000042_2 for a presale's balance (尾款).
local function out_trade_no(order_id, stage)
  if stage == 2 then return ("tp%08d_2"):format(order_id) end
  return ("tp%08d"):format(order_id)
end

---The order and the payment stage an out_trade_no names.
---@return integer order_id, integer stage
local function order_of_trade_no(no)
  local digits, second = nil, nil
  if type(no) == "string" then
    digits = no:match("^tp(%d+)$")
    if not digits then
      digits = no:match("^tp(%d+)_2$")
      second = digits ~= nil
    end
  end
  local id = digits and math.tointeger(tonumber(digits))
  if not id then tp.fail(400, "unknown_out_trade_no", "out_trade_no does not name an order") end
  return id, second and 2 or 1
end

---What the caller may pay of order o now: {stage, amount_fen, closes_at}, or
---409 not_payable; a presale's balance only inside its window (409
---balance_not_open with opens_at, balance_closed).
local function due_now(o)
  local due = o.payment_due
  if not due then
    tp.fail(409, "not_payable", ("an order that is %s cannot be paid"):format(o.status), { status = o.status })
  end
  if due.opens_at and tp.now() < due.opens_at then
    tp.fail(409, "balance_not_open", "the balance (尾款) of this presale cannot be paid yet", { opens_at = due.opens_at })
  end
  if due.stage == 2 and tp.now() >= due.closes_at then
    tp.fail(409, "balance_closed", "the time to pay this presale's balance (尾款) is over", { closes_at = due.closes_at })
  end
  return due
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

---The fields of a transaction (a notify's resource, or a query's answer) that pay an order.
local function transaction_fields(t)
  if type(t) ~= "table" then tp.fail(400, "invalid_notify", "the transaction must be an object") end
  if type(t.amount) ~= "table" then check.field_error("amount", "must be an object") end
  local order_id, stage = order_of_trade_no(t.out_trade_no)
  return {
    order_id = order_id, stage = stage,
    transaction_id = check.ident(t.transaction_id, "transaction_id", 64),
    trade_state = check.ident(t.trade_state, "trade_state", 32),
    amount_fen = check.integer(t.amount.total, "amount.total", 1),
    currency = t.amount.currency or "CNY",
  }
end

---Applies a successful transaction once per transaction id. Returns the outcome.
local function apply_transaction(raw)
  local t = transaction_fields(raw)
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
    amount_fen = t.amount_fen, paid_at = tp.now(), stage = t.stage })
  tp.db.exec([[INSERT INTO payments_notifies (transaction_id, order_id, amount_fen, outcome, received_at)
    VALUES (?, ?, ?, ?, ?)]], t.transaction_id, t.order_id, t.amount_fen, result.outcome, tp.now())
  tp.db.exec("UPDATE payments_prepays SET state = 'paid' WHERE order_id = ?", t.order_id)
  return { outcome = result.outcome, order_id = t.order_id, status = result.order.status }
end

---Applies a verified simulator notify (resource.plaintext) once per transaction id.
local function apply_notify(body)
  local event = type(body) == "table" and body.event_type
  if event ~= "TRANSACTION.SUCCESS" then
    return { outcome = "ignored", event_type = event }
  end
  if type(body.resource) ~= "table" or type(body.resource.plaintext) ~= "table" then
    tp.fail(400, "invalid_notify", "the notify must carry resource.plaintext")
  end
  return apply_transaction(body.resource.plaintext)
end

local APPLY_REFUND_SQL = "UPDATE payments_refunds SET status = ?, provider_refund_id = coalesce(?, provider_refund_id) "
    .. "WHERE refund_no = ?"

---A refund's notify (REFUND.SUCCESS, .CLOSED, .ABNORMAL): records the state,
---and a success settles the order's refund, once.
local function apply_refund(r)
  local no = check.ident(r.out_refund_no, "out_refund_no", 64)
  local row = tp.db.one("SELECT status FROM payments_refunds WHERE refund_no = ?", no)
  if not row then tp.fail(404, "refund_not_found", "no refund with this out_refund_no") end
  local status = check.ident(r.refund_status, "refund_status", 16)
  if row.status == "SUCCESS" or row.status == status then
    return { outcome = "duplicate", first_outcome = row.status }
  end
  tp.db.exec(APPLY_REFUND_SQL, status, r.refund_id, no)
  if status == "SUCCESS" then
    tp.call("orders", "refund_settled", no, r.refund_id)
    return { outcome = "refunded" }
  end
  tp.log("error", "a refund did not go through; it needs a person", { refund_no = no, status = status })
  return { outcome = "refund_" .. status:lower() }
end

---A WeChat Pay notify: verified, decrypted, applied by its event type.
local function apply_wechatpay(w, req)
  wechatpay.verify(w, req.headers, req.raw_body)
  local event = type(req.body) == "table" and req.body.event_type
  local resource = wechatpay.open(w, req.body)
  if event == "TRANSACTION.SUCCESS" then return apply_transaction(resource) end
  if type(event) == "string" and event:match("^REFUND%.") then return apply_refund(resource) end
  if event == "MCHTRANSFER.BILL.FINISHED" then return transfer.apply_notify(resource) end
  return { outcome = "ignored", event_type = event }
end

---POST /payments/notify: the provider's callback.
local function notify(req)
  local cfg = config()
  local result
  if cfg.provider == "wechatpay" then
    result = apply_wechatpay(cfg, req)
  else
    verify(req.headers, req.raw_body, cfg)
    result = apply_notify(req.body)
  end
  return 200, { code = SUCCESS.code, message = SUCCESS.message, outcome = result.outcome }
end

-- ---- the mini-program's side

local PREPAY_VALID = 7000  -- seconds a prepay_id is used for (WeChat keeps it 2 hours)
local ASK_AGAIN = 30       -- seconds before a prepay still unanswered is asked again

---With WeChat Pay the prepay_id comes from a call out, answered to a job: the
---first request asks and answers 202 (pending); once the reply is in, 200
---with wx.requestPayment's parameters, signed by the host with the merchant key.
local function prepay_wechatpay(w, o, due, body)
  local no = out_trade_no(o.id, due.stage)
  local p = tp.db.one("SELECT out_trade_no, prepay_id, state, error, asked_at, ready_at FROM payments_prepays WHERE order_id = ?",
    o.id)
  local now = tp.now()
  if p and p.out_trade_no ~= no then p = nil end  -- the deposit's prepay: the balance asks anew
  if p and p.state == "ready" and p.ready_at + PREPAY_VALID > now then
    return 200, { order_id = o.id, out_trade_no = no, total_fen = due.amount_fen, expires_at = due.closes_at,
      request_payment = wechatpay.request_payment(w, p.prepay_id) }
  end
  if p and p.state == "failed" and p.asked_at + ASK_AGAIN > now then
    tp.fail(502, "prepay_failed", "WeChat Pay refused the prepay", { error = p.error })
  end
  if not (p and p.state == "asked" and p.asked_at + ASK_AGAIN > now) then
    local openid = check.ident(body.openid, "openid", 128)
    tp.db.exec([[INSERT INTO payments_prepays (order_id, out_trade_no, total_fen, state, asked_at)
      VALUES (?, ?, ?, 'asked', ?) ON CONFLICT (order_id) DO UPDATE SET state = 'asked', prepay_id = NULL,
      error = NULL, asked_at = excluded.asked_at, total_fen = excluded.total_fen,
      out_trade_no = excluded.out_trade_no]], o.id, no, due.amount_fen, now)
    wechatpay.ask_prepay(w, { id = o.id, total_fen = due.amount_fen, pay_deadline = due.closes_at }, no, openid)
  end
  return 202, { order_id = o.id, out_trade_no = no, total_fen = due.amount_fen, expires_at = due.closes_at,
    pending = true, retry_after = 1 }
end

---POST /payments/prepay {order_id}: the parameters wx.requestPayment needs, for
---the caller's own unpaid order.
local function prepay(req)
  local cfg = config()
  local body = check.body(req.body)
  local id = check.integer(body.order_id, "order_id", 1)
  local o = tp.call("orders", "get", id)
  if not o or o.user ~= req.user then tp.fail(404, "order_not_found", "no such order") end
  local due = due_now(o)
  if cfg.provider == "wechatpay" then return prepay_wechatpay(cfg, o, due, body) end
  local ts, n = tostring(tp.now()), nonce()
  local no = out_trade_no(id, due.stage)
  local package = "prepay_id=wx" .. no
  return 200, { order_id = id, out_trade_no = no, total_fen = due.amount_fen, stage = due.stage,
    expires_at = due.closes_at,
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
  if cfg.provider ~= "simulator" then
    tp.fail(409, "not_simulated", "this brand pays through WeChat Pay; nothing is simulated")
  end
  local body = check.body(req.body)
  local id = check.integer(body.order_id, "order_id", 1)
  local o = tp.call("orders", "get", id)
  if not o then tp.fail(404, "order_not_found", "no such order") end
  -- the payment due now (a presale's balance only in its window); an order
  -- with none due (cancelled: a late payment) is paid its first payment's
  -- amount, or the stage the body names
  local stage = check.integer(body.stage, "stage", 1, 2, true)
  local amount = o.deposit and o.deposit.deposit_fen or o.total_fen
  if stage == nil and o.payment_due then
    local due = due_now(o)
    stage, amount = due.stage, due.amount_fen
  elseif stage == 2 then
    amount = o.deposit and o.deposit.balance_fen or o.total_fen
  end
  local transaction = {
    appid = cfg.appid, mchid = cfg.mchid, out_trade_no = out_trade_no(id, stage),
    transaction_id = check.ident(body.transaction_id, "transaction_id", 64, true)
      -- 28 digits like WeChat's: 4200, the second, 14 random digits. Six random
      -- digits collided among the hundreds simulated in one second of a load
      -- test (a second payment with another order's id: transaction_conflict)
      or ("4200%d%014d"):format(tp.now(), tp.random(0, 99999999999999)),
    trade_type = "JSAPI", trade_state = "SUCCESS", success_time = tp.now(),
    amount = { total = check.integer(body.amount_fen, "amount_fen", 1, nil, true) or amount,
               payer_total = amount, currency = "CNY" },
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

---POST /payments/transfers/{no}/simulate {state, fail_reason?}: the simulator's
---WeChat: ends (or moves) a simulated transfer as its notify would.
local function simulate_transfer(req)
  local cfg = config()
  if cfg.provider ~= "simulator" then
    tp.fail(409, "not_simulated", "this brand pays through WeChat Pay; nothing is simulated")
  end
  local body = check.body(req.body)
  check.only(body, { state = true, fail_reason = true })
  local b = transfer.row(req.params.no)
  if not b then tp.fail(404, "transfer_not_found", "no transfer with this out_bill_no") end
  local state = check.enum(body.state, "state", transfer.STATES)
  local outcome, nb = transfer.apply({ out_bill_no = b.out_bill_no, state = state,
    fail_reason = check.ident(body.fail_reason, "fail_reason", 64, true)
      or ((state == "FAIL" or state == "CANCELLED") and "SIMULATED_" .. state or nil) })
  local v = transfer.view(nb)
  v.outcome = outcome
  return 200, v
end

local LIST_TRANSFERS_SQL = "SELECT out_bill_no, owner, ref, amount_fen, state, transfer_bill_no, fail_reason, "
    .. "created_at, updated_at FROM payments_transfers ORDER BY created_at DESC, rowid DESC LIMIT ?"

local function list_transfers(req)
  local limit = check.page(req.query, 50, 500)
  local items = tp.db.query(LIST_TRANSFERS_SQL, limit)
  return 200, { items = tp.json.array(items) }
end

local function list_notifies(req)
  local limit = check.page(req.query, 50, 500)
  return 200, { items = tp.json.array(tp.db.query([[SELECT transaction_id, order_id, amount_fen, outcome,
    received_at FROM payments_notifies ORDER BY received_at DESC, rowid DESC LIMIT ?]], limit)) }
end

local function list_refunds(req)
  local limit = check.page(req.query, 50, 500)
  return 200, { items = tp.json.array(tp.db.query([[SELECT refund_no, provider_refund_id, transaction_id,
    order_id, amount_fen, status, created_at FROM payments_refunds ORDER BY id DESC LIMIT ?]], limit)) }
end

-- ---- the answers, as the OpenAPI document states them

local INT, STR = { type = "integer" }, { type = "string" }
local FEN = { type = "integer", minimum = 0, description = "integer fen" }
local EPOCH = { type = "integer", minimum = 0, description = "UTC epoch seconds" }

-- POST /payments/prepay: wx.requestPayment(request_payment) in the mini-program
local PREPAY = { type = "object", required = { "order_id", "out_trade_no", "total_fen" },
  properties = { order_id = INT, out_trade_no = STR,
    total_fen = { type = "integer", minimum = 0, description = "integer fen this payment asks: the order's total, "
      .. "or a presale's deposit or balance" },
    stage = { type = "integer", description = "1: the first payment (the order, or a presale's deposit); 2: a presale's balance" },
    pending = { type = "boolean", description = "202: WeChat Pay is being asked; ask again after retry_after" },
    retry_after = { type = "integer", description = "seconds" },
    expires_at = { type = "integer", minimum = 0, description = "the order's pay_deadline, or the end of a "
      .. "presale's balance window (UTC epoch seconds)" },
    request_payment = { type = "object", description = "the parameters of wx.requestPayment, as they are",
      required = { "appId", "timeStamp", "nonceStr", "package", "signType", "paySign" },
      properties = { appId = STR, timeStamp = { type = "string", description = "epoch seconds, as a string" },
        nonceStr = STR, package = { type = "string", description = "prepay_id=..." },
        signType = { type = "string", enum = { "HMAC-SHA256", "RSA" },
          description = "RSA with WeChat Pay; HMAC-SHA256 from the simulator" }, paySign = STR } } } }

local TRANSFER_STATE = { type = "string", description = "WeChat's bill state (ACCEPTED, PROCESSING, "
  .. "WAIT_USER_CONFIRM, TRANSFERING, SUCCESS, FAIL, CANCELING, CANCELLED), or ASKED / UNKNOWN before a "
  .. "definite answer" }
-- a transfer as the simulate route answers it
local TRANSFER = { type = "object", required = { "out_bill_no", "ref", "amount_fen", "state", "final" },
  properties = { out_bill_no = STR, ref = STR, amount_fen = FEN, state = TRANSFER_STATE, transfer_bill_no = STR,
    fail_reason = STR, created_at = EPOCH, updated_at = EPOCH, final = { type = "boolean" },
    waiting_for_user = { type = "boolean" }, outcome = STR } }

-- what a notify did: paid (or another outcome of orders.pay), duplicate, ignored
local APPLIED = { type = "object", required = { "outcome" }, properties = {
  outcome = STR, order_id = INT, status = STR, first_outcome = STR, event_type = STR } }

-- ---- exports

local exports = {}

---Moves a refund's money back to the payer, once per refund number.
---@param r {refund_no: string, order_id: integer, transaction_id: string, amount_fen: integer, total_fen: integer}
---The simulator pays it at once (SUCCESS); WeChat Pay accepts it (PROCESSING)
---and its notify settles it with orders.refund_settled.
---@return {provider_refund_id: string?, status: string}
function exports.refund(r)
  local done = tp.db.one("SELECT provider_refund_id, status FROM payments_refunds WHERE refund_no = ?", r.refund_no)
  if done then return { provider_refund_id = done.provider_refund_id, status = done.status } end
  local refunded = tp.db.one("SELECT coalesce(sum(amount_fen), 0) AS fen FROM payments_refunds WHERE transaction_id = ?",
    r.transaction_id).fen
  if refunded + r.amount_fen > r.total_fen then
    tp.fail(409, "refund_exceeds_transaction", ("transaction %s has only %d fen left to refund"):format(
      r.transaction_id, r.total_fen - refunded))
  end
  local cfg = config()
  if cfg.provider == "wechatpay" then
    tp.db.exec([[INSERT INTO payments_refunds (refund_no, transaction_id, order_id, amount_fen, created_at, status)
      VALUES (?, ?, ?, ?, ?, 'PROCESSING')]], r.refund_no, r.transaction_id, r.order_id, r.amount_fen, tp.now())
    wechatpay.ask_refund(cfg, r)
    return { status = "PROCESSING" }
  end
  local _, id = tp.db.exec([[INSERT INTO payments_refunds (refund_no, transaction_id, order_id, amount_fen,
    created_at) VALUES (?, ?, ?, ?, ?)]], r.refund_no, r.transaction_id, r.order_id, r.amount_fen, tp.now())
  local provider_id = ("50300%d"):format(id)
  tp.db.exec("UPDATE payments_refunds SET provider_refund_id = ? WHERE id = ?", provider_id, id)
  return { provider_refund_id = provider_id, status = "SUCCESS" }
end

---Pays amount_fen from the merchant to a user (商家转账), once per out_bill_no
---(lib/transfer.lua). Called in the caller's transaction: with WeChat Pay the
---bill is asked for after that transaction commits, never if it rolls back.
---Each later change of the bill is handed to the caller's own export
---transfer_updated(bill).
---@param spec {out_bill_no: string, ref: string, amount_fen: integer, remark: string, openid: string?}
---@return table bill {out_bill_no, ref, amount_fen, state, final, waiting_for_user, ...}
function exports.transfer(spec)
  local cfg = config()
  return transfer.view(transfer.create(cfg, cfg.transfer, spec))
end

local function owned_bill(no)
  local b = type(no) == "string" and transfer.row(no)
  if not b or b.owner ~= tp.caller() then tp.fail(404, "transfer_not_found", "no such transfer") end
  return b
end

---A bill the caller asked for, with what wx.requestMerchantTransfer needs
---({mchId, appId, package}) while it waits for the user's confirmation.
---@param out_bill_no string
---@return table bill
function exports.transfer_bill(out_bill_no)
  local b = owned_bill(out_bill_no)
  local v = transfer.view(b)
  v.request_merchant_transfer = transfer.confirm_params(config(), b)
  return v
end

---Cancels a bill of the caller's that is not final: at once with the
---simulator (CANCELLED), asked of WeChat Pay otherwise (its notify ends it).
---@param out_bill_no string
---@return table bill as it is now
function exports.cancel_transfer(out_bill_no)
  return transfer.view(transfer.cancel(config(), owned_bill(out_bill_no)))
end

-- ---- WeChat Pay's answers, and the orders whose notify never came

local function decode_reply(r)
  local b = r.body and tp.json.decode(r.body)
  return type(b) == "table" and b or {}
end

local jobs = {}

local PREPAY_REPLIED_SQL = "UPDATE payments_prepays SET state = 'ready', prepay_id = ?, ready_at = ? WHERE order_id = ? "
      .. "AND state = 'asked'"

---The prepay's answer: the prepay_id, or why not.
function jobs.prepay_replied(job)
  local r, id = job.payload, job.payload.context.order_id
  local b = decode_reply(r)
  if r.ok and type(b.prepay_id) == "string" then
    tp.db.exec(PREPAY_REPLIED_SQL, b.prepay_id, tp.now(), id)
  else
    local why = b.code or r.error or ("status " .. r.status)
    tp.log("warn", "WeChat Pay refused a prepay", { order_id = id, status = r.status, error = why })
    tp.db.exec("UPDATE payments_prepays SET state = 'failed', error = ? WHERE order_id = ? AND state = 'asked'",
      why, id)
  end
end

---A refund request's answer: accepted (PROCESSING, or SUCCESS at once), or refused.
function jobs.refund_replied(job)
  local r, no = job.payload, job.payload.context.refund_no
  local b = decode_reply(r)
  if r.ok then
    tp.db.exec("UPDATE payments_refunds SET provider_refund_id = ? WHERE refund_no = ?", b.refund_id, no)
    if b.status == "SUCCESS" then apply_refund({ out_refund_no = no, refund_id = b.refund_id, refund_status = "SUCCESS" }) end
  else
    tp.db.exec("UPDATE payments_refunds SET status = 'FAILED' WHERE refund_no = ? AND status = 'PROCESSING'", no)
    tp.log("error", "WeChat Pay refused a refund; it needs a person", { refund_no = no, status = r.status,
      error = b.code or r.error })
  end
end

---An order query's answer: a SUCCESS the notify never brought pays the order.
function jobs.query_replied(job)
  local r, id = job.payload, job.payload.context.order_id
  if not r.ok then return end  -- 404 ORDER_NOT_EXIST, or no answer: asked again next round
  local t = decode_reply(r)
  if t.trade_state == "SUCCESS" or t.trade_state == "REFUND" then
    t.trade_state = "SUCCESS"
    local result = apply_transaction(t)
    tp.log("info", "an order paid without a notify was reconciled", { order_id = id, outcome = result.outcome })
  elseif t.trade_state == "CLOSED" then
    tp.db.exec("UPDATE payments_prepays SET state = 'closed' WHERE order_id = ?", id)
  end
end

---A transfer's create, query and cancel answers (lib/transfer.lua).
function jobs.transfer_replied(job) transfer.on_created(job.payload) end
function jobs.transfer_queried(job)
  local w = config()
  transfer.on_queried(w, w.transfer, job.payload)
end
function jobs.transfer_cancel_replied(job) transfer.on_cancelled(job.payload) end

---Queries the orders prepaid at least reconcile_after_seconds ago that no
---notify has paid, each at most once per reconcile_every_seconds, and the
---transfers no notify has ended.
function jobs.reconcile()
  if provider() ~= "wechatpay" then return end
  local w = config()
  transfer.reconcile(w, w.transfer)
  local now = tp.now()
  for _, p in ipairs(tp.db.query([[SELECT order_id, out_trade_no FROM payments_prepays
      WHERE state = 'ready' AND ready_at <= ? AND coalesce(checked_at, 0) <= ? ORDER BY ready_at LIMIT 100]],
      now - w.reconcile_after, now - w.reconcile_every)) do
    tp.db.exec("UPDATE payments_prepays SET checked_at = ? WHERE order_id = ?", now, p.order_id)
    wechatpay.ask_query(w, p.order_id, p.out_trade_no)
  end
end

---POST /payments/reconcile: runs the reconcile job now (operators, tests).
local function reconcile_now()
  local w = config()
  if w.provider ~= "wechatpay" then tp.fail(409, "not_wechatpay", "only WeChat Pay orders are reconciled") end
  tp.jobs.schedule("reconcile", nil, { after = 0, key = "reconcile_now" })
  return 202, { scheduled = true }
end

return {
  name = "payments",
  version = "1.3.0",
  description = "WeChat Pay prepay, signed payment notifies, refunds and transfers to users: simulated, or API v3 for real",
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
    -- 1.1.0: WeChat Pay: prepays asked of the provider; a refund's state
    [[
    CREATE TABLE payments_prepays (
      order_id INTEGER PRIMARY KEY,
      out_trade_no TEXT NOT NULL UNIQUE,
      total_fen INTEGER NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('asked', 'ready', 'failed', 'paid', 'closed')),
      prepay_id TEXT,
      error TEXT,
      asked_at INTEGER NOT NULL,
      ready_at INTEGER,
      checked_at INTEGER
    );
    CREATE INDEX payments_prepays_ready ON payments_prepays(state, ready_at);
    ALTER TABLE payments_refunds ADD COLUMN status TEXT NOT NULL DEFAULT 'SUCCESS';
    ]],
    -- 1.2.0: transfers to users (商家转账, lib/transfer.lua)
    [[
    CREATE TABLE payments_transfers (
      out_bill_no TEXT PRIMARY KEY,
      owner TEXT NOT NULL,
      ref TEXT NOT NULL,
      openid TEXT,
      amount_fen INTEGER NOT NULL CHECK (amount_fen >= 1),
      remark TEXT NOT NULL,
      provider TEXT NOT NULL CHECK (provider IN ('simulator', 'wechatpay')),
      state TEXT NOT NULL CHECK (state IN ('ASKED', 'UNKNOWN', 'ACCEPTED', 'PROCESSING', 'WAIT_USER_CONFIRM',
        'TRANSFERING', 'SUCCESS', 'FAIL', 'CANCELING', 'CANCELLED')),
      transfer_bill_no TEXT,
      package_info TEXT,
      fail_reason TEXT,
      error TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      checked_at INTEGER,
      UNIQUE (owner, ref)
    );
    CREATE INDEX payments_transfers_open ON payments_transfers(state, updated_at);
    ]],
    -- 1.3.0: a prepay's state checked with ORs, not IN (...): SQLite evaluates a
    -- CHECK's IN list of three or more values by building a temporary b-tree of
    -- it on every row written, about 30k instructions on each of a payment's
    -- three writes here (asked, ready, paid; `tidepool check` warns of it). A
    -- CHECK cannot change in place, so the table is rebuilt (new, copy, drop,
    -- rename, index). The transfers keep theirs: a transfer is rare beside a
    -- payment.
    [[
    CREATE TABLE payments_prepays_v2 (
      order_id INTEGER PRIMARY KEY,
      out_trade_no TEXT NOT NULL UNIQUE,
      total_fen INTEGER NOT NULL,
      state TEXT NOT NULL CHECK (state = 'asked' OR state = 'ready' OR state = 'failed' OR state = 'paid'
        OR state = 'closed'),
      prepay_id TEXT,
      error TEXT,
      asked_at INTEGER NOT NULL,
      ready_at INTEGER,
      checked_at INTEGER
    );
    INSERT INTO payments_prepays_v2 (order_id, out_trade_no, total_fen, state, prepay_id, error, asked_at,
        ready_at, checked_at)
      SELECT order_id, out_trade_no, total_fen, state, prepay_id, error, asked_at, ready_at, checked_at
      FROM payments_prepays ORDER BY order_id;
    DROP TABLE payments_prepays;
    ALTER TABLE payments_prepays_v2 RENAME TO payments_prepays;
    CREATE INDEX payments_prepays_ready ON payments_prepays(state, ready_at);
    ]],
  },
  jobs = jobs,
  setup = function()
    if provider() ~= "wechatpay" then
      tp.jobs.cancel("reconcile")
      return
    end
    local w = config()  -- a brand switched to WeChat Pay with settings missing fails its load here
    tp.jobs.schedule("reconcile", nil, { after = w.reconcile_every, every = w.reconcile_every, key = "reconcile" })
  end,
  routes = {
    { method = "POST", path = "/payments/notify", auth = "none", handler = notify,
      summary = "WeChat Pay notify: signed callback that marks an order paid",
      headers = { ["Wechatpay-Timestamp"] = { required = true }, ["Wechatpay-Nonce"] = { required = true },
                  ["Wechatpay-Signature"] = { required = true,
                    description = "base64 signature of timestamp\\nnonce\\nbody\\n: SHA256withRSA by WeChat "
                      .. "Pay's key, or HMAC-SHA256 with the simulator's secret" },
                  ["Wechatpay-Serial"] = { description = "which WeChat Pay key signed (required with WeChat Pay)" } },
      body = { type = "object", required = { "event_type", "resource" } },
      response = { type = "object", required = { "code", "message", "outcome" }, properties = {
        code = { type = "string", description = "SUCCESS: WeChat Pay stops retrying" }, message = STR,
        outcome = { type = "string", description = "what the notify did to the order (paid, duplicate, ignored, ...)" } } },
      errors = { [400] = { "invalid_notify", "undecryptable_notify", "unknown_out_trade_no", "amount_mismatch",
                           "invalid_field" },
                 [401] = { "signature_missing", "stale_notify", "unknown_serial", "invalid_signature" },
                 [404] = { "order_not_found", "refund_not_found", "transfer_not_found" },
                 [409] = { "transaction_conflict" }, [503] = { "payments_not_configured" } } },
    { method = "POST", path = "/payments/prepay", handler = prepay,
      summary = "Payment parameters for wx.requestPayment, for my unpaid order",
      description = "With WeChat Pay the first request asks WeChat for a prepay_id and answers 202 "
        .. "(pending); ask again after retry_after seconds for the 200 with request_payment.",
      body = { type = "object", required = { "order_id" }, properties = { order_id = { type = "integer" },
        openid = { type = "string", description = "the payer's openid under the app (WeChat Pay)" } } },
      response = PREPAY, status = { 200, 202 },
      errors = { [400] = { "invalid_field" }, [404] = { "order_not_found" },
                 [409] = { "not_payable", "balance_not_open", "balance_closed" },
                 [502] = { "prepay_failed" }, [503] = { "payments_not_configured" } } },
    { method = "POST", path = "/payments/simulate", auth = "admin", handler = simulate,
      summary = "Simulate the payer: build, sign and apply the notify WeChat would send",
      body = { type = "object", required = { "order_id" }, properties = {
        order_id = { type = "integer" }, amount_fen = { type = "integer" }, transaction_id = { type = "string" },
        stage = { type = "integer", minimum = 1, maximum = 2,
          description = "which payment: 1 the first (the whole order, or a presale's deposit), 2 a presale's "
            .. "balance; default: the one due now" } } },
      response = { type = "object", required = { "notify", "result" }, properties = {
        notify = { type = "object", required = { "headers", "body" }, description = "the notify, to replay with curl",
          properties = { headers = { type = "object", additionalProperties = STR },
                         body = { type = "string", description = "the signed body, as sent" } } },
        result = APPLIED } },
      errors = { [400] = { "invalid_field", "invalid_notify", "amount_mismatch", "no_balance_due" },
                 [404] = { "order_not_found" },
                 [409] = { "transaction_conflict", "not_simulated", "balance_not_open", "balance_closed" },
                 [503] = { "payments_not_configured" } } },
    { method = "POST", path = "/payments/reconcile", auth = "admin", handler = reconcile_now,
      summary = "Query WeChat Pay now for prepaid orders no notify has paid",
      status = 202, response = { type = "object", required = { "scheduled" }, properties = {
        scheduled = { type = "boolean" } } },
      errors = { [409] = { "not_wechatpay" }, [503] = { "payments_not_configured" } } },
    { method = "POST", path = "/payments/transfers/{no:str}/simulate", auth = "admin", handler = simulate_transfer,
      summary = "Simulate WeChat's side of a transfer to a user: move it to a state (SUCCESS, FAIL, CANCELLED, ...)",
      body = { type = "object", required = { "state" }, properties = {
        state = { type = "string", description = "WeChat's bill state, e.g. SUCCESS, FAIL, CANCELLED, TRANSFERING" },
        fail_reason = { type = "string" } } },
      response = TRANSFER,
      errors = { [400] = { "invalid_field", "invalid_body" }, [404] = { "transfer_not_found" },
                 [409] = { "not_simulated" }, [503] = { "payments_not_configured" } } },
    { method = "GET", path = "/payments/transfers", auth = "admin", handler = list_transfers,
      summary = "Transfers to users (商家转账), newest first, with their state", query = { limit = { type = "integer" } },
      response = { type = "object", required = { "items" }, properties = { items = { type = "array", items = {
        type = "object", required = { "out_bill_no", "owner", "ref", "amount_fen", "state", "created_at", "updated_at" },
        properties = { out_bill_no = STR, owner = { type = "string", description = "the plugin that asked for it" },
                       ref = { type = "string", description = "what it pays out, in the owner's words (a withdrawal id)" },
                       amount_fen = FEN, state = TRANSFER_STATE,
                       transfer_bill_no = { type = "string", description = "WeChat's number, once it answered" },
                       fail_reason = STR, created_at = EPOCH, updated_at = EPOCH } } } } },
      errors = { [400] = { "invalid_query" } } },
    { method = "GET", path = "/payments/notifies", auth = "admin", handler = list_notifies,
      summary = "Payment notifies received, newest first", query = { limit = { type = "integer" } },
      response = { type = "object", required = { "items" }, properties = { items = { type = "array", items = {
        type = "object", required = { "transaction_id", "order_id", "amount_fen", "outcome", "received_at" },
        properties = { transaction_id = STR, order_id = INT, amount_fen = FEN, outcome = STR, received_at = EPOCH } } } } },
      errors = { [400] = { "invalid_query" } } },
    { method = "GET", path = "/payments/refunds", auth = "admin", handler = list_refunds,
      summary = "Refunds, newest first, with their state", query = { limit = { type = "integer" } },
      response = { type = "object", required = { "items" }, properties = { items = { type = "array", items = {
        type = "object", required = { "refund_no", "transaction_id", "order_id", "amount_fen", "status",
                                      "created_at" },
        properties = { refund_no = STR, transaction_id = STR, order_id = INT,
                       provider_refund_id = { type = "string", description = "absent until WeChat Pay answers" },
                       status = { type = "string", description = "SUCCESS, PROCESSING (WeChat Pay accepted it), "
                         .. "FAILED, CLOSED or ABNORMAL (these three need a person)" },
                       amount_fen = FEN, created_at = EPOCH } } } } },
      errors = { [400] = { "invalid_query" } } },
  },
  exports = exports,
}
