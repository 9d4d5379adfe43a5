-- The signin plugin's config, checked once when the plugin loads; a key it
-- does not know, or a value it cannot honour, stops the load naming the key.
--
--   signin = {
--     daily = 5,                                  -- points for every sign-in (default 0)
--     streak = { { day = 3, points = 10 },        -- extra points on the day a streak reaches N
--                { day = 7, points = 30 } },
--     cycle = 7,                                  -- optional: after day 7 the streak's rewards start over
--     makeup = { per_month = 2, cost_points = 20 },  -- optional 补签: absent, none allowed
--   }

local settings = {}

local function fail(key, msg) error(("signin config: %s %s"):format(key, msg), 0) end

local function int(v, key, min, max)
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
      fail((key ~= "" and key .. "." or "") .. tostring(k),
        "is not a known key" .. (guess and ("; did you mean '%s'?"):format(guess) or ""))
    end
  end
end

---@class SigninSettings
---@field daily integer
---@field bonus table<integer, integer>  streak day -> extra points
---@field streak {day: integer, points: integer}[]
---@field cycle integer|nil
---@field makeup {per_month: integer, cost_points: integer}|nil

---@param c table
---@return SigninSettings
function settings.read(c)
  only(c, "", { daily = true, streak = true, cycle = true, makeup = true })
  local s = { daily = c.daily == nil and 0 or int(c.daily, "daily", 0, 1000000), bonus = {}, streak = {} }
  if c.streak ~= nil then
    if type(c.streak) ~= "table" or #c.streak > 366 then fail("streak", "must be a list of {day, points}") end
    for i, r in ipairs(c.streak) do
      local key = ("streak[%d]"):format(i)
      only(r, key, { day = true, points = true })
      local day = int(r.day, key .. ".day", 1, 366)
      if s.bonus[day] then fail(key .. ".day", "appears twice") end
      s.bonus[day] = int(r.points, key .. ".points", 1, 1000000)
      s.streak[i] = { day = day, points = r.points }
    end
  end
  if c.cycle ~= nil then
    s.cycle = int(c.cycle, "cycle", 1, 366)
    for day in pairs(s.bonus) do
      if day > s.cycle then fail("streak", ("rewards day %d, past the cycle of %d days"):format(day, s.cycle)) end
    end
  end
  if c.makeup ~= nil then
    only(c.makeup, "makeup", { per_month = true, cost_points = true })
    s.makeup = { per_month = int(c.makeup.per_month, "makeup.per_month", 1, 31),
                 cost_points = int(c.makeup.cost_points or 0, "makeup.cost_points", 0, 1000000) }
  end
  return s
end

---Which day of its reward cycle a streak of n days is on (n itself without a cycle).
---@param s SigninSettings
---@param n integer
---@return integer
function settings.cycle_day(s, n)
  if not s.cycle then return n end
  return (n - 1) % s.cycle + 1
end

---The points a sign-in earns on the n-th day of a streak: daily plus the
---streak bonus of that (cycle) day.
---@param s SigninSettings
---@param n integer
---@return integer
function settings.reward(s, n)
  return s.daily + (s.bonus[settings.cycle_day(s, n)] or 0)
end

return settings
