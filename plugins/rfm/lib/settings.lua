---@diagnostic disable: undefined-global
-- rfm/lib/settings.lua: the brand's RFM settings, from the plugin's config,
-- checked whole at the first use; a wrong one stops with a message naming it.
--
--   rfm = {
--     window_days = 365,          -- orders paid in the last N days count
--     hour = 3,                   -- the nightly run, local hour
--     r = { days = 30 },          -- recent: last payment at most 30 days before the run
--     f = { orders = 2 },         -- frequent: at least 2 orders in the window
--     m = { fen = 50000 },        -- valuable: at least ¥500 paid (net of refunds) in the window
--     -- or a split at a percentile of the buyers: r = { percentile = 50 } means
--     -- "better than the median": more recent, more orders, more money
--     batch = 250,                -- members per slice (2-5000) (each slice one transaction)
--   }

local settings = {}

---@class RfmSettings
---@field window_days integer
---@field hour integer
---@field r {days: integer?, percentile: integer?}
---@field f {orders: integer?, percentile: integer?}
---@field m {fen: integer?, percentile: integer?}
---@field batch integer

local function fail(where, msg) error(("rfm config: %s %s"):format(where, msg), 0) end

local function int(v, where, min, max, default)
  if v == nil then return default end
  if math.type(v) ~= "integer" or v < min or v > max then
    fail(where, ("must be an integer %d-%d"):format(min, max))
  end
  return v
end

local function split(v, where, key, max, default)
  if v == nil then return { [key] = default } end
  if type(v) ~= "table" then fail(where, "must be a table") end
  for k in pairs(v) do
    if k ~= key and k ~= "percentile" then fail(where .. "." .. tostring(k), ("is not %s or percentile"):format(key)) end
  end
  if (v[key] == nil) == (v.percentile == nil) then fail(where, ("takes %s or percentile (one of them)"):format(key)) end
  return { [key] = int(v[key], where .. "." .. key, 0, max), percentile = int(v.percentile, where .. ".percentile", 1, 99) }
end

---@param c table|nil
---@return RfmSettings
function settings.read(c)
  c = c or {}
  if type(c) ~= "table" then fail("", "must be a table") end
  local known = { window_days = true, hour = true, r = true, f = true, m = true, batch = true }
  for k in pairs(c) do if not known[k] then fail(tostring(k), "is not a known key") end end
  return {
    window_days = int(c.window_days, "window_days", 1, 3650, 365),
    hour = int(c.hour, "hour", 0, 23, 3),
    r = split(c.r, "r", "days", 3650, 30),
    f = split(c.f, "f", "orders", 1000000, 2),
    m = split(c.m, "m", "fen", 1000000000000, 50000),
    batch = int(c.batch, "batch", 2, 5000, 250),
  }
end

local cached
---@return RfmSettings
function settings.get()
  if not cached then cached = settings.read(tp.config()) end
  return cached
end

return settings
