---@diagnostic disable: undefined-global
-- coupons/lib/check.lua: input validation. Every check returns the value (nil
-- for an absent optional one) or ends the invocation with a 400 naming the
-- field, so that nothing is ever written from half-checked input. A JSON
-- null counts as absent.

local check = {}

check.MAX_FEN = 100000000000       -- 10^11 fen = ¥1,000,000,000: above any coupon or order
check.MAX_EPOCH = 253402300799     -- 9999-12-31T23:59:59Z
check.MAX_QUANTITY = 1000000000
check.MAX_PER_USER = 1000
check.MAX_PRODUCT_ID = 9007199254740991  -- 2^53 - 1

---True for a missing value or a JSON null.
---@param v any
---@return boolean
function check.absent(v)
  return v == nil or v == tp.json.null
end

---Ends the invocation with 400 `code` (invalid_field unless given) for field.
---@param field string
---@param message string
---@param code string?
function check.fail(field, message, code)
  tp.fail(400, code or "invalid_field", ("%s %s"):format(field, message), { field = field })
end

---The request body, which must be a JSON object (not an array).
---@param body any
---@return table
function check.body(body)
  if type(body) ~= "table" or (#body > 0 and check.is_list(body)) then
    tp.fail(400, "invalid_body", "a JSON object is required")
  end
  return body
end

---Refuses any key of body that is not in allowed (a set). Keys are checked in
---sorted order so that the error names the same field every time.
---@param body table
---@param allowed table<string, boolean>
---@param why string? how to say what is wrong (default "is not a known field")
function check.only(body, allowed, why)
  local unknown = {}
  for k in pairs(body) do
    if type(k) ~= "string" or not allowed[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown > 0 then
    table.sort(unknown)
    check.fail(unknown[1], why or "is not a known field")
  end
end

---A string of 1..max_len UTF-8 characters.
---@param v any
---@param field string
---@param max_len integer
---@param optional boolean?
---@return string|nil
function check.text(v, field, max_len, optional)
  if optional and check.absent(v) then return nil end
  local n = type(v) == "string" and utf8.len(v)
  if not n or n == 0 or n > max_len then
    check.fail(field, ("must be a string of 1-%d characters"):format(max_len))
  end
  return v
end

---An integer in [min, max].
---@param v any
---@param field string
---@param min integer
---@param max integer
---@param optional boolean?
---@return integer|nil
function check.int(v, field, min, max, optional)
  if optional and check.absent(v) then return nil end
  if math.type(v) ~= "integer" or v < min or v > max then
    check.fail(field, ("must be an integer from %d to %d"):format(min, max))
  end
  return v
end

---An instant as UTC epoch seconds.
---@param v any
---@param field string
---@param optional boolean?
---@return integer|nil
function check.epoch(v, field, optional)
  if optional and check.absent(v) then return nil end
  if math.type(v) ~= "integer" or v < 0 or v > check.MAX_EPOCH then
    check.fail(field, "must be an instant in UTC epoch seconds (an integer from 0 to 253402300799)")
  end
  return v
end

---One of the keys of set (default when absent).
---@param v any
---@param field string
---@param set table<string, boolean>
---@param default string?
---@return string
function check.one_of(v, field, set, default)
  if default and check.absent(v) then return default end
  if type(v) ~= "string" or not set[v] then
    local names = {}
    for k in pairs(set) do names[#names + 1] = k end
    table.sort(names)
    check.fail(field, "must be one of " .. table.concat(names, ", "))
  end
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

---A JSON array of min..max entries.
---@param v any
---@param field string
---@param min integer
---@param max integer
---@return any[]
function check.list(v, field, min, max)
  if not check.is_list(v) or #v < min or #v > max then
    check.fail(field, ("must be a list of %d-%d entries"):format(min, max))
  end
  return v
end

---True for a user id as the host accepts it in tokens: 1-64 of [A-Za-z0-9_-:@].
---@param v any
---@return boolean
function check.is_user_id(v)
  return type(v) == "string" and #v >= 1 and #v <= 64 and v:match("^[%w_:@%-]+$") ~= nil
end

return check
