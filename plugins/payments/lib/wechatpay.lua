-- wechatpay: the live provider, WeChat Pay API v3 for a mini-program (JSAPI).
--
-- The brand's config holds a destination for it (tenants[i].http.wechatpay):
-- its url (https://api.mch.weixin.qq.com), this plugin in its plugins, the
-- secrets merchant_key (the merchant API private key, PEM) and apiv3_key (the
-- 32-byte APIv3 key), and sign = {scheme = "wechatpay2", key = "merchant_key",
-- mchid, serial}: the host signs every request it sends there with the
-- WECHATPAY2-SHA256-RSA2048 Authorization. This module never sees a key: it
-- names them (tp.crypto.rsa_sign for paySign, aes_gcm_decrypt for a notify's
-- resource) and the host does the crypto.
--
-- Calls out are answered later, to a job: prepay asks for a prepay_id and
-- answers 202 until the reply is in; a refund is accepted (PROCESSING) and
-- settled by its notify; orders whose notify never came are queried by the
-- reconcile job.

local M = {}

local SKEW = 300  -- seconds a notify's timestamp may be away from now

---The provider's settings from the plugin config (payments.wechatpay), checked.
function M.settings(c)
  local w = c.wechatpay
  local function need(v, what)
    if type(v) ~= "string" or v == "" then
      tp.fail(503, "payments_not_configured", ("plugins.payments.%s is required for WeChat Pay"):format(what))
    end
    return v
  end
  if type(w) ~= "table" then need(nil, "wechatpay") end
  return {
    to = w.to or "wechatpay",
    appid = need(c.appid, "appid"), mchid = need(c.mchid, "mchid"),
    merchant_key = w.merchant_key or "merchant_key", apiv3_key = w.apiv3_key or "apiv3_key",
    platform_serial = need(w.platform_serial, "wechatpay.platform_serial"),
    platform_public_key = need(w.platform_public_key, "wechatpay.platform_public_key"),
    notify_url = need(w.notify_url, "wechatpay.notify_url"),
    skew = c.max_clock_skew_seconds or SKEW,
    reconcile_after = w.reconcile_after_seconds or 300,
    reconcile_every = w.reconcile_every_seconds or 60,
  }
end

-- 32 characters of [0-9A-Z], as the docs' examples
local function nonce()
  local t = {}
  for i = 1, 32 do
    local d = tp.random(0, 35)
    t[i] = string.char(d < 10 and 48 + d or 55 + d)
  end
  return table.concat(t)
end

-- RFC 3339 in the tenant's time zone, e.g. 2026-12-06T17:03:00+08:00
local function rfc3339(epoch)
  local t = tp.localtime(epoch)
  local off = t.utc_offset // 60
  return ("%04d-%02d-%02dT%02d:%02d:%02d%s%02d:%02d"):format(t.year, t.month, t.day, t.hour, t.min, t.sec,
    off < 0 and "-" or "+", math.abs(off) // 60, math.abs(off) % 60)
end

-- ---- prepay

---Asks WeChat Pay for a prepay_id for the order (POST /v3/pay/transactions/jsapi);
---the answer goes to the job prepay_replied with context {order_id}.
function M.ask_prepay(w, o, trade_no, openid)
  tp.http.request {
    to = w.to, path = "/v3/pay/transactions/jsapi",
    json = { appid = w.appid, mchid = w.mchid, description = ("order %d"):format(o.id),
             out_trade_no = trade_no, notify_url = w.notify_url,
             time_expire = o.pay_deadline and rfc3339(o.pay_deadline) or nil,
             amount = { total = o.total_fen, currency = "CNY" }, payer = { openid = openid } },
    key = "prepay-" .. trade_no, on_reply = "prepay_replied", context = { order_id = o.id },
  }
end

---What wx.requestPayment needs, paySign by the merchant key (never read here).
function M.request_payment(w, prepay_id)
  local ts, n, package = tostring(tp.now()), nonce(), "prepay_id=" .. prepay_id
  local sign = tp.crypto.rsa_sign(w.to, w.merchant_key,
    w.appid .. "\n" .. ts .. "\n" .. n .. "\n" .. package .. "\n")
  return { appId = w.appid, timeStamp = ts, nonceStr = n, package = package, signType = "RSA", paySign = sign }
end

-- ---- notify

---Verifies a notify's headers over the raw body (timestamp window, the
---platform key's serial, SHA256withRSA); 401 and nothing else otherwise.
function M.verify(w, headers, raw)
  local ts, n, sig, serial = headers["wechatpay-timestamp"], headers["wechatpay-nonce"],
    headers["wechatpay-signature"], headers["wechatpay-serial"]
  if not ts or not n or not sig or not serial or not raw then
    tp.fail(401, "signature_missing",
      "Wechatpay-Timestamp, -Nonce, -Signature, -Serial and a body are required")
  end
  local at = math.tointeger(tonumber(ts))
  if not at or math.abs(tp.now() - at) > w.skew then
    tp.fail(401, "stale_notify", ("the notify's timestamp is more than %d s away"):format(w.skew))
  end
  if serial:upper() ~= w.platform_serial:upper() then
    tp.log("warn", "payment notify signed with an unknown key", { serial = serial })
    tp.fail(401, "unknown_serial", "Wechatpay-Serial names no WeChat Pay key this brand holds")
  end
  -- probes (WECHATPAY/SIGNTEST/...) are not base64 of a signature: they fail here too
  if not tp.crypto.rsa_verify(w.platform_public_key, ts .. "\n" .. n .. "\n" .. raw .. "\n", sig) then
    tp.log("warn", "payment notify with a wrong signature", { nonce = n, timestamp = ts })
    tp.fail(401, "invalid_signature", "the notify's signature does not verify")
  end
end

---The decrypted resource of a verified notify, as a table.
function M.open(w, body)
  local r = type(body) == "table" and body.resource
  if type(r) ~= "table" or r.algorithm ~= "AEAD_AES_256_GCM" or type(r.ciphertext) ~= "string"
      or type(r.nonce) ~= "string" then
    tp.fail(400, "invalid_notify", "the notify must carry an AEAD_AES_256_GCM resource")
  end
  local aad = type(r.associated_data) == "string" and r.associated_data or ""
  local plain, err = tp.crypto.aes_gcm_decrypt(w.to, w.apiv3_key, r.nonce, aad, r.ciphertext)
  if not plain then
    tp.log("warn", "a signed notify whose resource does not decrypt", { id = body.id, error = err })
    tp.fail(400, "undecryptable_notify", "the notify's resource does not decrypt with the APIv3 key")
  end
  local t = tp.json.decode(plain)
  if type(t) ~= "table" then tp.fail(400, "invalid_notify", "the resource is not a JSON object") end
  -- payments and refunds name the merchant `mchid`, a transfer's notify `mch_id`
  if (t.mchid or t.mch_id) ~= w.mchid or (t.appid ~= nil and t.appid ~= w.appid) then
    tp.fail(400, "invalid_notify", "the resource is for another merchant or app")
  end
  return t
end

-- ---- refund and query

---Asks for a refund (POST /v3/refund/domestic/refunds), once per refund number
---(WeChat refunds a repeated out_refund_no once); the answer goes to refund_replied.
function M.ask_refund(w, r)
  tp.http.request {
    to = w.to, path = "/v3/refund/domestic/refunds",
    json = { transaction_id = r.transaction_id, out_refund_no = r.refund_no, notify_url = w.notify_url,
             amount = { refund = r.amount_fen, total = r.total_fen, currency = "CNY" } },
    key = "refund-" .. r.refund_no, on_reply = "refund_replied", context = { refund_no = r.refund_no },
  }
end

---Asks for an order's state (GET /v3/pay/transactions/out-trade-no/{no}?mchid=);
---the answer goes to query_replied.
function M.ask_query(w, order_id, trade_no)
  tp.http.request {
    to = w.to, method = "GET", path = ("/v3/pay/transactions/out-trade-no/%s?mchid=%s"):format(trade_no, w.mchid),
    key = ("query-%s-%d"):format(trade_no, tp.now()), on_reply = "query_replied",
    context = { order_id = order_id }, attempts = 2,
  }
end

return M
