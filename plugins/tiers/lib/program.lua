---@diagnostic disable: undefined-global
-- tiers/lib/program.lua: the brand's membership programme, read once from the
-- plugin's config and checked whole; a wrong key or value stops the load with
-- a message naming it ("tiers config: levels[2].growth must be ...").
--
--   tiers = {
--     levels = {                      -- ascending growth thresholds, the first usually 0
--       { id = "regular", name = "会员", growth = 0 },
--       { id = "gold", name = "金卡", growth = 5000, discount_percent = 95,
--         prices = { ["tea-001"] = 11800 }, free_shipping = true,
--         birthday_coupon = 3, upgrade_coupon = 4 },
--     },
--     growth = { per_100_fen = 1, signin = 5 },   -- ¥1 paid = 1 growth; a sign-in = 5
--     window_days = 365,              -- growth that counts: earned in the last N days (0: ever)
--     review = { every = "month", grace_days = 30 },
--     member_price = { with_coupon = true, with_campaign = "never" },
--     paid = { { sku = "svip-30", tier = "gold", days = 30 } },
--     birthday_hour = 9,
--   }

local program = {}

---@class TierLevel
---@field id string
---@field name string
---@field rank integer 1 = lowest
---@field growth integer threshold
---@field discount_percent integer? 1-100: the member price is list * percent / 100 (rounded down)
---@field prices table<string, integer>? sku -> member price in fen
---@field free_shipping boolean
---@field birthday_coupon integer? coupons template id
---@field upgrade_coupon integer? coupons template id

---@class TierProgram
---@field levels TierLevel[]
---@field by_id table<string, TierLevel>
---@field per_100_fen integer
---@field signin integer
---@field window_days integer
---@field every "day"|"week"|"month"|"quarter"|"year"
---@field grace_days integer
---@field with_coupon boolean
---@field with_campaign "never"|"lower"
---@field paid table<string, {sku: string, tier: string, days: integer}>
---@field birthday_hour integer

local KEYS = { levels = true, growth = true, window_days = true, review = true, member_price = true,
               paid = true, birthday_hour = true }
local LEVEL_KEYS = { id = true, name = true, growth = true, discount_percent = true, prices = true,
                     free_shipping = true, birthday_coupon = true, upgrade_coupon = true }
local EVERY = { day = true, week = true, month = true, quarter = true, year = true }

local function fail(where, msg) error(("tiers config: %s %s"):format(where, msg), 0) end

local function int(v, where, min, max, default)
  if v == nil then return default end
  if math.type(v) ~= "integer" or v < min or (max and v > max) then
    fail(where, ("must be an integer %d-%s"):format(min, max and tostring(max) or "")
      :gsub("%-$", " or more"))
  end
  return v
end

local function only(t, keys, where)
  if type(t) ~= "table" then fail(where, "must be a table") end
  for k in pairs(t) do
    if not keys[k] then fail(where .. "." .. tostring(k), "is not a known key") end
  end
end

local function ident(v, where)
  if type(v) ~= "string" or not v:match("^[a-z][a-z0-9_]*$") or #v > 16 then
    fail(where, "must be 1-16 of a-z, 0-9, _ starting with a letter")
  end
  return v
end

---Reads and checks a config table.
---@param c table|nil
---@return TierProgram
function program.read(c)
  c = c or {}
  only(c, KEYS, "")
  local p = { levels = {}, by_id = {}, paid = {} }
  local levels = c.levels
  if levels == nil then
    levels = { { id = "member", name = "会员", growth = 0 } }
  end
  if type(levels) ~= "table" or #levels < 1 or #levels > 20 then fail("levels", "must list 1-20 levels") end
  local last = -1
  for i, l in ipairs(levels) do
    local where = ("levels[%d]"):format(i)
    only(l, LEVEL_KEYS, where)
    local lv = { id = ident(l.id, where .. ".id"), rank = i,
                 growth = int(l.growth, where .. ".growth", 0, 1000000000),
                 discount_percent = int(l.discount_percent, where .. ".discount_percent", 1, 100),
                 free_shipping = l.free_shipping == true,
                 birthday_coupon = int(l.birthday_coupon, where .. ".birthday_coupon", 1),
                 upgrade_coupon = int(l.upgrade_coupon, where .. ".upgrade_coupon", 1) }
    if lv.growth == nil then fail(where .. ".growth", "is required") end
    if type(l.name) ~= "string" or #l.name < 1 or #l.name > 64 then fail(where .. ".name", "must be 1-64 bytes") end
    lv.name = l.name
    if lv.growth <= last then fail(where .. ".growth", "must be above the level before's") end
    last = lv.growth
    if p.by_id[lv.id] then fail(where .. ".id", "appears twice") end
    if l.free_shipping ~= nil and type(l.free_shipping) ~= "boolean" then
      fail(where .. ".free_shipping", "must be true or false")
    end
    if l.prices ~= nil then
      if type(l.prices) ~= "table" then fail(where .. ".prices", "must be a table of sku = fen") end
      lv.prices = {}
      for sku, fen in pairs(l.prices) do
        if type(sku) ~= "string" or not sku:match("^[%w_.:%-]+$") or #sku > 64 then
          fail(where .. ".prices", "keys must be SKU codes")
        end
        lv.prices[sku] = int(fen, ("%s.prices[%q]"):format(where, sku), 1)
      end
    end
    p.levels[i], p.by_id[lv.id] = lv, lv
  end
  local g = c.growth or {}
  only(g, { per_100_fen = true, signin = true }, "growth")
  p.per_100_fen = int(g.per_100_fen, "growth.per_100_fen", 0, 10000, 1)
  p.signin = int(g.signin, "growth.signin", 0, 100000, 0)
  p.window_days = int(c.window_days, "window_days", 0, 3650, 0)
  local r = c.review or {}
  only(r, { every = true, grace_days = true }, "review")
  p.every = r.every or "month"
  if not EVERY[p.every] then fail("review.every", "must be day, week, month, quarter or year") end
  p.grace_days = int(r.grace_days, "review.grace_days", 0, 3650, 0)
  local mp = c.member_price or {}
  only(mp, { with_coupon = true, with_campaign = true }, "member_price")
  if mp.with_coupon ~= nil and type(mp.with_coupon) ~= "boolean" then
    fail("member_price.with_coupon", "must be true or false")
  end
  p.with_coupon = mp.with_coupon ~= false
  p.with_campaign = mp.with_campaign or "never"
  if p.with_campaign ~= "never" and p.with_campaign ~= "lower" then
    fail("member_price.with_campaign", "must be never or lower")
  end
  if c.paid ~= nil then
    if type(c.paid) ~= "table" or #c.paid > 20 then fail("paid", "must list at most 20 plans") end
    for i, plan in ipairs(c.paid) do
      local where = ("paid[%d]"):format(i)
      only(plan, { sku = true, tier = true, days = true }, where)
      if type(plan.sku) ~= "string" or not plan.sku:match("^[%w_.:%-]+$") or #plan.sku > 64 then
        fail(where .. ".sku", "must be a SKU code")
      end
      if not p.by_id[plan.tier] then fail(where .. ".tier", "must name one of the levels") end
      if p.paid[plan.sku] then fail(where .. ".sku", "appears twice") end
      p.paid[plan.sku] = { sku = plan.sku, tier = plan.tier, days = int(plan.days, where .. ".days", 1, 3660) }
      if not p.paid[plan.sku].days then fail(where .. ".days", "is required") end
    end
  end
  p.birthday_hour = int(c.birthday_hour, "birthday_hour", 0, 23, 9)
  return p
end

local cached
---The programme of this brand (read at the first use in a Lua state).
---@return TierProgram
function program.get()
  if not cached then cached = program.read(tp.config()) end
  return cached
end

---The ids of the levels, lowest first.
---@return string[]
function program.ids()
  local out = {}
  for i, l in ipairs(program.get().levels) do out[i] = l.id end
  return out
end

---The highest level whose threshold growth reaches.
---@param growth integer
---@return TierLevel
function program.level_for(growth)
  local best = nil
  for _, l in ipairs(program.get().levels) do
    if growth >= l.growth then best = l end
  end
  return best
end

return program
