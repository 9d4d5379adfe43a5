-- Bindings (绑定): which distributor a user is bound to. A user opens a share
-- link, the mini-program posts the link's code, and the user is bound to the
-- code's distributor if the brand's binding_mode allows it:
--   unbound     only a user without a current binding is bound;
--   new_users   only a user without a current binding and without a paid
--               order (orders' customer(user).paid_orders == 0);
--   last_touch  every code the user opens rebinds her (last touch wins).
-- A binding lasts binding_seconds (or binding_days) from the moment it was
-- made, or forever. An expired binding is as good as none.
-- A binding that would close a cycle (A -> B -> C -> A, or a user to
-- herself) is refused: the chain of current bindings is always a forest,
-- so walking up from any user ends.
--
-- attribution(user) is what orders stores on an order at creation, so a
-- later rebinding never moves an order already placed.

local customer = require("tp.customer")
local distributors = require("lib.distributors")

local binding = {}

local MAX_CHAIN = 10000  -- far above any real chain; a bound, not a rule

---The user's current (unexpired) binding row, or nil.
---@param user string
---@param now integer
---@return {user: string, referrer: string, bound_at: integer, expires_at: integer|nil}|nil
function binding.current(user, now)
  return tp.db.one([[SELECT user, referrer, code, bound_at, expires_at FROM referral_bindings
    WHERE user = ? AND (expires_at IS NULL OR expires_at > ?)]], user, now)
end

---@param user string|nil
---@param now integer
---@return string|nil
function binding.referrer_of(user, now)
  if user == nil then return nil end
  local b = binding.current(user, now)
  return b and b.referrer
end

---True if binding user to referrer would close a cycle: user is referrer, or
---one of referrer's ancestors through current bindings.
local function closes_cycle(user, referrer, now)
  if user == referrer then return true end
  local hit = tp.db.one([[
    WITH RECURSIVE up(who, depth) AS (
      SELECT ?1, 0
      UNION ALL
      SELECT b.referrer, up.depth + 1 FROM referral_bindings b JOIN up ON b.user = up.who
      WHERE (b.expires_at IS NULL OR b.expires_at > ?3) AND up.depth < ?4)
    SELECT count(*) AS n, max(depth) AS deepest, sum(who = ?2) AS seen FROM up]],
    referrer, user, now, MAX_CHAIN)
  return hit.seen > 0 or hit.deepest >= MAX_CHAIN
end

---True if the user never paid an order, as the orders plugin counts it.
local function new_user(user)
  return customer.is_new(user, 409, "orders_unavailable", "binding_mode new_users needs the orders plugin")
end

---Writes the binding; in every mode but last_touch only over no binding or an
---expired one (the conditional upsert says so, the check before it explains).
---@return boolean written
local function write(user, referrer, code, now, expires_at, mode)
  local changed = tp.db.exec([[
    INSERT INTO referral_bindings (user, referrer, code, bound_at, expires_at)
    VALUES (?1, ?2, ?3, ?4, ?5)
    ON CONFLICT (user) DO UPDATE SET referrer = excluded.referrer, code = excluded.code,
      bound_at = excluded.bound_at, expires_at = excluded.expires_at
    WHERE ?6 = 'last_touch' OR (referral_bindings.expires_at IS NOT NULL
                                AND referral_bindings.expires_at <= ?4)]],
    user, referrer, code, now, expires_at, mode)
  return changed == 1
end

---Binds user to the distributor whose code she opened.
---@param user string
---@param code string
---@param s ReferralSettings
---@return table binding, boolean changed
function binding.bind(user, code, s)
  local d = distributors.by_code(code)
  if not d or d.status ~= "active" then
    tp.fail(404, "code_not_found", "no active distributor has this referral code")
  end
  local now = tp.now()
  local referrer = d.user
  local cur = binding.current(user, now)
  local expires_at = s.binding_seconds and now + s.binding_seconds or nil
  if cur and cur.referrer == referrer then
    if s.binding_mode ~= "last_touch" then return cur, false end
    write(user, referrer, code, now, expires_at, s.binding_mode)  -- a new touch restarts the period
    return binding.current(user, now), false
  end
  if cur and s.binding_mode ~= "last_touch" then
    tp.fail(409, "already_bound", "this user is already bound to another distributor",
      { referrer = cur.referrer, expires_at = cur.expires_at })
  end
  if s.binding_mode == "new_users" and not new_user(user) then
    tp.fail(409, "not_a_new_user", "only users who have never paid an order can be bound")
  end
  if closes_cycle(user, referrer, now) then
    tp.fail(409, "binding_cycle", "this binding would make a referral cycle (or bind a user to herself)",
      { referrer = referrer })
  end
  if not write(user, referrer, code, now, expires_at, s.binding_mode) then
    tp.fail(409, "binding_conflict", "the binding changed; try again")
  end
  tp.db.exec("INSERT INTO referral_bind_log (user, referrer, at) VALUES (?, ?, ?)", user, referrer, now)
  return binding.current(user, now), true
end

---Who an order placed now by user is attributed to: referrer = her current
---binding, referrer2 = the referrer's current binding, guide = the nearest
---active shopping guide among referrer and referrer2, store = that guide's store.
---@param user string
---@return {referrer: string?, referrer2: string?, store: string?, guide: string?}
function binding.attribution(user)
  local now = tp.now()
  local referrer = binding.referrer_of(user, now)
  local referrer2 = binding.referrer_of(referrer, now)
  local a = { referrer = referrer, referrer2 = referrer2 }
  for _, who in ipairs({ referrer, referrer2 }) do
    local d = distributors.active(who)
    if d and d.kind == "guide" then
      a.guide, a.store = d.user, d.store
      break
    end
  end
  return a
end

return binding
