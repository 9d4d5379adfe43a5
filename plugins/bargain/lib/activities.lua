-- Bargain activities (砍价活动) as the operator writes them: create, patch,
-- read. A PATCH changes the activity only; bargains already started keep the
-- rules frozen into them (lib/rules.lua snapshot). The audience of a
-- member-only activity (lib/audience.lua) governs starting only, so it is not
-- frozen into the bargains.

local check = require("tp.check")
local catalog = require("tp.catalog")
local rules = require("lib.rules")
local audience = require("tp.audience")

local activities = {}

local COLUMNS = rules.FIELDS:columns("id", { "created_at", "updated_at" })
---Writes an activity (INSERT, or UPDATE when it has an id); its id.
local save = rules.FIELDS:writer("bargain_activities", { created_at = ":now", updated_at = ":now" },
  { updated_at = ":now" })

-- built once: a statement made at every call is a new long string, which Lua
-- hashes and compares in full to find its prepared statement
local LOAD_SQL = "SELECT " .. COLUMNS .. " FROM bargain_activities WHERE id = ?"

---@param id integer
---@return table|nil the row (booleans as 0/1)
function activities.load(id)
  return tp.db.one(LOAD_SQL, id)
end

---Where now falls in the activity's window.
local function window_state(a, now)
  if a.status ~= "active" then return "disabled" end
  if now < a.starts_at then return "not_started" end
  if now >= a.ends_at then return "ended" end
  return "open"
end

---The activity as JSON: booleans as booleans, its state at now.
---@param row table
---@param now integer
---@return table
function activities.shape(row, now)
  for _, field in ipairs(rules.BOOLEANS) do row[field] = row[field] == 1 end
  row.state = window_state(row, now)
  row.audience = audience.show(row.audience)
  return row
end

---The operator's view adds how its bargains stand.
local function with_stats(row, now)
  local a = activities.shape(row, now)
  local by_state = tp.json.object()
  for _, s in ipairs(tp.db.query([[SELECT state, count(*) AS n FROM bargain_bargains
      WHERE activity_id = ? GROUP BY state]], a.id)) do
    by_state[s.state] = s.n
  end
  local helps = tp.db.one([[SELECT count(*) AS n, coalesce(sum(h.cut_fen), 0) AS fen
    FROM bargain_helps h JOIN bargain_bargains b ON b.id = h.bargain_id WHERE b.activity_id = ?]], a.id)
  a.stats = { bargains = by_state, helps = helps.n, cut_fen = helps.fen }
  return a
end

---The catalog's SKU; the bargain never starts above its list price.
local function check_sku(a)
  local sku = catalog.sku(a.sku)
  catalog.check_prices(sku, { { "original_price_fen", a.original_price_fen } })
  return sku
end

---JSON nulls count as absent; unknown fields are refused. The audience is
---read (checked) here, where a null still means "everyone": out.audience is
---nil when the body leaves it out, false when it clears it, else the column.
local function read_body(body)
  check.body(body, true)
  check.only(body, rules.FIELDS.names)
  local out = {}
  for k, v in pairs(body) do out[k] = check.present(v) end
  if body.audience ~= nil then out.audience = audience.read(body.audience) or false end
  return out
end

---Fills what a whole activity leaves out from the catalog (the list price as
---original_price_fen, the SKU's title), checks it and writes it; returns its id.
local function finish(a)
  a.audience = a.audience or nil  -- false: everyone
  check.ident(a.sku, "sku", 64)
  local sku = catalog.sku(a.sku)
  a.original_price_fen = a.original_price_fen or sku.price_fen
  a.title = a.title or sku.title
  rules.check(a)
  check_sku(a)
  return save(a)
end

---A whole activity from a body: the defaults, then what the body says.
local function whole(b)
  local a = rules.FIELDS:defaults(b)
  a.audience = b.audience
  return a
end

---Creates an activity from a create body; returns its id. POST
---/bargain/activities and a campaign's first apply of an item.
---@param body table
---@return integer
function activities.create_from(body)
  return finish(whole(read_body(body)))
end

---Changes activity a (its row) by body: a PATCH body (what it leaves out
---stays) or, with replace, a create body (what it leaves out takes its default,
---as on create: a campaign applying its item again). Never the SKU; bargains in
---progress keep their own rules. PATCH /bargain/activities/{id} and a
---campaign's later applies.
---@param a table
---@param body table
---@param replace boolean?
function activities.change(a, body, replace)
  local b = read_body(body)
  if b.sku ~= nil and b.sku ~= a.sku then check.field_error("sku", "cannot change; create a new activity") end
  if replace then
    local id, sku = a.id, a.sku
    a = whole(b)
    a.id, a.sku = id, sku
    finish(a)
    return
  end
  for _, field in ipairs(rules.BOOLEANS) do a[field] = a[field] == 1 end
  for k, v in pairs(b) do a[k] = v end
  a.audience = a.audience or nil  -- false: everyone again; one kept is not checked again
  rules.check(a)
  check_sku(a)
  save(a)
end

---POST /bargain/activities
function activities.create(req)
  local id = activities.create_from(req.body)
  return 201, with_stats(activities.load(id), tp.now())
end

---PATCH /bargain/activities/{id}: any field but the SKU; bargains in progress
---keep their own rules.
function activities.update(req)
  check.body(req.body, true)
  local a = activities.load(req.params.id)
  if not a then tp.fail(404, "activity_not_found", "no such bargain activity") end
  activities.change(a, req.body)
  return 200, with_stats(activities.load(a.id), tp.now())
end

local LIST_ADMIN_SQL = "SELECT " .. COLUMNS .. [[ FROM bargain_activities
    WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2]]

function activities.list_admin(req)
  local limit, after = check.page(req.query, 50, 500)
  local rows = tp.db.query(LIST_ADMIN_SQL, after, limit)
  local now = tp.now()
  for i, row in ipairs(rows) do rows[i] = with_stats(row, now) end
  return 200, { items = tp.json.array(rows), next_after = #rows == limit and rows[#rows].id or nil }
end

function activities.get_admin(req)
  local row = activities.load(req.params.id)
  if not row then tp.fail(404, "activity_not_found", "no such bargain activity") end
  return 200, with_stats(row, tp.now())
end

local LIST_PUBLIC_SQL = "SELECT " .. COLUMNS .. [[ FROM bargain_activities
    WHERE status = 'active' AND ends_at > ? ORDER BY starts_at, id LIMIT 200]]

---GET /bargain/activities: the active ones not yet ended.
function activities.list_public()
  local now = tp.now()
  local rows = tp.db.query(LIST_PUBLIC_SQL, now)
  for i, row in ipairs(rows) do rows[i] = activities.shape(row, now) end
  return 200, { now = now, items = tp.json.array(rows) }
end

function activities.get_public(req)
  local row = activities.load(req.params.id)
  if not row or row.status ~= "active" then tp.fail(404, "activity_not_found", "no such bargain activity") end
  return 200, activities.shape(row, tp.now())
end

return activities
