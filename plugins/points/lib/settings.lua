-- The points plugin's config, checked once when the plugin loads: a config it
-- cannot honour stops the load with a message naming the key, and an unknown
-- key is refused (a typo never falls back to a default silently).
--
--   points = {
--     earn = { points = 1, per_fen = 100 },        -- 1 point per ¥1 paid (floor)
--     redeem = { points_per_fen = 1,               -- 100 points pay ¥1 at checkout
--                max_percent = 50,                 -- of what is left after the coupon
--                max_points = 20000 },             -- per order (optional)
--     expiry = { kind = "year_end", years = 1 },  -- or "never", or { kind = "days", days = 365 }
--     allow_negative = false,                      -- a refund's claw-back may leave a debt
--   }

local settings = {}

---@class PointsSettings
---@field earn {points: integer, per_fen: integer}|nil   nil: orders earn nothing
---@field redeem {points_per_fen: integer, max_percent: integer, max_points: integer|nil}|nil  nil: no checkout use
---@field expiry {kind: "never"|"year_end"|"days", years: integer?, days: integer?}
---@field allow_negative boolean

local function fail(key, msg)
  error(("points config: %s %s"):format(key, msg), 0)
end

local function int(v, key, min, max, optional)
  if v == nil and optional then return nil end
  if math.type(v) ~= "integer" or v < min or v > max then
    fail(key, ("must be an integer from %d to %d"):format(min, max))
  end
  return v
end

local function only(t, key, allowed)
  if type(t) ~= "table" then fail(key, "must be a table") end
  for k in pairs(t) do
    if not allowed[k] then
      local guess = type(k) == "string" and require("tp.check").suggest(k, allowed)
      fail(key .. (key ~= "" and "." or "") .. tostring(k),
        "is not a known key" .. (guess and ("; did you mean '%s'?"):format(guess) or ""))
    end
  end
end

---Reads and checks the plugin's config; raises naming the key it refuses.
---@param c table
---@return PointsSettings
function settings.read(c)
  only(c, "", { earn = true, redeem = true, expiry = true, allow_negative = true })
  local s = { allow_negative = false, expiry = { kind = "never" } }
  if c.earn ~= nil then
    only(c.earn, "earn", { points = true, per_fen = true })
    s.earn = { points = int(c.earn.points, "earn.points", 1, 1000000),
               per_fen = int(c.earn.per_fen, "earn.per_fen", 1, 1000000) }
  end
  if c.redeem ~= nil then
    only(c.redeem, "redeem", { points_per_fen = true, max_percent = true, max_points = true })
    s.redeem = { points_per_fen = int(c.redeem.points_per_fen, "redeem.points_per_fen", 1, 10000),
                 max_percent = int(c.redeem.max_percent or 100, "redeem.max_percent", 1, 100),
                 max_points = int(c.redeem.max_points, "redeem.max_points", 1, 1000000000, true) }
  end
  if c.expiry ~= nil then
    only(c.expiry, "expiry", { kind = true, years = true, days = true })
    local kind = c.expiry.kind
    if kind == "never" then
      s.expiry = { kind = "never" }
    elseif kind == "year_end" then
      s.expiry = { kind = kind, years = int(c.expiry.years or 1, "expiry.years", 0, 10) }
    elseif kind == "days" then
      s.expiry = { kind = kind, days = int(c.expiry.days, "expiry.days", 1, 3650) }
    else
      fail("expiry.kind", "must be \"never\", \"year_end\" or \"days\"")
    end
  end
  if c.allow_negative ~= nil then
    if type(c.allow_negative) ~= "boolean" then fail("allow_negative", "must be true or false") end
    s.allow_negative = c.allow_negative
  end
  return s
end

---The local midnight (epoch) that starts y-m-d in the tenant's zone.
local function midnight(y, m, d)
  local e = require("tp.when").parse(("%04d-%02d-%02d 00:00"):format(y, m, d))
  assert(e, "a local midnight that does not exist")
  return e
end

---When points earned at `at` expire (epoch), or nil when they never do:
---year_end: the local midnight that ends the year `years` after the year of
---earning (years = 1: the end of next year); days: the local midnight that
---ends the days-th local day after the day of earning.
---@param s PointsSettings
---@param at integer
---@return integer|nil
function settings.expires_at(s, at)
  local e = s.expiry
  if e.kind == "year_end" then
    local t = tp.localtime(at)
    return midnight(t.year + e.years + 1, 1, 1)
  elseif e.kind == "days" then
    -- local noon of the day of earning, moved whole days: never crosses a date line wrongly
    local t = tp.localtime(at)
    local noon = midnight(t.year, t.month, t.day) + 12 * 3600
    local last = tp.localtime(noon + (e.days + 1) * 86400)
    return midnight(last.year, last.month, last.day)
  end
  return nil
end

return settings
