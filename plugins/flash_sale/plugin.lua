---@diagnostic disable: undefined-global
-- flash_sale (秒杀): a SKU sold at a price, in a quantity of its own, inside a
-- window and optionally daily slots (场次) read in the brand's time zone, with
-- per-user and per-order limits. A buy is one transaction: the limit check,
-- the sale's quantity, the catalog's stock (both reserved together, by the
-- orders plugin) and the order row. An unpaid order cancelled later returns
-- its units to the sale (release_order), and a payment after that cancel
-- takes them again if it still can (reclaim_order). A campaign script runs
-- sales through campaign_apply / campaign_withdraw (README "Campaigns"). When
-- two member ids prove to be one person, member_merge folds the younger one's
-- counts into the survivor's (lib/merge.lua, README "Merging members"). A
-- sale may be for members only: one segment or tag of the members plugin,
-- checked when a user buys (lib/audience.lua, README "Member-only sales").

---@class FlashSaleConfig
---@field unpaid_timeout_seconds integer? default unpaid timeout of a sale's orders (300)

local check = require("tp.check")
local catalog = require("tp.catalog")
local orders = require("tp.orders")
local money = require("tp.money")
local window = require("lib.window")
local audience = require("tp.audience")
local merge = require("lib.merge")
local campaign_items = require("tp.campaign_items")
local schema = require("tp.schema")
local risk = require("tp.risk")

-- A sale's fields, declared once: the checks, the defaults, what a PATCH may
-- change, the columns and the OpenAPI body all come from here (tp.schema).
local SALE_FIELDS = schema.new {
  { "sku", "ident", max = 64, required = true, fixed = true, doc = "the catalog SKU; never changes" },
  { "title", "text", max = 100, doc = "default: the SKU's title in the catalog" },
  { "price_fen", "integer", min = 1, required = true, doc = "at most the SKU's list price" },
  { "quantity", "integer", min = 1, max = 10000000, required = true,
    doc = "units the sale offers; the catalog must have them" },
  { "per_user_limit", "integer", min = 1, max = 1000, default = 1 },
  { "per_order_limit", "integer", min = 1, max = 1000, default = 1, doc = "at most per_user_limit" },
  { "starts_at", "integer", min = 0, required = true, doc = "UTC epoch seconds" },
  { "ends_at", "integer", min = 0, required = true, doc = "UTC epoch seconds, after starts_at" },
  { "slots", "list", max_items = 24, default = {}, example = "10:00-12:00",
    doc = "daily \"HH:MM-HH:MM\" slots in the tenant's time zone, not overlapping; none: the whole window" },
  { "unpaid_timeout_seconds", "integer", min = 60, max = 86400,
    default = function() return tp.config().unpaid_timeout_seconds or 300 end },
  { "stacks_with_coupon", "boolean", default = false },
  { "requires_reservation", "boolean", default = false,
    doc = "only members who reserved (预约, POST /flash-sales/{id}/reserve) before starts_at may buy" },
  { "status", "enum", values = { "active", "disabled" }, default = "active" },
  { "audience", "custom", schema = audience.schema("may buy it") },
}

-- which sale each campaign item made (tp.campaign_items; "campaigns" below)
local items = campaign_items.of("flash_sale_campaign_items", "sale_id")

local SALE_COLUMNS = SALE_FIELDS:columns("id", { "remaining", "created_at", "updated_at" })
local write_sale = SALE_FIELDS:writer("flash_sale_sales",
  { remaining = ":quantity", created_at = ":now", updated_at = ":now" },
  { remaining = ":remaining", updated_at = ":now" })

---@class FlashSale
---@field id integer
---@field sku string
---@field price_fen integer
---@field quantity integer    units the sale offers in all
---@field remaining integer   units not yet reserved by an order
---@field per_user_limit integer
---@field per_order_limit integer
---@field starts_at integer   UTC epoch seconds
---@field ends_at integer
---@field slots string[]      daily "HH:MM-HH:MM" in the tenant's zone; empty: the whole window
---@field audience string|nil  members only: the JSON of {segment=} or {tag=} (lib/audience.lua); nil: everyone

local function shape(row, now)
  row.slots = tp.json.array(tp.json.decode(row.slots))
  row.stacks_with_coupon = row.stacks_with_coupon == 1
  row.requires_reservation = row.requires_reservation == 1
  row.sold = row.quantity - row.remaining
  row.audience = audience.show(row.audience)
  local state, opens_at = window.state(row, now)
  if row.status ~= "active" then state = "disabled" end
  row.state, row.opens_at = state, opens_at
  return row
end

-- built once: a statement's text made at every call is a new long string,
-- copied, hashed and compared in full to find its prepared statement
local LOAD_SQL = "SELECT " .. SALE_COLUMNS .. " FROM flash_sale_sales WHERE id = ?"

local function load(id)
  return tp.db.one(LOAD_SQL, id)
end

-- ---- buying

local function sale_error(code, message, details)
  tp.fail(409, code, message, details)
end

---The checks that write nothing: a sold-out sale costs one read.
local function open_sale(id, qty)
  local sale = load(id)
  if not sale or sale.status ~= "active" then tp.fail(404, "sale_not_found", "no such flash sale") end
  if sale.remaining == 0 then sale_error("sold_out", "this flash sale is sold out") end
  sale.slots = tp.json.decode(sale.slots)
  local state, opens_at = window.state(sale, tp.now())
  if state == "not_started" then
    sale_error("not_started", "this flash sale has not started", { opens_at = opens_at })
  elseif state == "ended" then
    sale_error("ended", "this flash sale has ended")
  end
  if qty > sale.per_order_limit then
    sale_error("order_limit_exceeded", ("at most %d per order"):format(sale.per_order_limit),
      { per_order_limit = sale.per_order_limit })
  end
  return sale
end

---Adds qty to what user bought from the sale, unless that would pass limit.
---@return boolean
local function add_bought(sale_id, user, qty, limit)
  -- an upsert whose update is refused changes no row (no RETURNING: it costs
  -- SQLite an ephemeral table per statement)
  return qty <= limit and tp.db.exec([[
    INSERT INTO flash_sale_buyers (sale_id, user, bought) VALUES (?1, ?2, ?3)
    ON CONFLICT (sale_id, user) DO UPDATE SET bought = bought + ?3 WHERE bought + ?3 <= ?4]],
    sale_id, user, qty, limit) == 1
end

local function remove_bought(sale_id, user, qty)
  tp.db.exec([[UPDATE flash_sale_buyers SET bought = max(0, bought - ?) WHERE sale_id = ? AND user = ?]],
    qty, sale_id, user)
end

---A member-only sale admits only its segment's or tag's members, judged now;
---403 members_only for anyone else.
local function check_audience(sale, user)
  audience.admit(sale.audience, user, "flash sale")
end

---A sale that requires reservations (预约) sells only to members who reserved
---before it started: 403 reservation_required for anyone else. A scalper's
---fresh accounts made at the opening second have none.
local function check_reservation(sale, user)
  if sale.requires_reservation == 1 and not tp.db.one([[SELECT 1 AS x FROM flash_sale_reservations
      WHERE sale_id = ? AND user = ?]], sale.id, user) then
    tp.fail(403, "reservation_required", "this flash sale sells only to members who reserved before it started",
      { reserve_until = sale.starts_at })
  end
end

---Counts qty against the user's limit; 409 limit_reached if it would pass it.
local function count_for_user(sale, user, qty)
  if not add_bought(sale.id, user, qty, sale.per_user_limit) then
    sale_error("limit_reached", ("at most %d per user"):format(sale.per_user_limit),
      { per_user_limit = sale.per_user_limit })
  end
end

local function take_units(sale, qty)
  local changed = tp.db.exec([[UPDATE flash_sale_sales SET remaining = remaining - ?1
    WHERE id = ?2 AND remaining >= ?1]], qty, sale.id)
  if changed == 0 then
    sale_error("sold_out", "this flash sale has fewer units left than asked for")
  end
end

---The order through the orders plugin; the catalog running out is "sold out" too.
local function create_order(sale, user, qty, coupon_id)
  return orders.create_view({
    user = user, coupon_id = coupon_id,
    lines = { { sku = sale.sku, qty = qty, unit_price_fen = sale.price_fen } },
    campaign = { id = sale.id, stacks_with_coupon = sale.stacks_with_coupon == 1,
                 unpaid_timeout_seconds = sale.unpaid_timeout_seconds } }, "flash sale")
end

---POST /flash-sales/{id}/buy {qty?, coupon_id?}. A retry with the
---Idempotency-Key of an accepted buy is answered by the host with its order
---(the route is idempotent), before anything here runs: even after the last
---unit went, or the buyer left the audience.
local function buy(req)
  local body = req.body == nil and {} or check.body(req.body)
  local qty = check.integer(body.qty, "qty", 1, 1000, true) or 1
  local coupon_id = check.integer(body.coupon_id, "coupon_id", 1, nil, true)
  local sale = open_sale(req.params.id, qty)
  check_audience(sale, req.user)
  check_reservation(sale, req.user)
  risk.check(req, "buy", { plugin = "flash_sale", id = sale.id, sku = sale.sku, qty = qty })
  count_for_user(sale, req.user, qty)
  take_units(sale, qty)
  return 201, create_order(sale, req.user, qty, coupon_id)
end

---POST /flash-sales/{id}/reserve: the member reserves (预约) a sale that
---requires it, before its start. Idempotent: a repeat answers the same
---reservation (200 instead of 201).
local function reserve(req)
  local sale = load(req.params.id)
  if not sale or sale.status ~= "active" then tp.fail(404, "sale_not_found", "no such flash sale") end
  if sale.requires_reservation ~= 1 then
    sale_error("reservation_not_required", "this flash sale takes no reservations: anyone may buy")
  end
  local earlier = tp.db.one([[SELECT reserved_at FROM flash_sale_reservations WHERE sale_id = ? AND user = ?]],
    sale.id, req.user)
  if earlier then return 200, { sale_id = sale.id, user = req.user, reserved_at = earlier.reserved_at } end
  local now = tp.now()
  if now >= sale.starts_at then
    sale_error("reservation_closed", "reservations close when the flash sale starts", { starts_at = sale.starts_at })
  end
  check_audience(sale, req.user)
  tp.db.exec("INSERT INTO flash_sale_reservations (sale_id, user, reserved_at) VALUES (?, ?, ?)",
    sale.id, req.user, now)
  return 201, { sale_id = sale.id, user = req.user, reserved_at = now }
end

-- ---- reading

local PUBLIC_SQL = "SELECT " .. SALE_COLUMNS .. [[ FROM flash_sale_sales
    WHERE status = 'active' AND ends_at > ? ORDER BY starts_at, id LIMIT 200]]  -- built once, as LOAD_SQL

local function list_public()
  local now = tp.now()
  local rows = tp.db.query(PUBLIC_SQL, now)
  local items = tp.json.array()
  for _, row in ipairs(rows) do
    local sale = shape(row, now)
    if sale.state ~= "ended" then items[#items + 1] = sale end
  end
  return 200, { now = now, timezone = tp.timezone(), items = items }
end

local function get_public(req)
  local row = load(req.params.id)
  if not row or row.status ~= "active" then tp.fail(404, "sale_not_found", "no such flash sale") end
  return 200, shape(row, tp.now())
end

-- ---- operators

---Validates the fields of a sale (new, or current merged with a patch).
local function check_sale(s)
  SALE_FIELDS:check(s)
  if s.ends_at <= s.starts_at then check.field_error("ends_at", "must be after starts_at") end
  if s.per_order_limit > s.per_user_limit then
    check.field_error("per_order_limit", "cannot exceed per_user_limit")
  end
  local taken = {}
  for i, slot in ipairs(s.slots) do
    local from, to = window.parse_slot(slot)
    if not from then check.field_error(("slots[%d]"):format(i), "must be \"HH:MM-HH:MM\" within a day") end
    for m = from, to - 1 do
      if taken[m] then check.field_error(("slots[%d]"):format(i), "overlaps another slot") end
      taken[m] = true
    end
  end
end

---A SKU is in at most one active sale at a time. The other sale is named by
---its id, or, when a campaign made it, by its campaign item (details.ref, and
---details.ref_text the words of the message that name it, which the campaign
---replaces with the item's id and line: its sale id may exist only on the
---copy of `tidepool campaign check`).
local function check_overlap(s, id)
  local other = s.status == "active" and tp.db.one([[SELECT id FROM flash_sale_sales
    WHERE sku = ? AND status = 'active' AND starts_at < ? AND ends_at > ? AND id != ?]],
    s.sku, s.ends_at, s.starts_at, id or 0)
  if other then
    local ref = items:ref_of(other.id)
    local name = ref and ("campaign item %s (flash sale %d)"):format(ref, other.id)
      or ("flash sale %d"):format(other.id)
    tp.fail(409, "sale_overlap", ("sku %s is already in %s at that time"):format(s.sku, name),
      { sale_id = other.id, field = "starts_at", ref = ref, ref_text = ref and name or nil })
  end
end

---The sale's SKU as the catalog has it now. A price being set (create, or a
---change of price_fen) may not exceed the list price; an unchanged price is not
---checked again, so an operator can still disable or move a sale after the
---list price fell (buyers pay the lower of the two anyway).
local function check_sku(s, extra_units, price_set)
  local sku = catalog.sku(s.sku)
  if price_set then catalog.check_prices(sku, { { "price_fen", s.price_fen } }) end
  catalog.check_stock(sku, s.sku, extra_units)
  return sku
end

local function save(s)
  local slots = s.slots
  s.slots = tp.json.encode(tp.json.array(slots))
  local id = write_sale(s)
  s.slots = slots
  return id
end

---Every field of the create body; a PATCH takes the same ones (sku only unchanged).
local FIELDS = SALE_FIELDS.names

---A whole sale from a create body: the defaults for what it leaves out, except
---the title, whose default (the catalog's) the caller fills in after check_sku.
local function with_defaults(b)
  local s = SALE_FIELDS:defaults(b)
  s.audience = audience.read(b.audience)
  return s
end

---Creates a sale from a create body; returns its id. POST /flash-sales and a
---campaign's first apply of an item.
---@param b table
---@return integer
local function create(b)
  check.only(b, FIELDS)
  local s = with_defaults(b)
  check_sale(s)
  local sku = check_sku(s, s.quantity, true)
  s.title = s.title or sku.title
  check_overlap(s, nil)
  return save(s)
end

---Changes sale s (its row) by b: a PATCH body (what it leaves out stays) or, with
---whole, a create body (what it leaves out takes its default: a campaign
---re-applying an item). Never the SKU. quantity can shrink only to what is
---already sold; when it grows, the units the sale then has left must be in the
---catalog's stock. PATCH /flash-sales/{id} and a campaign's later applies.
---@param s table
---@param b table
---@param whole boolean?
local function change(s, b, whole)
  check.only(b, FIELDS)
  if b.sku ~= nil and b.sku ~= s.sku then check.field_error("sku", "cannot change; create a new sale") end
  if whole then b = with_defaults(b) end
  s.slots = tp.json.decode(s.slots)
  s.stacks_with_coupon = s.stacks_with_coupon == 1
  s.requires_reservation = s.requires_reservation == 1
  local sold, old_quantity, old_price = s.quantity - s.remaining, s.quantity, s.price_fen
  for _, field in ipairs(SALE_FIELDS.patchable) do
    if b[field] ~= nil and field ~= "sku" then s[field] = b[field] end
  end
  -- the audience: a whole body's (read by with_defaults; left out: everyone),
  -- else a PATCH's if it gives one (null: everyone); one it keeps is not
  -- checked again, so a sale whose segment went can still be changed
  if whole then s.audience = b.audience
  elseif b.audience ~= nil then s.audience = audience.read(b.audience) end
  check_sale(s)
  if s.quantity < sold then
    tp.fail(409, "quantity_below_sold", ("%d units are already sold"):format(sold),
      { sold = sold, field = "quantity" })
  end
  s.remaining = s.quantity - sold
  -- more units promised: what the sale would have left must be in the catalog
  local sku = check_sku(s, s.quantity > old_quantity and s.remaining or 0, s.price_fen ~= old_price)
  if whole and b.title == nil then s.title = sku.title end
  check_overlap(s, s.id)
  save(s)
end

---POST /flash-sales
local function create_sale(req)
  local id = create(check.body(req.body))
  return 201, shape(load(id), tp.now())
end

---PATCH /flash-sales/{id}: any field but the SKU (see change).
local function update_sale(req)
  local b = check.body(req.body)
  local s = load(req.params.id)
  if not s then tp.fail(404, "sale_not_found", "no such flash sale") end
  change(s, b)
  return 200, shape(load(s.id), tp.now())
end

local LIST_ADMIN_SQL = "SELECT " .. SALE_COLUMNS .. [[ FROM flash_sale_sales
    WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2]]

local function list_admin(req)
  local limit, after = check.page(req.query, 50, 500)
  local now = tp.now()
  local rows = tp.db.query(LIST_ADMIN_SQL, after, limit)
  for i, row in ipairs(rows) do rows[i] = shape(row, now) end
  return 200, { items = tp.json.array(rows), next_after = #rows == limit and rows[#rows].id or nil }
end

local function get_admin(req)
  local row = load(req.params.id)
  if not row then tp.fail(404, "sale_not_found", "no such flash sale") end
  return 200, shape(row, tp.now())
end

-- ---- the campaign contract with orders

local exports = {}

local function units_of(order)
  local qty = 0
  for _, l in ipairs(order.lines) do qty = qty + l.qty end
  return qty
end

---An order of this sale gave its units back (cancelled unpaid, or refunded in
---full). Its buyer's count is the survivor's if the buyer was merged since.
function exports.release_order(order)
  local id, qty = math.tointeger(tonumber(order.campaign.id)), units_of(order)
  tp.db.exec([[UPDATE flash_sale_sales SET remaining = min(quantity, remaining + ?) WHERE id = ?]], qty, id)
  remove_bought(id, merge.survivor(order.user), qty)
  return true
end

---A payment arrived after the order was cancelled: take its units again if the
---sale still has them and the user (or the survivor of a merge since) is
---still within the limit.
function exports.reclaim_order(order)
  local id, qty = math.tointeger(tonumber(order.campaign.id)), units_of(order)
  local sale, user = load(id), merge.survivor(order.user)
  if not sale or not add_bought(id, user, qty, sale.per_user_limit) then return false end
  local changed = tp.db.exec([[UPDATE flash_sale_sales SET remaining = remaining - ?1
    WHERE id = ?2 AND remaining >= ?1]], qty, id)
  if changed == 0 then
    remove_bought(id, user, qty)
    return false
  end
  return true
end

-- ---- merging members (lib/merge.lua)

exports.member_merge = merge.member_merge
exports.member_unmerge = merge.member_unmerge

-- ---- campaigns: a campaign script's flash sales (README "Campaigns")

---What a campaign item may set: the create body but status, which apply and
---withdraw own.
local SETTINGS = {}
for field in pairs(FIELDS) do SETTINGS[field] = field ~= "status" or nil end

---One line for a campaign's preview: "flash sale #3: 500 × tea-001 at ¥9.90, 1 per user".
local function summary(s)
  return ("flash sale #%d: %d × %s at %s, %d per user"):format(s.id, s.quantity, s.sku,
    money.yuan(s.price_fen), s.per_user_limit)
end

---Creates the sale of campaign item ref, or changes the one it made (by the
---rules of a PATCH, with what settings leave out back at its default), and
---makes it active again if it was withdrawn.
---@param ref string
---@param settings table the fields of POST /flash-sales but status
---@return {id: integer, summary: string, opens_at: integer, closes_at: integer}
function exports.campaign_apply(ref, settings)
  return items:apply(ref, settings, SETTINGS, { create = create, load = load, describe = summary,
    change = function(id, b) change(load(id), b, true) end })
end

---Disables the sale of campaign item ref (its orders and counts stay); false
---if this campaign has no item ref.
---@param ref string
---@return boolean
function exports.campaign_withdraw(ref)
  local id = items:withdraw(ref)
  if not id then return false end
  tp.db.exec("UPDATE flash_sale_sales SET status = 'disabled', updated_at = ? WHERE id = ?", tp.now(), id)
  return true
end

local SALE_BODY = SALE_FIELDS:body()
local SALE_PATCH = SALE_FIELDS:body(true)

---A sale as every read shows it, admin and public: the body's fields and what
---the sale has come to.
local SALE = { type = "object", properties = {
  id = { type = "integer" }, remaining = { type = "integer", description = "units not yet reserved" },
  sold = { type = "integer" },
  state = { type = "string", enum = { "open", "not_started", "ended", "disabled" } },
  opens_at = { type = "integer", description = "not_started: when it opens next" },
  created_at = { type = "integer" }, updated_at = { type = "integer" } } }
for field, prop in pairs(SALE_BODY.properties) do SALE.properties[field] = prop end
SALE.required = { "id", "sku", "title", "price_fen", "quantity", "remaining", "sold", "state", "per_user_limit",
                  "starts_at", "ends_at", "status" }

local NOT_FOUND = { [404] = { "sale_not_found" } }
local SALE_ERRORS = { [400] = { "invalid_field", "invalid_body", "sku_not_found" },
                      [409] = { "sale_overlap", "insufficient_stock" } }

local ROUTES = {
  { method = "GET", path = "/flash-sales", auth = "none", handler = list_public,
    summary = "Flash sales open now or coming, with their state, units left and audience (会员专享)",
    response = { type = "object", required = { "now", "timezone", "items" }, properties = {
      now = { type = "integer", description = "the host's clock, UTC epoch seconds" }, timezone = { type = "string" },
      items = { type = "array", items = SALE } } } },
  { method = "GET", path = "/flash-sales/{id:int}", auth = "none", handler = get_public,
    summary = "One flash sale", response = SALE, errors = NOT_FOUND },
  { method = "POST", path = "/flash-sales/{id:int}/buy", rate_class = "buy", handler = buy, status = 201,
    idempotent = true,
    summary = "Buy: one transaction checks the window, audience and limits, reserves the units and "
      .. "creates the order",
    description = "403 members_only (details: the audience) when the sale is for members of a segment or "
      .. "tag the buyer is not in; 403 reservation_required when the sale requires a reservation the buyer "
      .. "did not make; 403 risk_<code> when a risk rule refuses (sdk/tp/risk.lua); a retry with the "
      .. "Idempotency-Key of an accepted buy answers its order.",
    headers = { ["Idempotency-Key"] = { description = "a retried buy with the same key returns the same order" } },
    body = { type = "object", properties = { qty = { type = "integer", minimum = 1 },
                                             coupon_id = { type = "integer" } } },
    response = orders.SCHEMA,
    errors = orders.errors { [403] = { "members_only", "reservation_required", "risk_*" },
      [404] = { "sale_not_found" },
      [409] = { "sold_out", "not_started", "ended", "limit_reached", "order_limit_exceeded" } } },
  { method = "POST", path = "/flash-sales/{id:int}/reserve", handler = reserve, status = { 201, 200 },
    summary = "Reserve (预约) a sale that requires it, before it starts; a repeat answers 200 with the same",
    description = "409 reservation_not_required, reservation_closed (it started); 403 members_only.",
    response = { type = "object", required = { "sale_id", "user", "reserved_at" }, properties = {
      sale_id = { type = "integer" }, user = { type = "string" }, reserved_at = { type = "integer" } } },
    errors = { [403] = { "members_only", "risk_*" }, [404] = { "sale_not_found" },
               [409] = { "reservation_not_required", "reservation_closed" } } },
  { method = "POST", path = "/flash-sales", auth = "admin", handler = create_sale, status = 201,
    summary = "Create a flash sale", body = SALE_BODY, response = SALE, errors = SALE_ERRORS },
  { method = "PATCH", path = "/flash-sales/{id:int}", auth = "admin", handler = update_sale,
    summary = "Change a flash sale (any field but the SKU; audience null: everyone)", body = SALE_PATCH,
    response = SALE, errors = { [400] = { "invalid_field", "invalid_body" }, [404] = { "sale_not_found" },
      [409] = { "sale_overlap", "insufficient_stock", "quantity_below_sold" } } },
  { method = "GET", path = "/flash-sales", auth = "admin", handler = list_admin,
    summary = "Every flash sale with units sold", response = { type = "object", properties = {
      items = { type = "array", items = SALE }, next_after = { type = "integer" } }, required = { "items" } },
    query = { limit = { type = "integer" }, after = { type = "integer", description = "next_after of the previous page" } },
    errors = { [400] = { "invalid_query" } } },
  { method = "GET", path = "/flash-sales/{id:int}", auth = "admin", handler = get_admin,
    summary = "One flash sale with units sold", response = SALE, errors = NOT_FOUND },
}

---The declared bodies of the routes, for a walk against the served OpenAPI.
function exports.schemas() return schema.document(ROUTES) end

return {
  name = "flash_sale",
  version = "1.4.1",
  description = "flash sales (秒杀) with their own quantity, windows, daily slots and limits",
  migrations = {
    [[
    CREATE TABLE flash_sale_sales (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      sku TEXT NOT NULL,
      title TEXT NOT NULL,
      price_fen INTEGER NOT NULL CHECK (price_fen >= 1),
      quantity INTEGER NOT NULL CHECK (quantity >= 1),
      remaining INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= quantity),
      per_user_limit INTEGER NOT NULL CHECK (per_user_limit >= 1),
      per_order_limit INTEGER NOT NULL CHECK (per_order_limit >= 1),
      starts_at INTEGER NOT NULL,
      ends_at INTEGER NOT NULL CHECK (ends_at > starts_at),
      slots TEXT NOT NULL DEFAULT '[]',
      unpaid_timeout_seconds INTEGER NOT NULL,
      stacks_with_coupon INTEGER NOT NULL DEFAULT 0,
      status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    CREATE INDEX flash_sale_sales_sku ON flash_sale_sales(sku, starts_at);
    CREATE TABLE flash_sale_buyers (
      sale_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      bought INTEGER NOT NULL CHECK (bought >= 0),
      PRIMARY KEY (sale_id, user)
    ) WITHOUT ROWID;
    ]],
    -- which sale each campaign item (ref) made: a second apply changes it
    [[
    CREATE TABLE flash_sale_campaign_items (
      ref TEXT PRIMARY KEY,
      sale_id INTEGER NOT NULL,
      campaign TEXT NOT NULL,
      updated_at INTEGER NOT NULL,
      withdrawn_at INTEGER
    ) WITHOUT ROWID;
    ]],
    -- merging members (lib/merge.lua): each merge is recorded with the counts
    -- it folded, for the undo (a buyer's counts are found sale by sale: no
    -- index on user, which every buy would pay for)
    [[
    CREATE TABLE flash_sale_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    CREATE INDEX flash_sale_merges_from ON flash_sale_merges(from_user, merge_id);
    CREATE TABLE flash_sale_merge_moves (
      merge_id INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('buyers')),
      row_id INTEGER NOT NULL,        -- buyers: the sale
      amount INTEGER NOT NULL,        -- buyers: the units of from's count folded into into's
      created INTEGER NOT NULL CHECK (created IN (0, 1)),  -- into had no count of the sale before
      PRIMARY KEY (merge_id, kind, row_id)
    ) WITHOUT ROWID;
    ]],
    -- member-only sales (lib/audience.lua): the JSON of {segment = name} or
    -- {tag = name}; NULL: everyone
    [[
    ALTER TABLE flash_sale_sales ADD COLUMN audience TEXT;
    ]],
    -- reservations (预约): a sale may sell only to members who reserved before its start
    [[
    ALTER TABLE flash_sale_sales ADD COLUMN requires_reservation INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE flash_sale_reservations (
      sale_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      reserved_at INTEGER NOT NULL,
      PRIMARY KEY (sale_id, user)
    ) WITHOUT ROWID;
    ]],
  },
  routes = ROUTES,
  exports = exports,
}
