-- Merging members (README "Merging members"). When the members plugin proves
-- that two member ids are one person it calls member_merge(from, into,
-- merge_id) inside its own transaction, and member_unmerge with the same
-- arguments when an operator undoes a merge made by hand. Afterwards the
-- plugin behaves as if `into` had done everything `from` did:
--
--   distributor  one record per person. When only `from` has one it becomes
--                `into`'s. When both have one, the stronger status stays
--                (disabled > active > pending > rejected: an operator's
--                sanction sticks to the person, else the one that can earn);
--                on a tie the survivor's. The other record is set aside, and
--                its code stays valid: share links already out bind to the
--                merged person (referral_merged_codes).
--   binding      the person keeps one binding: the survivor's when she is
--                bound now, else `from`'s current one. A binding between the
--                two ids is dropped (nobody is her own referrer). Users bound
--                to `from` are bound to `into`. If that makes a cycle (`into`
--                becomes her own ancestor), `into`'s own binding is dropped:
--                every new cycle passes through `into`, whose binding is the
--                one link they all share.
--   money        ledger entries (commission and reversals), withdrawals and
--                the attributed-order rows move whole: no amount ever
--                changes. The daily cap's counters are summed per day, so
--                the merged person never earns more than the cap in a day.
--   orders       an order keeps the attribution it was created with (the
--                orders plugin never rewrites it); commission on an order
--                that names `from` is paid to `into` (resolve below).
--
-- Every change is recorded in referral_merge_moves (kind, the row, an amount
-- folded, a row set aside as JSON) so member_unmerge moves back exactly that:
-- rows that no longer look as the merge left them (deleted, rebound, moved on
-- by a later merge) are skipped, and what `into` did after the merge stays hers.

local tpmerge = require("tp.merge")

local merge = {}

local MAX_HOPS = 64  -- merges chain one hop each; a bound, not a rule

-- columns holding a member id in tables keyed by an integer: re-keyed as they are
local REKEYED = {
  { "referral_ledger", "id", "beneficiary" },
  { "referral_withdrawals", "id", "user" },
  { "referral_orders", "order_id", "buyer" },
  { "referral_orders", "order_id", "referrer" },
  { "referral_orders", "order_id", "referrer2" },
  { "referral_orders", "order_id", "guide" },
  { "referral_bind_log", "id", "user" },
  { "referral_bind_log", "id", "referrer" },
}

-- stronger first: which distributor record the merged person keeps
local STANDING = { disabled = 4, active = 3, pending = 2, rejected = 1 }

local DISTRIBUTOR_JSON = [[json_object('user', user, 'kind', kind, 'store', store, 'code', code,
  'status', status, 'created_at', created_at, 'decided_at', decided_at)]]
local BINDING_JSON = [[json_object('user', %s, 'referrer', referrer, 'code', code, 'bound_at', bound_at,
  'expires_at', expires_at)]]

---The member id a stored id names now: the survivor of the merges recorded
---here (following a chain), else itself. nil stays nil.
---@param user string|nil
---@return string|nil
function merge.resolve(user)
  for _ = 1, MAX_HOPS do
    if user == nil then return nil end
    local m = tp.db.one([[SELECT into_user FROM referral_merges WHERE from_user = ?
      ORDER BY merge_id DESC LIMIT 1]], user)
    if not m then return user end
    user = m.into_user
  end
  return user
end

---Records one move.
local function note(merge_id, kind, row_key, amount, data)
  tp.db.exec([[INSERT INTO referral_merge_moves (merge_id, kind, row_key, amount, data)
    VALUES (?, ?, ?, ?, ?)]], merge_id, kind, row_key, amount, data)
end

-- ---- distributors

local SET_ASIDE_DISTRIBUTOR_SQL = [[INSERT INTO referral_merge_moves (merge_id, kind, row_key, data)
    SELECT ?1, 'distributor_dropped', user, ]] .. DISTRIBUTOR_JSON .. [[
    FROM referral_distributors WHERE user = ?2]]

---Sets a distributor record aside (recorded as JSON) and keeps its code valid
---for the merged person.
local function set_aside_distributor(merge_id, user, into)
  tp.db.exec(SET_ASIDE_DISTRIBUTOR_SQL, merge_id, user)
  local gone = tp.db.one("DELETE FROM referral_distributors WHERE user = ? RETURNING code", user)
  tp.db.exec("INSERT INTO referral_merged_codes (code, user, merge_id) VALUES (?, ?, ?)", gone.code, into, merge_id)
end

---@return integer records moved or set aside
local function merge_distributors(merge_id, from, into)
  local f = tp.db.one("SELECT status, code FROM referral_distributors WHERE user = ?", from)
  local i = tp.db.one("SELECT status FROM referral_distributors WHERE user = ?", into)
  local n = 0
  if f then
    if i and STANDING[i.status] >= STANDING[f.status] then
      set_aside_distributor(merge_id, from, into)            -- the survivor's record stays
    else
      if i then set_aside_distributor(merge_id, into, into) end
      tp.db.exec("UPDATE referral_distributors SET user = ? WHERE user = ?", into, from)
      note(merge_id, "distributor_moved", f.code)
    end
    n = 1
  end
  -- codes set aside by earlier merges into `from` now name `into`
  tp.db.exec([[INSERT INTO referral_merge_moves (merge_id, kind, row_key)
    SELECT ?1, 'code_alias', code FROM referral_merged_codes WHERE user = ?2]], merge_id, from)
  tp.db.exec("UPDATE referral_merged_codes SET user = ? WHERE user = ?", into, from)
  return n
end

local function unmerge_distributors(merge_id, from, into)
  tp.db.exec("DELETE FROM referral_merged_codes WHERE merge_id = ?", merge_id)
  tp.db.exec([[UPDATE referral_merged_codes SET user = ?3 WHERE user = ?2 AND code IN
    (SELECT row_key FROM referral_merge_moves WHERE merge_id = ?1 AND kind = 'code_alias')]], merge_id, into, from)
  local back = tp.db.exec([[UPDATE referral_distributors SET user = ?3
    WHERE user = ?2 AND code IN (SELECT row_key FROM referral_merge_moves
                                 WHERE merge_id = ?1 AND kind = 'distributor_moved')
      AND NOT EXISTS (SELECT 1 FROM referral_distributors WHERE user = ?3)]], merge_id, into, from)
  back = back + tp.db.exec([[INSERT INTO referral_distributors (user, kind, store, code, status, created_at,
      decided_at)
    SELECT json_extract(data, '$.user'), json_extract(data, '$.kind'), json_extract(data, '$.store'),
      json_extract(data, '$.code'), json_extract(data, '$.status'), json_extract(data, '$.created_at'),
      json_extract(data, '$.decided_at')
    FROM referral_merge_moves WHERE merge_id = ?1 AND kind = 'distributor_dropped'
    ON CONFLICT DO NOTHING]], merge_id)
  return back
end

-- ---- bindings

---Sets aside the binding row of user, recorded under kind with its owner
---before the merge (owner), to be put back on undo.
local function set_aside_binding(merge_id, kind, user, owner)
  local changed = tp.db.exec(([[INSERT INTO referral_merge_moves (merge_id, kind, row_key, data)
    SELECT ?1, ?2, ?4, ]] .. BINDING_JSON .. [[ FROM referral_bindings WHERE user = ?3]]):format("?4"),
    merge_id, kind, user, owner)
  tp.db.exec("DELETE FROM referral_bindings WHERE user = ?", user)
  return changed
end

local function is_current(b, now)
  return b ~= nil and (b.expires_at == nil or b.expires_at > now)
end

---True if into's current bindings lead back to her.
local function into_in_cycle(into, now)
  return tp.db.one([[
    WITH RECURSIVE up(who, depth) AS (
      SELECT referrer, 1 FROM referral_bindings
        WHERE user = ?1 AND (expires_at IS NULL OR expires_at > ?2)
      UNION ALL
      SELECT b.referrer, up.depth + 1 FROM referral_bindings b JOIN up ON b.user = up.who
      WHERE (b.expires_at IS NULL OR b.expires_at > ?2) AND up.who != ?1 AND up.depth < ?3)
    SELECT count(*) AS hits FROM up WHERE who = ?1]], into, now, 10000).hits > 0
end

---@return integer own bindings moved or dropped, integer team bindings re-pointed
local function merge_bindings(merge_id, from, into)
  local now = tp.now()
  local own = 0
  -- a binding between the two ids would make the person her own referrer
  for _, pair in ipairs({ { into, from }, { from, into } }) do
    if tp.db.one("SELECT 1 AS x FROM referral_bindings WHERE user = ? AND referrer = ?", pair[1], pair[2]) then
      own = own + set_aside_binding(merge_id, "binding_self", pair[1], pair[1])
    end
  end
  -- one binding per person: the survivor's while current, else from's current one
  local f = tp.db.one("SELECT referrer, bound_at, expires_at FROM referral_bindings WHERE user = ?", from)
  local i = tp.db.one("SELECT referrer, bound_at, expires_at FROM referral_bindings WHERE user = ?", into)
  local moved = false
  if f then
    if is_current(f, now) and not is_current(i, now) then
      if i then set_aside_binding(merge_id, "binding_lost", into, into) end
      tp.db.exec("UPDATE referral_bindings SET user = ? WHERE user = ?", into, from)
      note(merge_id, "binding_moved", f.referrer, f.bound_at)
      moved = true
    else
      set_aside_binding(merge_id, "binding_lost", from, from)
    end
    own = own + 1
  end
  -- from's team is into's
  tp.db.exec([[INSERT INTO referral_merge_moves (merge_id, kind, row_key)
    SELECT ?1, 'binding_referrer', user FROM referral_bindings WHERE referrer = ?2]], merge_id, from)
  local team = tp.db.exec("UPDATE referral_bindings SET referrer = ? WHERE referrer = ?", into, from)
  -- every new cycle passes through into: dropping her own binding breaks them all
  if into_in_cycle(into, now) then
    set_aside_binding(merge_id, "binding_cycle", into, moved and from or into)
    own = own + (moved and 0 or 1)
  end
  return own, team
end

local function unmerge_bindings(merge_id, from, into)
  local team = tp.db.exec([[UPDATE referral_bindings SET referrer = ?3 WHERE referrer = ?2 AND user IN
    (SELECT row_key FROM referral_merge_moves WHERE merge_id = ?1 AND kind = 'binding_referrer')]],
    merge_id, into, from)
  -- from's binding goes back only as the merge left it (not rebound since)
  local own = tp.db.exec([[UPDATE referral_bindings SET user = ?3
    WHERE user = ?2 AND NOT EXISTS (SELECT 1 FROM referral_bindings WHERE user = ?3)
      AND EXISTS (SELECT 1 FROM referral_merge_moves m WHERE m.merge_id = ?1 AND m.kind = 'binding_moved'
                  AND m.row_key = referral_bindings.referrer AND m.amount = referral_bindings.bound_at)]],
    merge_id, into, from)
  own = own + tp.db.exec([[INSERT INTO referral_bindings (user, referrer, code, bound_at, expires_at)
    SELECT json_extract(data, '$.user'), json_extract(data, '$.referrer'), json_extract(data, '$.code'),
      json_extract(data, '$.bound_at'), json_extract(data, '$.expires_at')
    FROM referral_merge_moves WHERE merge_id = ?1 AND kind IN ('binding_self', 'binding_lost', 'binding_cycle')
    ON CONFLICT DO NOTHING]], merge_id)
  return own, team
end

-- ---- money and history: rows re-keyed whole, the daily counters folded

---@return integer rows re-keyed per table
local function merge_rows(merge_id, from, into)
  local counts = {}
  for _, t in ipairs(REKEYED) do
    local tbl, id, col = t[1], t[2], t[3]
    tp.db.exec(([[INSERT INTO referral_merge_moves (merge_id, kind, row_key)
      SELECT ?1, ?2, %s FROM %s WHERE %s = ?3]]):format(id, tbl, col), merge_id, tbl .. "." .. col, from)
    local n = tp.db.exec(("UPDATE %s SET %s = ?2 WHERE %s = ?1"):format(tbl, col, col), from, into)
    counts[tbl] = (counts[tbl] or 0) + n
  end
  -- a log line that now says "into bound into" is a self-link: set aside
  tp.db.exec([[INSERT INTO referral_merge_moves (merge_id, kind, row_key, amount)
    SELECT ?1, 'bind_log_self', id, at FROM referral_bind_log WHERE user = ?2 AND referrer = ?2
      AND id IN (SELECT row_key FROM referral_merge_moves WHERE merge_id = ?1
                 AND kind IN ('referral_bind_log.user', 'referral_bind_log.referrer'))]], merge_id, into)
  tp.db.exec([[DELETE FROM referral_bind_log WHERE id IN
    (SELECT row_key FROM referral_merge_moves WHERE merge_id = ? AND kind = 'bind_log_self')]], merge_id)
  return counts
end

local function unmerge_rows(merge_id, from, into)
  tp.db.exec([[INSERT INTO referral_bind_log (id, user, referrer, at)
    SELECT row_key, ?2, ?2, amount FROM referral_merge_moves WHERE merge_id = ?1 AND kind = 'bind_log_self'
    ON CONFLICT DO NOTHING]], merge_id, into)
  local counts = {}
  for _, t in ipairs(REKEYED) do
    local tbl, id, col = t[1], t[2], t[3]
    local n = tp.db.exec(([[UPDATE %s SET %s = ?3 WHERE %s = ?2 AND %s IN
      (SELECT row_key FROM referral_merge_moves WHERE merge_id = ?1 AND kind = ?4)]]):format(tbl, col, col, id),
      merge_id, into, from, tbl .. "." .. col)
    counts[tbl] = (counts[tbl] or 0) + n
  end
  return counts
end

---Sums from's daily earnings into into's, day by day; returns the days folded.
local function merge_daily(merge_id, from, into)
  -- data: 'new' when into had no counter that day (undo removes the one it made)
  tp.db.exec([[INSERT INTO referral_merge_moves (merge_id, kind, row_key, amount, data)
    SELECT ?1, 'daily', f.day, f.earned_fen,
      CASE WHEN EXISTS (SELECT 1 FROM referral_daily i WHERE i.user = ?3 AND i.day = f.day)
           THEN 'added' ELSE 'new' END
    FROM referral_daily f WHERE f.user = ?2]], merge_id, from, into)
  tp.db.exec([[INSERT INTO referral_daily (user, day, earned_fen)
    SELECT ?2, day, earned_fen FROM referral_daily WHERE user = ?1
    ON CONFLICT (user, day) DO UPDATE SET earned_fen = earned_fen + excluded.earned_fen]], from, into)
  return tp.db.exec("DELETE FROM referral_daily WHERE user = ?", from)
end

---Subtracts what was folded (never below 0) and gives it back to from.
local function unmerge_daily(merge_id, from, into)
  tp.db.exec([[UPDATE referral_daily AS d SET earned_fen = max(0, d.earned_fen - m.amount)
    FROM referral_merge_moves m
    WHERE m.merge_id = ?1 AND m.kind = 'daily' AND d.user = ?2 AND d.day = m.row_key]], merge_id, into)
  tp.db.exec([[DELETE FROM referral_daily WHERE user = ?2 AND earned_fen = 0 AND day IN
    (SELECT row_key FROM referral_merge_moves WHERE merge_id = ?1 AND kind = 'daily' AND data = 'new')]],
    merge_id, into)
  return tp.db.exec([[INSERT INTO referral_daily (user, day, earned_fen)
    SELECT ?2, row_key, amount FROM referral_merge_moves WHERE merge_id = ?1 AND kind = 'daily'
    ON CONFLICT (user, day) DO UPDATE SET earned_fen = earned_fen + excluded.earned_fen]], merge_id, from)
end

-- ---- the exports

---@class ReferralMoved
---@field distributors integer records moved or set aside
---@field bindings integer the person's own bindings moved or dropped
---@field team integer bindings of others re-pointed to the survivor
---@field ledger integer ledger entries
---@field withdrawals integer
---@field orders integer attributed-order columns re-keyed
---@field bind_log integer bind log columns re-keyed
---@field daily integer days of the daily cap folded

local function counts(distributors, own, team, rows, daily)
  return { distributors = distributors, bindings = own, team = team,
           ledger = rows.referral_ledger or 0, withdrawals = rows.referral_withdrawals or 0,
           orders = rows.referral_orders or 0, bind_log = rows.referral_bind_log or 0, daily = daily }
end

local NOTHING = { distributors = 0, bindings = 0, team = 0, ledger = 0, withdrawals = 0, orders = 0,
                  bind_log = 0, daily = 0 }

---Merges member `from` into `into`; see the top of this file.
---@param from string the younger member id, merged away
---@param into string the surviving member id
---@param merge_id integer unique per merge
---@return ReferralMoved moved
function merge.merge(from, into, merge_id)
  if not tpmerge.begin("referral_merges", from, into, merge_id) then return NOTHING end
  local distributors = merge_distributors(merge_id, from, into)
  local own, team = merge_bindings(merge_id, from, into)
  local rows = merge_rows(merge_id, from, into)
  local daily = merge_daily(merge_id, from, into)
  return counts(distributors, own, team, rows, daily)
end

---Undoes merge merge_id (see the top of this file) and forgets it; an unknown
---merge_id does nothing.
---@param from string
---@param into string
---@param merge_id integer
---@return ReferralMoved moved back
function merge.unmerge(from, into, merge_id)
  if not tpmerge.begin_undo("referral_merges", from, into, merge_id) then return NOTHING end
  local daily = unmerge_daily(merge_id, from, into)
  local rows = unmerge_rows(merge_id, from, into)
  local own, team = unmerge_bindings(merge_id, from, into)
  local distributors = unmerge_distributors(merge_id, from, into)
  tp.db.exec("DELETE FROM referral_merge_moves WHERE merge_id = ?", merge_id)
  return counts(distributors, own, team, rows, daily)
end

return merge
