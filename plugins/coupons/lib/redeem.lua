---@diagnostic disable: undefined-global
-- coupons/lib/redeem.lua: what the orders plugin calls (tp.call("coupons", ...)).
--
-- A coupon moves unused -> locked (by one order, at order creation) -> used
-- (the order is paid), or locked -> unused (the order is cancelled). Every
-- move is a conditional update on the current state, so a coupon can never
-- be held by two orders; coupons_orders remembers which coupon each order
-- locked (one per order, ever), so that a payment arriving after the cancel
-- can take the same coupon back if it is still free.

local check = require("tp.check")

---A line of an order, as the orders plugin passes it.
---@class CouponLine
---@field sku string
---@field product_id integer
---@field qty integer
---@field amount_fen integer the line's subtotal that a coupon may discount

---What a coupon takes off a set of lines.
---@class CouponQuote
---@field coupon_id integer
---@field template_id integer
---@field discount_fen integer 0 <= discount_fen <= eligible_fen
---@field eligible_fen integer the subtotal of the lines in the coupon's scope
---@field eligible_skus string[] the skus of those lines (each once, in line order)

local redeem = {}

local MAX_LINES = 1000
local MAX_LINE_FEN = 1000000000000  -- 10^12 fen per line; the sum stays far below 2^63 / 100

-- ---- argument checks: a caller's mistake is a 400 invalid_argument naming the argument

local function bad(arg, message)
  tp.fail(400, "invalid_argument", ("%s %s"):format(arg, message), { argument = arg })
end

local function check_user(user)
  if not check.is_user_id(user) then bad("user", "must be a user id") end
  return user
end

local function check_coupon_id(id)
  if math.type(id) ~= "integer" or id < 1 then bad("coupon_id", "must be a positive integer") end
  return id
end

---An order id: a positive integer or a string of 1-64 visible ASCII characters. It is
---stored as given, so one order must always be named the same way (42 is not "42").
local function check_order_id(id)
  if math.type(id) == "integer" then
    if id < 1 then bad("order_id", "must be a positive integer or a non-empty string") end
  elseif type(id) ~= "string" or #id < 1 or #id > 64 or id:find("[^\33-\126]") then
    bad("order_id", "must be a positive integer or a string of 1-64 visible ASCII characters")
  end
  return id
end

---@param lines any
---@return CouponLine[]
local function check_lines(lines)
  if not check.is_list(lines) or #lines > MAX_LINES then
    bad("lines", ("must be a list of at most %d lines"):format(MAX_LINES))
  end
  for i, l in ipairs(lines) do
    local at = ("lines[%d]"):format(i)
    if type(l) ~= "table" then bad(at, "must be a table {sku, product_id, qty, amount_fen}") end
    if type(l.sku) ~= "string" or #l.sku == 0 or #l.sku > 64 then
      bad(at .. ".sku", "must be a sku code (a string of 1-64 bytes)")
    end
    if math.type(l.product_id) ~= "integer" or l.product_id < 1 then
      bad(at .. ".product_id", "must be a positive integer")
    end
    if math.type(l.qty) ~= "integer" or l.qty < 1 then bad(at .. ".qty", "must be a positive integer") end
    if math.type(l.amount_fen) ~= "integer" or l.amount_fen < 0 or l.amount_fen > MAX_LINE_FEN then
      bad(at .. ".amount_fen", ("must be an integer from 0 to %d"):format(MAX_LINE_FEN))
    end
  end
  return lines
end

local function not_usable(reason, message, details)
  details = details or {}
  details.reason = reason
  tp.fail(409, "coupon_not_usable", message, details)
end

-- ---- the discount

---The discount of template t on eligible_fen (already known to meet min_spend_fen).
---Integers only; never more than eligible_fen.
---@param t table kind, amount_off_fen, percent_off, max_discount_fen
---@param eligible_fen integer
---@return integer
function redeem.discount(t, eligible_fen)
  local d
  if t.kind == "fixed" then
    d = math.min(t.amount_off_fen, eligible_fen)
  elseif t.kind == "threshold" then
    d = t.amount_off_fen
  else -- percent: rounded down to the fen, then capped
    d = math.min(eligible_fen * t.percent_off // 100, t.max_discount_fen)
  end
  return math.max(0, math.min(d, eligible_fen))
end

---Lines in the coupon's scope that have something to discount (amount_fen > 0).
---@return integer eligible_fen, string[] eligible_skus
local function eligible(c, lines)
  local listed = {}
  if c.scope ~= "all" then
    for _, r in ipairs(tp.db.query(
        "SELECT product_id FROM coupons_template_products WHERE template_id = ?", c.template_id)) do
      listed[r.product_id] = true
    end
  end
  local sum, skus, seen = 0, tp.json.array(), {}
  for _, l in ipairs(lines) do
    local in_scope = c.scope == "all" or (c.scope == "products") == (listed[l.product_id] == true)
    if in_scope and l.amount_fen > 0 then
      sum = sum + l.amount_fen
      if not seen[l.sku] then
        seen[l.sku] = true
        skus[#skus + 1] = l.sku
      end
    end
  end
  return sum, skus
end

-- ---- exports

---quote(user, coupon_id, lines) -> CouponQuote. Writes nothing.
---@param user string
---@param coupon_id integer
---@param lines CouponLine[]
---@return CouponQuote
function redeem.quote(user, coupon_id, lines)
  check_user(user)
  check_coupon_id(coupon_id)
  check_lines(lines)
  local c = tp.db.one([[
    SELECT c.id, c.template_id, c.state, c.valid_from, c.valid_until, t.kind, t.amount_off_fen,
      t.percent_off, t.max_discount_fen, t.min_spend_fen, t.scope
    FROM coupons_coupons c JOIN coupons_templates t ON t.id = c.template_id
    WHERE c.id = ? AND c.user = ?]], coupon_id, user)
  -- another user's coupon is answered exactly like one that does not exist. Every tp.fail
  -- of an export carries details: without them the host's tp.fail makes the error its own
  -- details (a cycle), which tp.call cannot copy, and the caller gets a 500 instead.
  if not c then tp.fail(404, "coupon_not_found", "no such coupon", { coupon_id = coupon_id }) end
  if c.state ~= "unused" then
    not_usable(c.state, ("this coupon is %s"):format(c.state))
  end
  local now = tp.now()
  if now < c.valid_from then
    not_usable("not_yet_valid", "this coupon is not valid yet", { valid_from = c.valid_from })
  end
  if now >= c.valid_until then
    not_usable("expired", "this coupon has expired", { valid_until = c.valid_until })
  end
  local eligible_fen, skus = eligible(c, lines)
  if #skus == 0 then not_usable("not_applicable", "no item of this order is eligible for this coupon") end
  if eligible_fen < c.min_spend_fen then
    not_usable("below_threshold",
      ("this coupon needs an eligible subtotal of %d fen"):format(c.min_spend_fen),
      { min_spend_fen = c.min_spend_fen, eligible_fen = eligible_fen })
  end
  return {
    coupon_id = c.id,
    template_id = c.template_id,
    discount_fen = redeem.discount(c, eligible_fen),
    eligible_fen = eligible_fen,
    eligible_skus = skus,
  }
end

---lock(user, coupon_id, order_id, lines) -> CouponQuote: quotes, then holds the coupon for the order.
---An order locks at most one coupon, once.
---@param user string
---@param coupon_id integer
---@param order_id integer|string
---@param lines CouponLine[]
---@return CouponQuote
function redeem.lock(user, coupon_id, order_id, lines)
  check_order_id(order_id)
  local q = redeem.quote(user, coupon_id, lines)
  local held = tp.db.one("SELECT coupon_id FROM coupons_orders WHERE order_id = ?", order_id)
  if held then
    tp.fail(409, "order_has_coupon", "this order has already locked a coupon",
      { order_id = order_id, coupon_id = held.coupon_id })
  end
  local now = tp.now()
  local moved = tp.db.exec([[UPDATE coupons_coupons SET state = 'locked', order_id = ?, locked_at = ?
    WHERE id = ? AND user = ? AND state = 'unused']], order_id, now, coupon_id, user)
  if moved ~= 1 then not_usable("locked", "this coupon is locked") end
  tp.db.exec([[INSERT INTO coupons_orders (order_id, coupon_id, user, discount_fen, locked_at)
    VALUES (?, ?, ?, ?, ?)]], order_id, coupon_id, user, q.discount_fen, now)
  return q
end

---unlock(order_id) -> boolean: the order was cancelled; its locked coupon is unused again.
---@param order_id integer|string
---@return boolean moved
function redeem.unlock(order_id)
  check_order_id(order_id)
  local moved = tp.db.exec([[UPDATE coupons_coupons SET state = 'unused', order_id = NULL,
    locked_at = NULL WHERE order_id = ? AND state = 'locked']], order_id)
  if moved == 1 then
    tp.db.exec("UPDATE coupons_orders SET released_at = ? WHERE order_id = ?", tp.now(), order_id)
  end
  return moved == 1
end

---consume(order_id) -> boolean: the order was paid; its locked coupon is used. Validity is
---not checked again: it was checked when the order locked the coupon.
---@param order_id integer|string
---@return boolean moved
function redeem.consume(order_id)
  check_order_id(order_id)
  local now = tp.now()
  local moved = tp.db.exec([[UPDATE coupons_coupons SET state = 'used', used_at = ?
    WHERE order_id = ? AND state = 'locked']], now, order_id)
  if moved == 1 then
    tp.db.exec("UPDATE coupons_orders SET used_at = ? WHERE order_id = ?", now, order_id)
  end
  return moved == 1
end

---restore(order_id) -> boolean: the order was refunded in full and the brand gives its
---coupon back (the fulfilment plugin's return_coupon = "full_refund"): the used coupon is
---unused again if it is still valid now; false otherwise (expired, or never used).
---@param order_id integer|string
---@return boolean moved
function redeem.restore(order_id)
  check_order_id(order_id)
  local now = tp.now()
  local moved = tp.db.exec([[UPDATE coupons_coupons SET state = 'unused', order_id = NULL, locked_at = NULL,
    used_at = NULL WHERE order_id = ?1 AND state = 'used' AND ?2 < valid_until]], order_id, now)
  if moved == 1 then
    tp.db.exec("UPDATE coupons_orders SET released_at = ? WHERE order_id = ?", now, order_id)
  end
  return moved == 1
end

---relock(order_id) -> boolean: a payment arrived after the order was cancelled. The coupon
---that order had locked is locked by it again if it is still unused and valid now; false
---otherwise (another order holds or used it, it expired, or the order never had one).
---@param order_id integer|string
---@return boolean moved
function redeem.relock(order_id)
  check_order_id(order_id)
  local o = tp.db.one("SELECT coupon_id FROM coupons_orders WHERE order_id = ?", order_id)
  if not o then return false end
  local now = tp.now()
  local moved = tp.db.exec([[UPDATE coupons_coupons SET state = 'locked', order_id = ?1, locked_at = ?2
    WHERE id = ?3 AND state = 'unused' AND valid_from <= ?2 AND ?2 < valid_until]],
    order_id, now, o.coupon_id)
  if moved == 1 then
    tp.db.exec("UPDATE coupons_orders SET released_at = NULL, locked_at = ? WHERE order_id = ?",
      now, order_id)
  end
  return moved == 1
end

return redeem
