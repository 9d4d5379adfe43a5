-- Balances and withdrawals (提现). A distributor's money:
--   frozen_fen   commission of orders whose refund window has not closed
--   settled_fen  commission (net of reversals) of settled orders
--   withdrawn_fen  approved withdrawals
--   pending_withdrawal_fen  requested, not yet decided
--   available_fen = settled - withdrawn - pending (may be negative after a
--                   refund that came after a withdrawal)
-- A withdrawal is requested for at least min_withdrawal_fen and never more
-- than available_fen; the check and the insert are one conditional
-- statement, and approval checks again (a reversal may have come between).
--
-- Paying it out (商家转账): when the brand's payments plugin makes transfers,
-- approval asks it for one in the same transaction (payments.transfer, with
-- out_bill_no "rw" and the withdrawal's id: one number per withdrawal, so it
-- is paid at most once). The withdrawal stays `approved` (its money held, as
-- withdrawn_fen) while the bill waits for the member's confirmation; the
-- bill's end, handed back through transfer_updated, makes it `paid` (SUCCESS)
-- or `failed` (FAIL, CANCELLED: the money is available again, with the reason).

local check = require("tp.check")

local ledger = {}

-- settled money minus what withdrawals already hold (pending and approved) for
-- :user, leaving out the withdrawal :skip (0: none)
local FREE_SQL = [[
  (SELECT coalesce(sum(amount_fen), 0) FROM referral_ledger WHERE beneficiary = :user AND state = 'settled')
  - (SELECT coalesce(sum(amount_fen), 0) FROM referral_withdrawals
     WHERE user = :user AND status IN ('pending', 'approved', 'paid') AND id != :skip)]]

---@class Balance
---@field frozen_fen integer
---@field settled_fen integer
---@field withdrawn_fen integer
---@field pending_withdrawal_fen integer
---@field available_fen integer

---@param user string
---@return Balance
function ledger.balance(user)
  local l = tp.db.one([[SELECT
      coalesce(sum(CASE WHEN state = 'frozen' THEN amount_fen END), 0) AS frozen_fen,
      coalesce(sum(CASE WHEN state = 'settled' THEN amount_fen END), 0) AS settled_fen
    FROM referral_ledger WHERE beneficiary = ?]], user)
  local w = tp.db.one([[SELECT
      coalesce(sum(CASE WHEN status IN ('approved', 'paid') THEN amount_fen END), 0) AS withdrawn_fen,
      coalesce(sum(CASE WHEN status = 'pending' THEN amount_fen END), 0) AS pending_fen
    FROM referral_withdrawals WHERE user = ?]], user)
  return { frozen_fen = l.frozen_fen, settled_fen = l.settled_fen, withdrawn_fen = w.withdrawn_fen,
           pending_withdrawal_fen = w.pending_fen,
           available_fen = l.settled_fen - w.withdrawn_fen - w.pending_fen }
end

---A page of the user's ledger entries, newest first.
function ledger.entries(user, limit, after)
  local rows = tp.db.query([[SELECT id, order_id, kind, level, refund_no, amount_fen, capped_fen, state,
      created_at, settled_at
    FROM referral_ledger WHERE beneficiary = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3]],
    user, after, limit)
  for _, r in ipairs(rows) do
    if r.refund_no == "" then r.refund_no = nil end
  end
  return { items = rows, next_after = #rows == limit and rows[#rows].id or nil }
end

local W_COLUMNS = "id, user, amount_fen, status, reason, requested_at, decided_at, out_bill_no, "
  .. "transfer_state, fail_reason, finished_at"

---The transfer number of withdrawal id: letters and digits, at most 32 (WeChat's rule).
function ledger.out_bill_no(id) return ("rw%010d"):format(id) end

local WITHDRAWAL_SQL = "SELECT " .. W_COLUMNS .. " FROM referral_withdrawals WHERE id = ?"

local function withdrawal(id)
  return tp.db.one(WITHDRAWAL_SQL, id)
end

local REQUEST_SQL = [[INSERT INTO referral_withdrawals (user, amount_fen, status, requested_at)
    SELECT :user, :amount, 'pending', :now WHERE ]] .. FREE_SQL .. [[ >= :amount RETURNING id]]

---POST /referral/withdrawals {amount_fen}
---@param user string
---@param body table
---@param s ReferralSettings
function ledger.request(user, body, s)
  check.only(body, { amount_fen = true })
  local amount = check.integer(body.amount_fen, "amount_fen", 1)
  if amount < s.min_withdrawal_fen then
    tp.fail(400, "below_minimum", ("a withdrawal is at least %d fen"):format(s.min_withdrawal_fen),
      { min_withdrawal_fen = s.min_withdrawal_fen })
  end
  local row = tp.db.one(REQUEST_SQL, { user = user, amount = amount, now = tp.now(), skip = 0 })
  if not row then
    local available = ledger.balance(user).available_fen
    tp.fail(409, "insufficient_balance", ("only %d fen can be withdrawn"):format(math.max(0, available)),
      { available_fen = available })
  end
  return withdrawal(row.id)
end

local DECIDE_SQL = [[UPDATE referral_withdrawals SET status = 'approved', decided_at = :now,
        reason = :reason
      WHERE id = :skip AND status = 'pending' AND ]] .. FREE_SQL .. [[ >= amount_fen]]

---Approves (to = "approved") or rejects a pending withdrawal. Approval checks
---the balance again: it must still cover this withdrawal.
---@param s ReferralSettings
function ledger.decide(id, to, reason, s)
  local w = withdrawal(id)
  if not w then tp.fail(404, "withdrawal_not_found", "no such withdrawal") end
  if w.status ~= "pending" then
    tp.fail(409, "not_pending", ("this withdrawal is %s"):format(w.status), { status = w.status })
  end
  local changed
  if to == "approved" then
    changed = tp.db.exec(DECIDE_SQL, { user = w.user, skip = id, now = tp.now(), reason = reason })
    if changed == 0 then
      local free = ledger.balance(w.user).available_fen + w.amount_fen
      tp.fail(409, "insufficient_balance",
        ("the settled balance no longer covers this withdrawal (%d fen free)"):format(free),
        { available_fen = free })
    end
    ledger.pay_out(withdrawal(id), s)
    tp.events.emit("referral.withdrawal_approved", { withdrawal = withdrawal(id) })
  else
    changed = tp.db.exec([[UPDATE referral_withdrawals SET status = 'rejected', decided_at = ?, reason = ?
      WHERE id = ? AND status = 'pending']], tp.now(), reason, id)
    if changed == 0 then tp.fail(409, "not_pending", "this withdrawal was decided meanwhile") end
  end
  return withdrawal(id)
end

---Whether the brand's payments plugin pays withdrawals out (it exports transfer).
local function transfers_on()
  return tp.exports("payments", "transfer")
end

---Asks payments to transfer an approved withdrawal to the member, in the
---approval's transaction (an approval rolled back calls nobody). Without a
---payments plugin that transfers, approval is all (paid out by hand).
---@param w table the withdrawal, approved
---@param s ReferralSettings
function ledger.pay_out(w, s)
  if not transfers_on() then return end
  local openid = tp.exports("members", "openid") and tp.call("members", "openid", w.user) or nil
  local bill = tp.call("payments", "transfer", { out_bill_no = ledger.out_bill_no(w.id), ref = tostring(w.id),
    amount_fen = w.amount_fen, remark = s.transfer_remark, openid = openid })
  tp.db.exec("UPDATE referral_withdrawals SET out_bill_no = ?, transfer_state = ? WHERE id = ?",
    bill.out_bill_no, bill.state, w.id)
end

---A transfer's new state (payments calls transfer_updated, or answers a
---cancel): recorded; SUCCESS pays the withdrawal, FAIL and CANCELLED give its
---money back. A withdrawal that is already paid or failed never changes.
---@param bill table payments' view of the bill
---@return table withdrawal
function ledger.transfer_updated(bill)
  local id = math.tointeger(tonumber(bill.ref))
  local w = id and withdrawal(id)
  if not w or w.out_bill_no ~= bill.out_bill_no then
    tp.fail(404, "withdrawal_not_found", "no withdrawal is paid by this transfer")
  end
  if w.status ~= "approved" then return w end
  local now = tp.now()
  if bill.state == "SUCCESS" then
    tp.db.exec([[UPDATE referral_withdrawals SET status = 'paid', transfer_state = ?, finished_at = ?
      WHERE id = ? AND status = 'approved']], bill.state, now, id)
  elseif bill.state == "FAIL" or bill.state == "CANCELLED" then
    tp.db.exec([[UPDATE referral_withdrawals SET status = 'failed', transfer_state = ?, finished_at = ?,
        fail_reason = ? WHERE id = ? AND status = 'approved']], bill.state, now,
      bill.fail_reason or bill.state, id)
    tp.log("info", "a withdrawal's transfer ended without paying; its money is available again",
      { withdrawal = id, state = bill.state })
  else
    tp.db.exec("UPDATE referral_withdrawals SET transfer_state = ? WHERE id = ? AND status = 'approved'",
      bill.state, id)
  end
  w = withdrawal(id)
  if w.status ~= "approved" then
    tp.events.emit("referral.withdrawal_" .. w.status, { withdrawal = w })
  end
  return w
end

---The withdrawal of `user` (nil: any), or 404.
function ledger.get(id, user)
  local w = withdrawal(id)
  if not w or (user and w.user ~= user) then tp.fail(404, "withdrawal_not_found", "no such withdrawal") end
  return w
end

---GET /referral/withdrawals/{id}/transfer: what wx.requestMerchantTransfer
---needs for the member's own withdrawal while its transfer waits for her.
function ledger.confirmation(id, user)
  local w = ledger.get(id, user)
  if not w.out_bill_no then
    tp.fail(409, "no_transfer", "this withdrawal is not paid out through WeChat", { status = w.status })
  end
  local bill = tp.call("payments", "transfer_bill", w.out_bill_no)
  if w.status ~= "approved" or not bill.request_merchant_transfer then
    tp.fail(409, "not_waiting_for_confirmation", ("the transfer is %s"):format(bill.state),
      { status = w.status, transfer_state = bill.state })
  end
  return { withdrawal_id = w.id, amount_fen = w.amount_fen, out_bill_no = w.out_bill_no,
           transfer_state = bill.state, request_merchant_transfer = bill.request_merchant_transfer }
end

---POST /admin/referral/withdrawals/{id}/cancel: cancels its transfer while it
---is not final. With the simulator it ends at once (failed, money back); with
---WeChat Pay it is asked, and the notify ends it.
function ledger.cancel(id)
  local w = ledger.get(id)
  if w.status ~= "approved" or not w.out_bill_no then
    tp.fail(409, "not_cancellable", ("this withdrawal is %s"):format(w.status), { status = w.status })
  end
  local bill = tp.call("payments", "cancel_transfer", w.out_bill_no)
  if bill.final then return 200, ledger.transfer_updated(bill) end
  tp.db.exec("UPDATE referral_withdrawals SET transfer_state = ? WHERE id = ?", bill.state, id)
  return 202, withdrawal(id)
end

local LIST_SQL = "SELECT " .. W_COLUMNS .. [[ FROM referral_withdrawals
    WHERE (?1 IS NULL OR user = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id < ?3)
    ORDER BY id DESC LIMIT ?4]]

function ledger.list(user, status, limit, after)
  local rows = tp.db.query(LIST_SQL, user, status, after, limit)
  return { items = rows, next_after = #rows == limit and rows[#rows].id or nil }
end

return ledger
