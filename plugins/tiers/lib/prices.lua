---@diagnostic disable: undefined-global
-- tiers/lib/prices.lua: member price (会员价), the benefit the orders plugin
-- asks for while it prices an order (orders' config member_price_plugin =
-- "tiers"; plugins/orders/lib/pricing.lua step 2 says how it stacks).

local program = require("lib.program")

local prices = {}

---The member's tier that counts at this moment: held by growth, or paid while
---the membership lasts (the stored tier, without waiting for the paid_end job).
---@param user string
---@return TierLevel|nil
function prices.level_of(user)
  local r = tp.db.one("SELECT held, paid_tier, paid_until FROM tiers_members WHERE user = ?", user)
  if not r then return nil end
  local p = program.get()
  local held = r.held and p.by_id[r.held]
  local paid = r.paid_tier and r.paid_until and r.paid_until > tp.now() and p.by_id[r.paid_tier] or nil
  if held and paid then return held.rank >= paid.rank and held or paid end
  return held or paid
end

---The member price of one unit: the level's own price for the SKU, else the
---list price times its discount_percent (rounded down, never below 1 fen),
---else nil (no member price).
---@param level TierLevel
---@param sku string
---@param list_fen integer
---@return integer|nil
function prices.unit(level, sku, list_fen)
  local own = level.prices and level.prices[sku]
  if own then return math.min(own, list_fen) end
  if level.discount_percent and level.discount_percent < 100 then
    return math.max(1, list_fen * level.discount_percent // 100)
  end
  return nil
end

---Export member_prices(user, lines) -> nil | {tier, prices = {sku = fen},
---with_coupon, with_campaign}: lines are {sku, list_price_fen}; prices holds
---the SKUs whose member price is below the list price. nil when the user's
---tier gives none.
---@param user string
---@param lines {sku: string, list_price_fen: integer}[]
---@return table|nil
function prices.export(user, lines)
  local level = type(user) == "string" and prices.level_of(user)
  if not level then return nil end
  local out, any = {}, false
  for _, l in ipairs(lines or {}) do
    local unit = prices.unit(level, l.sku, l.list_price_fen)
    if unit and unit < l.list_price_fen then out[l.sku], any = unit, true end
  end
  if not any then return nil end
  local p = program.get()
  return { tier = level.id, prices = out, with_coupon = p.with_coupon, with_campaign = p.with_campaign }
end

return prices
