-- Creating an order: validate, cap unpaid orders, reserve stock, price, lock
-- the coupon, spend the points, write the rows, keep the unpaid timeout's sweep
-- due by the order's deadline (lib/unpaid.lua) and announce it. All of it is one
-- transaction: if any step fails, nothing was reserved or written. A retried
-- request is the host's to answer (routes declare idempotent = true): by the
-- time create runs, the request is a new one.

local check = require("tp.check")
local pricing = require("lib.pricing")
local store = require("lib.store")
local unpaid = require("lib.unpaid")

local create = {}

---@class OrderSpec
---@field user string
---@field lines {sku: string, qty: integer, unit_price_fen: integer?}[]
---@field coupon_id integer?
---@field points integer?   points offered as part payment (a user's checkout only)
---@field promo_code string? a 优惠码 (a user's checkout only; promotions_plugin)
---@field campaign {id: string|integer, stacks_with_coupon: boolean?, unpaid_timeout_seconds: integer?, hold: boolean?}?
---@field deposit DepositSpec? a campaign's order paid in two payments (presale: 定金 then 尾款)
---@field ships_from integer? a campaign's promise: the goods ship from this UTC epoch, not before

---@class DepositSpec
---@field deposit_fen integer       the first payment, for the whole order
---@field worth_fen integer?        what it counts for at the balance (定金膨胀; default deposit_fen), below the order's price
---@field balance_starts_at integer UTC epoch
---@field balance_ends_at integer   UTC epoch, after balance_starts_at
---@field refundable boolean?       a missed balance refunds the deposit (default false: it is forfeited)
---@field attribution {referrer: string?, referrer2: string?, store: string?, guide: string?}?

---The brand's config for orders, checked once, when the plugin loads: a wrong
---key fails the load (and `tidepool check --config`) with its field error, not
---a checkout with a Lua error.
local function settings()
  local c = tp.config()
  return {
    unpaid_timeout = check.integer(c.unpaid_timeout_seconds, "config.unpaid_timeout_seconds", 60, 86400, true)
      or 900,
    max_unpaid = check.integer(c.max_unpaid_orders, "config.max_unpaid_orders", 1, nil, true) or 3,
    max_lines = check.integer(c.max_lines, "config.max_lines", 1, 1000, true) or 20,
    max_qty = check.integer(c.max_qty_per_line, "config.max_qty_per_line", 1, nil, true) or 99,
    attribution_plugin = check.ident(c.attribution_plugin, "config.attribution_plugin", 64, true),
    member_price_plugin = check.ident(c.member_price_plugin, "config.member_price_plugin", 64, true),
    promotions_plugin = check.ident(c.promotions_plugin, "config.promotions_plugin", 64, true),
  }
end
local CFG = settings()

---Checks the lines: known shape, no sku twice, campaign prices only from a campaign.
local function check_lines(spec, cfg, campaign)
  check.list(spec.lines, "lines", 1, cfg.max_lines)
  local seen, prices = {}, campaign and {} or nil
  for i, line in ipairs(spec.lines) do
    if type(line) ~= "table" then check.field_error(("lines[%d]"):format(i), "must be an object") end
    local sku = check.ident(line.sku, ("lines[%d].sku"):format(i))
    check.integer(line.qty, ("lines[%d].qty"):format(i), 1, cfg.max_qty)
    if seen[sku] then check.field_error(("lines[%d].sku"):format(i), "appears twice") end
    seen[sku] = true
    if line.unit_price_fen ~= nil then
      if not campaign then
        check.field_error(("lines[%d].unit_price_fen"):format(i), "can only be set by a campaign")
      end
      prices[sku] = check.integer(line.unit_price_fen, ("lines[%d].unit_price_fen"):format(i), 1)
    end
  end
  return prices
end

local function campaign_of(spec, caller)
  if spec.campaign == nil then return nil end
  if not caller then tp.fail(403, "campaign_forbidden", "only a campaign plugin may set a campaign") end
  local c = spec.campaign
  if type(c) ~= "table" or (type(c.id) ~= "string" and math.type(c.id) ~= "integer") then
    check.field_error("campaign.id", "must be a string or an integer")
  end
  return { plugin = caller, id = tostring(c.id),
           stacks_with_coupon = check.boolean(c.stacks_with_coupon, "campaign.stacks_with_coupon", false),
           unpaid_timeout = check.integer(c.unpaid_timeout_seconds, "campaign.unpaid_timeout_seconds",
             60, 86400, true),
           hold = check.boolean(c.hold, "campaign.hold", false) }
end

---A campaign's two-payment terms, checked (nil: one payment).
---@return table|nil
local function deposit_of(spec, campaign)
  local d = spec.deposit
  if d == nil then return nil end
  if not campaign then tp.fail(403, "campaign_forbidden", "only a campaign plugin may ask for a deposit") end
  if type(d) ~= "table" then check.field_error("deposit", "must be an object") end
  local out = {
    deposit_fen = check.integer(d.deposit_fen, "deposit.deposit_fen", 1, pricing.MAX_ORDER_FEN),
    balance_starts_at = check.epoch(d.balance_starts_at, "deposit.balance_starts_at"),
    balance_ends_at = check.epoch(d.balance_ends_at, "deposit.balance_ends_at"),
    refundable = check.boolean(d.refundable, "deposit.refundable", false),
  }
  out.worth_fen = check.integer(d.worth_fen, "deposit.worth_fen", out.deposit_fen, pricing.MAX_ORDER_FEN, true)
    or out.deposit_fen
  if out.balance_ends_at <= out.balance_starts_at then
    check.field_error("deposit.balance_ends_at", "must be after balance_starts_at")
  end
  if out.balance_ends_at <= tp.now() then check.field_error("deposit.balance_ends_at", "has passed") end
  return out
end

local function attribution_of(spec, cfg, user)
  local a = spec.attribution
  if a == nil and cfg.attribution_plugin then a = tp.call(cfg.attribution_plugin, "attribution", user) end
  if a == nil then return {} end
  if type(a) ~= "table" then check.field_error("attribution", "must be an object") end
  return { referrer = check.user(a.referrer, "attribution.referrer", true),
           referrer2 = check.user(a.referrer2, "attribution.referrer2", true),
           store = check.ident(a.store, "attribution.store", 64, true),
           guide = check.user(a.guide, "attribution.guide", true) }
end

---Writes the order's row; row.id is set from the new id.
local function insert_order(row)
  local _, id = tp.db.exec([[
    INSERT INTO orders_orders (user, status, items_fen, discount_fen, total_fen, coupon_id,
      campaign_plugin, campaign_id, campaign_stacks, held, referrer, referrer2, store, guide,
      created_at, pay_deadline, points, points_fen, source, ships_from, deposit_fen, deposit_worth_fen,
      balance_starts_at, balance_ends_at, deposit_refundable)
    VALUES (:user, :status, :items_fen, :discount_fen, :total_fen, :coupon_id, :campaign_plugin,
      :campaign_id, :campaign_stacks, :held, :referrer, :referrer2, :store, :guide,
      :created_at, :pay_deadline, :points, :points_fen, :source, :ships_from, :deposit_fen, :deposit_worth_fen,
      :balance_starts_at, :balance_ends_at, :deposit_refundable)]], row)
  row.id = id
end

local function insert_lines(id, lines)
  for i, l in ipairs(lines) do
    tp.db.exec([[
      INSERT INTO orders_lines (order_id, line_no, sku, product_id, title, qty, list_price_fen,
        unit_price_fen, amount_fen, discount_fen, paid_fen)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]], id, i, l.sku, l.product_id, l.title, l.qty,
      l.list_price_fen, l.unit_price_fen, l.amount_fen, l.discount_fen, l.paid_fen)
  end
end

---Records what each promotion took off each line (pricing step 3).
local function insert_promotions(id, promotions)
  for _, p in ipairs(promotions) do
    for _, share in ipairs(p.lines) do
      tp.db.exec([[INSERT INTO orders_promotion_lines (order_id, line_no, promotion_id, kind, name, discount_fen)
        VALUES (?, ?, ?, ?, ?, ?)]], id, share.line, p.id, p.kind, p.name, share.discount_fen)
    end
  end
end

---Calls the coupons plugin; a tenant without it gets a clear 409, not a 500.
local function coupons(fn, ...)
  local ok, result = pcall(tp.call, "coupons", fn, ...)
  if ok then return result end
  if type(result) == "table" then error(result, 0) end  -- the coupon's own tp.fail
  tp.log("warn", "coupons could not be used", { error = tostring(result) })
  tp.fail(409, "coupons_unavailable", "coupons cannot be used for this brand's orders")
end

---Calls the points plugin; a tenant without it gets a clear 409, not a 500.
local function points_call(fn, ...)
  local ok, result = pcall(tp.call, "points", fn, ...)
  if ok then return result end
  if type(result) == "table" then error(result, 0) end  -- the points plugin's own tp.fail
  tp.log("warn", "points could not be used", { error = tostring(result) })
  tp.fail(409, "points_unavailable", "points cannot be used for this brand's orders")
end

---Prices reserved lines (pricing.lua, steps 1-7) without writing anything:
---the checkout and its preview share it, so they cannot disagree.
---@return {lines: OrderLine[], items_fen: integer, discount_fen: integer, promotions_fen: integer, promotions: table[], hints: table[], coupon_fen: integer, coupon_lines: table[]?, points: integer?, points_fen: integer}
function create.price(cfg, user, reserved, campaign, prices, coupon_id, points, promo_code)
  local member = pricing.member_prices(cfg.member_price_plugin, user, reserved, campaign, coupon_id)
  local lines, items = pricing.lines(reserved, prices, member)
  local promos = pricing.promotions(not campaign and cfg.promotions_plugin or nil, user, lines, items, member,
    promo_code)
  local discount = promos.discount_fen
  local coupon_fen, coupon_lines = 0, nil
  if coupon_id then
    if not promos.stacks_with_coupon then
      tp.fail(409, "coupon_not_stackable", "a promotion on this order does not stack with coupons",
        { promotions = promos.promotions })
    end
    coupon_lines = pricing.coupon_lines(lines, campaign)
    local quote = coupons("quote", user, coupon_id, coupon_lines)
    coupon_fen = pricing.apply_discount(lines, items - discount, quote.discount_fen, quote.eligible_skus)
    discount = discount + coupon_fen
  end
  local points_fen = 0
  if points then
    local q = points_call("checkout_quote", user, points, items - discount)
    points, points_fen = q.points, q.points_fen
    pricing.apply_points(lines, points_fen)
    discount = discount + points_fen
  end
  return { lines = lines, items_fen = items, discount_fen = discount, promotions_fen = promos.discount_fen,
           promotions = promos.promotions, hints = promos.hints, coupon_fen = coupon_fen,
           coupon_lines = coupon_lines, points = points, points_fen = points_fen, code = promos.code,
           gifts = promos.gifts }
end

---Creates an order (see OrderSpec). caller is the campaign plugin that asked,
---or nil for the user's own checkout.
---@param spec OrderSpec
---@param caller string|nil
---@return TpJsonView order the Order, as JSON: tables to a tp.call caller, a view to tp.call_view
function create.order(spec, caller)
  check.body(spec)
  local cfg = CFG
  local user = check.user(spec.user, "user")
  local campaign = campaign_of(spec, caller)
  local prices = check_lines(spec, cfg, campaign)
  local coupon_id = check.integer(spec.coupon_id, "coupon_id", 1, nil, true)
  local points = check.integer(spec.points, "points", 1, nil, true)
  if points and campaign then check.field_error("points", "pay only a checkout at list price, not a campaign's order") end
  local promo_code = check.text(spec.promo_code, "promo_code", 32, true)
  if promo_code and campaign then check.field_error("promo_code", "is for a checkout at list price, not a campaign's order") end
  local deposit = deposit_of(spec, campaign)
  if deposit and coupon_id then check.field_error("coupon_id", "an order paid by deposit and balance takes no coupon") end
  local ships_from = spec.ships_from ~= nil and check.epoch(spec.ships_from, "ships_from") or nil
  if ships_from and not campaign then tp.fail(403, "campaign_forbidden", "only a campaign plugin may set ships_from") end
  if spec.idempotency_key ~= nil then
    error("orders.create: spec.idempotency_key is gone; declare the route idempotent = true and "
      .. "the host answers a retried Idempotency-Key", 2)
  end
  -- the user's unpaid orders, and the unpaid sweep's state (lib/unpaid.lua), in one statement
  local held = tp.db.one([[SELECT (SELECT count(*) FROM orders_orders WHERE user = ? AND status = 'pending_payment')
    AS n, due, swept_deadline FROM orders_sweep WHERE id = 1]], user)
  if held.n >= cfg.max_unpaid then
    tp.fail(409, "too_many_unpaid_orders",
      ("pay or cancel one of your %d unpaid orders first"):format(held.n), { unpaid = held.n })
  end
  local stock = {}
  for i, l in ipairs(spec.lines) do stock[i] = { sku = l.sku, qty = l.qty } end
  local reserved = tp.call("catalog", "reserve", stock)
  local priced = create.price(cfg, user, reserved, campaign, prices, coupon_id, points, promo_code)
  local lines, items, discount = priced.lines, priced.items_fen, priced.discount_fen
  local points_fen = priced.points_fen
  points = priced.points
  if deposit then discount = discount + pricing.apply_deposit(lines, items - discount, deposit) end
  local timeout = campaign and campaign.unpaid_timeout or cfg.unpaid_timeout
  local attribution = attribution_of(spec, cfg, user)
  -- the last-touch source, frozen now: from the plugin that exports order_source (analytics)
  local source_plugin = tp.exporters("order_source")[1]
  local touch = source_plugin and tp.call(source_plugin, "order_source", user)
  local row = { user = user, status = "pending_payment", items_fen = items,
    discount_fen = discount, total_fen = items - discount, paid_fen = 0,
    refund_requested_fen = 0, refunded_fen = 0, coupon_id = coupon_id,
    campaign_plugin = campaign and campaign.plugin, campaign_id = campaign and campaign.id,
    campaign_stacks = campaign and campaign.stacks_with_coupon and 1 or 0,
    held = campaign and campaign.hold and 1 or 0,
    referrer = attribution.referrer, referrer2 = attribution.referrer2, store = attribution.store,
    guide = attribution.guide, stock_held = 1, source = touch and tp.json.encode(touch) or nil,
    late_payment = 0, created_at = tp.now(), pay_deadline = tp.now() + timeout,
    points = points_fen > 0 and points or 0, points_fen = points_fen, forfeited_fen = 0,
    ships_from = ships_from, deposit_fen = deposit and deposit.deposit_fen,
    deposit_worth_fen = deposit and deposit.worth_fen, balance_starts_at = deposit and deposit.balance_starts_at,
    balance_ends_at = deposit and deposit.balance_ends_at,
    deposit_refundable = deposit and (deposit.refundable and 1 or 0) or nil }
  insert_order(row)
  insert_lines(row.id, lines)
  insert_promotions(row.id, priced.promotions)
  local code = priced.code and priced.code.applied and priced.code.code or nil
  if code or #priced.gifts > 0 then
    tp.call(cfg.promotions_plugin, "place", row.id, user, { code = code, gifts = priced.gifts })
  end
  if coupon_id then coupons("lock", user, coupon_id, row.id, priced.coupon_lines) end
  if row.points > 0 then points_call("checkout_spend", user, row.id, row.points) end
  unpaid.watch(row.id, row.pay_deadline, held)
  -- encoded once: the event's data (when a plugin subscribes) and the answer
  local order = tp.json.view(store.shape(row, lines))
  tp.events.emit("order.created", { order = order })
  return order
end

---The price a checkout of body would have now, and the 凑单 hints, without
---reserving, locking or writing anything (POST /orders/preview). Stock is read,
---not taken: a line the catalog could not fill is the checkout's own error.
---@param user string
---@param body table {lines, coupon_id?, points?}
---@return table
function create.preview(user, body)
  check.body(body)
  check.only(body, { lines = true, coupon_id = true, points = true, promo_code = true })
  local cfg = CFG
  check_lines(body, cfg, nil)
  local coupon_id = check.integer(body.coupon_id, "coupon_id", 1, nil, true)
  local points = check.integer(body.points, "points", 1, nil, true)
  local promo_code = check.text(body.promo_code, "promo_code", 32, true)
  local reserved = {}
  for i, l in ipairs(body.lines) do
    local sku = tp.call("catalog", "sku", l.sku)
    if not sku then tp.fail(404, "sku_not_found", ("no such sku %s"):format(l.sku), { sku = l.sku }) end
    if not sku.on_sale then tp.fail(409, "not_on_sale", ("sku %s is not on sale"):format(l.sku), { sku = l.sku }) end
    if sku.stock < l.qty then
      tp.fail(409, "insufficient_stock", ("only %d of sku %s left"):format(sku.stock, l.sku),
        { sku = l.sku, stock = sku.stock })
    end
    reserved[i] = { sku = l.sku, qty = l.qty, product_id = sku.product_id, title = sku.title, price_fen = sku.price_fen }
  end
  local priced = create.price(cfg, user, reserved, nil, nil, coupon_id, points, promo_code)
  local by_line = {}
  for _, p in ipairs(priced.promotions) do
    for _, share in ipairs(p.lines) do
      local list = by_line[share.line] or tp.json.array()
      list[#list + 1] = { promotion_id = p.id, discount_fen = share.discount_fen }
      by_line[share.line] = list
    end
  end
  local lines = tp.json.array()
  for i, l in ipairs(priced.lines) do
    lines[i] = { sku = l.sku, title = l.title, qty = l.qty, list_price_fen = l.list_price_fen,
                 unit_price_fen = l.unit_price_fen, amount_fen = l.amount_fen, discount_fen = l.discount_fen,
                 paid_fen = l.paid_fen, promotions = by_line[i] or tp.json.array() }
  end
  return { lines = lines, items_fen = priced.items_fen, promotions_fen = priced.promotions_fen,
           promotions = priced.promotions, coupon_id = coupon_id, coupon_fen = priced.coupon_fen,
           points = priced.points_fen > 0 and priced.points or 0, points_fen = priced.points_fen,
           discount_fen = priced.discount_fen, total_fen = priced.items_fen - priced.discount_fen,
           hints = priced.hints, promo_code = priced.code, gifts = priced.gifts }
end

return create
