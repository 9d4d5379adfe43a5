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
-- PATCH), doc (its description) and example.

local check = require("tp.check")

local schema = {}
schema.__index = schema

local TYPES = { ident = true, text = true, integer = true, epoch = true, boolean = true, enum = true,
                list = true, custom = true }

---@param fields table[] { name, type, options... } in the order they are checked
function schema.new(fields)
  local s = setmetatable({ fields = {}, names = {}, patchable = {}, by_name = {} }, schema)
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
    if not f.fixed and t ~= "custom" then s.patchable[#s.patchable + 1] = name end
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

---Checks every field of r (a whole resource) by its declaration, in order:
---400 invalid_field naming the first that breaks its rule.
---@param r table
function schema:check(r)
  for _, f in ipairs(self.fields) do
    local v, name = r[f.name], f.name
    local optional = not f.required
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
end

---The OpenAPI schema of a create body (patch: of a PATCH body, where nothing
---is required): every field with its type and the same bounds :check enforces.
---@param patch boolean?
---@return table
function schema:body(patch)
  local props, required = {}, {}
  for _, f in ipairs(self.fields) do
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
    props[f.name] = p
    if f.required and not patch then required[#required + 1] = f.name end
  end
  return { type = "object", properties = props, required = #required > 0 and required or nil }
end

return schema
