-- Local days in the brand's zone, as "YYYY-MM-DD" text. A day's neighbours
-- are found from its local noon, so a daylight-saving change never skips or
-- repeats a date.

local when = require("tp.when")

local days = {}

---The local day of an epoch (default now).
---@param at integer?
---@return string
function days.of(at)
  local t = tp.localtime(at or tp.now())
  return ("%04d-%02d-%02d"):format(t.year, t.month, t.day)
end

---The local day `n` days after `day` (before, for n < 0).
---@param day string
---@param n integer
---@return string
function days.add(day, n)
  local noon = assert(when.parse(day .. " 12:00"), "not a local day")
  return days.of(noon + n * 86400)
end

---day as given when it is a real local date "YYYY-MM-DD", else nil.
---@param v any
---@return string|nil
function days.parse(v)
  if type(v) ~= "string" or not v:match("^%d%d%d%d%-%d%d%-%d%d$") then return nil end
  local e = when.parse(v .. " 12:00")
  if not e or days.of(e) ~= v then return nil end
  return v
end

return days
