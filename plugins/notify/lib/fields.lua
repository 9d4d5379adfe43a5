-- fields: a template's data, from an event's data, within WeChat's limits.
--
-- A subscription message's data keys name their type: thing1, amount2,
-- character_string3, time4 ... (the type is the key without its number), and
-- WeChat refuses a value over its type's limit (47003 "argument invalid!
-- data.thing1.value invalid"). So every value is cut here to what its type
-- takes, and money (integer fen) and instants (epoch seconds) are written the
-- way WeChat's amount, time and date types accept them.

local fields = {}

---Characters each type takes (amount, time and date have their own shapes).
fields.LIMITS = {
  thing = 20, number = 32, letter = 32, symbol = 5, character_string = 32,
  phone_number = 17, car_number = 8, name = 10, phrase = 5,
}
fields.TYPES = { amount = true, time = true, date = true }
for k in pairs(fields.LIMITS) do fields.TYPES[k] = true end

---The type of a data key ("thing1" -> "thing"), or nil when it names none.
function fields.kind(key)
  local kind = type(key) == "string" and key:match("^([a-z_]+)%d+$")
  return kind and fields.TYPES[kind] and kind or nil
end

---The value at a dotted path ("group.id", "order_ids.1") in ctx, or nil.
function fields.lookup(ctx, path)
  local v = ctx
  for part in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    local n = tonumber(part)
    v = v[n and math.tointeger(n) or part]
  end
  return v
end

local function cut(s, n, ellipsis)
  local len = utf8.len(s)
  if not len then s = s:gsub("[\128-\255]", "?"); len = #s end
  if len <= n then return s end
  if ellipsis then return s:sub(1, utf8.offset(s, n) - 1) .. "…" end
  return s:sub(1, utf8.offset(s, n + 1) - 1)
end

local function when(epoch, with_time)
  local t = tp.localtime(epoch)
  local date = ("%d年%d月%d日"):format(t.year, t.month, t.day)
  return with_time and ("%s %02d:%02d"):format(date, t.hour, t.min) or date
end

---v written as a value of type kind, within its limit.
---@param kind string
---@param v any
---@return string
function fields.format(kind, v)
  if kind == "amount" then
    if math.type(v) == "integer" then
      local sign = v < 0 and "-" or ""
      v = math.abs(v)
      return ("%s¥%d.%02d"):format(sign, v // 100, v % 100)
    end
    return cut(tostring(v), 14, false)
  elseif kind == "time" or kind == "date" then
    if math.type(v) == "integer" then return when(v, kind == "time") end
    return cut(tostring(v), 40, false)
  end
  local s = tostring(v)
  if kind == "character_string" or kind == "number" or kind == "letter" then
    s = s:gsub("[\128-\255]", "")  -- no Chinese in these
    return cut(s, fields.LIMITS[kind], false)
  elseif kind == "name" then
    return cut(s, s:find("[\128-\255]") and 10 or 20, false)
  elseif kind == "thing" then
    return cut(s, fields.LIMITS.thing, true)
  end
  return cut(s, fields.LIMITS[kind], false)
end

---The template's data for WeChat ({thing1 = {value = "..."}}), or nil and
---the key whose value is missing.
---@param spec table key -> "path" | {value = literal} | {from = "path", default = literal}
---@param ctx table
function fields.build(spec, ctx)
  local out = {}
  for key, how in pairs(spec) do
    local v
    if type(how) == "string" then
      v = fields.lookup(ctx, how)
    else
      v = how.value
      if v == nil and how.from then v = fields.lookup(ctx, how.from) end
      if v == nil then v = how.default end
    end
    if v == nil or v == "" then return nil, key end
    out[key] = { value = fields.format(fields.kind(key), v) }
  end
  return out
end

---The page with {path} replaced by ctx's values ("pages/g?id={group.id}").
function fields.page(page, ctx)
  if not page then return nil end
  return (page:gsub("{([%w_%.]+)}", function(path)
    local v = fields.lookup(ctx, path)
    if v == nil then return "" end
    return (tostring(v):gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()) end))
  end))
end

return fields
