---@diagnostic disable: undefined-global
-- tp.check: input validation for plugins. Every check either returns the value
-- (or nil for an absent optional one) or ends the invocation with
-- 400 invalid_field naming the field, so a handler reads as a list of checks
-- followed by what it does. `require("tp.check")` from any plugin.

local check = {}

local MAX_INT = 1000000000000  -- 10^12: far above any price or count, far below 2^53

---Ends the invocation with 400 invalid_field for field.
---@param field string
---@param message string
function check.field_error(field, message)
  tp.fail(400, "invalid_field", ("%s %s"):format(field, message), { field = field })
end

---The request body, which must be a JSON object.
---@param body any
---@return table
function check.body(body)
  if type(body) ~= "table" then
    tp.fail(400, "invalid_body", "a JSON object is required")
  end
  return body
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
---@return table
function check.list(value, field, min, max)
  local n = type(value) == "table" and #value or -1
  if n >= 0 then
    for k in pairs(value) do
      if math.type(k) ~= "integer" or k < 1 or k > n then n = -1; break end
    end
  end
  if n < min or n > max then
    check.field_error(field, ("must be a list of %d-%d items"):format(min, max))
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
    if not after then tp.fail(400, "invalid_query", "after must be an integer cursor") end
  end
  return limit, after
end

return check
