---@diagnostic disable: undefined-global
-- promotions: the brand's standing price promotions, which orders' pricing
-- asks at every checkout at list price (pricing.lua step 3), as it asks tiers
-- for member prices. Kinds: tiered 满减 (full_reduction) and 满折
-- (full_discount), by amount or by count; 满送 / 赠品 (gift); 第N件M折 (nth_discount: 第二件半价);
-- N元任选 (bundle); 限时折扣 (timed_discount) on a set of SKUs. Each has a
-- window (UTC epoch seconds; the admin answers show it in the brand's zone),
-- a scope of SKUs (none: all), a priority and whether it stacks with coupons.
-- How they combine is lib/engine.lua (README "Stacking").
-- 优惠码: a promotion may require a code, shared or from a generated batch of
-- single-use codes. 满送 / 赠品 (gift): a SKU or a coupon with an order that
-- reaches a tier. Exports: quote and place (orders), schemas.

---@class PromotionsConfig
---@field item_with_order boolean? an order promotion also counts lines an item promotion took (default true)
---@field with_member_price boolean? lines at a member price take promotions (default true)
---@field with_coupon boolean? a coupon may be used with promotions at all (default true)
---@field max_hints integer? 凑单 hints in a quote (default 3)

local check = require("tp.check")
local schema = require("tp.schema")
local when = require("tp.when")
local engine = require("lib.engine")

local KINDS = { "full_reduction", "full_discount", "nth_discount", "bundle", "timed_discount", "gift" }

local TIER = { type = "object", properties = {
  min_fen = { type = "integer", minimum = 1, description = "the tier is reached from this amount (fen) in scope" },
  min_qty = { type = "integer", minimum = 1, description = "or from this many units in scope (one basis per promotion)" },
  off_fen = { type = "integer", minimum = 1, description = "full_reduction: fen off" },
  percent = { type = "integer", minimum = 1, maximum = 99, description = "full_discount: pay this percent" },
  gift_sku = { type = "string", description = "gift: a SKU given free with the order (while its stock lasts)" },
  gift_qty = { type = "integer", minimum = 1, maximum = 10, description = "gift: how many of gift_sku (default 1)" },
  coupon_template_id = { type = "integer", minimum = 1, description = "gift: a coupon issued when the order is paid" } } }

-- A promotion's fields, declared once (tp.schema): checks, defaults, columns, OpenAPI body.
local FIELDS = schema.new {
  { "name", "text", max = 60, required = true },
  { "kind", "enum", values = KINDS, required = true, fixed = true, doc = "never changes" },
  { "skus", "list", max_items = 200, default = {}, example = "tea-001",
    doc = "the SKUs it covers; none: every SKU (bundle and timed_discount need some)" },
  { "tiers", "custom", schema = { type = "array", minItems = 1, maxItems = 5, items = TIER,
    description = "full_reduction, full_discount and gift: ascending tiers, all by min_fen or all by min_qty" } },
  { "nth", "integer", min = 2, max = 10, nullable = true, doc = "nth_discount: every nth unit of a SKU" },
  { "percent", "integer", min = 1, max = 99, nullable = true,
    doc = "nth_discount, timed_discount: the unit pays this percent (rounded down, at least 1 fen)" },
  { "count", "integer", min = 2, max = 20, nullable = true, doc = "bundle: any count units in scope..." },
  { "price_fen", "integer", min = 1, max = 100000000, nullable = true, doc = "bundle: ...for this price" },
  { "starts_at", "epoch", doc = "UTC epoch seconds; or give starts_local" },
  { "ends_at", "epoch", doc = "UTC epoch seconds, after starts_at; or give ends_local" },
  { "starts_local", "text", max = 19, column = false, example = "2026-12-12 10:00",
    doc = "the start as the brand's wall clock, \"YYYY-MM-DD HH:MM\" in its zone (instead of starts_at)" },
  { "ends_local", "text", max = 19, column = false, example = "2026-12-12 22:00",
    doc = "the end as the brand's wall clock (instead of ends_at)" },
  { "priority", "integer", min = 0, max = 1000, default = 0, doc = "higher first among item promotions; breaks ties" },
  { "stacks_with_coupon", "boolean", default = true, doc = "false: an order it applies to takes no coupon" },
  { "requires_code", "boolean", default = false,
    doc = "优惠码: it applies only to a checkout that gives one of its codes (POST /promotions/{id}/codes)" },
  { "status", "enum", values = { "active", "disabled" }, default = "active" },
}

local USES = { full_reduction = { tiers = true }, full_discount = { tiers = true },
               nth_discount = { nth = true, percent = true }, timed_discount = { percent = true },
               bundle = { count = true, price_fen = true }, gift = { tiers = true } }

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
    for k in pairs(t) do
      if not TIER.properties[k] then check.field_error(at .. "." .. tostring(k), "is not a tier's field") end
    end
    local b = t.min_fen ~= nil and "min_fen" or "min_qty"
    if (t.min_fen == nil) == (t.min_qty == nil) then check.field_error(at, "needs min_fen or min_qty, not both") end
    basis = basis or b
    if b ~= basis then check.field_error(at .. "." .. b, "every tier uses " .. basis) end
    local min = check.integer(t[b], at .. "." .. b, 1, 100000000)
    local row = { [b] = min }
    if kind ~= "gift" then
      for _, k in ipairs({ "gift_sku", "gift_qty", "coupon_template_id" }) do
        if t[k] ~= nil then check.field_error(at .. "." .. k, "only a gift's tiers give gifts") end
      end
    end
    if kind == "gift" then
      for _, k in ipairs({ "off_fen", "percent" }) do
        if t[k] ~= nil then check.field_error(at .. "." .. k, "a gift's tier gives a gift_sku or a coupon_template_id") end
      end
      if t.gift_sku == nil and t.coupon_template_id == nil then
        check.field_error(at, "needs a gift_sku, a coupon_template_id or both")
      end
      if t.gift_sku ~= nil then
        row.gift_sku = check.ident(t.gift_sku, at .. ".gift_sku", 64)
        if not tp.call("catalog", "sku", row.gift_sku) then
          tp.fail(400, "sku_not_found", "no such sku " .. row.gift_sku, { sku = row.gift_sku, field = at .. ".gift_sku" })
        end
        row.gift_qty = check.integer(t.gift_qty == nil and 1 or t.gift_qty, at .. ".gift_qty", 1, 10)
      elseif t.gift_qty ~= nil then
        check.field_error(at .. ".gift_qty", "goes with a gift_sku")
      end
      row.coupon_template_id = check.integer(t.coupon_template_id, at .. ".coupon_template_id", 1, nil, true)
    elseif kind == "full_reduction" then
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

---Reads starts_local / ends_local (the brand's wall clock) into the epochs.
local function read_local(p)
  for _, w in ipairs({ "starts", "ends" }) do
    local text = p[w .. "_local"]
    if text ~= nil then
      if p[w .. "_at"] ~= nil and p[w .. "_at_given"] then
        check.field_error(w .. "_local", "give " .. w .. "_at or " .. w .. "_local, not both")
      end
      local epoch, why = when.parse(text)
      if not epoch then check.field_error(w .. "_local", why) end
      p[w .. "_at"] = epoch
    end
    p[w .. "_local"], p[w .. "_at_given"] = nil, nil
    if p[w .. "_at"] == nil then check.field_error(w .. "_at", "is required (or " .. w .. "_local)") end
  end
end

---Checks promotion p (whole, defaults in) by its kind's rules.
local function check_promotion(p)
  FIELDS:check(p)
  read_local(p)
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
  row.requires_code = row.requires_code == 1
  row.window_local = { starts = when.format(row.starts_at), ends = when.format(row.ends_at), timezone = tp.timezone() }
  return row
end

local LOAD_SQL = "SELECT " .. COLUMNS .. " FROM promotions_promotions WHERE id = ?"

local function load(id)
  local row = tp.db.one(LOAD_SQL, id)
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
  p.starts_at_given, p.ends_at_given = b.starts_at ~= nil, b.ends_at ~= nil
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
  p.starts_at_given, p.ends_at_given = b.starts_at ~= nil, b.ends_at ~= nil
  p.window_local = nil
  check_promotion(p)
  store(p)
  return 200, load(p.id)
end

local function delete(req)
  local p = must(req.params.id)
  tp.db.exec("DELETE FROM promotions_codes WHERE promotion_id = ?", p.id)
  tp.db.exec("DELETE FROM promotions_promotions WHERE id = ?", p.id)
  return 200, p
end

-- ---- 优惠码: shared codes and generated batches of single-use codes

local ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  -- no 0/O, 1/I: read aloud and typed by hand
local MAX_BATCH = 10000

---A fresh random code of 10 characters (50 bits).
local function random_code()
  local out = {}
  for i = 1, 10 do
    local k = tp.random(1, #ALPHABET)
    out[i] = ALPHABET:sub(k, k)
  end
  return table.concat(out)
end

---A code as people type it: trimmed, upper-case, 4-32 of [A-Z0-9].
local function normal_code(v, field)
  if type(v) ~= "string" then check.field_error(field, "must be a string") end
  local c = v:match("^%s*(.-)%s*$"):upper()
  if not c:match("^[A-Z0-9]+$") or #c < 4 or #c > 32 then
    check.field_error(field, "must be 4-32 letters and digits")
  end
  return c
end

---POST /promotions/{id}/codes {code} (a shared code) or {count} (single-use codes).
local function add_codes(req)
  local p = must(req.params.id)
  local b = check.body(req.body)
  check.only(b, { code = true, count = true })
  if (b.code == nil) == (b.count == nil) then check.field_error("code", "give a code (shared) or a count (single-use)") end
  if not p.requires_code then
    tp.fail(409, "code_not_required", "this promotion applies without a code; set requires_code first")
  end
  local now, codes = tp.now(), tp.json.array()
  if b.code ~= nil then
    local c = normal_code(b.code, "code")
    if tp.db.exec([[INSERT OR IGNORE INTO promotions_codes (code, promotion_id, single_use, created_at)
        VALUES (?, ?, 0, ?)]], c, p.id, now) ~= 1 then
      tp.fail(409, "code_taken", "this code is already in use", { code = c })
    end
    codes[1] = c
  else
    local n = check.integer(b.count, "count", 1, MAX_BATCH)
    while #codes < n do
      local c = random_code()
      if tp.db.exec([[INSERT OR IGNORE INTO promotions_codes (code, promotion_id, single_use, created_at)
          VALUES (?, ?, 1, ?)]], c, p.id, now) == 1 then
        codes[#codes + 1] = c
      end
    end
  end
  return 201, { promotion_id = p.id, single_use = b.count ~= nil, codes = codes }
end

---GET /promotions/{id}/codes: its codes, with their uses.
local function list_codes(req)
  local p = must(req.params.id)
  local limit = check.page(req.query, 100, 1000)
  local after = req.query.after
  if after ~= nil then after = normal_code(after, "after") end
  local rows = tp.db.query([[SELECT c.code, c.single_use, c.created_at,
      (SELECT count(*) FROM promotions_code_uses u WHERE u.code = c.code) AS uses
    FROM promotions_codes c WHERE c.promotion_id = ?1 AND (?2 IS NULL OR c.code > ?2)
    ORDER BY c.code LIMIT ?3]], p.id, after, limit)
  for _, r in ipairs(rows) do r.single_use = r.single_use == 1 end
  return 200, { items = tp.json.array(rows), next_after = #rows == limit and rows[#rows].code or nil }
end

---An order's gifts, as kept.
local function gifts_of(order_id)
  return tp.json.array(tp.db.query([[SELECT promotion_id, kind, sku, qty, template_id, coupon_id, state, note
    FROM promotions_gifts WHERE order_id = ? ORDER BY promotion_id, kind]], order_id))
end

---The code a checkout gave, checked: its row, or a clear error.
local function code_row(v)
  local c = normal_code(v, "promo_code")
  local row = tp.db.one([[SELECT c.code, c.promotion_id, c.single_use, p.status, p.starts_at, p.ends_at
    FROM promotions_codes c JOIN promotions_promotions p ON p.id = c.promotion_id WHERE c.code = ?]], c)
  if not row then tp.fail(404, "promo_code_not_found", "no such promotion code", { code = c }) end
  local now = tp.now()
  if row.status ~= "active" or now < row.starts_at or now >= row.ends_at then
    tp.fail(409, "promo_code_not_active", "this code's promotion is not running", { starts_at = row.starts_at,
      ends_at = row.ends_at })
  end
  if row.single_use == 1 and tp.db.one("SELECT 1 AS x FROM promotions_code_uses WHERE code = ?", c) then
    tp.fail(409, "promo_code_used", "this code has been used", { code = c })
  end
  return row
end

local function order_gifts(req)
  return 200, { order_id = req.params.id, items = gifts_of(req.params.id) }
end

local LIST_ADMIN_SQL = "SELECT " .. COLUMNS .. [[ FROM promotions_promotions
    WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2]]

local function list_admin(req)
  local limit, after = check.page(req.query, 50, 500)
  local rows = tp.db.query(LIST_ADMIN_SQL, after, limit)
  local items = tp.json.array()
  for i, r in ipairs(rows) do items[i] = shape(r) end
  return 200, { items = items, next_after = #rows == limit and rows[#rows].id or nil }
end

local RUNNING_SQL = "SELECT " .. COLUMNS .. [[ FROM promotions_promotions
    WHERE status = 'active' AND starts_at <= ?1 AND ends_at > ?1 AND (requires_code = 0 OR id = ?2)
    ORDER BY id]]

---The promotions running now (active, inside their window): those open to
---every checkout, and the one code_promotion (a code's) if given.
local function running(now, code_promotion)
  local rows = tp.db.query(RUNNING_SQL, now, code_promotion)
  for _, r in ipairs(rows) do shape(r) end
  return rows
end

local function list_public()
  local items = tp.json.array(running(tp.now(), nil))
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
---With opts.code (a 优惠码), the code's promotion runs too; the answer's
---code = {code, promotion_id, applied} says whether it took anything (then the
---checkout redeems it). An unknown code is 404 promo_code_not_found; one whose
---promotion is not running 409 promo_code_not_active; a used single-use code
---409 promo_code_used.
---@param user string
---@param lines table[]
---@param opts {code: string?}?
---@return table
function exports.quote(user, lines, opts)
  check.user(user, "user")
  local cfg = config()
  local code = opts and opts.code ~= nil and code_row(opts.code) or nil
  local q = engine.quote(running(tp.now(), code and code.promotion_id), lines, cfg)
  local promos = tp.json.array()
  local applied = false
  for i, a in ipairs(q.applied) do
    local p = a.promotion
    if code and p.id == code.promotion_id then applied = true end
    promos[i] = { id = p.id, name = p.name, kind = p.kind, discount_fen = a.discount_fen,
                  stacks_with_coupon = p.stacks_with_coupon, lines = tp.json.array(a.lines) }
  end
  local gifts = tp.json.array()
  for i, g in ipairs(q.gifts) do
    if code and g.promotion.id == code.promotion_id then applied = true end
    gifts[i] = { promotion_id = g.promotion.id, name = g.promotion.name, tier = g.tier, gift_sku = g.gift_sku,
                 gift_qty = g.gift_qty, coupon_template_id = g.coupon_template_id }
  end
  return { discount_fen = q.discount_fen, lines = q.line_discount, promotions = promos, gifts = gifts,
           stacks_with_coupon = cfg.with_coupon and q.stacks_with_coupon or (#promos == 0 and #gifts == 0),
           hints = tp.json.array(q.hints),
           code = code and { code = code.code, promotion_id = code.promotion_id, applied = applied } or nil }
end

---What a new order takes from its quote, in the order's transaction (only
---orders may call it): opts.code, a code whose promotion took something, is
---redeemed (a single-use code once only: 409 promo_code_used rolls the
---checkout back); each of opts.gifts is kept for the order: a gift SKU is taken
---from the catalog's stock if it has enough (else kept as out_of_stock: 赠完即止),
---a gift coupon waits for the payment.
---@param order_id integer
---@param user string
---@param opts {code: string?, gifts: table[]?}
---@return {gifts: table[]}
function exports.place(order_id, user, opts)
  if tp.caller() ~= "orders" then tp.fail(403, "place_forbidden", "only orders places promotions", { caller = tostring(tp.caller()) }) end
  local now = tp.now()
  if opts.code then
    local row = code_row(opts.code)
    tp.db.exec([[INSERT INTO promotions_code_uses (code, order_id, user, single_use, used_at)
      VALUES (?, ?, ?, ?, ?)]], row.code, order_id, user, row.single_use, now)
  end
  for _, g in ipairs(opts.gifts or {}) do
    if g.gift_sku then
      local sku = tp.call("catalog", "sku", g.gift_sku)
      local state = "out_of_stock"
      if sku and sku.on_sale and sku.stock >= g.gift_qty then
        tp.call("catalog", "reserve", { { sku = g.gift_sku, qty = g.gift_qty } })
        state = "reserved"
      end
      tp.db.exec([[INSERT INTO promotions_gifts (order_id, promotion_id, kind, sku, qty, user, state, created_at)
        VALUES (?, ?, 'sku', ?, ?, ?, ?, ?)]], order_id, g.promotion_id, g.gift_sku, g.gift_qty, user, state, now)
    end
    if g.coupon_template_id then
      tp.db.exec([[INSERT INTO promotions_gifts (order_id, promotion_id, kind, template_id, qty, user, state, created_at)
        VALUES (?, ?, 'coupon', ?, 1, ?, 'pending', ?)]], order_id, g.promotion_id, g.coupon_template_id, user, now)
    end
  end
  return { gifts = gifts_of(order_id) }
end

---A paid order's gift coupons are issued (a template that cannot issue any
---more leaves the gift not_issued, with the reason).
local function on_paid(ev)
  local order = ev.data and ev.data.order
  if type(order) ~= "table" or math.type(order.id) ~= "integer" then return end
  local rows = tp.db.query([[SELECT promotion_id, template_id, user FROM promotions_gifts
    WHERE order_id = ? AND kind = 'coupon' AND state = 'pending']], order.id)
  for _, r in ipairs(rows) do
    local ok, res = pcall(tp.call, "coupons", "issue", r.template_id, { r.user }, "promotions:order:" .. order.id)
    local state, coupon, note = "not_issued", nil, nil
    if ok and res.issued == 1 then state, coupon = "issued", res.coupons[1].coupon_id
    elseif ok then note = res.skipped[1] and res.skipped[1].reason or "skipped"
    else note = type(res) == "table" and tostring(res.code) or "coupons unavailable" end
    tp.db.exec([[UPDATE promotions_gifts SET state = ?, coupon_id = ?, note = ? WHERE order_id = ?
      AND promotion_id = ? AND kind = 'coupon']], state, coupon, note, order.id, r.promotion_id)
  end
end

---An order cancelled before payment gives its code back.
local function on_cancelled(ev)
  local order = ev.data and ev.data.order
  if type(order) ~= "table" or math.type(order.id) ~= "integer" then return end
  tp.db.exec("DELETE FROM promotions_code_uses WHERE order_id = ?", order.id)
  for _, g in ipairs(tp.db.query([[SELECT sku, qty FROM promotions_gifts
      WHERE order_id = ? AND kind = 'sku' AND state = 'reserved']], order.id)) do
    tp.call("catalog", "release", { { sku = g.sku, qty = g.qty } })
  end
  tp.db.exec([[UPDATE promotions_gifts SET state = CASE kind WHEN 'sku' THEN 'released' ELSE 'cancelled' END
    WHERE order_id = ? AND state IN ('reserved', 'pending')]], order.id)
end

local PROMO_BODY = FIELDS:body()
local PROMO_PATCH = FIELDS:body(true)
local PROMO = { type = "object", required = { "id", "name", "kind", "skus", "starts_at", "ends_at", "status" },
  properties = { id = { type = "integer" }, created_at = { type = "integer" }, updated_at = { type = "integer" },
    window_local = { type = "object", properties = { starts = { type = "string" }, ends = { type = "string" },
      timezone = { type = "string" } }, description = "the window in the brand's zone" } } }
for f, prop in pairs(PROMO_BODY.properties) do PROMO.properties[f] = prop end

local ERRORS = { [400] = { "invalid_field", "invalid_body", "sku_not_found" } }
local GIFT = { type = "object", required = { "promotion_id", "kind", "qty", "state" }, properties = {
  promotion_id = { type = "integer" }, kind = { type = "string", enum = { "sku", "coupon" } },
  sku = { type = "string", nullable = true }, qty = { type = "integer" },
  template_id = { type = "integer", nullable = true }, coupon_id = { type = "integer", nullable = true },
  state = { type = "string", enum = { "reserved", "out_of_stock", "released", "pending", "issued", "not_issued", "cancelled" } },
  note = { type = "string", nullable = true } } }
local CODES = { type = "object", required = { "promotion_id", "single_use", "codes" }, properties = {
  promotion_id = { type = "integer" }, single_use = { type = "boolean" },
  codes = { type = "array", items = { type = "string" } } } }
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
    summary = "Delete a promotion and its codes (orders keep what it took off)", response = PROMO, errors = NOT_FOUND },
  { method = "POST", path = "/promotions/{id:int}/codes", auth = "admin", handler = add_codes, status = 201,
    summary = "优惠码: add a shared code ({code}) or generate single-use codes ({count}, at most 10,000)",
    body = { type = "object", properties = {
      code = { type = "string", minLength = 4, maxLength = 32, description = "a shared code, letters and digits" },
      count = { type = "integer", minimum = 1, maximum = MAX_BATCH, description = "single-use codes to generate" } } },
    response = CODES, errors = { [400] = { "invalid_field", "invalid_body" }, [404] = { "promotion_not_found" },
      [409] = { "code_not_required", "code_taken" } } },
  { method = "GET", path = "/promotions/orders/{id:int}/gifts", auth = "admin", handler = order_gifts,
    summary = "满送 / 赠品: an order's gifts (the SKUs to ship with it, the coupons issued on payment)",
    response = { type = "object", required = { "order_id", "items" }, properties = {
      order_id = { type = "integer" }, items = { type = "array", items = GIFT } } } },
  { method = "GET", path = "/promotions/{id:int}/codes", auth = "admin", handler = list_codes,
    summary = "A promotion's codes and how often each was used",
    query = { limit = { type = "integer" }, after = { type = "string", description = "next_after of the previous page" } },
    response = { type = "object", required = { "items" }, properties = {
      items = { type = "array", items = { type = "object", properties = { code = { type = "string" },
        single_use = { type = "boolean" }, uses = { type = "integer" }, created_at = { type = "integer" } } } },
      next_after = { type = "string" } } },
    errors = { [400] = { "invalid_field", "invalid_query" }, [404] = { "promotion_not_found" } } },
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
      kind TEXT NOT NULL CHECK (kind IN ('full_reduction', 'full_discount', 'nth_discount', 'bundle', 'timed_discount',
                                         'gift')),
      skus TEXT NOT NULL,
      tiers TEXT,
      nth INTEGER, percent INTEGER, count INTEGER, price_fen INTEGER,
      starts_at INTEGER NOT NULL, ends_at INTEGER NOT NULL,
      priority INTEGER NOT NULL DEFAULT 0,
      stacks_with_coupon INTEGER NOT NULL DEFAULT 1,
      requires_code INTEGER NOT NULL DEFAULT 0,
      status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
      created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
    );
    CREATE INDEX promotions_promotions_running ON promotions_promotions(status, ends_at);
    CREATE TABLE promotions_codes (
      code TEXT PRIMARY KEY,
      promotion_id INTEGER NOT NULL,
      single_use INTEGER NOT NULL,
      created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX promotions_codes_promotion ON promotions_codes(promotion_id, code);
    -- one row per order that used a code; a single-use code has at most one
    CREATE TABLE promotions_code_uses (
      order_id INTEGER PRIMARY KEY,
      code TEXT NOT NULL,
      user TEXT NOT NULL,
      single_use INTEGER NOT NULL,
      used_at INTEGER NOT NULL
    );
    CREATE INDEX promotions_code_uses_code ON promotions_code_uses(code);
    CREATE UNIQUE INDEX promotions_code_uses_once ON promotions_code_uses(code) WHERE single_use = 1;
    -- 满送 / 赠品: what each order was given, and where each gift stands
    CREATE TABLE promotions_gifts (
      order_id INTEGER NOT NULL,
      promotion_id INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('sku', 'coupon')),
      sku TEXT, qty INTEGER NOT NULL CHECK (qty >= 1), template_id INTEGER, coupon_id INTEGER,
      user TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('reserved', 'out_of_stock', 'released', 'pending', 'issued',
                                           'not_issued', 'cancelled')),
      note TEXT,
      created_at INTEGER NOT NULL,
      PRIMARY KEY (order_id, promotion_id, kind)
    ) WITHOUT ROWID;
    ]],
  },
  routes = ROUTES,
  exports = exports,
  subscribe = { ["order.cancelled"] = on_cancelled, ["order.paid"] = on_paid },
}
