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

local check = require("tp.check")

local ledger = {}

-- settled money minus what withdrawals already hold (pending and approved) for
-- :user, leaving out the withdrawal :skip (0: none)
local FREE_SQL = [[
  (SELECT coalesce(sum(amount_fen), 0) FROM referral_ledger WHERE beneficiary = :user AND state = 'settled')
  - (SELECT coalesce(sum(amount_fen), 0) FROM referral_withdrawals
     WHERE user = :user AND status IN ('pending', 'approved') AND id != :skip)]]

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
      coalesce(sum(CASE WHEN status = 'approved' THEN amount_fen END), 0) AS withdrawn_fen,
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

local W_COLUMNS = "id, user, amount_fen, status, reason, requested_at, decided_at"

local function withdrawal(id)
  return tp.db.one("SELECT " .. W_COLUMNS .. " FROM referral_withdrawals WHERE id = ?", id)
end

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
  local row = tp.db.one([[INSERT INTO referral_withdrawals (user, amount_fen, status, requested_at)
    SELECT :user, :amount, 'pending', :now WHERE ]] .. FREE_SQL .. [[ >= :amount RETURNING id]],
    { user = user, amount = amount, now = tp.now(), skip = 0 })
  if not row then
    local available = ledger.balance(user).available_fen
    tp.fail(409, "insufficient_balance", ("only %d fen can be withdrawn"):format(math.max(0, available)),
      { available_fen = available })
  end
  return withdrawal(row.id)
end

---Approves (to = "approved") or rejects a pending withdrawal. Approval checks
---the balance again: it must still cover this withdrawal.
function ledger.decide(id, to, reason)
  local w = withdrawal(id)
  if not w then tp.fail(404, "withdrawal_not_found", "no such withdrawal") end
  if w.status ~= "pending" then
    tp.fail(409, "not_pending", ("this withdrawal is %s"):format(w.status), { status = w.status })
  end
  local changed
  if to == "approved" then
    changed = tp.db.exec([[UPDATE referral_withdrawals SET status = 'approved', decided_at = :now,
        reason = :reason
      WHERE id = :skip AND status = 'pending' AND ]] .. FREE_SQL .. [[ >= amount_fen]],
      { user = w.user, skip = id, now = tp.now(), reason = reason })
    if changed == 0 then
      local free = ledger.balance(w.user).available_fen + w.amount_fen
      tp.fail(409, "insufficient_balance",
        ("the settled balance no longer covers this withdrawal (%d fen free)"):format(free),
        { available_fen = free })
    end
    tp.events.emit("referral.withdrawal_approved", { withdrawal = withdrawal(id) })
  else
    changed = tp.db.exec([[UPDATE referral_withdrawals SET status = 'rejected', decided_at = ?, reason = ?
      WHERE id = ? AND status = 'pending']], tp.now(), reason, id)
    if changed == 0 then tp.fail(409, "not_pending", "this withdrawal was decided meanwhile") end
  end
  return withdrawal(id)
end

function ledger.list(user, status, limit, after)
  local rows = tp.db.query("SELECT " .. W_COLUMNS .. [[ FROM referral_withdrawals
    WHERE (?1 IS NULL OR user = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id < ?3)
    ORDER BY id DESC LIMIT ?4]], user, status, after, limit)
  return { items = rows, next_after = #rows == limit and rows[#rows].id or nil }
end

return ledger
