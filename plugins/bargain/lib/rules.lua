-- A bargain activity's rules: defaults, validation, and the snapshot frozen
-- into every bargain when it starts (so an operator's later PATCH changes only
-- bargains started after it).

local check = require("tp.check")

local rules = {}

rules.STATUSES = { active = true, disabled = true }

---@class BargainRules  the part of an activity a bargain keeps for its whole life
---@field sku string
---@field title string
---@field original_price_fen integer  the price a bargain starts at
---@field floor_price_fen integer     the lowest price the cuts reach
---@field helpers_needed integer      friends' cuts that take the price to the floor
---@field first_cut boolean           the initiator makes one more cut, at start
---@field duration_seconds integer    how long a bargain stays open for cuts
---@field buy_before_floor boolean    may the initiator buy at the current price early
---@field pay_window_seconds integer  time to pay once the floor is reached
---@field helps_per_helper integer    cuts one user may make in the whole activity
---@field new_users_only boolean      only users without a paid order may help

rules.SNAPSHOT_FIELDS = { "sku", "title", "original_price_fen", "floor_price_fen", "helpers_needed",
  "first_cut", "duration_seconds", "buy_before_floor", "pay_window_seconds", "helps_per_helper",
  "new_users_only" }

---Every field an operator may send (PATCH: all but sku).
rules.FIELDS = { sku = true, title = true, original_price_fen = true, floor_price_fen = true,
  helpers_needed = true, first_cut = true, duration_seconds = true, buy_before_floor = true,
  pay_window_seconds = true, helps_per_helper = true, new_users_only = true, starts_at = true,
  ends_at = true, starts_per_user = true, status = true, audience = true }

rules.BOOLEANS = { "first_cut", "buy_before_floor", "new_users_only" }

local MAX_HELPERS = 10000
local MAX_DURATION = 30 * 86400

---The defaults of a new activity; original_price_fen and title come from the catalog.
---@return table
function rules.defaults()
  return { first_cut = false, buy_before_floor = false, pay_window_seconds = 1800,
           helps_per_helper = 1, new_users_only = false, starts_per_user = 1, status = "active",
           duration_seconds = 86400 }
end

---How many cuts a bargain of these rules takes: the friends', and the
---initiator's own first cut if the activity has one.
---@param r BargainRules
---@return integer
function rules.cuts_total(r)
  return r.helpers_needed + (r.first_cut and 1 or 0)
end

---Validates an activity (new, or the current one merged with a patch).
---@param a table
function rules.check(a)
  check.ident(a.sku, "sku", 64)
  check.text(a.title, "title", 100, true)
  check.integer(a.original_price_fen, "original_price_fen", 2)
  check.integer(a.floor_price_fen, "floor_price_fen", 1)
  check.integer(a.helpers_needed, "helpers_needed", 1, MAX_HELPERS)
  for _, field in ipairs(rules.BOOLEANS) do check.boolean(a[field], field, false) end
  check.integer(a.duration_seconds, "duration_seconds", 60, MAX_DURATION)
  -- the orders plugin takes unpaid timeouts of 60 s to a day
  check.integer(a.pay_window_seconds, "pay_window_seconds", 60, 86400)
  check.integer(a.helps_per_helper, "helps_per_helper", 1, 100000)
  check.integer(a.starts_per_user, "starts_per_user", 1, 1000)
  check.epoch(a.starts_at, "starts_at")
  check.epoch(a.ends_at, "ends_at")
  check.enum(a.status, "status", rules.STATUSES)
  if a.ends_at <= a.starts_at then check.field_error("ends_at", "must be after starts_at") end
  if a.floor_price_fen >= a.original_price_fen then
    check.field_error("floor_price_fen", "must be below original_price_fen")
  end
  -- every cut is at least 1 fen, so there must be a fen for every cut
  local cuts = rules.cuts_total(a)
  if a.original_price_fen - a.floor_price_fen < cuts then
    check.field_error("helpers_needed", ("needs original_price_fen - floor_price_fen >= %d "
      .. "(one fen for each of the %d cuts)"):format(cuts, cuts))
  end
end

---The rules a bargain keeps, as JSON.
---@param a table  an activity row (booleans as 0/1 or true/false)
---@return string
function rules.snapshot(a)
  local snap = {}
  for _, field in ipairs(rules.SNAPSHOT_FIELDS) do snap[field] = a[field] end
  for _, field in ipairs(rules.BOOLEANS) do snap[field] = a[field] == true or a[field] == 1 end
  return tp.json.encode(snap)
end

---The rules of a bargain, decoded from its snapshot.
---@param json string
---@return BargainRules
function rules.decode(json)
  return tp.json.decode(json)
end

return rules
