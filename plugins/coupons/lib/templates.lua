---@diagnostic disable: undefined-global
-- coupons/lib/templates.lua: coupon templates (what an operator sets up):
-- validation, storage and the JSON shape.

local check = require("tp.check")
local audience = require("lib.audience")
local schema = require("tp.schema")

---@alias CouponKind "fixed"|"percent"|"threshold"
---@alias CouponScope "all"|"products"|"exclude"
---@alias CouponAudience "public"|"issue_only"|"segment"|"tag"

---A coupon template as the admin API shows it. Fields that do not apply are absent.
---@class CouponTemplate
---@field id integer
---@field name string
---@field kind CouponKind
---@field amount_off_fen integer? fixed and threshold: fen taken off
---@field percent_off integer? percent: 1-99, the percentage taken off
---@field max_discount_fen integer? percent: the cap on the discount
---@field min_spend_fen integer eligible subtotal needed to use it (0: none)
---@field claim_starts_at integer? epoch; claims open (absent: open now)
---@field claim_ends_at integer? epoch; claims close at this instant (absent: never)
---@field valid_from integer? fixed validity: epoch
---@field valid_until integer? fixed validity: epoch (a coupon is valid while valid_from <= now < valid_until)
---@field valid_days integer? relative validity: valid from claim for valid_days * 86400 s
---@field total_quantity integer how many may ever be issued
---@field issued integer how many were issued
---@field remaining integer total_quantity - issued
---@field per_user_limit integer how many coupons of this template one user may hold in all
---@field per_user_daily_limit integer? how many one user may receive per calendar day (tenant's zone)
---@field scope CouponScope
---@field product_ids integer[] products of scope "products" / "exclude" (empty for "all")
---@field status "active"|"paused"
---@field audience CouponAudience who may take one: anyone who claims it, only those the brand issues it to, or the members of a segment or tag who claim it (lib/audience.lua)
---@field segment string? audience segment: the members plugin's segment
---@field tag string? audience tag: the members plugin's tag
---@field created_at integer
---@field updated_at integer
---@field counts {total: integer, unused: integer, locked: integer, used: integer, expired: integer}? admin reads only

local templates = {}

local MAX_FEN = 100000000000       -- 10^11 fen = ¥1,000,000,000: above any coupon or order
local MAX_QUANTITY = 1000000000
local MAX_PER_USER = 1000
local MAX_PRODUCT_ID = 9007199254740991  -- 2^53 - 1

local AUDIENCE_DOC = "public (default): listed as claimable and claimed by anyone; issue_only: "
  .. "given only by an issue or a campaign's drop; segment / tag: listed to and claimed by the "
  .. "members of the members plugin's segment / carrying its tag (give segment / tag)"

-- A template's fields, declared once: their bounds, the known fields, which a
-- PATCH may change (the rest are patch = false: a template's rules never
-- move), the columns and the OpenAPI bodies come from here (tp.schema). Which
-- discount fields a body needs depends on its kind, so check_new asks for
-- each field it needs by name (TEMPLATE:field).
templates.FIELDS = schema.new {
  { "name", "text", max = 100, required = true },
  { "kind", "enum", values = { "fixed", "percent", "threshold" }, required = true, patch = false },
  { "amount_off_fen", "integer", min = 1, max = MAX_FEN, patch = false,
    doc = "fixed and threshold (required): fen taken off" },
  { "percent_off", "integer", min = 1, max = 99, patch = false, doc = "percent (required): 1-99" },
  { "max_discount_fen", "integer", min = 1, max = MAX_FEN, patch = false,
    doc = "percent (required): the cap on the discount" },
  { "min_spend_fen", "integer", min = 0, max = MAX_FEN, default = 0, patch = false,
    doc = "eligible subtotal needed; threshold: required, at least 1 and above amount_off_fen" },
  { "claim_starts_at", "epoch", patch = false, doc = "UTC epoch seconds; claims open (absent: now)" },
  { "claim_ends_at", "epoch", nullable = true,
    doc = "UTC epoch seconds, after claim_starts_at; claims close (absent or null: never)" },
  { "valid_from", "epoch", patch = false, doc = "UTC epoch seconds; fixed validity, with valid_until" },
  { "valid_until", "epoch", patch = false,
    doc = "UTC epoch seconds, after valid_from and in the future; or valid_days, never both" },
  { "valid_days", "integer", min = 1, max = 3650, patch = false, doc = "valid for N days from the claim" },
  { "total_quantity", "integer", min = 1, max = MAX_QUANTITY, required = true,
    doc = "how many may ever be issued; a PATCH never below those issued" },
  { "per_user_limit", "integer", min = 1, max = MAX_PER_USER, default = 1, patch = false },
  { "per_user_daily_limit", "integer", min = 1, max = MAX_PER_USER, patch = false,
    doc = "per calendar day in the tenant's zone; at most per_user_limit" },
  { "scope", "enum", values = { "all", "products", "exclude" }, default = "all", patch = false },
  { "product_ids", "custom", column = false, patch = false, schema = { type = "array", minItems = 1,
    maxItems = 1000, items = { type = "integer", minimum = 1, maximum = MAX_PRODUCT_ID },
    description = "scope products or exclude only: distinct product ids" } },
  { "status", "enum", values = { "active", "paused" }, default = "active" },
  { "audience", "enum", values = { "public", "issue_only", "segment", "tag" }, default = "public",
    doc = AUDIENCE_DOC },  -- lib/audience.lua's KINDS
  { "segment", "custom", schema = { type = "string", maxLength = 64,
    description = "audience segment: a segment's name" } },
  { "tag", "custom", schema = { type = "string", maxLength = 64, description = "audience tag: a tag's name" } },
}
local F = templates.FIELDS

local CREATE_FIELDS = F.create_names
local PATCH_FIELDS = F.patch_names

---What a default is, by the declaration.
local function default(name)
  return F.by_name[name].default
end

-- the discount fields each kind takes; the others are refused
local KIND_FIELDS = {
  fixed = { amount_off_fen = true, min_spend_fen = true },
  percent = { percent_off = true, max_discount_fen = true, min_spend_fen = true },
  threshold = { amount_off_fen = true, min_spend_fen = true },
}
local DISCOUNT_FIELDS = { "amount_off_fen", "max_discount_fen", "min_spend_fen", "percent_off" }

---"?, ?, ?" for n values (bound, never spliced).
---@param n integer
---@return string
local function placeholders(n)
  return string.rep("?", n, ", ")
end

templates.COLUMNS = F:columns("id", { "issued", "created_at", "updated_at" })
local INSERT = F:insert("coupons_templates", { issued = "0", created_at = ":now", updated_at = ":now" })
  .. " RETURNING id"

-- ---- reads

local ROW_SQL = "SELECT " .. templates.COLUMNS .. " FROM coupons_templates WHERE id = ?"

---The raw row of a template, or nil.
---@param id integer
---@return table|nil
function templates.row(id)
  return tp.db.one(ROW_SQL, id)
end

---Product ids of each template in ids (a list), as template id -> JSON array.
---@param ids integer[]
---@return table<integer, integer[]>
function templates.product_ids(ids)
  local out = {}
  for _, id in ipairs(ids) do out[id] = tp.json.array() end
  if #ids == 0 then return out end
  local rows = tp.db.query(([[SELECT template_id, product_id FROM coupons_template_products
    WHERE template_id IN (%s) ORDER BY template_id, product_id]]):format(placeholders(#ids)),
    table.unpack(ids))
  for _, r in ipairs(rows) do
    local list = out[r.template_id]
    list[#list + 1] = r.product_id
  end
  return out
end

---Coupon counts by state for each template in ids (expired: unused and past valid_until).
---@param ids integer[]
---@param now integer
---@return table<integer, table>
function templates.counts(ids, now)
  local out = {}
  for _, id in ipairs(ids) do out[id] = { total = 0, unused = 0, locked = 0, used = 0, expired = 0 } end
  if #ids == 0 then return out end
  local rows = tp.db.query(([[
    SELECT template_id, count(*) AS total,
      sum(state = 'unused' AND valid_until > ?1) AS unused, sum(state = 'locked') AS locked,
      sum(state = 'used') AS used, sum(state = 'unused' AND valid_until <= ?1) AS expired
    FROM coupons_coupons WHERE template_id IN (%s)
    GROUP BY template_id]]):format(placeholders(#ids)), now, table.unpack(ids))
  for _, r in ipairs(rows) do
    out[r.template_id] = { total = r.total, unused = r.unused, locked = r.locked, used = r.used,
                           expired = r.expired }
  end
  return out
end

---Completes rows (in place) into CouponTemplate shapes.
---@param rows table[]
---@param with_counts boolean? add counts by state (admin)
---@return CouponTemplate[]
function templates.shape_all(rows, with_counts)
  local ids = {}
  for i, r in ipairs(rows) do ids[i] = r.id end
  local products = templates.product_ids(ids)
  local counts = with_counts and templates.counts(ids, tp.now())
  for _, r in ipairs(rows) do
    r.remaining = r.total_quantity - r.issued
    r.product_ids = products[r.id]
    if counts then r.counts = counts[r.id] end
  end
  return tp.json.array(rows)
end

---One template in full (with counts), or nil.
---@param id integer
---@return CouponTemplate|nil
function templates.load(id)
  local row = templates.row(id)
  if not row then return nil end
  return templates.shape_all({ row }, true)[1]
end

local LIST_SQL = "SELECT " .. templates.COLUMNS .. [[ FROM coupons_templates
    WHERE id > :after AND (:status IS NULL OR status = :status) ORDER BY id LIMIT :limit]]

---GET /coupons/templates?status=&limit=&after= (admin)
function templates.list(req)
  local q = req.query
  local limit, after = check.page(q, 50, 200)
  after = after or 0
  if q.status ~= nil and not F.by_name.status.set[q.status] then
    tp.fail(400, "invalid_query", "status must be active or paused")
  end
  local rows = tp.db.query(LIST_SQL, { after = after, status = q.status, limit = limit })
  local items = templates.shape_all(rows, true)
  return 200, { items = items, next_after = #items == limit and items[#items].id or nil }
end

---GET /coupons/templates/{id} (admin)
function templates.get(req)
  local t = templates.load(req.params.id)
  if not t then tp.fail(404, "template_not_found", "no such coupon template") end
  return 200, t
end

-- ---- validation of a new template

---product_ids: 1-1000 distinct positive integers.
local function check_product_ids(v)
  local ids = check.list(v, "product_ids", 1, 1000, "entries")
  local seen = {}
  for i, id in ipairs(ids) do
    if math.type(id) ~= "integer" or id < 1 or id > MAX_PRODUCT_ID then
      check.field_error("product_ids", ("entry %d must be a product id (a positive integer)"):format(i))
    end
    if seen[id] then check.field_error("product_ids", ("lists product %d twice"):format(id)) end
    seen[id] = true
  end
  return ids
end

---Checks a creation body field by field, in a fixed order, and returns the row to insert
---and the product ids. With current (a campaign applying its item again), an
---unchanged valid_until may be past: the template already exists.
---@param body table
---@param now integer
---@param current table? the template's row
---@return table row, integer[] product_ids
local function check_new(body, now, current)
  check.only(body, CREATE_FIELDS)
  local b = {}
  for k, v in pairs(body) do
    if v ~= tp.json.null then b[k] = v end
  end
  local t = { name = F:field("name", b.name) }
  t.kind = F:field("kind", b.kind)

  -- the discount
  for _, f in ipairs(DISCOUNT_FIELDS) do
    if b[f] ~= nil and not KIND_FIELDS[t.kind][f] then
      check.field_error(f, ("does not apply to kind %s"):format(t.kind))
    end
  end
  if t.kind == "fixed" then
    t.amount_off_fen = F:field("amount_off_fen", b.amount_off_fen)
    t.min_spend_fen = F:field("min_spend_fen", b.min_spend_fen, true) or default("min_spend_fen")
  elseif t.kind == "percent" then
    t.percent_off = F:field("percent_off", b.percent_off)
    t.max_discount_fen = F:field("max_discount_fen", b.max_discount_fen)
    t.min_spend_fen = F:field("min_spend_fen", b.min_spend_fen, true) or default("min_spend_fen")
  else -- threshold (满减): both required, and the threshold above the amount
    t.amount_off_fen = F:field("amount_off_fen", b.amount_off_fen)
    t.min_spend_fen = check.integer(b.min_spend_fen, "min_spend_fen", 1, F.by_name.min_spend_fen.max)
    if t.min_spend_fen <= t.amount_off_fen then
      check.field_error("min_spend_fen", "must be greater than amount_off_fen for kind threshold")
    end
  end

  -- the claim window
  t.claim_starts_at = F:field("claim_starts_at", b.claim_starts_at, true)
  t.claim_ends_at = F:field("claim_ends_at", b.claim_ends_at, true)
  if t.claim_starts_at and t.claim_ends_at and t.claim_ends_at <= t.claim_starts_at then
    check.field_error("claim_ends_at", "must be after claim_starts_at")
  end

  -- validity: fixed dates or N days from claim, exactly one of the two
  local fixed = b.valid_from ~= nil or b.valid_until ~= nil
  if fixed and b.valid_days ~= nil then
    check.field_error("valid_days", "cannot be combined with valid_from/valid_until: give one form of validity")
  elseif not fixed and b.valid_days == nil then
    check.field_error("valid_days", "or valid_from and valid_until are required: give one form of validity")
  elseif fixed then
    t.valid_from = F:field("valid_from", b.valid_from)
    t.valid_until = F:field("valid_until", b.valid_until)
    if t.valid_until <= t.valid_from then check.field_error("valid_until", "must be after valid_from") end
    if t.valid_until <= now and not (current and current.valid_until == t.valid_until) then
      check.field_error("valid_until", "must be in the future")
    end
  else
    t.valid_days = F:field("valid_days", b.valid_days)
  end

  -- quantities
  t.total_quantity = F:field("total_quantity", b.total_quantity)
  t.per_user_limit = F:field("per_user_limit", b.per_user_limit, true) or default("per_user_limit")
  t.per_user_daily_limit = F:field("per_user_daily_limit", b.per_user_daily_limit, true)
  if t.per_user_daily_limit and t.per_user_daily_limit > t.per_user_limit then
    check.field_error("per_user_daily_limit", "cannot be above per_user_limit")
  end

  -- scope
  t.scope = F:field("scope", b.scope, true) or default("scope")
  local product_ids = {}
  if t.scope == "all" then
    if b.product_ids ~= nil then check.field_error("product_ids", "only apply to scope products or exclude") end
  else
    product_ids = check_product_ids(b.product_ids)
  end

  t.status = F:field("status", b.status, true) or default("status")
  t.audience = F:field("audience", b.audience, true) or default("audience")
  t.segment, t.tag = audience.check(t.audience, b.segment, b.tag)
  return t, product_ids
end

-- ---- writes

---Inserts a checked template; returns its id.
---@param t table from check_new
---@param product_ids integer[]
---@param now integer
---@return integer
local function insert(t, product_ids, now)
  t.now = now
  local row = tp.db.one(INSERT, t)
  for _, pid in ipairs(product_ids) do
    tp.db.exec("INSERT INTO coupons_template_products (template_id, product_id) VALUES (?, ?)",
      row.id, pid)
  end
  return row.id
end

---@class TemplateChange  what may change on a template that exists (nil: unchanged)
---@field name string?
---@field status string?
---@field total_quantity integer?
---@field claim_ends_at integer?
---@field set_claim_ends_at boolean? write claim_ends_at even when nil (no end)
---@field audience string? with segment and tag: all three are written (nil clears)
---@field segment string?
---@field tag string?

---Changes template current (its row) by c, after checking it against what
---cannot move: the claim window's end stays after its start, total_quantity
---never goes below what was issued (409 quantity_below_issued). The PATCH
---route and a campaign's later applies.
---@param current table
---@param c TemplateChange
function templates.change(current, c)
  local id, ends = current.id, c.claim_ends_at
  if ends and current.claim_starts_at and ends <= current.claim_starts_at then
    check.field_error("claim_ends_at", "must be after claim_starts_at")
  end
  if c.total_quantity then  -- conditional: never below what was issued, even if issuing raced us
    local changed = tp.db.exec([[UPDATE coupons_templates SET total_quantity = ?
      WHERE id = ? AND issued <= ?]], c.total_quantity, id, c.total_quantity)
    if changed == 0 then
      tp.fail(409, "quantity_below_issued",
        ("total_quantity cannot go below the %d coupons already issued"):format(current.issued),
        { issued = current.issued, field = "total_quantity" })
    end
  end
  if c.set_claim_ends_at then
    tp.db.exec("UPDATE coupons_templates SET claim_ends_at = ? WHERE id = ?", ends, id)
  end
  if c.audience then
    tp.db.exec("UPDATE coupons_templates SET audience = ?, segment = ?, tag = ? WHERE id = ?",
      c.audience, c.segment, c.tag, id)
  end
  tp.db.exec([[UPDATE coupons_templates SET name = coalesce(?, name), status = coalesce(?, status),
    updated_at = ? WHERE id = ?]], c.name, c.status, tp.now(), id)
end

---The audience a PATCH body leaves template current with: nil when the body
---names none of audience, segment and tag; else the audience (the body's or
---the current one) with its segment or tag (the body's, else the current
---one's while the audience stays), checked against the members plugin.
---@param current table
---@param body table
---@return string|nil audience, string|nil segment, string|nil tag
local function patched_audience(current, body)
  local kind = F:field("audience", check.present(body.audience), true)
  local segment, tag = check.present(body.segment), check.present(body.tag)
  if kind == nil and segment == nil and tag == nil then return nil end
  if kind == nil or kind == current.audience then
    kind = current.audience
    if kind == "segment" and segment == nil then segment = current.segment end
    if kind == "tag" and tag == nil then tag = current.tag end
  end
  return kind, audience.check(kind, segment, tag)
end

---POST /coupons/templates (admin) -> 201 CouponTemplate
function templates.create(req)
  local now = tp.now()
  local t, product_ids = check_new(check.body(req.body, true), now)
  return 201, templates.load(insert(t, product_ids, now))
end

---PATCH /coupons/templates/{id} {name?, status?, claim_ends_at? (null: no end), total_quantity?,
---audience?, segment?, tag?}
---(admin). total_quantity may go up, or down to the number already issued, never below.
function templates.update(req)
  local id = req.params.id
  local body = check.body(req.body, true)
  local current = templates.row(id)
  if not current then tp.fail(404, "template_not_found", "no such coupon template") end
  check.only(body, PATCH_FIELDS,
    "cannot be changed (a template's name, status, claim_ends_at, total_quantity and audience "
      .. "with its segment or tag can)")
  if next(body) == nil then
    tp.fail(400, "invalid_body",
      "nothing to change: give name, status, claim_ends_at, total_quantity or audience")
  end
  local kind, segment, tag = patched_audience(current, body)
  -- a JSON null counts as absent, but for claim_ends_at, where it removes the end
  templates.change(current, {
    name = F:field("name", check.present(body.name), true),
    status = F:field("status", check.present(body.status), true),
    claim_ends_at = F:field("claim_ends_at", check.present(body.claim_ends_at), true),
    set_claim_ends_at = body.claim_ends_at ~= nil,
    total_quantity = F:field("total_quantity", check.present(body.total_quantity), true),
    audience = kind, segment = segment, tag = tag,
  })
  return 200, templates.load(id)
end

-- ---- campaigns

---What a campaign's coupon item may set: the create body but status, which
---apply and withdraw own.
templates.SETTINGS = {}
for field in pairs(CREATE_FIELDS) do templates.SETTINGS[field] = field ~= "status" or nil end

-- the rules of a template that exists, which no change may touch
local FIXED_FIELDS = { "kind", "amount_off_fen", "percent_off", "max_discount_fen", "min_spend_fen",
  "claim_starts_at", "valid_from", "valid_until", "valid_days", "per_user_limit",
  "per_user_daily_limit", "scope" }

---Refuses b's products unless they are exactly template id's.
local function same_products(id, product_ids)
  local have = templates.product_ids({ id })[id]
  local want = {}
  for i, pid in ipairs(product_ids) do want[i] = pid end
  table.sort(want)
  if #want ~= #have or table.concat(want, ",") ~= table.concat(have, ",") then
    check.field_error("product_ids", "cannot be changed (a template's name, claim_ends_at and total_quantity can)")
  end
end

---Creates the template of a campaign item (current nil) from settings (the
---create body with status), or changes current by the rules of a PATCH: only
---name, status, claim_ends_at (absent: no end) and total_quantity move; any
---other rule that differs is refused naming its field. Returns the id.
---@param current table|nil the template's row
---@param settings table
---@return integer
function templates.apply(current, settings)
  local now = tp.now()
  local t, product_ids = check_new(settings, now, current)
  if not current then return insert(t, product_ids, now) end
  for _, field in ipairs(FIXED_FIELDS) do
    if t[field] ~= current[field] then
      check.field_error(field, "cannot be changed (a template's name, claim_ends_at and total_quantity can)")
    end
  end
  same_products(current.id, product_ids)
  templates.change(current, { name = t.name, status = t.status, total_quantity = t.total_quantity,
    claim_ends_at = t.claim_ends_at, set_claim_ends_at = true, audience = t.audience,
    segment = t.segment, tag = t.tag })
  return current.id
end

return templates
