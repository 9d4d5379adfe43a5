-- The price of an order, evaluated in one documented order (README "Orders"):
--   1. each line's unit price: the campaign's price when a campaign plugin
--      created the order (never above the catalog's list price of the
--      moment), else the list price;
--   2. the member price (会员价), when the config names a member_price_plugin
--      (tiers) and it quotes one for the buyer's tier: a line's unit price
--      becomes the member price where that is lower. How it stacks, as the
--      brand's tiers config says (member_price):
--      - with a coupon: with_coupon = true (default) applies the coupon on
--        top of the member prices; false makes them exclusive: an order that
--        uses a coupon is at list (or campaign) prices;
--      - with a campaign price: with_campaign = "never" (default) keeps a
--        campaign order at the campaign's price; "lower" takes the lower of
--        the campaign price and the member price;
--   3. promotions (促销), when the config names a promotions_plugin and the
--      order is a checkout at list price (never a campaign's order): the
--      promotions plugin quotes what its running promotions take off each
--      line, in its own fixed order (plugins/promotions/README.md
--      "Stacking"): first the item promotions (限时折扣, 第N件M折, N元任选;
--      a line takes at most one), then the one best order promotion (满减 or
--      满折, its tier reached on what the lines in scope cost after the
--      item promotions), each split over its lines by largest remainder;
--      orders checks that every share is whole, sums to the promotion's
--      discount and leaves each line at least 0 and the order at least 1
--      fen, and adds the shares to the lines' discount_fen. An order one of
--      whose promotions does not stack with coupons (or whose brand says
--      promotions never do) refuses a coupon: 409 coupon_not_stackable. A
--      promotion that requires a code (优惠码) runs only when the checkout
--      gives one of its codes (promo_code); the order redeems the code when
--      that promotion took something, and a cancel gives it back. Gift
--      promotions (满送 / 赠品) change no price: the quote names the gifts
--      (a SKU, a coupon), and the new order hands them to the promotions
--      plugin (place), which takes a gift SKU's stock and issues a gift
--      coupon when the order is paid;
--   4. which lines may take a coupon: every line of an order without a
--      campaign; for a campaign order only if the campaign says its price
--      stacks with coupons (stacks_with_coupon), else none;
--   5. the coupon's discount, computed by the coupons plugin on the eligible
--      lines at what they cost after steps 1-3 (a threshold coupon's
--      minimum is met by what is left after promotions), and capped so an
--      order always costs at least 1 fen (WeChat Pay cannot charge 0);
--   6. the discount split over the eligible lines by largest remainder of
--      what each still costs, so line payments always sum to the order's
--      total;
--   7. points (a user's checkout only, never a campaign's order): after the
--      coupon, the points plugin says how many of the points offered the
--      order takes and what they pay, capped by the brand's rate
--      (points_per_fen) and cap (max_percent of what is left after the coupon,
--      max_points) and so that the order still costs at least 1 fen; that
--      amount is split over the lines by what each still costs (largest
--      remainder) and added to their discount_fen; the order keeps it as
--      points_fen, part of its discount_fen;
--   8. a deposit's 膨胀 (orders paid in two payments, a presale's: 定金 then
--      尾款; a campaign order that takes no coupon, promotion or points):
--      the deposit counts worth_fen at the balance, so worth_fen -
--      deposit_fen comes off the order, split over the lines by what each
--      still costs (largest remainder); the balance (what is left after the
--      deposit's worth) stays at least 1 fen.
-- No plugin other than orders decides how prices combine.

local money = require("tp.money")

local pricing = {}

pricing.MAX_ORDER_FEN = 1000000000  -- ¥10,000,000: keeps every product below 2^63

---@class OrderLine
---@field sku string
---@field product_id integer
---@field title string
---@field qty integer
---@field list_price_fen integer
---@field unit_price_fen integer
---@field amount_fen integer      qty * unit_price_fen
---@field discount_fen integer    this line's share of the promotions, the coupon and points
---@field paid_fen integer        amount_fen - discount_fen

---The member prices that apply to this order (step 2), or nil: the member
---price plugin's quote for the user, unless the order's coupon or campaign
---excludes it by the brand's stacking rules.
---@param plugin string|nil the config's member_price_plugin
---@param user string
---@param reserved CatalogReserved[]
---@param campaign table|nil
---@param coupon_id integer|nil
---@return table<string, integer>|nil sku -> member unit price
function pricing.member_prices(plugin, user, reserved, campaign, coupon_id)
  if not plugin then return nil end
  local list = {}
  for i, r in ipairs(reserved) do list[i] = { sku = r.sku, list_price_fen = r.price_fen } end
  local quote = tp.call(plugin, "member_prices", user, list)
  if type(quote) ~= "table" or type(quote.prices) ~= "table" then return nil end
  if coupon_id and quote.with_coupon == false then return nil end
  if campaign and quote.with_campaign ~= "lower" then return nil end
  return quote.prices
end

---Builds priced lines from what the catalog reserved, the campaign's prices
---and the member prices (steps 1 and 2).
---@param reserved CatalogReserved[]
---@param campaign_prices table<string, integer>|nil sku -> unit price
---@param member_prices table<string, integer>|nil sku -> member unit price
---@return OrderLine[] lines, integer items_fen
function pricing.lines(reserved, campaign_prices, member_prices)
  local lines, items = {}, 0
  for i, r in ipairs(reserved) do
    -- a campaign never charges more than the list price of the moment
    local unit = math.min(campaign_prices and campaign_prices[r.sku] or r.price_fen, r.price_fen)
    local member = member_prices and math.tointeger(member_prices[r.sku])
    if member and member >= 1 and member < unit then unit = member end
    local amount = unit * r.qty
    items = items + amount
    lines[i] = { sku = r.sku, product_id = r.product_id, title = r.title, qty = r.qty,
                 list_price_fen = r.price_fen, unit_price_fen = unit, amount_fen = amount,
                 discount_fen = 0, paid_fen = amount }
  end
  if items > pricing.MAX_ORDER_FEN then
    tp.fail(400, "order_too_large", ("an order may cost at most %d fen"):format(pricing.MAX_ORDER_FEN))
  end
  if items < 1 then tp.fail(400, "order_too_small", "an order must cost at least 1 fen") end
  return lines, items
end

---The lines a coupon may apply to, in the shape the coupons plugin takes.
---@param lines OrderLine[]
---@param campaign {stacks_with_coupon: boolean}|nil
---@return table[]
function pricing.coupon_lines(lines, campaign)
  local out = {}
  if campaign and not campaign.stacks_with_coupon then return out end
  for _, l in ipairs(lines) do
    -- what the line costs after promotions (step 3): a coupon's threshold and
    -- share are on what the buyer still pays
    out[#out + 1] = { sku = l.sku, product_id = l.product_id, qty = l.qty, amount_fen = l.paid_fen }
  end
  return out
end

---Asks the promotions plugin for what its running promotions take off the
---lines (step 3) and applies it. Returns the quote as orders keeps it:
---{discount_fen, promotions = [...], stacks_with_coupon, hints}. A quote that
---breaks the rules (a share not whole, shares not summing, a line below 0,
---the order below 1 fen) is the plugin's bug: a 500 that changes nothing.
---@param plugin string|nil the config's promotions_plugin
---@param user string
---@param lines OrderLine[]
---@param items_fen integer
---@param member_prices table<string, integer>|nil
---@param code string|nil a 优惠码 the buyer gave
---@return {discount_fen: integer, promotions: table[], stacks_with_coupon: boolean, hints: table[], code: table?}
function pricing.promotions(plugin, user, lines, items_fen, member_prices, code)
  local none = { discount_fen = 0, promotions = tp.json.array(), stacks_with_coupon = true, hints = tp.json.array(),
                 gifts = tp.json.array() }
  if not plugin then
    if code then tp.fail(409, "promo_codes_unavailable", "this brand's orders take no promotion codes") end
    return none
  end
  local ask = {}
  for i, l in ipairs(lines) do
    ask[i] = { sku = l.sku, qty = l.qty, unit_price_fen = l.unit_price_fen, amount_fen = l.amount_fen,
               member = member_prices ~= nil and l.unit_price_fen < l.list_price_fen }
  end
  local q = tp.call(plugin, "quote", user, ask, code and { code = code } or nil)
  local function broken(why) error("orders: the promotions quote is invalid: " .. why, 0) end
  if type(q) ~= "table" or type(q.promotions) ~= "table" then broken("not a quote") end
  local per_line, total = {}, 0
  for i = 1, #lines do per_line[i] = 0 end
  for _, p in ipairs(q.promotions) do
    local sum = 0
    for _, s in ipairs(p.lines or {}) do
      local i, d = math.tointeger(s.line), math.tointeger(s.discount_fen)
      if not i or not lines[i] or not d or d < 0 then broken("a share is not whole fen on a line") end
      per_line[i] = per_line[i] + d
      sum = sum + d
    end
    if sum ~= p.discount_fen then broken("promotion " .. tostring(p.id) .. "'s shares do not sum to its discount") end
    total = total + sum
  end
  if total >= items_fen then broken("it leaves the order below 1 fen") end
  for i, l in ipairs(lines) do
    if per_line[i] > l.amount_fen then broken("it takes more than line " .. i .. " costs") end
    l.discount_fen = l.discount_fen + per_line[i]
    l.paid_fen = l.amount_fen - l.discount_fen
  end
  return { discount_fen = total, promotions = q.promotions, stacks_with_coupon = q.stacks_with_coupon ~= false,
           hints = q.hints or tp.json.array(), code = q.code, gifts = q.gifts or tp.json.array() }
end

---Applies the coupon's discount (steps 5-6): capped so the order costs at least
---1 fen, split over the eligible skus by what each still costs, added to what
---promotions took.
---@param lines OrderLine[]
---@param payable_fen integer what the order costs before the coupon
---@param discount_fen integer
---@param eligible_skus string[]
---@return integer discount actually applied
function pricing.apply_discount(lines, payable_fen, discount_fen, eligible_skus)
  local discount = math.min(discount_fen, payable_fen - 1)
  local eligible = {}
  for _, sku in ipairs(eligible_skus) do eligible[sku] = true end
  local weights = {}
  for i, l in ipairs(lines) do weights[i] = eligible[l.sku] and l.paid_fen or 0 end
  local parts = money.split(discount, weights)
  for i, l in ipairs(lines) do
    l.discount_fen = l.discount_fen + parts[i]
    l.paid_fen = l.amount_fen - l.discount_fen
  end
  return discount
end

---Applies points worth points_fen after the coupon (step 7): split over the
---lines by what each still costs, added to their discount. The points plugin
---has already capped points_fen below what the order costs.
---@param lines OrderLine[]
---@param points_fen integer
function pricing.apply_points(lines, points_fen)
  local weights = {}
  for i, l in ipairs(lines) do weights[i] = l.paid_fen end
  local parts = money.split(points_fen, weights)
  for i, l in ipairs(lines) do
    l.discount_fen = l.discount_fen + parts[i]
    l.paid_fen = l.amount_fen - l.discount_fen
  end
end

---Applies a deposit's 膨胀 (step 8): worth_fen - deposit_fen off the lines,
---split by what each still costs (largest remainder). 409
---deposit_exceeds_price when the deposit's worth leaves no balance of at
---least 1 fen on payable_fen (what the order costs before it).
---@param lines OrderLine[]
---@param payable_fen integer
---@param d {deposit_fen: integer, worth_fen: integer}
---@return integer bonus the 膨胀 taken off
function pricing.apply_deposit(lines, payable_fen, d)
  if d.worth_fen >= payable_fen then
    tp.fail(409, "deposit_exceeds_price", ("a deposit worth %d fen leaves no balance on an order of %d fen"):format(
      d.worth_fen, payable_fen), { worth_fen = d.worth_fen, price_fen = payable_fen })
  end
  local bonus = d.worth_fen - d.deposit_fen
  local weights = {}
  for i, l in ipairs(lines) do weights[i] = l.paid_fen end
  local parts = money.split(bonus, weights)
  for i, l in ipairs(lines) do
    l.discount_fen = l.discount_fen + parts[i]
    l.paid_fen = l.amount_fen - l.discount_fen
  end
  return bonus
end

return pricing
