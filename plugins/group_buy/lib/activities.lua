-- Group-buy activities: what the operator configures, its validation, and
-- how it reads from the store.

local check = require("tp.check")
local catalog = require("tp.catalog")
local deadlines = require("lib.deadlines")
local audience = require("tp.audience")
local schema = require("tp.schema")

local activities = {}

---@class GroupBuyActivity
---@field id integer
---@field sku string
---@field title string
---@field group_size integer          members a group needs (2-100)
---@field price_fen integer           what a member pays per unit
---@field leader_price_fen integer?   what the member who opens a group pays per unit
---@field group_ttl_seconds integer   how long a group stays open after it opens
---@field unpaid_timeout_seconds integer  how long a group order may stay unpaid
---@field starts_at integer
---@field ends_at integer
---@field per_user_limit integer      units a user may order in this activity
---@field per_order_limit integer     units in one order
---@field virtual_fill boolean        模拟成团: fill a short group at expiry...
---@field virtual_fill_min_percent integer ...if at least this % of its seats are paid
---@field new_users_only boolean      joiners must never have paid an order
---@field audience string|nil         members only: JSON {segment=} or {tag=} (lib/audience.lua); nil: all
---@field status "active"|"disabled"

-- An activity's fields, declared once: the checks, the defaults, what a PATCH
-- may change, the columns and the OpenAPI body all come from here (tp.schema).
activities.FIELDS = schema.new {
  { "sku", "ident", max = 64, required = true, fixed = true, doc = "the catalog SKU; never changes" },
  { "title", "text", max = 100, doc = "default: the SKU's title in the catalog" },
  { "group_size", "integer", min = 2, max = 100, required = true, doc = "members a group needs" },
  { "price_fen", "integer", min = 1, required = true, doc = "a member's unit price" },
  { "leader_price_fen", "integer", min = 1, nullable = true,
    doc = "the unit price of the member who opens the group (null: price_fen)" },
  { "group_ttl_seconds", "integer", min = 60, max = 30 * 86400, doc = "how long a group stays open",
    default = function() return tp.config().group_ttl_seconds or 86400 end },
  { "unpaid_timeout_seconds", "integer", min = deadlines.MIN_PAY_SECONDS, max = deadlines.MAX_PAY_SECONDS,
    default = function() return tp.config().unpaid_timeout_seconds or 900 end },
  { "starts_at", "epoch", required = true },
  { "ends_at", "epoch", required = true, doc = "UTC epoch seconds, after starts_at" },
  { "per_user_limit", "integer", min = 1, max = 1000, default = 1, doc = "units per user in the activity" },
  { "per_order_limit", "integer", min = 1, max = 1000, default = 1, doc = "at most per_user_limit" },
  { "virtual_fill", "boolean", default = false, doc = "模拟成团: fill a short group at expiry" },
  { "virtual_fill_min_percent", "integer", min = 1, max = 100, default = 100,
    doc = "virtual fill only if at least this % of seats are paid" },
  { "new_users_only", "boolean", default = false, doc = "joiners must never have paid an order" },
  { "status", "enum", values = { "active", "disabled" }, default = "active" },
  { "audience", "custom", nullable = true, schema = audience.schema("may open or join its groups") },
}
local FIELDS = activities.FIELDS.names

activities.COLUMNS = activities.FIELDS:columns("id", { "created_at", "updated_at" })
local write = activities.FIELDS:writer("group_buy_activities", { created_at = ":now", updated_at = ":now" },
  { updated_at = ":now" })

---A row as the store holds it (flags as 0/1) into a GroupBuyActivity.
local function from_row(row)
  row.virtual_fill = row.virtual_fill == 1
  row.new_users_only = row.new_users_only == 1
  return row
end

-- built once: a statement made at every call is a new long string, which Lua
-- hashes and compares in full to find its prepared statement
local LOAD_SQL = "SELECT " .. activities.COLUMNS .. " FROM group_buy_activities WHERE id = ?"

---@param id integer
---@return GroupBuyActivity|nil
function activities.load(id)
  local row = tp.db.one(LOAD_SQL, id)
  return row and from_row(row) or nil
end

---The activity for a user's order, or 404 (a disabled one is as absent as a missing one).
---@param id integer
---@return GroupBuyActivity
function activities.active(id)
  local a = activities.load(id)
  if not a or a.status ~= "active" then
    tp.fail(404, "activity_not_found", "no such group buy")
  end
  return a
end

---"not_started", "running" or "ended" at now.
function activities.phase(a, now)
  if now < a.starts_at then return "not_started" end
  if now >= a.ends_at then return "ended" end
  return "running"
end

---The activity as routes show it, with its phase and how many groups formed.
---@param a GroupBuyActivity
---@param now integer
function activities.shape(a, now)
  a.phase = a.status == "active" and activities.phase(a, now) or "disabled"
  a.audience = audience.show(a.audience)
  local counts = tp.db.query([[SELECT state, count(*) AS n FROM group_buy_groups
    WHERE activity_id = ? GROUP BY state]], a.id)
  local groups = tp.json.object()
  for _, c in ipairs(counts) do groups[c.state] = c.n end
  a.groups = groups
  return a
end

-- ---- the operator's input

---Checks an activity (a new one, or the current one merged with a patch).
---@param a table
function activities.validate(a)
  activities.FIELDS:check(a)
  if a.ends_at <= a.starts_at then check.field_error("ends_at", "must be after starts_at") end
  if a.per_order_limit > a.per_user_limit then
    check.field_error("per_order_limit", "cannot exceed per_user_limit")
  end
end

---The SKU must exist and neither price may pass its list price.
---@param a table
---@return table sku the catalog's SKU
function activities.check_sku(a)
  local sku = catalog.sku(a.sku)
  catalog.check_prices(sku, { { "price_fen", a.price_fen }, { "leader_price_fen", a.leader_price_fen } })
  return sku
end

---A new activity from a request body, with the defaults filled in.
---@param b table
---@return table
function activities.from_body(b)
  check.only(b, FIELDS)
  local a = activities.FIELDS:defaults(b)
  a.audience = audience.read(b.audience)
  return a
end

---The current activity merged with a patch (every field but the SKU).
---@param a GroupBuyActivity
---@param b table
---@return table
function activities.merge(a, b)
  check.only(b, FIELDS)
  if b.sku ~= nil and b.sku ~= a.sku then check.field_error("sku", "cannot change; create a new activity") end
  for field in pairs(FIELDS) do
    -- a null clears a nullable field (the leader price); the audience is read below
    if b[field] == tp.json.null and not activities.FIELDS.by_name[field].nullable then
      check.field_error(field, "cannot be null")
    end
    if b[field] ~= nil and field ~= "audience" then a[field] = check.present(b[field]) end
  end
  -- absent keeps the audience, null clears it (everyone again); one kept is
  -- not checked again, so an activity whose segment went can still be changed
  if b.audience ~= nil then a.audience = audience.read(b.audience) end
  return a
end

---Creates an activity from a create body; returns its id. POST /group-buys
---and a campaign's first apply of an item.
---@param b table
---@return integer
function activities.create(b)
  local a = activities.from_body(b)
  activities.validate(a)
  local sku = activities.check_sku(a)
  a.title = a.title or sku.title
  return activities.save(a)
end

---Changes activity a by b: a PATCH body (what it leaves out stays) or, with
---whole, a create body (what it leaves out takes its default, as on create: a
---campaign applying its item again). Never the SKU. PATCH /group-buys/{id}
---and a campaign's later applies.
---@param a GroupBuyActivity
---@param b table
---@param whole boolean?
function activities.change(a, b, whole)
  if whole then
    if b.sku ~= nil and b.sku ~= a.sku then check.field_error("sku", "cannot change; create a new activity") end
    local id, sku = a.id, a.sku
    a = activities.from_body(b)
    a.id, a.sku = id, sku
  else
    a = activities.merge(a, b)
  end
  activities.validate(a)
  local sku = activities.check_sku(a)
  a.title = a.title or sku.title
  activities.save(a)
end

---What a campaign item may set: the create body but status, which apply and
---withdraw own.
activities.SETTINGS = {}
for field in pairs(FIELDS) do activities.SETTINGS[field] = field ~= "status" or nil end

---Writes the activity; returns its id.
---@param a table
---@return integer
function activities.save(a)
  local row = {}
  for field in pairs(FIELDS) do row[field] = a[field] end
  row.id = a.id
  return write(row)
end

return activities
