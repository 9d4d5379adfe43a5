---@diagnostic disable: undefined-global
-- promotions: the brand's standing price promotions, which orders' pricing
-- asks at every checkout at list price (pricing.lua step 3), as it asks tiers
-- for member prices. Kinds: tiered 满减 (full_reduction) and 满折
-- (full_discount), by amount or by count; 第N件M折 (nth_discount: 第二件半价);
-- N元任选 (bundle); 限时折扣 (timed_discount) on a set of SKUs. Each has a
-- window (UTC epoch seconds; the admin answers show it in the brand's zone),
-- a scope of SKUs (none: all), a priority and whether it stacks with coupons.
-- How they combine is lib/engine.lua (README "Stacking").
-- Exports: quote (orders), schemas.

---@class PromotionsConfig
---@field item_with_order boolean? an order promotion also counts lines an item promotion took (default true)
---@field with_member_price boolean? lines at a member price take promotions (default true)
---@field with_coupon boolean? a coupon may be used with promotions at all (default true)
---@field max_hints integer? 凑单 hints in a quote (default 3)

local check = require("tp.check")
local schema = require("tp.schema")
local when = require("tp.when")
local engine = require("lib.engine")

local KINDS = { "full_reduction", "full_discount", "nth_discount", "bundle", "timed_discount" }

local TIER = { type = "object", properties = {
  min_fen = { type = "integer", minimum = 1, description = "the tier is reached from this amount (fen) in scope" },
  min_qty = { type = "integer", minimum = 1, description = "or from this many units in scope (one basis per promotion)" },
  off_fen = { type = "integer", minimum = 1, description = "full_reduction: fen off" },
  percent = { type = "integer", minimum = 1, maximum = 99, description = "full_discount: pay this percent" } } }

-- A promotion's fields, declared once (tp.schema): checks, defaults, columns, OpenAPI body.
local FIELDS = schema.new {
  { "name", "text", max = 60, required = true },
  { "kind", "enum", values = KINDS, required = true, fixed = true, doc = "never changes" },
  { "skus", "list", max_items = 200, default = {}, example = "tea-001",
    doc = "the SKUs it covers; none: every SKU (bundle and timed_discount need some)" },
  { "tiers", "custom", schema = { type = "array", minItems = 1, maxItems = 5, items = TIER,
    description = "full_reduction and full_discount: ascending tiers, all by min_fen or all by min_qty" } },
  { "nth", "integer", min = 2, max = 10, nullable = true, doc = "nth_discount: every nth unit of a SKU" },
  { "percent", "integer", min = 1, max = 99, nullable = true,
    doc = "nth_discount, timed_discount: the unit pays this percent (rounded down, at least 1 fen)" },
  { "count", "integer", min = 2, max = 20, nullable = true, doc = "bundle: any count units in scope..." },
  { "price_fen", "integer", min = 1, max = 100000000, nullable = true, doc = "bundle: ...for this price" },
  { "starts_at", "epoch", required = true },
  { "ends_at", "epoch", required = true, doc = "UTC epoch seconds, after starts_at" },
  { "priority", "integer", min = 0, max = 1000, default = 0, doc = "higher first among item promotions; breaks ties" },
  { "stacks_with_coupon", "boolean", default = true, doc = "false: an order it applies to takes no coupon" },
  { "status", "enum", values = { "active", "disabled" }, default = "active" },
}

local USES = { full_reduction = { tiers = true }, full_discount = { tiers = true },
               nth_discount = { nth = true, percent = true }, timed_discount = { percent = true },
               bundle = { count = true, price_fen = true } }

local COLUMNS = "id, " .. FIELDS:columns() .. ", created_at, updated_at"
local save = FIELDS:writer("promotions_promotions", { created_at = ":now", updated_at = ":now" },
  { updated_at = ":now" })

local function config()
  local c = tp.config()
  local function flag(k)
    if c[k] == nil then return true end
    if type(c[k]) ~= "boolean" then error(("promotions config: %s must be true or false"):format(k), 0) end
    return c[k]
  end
  return { item_with_order = flag("item_with_order"), with_member_price = flag("with_member_price"),
           with_coupon = flag("with_coupon"), max_hints = math.tointeger(c.max_hints) or 3 }
end
config()  -- a wrong config fails the load, naming the key

---Reads and checks a tiers list for kind; returns it as plain data.
local function read_tiers(kind, v)
  check.list(v, "tiers", 1, 5)
  local out, basis = {}, nil
  for i, t in ipairs(v) do
    local at = ("tiers[%d]"):format(i)
    if type(t) ~= "table" then check.field_error(at, "must be an object") end
    check.only(t, { min_fen = true, min_qty = true, off_fen = true, percent = true })
    local b = t.min_fen ~= nil and "min_fen" or "min_qty"
    if (t.min_fen == nil) == (t.min_qty == nil) then check.field_error(at, "needs min_fen or min_qty, not both") end
    basis = basis or b
    if b ~= basis then check.field_error(at .. "." .. b, "every tier uses " .. basis) end
    local min = check.integer(t[b], at .. "." .. b, 1, 100000000)
    local row = { [b] = min }
    if kind == "full_reduction" then
      if t.percent ~= nil then check.field_error(at .. ".percent", "full_reduction takes off_fen") end
      row.off_fen = check.integer(t.off_fen, at .. ".off_fen", 1, 100000000)
      if b == "min_fen" and row.off_fen >= min then check.field_error(at .. ".off_fen", "must be below min_fen") end
    else
      if t.off_fen ~= nil then check.field_error(at .. ".off_fen", "full_discount takes percent") end
      row.percent = check.integer(t.percent, at .. ".percent", 1, 99)
    end
    local prev = out[i - 1]
    if prev then
      if min <= prev[b] then check.field_error(at .. "." .. b, "must be above the tier before") end
      if row.off_fen and row.off_fen <= prev.off_fen then check.field_error(at .. ".off_fen", "must be above the tier before") end
      if row.percent and row.percent >= prev.percent then check.field_error(at .. ".percent", "must be below the tier before") end
    end
    out[i] = row
  end
  return out
end

---Checks promotion p (whole, defaults in) by its kind's rules.
local function check_promotion(p)
  FIELDS:check(p)
  local uses = USES[p.kind]
  for _, f in ipairs({ "tiers", "nth", "percent", "count", "price_fen" }) do
    if uses[f] and p[f] == nil then check.field_error(f, "is required for " .. p.kind) end
    if not uses[f] and p[f] ~= nil then check.field_error(f, "is not used by " .. p.kind) end
  end
  if uses.tiers then p.tiers = read_tiers(p.kind, p.tiers) end
  if p.ends_at <= p.starts_at then check.field_error("ends_at", "must be after starts_at") end
  local seen = {}
  for i, sku in ipairs(p.skus) do
    local at = ("skus[%d]"):format(i)
    check.ident(sku, at, 64)
    if seen[sku] then check.field_error(at, "appears twice") end
    seen[sku] = true
    if not tp.call("catalog", "sku", sku) then tp.fail(400, "sku_not_found", "no such sku " .. sku, { sku = sku, field = at }) end
  end
  if (p.kind == "bundle" or p.kind == "timed_discount") and #p.skus == 0 then
    check.field_error("skus", p.kind .. " needs the SKUs it covers")
  end
end

local function shape(row)
  row.skus = tp.json.array(tp.json.decode(row.skus))
  row.tiers = row.tiers and tp.json.decode(row.tiers) or nil
  row.stacks_with_coupon = row.stacks_with_coupon == 1
  row.window_local = { starts = when.format(row.starts_at), ends = when.format(row.ends_at), timezone = tp.timezone() }
  return row
end

local function load(id)
  local row = tp.db.one("SELECT " .. COLUMNS .. " FROM promotions_promotions WHERE id = ?", id)
  return row and shape(row)
end

local function must(id)
  return load(id) or tp.fail(404, "promotion_not_found", "no such promotion")
end

local function store(p)
  local row = {}
  for k, v in pairs(p) do row[k] = v end
  row.skus = tp.json.encode(tp.json.array(p.skus))
  row.tiers = p.tiers and tp.json.encode(p.tiers) or nil
  return save(row)
end

local function create(req)
  local b = check.body(req.body)
  check.only(b, FIELDS.names)
  local p = FIELDS:defaults(b)
  p.tiers = b.tiers
  check_promotion(p)
  return 201, load(store(p))
end

local function patch(req)
  local p = must(req.params.id)
  local b = check.body(req.body)
  check.only(b, FIELDS.names)
  if b.kind ~= nil and b.kind ~= p.kind then check.field_error("kind", "cannot change; create a new promotion") end
  for _, f in ipairs(FIELDS.patchable) do
    if b[f] == tp.json.null then p[f] = nil elseif b[f] ~= nil then p[f] = b[f] end
  end
  if b.tiers ~= nil then p.tiers = b.tiers end
  p.window_local = nil
  check_promotion(p)
  store(p)
  return 200, load(p.id)
end

local function delete(req)
  local p = must(req.params.id)
  tp.db.exec("DELETE FROM promotions_promotions WHERE id = ?", p.id)
  return 200, p
end

local function list_admin(req)
  local limit, after = check.page(req.query, 50, 500)
  local rows = tp.db.query("SELECT " .. COLUMNS .. [[ FROM promotions_promotions
    WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2]], after, limit)
  local items = tp.json.array()
  for i, r in ipairs(rows) do items[i] = shape(r) end
  return 200, { items = items, next_after = #rows == limit and rows[#rows].id or nil }
end

---The promotions running now (active, inside their window).
local function running(now)
  local rows = tp.db.query("SELECT " .. COLUMNS .. [[ FROM promotions_promotions
    WHERE status = 'active' AND starts_at <= ?1 AND ends_at > ?1 ORDER BY id]], now)
  for _, r in ipairs(rows) do shape(r) end
  return rows
end

local function list_public()
  local items = tp.json.array(running(tp.now()))
  return 200, { now = tp.now(), timezone = tp.timezone(), items = items }
end

local exports = {}

---What the running promotions take off an order's lines (orders' pricing step 3).
---lines: [{sku, qty, unit_price_fen, amount_fen, member?}] at their prices after
---the campaign and member price. Returns {discount_fen, lines = [fen per line],
---promotions = [{id, name, kind, discount_fen, lines = [{line, sku, discount_fen}]}],
---stacks_with_coupon, hints = [{promotion_id, name, kind, add_fen|add_qty, off_fen|percent, message}]}.
---@param user string
---@param lines table[]
---@return table
function exports.quote(user, lines)
  check.user(user, "user")
  local cfg = config()
  local q = engine.quote(running(tp.now()), lines, cfg)
  local promos = tp.json.array()
  for i, a in ipairs(q.applied) do
    local p = a.promotion
    promos[i] = { id = p.id, name = p.name, kind = p.kind, discount_fen = a.discount_fen,
                  stacks_with_coupon = p.stacks_with_coupon, lines = tp.json.array(a.lines) }
  end
  return { discount_fen = q.discount_fen, lines = q.line_discount, promotions = promos,
           stacks_with_coupon = cfg.with_coupon and q.stacks_with_coupon or (#promos == 0),
           hints = tp.json.array(q.hints) }
end

local PROMO_BODY = FIELDS:body()
local PROMO_PATCH = FIELDS:body(true)
local PROMO = { type = "object", required = { "id", "name", "kind", "skus", "starts_at", "ends_at", "status" },
  properties = { id = { type = "integer" }, created_at = { type = "integer" }, updated_at = { type = "integer" },
    window_local = { type = "object", properties = { starts = { type = "string" }, ends = { type = "string" },
      timezone = { type = "string" } }, description = "the window in the brand's zone" } } }
for f, prop in pairs(PROMO_BODY.properties) do PROMO.properties[f] = prop end

local ERRORS = { [400] = { "invalid_field", "invalid_body", "sku_not_found" } }
local NOT_FOUND = { [404] = { "promotion_not_found" } }

local ROUTES = {
  { method = "GET", path = "/promotions", auth = "none", handler = list_public,
    summary = "The promotions running now (满减, 满折, 第N件M折, N元任选, 限时折扣)",
    response = { type = "object", required = { "now", "timezone", "items" }, properties = {
      now = { type = "integer" }, timezone = { type = "string" }, items = { type = "array", items = PROMO } } } },
  { method = "POST", path = "/promotions", auth = "admin", handler = create, status = 201,
    summary = "Create a promotion", body = PROMO_BODY, response = PROMO, errors = ERRORS },
  { method = "GET", path = "/promotions", auth = "admin", handler = list_admin, summary = "Every promotion, newest first",
    query = { limit = { type = "integer" }, after = { type = "integer", description = "next_after of the previous page" } },
    response = { type = "object", required = { "items" }, properties = {
      items = { type = "array", items = PROMO }, next_after = { type = "integer" } } },
    errors = { [400] = { "invalid_query" } } },
  { method = "GET", path = "/promotions/{id:int}", auth = "admin", handler = function(req) return 200, must(req.params.id) end,
    summary = "One promotion", response = PROMO, errors = NOT_FOUND },
  { method = "PATCH", path = "/promotions/{id:int}", auth = "admin", handler = patch,
    summary = "Change a promotion (any field but its kind; null clears a kind's field)", body = PROMO_PATCH,
    response = PROMO, errors = { [400] = ERRORS[400], [404] = NOT_FOUND[404] } },
  { method = "DELETE", path = "/promotions/{id:int}", auth = "admin", handler = delete,
    summary = "Delete a promotion (orders keep what it took off)", response = PROMO, errors = NOT_FOUND },
}

---The declared bodies of the routes, for a walk against the served OpenAPI.
function exports.schemas() return schema.document(ROUTES) end

return {
  name = "promotions",
  version = "1.0.0",
  description = "满减, 满折, 第N件M折, N元任选 and 限时折扣, priced into every checkout at list price by orders",
  migrations = {
    [[
    CREATE TABLE promotions_promotions (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      name TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('full_reduction', 'full_discount', 'nth_discount', 'bundle', 'timed_discount')),
      skus TEXT NOT NULL,
      tiers TEXT,
      nth INTEGER, percent INTEGER, count INTEGER, price_fen INTEGER,
      starts_at INTEGER NOT NULL, ends_at INTEGER NOT NULL,
      priority INTEGER NOT NULL DEFAULT 0,
      stacks_with_coupon INTEGER NOT NULL DEFAULT 1,
      status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
      created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
    );
    CREATE INDEX promotions_promotions_running ON promotions_promotions(status, ends_at);
    ]],
  },
  routes = ROUTES,
  exports = exports,
}
