-- A bargain activity's rules: defaults, validation, and the snapshot frozen
-- into every bargain when it starts (so an operator's later PATCH changes only
-- bargains started after it).

local check = require("tp.check")
local schema = require("tp.schema")
local audience = require("tp.audience")

local rules = {}

local MAX_DURATION = 30 * 86400

-- An activity's fields, declared once: the checks (in this order), the
-- defaults, the known fields, what a PATCH may change, the columns and the
-- OpenAPI body all come from here (tp.schema). original_price_fen and title
-- default to the catalog's, filled in by lib/activities.lua.
rules.FIELDS = schema.new {
  { "sku", "ident", max = 64, required = true, fixed = true, doc = "the catalog SKU; never changes" },
  { "title", "text", max = 100, doc = "default: the SKU's title in the catalog" },
  { "original_price_fen", "integer", min = 2,
    doc = "start price (default: the SKU's list price, which it may not exceed)" },
  { "floor_price_fen", "integer", min = 1, required = true,
    doc = "the price after the last cut; below original_price_fen by at least a fen per cut" },
  { "helpers_needed", "integer", min = 1, max = 10000, required = true, doc = "friends' cuts to reach the floor" },
  { "first_cut", "boolean", default = false, doc = "the initiator cuts once at start (one more cut)" },
  { "buy_before_floor", "boolean", default = false, doc = "may the initiator buy at the current price early" },
  { "new_users_only", "boolean", default = false, doc = "only users with no paid order may help" },
  { "duration_seconds", "integer", min = 60, max = MAX_DURATION, default = 86400,
    doc = "how long a bargain stays open for cuts" },
  -- the orders plugin takes unpaid timeouts of 60 s to a day
  { "pay_window_seconds", "integer", min = 60, max = 86400, default = 1800,
    doc = "time to pay once the floor is reached" },
  { "helps_per_helper", "integer", min = 1, max = 100000, default = 1,
    doc = "cuts one user may make in this activity" },
  { "starts_per_user", "integer", min = 1, max = 1000, default = 1,
    doc = "bargains one user may start in this activity" },
  { "starts_at", "epoch", required = true },
  { "ends_at", "epoch", required = true, doc = "UTC epoch seconds, after starts_at" },
  { "status", "enum", values = { "active", "disabled" }, default = "active" },
  { "audience", "custom", schema = audience.schema("may start a bargain (anyone may help one)") },
}

---The fields stored as 0/1.
rules.BOOLEANS = {}
for _, f in ipairs(rules.FIELDS.fields) do
  if f.type == "boolean" then rules.BOOLEANS[#rules.BOOLEANS + 1] = f.name end
end

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
  rules.FIELDS:check(a)
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
