-- Local days (README "Rollups"): a day is the epoch of its local midnight in
-- the brand's zone, and runs to the next one (23, 24 or 25 hours).

local day = {}

---The local midnight starting the day that holds epoch.
---@param epoch integer
---@return integer
function day.of(epoch)
  local t = tp.localtime(epoch)
  return epoch - (t.hour * 3600 + t.min * 60 + t.sec)
end

---The local midnight after the day starting at `d`.
---@param d integer a local midnight
---@return integer
function day.after(d)
  return day.of(d + 27 * 3600)
end

return day
