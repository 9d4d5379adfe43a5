---@diagnostic disable: undefined-global
-- friend_assist/lib/util.lua: small pure-ish helpers shared by the other modules.

local util = {}

---The calendar day of epoch in the tenant's time zone, as "YYYY-MM-DD"
---("this day" for the once-per-day rule is the shop's day, not UTC's).
---@param epoch integer
---@return string
function util.local_day(epoch)
  local t = tp.localtime(epoch)
  return ("%04d-%02d-%02d"):format(t.year, t.month, t.day)
end

---A user id as a share page may show it to strangers: first and last character
---around "***" ("u***7"); ids of one or two characters keep only the first.
---@param user string
---@return string
function util.mask(user)
  if #user <= 2 then return user:sub(1, 1) .. "***" end
  return user:sub(1, 1) .. "***" .. user:sub(-1)
end

---A fresh share id: 16 hex characters nobody can guess from a drive id
---(a share link must not let a stranger walk every drive of the shop).
---@param drive_hint string anything that differs between drives
---@return string
function util.new_share_id(drive_hint)
  local noise = ("%d:%s:%d:%d"):format(tp.now_ms(), drive_hint, tp.random(0, 0x7fffffff),
                                       tp.random(0, 0x7fffffff))
  return tp.crypto.sha256(noise):sub(1, 16)
end

return util
