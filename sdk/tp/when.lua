-- tp.when: the brand's wall-clock times as people write them, "2026-11-11 10:00"
-- (or with seconds, "2026-11-11 10:00:30"), to and from UTC epoch seconds in
-- the tenant's time zone (tp.timezone()). Campaign scripts use it; any plugin
-- may: `require("tp.when")`.

local when = {}

---Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian).
---@param y integer
---@param m integer
---@param d integer
---@return integer
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function days_in_month(y, m)
  if m == 2 then return (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) and 29 or 28 end
  return (m == 4 or m == 6 or m == 9 or m == 11) and 30 or 31
end

local function same(t, y, mo, d, h, mi, s)
  return t.year == y and t.month == mo and t.day == d and t.hour == h and t.min == mi and t.sec == s
end

---"YYYY-MM-DD HH:MM[:SS]" in the tenant's zone as UTC epoch seconds, or nil
---and why not (a malformed text, a date that does not exist, or a local time
---skipped by a daylight-saving change).
---@param text any
---@return integer? epoch
---@return string? why
function when.parse(text)
  if type(text) ~= "string" then return nil, "must be a time written \"YYYY-MM-DD HH:MM\"" end
  local y, mo, d, h, mi, s = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d) (%d%d):(%d%d):?(%d?%d?)$")
  if not y or (s ~= "" and #s ~= 2) then
    return nil, ("\"%s\" is not a time written \"YYYY-MM-DD HH:MM\""):format(text)
  end
  y, mo, d, h, mi = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi)
  s = s == "" and 0 or tonumber(s)
  if y < 1970 or mo < 1 or mo > 12 or d < 1 or d > days_in_month(y, mo) or h > 23 or mi > 59 or s > 59 then
    return nil, ("\"%s\" is not a date and time that exists"):format(text)
  end
  local naive = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
  -- the zone's offset near that instant, then once more in case it changed in between
  local guess = naive - tp.localtime(naive).utc_offset
  for _ = 1, 2 do
    if same(tp.localtime(guess), y, mo, d, h, mi, s) then return guess end
    guess = naive - tp.localtime(guess).utc_offset
  end
  return nil, ("\"%s\" does not exist in %s (a daylight-saving change skips it)"):format(text, tp.timezone())
end

---epoch as "YYYY-MM-DD HH:MM" (":SS" when not on the minute) in the tenant's zone.
---@param epoch integer
---@return string
function when.format(epoch)
  local t = tp.localtime(epoch)
  local text = ("%04d-%02d-%02d %02d:%02d"):format(t.year, t.month, t.day, t.hour, t.min)
  return t.sec == 0 and text or ("%s:%02d"):format(text, t.sec)
end

---A duration for people, in the largest unit that measures it exactly:
---86400 -> "24 h", 5400 -> "90 min", 45 -> "45 s".
---@param seconds integer
---@return string
function when.duration(seconds)
  if seconds % 3600 == 0 then return ("%d h"):format(seconds // 3600) end
  if seconds % 60 == 0 then return ("%d min"):format(seconds // 60) end
  return ("%d s"):format(seconds)
end

return when
