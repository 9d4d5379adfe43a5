---@diagnostic disable: undefined-global
-- tp.schema: one declaration of a resource's fields (Kong's schema.lua is the
-- model). From it come the checks with their field errors, the defaults, the
-- set of known fields (check.only), which fields a PATCH may change, and the
-- OpenAPI body, so the docs and the validation cannot disagree.
-- `require("tp.schema")`.
--
--   local SALE = schema.new {
--     { "sku", "ident", max = 64, required = true, fixed = true },
--     { "quantity", "integer", min = 1, max = 10000000, required = true },
--     { "per_user_limit", "integer", min = 1, max = 1000, default = 1 },
--     { "status", "enum", values = { "active", "disabled" }, default = "active" },
--   }
--   check.only(body, SALE.names)
--   local s = SALE:defaults(body)        -- a whole resource from a create body
--   SALE:check(s)                        -- every field's rule, in declaration order
--   routes: body = SALE:body()
--
-- Types: ident (check.ident: 1-max of [A-Za-z0-9_.:-]), text (1-max
-- characters), integer (min, max), epoch (UTC seconds), boolean, enum
-- (values), list (of strings, max_items; the items' own rules are the
-- plugin's), custom (schema: its OpenAPI schema; the plugin reads and checks
-- it). A field may say required, default (a value, or a function returning
-- one), nullable (a JSON null clears it), fixed (set at creation, never by a
-- PATCH), patch = false (not in a PATCH body at all), create = false (not in a
-- create body: only a PATCH sets it), doc
-- (its description), example, and column = false (not a column of its own:
-- the plugin stores it some other way).
--
--   "SELECT " .. SALE:columns("id") .. ", created_at FROM ..."   -- the stored fields, in order
--   tp.db.exec(SALE:insert("flash_sale_sales", { created_at = ":now" }), row)  -- :name parameters
--   tp.db.exec(SALE:update("flash_sale_sales", { updated_at = ":now" }), row)  -- all but fixed; WHERE id = :id
--   local save = SALE:writer("flash_sale_sales", { created_at = ":now" }, { updated_at = ":now" })
--   local id = save(sale)                -- UPDATE if sale.id, else INSERT; booleans as 0/1

local check = require("tp.check")

local schema = {}
schema.__index = schema

-- The bodies :body() made: which schema, and whether for a PATCH.
-- schema.document reads it to say which routes take a declared body. (Strong
-- keys: the sandbox has no weak tables, and a plugin makes a few bodies at
-- load, which live as long as its routes anyway.)
local made = {}

local TYPES = { ident = true, text = true, integer = true, epoch = true, boolean = true, enum = true,
                list = true, custom = true }

---@param fields table[] { name, type, options... } in the order they are checked
function schema.new(fields)
  local s = setmetatable({ fields = {}, names = {}, patchable = {}, by_name = {}, create_names = {},
                          patch_names = {} }, schema)
  for i, f in ipairs(fields) do
    local name, t = f[1], f[2]
    if type(name) ~= "string" or not TYPES[t] then
      error(("tp.schema: field %d must be { name, type } with a type of ident, text, integer, boolean, "
        .. "enum, list or custom"):format(i), 2)
    end
    f.name, f.type = name, t
    if t == "enum" then
      f.set = {}
      for _, v in ipairs(f.values) do f.set[v] = true end
    end
    s.fields[#s.fields + 1] = f
    s.by_name[name] = f
    s.names[name] = true
    if f.create ~= false then s.create_names[name] = true end
    if f.patch ~= false then s.patch_names[name] = true end
    if not f.fixed and f.patch ~= false and t ~= "custom" then s.patchable[#s.patchable + 1] = name end
  end
  return s
end

---A whole resource from a create body: each field the body gives, else its
---default (custom fields are the caller's to read). Required fields are checked
---by :check.
---@param b table
---@return table
function schema:defaults(b)
  local out = {}
  for _, f in ipairs(self.fields) do
    local v = b[f.name]
    if v == tp.json.null and f.nullable then v = nil end
    if v == nil and f.default ~= nil then
      v = f.default
      if type(v) == "function" then v = v() end
      if type(v) == "table" then  -- a fresh copy: never the declaration's own table
        local copy = {}
        for k, x in pairs(v) do copy[k] = x end
        v = copy
      end
    end
    if f.type ~= "custom" then out[f.name] = v end
  end
  return out
end

---Checks v by field f's rule; absent (nil) is fine when optional.
local function check_one(f, v, optional, as)
  local name = as or f.name
  if f.type == "ident" then check.ident(v, name, f.max or 64, optional)
  elseif f.type == "text" then check.text(v, name, f.max or 100, optional)
  elseif f.type == "integer" then check.integer(v, name, f.min or 0, f.max, optional)
  elseif f.type == "epoch" then check.epoch(v, name, optional)
  elseif f.type == "boolean" then
    if v ~= nil or not optional then
      if type(v) ~= "boolean" then check.field_error(name, "must be true or false") end
    end
  elseif f.type == "enum" then check.enum(v, name, f.set, optional)
  elseif f.type == "list" then
    if v ~= nil or not optional then check.list(v, name, f.min_items or 0, f.max_items or 1000) end
  end
end

---Checks every field of r (a whole resource) by its declaration, in order:
---400 invalid_field naming the first that breaks its rule. With patch, r holds
---only what a PATCH changes, and a field it leaves out is not missing. A
---custom field is checked by readers[name](value), at its turn, and r takes
---what the reader returns.
---@param r table
---@param patch boolean?
---@param readers table<string, fun(v: any): any>?
function schema:check(r, patch, readers)
  for _, f in ipairs(self.fields) do
    if f.type == "custom" then
      local read = readers and readers[f.name]
      if read then r[f.name] = read(r[f.name]) end
    else
      check_one(f, r[f.name], patch or not f.required)
    end
  end
end

---Checks one value by field name's declaration and returns it: for a plugin
---whose rules decide which fields a body needs (coupons: by kind), so the
---bounds are still the declared ones. optional: absent (nil) is fine; as: the
---name the error gives ("items[2].sku" for a list's object).
---@param name string
---@param v any
---@param optional boolean?
---@param as string?
---@return any
function schema:field(name, v, optional, as)
  local f = self.by_name[name] or error("tp.schema: no field " .. tostring(name), 2)
  check_one(f, v, optional, as)
  return v
end

---The stored fields (all but column = false) in declaration order.
local function stored(self)
  local out = {}
  for _, f in ipairs(self.fields) do
    if f.column ~= false then out[#out + 1] = f.name end
  end
  return out
end

---Names sorted, for SQL that reads the same every time.
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

---The column list of a SELECT: the columns named in before, the stored fields,
---then those in after ("id", then the fields, then "created_at, updated_at").
---@param before string[]|string|nil
---@param after string[]|string|nil
---@return string
function schema:columns(before, after)
  local out = {}
  for _, list in ipairs({ before or {}, stored(self), after or {} }) do
    if type(list) == "string" then list = { list } end
    for _, c in ipairs(list) do out[#out + 1] = c end
  end
  return table.concat(out, ", ")
end

---INSERT INTO tbl of every stored field as its :name parameter, and of each
---column of extra as the SQL expression it maps to ({ created_at = ":now" }).
---@param tbl string
---@param extra table<string, string>?
---@return string
function schema:insert(tbl, extra)
  local cols, vals = {}, {}
  for _, name in ipairs(stored(self)) do cols[#cols + 1], vals[#vals + 1] = name, ":" .. name end
  for _, name in ipairs(sorted_keys(extra)) do cols[#cols + 1], vals[#vals + 1] = name, extra[name] end
  return ("INSERT INTO %s (%s) VALUES (%s)"):format(tbl, table.concat(cols, ", "), table.concat(vals, ", "))
end

---UPDATE tbl setting every stored field a change may touch (all but fixed)
---to its :name parameter, and each column of extra to its expression, WHERE
---id = :id.
---@param tbl string
---@param extra table<string, string>?
---@return string
function schema:update(tbl, extra)
  local sets = {}
  for _, f in ipairs(self.fields) do
    if f.column ~= false and not f.fixed then sets[#sets + 1] = ("%s = :%s"):format(f.name, f.name) end
  end
  for _, name in ipairs(sorted_keys(extra)) do sets[#sets + 1] = ("%s = %s"):format(name, extra[name]) end
  return ("UPDATE %s SET %s WHERE id = :id"):format(tbl, table.concat(sets, ", "))
end

---A function that writes a resource to tbl and returns its id: UPDATE ...
---WHERE id = :id when it has an id, else INSERT. It binds a copy of the
---resource with each boolean field as 0/1 and now as tp.now() (unless set);
---insert_extra and update_extra are as :insert's and :update's.
---@param tbl string
---@param insert_extra table<string, string>?
---@param update_extra table<string, string>?
---@return fun(r: table): integer
function schema:writer(tbl, insert_extra, update_extra)
  local insert, update = self:insert(tbl, insert_extra), self:update(tbl, update_extra)
  local booleans = {}
  for _, f in ipairs(self.fields) do
    if f.type == "boolean" then booleans[#booleans + 1] = f.name end
  end
  return function(r)
    local row = {}
    for k, v in pairs(r) do row[k] = v end
    for _, name in ipairs(booleans) do row[name] = (r[name] == true or r[name] == 1) and 1 or 0 end
    row.now = row.now or tp.now()
    if r.id then
      tp.db.exec(update, row)
      return r.id
    end
    local _, id = tp.db.exec(insert, row)
    return id
  end
end

---A field's OpenAPI schema, with the same bounds :check enforces.
local function property(f)
  local p
  if f.type == "custom" then
    p = {}  -- a copy: the field's own schema may be shared with other routes
    for k, v in pairs(f.schema) do p[k] = v end
  elseif f.type == "ident" or f.type == "text" then
    p = { type = "string", minLength = 1, maxLength = f.max or (f.type == "ident" and 64 or 100) }
  elseif f.type == "integer" then
    p = { type = "integer", minimum = f.min or 0, maximum = f.max }
  elseif f.type == "epoch" then
    p = { type = "integer", minimum = 0, maximum = check.MAX_EPOCH, description = "UTC epoch seconds" }
  elseif f.type == "boolean" then
    p = { type = "boolean" }
  elseif f.type == "enum" then
    p = { type = "string", enum = f.values }
  else
    p = { type = "array", items = { type = "string", example = f.example }, maxItems = f.max_items }
  end
  if f.nullable and f.type ~= "custom" then p.nullable = true end
  if f.doc and (not p.description or f.type == "epoch") then p.description = f.doc end
  if f.default ~= nil and type(f.default) ~= "function" and type(f.default) ~= "table" then
    p.default = f.default
  end
  return p
end

---The OpenAPI schema of a create body (patch: of a PATCH body, where nothing
---is required); a create body leaves out the create = false fields, a PATCH
---body the patch = false ones.
---@param patch boolean?
---@return table
function schema:body(patch)
  local props, required = {}, {}
  for _, f in ipairs(self.fields) do
    if f[patch and "patch" or "create"] ~= false then
      props[f.name] = property(f)
      if f.required and not patch then required[#required + 1] = f.name end
    end
  end
  local out = { type = "object", properties = props, required = #required > 0 and required or nil }
  made[out] = { schema = self, patch = patch == true }
  return out
end

---The fields as declared, as plain data (what a route's OpenAPI body must say).
---@return table[]
function schema:declared()
  local out = {}
  for i, f in ipairs(self.fields) do
    out[i] = { name = f.name, type = f.type, min = f.min, max = f.max, max_items = f.max_items,
               values = f.values, required = f.required == true, nullable = f.nullable == true,
               fixed = f.fixed == true, patch = f.patch ~= false, create = f.create ~= false }
  end
  return out
end

---The routes of a manifest whose body a schema made (:body), each with its
---fields as declared: { method, path, auth, patch, fields }. A plugin exports
---it as `schemas`, so a test can hold every declared body against the
---OpenAPI the host serves (tests/e2e/test_schema_walk.py).
---@param routes table[] the manifest's routes
---@return table[]
function schema.document(routes)
  local out = {}
  for _, r in ipairs(routes) do
    local m = r.body and made[r.body]
    if m then
      out[#out + 1] = { method = r.method, path = r.path, auth = r.auth or "user", patch = m.patch,
                        fields = m.schema:declared() }
    end
  end
  return out
end

return schema
