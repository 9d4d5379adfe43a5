-- The points ledger. Every change of a balance is one row of points_entries
-- (signed points, the balance after, its source); points_accounts.balance is
-- the sum of a user's entries, kept as a cache. Points that can be spent sit
-- in lots (points_lots): each grant is a lot with its own expiry, spends take
-- from the lot that expires first (FIFO by expiry, then by age), and
-- points_uses records which lots a spend took, so a return puts the points
-- back where they came from. Invariant: a user's lots hold max(balance, 0).
--
-- points_daily sums the entries per local day (the brand's zone) and kind, in
-- the same statement sequence, so the liability report reads days, not entries.
--
-- A balance goes below zero only through a claw-back when the brand allows it
-- (allow_negative); a later grant pays the debt first.

local ledger = {}

---The user's balance (0 for a user never seen).
---@param user string
---@return integer
function ledger.balance(user)
  local row = tp.db.one("SELECT balance FROM points_accounts WHERE user = ?", user)
  return row and row.balance or 0
end

local post

---Moves the cached balance by delta and writes the entry; returns its id and
---the balance after. `floor` (nil: none) makes the update conditional: the
---balance after must stay >= floor, else nothing is written and nil returned.
---@param user string
---@param kind string an entry kind (points_entries.kind)
---@param delta integer signed, not zero
---@param source string|nil
---@param reason string|nil
---@param floor integer|nil
---@return integer|nil entry_id, integer balance
function ledger.post(user, kind, delta, source, reason, floor)
  local now = tp.now()
  local row
  if floor then
    row = tp.db.one([[UPDATE points_accounts SET balance = balance + ?2, updated_at = ?3
      WHERE user = ?1 AND balance + ?2 >= ?4 RETURNING balance]], user, delta, now, floor)
    if not row then return nil end
  else
    row = tp.db.one([[INSERT INTO points_accounts (user, balance, updated_at) VALUES (?1, ?2, ?3)
      ON CONFLICT (user) DO UPDATE SET balance = balance + ?2, updated_at = ?3
      RETURNING balance]], user, delta, now)
  end
  local _, id = tp.db.exec([[INSERT INTO points_entries (user, kind, points, balance, source, reason,
      created_at) VALUES (?, ?, ?, ?, ?, ?, ?)]], user, kind, delta, row.balance, source, reason, now)
  -- the report's rollup: the entries' sum per local day and kind
  local t = tp.localtime(now)
  tp.db.exec([[INSERT INTO points_daily (day, kind, points, entries) VALUES (?1, ?2, ?3, 1)
    ON CONFLICT (day, kind) DO UPDATE SET points = points + ?3, entries = entries + 1]],
    ("%04d-%02d-%02d"):format(t.year, t.month, t.day), kind, delta)
  return id, row.balance
end

post = ledger.post

---Schedules the expiry sweep for a lot's expiry (one job per instant).
local function schedule_expiry(at)
  if at then tp.jobs.schedule("expire", { at = at }, { at = at, key = "expire:" .. at }) end
end

---Credits n > 0 points as a new lot expiring at expires_at (nil: never).
---A debt (negative balance) is paid first: the lot keeps only what is left.
---@return integer entry_id, integer balance
function ledger.credit(user, kind, n, source, reason, expires_at)
  local before = ledger.balance(user)
  local id, balance = post(user, kind, n, source, reason)
  local keep = math.max(balance, 0) - math.max(before, 0)
  tp.db.exec([[INSERT INTO points_lots (user, points, remaining, entry_id, created_at, expires_at)
    VALUES (?, ?, ?, ?, ?, ?)]], user, n, keep, id, tp.now(), expires_at)
  if keep > 0 then schedule_expiry(expires_at) end
  return id, balance
end

---Takes n points from the user's lots, first to expire first, recording each
---take under entry_id; returns what the lots held of n.
function ledger.take(user, entry_id, n)
  local left = n
  while left > 0 do
    local lot = tp.db.one([[SELECT id, remaining FROM points_lots WHERE user = ? AND remaining > 0
      ORDER BY expires_at IS NULL, expires_at, id LIMIT 1]], user)
    if not lot then break end
    local k = math.min(lot.remaining, left)
    tp.db.exec("UPDATE points_lots SET remaining = remaining - ? WHERE id = ?", k, lot.id)
    tp.db.exec("INSERT INTO points_uses (entry_id, lot_id, points) VALUES (?, ?, ?)", entry_id, lot.id, k)
    left = left - k
  end
  return n - left
end

---Debits n > 0 points. Without `may_owe` the balance must cover them:
---returns nil (nothing written) when it does not. With it the balance may go
---below zero. The check and the debit are one conditional UPDATE.
---@return integer|nil entry_id, integer balance
function ledger.debit(user, kind, n, source, reason, may_owe)
  local id, balance
  if may_owe then
    id, balance = post(user, kind, -n, source, reason)
  else
    id, balance = post(user, kind, -n, source, reason, 0)
    if not id then return nil, ledger.balance(user) end
  end
  ledger.take(user, id, n)
  return id, balance
end

---Puts back up to n points that entry `of` took, into the lots they came
---from (the latest to expire first). Points whose lot has expired meanwhile
---expire again at once (an expire entry follows the return). Returns the
---points returned.
---@return integer returned
function ledger.restore(user, of, n, kind, source, reason)
  if n <= 0 then return 0 end
  local before = ledger.balance(user)
  local id, after = post(user, kind, n, source, reason)
  -- what the lots get back: all of n, less the part that pays a debt
  local budget = math.max(after, 0) - math.max(before, 0)
  local left, now, expired = n, tp.now(), 0
  local uses = tp.db.query([[SELECT u.lot_id, u.points - u.restored AS open, l.expires_at
    FROM points_uses u JOIN points_lots l ON l.id = u.lot_id
    WHERE u.entry_id = ? AND u.points > u.restored
    ORDER BY l.expires_at IS NULL DESC, l.expires_at DESC, l.id DESC]], of)
  for _, u in ipairs(uses) do
    if left == 0 then break end
    local k = math.min(u.open, left)
    tp.db.exec("UPDATE points_uses SET restored = restored + ? WHERE entry_id = ? AND lot_id = ?", k, of, u.lot_id)
    local put = math.min(k, budget)
    if put > 0 then
      if u.expires_at and u.expires_at <= now then
        expired = expired + put
      else
        tp.db.exec("UPDATE points_lots SET remaining = remaining + ? WHERE id = ?", put, u.lot_id)
      end
      budget = budget - put
    end
    left = left - k
  end
  if left > 0 and budget > 0 then  -- taken while in debt (no lot held them): a lot without expiry
    local put = math.min(left, budget)
    tp.db.exec([[INSERT INTO points_lots (user, points, remaining, entry_id, created_at, expires_at)
      VALUES (?, ?, ?, ?, ?, NULL)]], user, put, put, id, now)
  end
  if expired > 0 then post(user, "expire", -expired, source, "returned after its lot expired") end
  return n
end

---Expires every lot due at or before now, at most `limit` lots a call;
---returns how many lots it expired (the caller runs it again while it is
---`limit`). One expire entry per user and run; lots are read in the due
---index's order, so a run costs its `limit` however many lots are due.
---@param limit integer
---@return integer
function ledger.expire_due(limit)
  local now = tp.now()
  local lots = tp.db.query([[SELECT id, user, remaining FROM points_lots
    WHERE expires_at <= ? AND remaining > 0 ORDER BY expires_at, id LIMIT ?]], now, limit)
  local by_user, order = {}, {}
  for _, lot in ipairs(lots) do
    if not by_user[lot.user] then by_user[lot.user] = 0; order[#order + 1] = lot.user end
    by_user[lot.user] = by_user[lot.user] + lot.remaining
    tp.db.exec("UPDATE points_lots SET remaining = 0 WHERE id = ?", lot.id)
  end
  for _, user in ipairs(order) do post(user, "expire", -by_user[user], nil, "lots expired") end
  return #lots
end

return ledger
