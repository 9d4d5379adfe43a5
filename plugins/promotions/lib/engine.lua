-- The promotions engine: given the order's priced lines (after the campaign
-- and member price, orders' steps 1-2) and the brand's active promotions, what
-- each promotion takes off each line, in fen, and the 凑单 hints. Pure: no
-- database, no clock; plugin.lua loads the promotions and the config.
--
-- Order of application (README "Stacking"; orders' pricing.lua step 3):
--   a. item promotions (限时折扣 timed_discount, 第N件M折 nth_discount,
--      N元任选 bundle), highest priority first (then lowest id); a line takes
--      at most one, the first that takes something off it;
--   b. one order promotion (满减 full_reduction, 满折 full_discount): of those
--      whose tier the order reaches, the one that takes the most (ties: the
--      higher priority, then the lower id), on what the lines in its scope
--      cost after (a) - or, with item_with_order = false, only on lines (a)
--      left alone;
--   c. every gift promotion (满送 / 赠品, kind gift) whose tier the order
--      reaches on what its lines cost after (a) and (b): the gift of its
--      highest tier reached (a SKU, a coupon or both); gifts change no price;
--   then orders applies the coupon (if every applied promotion stacks with
--   coupons and the brand allows it) and points.
-- Every discount is whole fen: a line's unit never drops below 1 fen, an
-- order promotion leaves its scope at least 1 fen, and a promotion's discount
-- is split over its lines by largest remainder, so the shares sum exactly.

local money = require("tp.money")

local engine = {}

engine.ITEM = { timed_discount = true, nth_discount = true, bundle = true }
engine.ORDER = { full_reduction = true, full_discount = true }
engine.GIFT = { gift = true }

---A unit price at percent (1-99) of unit, rounded down, never below 1 fen.
local function at_percent(unit, percent)
  return math.max(1, unit * percent // 100)
end

local function in_scope(p, line, cfg)
  if line.member and not cfg.with_member_price then return false end
  if #p.skus == 0 then return true end
  for _, s in ipairs(p.skus) do if s == line.sku then return true end end
  return false
end

local function by_priority(a, b)
  if a.priority ~= b.priority then return a.priority > b.priority end
  return a.id < b.id
end

---Item promotion p's discount on each of the free lines it covers: {[i] = fen}, total.
local function item_discounts(p, lines, free, cfg)
  local out, total = {}, 0
  if p.kind == "timed_discount" or p.kind == "nth_discount" then
    for i, l in ipairs(lines) do
      if free[i] and in_scope(p, l, cfg) then
        local per_unit = l.unit_price_fen - at_percent(l.unit_price_fen, p.percent)
        local units = p.kind == "timed_discount" and l.qty or l.qty // p.nth
        local d = per_unit * units
        if d > 0 then out[i] = d; total = total + d end
      end
    end
  else  -- bundle: every `count` units in the scope for price_fen, the dearest units first
    local units = {}
    for i, l in ipairs(lines) do
      if free[i] and in_scope(p, l, cfg) then
        for _ = 1, l.qty do units[#units + 1] = { i = i, unit = l.unit_price_fen } end
      end
    end
    table.sort(units, function(a, b)
      if a.unit ~= b.unit then return a.unit > b.unit end
      return a.i < b.i
    end)
    local groups = #units // p.count
    if groups == 0 then return out, 0 end
    local bundled, amount, weights, idx = {}, 0, {}, {}
    for k = 1, groups * p.count do
      local u = units[k]
      bundled[u.i] = (bundled[u.i] or 0) + u.unit
      amount = amount + u.unit
    end
    local d = amount - groups * p.price_fen
    if d <= 0 then return out, 0 end
    for i in pairs(bundled) do idx[#idx + 1] = i end
    table.sort(idx)
    for k, i in ipairs(idx) do weights[k] = bundled[i] end
    local parts = money.split(d, weights)
    for k, i in ipairs(idx) do if parts[k] > 0 then out[i] = parts[k] end end
    total = d
  end
  return out, total
end

---The tier of order promotion p the base (fen) and qty reach, its index and discount.
local function order_tier(p, base, qty)
  local hit, hit_i
  for i, t in ipairs(p.tiers) do
    local reached = t.min_fen and base >= t.min_fen or t.min_qty and qty >= t.min_qty
    if reached then hit, hit_i = t, i end
  end
  if not hit then return nil, 0, 0 end
  local d
  if p.kind == "gift" then return hit, hit_i, 0 end
  if p.kind == "full_reduction" then d = hit.off_fen else d = base - base * hit.percent // 100 end
  return hit, hit_i, math.min(d, base - 1)
end

local function yuan(fen) return ("¥%d.%02d"):format(fen // 100, fen % 100) end

---@class PromoLine
---@field sku string
---@field qty integer
---@field unit_price_fen integer
---@field amount_fen integer
---@field member boolean? priced at the member price

---@param promos table[] the active promotions (shape of plugin.lua's load)
---@param lines PromoLine[]
---@param cfg {item_with_order: boolean, with_member_price: boolean, max_hints: integer}
---@return {applied: table[], discount_fen: integer, line_discount: integer[], gifts: table[], stacks_with_coupon: boolean, hints: table[]}
function engine.quote(promos, lines, cfg)
  local item, order = {}, {}
  for _, p in ipairs(promos) do
    if engine.ITEM[p.kind] then item[#item + 1] = p elseif engine.ORDER[p.kind] then order[#order + 1] = p end
  end
  table.sort(item, by_priority)
  table.sort(order, by_priority)
  local n = #lines
  local line_discount, free, applied, total = {}, {}, {}, 0
  for i = 1, n do line_discount[i] = 0; free[i] = true end
  -- a. item promotions
  for _, p in ipairs(item) do
    local d, sum = item_discounts(p, lines, free, cfg)
    if sum > 0 then
      local shares = {}
      for i = 1, n do
        if d[i] then
          free[i] = false
          line_discount[i] = line_discount[i] + d[i]
          shares[#shares + 1] = { line = i, sku = lines[i].sku, discount_fen = d[i] }
        end
      end
      applied[#applied + 1] = { promotion = p, discount_fen = sum, lines = shares }
      total = total + sum
    end
  end
  -- b. one order promotion, the best; hints from every one
  local best, best_d, best_base, hints = nil, 0, nil, {}
  local function hint(p, tier_i, base, qty)
    local nxt = p.tiers[(tier_i or 0) + 1]
    if not nxt or base <= 0 then return end
    local h = { promotion_id = p.id, name = p.name, kind = p.kind, tier = (tier_i or 0) + 1 }
    if nxt.min_fen then h.add_fen = nxt.min_fen - base else h.add_qty = nxt.min_qty - qty end
    local add = h.add_fen and ("add %s"):format(yuan(h.add_fen)) or ("add %d more"):format(h.add_qty)
    if p.kind == "full_reduction" then
      h.off_fen = nxt.off_fen
      h.message = ("%s for %s off"):format(add, yuan(nxt.off_fen))
    elseif p.kind == "full_discount" then
      h.percent = nxt.percent
      h.message = ("%s for %d%% of the price"):format(add, nxt.percent)
    else
      h.gift_sku, h.gift_qty, h.coupon_template_id = nxt.gift_sku, nxt.gift_qty, nxt.coupon_template_id
      h.message = ("%s for a gift (%s)"):format(add, p.name)
    end
    hints[#hints + 1] = h
  end
  for _, p in ipairs(order) do
    local base, qty, weights = 0, 0, {}
    for i, l in ipairs(lines) do
      weights[i] = 0
      if in_scope(p, l, cfg) and (cfg.item_with_order or free[i]) then
        weights[i] = l.amount_fen - line_discount[i]
        base, qty = base + weights[i], qty + l.qty
      end
    end
    local _, tier_i, d = order_tier(p, base, qty)
    if d > best_d then best, best_d, best_base = p, d, weights end
    hint(p, tier_i, base, qty)
  end
  if best then
    local parts = money.split(best_d, best_base)
    local shares = {}
    for i = 1, n do
      if parts[i] > 0 then
        line_discount[i] = line_discount[i] + parts[i]
        shares[#shares + 1] = { line = i, sku = lines[i].sku, discount_fen = parts[i] }
      end
    end
    applied[#applied + 1] = { promotion = best, discount_fen = best_d, lines = shares }
    total = total + best_d
  end
  -- c. gifts, on what the lines cost now
  local gifts = {}
  for _, p in ipairs(promos) do
    if engine.GIFT[p.kind] then
      local base, qty = 0, 0
      for i, l in ipairs(lines) do
        if in_scope(p, l, cfg) then base, qty = base + l.amount_fen - line_discount[i], qty + l.qty end
      end
      local hit, tier_i = order_tier(p, base, qty)
      if hit then
        gifts[#gifts + 1] = { promotion = p, tier = tier_i, gift_sku = hit.gift_sku, gift_qty = hit.gift_qty,
                              coupon_template_id = hit.coupon_template_id }
      end
      hint(p, tier_i, base, qty)
    end
  end
  table.sort(hints, function(a, b)
    if (a.add_fen ~= nil) ~= (b.add_fen ~= nil) then return a.add_fen ~= nil end
    local x, y = a.add_fen or a.add_qty, b.add_fen or b.add_qty
    if x ~= y then return x < y end
    return a.promotion_id < b.promotion_id
  end)
  while #hints > cfg.max_hints do hints[#hints] = nil end
  local stacks = true
  for _, a in ipairs(applied) do if not a.promotion.stacks_with_coupon then stacks = false end end
  for _, g in ipairs(gifts) do if not g.promotion.stacks_with_coupon then stacks = false end end
  return { applied = applied, discount_fen = total, line_discount = line_discount, gifts = gifts,
           stacks_with_coupon = stacks, hints = hints }
end

return engine
