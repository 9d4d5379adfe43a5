---@diagnostic disable: undefined-global
-- tiers/lib/calendar.lua: local midnights in the brand's zone (tp.when), for
-- reviews, paid memberships and birthdays.

local when = require("tp.when")

local calendar = {}

---The epoch of local midnight starting the day y-m-d (rolled over when d or m
---run past their ends).
---@param y integer
---@param m integer
---@param d integer
---@return integer
function calendar.midnight(y, m, d)
  while m > 12 do y, m = y + 1, m - 12 end
  -- day 1 of the month, then whole days on (noon avoids daylight-saving edges)
  local first = assert(when.parse(("%04d-%02d-01 12:00"):format(y, m)))
  local lt = tp.localtime(first + (d - 1) * 86400)
  return assert(when.parse(("%04d-%02d-%02d 00:00"):format(lt.year, lt.month, lt.day)))
end

---Local midnight starting the day epoch falls in, plus days whole days.
---@param epoch integer
---@param days integer
---@return integer
function calendar.day_start(epoch, days)
  local lt = tp.localtime(epoch)
  return calendar.midnight(lt.year, lt.month, lt.day + days)
end

---The first local midnight after epoch that starts a review period: the next
---day, Monday, 1st of a month, of a quarter (Jan, Apr, Jul, Oct) or Jan 1.
---@param epoch integer
---@param every "day"|"week"|"month"|"quarter"|"year"
---@return integer
function calendar.next_period(epoch, every)
  local lt = tp.localtime(epoch)
  if every == "day" then return calendar.midnight(lt.year, lt.month, lt.day + 1) end
  if every == "week" then return calendar.midnight(lt.year, lt.month, lt.day + 8 - lt.wday) end
  if every == "month" then return calendar.midnight(lt.year, lt.month + 1, 1) end
  if every == "quarter" then return calendar.midnight(lt.year, lt.month - (lt.month - 1) % 3 + 3, 1) end
  return calendar.midnight(lt.year + 1, 1, 1)
end

---"YYYY-MM-DD" of epoch, local.
---@param epoch integer
---@return string
function calendar.date(epoch)
  local lt = tp.localtime(epoch)
  return ("%04d-%02d-%02d"):format(lt.year, lt.month, lt.day)
end

return calendar
