---@diagnostic disable: undefined-global
-- catalog: products and their SKUs, with prices in integer fen and stock.
-- Operators write through the admin routes (X-Api-Key); the mini-program reads
-- the public ones. Every other mechanic prices and reserves against these SKUs.

---@class CatalogConfig
---@field max_page_size integer? largest page a list may return (default 100)

local check = require("tp.check")
local schema = require("tp.schema")

local MAX_COUNT = 1000000000  -- a price or a stock: at most 10^9

-- A product's fields and a SKU's, declared once: the checks, the defaults, the
-- columns and the OpenAPI bodies come from here (tp.schema). Fields a body
-- does not know are ignored, as they always were.
local SKU = schema.new {
  { "product_id", "custom", required = true, schema = { type = "integer", description = "an existing product" } },
  { "title", "text", max = 100, required = true },
  { "price_fen", "integer", min = 0, max = MAX_COUNT, required = true, doc = "the list price" },
  { "stock", "integer", min = 0, max = MAX_COUNT, required = true },
}

---A SKU as POST /catalog/products lists it: its code, not its product.
local NEW_SKU = SKU:body()
NEW_SKU.properties.product_id = nil
NEW_SKU.properties.code = { type = "string", pattern = "^[A-Za-z0-9_-]{1,64}$" }
NEW_SKU.required = { "code", "title", "price_fen", "stock" }

local PRODUCT = schema.new {
  { "name", "text", max = 100, required = true },
  { "description", "text", max = 2000 },
  { "status", "enum", values = { "on_sale", "off_sale" }, default = "on_sale" },
  { "skus", "custom", column = false, patch = false, schema = { type = "array", maxItems = 100, items = NEW_SKU,
    description = "each code new to the catalog (409 sku_exists)" } },
}

-- ---- validation: what the schemas cannot say

---@param body table|nil
---@return table
local function require_body(body)
  if type(body) ~= "table" then
    tp.fail(400, "invalid_body", "a JSON object is required")
  end
  return body
end

---@param code any
---@return string
local function check_sku_code(code)
  if type(code) ~= "string" or not code:match("^[%w%-_]+$") or #code > 64 then
    tp.fail(400, "invalid_field", "sku code must be 1-64 letters, digits, '-' or '_'",
      { field = "code" })
  end
  return code
end

-- ---- reads

local SKU_COLUMNS = SKU:columns("code")                   -- code, product_id, title, price_fen, stock
local PRODUCT_COLUMNS = PRODUCT:columns("id", "created_at")  -- id, name, description, status, created_at

local function sku_rows(product_id)
  return tp.db.query([[
    SELECT code, title, price_fen, stock FROM catalog_skus
    WHERE product_id = ? ORDER BY price_fen, code]], product_id)
end

local LOAD_PRODUCT_SQL = "SELECT " .. PRODUCT_COLUMNS .. " FROM catalog_products WHERE id = ?"

local function load_product(id)
  local product = tp.db.one(LOAD_PRODUCT_SQL, id)
  if product then product.skus = sku_rows(id) end
  return product
end

---GET /catalog/products?limit=&after= : products on sale, with their price range.
local function list_products(req)
  local max_page = req.config.max_page_size or 100
  local limit = math.tointeger(tonumber(req.query.limit or "")) or math.min(20, max_page)
  local after = math.tointeger(tonumber(req.query.after or "")) or 0
  if limit < 1 or limit > max_page then
    tp.fail(400, "invalid_query", ("limit must be 1-%d"):format(max_page))
  end
  local items = tp.db.query([[
    SELECT p.id, p.name, min(s.price_fen) AS min_price_fen, max(s.price_fen) AS max_price_fen,
           coalesce(sum(s.stock), 0) AS stock
    FROM catalog_products p LEFT JOIN catalog_skus s ON s.product_id = p.id
    WHERE p.status = 'on_sale' AND p.id > ?
    GROUP BY p.id ORDER BY p.id LIMIT ?]], after, limit)
  local next_after = #items == limit and items[#items].id or nil
  return 200, { items = items, next_after = next_after }
end

---GET /catalog/products/{id} : one product with its SKUs.
local function get_product(req)
  local product = load_product(req.params.id)
  if not product or product.status ~= "on_sale" then
    tp.fail(404, "product_not_found", "no such product")
  end
  return 200, product
end

---GET /catalog/skus/{code}
local function get_sku(req)
  local sku = tp.db.one([[
    SELECT s.code, s.title, s.price_fen, s.stock, s.product_id
    FROM catalog_skus s JOIN catalog_products p ON p.id = s.product_id
    WHERE s.code = ? AND p.status = 'on_sale']], req.params.code)
  if not sku then tp.fail(404, "sku_not_found", "no such sku") end
  return 200, sku
end

-- ---- writes (admin)

---Writes a SKU (created or replaced) once its fields pass the schema.
local function put_sku_row(product_id, code, sku)
  local row = { code = code, product_id = product_id, title = sku.title, price_fen = sku.price_fen,
                stock = sku.stock, now = tp.now() }
  SKU:check(row)
  tp.db.exec([[
    INSERT INTO catalog_skus (code, product_id, title, price_fen, stock, updated_at)
    VALUES (:code, :product_id, :title, :price_fen, :stock, :now)
    ON CONFLICT (code) DO UPDATE SET product_id = excluded.product_id, title = excluded.title,
      price_fen = excluded.price_fen, stock = excluded.stock, updated_at = excluded.updated_at]], row)
end

---POST /catalog/products {name, description?, status?, skus = [{code, title, price_fen, stock}]}
local function create_product(req)
  local body = require_body(req.body)
  local p = PRODUCT:defaults(body)
  PRODUCT:check(p)
  p.now = tp.now()
  local row = tp.db.one(PRODUCT:insert("catalog_products", { created_at = ":now" }) .. " RETURNING id", p)
  local skus = body.skus or {}
  if type(skus) ~= "table" or #skus > 100 then
    tp.fail(400, "invalid_field", "skus must be a list of at most 100", { field = "skus" })
  end
  for _, sku in ipairs(skus) do
    local code = check_sku_code(sku.code)
    if tp.db.one("SELECT 1 AS taken FROM catalog_skus WHERE code = ?", code) then
      tp.fail(409, "sku_exists", ("sku %s already exists"):format(code), { code = code })
    end
    put_sku_row(row.id, code, sku)
  end
  return 201, load_product(row.id)
end

---PATCH /catalog/products/{id} {name?, description?, status?}
local function update_product(req)
  local body = require_body(req.body)
  local p = { id = req.params.id }
  for _, field in ipairs(PRODUCT.patchable) do p[field] = body[field] end
  PRODUCT:check(p, true)
  local changed = tp.db.exec([[
    UPDATE catalog_products SET name = coalesce(:name, name),
      description = coalesce(:description, description), status = coalesce(:status, status)
    WHERE id = :id]], p)
  if changed == 0 then tp.fail(404, "product_not_found", "no such product") end
  return 200, load_product(req.params.id)
end

local PUT_SKU_SQL = "SELECT " .. SKU_COLUMNS .. " FROM catalog_skus WHERE code = ?"

---PUT /catalog/skus/{code} {product_id, title, price_fen, stock} : create or replace a SKU.
local function put_sku(req)
  local body = require_body(req.body)
  local code = check_sku_code(req.params.code)
  local product_id = body.product_id
  if math.type(product_id) ~= "integer" or
      not tp.db.one("SELECT id FROM catalog_products WHERE id = ?", product_id) then
    tp.fail(400, "invalid_field", "product_id must name an existing product",
      { field = "product_id" })
  end
  put_sku_row(product_id, code, body)
  return 200, tp.db.one(PUT_SKU_SQL, code)
end

---POST /catalog/skus/{code}/stock {delta} : add (or with a negative delta remove) stock.
---The update is conditional, so stock never goes below zero.
local function adjust_stock(req)
  local body = require_body(req.body)
  local delta = body.delta
  if math.type(delta) ~= "integer" or delta == 0 or math.abs(delta) > 1000000000 then
    tp.fail(400, "invalid_field", "delta must be a non-zero integer", { field = "delta" })
  end
  local row = tp.db.one([[
    UPDATE catalog_skus SET stock = stock + ?1, updated_at = ?3
    WHERE code = ?2 AND stock + ?1 >= 0 RETURNING code, stock]], delta, req.params.code, tp.now())
  if not row then
    if tp.db.one("SELECT 1 AS found FROM catalog_skus WHERE code = ?", req.params.code) then
      tp.fail(409, "insufficient_stock", "stock cannot go below zero")
    end
    tp.fail(404, "sku_not_found", "no such sku")
  end
  return 200, row
end

-- ---- exports: how orders reserve and return stock (tp.call("catalog", ...))

---@class CatalogLine
---@field sku string
---@field qty integer

---@class CatalogReserved
---@field sku string
---@field qty integer
---@field product_id integer
---@field title string       the SKU's title, for the order's record
---@field price_fen integer  list price at the moment of reservation

local exports = {}

---Takes qty of every line from stock, all or nothing, and returns each line with
---its list price. Each decrement is conditional, so stock never goes below zero.
---@param lines CatalogLine[]
---@return CatalogReserved[]
function exports.reserve(lines)
  local out = {}
  for i, line in ipairs(lines) do
    -- a read, then a conditional write: requests run one at a time, so nothing
    -- comes between them. (One UPDATE ... RETURNING with an IN subquery cost two
    -- ephemeral tables per line: a third of a buy's SQL.)
    local sku = tp.db.one([[
      SELECT s.product_id, s.title, s.price_fen, s.stock, p.status FROM catalog_skus s
      JOIN catalog_products p ON p.id = s.product_id WHERE s.code = ?]], line.sku)
    if not sku then
      tp.fail(404, "sku_not_found", ("no such sku %s"):format(line.sku), { sku = line.sku })
    elseif sku.status ~= "on_sale" then
      tp.fail(409, "not_on_sale", ("sku %s is not on sale"):format(line.sku), { sku = line.sku })
    elseif sku.stock < line.qty or
        tp.db.exec("UPDATE catalog_skus SET stock = stock - ?1 WHERE code = ?2 AND stock >= ?1",
          line.qty, line.sku) ~= 1 then
      tp.fail(409, "insufficient_stock", ("only %d of sku %s left"):format(sku.stock, line.sku),
        { sku = line.sku, stock = sku.stock })
    end
    out[i] = { sku = line.sku, qty = line.qty, product_id = sku.product_id, title = sku.title,
               price_fen = sku.price_fen }
  end
  return out
end

---One SKU with its stock and whether its product is on sale, or nil.
---@param code string
---@return {code: string, product_id: integer, title: string, price_fen: integer, stock: integer, on_sale: boolean}|nil
function exports.sku(code)
  local row = tp.db.one([[
    SELECT s.code, s.product_id, s.title, s.price_fen, s.stock, p.status = 'on_sale' AS on_sale
    FROM catalog_skus s JOIN catalog_products p ON p.id = s.product_id WHERE s.code = ?]], code)
  if row then row.on_sale = row.on_sale == 1 end
  return row
end

local ON_SALE_SKUS_SQL = [[SELECT s.code FROM catalog_skus s JOIN catalog_products p ON p.id = s.product_id
    WHERE s.code > ?1 AND p.status = 'on_sale' ORDER BY s.code LIMIT ?2]]
local MAX_SKUS_PAGE = 1000

---The codes of the SKUs whose product is on sale, in code order after `after`
---(nil: from the first), at most limit of them (1-1000, default 500), and the
---code to pass as `after` for the next page (nil after the last). For reports
---of what did not sell (analytics' slow movers) and other bulk readers.
---@param after string|nil
---@param limit integer|nil
---@return string[] codes
---@return string|nil next_after
function exports.skus_on_sale(after, limit)
  if after ~= nil and type(after) ~= "string" then tp.fail(400, "invalid_argument", "after must be a SKU code or nil") end
  limit = limit == nil and 500 or limit
  if math.type(limit) ~= "integer" or limit < 1 or limit > MAX_SKUS_PAGE then
    tp.fail(400, "invalid_argument", ("limit must be an integer from 1 to %d"):format(MAX_SKUS_PAGE))
  end
  local codes = {}
  for i, r in ipairs(tp.db.query(ON_SALE_SKUS_SQL, after or "", limit)) do codes[i] = r.code end
  return tp.json.array(codes), #codes == limit and codes[#codes] or nil
end

---Puts qty of every line back (an order was cancelled or refunded before shipping).
---@param lines CatalogLine[]
function exports.release(lines)
  for _, line in ipairs(lines) do
    tp.db.exec("UPDATE catalog_skus SET stock = stock + ? WHERE code = ?", line.qty, line.sku)
  end
  return true
end

local ROUTES = {
  { method = "GET", path = "/catalog/products", auth = "none", handler = list_products,
    summary = "Products on sale, with their price range, a page at a time",
    query = {
      limit = { type = "integer",
                description = "page size: 1 to config.max_page_size (default 20)" },
      after = { type = "integer", description = "next_after of the previous page" },
    },
    response = { type = "object", required = { "items" }, properties = {
      items = { type = "array", items = { type = "object", properties = {
        id = { type = "integer" }, name = { type = "string" },
        min_price_fen = { type = "integer" }, max_price_fen = { type = "integer" },
        stock = { type = "integer", description = "over all SKUs" } } } },
      next_after = { type = "integer", description = "absent on the last page" } } } },
  { method = "GET", path = "/catalog/products/{id:int}", auth = "none", handler = get_product,
    summary = "One product on sale, with its SKUs (cheapest first)",
    response = { type = "object", properties = {
      id = { type = "integer" }, name = { type = "string" }, description = { type = "string" },
      status = { type = "string", enum = { "on_sale" } }, created_at = { type = "integer" },
      skus = { type = "array", items = { type = "object", properties = {
        code = { type = "string" }, title = { type = "string" },
        price_fen = { type = "integer" }, stock = { type = "integer" } } } } } } },
  { method = "GET", path = "/catalog/skus/{code}", auth = "none", handler = get_sku,
    summary = "One SKU of a product on sale: price in fen and stock",
    response = { type = "object", properties = {
      code = { type = "string" }, title = { type = "string" }, price_fen = { type = "integer" },
      stock = { type = "integer" }, product_id = { type = "integer" } } } },
  { method = "POST", path = "/catalog/products", auth = "admin", handler = create_product,
    summary = "Create a product with its SKUs", status = 201,
    body = PRODUCT:body(),
    response = { type = "object",
                 description = "the product, as GET /catalog/products/{id} shows it" } },
  { method = "PATCH", path = "/catalog/products/{id:int}", auth = "admin", handler = update_product,
    summary = "Change a product's name, description or status",
    body = PRODUCT:body(true),
    response = { type = "object", description = "the product with its SKUs" } },
  { method = "PUT", path = "/catalog/skus/{code}", auth = "admin", handler = put_sku,
    summary = "Create or replace a SKU",
    body = SKU:body(),
    response = { type = "object", properties = {
      code = { type = "string" }, product_id = { type = "integer" }, title = { type = "string" },
      price_fen = { type = "integer" }, stock = { type = "integer" } } } },
  { method = "POST", path = "/catalog/skus/{code}/stock", auth = "admin", handler = adjust_stock,
    summary = "Add stock, or remove it with a negative delta (never below zero: 409)",
    body = { type = "object", required = { "delta" }, properties = {
      delta = { type = "integer", minimum = -1000000000, maximum = 1000000000,
                description = "not zero" } } },
    response = { type = "object", properties = {
      code = { type = "string" }, stock = { type = "integer" } } } },
}

---The declared bodies of the routes, for a walk against the served OpenAPI.
function exports.schemas() return schema.document(ROUTES) end

return {
  name = "catalog",
  version = "1.2.0",
  exports = exports,
  migrations = {
    [[
    CREATE TABLE catalog_products (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      description TEXT,
      status TEXT NOT NULL DEFAULT 'on_sale' CHECK (status IN ('on_sale', 'off_sale')),
      created_at INTEGER NOT NULL
    );
    CREATE TABLE catalog_skus (
      code TEXT PRIMARY KEY,
      product_id INTEGER NOT NULL REFERENCES catalog_products(id),
      title TEXT NOT NULL,
      price_fen INTEGER NOT NULL CHECK (price_fen >= 0),
      stock INTEGER NOT NULL CHECK (stock >= 0),
      updated_at INTEGER NOT NULL
    );
    CREATE INDEX catalog_skus_product ON catalog_skus(product_id);
    ]],
  },
  routes = ROUTES,
}
