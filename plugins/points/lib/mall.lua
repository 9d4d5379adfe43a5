-- The points mall (积分商城): the operator lists items, each a catalog SKU or
-- a coupon template, with a points price and a stock of its own; a user
-- exchanges points for one. An exchange is one transaction: the item's stock,
-- the user's limit, the points, then the SKU's unit from the catalog or the
-- coupon from the coupons plugin. If the catalog has no unit left or coupons
-- gives no coupon, it fails with 409 and nothing of it stays: not the points,
-- not the item's stock.

local check = require("tp.check")
local schema = require("tp.schema")
local ledger = require("lib.ledger")
local risk = require("tp.risk")

local mall = {}

mall.ITEM = schema.new {
  { "kind", "enum", values = { "sku", "coupon" }, required = true, fixed = true,
    doc = "sku: a unit of a catalog SKU; coupon: a coupon of a template" },
  { "sku", "ident", max = 64, fixed = true, doc = "kind sku: the catalog SKU" },
  { "template_id", "integer", min = 1, max = 1000000000000, fixed = true, doc = "kind coupon: the coupon template" },
  { "title", "text", max = 100, required = true },
  { "points_price", "integer", min = 1, max = 100000000, required = true, doc = "points per exchange" },
  { "stock", "integer", min = 0, max = 10000000, required = true, doc = "exchanges left" },
  { "per_user_limit", "integer", min = 1, max = 1000, nullable = true, doc = "exchanges per user (none: no limit)" },
  { "status", "enum", values = { "active", "paused" }, default = "active" },
}

local COLUMNS = mall.ITEM:columns("id", { "exchanged", "created_at", "updated_at" })
local save = mall.ITEM:writer("points_items", { exchanged = "0", created_at = ":now", updated_at = ":now" },
  { updated_at = ":now" })

mall.ITEM_SCHEMA = { type = "object", required = { "id", "kind", "title", "points_price", "stock", "status" },
  properties = { id = { type = "integer" }, kind = { type = "string", enum = { "sku", "coupon" } },
    sku = { type = "string" }, template_id = { type = "integer" }, title = { type = "string" },
    points_price = { type = "integer", minimum = 1 }, stock = { type = "integer", minimum = 0 },
    per_user_limit = { type = "integer", nullable = true }, status = { type = "string", enum = { "active", "paused" } },
    exchanged = { type = "integer", minimum = 0 }, created_at = { type = "integer" }, updated_at = { type = "integer" } } }

mall.EXCHANGE_SCHEMA = { type = "object", required = { "id", "item_id", "user", "kind", "points", "created_at" },
  properties = { id = { type = "integer" }, item_id = { type = "integer" }, user = { type = "string" },
    kind = { type = "string", enum = { "sku", "coupon" } }, sku = { type = "string" },
    coupon_id = { type = "integer" }, points = { type = "integer" }, created_at = { type = "integer" } } }

local LOAD_SQL = "SELECT " .. COLUMNS .. " FROM points_items WHERE id = ?"

local function load(id)
  return tp.db.one(LOAD_SQL, id)
end

---An item's kind decides which of sku and template_id it needs.
local function check_kind(item)
  if item.kind == "sku" then
    mall.ITEM:field("sku", item.sku)
    if item.template_id ~= nil then check.field_error("template_id", "an item of kind sku has no template_id") end
  else
    mall.ITEM:field("template_id", item.template_id)
    if item.sku ~= nil then check.field_error("sku", "an item of kind coupon has no sku") end
  end
end

function mall.create(req)
  local b = check.body(req.body, true)
  check.only(b, mall.ITEM.names)
  local item = mall.ITEM:defaults(b)
  mall.ITEM:check(item)
  check_kind(item)
  if item.kind == "sku" and not tp.call("catalog", "sku", item.sku) then
    tp.fail(404, "sku_not_found", ("no such sku %s"):format(item.sku), { sku = item.sku })
  end
  return 201, load(save(item))
end

function mall.update(req)
  local item = load(req.params.id)
  if not item then tp.fail(404, "item_not_found", "no such item") end
  local b = check.body(req.body, true)
  check.only(b, mall.ITEM.patch_names)
  mall.ITEM:check(b, true)
  for _, f in ipairs(mall.ITEM.patchable) do
    if b[f] ~= nil then item[f] = b[f] end
  end
  if b.per_user_limit == tp.json.null then item.per_user_limit = nil end
  save(item)
  return 200, load(item.id)
end

local ADMIN_LIST_SQL = "SELECT " .. COLUMNS .. " FROM points_items WHERE id > ? ORDER BY id LIMIT ?"

function mall.admin_list(req)
  local limit, after = check.page(req.query, 50, 500)
  local rows = tp.db.query(ADMIN_LIST_SQL, after or 0, limit)
  return 200, { items = tp.json.array(rows), next_after = #rows == limit and rows[#rows].id or nil }
end

local LIST_SQL = "SELECT " .. COLUMNS .. [[ FROM points_items
    WHERE status = 'active' AND id > ? ORDER BY id LIMIT ?]]

function mall.list(req)
  local limit, after = check.page(req.query, 50, 200)
  local rows = tp.db.query(LIST_SQL, after or 0, limit)
  return 200, { items = tp.json.array(rows), next_after = #rows == limit and rows[#rows].id or nil }
end

---The coupon of template_id for user, or 409 out_of_stock with coupons' reason.
local function issue_coupon(item, user, exchange_id)
  local ok, result = pcall(tp.call, "coupons", "issue", item.template_id, { user },
    "points:exchange:" .. exchange_id)
  local coupon = ok and result.coupons and result.coupons[1]
  if not coupon then
    local reason = ok and type(result.skipped) == "table" and result.skipped[1] and result.skipped[1].reason
      or (type(result) == "table" and result.code) or "coupons_failed"
    tp.fail(409, "out_of_stock", "the coupon behind this item cannot be given now; nothing was spent",
      { reason = tostring(reason) })
  end
  return coupon.coupon_id
end

---POST /points/mall/items/{id}/exchange: one exchange, all or nothing.
function mall.exchange(req)
  local user, now = req.user, tp.now()
  local item = load(req.params.id)
  if not item or item.status ~= "active" then tp.fail(404, "item_not_found", "no such item in the mall") end
  if item.per_user_limit then
    local n = tp.db.one("SELECT count(*) AS n FROM points_exchanges WHERE item_id = ? AND user = ?", item.id, user).n
    if n >= item.per_user_limit then
      tp.fail(409, "limit_reached", ("you may exchange this item %d times"):format(item.per_user_limit),
        { per_user_limit = item.per_user_limit })
    end
  end
  risk.check(req, "claim", { plugin = "points", id = item.id })
  if tp.db.exec([[UPDATE points_items SET stock = stock - 1, exchanged = exchanged + 1
      WHERE id = ? AND stock > 0]], item.id) == 0 then
    tp.fail(409, "sold_out", "this item is all exchanged")
  end
  local _, id = tp.db.exec([[INSERT INTO points_exchanges (item_id, user, kind, sku, points, created_at)
    VALUES (?, ?, ?, ?, ?, ?)]], item.id, user, item.kind, item.sku, item.points_price, now)
  local entry, balance = ledger.debit(user, "spend", item.points_price, "mall:" .. id, item.title)
  if not entry then
    tp.fail(409, "insufficient_points", ("you have %d points; this item takes %d"):format(balance, item.points_price),
      { balance = balance, points = item.points_price })
  end
  local coupon_id
  if item.kind == "sku" then
    local ok, err = pcall(tp.call, "catalog", "reserve", { { sku = item.sku, qty = 1 } })
    if not ok then
      tp.fail(409, "out_of_stock", "the product behind this item is out of stock; nothing was spent",
        { reason = type(err) == "table" and err.code or "catalog_failed" })
    end
  else
    coupon_id = issue_coupon(item, user, id)
    tp.db.exec("UPDATE points_exchanges SET coupon_id = ? WHERE id = ?", coupon_id, id)
  end
  tp.events.emit("points.exchanged", { user = user, item_id = item.id, exchange_id = id, kind = item.kind,
    sku = item.sku, coupon_id = coupon_id, points = item.points_price })
  return 201, { exchange = tp.db.one([[SELECT id, item_id, user, kind, sku, coupon_id, points, created_at
    FROM points_exchanges WHERE id = ?]], id), balance = balance }
end

function mall.mine(req)
  local limit, after = check.page(req.query, 20, 100)
  local rows = tp.db.query([[SELECT id, item_id, user, kind, sku, coupon_id, points, created_at
    FROM points_exchanges WHERE user = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?]],
    req.user, after, after, limit)
  return 200, { items = tp.json.array(rows), next_after = #rows == limit and rows[#rows].id or nil }
end

return mall
