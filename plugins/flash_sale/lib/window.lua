-- When a sale is open: its [starts_at, ends_at) window of UTC instants and,
-- optionally, daily slots ("10:00-12:00") read in the tenant's time zone.

local window = {}

---Parses "HH:MM-HH:MM" into minutes of the day [from, to); nil if malformed.
---@param slot string
---@return integer|nil from, integer|nil to
function window.parse_slot(slot)
  if type(slot) ~= "string" then return nil end
  local h1, m1, h2, m2 = slot:match("^(%d%d):(%d%d)%-(%d%d):(%d%d)$")
  if not h1 then return nil end
  local from, to = tonumber(h1) * 60 + tonumber(m1), tonumber(h2) * 60 + tonumber(m2)
  if tonumber(m1) > 59 or tonumber(m2) > 59 or from >= 24 * 60 or to > 24 * 60 or from >= to then
    return nil
  end
  return math.tointeger(from), math.tointeger(to)
end

---The earliest instant at or after now when the sale is open: inside
---[starts_at, ends_at) and, if it has slots, inside one of them. nil if never.
---Days are 86400 s from local midnight: right for zones without daylight
---saving (Asia/Shanghai); elsewhere a slot may be off by an hour on the
---two changeover days.
---@param sale {starts_at: integer, ends_at: integer, slots: string[]}
---@param now integer
---@return integer|nil
function window.next_open(sale, now)
  local at = math.max(now, sale.starts_at)
  if at >= sale.ends_at then return nil end
  if #sale.slots == 0 then return at end
  local t = tp.localtime(at)
  local midnight = at - (t.hour * 3600 + t.min * 60 + t.sec)
  local best
  for day = 0, 1 do
    for _, slot in ipairs(sale.slots) do
      local from, to = window.parse_slot(slot)
      local opens = math.max(midnight + day * 86400 + from * 60, at)
      if opens < midnight + day * 86400 + to * 60 and opens < sale.ends_at
          and (not best or opens < best) then
        best = opens
      end
    end
  end
  return best
end

---Where now falls for a sale: "open", "not_started" (with the instant it
---opens next) or "ended" (no opening left).
---@param sale {starts_at: integer, ends_at: integer, slots: string[]}
---@param now integer
---@return "open"|"not_started"|"ended" state, integer|nil opens_at
function window.state(sale, now)
  local opens = window.next_open(sale, now)
  if not opens then return "ended" end
  if opens == now then return "open" end
  return "not_started", opens
end

return window
