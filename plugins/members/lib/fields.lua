---@diagnostic disable: undefined-global
-- members/lib/fields.lua: a member's profile fields, built-in and custom, as
-- one declaration: what each field holds, who may write it, how it is checked
-- and how a segment compares it. Validation, the API's schema and the segment
-- compiler all read this table, so they cannot drift apart.

local check = require("tp.check")

local fields = {}

---@class MemberField
---@field type "string"|"integer"|"enum"|"date"|"boolean"
---@field column string?  the SQL expression a segment compares (m. = the member row)
---@field max_len integer? strings
---@field min integer? integers
---@field max integer? integers
---@field values string[]? enums
---@field editable boolean? the member may change it (PATCH /members/me)
---@field writable boolean? an operator or identify may set it
---@field doc string

-- Built-in profile fields (columns of members_members). Facts (paid_*) are the
-- host's record of orders: read-only, kept by lib/facts.lua.
fields.BUILTIN = {
  nickname = { type = "string", max_len = 64, editable = true, writable = true, column = "m.nickname",
               doc = "display name" },
  gender = { type = "enum", values = { "male", "female", "unknown" }, editable = true, writable = true,
             column = "m.gender", doc = "male, female or unknown" },
  birthday = { type = "date", editable = true, writable = true, column = "m.birthday",
               doc = "YYYY-MM-DD (personal data: erased on request)" },
  city = { type = "string", max_len = 64, editable = true, writable = true, column = "m.city",
           doc = "city name as the brand writes it" },
  store = { type = "string", max_len = 64, writable = true, column = "m.store",
            doc = "the store the member belongs to (a store code)" },
  guide = { type = "string", max_len = 64, writable = true, column = "m.guide",
            doc = "the shopping guide (导购) who serves the member" },
  referrer = { type = "string", max_len = 64, writable = true, column = "m.referrer",
               doc = "the member who brought this one" },
  first_source = { type = "string", max_len = 64, column = "m.first_source",
                   doc = "channel of the first identify (set once)" },
  last_source = { type = "string", max_len = 64, column = "m.last_source",
                  doc = "channel of the latest identify" },
  joined_at = { type = "integer", column = "m.joined_at", doc = "epoch of the first identify" },
}

-- Facts a segment may compare (read-only, from order events).
fields.FACTS = {
  paid_orders = { type = "integer", column = "m.paid_orders", doc = "paid orders, ever" },
  paid_fen = { type = "integer", column = "m.paid_fen", doc = "fen paid, ever" },
  refunded_fen = { type = "integer", column = "m.refunded_fen", doc = "fen refunded, ever" },
  net_fen = { type = "integer", column = "(m.paid_fen - m.refunded_fen)", doc = "paid minus refunded" },
  first_paid_at = { type = "integer", column = "m.first_paid_at", doc = "epoch of the first payment" },
  last_paid_at = { type = "integer", column = "m.last_paid_at", doc = "epoch of the latest payment" },
  days_since_last_paid = { type = "integer", column = "((:now - m.last_paid_at) / 86400)",
                           doc = "whole days since the latest payment (empty if never paid)" },
  days_since_joined = { type = "integer", column = "((:now - m.joined_at) / 86400)",
                        doc = "whole days since joining" },
  birthday_month = { type = "integer", column = "CAST(substr(m.birthday, 6, 2) AS INTEGER)",
                     doc = "1-12, from birthday" },
  has_phone = { type = "boolean", column = "(m.phone_masked IS NOT NULL)", doc = "a verified phone is known" },
  coupon_orders = { type = "integer", column = "(SELECT count(o.coupon_id) FROM members_orders o WHERE o.n = m.n)",
                    doc = "paid orders that used a coupon, ever" },
}

-- Facts over a window: {field = "paid_fen", within_days = 90, ...}.
fields.WINDOWED = {
  paid_orders = "count(*)",
  paid_fen = "coalesce(sum(o.paid_fen), 0)",
  net_fen = "coalesce(sum(o.paid_fen - o.refunded_fen), 0)",
  coupon_orders = "count(o.coupon_id)",
}

local TYPES = { string = true, integer = true, enum = true, date = true, boolean = true }
local NAME = "^[a-z][a-z0-9_]*$"

---Reads the brand's custom fields from the plugin config (config.fields) at
---load. A wrong declaration stops the load with a message naming it.
---@param conf table?
---@return table<string, MemberField>
function fields.custom_from_config(conf)
  local out = {}
  if conf == nil then return out end
  if type(conf) ~= "table" then error("members config: fields must be a table of field declarations", 0) end
  for name, d in pairs(conf) do
    local where = ("members config: fields.%s"):format(tostring(name))
    if type(name) ~= "string" or not name:match(NAME) or #name > 32 then
      error(where .. ": a field name is 1-32 of a-z, 0-9, _ starting with a letter", 0)
    end
    if fields.BUILTIN[name] or fields.FACTS[name] then error(where .. ": is a built-in field", 0) end
    if type(d) ~= "table" or not TYPES[d.type] then
      error(where .. ": type must be string, integer, enum, date or boolean", 0)
    end
    local f = { type = d.type, editable = d.editable == true, writable = true,
                doc = type(d.doc) == "string" and d.doc or "custom field",
                column = ("json_extract(m.custom, '$.%s')"):format(name) }
    if d.type == "string" then
      f.max_len = math.tointeger(d.max_len) or 100
      if f.max_len < 1 or f.max_len > 1000 then error(where .. ": max_len must be 1-1000", 0) end
    elseif d.type == "integer" then
      f.min, f.max = math.tointeger(d.min), math.tointeger(d.max)
      if (d.min and not f.min) or (d.max and not f.max) then error(where .. ": min and max are integers", 0) end
    elseif d.type == "enum" then
      if type(d.values) ~= "table" or #d.values == 0 then error(where .. ": an enum lists its values", 0) end
      for _, v in ipairs(d.values) do
        if type(v) ~= "string" then error(where .. ": enum values are strings", 0) end
      end
      f.values = d.values
    end
    out[name] = f
  end
  return out
end

local function is_date(v)
  local y, mo, d = tostring(v):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if not y or mo < 1 or mo > 12 or d < 1 then return false end
  local days = ({ 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 })[mo]
  if mo == 2 and (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) then days = 29 end
  return d <= days and y >= 1900 and y <= 2100
end
fields.is_date = is_date

local MAX_INT = 1000000000000

---What is wrong with value for field f ("must be ..."), or nil when it is
---valid. The one statement of each type's rule: the API's checks and a CSV
---import's lines both use it.
---@param f MemberField
---@param value any (not nil)
---@return string|nil
function fields.problem(f, value)
  local t = f.type
  if t == "string" then
    local n = type(value) == "string" and utf8.len(value)
    if not n or n == 0 or n > f.max_len then return ("must be a string of 1-%d characters"):format(f.max_len) end
  elseif t == "integer" then
    local lo, hi = f.min or 0, f.max or MAX_INT
    if math.type(value) ~= "integer" or value < lo or value > hi then
      return ("must be an integer from %d to %d"):format(lo, hi)
    end
  elseif t == "enum" then
    if not f.set then
      f.set = {}
      for _, v in ipairs(f.values) do f.set[v] = true end
      local names = {}
      for _, v in ipairs(f.values) do names[#names + 1] = v end
      table.sort(names)
      f.names = table.concat(names, ", ")
    end
    if type(value) ~= "string" or not f.set[value] then return "must be one of " .. f.names end
  elseif t == "date" then
    if type(value) ~= "string" or not is_date(value) then return "must be a date YYYY-MM-DD" end
  elseif t == "boolean" then
    if type(value) ~= "boolean" then return "must be true or false" end
  end
  return nil
end

---Checks one value against its field; nil (or JSON null) clears it.
---@param f MemberField
---@param value any
---@param name string the field's name for the error
---@return any value (nil to clear)
function fields.check_value(f, value, name)
  if check.absent(value) then return nil end
  local problem = fields.problem(f, value)
  if problem then check.field_error(name, problem) end
  return value
end

---Checks a profile patch: only known fields, each valid; who says which may be
---written ("member": editable ones; "operator": writable ones).
---@param body table
---@param custom table<string, MemberField>
---@param who "member"|"operator"
---@param field_prefix string? for error names, e.g. "profile."
---@return table builtin, table custom (name -> value or tp.json.null to clear)
function fields.check_patch(body, custom, who, field_prefix)
  local prefix = field_prefix or ""
  local allowed = {}
  for name, f in pairs(fields.BUILTIN) do
    if (who == "member" and f.editable) or (who == "operator" and f.writable) then allowed[name] = true end
  end
  for name, f in pairs(custom) do
    if who == "operator" or f.editable then allowed[name] = true end
  end
  check.only(body, allowed, who == "member" and "cannot be set here" or nil)
  local b, c = {}, {}
  for name, value in pairs(body) do
    local f = fields.BUILTIN[name]
    if f then
      local v = fields.check_value(f, value, prefix .. name)
      b[name] = v == nil and tp.json.null or v
    else
      local v = fields.check_value(custom[name], value, prefix .. name)
      c[name] = v == nil and tp.json.null or v
    end
  end
  return b, c
end

return fields
