-- transfer: 商家转账, money paid from the merchant to a user's WeChat balance
-- (the 2025 API, user-confirm mode: POST /v3/fund-app/mch-transfer/transfer-bills).
--
-- Another plugin (referral, for an approved withdrawal) asks for a transfer
-- with the `transfer` export, in its own transaction: the bill is a row of
-- payments_transfers and the call to WeChat Pay is an outbox entry written in
-- that transaction, so a rolled-back approval calls nobody. The out_bill_no is
-- the caller's (derived from what it pays out) and never changes: a retry of
-- the call, a query, or a second create after WeChat said it has no such bill,
-- all carry the same number, so WeChat pays it at most once.
--
-- A bill's state is WeChat's: ACCEPTED, PROCESSING, WAIT_USER_CONFIRM (the
-- user confirms in the mini-program with wx.requestMerchantTransfer and the
-- bill's package_info), TRANSFERING, SUCCESS, FAIL, CANCELING, CANCELLED; and
-- two of ours before WeChat has answered: ASKED (the create is on its way) and
-- UNKNOWN (no definite answer came: the reconcile job queries it). SUCCESS,
-- FAIL and CANCELLED are final. Each change the caller did not make itself is
-- handed to the plugin that asked (its export `transfer_updated(bill)`), in
-- the same transaction: the notify MCHTRANSFER.BILL.FINISHED, a query's
-- answer, a simulated outcome.
--
-- The simulator (provider "simulator") makes a bill waiting for the user at
-- once; POST /admin/{t}/payments/transfers/{no}/simulate drives it to an end.

local check = require("tp.check")

local M = {}

M.FINAL = { SUCCESS = true, FAIL = true, CANCELLED = true }
-- states a query may find a bill in (ours, ASKED and UNKNOWN, are not WeChat's)
M.STATES = { ACCEPTED = true, PROCESSING = true, WAIT_USER_CONFIRM = true, TRANSFERING = true,
             SUCCESS = true, FAIL = true, CANCELING = true, CANCELLED = true }
local WAITING = { WAIT_USER_CONFIRM = true, TRANSFERING = true }

-- WeChat wants the payee's real name (encrypted) from ¥2,000; tidepool keeps no names
M.NAME_REQUIRED_FEN = 200000

-- the report infos each known scene takes (research/wechat.md 5.3); others are passed as given
local SCENE_INFOS = { ["1000"] = { "活动名称", "奖励说明" }, ["1005"] = { "岗位类型", "报酬说明" } }

local function bad(key, why)
  tp.fail(503, "payments_not_configured", ("plugins.payments.wechatpay.transfer.%s %s"):format(key, why))
end

local function text(v, key, max)
  if type(v) ~= "string" or v == "" or not utf8.len(v) or utf8.len(v) > max then
    bad(key, ("must be text of 1 to %d characters"):format(max))
  end
  return v
end

---The transfer settings of a WeChat Pay brand (payments.wechatpay.transfer),
---checked; nil when the brand has none (then no transfer can be made).
---@param w table the checked WeChat Pay settings (wechatpay.settings)
---@param t table|nil the config's wechatpay.transfer
function M.settings(w, t)
  if t == nil then return nil end
  if type(t) ~= "table" then bad("", "must be a table") end
  local known = { scene_id = true, report_infos = true, user_recv_perception = true, notify_url = true,
                  query_after_seconds = true }
  for k in pairs(t) do
    if not known[k] then bad(tostring(k), "is not a known key (scene_id, report_infos, "
      .. "user_recv_perception, notify_url, query_after_seconds)") end
  end
  if type(t.scene_id) ~= "string" or not t.scene_id:match("^%d+$") or #t.scene_id > 16 then
    bad("scene_id", "must be the transfer scene's id as a string of digits, e.g. \"1005\" (佣金报酬)")
  end
  local infos = t.report_infos
  if type(infos) ~= "table" or #infos < 1 or #infos > 10 then
    bad("report_infos", "must be a list of 1 to 10 {info_type, info_content}")
  end
  local out = {}
  for i, info in ipairs(infos) do
    if type(info) ~= "table" then bad(("report_infos[%d]"):format(i), "must be {info_type, info_content}") end
    out[i] = { info_type = text(info.info_type, ("report_infos[%d].info_type"):format(i), 15),
               info_content = text(info.info_content, ("report_infos[%d].info_content"):format(i), 32) }
  end
  local want = SCENE_INFOS[t.scene_id]
  if want then
    local got = {}
    for i, info in ipairs(out) do got[i] = info.info_type end
    if table.concat(got, ",") ~= table.concat(want, ",") then
      bad("report_infos", ("of scene %s must be exactly %s, in this order (got %s)"):format(
        t.scene_id, table.concat(want, ", "), #got > 0 and table.concat(got, ", ") or "none"))
    end
  end
  local notify_url = t.notify_url or w.notify_url
  if type(notify_url) ~= "string" or not notify_url:match("^https://") or notify_url:find("?", 1, true) then
    bad("notify_url", "must be an https URL without a query")
  end
  local after = t.query_after_seconds
  if after ~= nil and (math.type(after) ~= "integer" or after < 0 or after > 86400) then
    bad("query_after_seconds", "must be an integer from 0 to 86400")
  end
  return { scene_id = t.scene_id, report_infos = out, notify_url = notify_url,
           user_recv_perception = t.user_recv_perception ~= nil
             and text(t.user_recv_perception, "user_recv_perception", 32) or nil,
           query_after = after or 300 }
end

local COLUMNS = [[out_bill_no, owner, ref, amount_fen, remark, provider, state, transfer_bill_no,
  package_info, fail_reason, error, created_at, updated_at]]

local ROW_SQL = "SELECT " .. COLUMNS .. " FROM payments_transfers WHERE out_bill_no = ?"

local function row(no)
  return tp.db.one(ROW_SQL, no)
end
M.row = row

---A bill as its owner sees it (no openid, nothing WeChat-internal but its number).
function M.view(b)
  return { out_bill_no = b.out_bill_no, ref = b.ref, amount_fen = b.amount_fen, state = b.state,
           transfer_bill_no = b.transfer_bill_no, fail_reason = b.fail_reason, created_at = b.created_at,
           updated_at = b.updated_at, final = M.FINAL[b.state] == true,
           waiting_for_user = WAITING[b.state] == true and b.package_info ~= nil }
end

-- ---- WeChat Pay's side

local BILLS = "/v3/fund-app/mch-transfer/transfer-bills"

---POST transfer-bills with the bill's number; the answer goes to transfer_replied.
---Every attempt of one create carries the same body (the outbox keeps it).
local function ask_create(w, tr, b, openid)
  tp.http.request {
    to = w.to, path = BILLS,
    json = { appid = w.appid, out_bill_no = b.out_bill_no, transfer_scene_id = tr.scene_id, openid = openid,
             transfer_amount = b.amount_fen, transfer_remark = b.remark, notify_url = tr.notify_url,
             user_recv_perception = tr.user_recv_perception,
             transfer_scene_report_infos = tr.report_infos },
    key = ("transfer-%s-%d"):format(b.out_bill_no, tp.now()), on_reply = "transfer_replied",
    context = { out_bill_no = b.out_bill_no },
  }
end

---GET transfer-bills/out-bill-no/{no}; the answer goes to transfer_queried.
local function ask_query(w, no)
  tp.http.request {
    to = w.to, method = "GET", path = ("%s/out-bill-no/%s"):format(BILLS, no),
    key = ("transfer-query-%s-%d"):format(no, tp.now()), on_reply = "transfer_queried",
    context = { out_bill_no = no }, attempts = 2,
  }
end

-- ---- changes of state

---Hands a changed bill to the plugin that asked for it, unless that plugin is
---the caller (it has the answer already).
local function tell_owner(b)
  if tp.caller() == b.owner then return end
  tp.call(b.owner, "transfer_updated", M.view(b))
end

---Applies what WeChat (a notify, an answer, a query) or the simulator says of a
---bill: {out_bill_no, state, transfer_bill_no?, package_info?, fail_reason?,
---transfer_amount?}. A final bill never changes again; the same state again
---changes nothing. Returns the outcome and the bill.
function M.apply(s)
  local no = check.ident(s.out_bill_no, "out_bill_no", 32)
  local b = row(no)
  if not b then tp.fail(404, "transfer_not_found", "no transfer with this out_bill_no") end
  local state = check.enum(s.state, "state", M.STATES)
  if s.transfer_amount ~= nil and s.transfer_amount ~= b.amount_fen then
    tp.log("warn", "a transfer notify with another amount", { out_bill_no = no, amount_fen = b.amount_fen })
    tp.fail(400, "amount_mismatch", "the transfer's amount differs from the bill's")
  end
  if M.FINAL[b.state] or (b.state == state and (s.package_info == nil or s.package_info == b.package_info)) then
    return "duplicate", b
  end
  tp.db.exec([[UPDATE payments_transfers SET state = ?, transfer_bill_no = coalesce(?, transfer_bill_no),
      package_info = coalesce(?, package_info), fail_reason = coalesce(?, fail_reason), updated_at = ?
    WHERE out_bill_no = ?]], state, s.transfer_bill_no, s.package_info,
    s.fail_reason ~= nil and tostring(s.fail_reason):sub(1, 64) or nil, tp.now(), no)
  b = row(no)
  tell_owner(b)
  if state == "FAIL" then
    tp.log("warn", "a transfer failed; the money goes back", { out_bill_no = no, fail_reason = b.fail_reason })
  end
  return state:lower(), b
end

---The decrypted resource of a MCHTRANSFER.BILL.FINISHED notify (already
---verified and opened by wechatpay.verify/open).
function M.apply_notify(r)
  local outcome = M.apply({ out_bill_no = r.out_bill_no, state = r.state, transfer_bill_no = r.transfer_bill_no,
    fail_reason = r.fail_reason, transfer_amount = r.transfer_amount })
  return { outcome = outcome }
end

-- ---- the export's work

---Makes the bill (once per out_bill_no) and, with WeChat Pay, asks for it.
---@param cfg table the provider's settings (plugin.lua's config())
---@param tr table|nil the transfer settings (M.settings)
---@param spec {out_bill_no: string, ref: string, amount_fen: integer, remark: string, openid: string?}
function M.create(cfg, tr, spec)
  local owner = tp.caller()
  if not owner then tp.fail(400, "invalid_field", "transfer is for other plugins (tp.call)") end
  if type(spec) ~= "table" then check.field_error("spec", "must be a table") end
  local no = spec.out_bill_no
  if type(no) ~= "string" or not no:match("^[%w]+$") or #no > 32 then
    check.field_error("out_bill_no", "must be 1 to 32 letters and digits")
  end
  local ref = check.ident(tostring(spec.ref), "ref", 64)
  local amount = check.integer(spec.amount_fen, "amount_fen", 1)
  local remark = spec.remark
  if type(remark) ~= "string" or remark == "" or (utf8.len(remark) or 99) > 32 then
    check.field_error("remark", "must be text of 1 to 32 characters (WeChat shows it to the user)")
  end
  local b = row(no)
  if b then
    if b.owner ~= owner or b.amount_fen ~= amount then
      tp.fail(409, "transfer_conflict", "this out_bill_no was asked for with other details")
    end
    return b
  end
  local now = tp.now()
  if cfg.provider == "wechatpay" then
    if not tr then
      tp.fail(503, "transfers_not_configured",
        "WeChat Pay transfers need plugins.payments.wechatpay.transfer (scene_id, report_infos)")
    end
    local openid = spec.openid
    if type(openid) ~= "string" or not openid:match("^[%w_%-]+$") or #openid > 128 then
      tp.fail(409, "openid_unknown", "the payee has no mini-program openid (she has not logged in through WeChat)")
    end
    if amount >= M.NAME_REQUIRED_FEN then
      tp.fail(409, "transfer_too_large", ("WeChat needs the payee's real name from %d fen, which tidepool "
        .. "does not keep: pay out less at a time"):format(M.NAME_REQUIRED_FEN),
        { max_fen = M.NAME_REQUIRED_FEN - 1 })
    end
    tp.db.exec([[INSERT INTO payments_transfers (out_bill_no, owner, ref, openid, amount_fen, remark, provider,
        state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'wechatpay', 'ASKED', ?, ?)]],
      no, owner, ref, openid, amount, remark, now, now)
    b = row(no)
    ask_create(cfg, tr, b, openid)
    return b
  end
  tp.db.exec([[INSERT INTO payments_transfers (out_bill_no, owner, ref, amount_fen, remark, provider, state,
      transfer_bill_no, package_info, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, 'simulator', 'WAIT_USER_CONFIRM', ?, ?, ?, ?)]],
    no, owner, ref, amount, remark, "sim" .. no, "sim-package-" .. no, now, now)
  return row(no)
end

---What wx.requestMerchantTransfer needs, while the bill waits for the user.
function M.confirm_params(cfg, b)
  if not (WAITING[b.state] and b.package_info) then return nil end
  return { mchId = cfg.mchid, appId = cfg.appid, package = b.package_info }
end

---Cancels a bill still waiting for the user: at once with the simulator; with
---WeChat Pay the cancel is asked and its answer (CANCELING, then the notify's
---CANCELLED) changes the bill.
function M.cancel(cfg, b)
  if M.FINAL[b.state] then
    tp.fail(409, "not_cancellable", ("the transfer is %s"):format(b.state), { state = b.state })
  end
  if cfg.provider ~= "wechatpay" then
    local _, nb = M.apply({ out_bill_no = b.out_bill_no, state = "CANCELLED", fail_reason = "CANCELLED_BY_MERCHANT" })
    return nb
  end
  tp.http.request {
    to = cfg.to, method = "POST", path = ("%s/out-bill-no/%s/cancel"):format(BILLS, b.out_bill_no),  -- no body
    key = ("transfer-cancel-%s-%d"):format(b.out_bill_no, tp.now()), on_reply = "transfer_cancel_replied",
    context = { out_bill_no = b.out_bill_no },
  }
  return b
end

-- ---- the replies

local function decode(r)
  local d = r.body and tp.json.decode(r.body)
  return type(d) == "table" and d or {}
end

---The create's answer. 200: the bill's state (WAIT_USER_CONFIRM with its
---package_info). Anything else leaves the number as it is: UNKNOWN, and the
---reconcile job's query decides (research: never a new number after an
---unknown answer).
function M.on_created(r)
  local no = r.context.out_bill_no
  local d = decode(r)
  if r.ok and type(d.state) == "string" and M.STATES[d.state] then
    if d.out_bill_no ~= nil and d.out_bill_no ~= no then
      tp.log("error", "WeChat answered a transfer with another out_bill_no", { out_bill_no = no })
      return
    end
    M.apply({ out_bill_no = no, state = d.state, transfer_bill_no = d.transfer_bill_no,
              package_info = d.package_info, fail_reason = d.fail_reason })
    return
  end
  local why = d.code or r.error or ("status " .. tostring(r.status))
  tp.log("warn", "a transfer's create had no definite answer; it will be queried", { out_bill_no = no,
    status = r.status, error = why })
  -- a 4xx (not 429) is WeChat refusing the request: kept, so a query that
  -- finds no bill ends it as FAIL with this code instead of asking again
  local refused = r.status >= 400 and r.status < 500 and r.status ~= 429
  local changed = tp.db.exec([[UPDATE payments_transfers SET state = 'UNKNOWN', error = ?, updated_at = ?
    WHERE out_bill_no = ? AND state = 'ASKED']], refused and why or nil, tp.now(), no)
  if changed > 0 then tell_owner(row(no)) end
end

---A query's answer: the bill's state at WeChat; 404 (no such bill): a create
---that WeChat refused ends as FAIL, one that never arrived is asked again,
---with the same number.
function M.on_queried(cfg, tr, r)
  local no = r.context.out_bill_no
  local b = row(no)
  if not b or M.FINAL[b.state] then return end
  local d = decode(r)
  if r.ok and M.STATES[d.state] then
    M.apply({ out_bill_no = no, state = d.state, transfer_bill_no = d.transfer_bill_no,
              fail_reason = d.fail_reason, transfer_amount = d.transfer_amount })
    return
  end
  if r.status == 404 and b.state == "UNKNOWN" then
    if b.error then
      M.apply({ out_bill_no = no, state = "FAIL", fail_reason = b.error })
    elseif tr then
      local o = tp.db.one("SELECT openid FROM payments_transfers WHERE out_bill_no = ?", no)
      tp.db.exec("UPDATE payments_transfers SET state = 'ASKED', updated_at = ? WHERE out_bill_no = ?",
        tp.now(), no)
      ask_create(cfg, tr, b, o.openid)
      tell_owner(row(no))
    end
  end
end

---A cancel's answer: its state (CANCELING or CANCELLED), or why not.
function M.on_cancelled(r)
  local no = r.context.out_bill_no
  local d = decode(r)
  if r.ok and M.STATES[d.state] then
    M.apply({ out_bill_no = no, state = d.state })
  else
    tp.log("warn", "WeChat refused to cancel a transfer", { out_bill_no = no, status = r.status,
      error = d.code or r.error })
  end
end

---Queries every bill not final whose state has not changed for
---query_after_seconds (and was not queried since): the notify may be lost.
function M.reconcile(cfg, tr)
  if not tr then return end
  local now = tp.now()
  for _, b in ipairs(tp.db.query([[SELECT out_bill_no FROM payments_transfers
      WHERE provider = 'wechatpay' AND state NOT IN ('ASKED', 'SUCCESS', 'FAIL', 'CANCELLED')
        AND updated_at <= ? AND coalesce(checked_at, 0) <= ? ORDER BY updated_at LIMIT 100]],
      now - tr.query_after, now - cfg.reconcile_every)) do
    tp.db.exec("UPDATE payments_transfers SET checked_at = ? WHERE out_bill_no = ?", now, b.out_bill_no)
    ask_query(cfg, b.out_bill_no)
  end
end

return M
