---@diagnostic disable: undefined-global
-- tp.check: input validation for plugins. Every check either returns the value
-- (or nil for an absent optional one) or ends the invocation with
-- 400 invalid_field naming the field, so a handler reads as a list of checks
-- followed by what it does. `require("tp.check")` from any plugin.
--
-- An absent optional value is nil. A JSON null (tp.json.null) is not nil: the
-- checks refuse it like any other wrong value unless the caller maps it to nil
-- first with check.present(v) (or tests it with check.absent(v)).

local suggest = require("tp.suggest")

local check = {}

local MAX_INT = 1000000000000  -- 10^12: far above any price or count, far below 2^53

check.MAX_EPOCH = 253402300799  -- 9999-12-31T23:59:59Z
---The most users one targeted issue reaches (coupons' POST .../issue and its
---issue export, a campaign's coupon_drop): one limit, checked the same at
---`tidepool campaign check` and at issue time.
check.MAX_ISSUE_USERS = 1000

---True for a missing value or a JSON null.
---@param v any
---@return boolean
function check.absent(v)
  return v == nil or v == tp.json.null
end

---v, or nil for a JSON null: lets an optional check treat null as absent.
---@param v any
---@return any
function check.present(v)
  if v == tp.json.null then return nil end
  return v
end

---True if v is a Lua sequence (a JSON array; an empty table counts).
---@param v any
---@return boolean
function check.is_list(v)
  if type(v) ~= "table" then return false end
  local n = #v
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

---True for a user id as the host accepts it in tokens: 1-64 of [A-Za-z0-9_-:@].
---@param v any
---@return boolean
function check.is_user_id(v)
  return type(v) == "string" and #v >= 1 and #v <= 64 and v:match("^[%w_:@%-]+$") ~= nil
end

---Ends the invocation with 400 invalid_field for field.
---@param field string
---@param message string
function check.field_error(field, message)
  tp.fail(400, "invalid_field", ("%s %s"):format(field, message), { field = field })
end

---The request body, which must be a JSON object. With object_only, a non-empty
---JSON array is refused too (an empty one decodes like {} and passes).
---@param body any
---@param object_only boolean?
---@return table
function check.body(body, object_only)
  if type(body) ~= "table" or (object_only and #body > 0 and check.is_list(body)) then
    tp.fail(400, "invalid_body", "a JSON object is required")
  end
  return body
end

---The name of allowed (a set) that name most likely misspells, or nil: the
---nearest by edit distance if it is close enough to be a typo (tp.suggest),
---else the shortest that begins with name ("per_user" -> "per_user_limit").
---Names are tried in sorted order, so the answer never varies.
---@param name string
---@param allowed table<string, any>
---@return string|nil
function check.suggest(name, allowed)
  local names = {}
  for k in pairs(allowed) do
    if type(k) == "string" then names[#names + 1] = k end
  end
  table.sort(names)
  local best = suggest.closest(name, names)
  if best or #name < 3 then return best end
  for _, k in ipairs(names) do  -- the shortest that begins with name
    if k:sub(1, #name) == name and (not best or #k < #best) then best = k end
  end
  return best
end

---Refuses any key of body that is not in allowed (a set) with 400 invalid_field,
---adding "did you mean 'x'?" when the key looks like a typo of an allowed one.
---Keys are checked in sorted order so that the error names the same field every time.
---@param body table
---@param allowed table<string, boolean>
---@param why string? how to say what is wrong (default "is not a known field")
function check.only(body, allowed, why)
  local unknown = {}
  for k in pairs(body) do
    if type(k) ~= "string" or not allowed[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown == 0 then return end
  table.sort(unknown)
  local message = why or "is not a known field"
  local guess = check.suggest(unknown[1], allowed)
  if guess then message = ("%s; did you mean '%s'?"):format(message, guess) end
  check.field_error(unknown[1], message)
end

---A campaign item's ref: 1-128 of [a-z0-9_/.-] ("double11/flash_sale/2"),
---stable across reloads of the campaign that names it.
---@param value any
---@param field string? default "ref"
---@return string
function check.campaign_ref(value, field)
  if type(value) ~= "string" or #value == 0 or #value > 128 or not value:match("^[a-z0-9_/%.%-]+$") then
    check.field_error(field or "ref", "must be 1-128 of a-z, 0-9, '_', '/', '.' or '-'")
  end
  return value
end

---A string of 1..max_len characters (UTF-8).
---@param value any
---@param field string
---@param max_len integer
---@param optional boolean?
---@return string|nil
function check.text(value, field, max_len, optional)
  if value == nil and optional then return nil end
  local n = type(value) == "string" and utf8.len(value)
  if not n or n == 0 or n > max_len then
    check.field_error(field, ("must be a string of 1-%d characters"):format(max_len))
  end
  return value
end

---An identifier: 1..max_len letters, digits, '-', '_', '.' or ':'.
---@param value any
---@param field string
---@param max_len integer?
---@param optional boolean?
---@return string|nil
function check.ident(value, field, max_len, optional)
  if value == nil and optional then return nil end
  max_len = max_len or 64
  if type(value) ~= "string" or #value == 0 or #value > max_len or not value:match("^[%w%-_%.:]+$") then
    check.field_error(field, ("must be 1-%d letters, digits, '-', '_', '.' or ':'"):format(max_len))
  end
  return value
end

---A user id as tokens carry it: 1-64 letters, digits, '-', '_', ':' or '@'.
---@param value any
---@param field string
---@param optional boolean?
---@return string|nil
function check.user(value, field, optional)
  if value == nil and optional then return nil end
  if not check.is_user_id(value) then
    check.field_error(field, "must be a user id: 1-64 letters, digits, '-', '_', ':' or '@'")
  end
  return value
end

---An integer in [min, max] (max defaults to 10^12).
---@param value any
---@param field string
---@param min integer
---@param max integer?
---@param optional boolean?
---@return integer|nil
function check.integer(value, field, min, max, optional)
  if value == nil and optional then return nil end
  max = max or MAX_INT
  if math.type(value) ~= "integer" or value < min or value > max then
    check.field_error(field, ("must be an integer from %d to %d"):format(min, max))
  end
  return value
end

---An instant as UTC epoch seconds (0..check.MAX_EPOCH).
---@param value any
---@param field string
---@param optional boolean?
---@return integer|nil
function check.epoch(value, field, optional)
  if value == nil and optional then return nil end
  if math.type(value) ~= "integer" or value < 0 or value > check.MAX_EPOCH then
    check.field_error(field, ("must be an instant in UTC epoch seconds (an integer from 0 to %d)")
      :format(check.MAX_EPOCH))
  end
  return value
end

---A boolean (default when absent).
---@param value any
---@param field string
---@param default boolean
---@return boolean
function check.boolean(value, field, default)
  if value == nil then return default end
  if type(value) ~= "boolean" then check.field_error(field, "must be true or false") end
  return value
end

---One of the keys of allowed.
---@param value any
---@param field string
---@param allowed table<string, any>
---@param optional boolean?
---@return string|nil
function check.enum(value, field, allowed, optional)
  if value == nil and optional then return nil end
  if type(value) ~= "string" or allowed[value] == nil then
    local names = {}
    for name in pairs(allowed) do names[#names + 1] = name end
    table.sort(names)
    check.field_error(field, "must be one of " .. table.concat(names, ", "))
  end
  return value
end

---A list (a table with items 1..n and nothing else) of min..max items.
---@param value any
---@param field string
---@param min integer
---@param max integer
---@param noun string? what the error calls the items (default "items")
---@return table
function check.list(value, field, min, max, noun)
  local n = check.is_list(value) and #value or -1
  if n < min or n > max then
    check.field_error(field, ("must be a list of %d-%d %s"):format(min, max, noun or "items"))
  end
  return value
end

---A page request from a query string: limit (1..max, default) and after (an id cursor).
---@param query table<string, string>
---@param default integer
---@param max integer
---@return integer limit, integer|nil after
function check.page(query, default, max)
  local limit = default
  if query.limit then
    limit = math.tointeger(tonumber(query.limit))
    if not limit or limit < 1 or limit > max then
      tp.fail(400, "invalid_query", ("limit must be an integer from 1 to %d"):format(max))
    end
  end
  local after
  if query.after then
    after = math.tointeger(tonumber(query.after))
    if not after or after < 0 then
      tp.fail(400, "invalid_query", "after must be an integer cursor (next_after of the previous page)")
    end
  end
  return limit, after
end

return check
