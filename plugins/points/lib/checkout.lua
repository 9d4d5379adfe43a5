-- Points and orders (README "Points at checkout" and "Earning and refunds").
--
-- The orders plugin prices an order and, after the coupon, asks quote() how
-- many of the points the buyer offers it takes and what they are worth; it
-- writes the order and calls spend(), all in the order's own transaction, so
-- a checkout that fails spends nothing. A cancel (user, operator, the unpaid
-- timeout) calls release(); a payment that arrives after the cancel calls
-- reclaim(). Earning (order.paid) and refunds (order.refunded) arrive as
-- events: a refund gives back the spent points and takes back the earned ones
-- in proportion to the money refunded, cumulatively, so partial refunds add
-- up to exactly the whole.
--
-- points_orders keeps one row per order that spent or earned points: what it
-- spent (and under which entry), what went back, what it earned, what was
-- clawed back.

local ledger = require("lib.ledger")
local settings = require("lib.settings")
local check = require("tp.check")

local checkout = {}

local S  -- the plugin's settings, given by plugin.lua

function checkout.init(s) S = s end

local function row_of(order_id)
  return tp.db.one([[SELECT order_id, user, spent, spend_entry, returned, earned, clawed, shortfall
    FROM points_orders WHERE order_id = ?]], order_id)
end

---How many of `points` an order may take and what they are worth, for an
---order that costs payable_fen after its coupon. Capped (never refused) by
---max_percent of payable_fen, max_points, and 1 fen left to pay; refused with
---409 insufficient_points when the balance cannot cover what is taken.
---@param user string
---@param points integer
---@param payable_fen integer
---@return {points: integer, points_fen: integer}
function checkout.quote(user, points, payable_fen)
  check.user(user, "user")
  check.integer(points, "points", 1)
  check.integer(payable_fen, "payable_fen", 1)
  local r = S.redeem
  if not r then tp.fail(409, "points_not_accepted", "this shop does not take points at checkout") end
  local max_fen = math.min(payable_fen * r.max_percent // 100, payable_fen - 1)
  if r.max_points then max_fen = math.min(max_fen, r.max_points // r.points_per_fen) end
  local fen = math.max(0, math.min(points // r.points_per_fen, max_fen))
  local used = fen * r.points_per_fen
  local balance = ledger.balance(user)
  if used > balance then
    tp.fail(409, "insufficient_points", ("you have %d points; this order would take %d"):format(balance, used),
      { balance = balance, points = used })
  end
  return { points = used, points_fen = fen }
end

---Spends points for order_id, in the order's transaction (409
---insufficient_points when the balance does not cover them).
---@param user string
---@param order_id integer
---@param points integer
---@return {points: integer, balance: integer}
function checkout.spend(user, order_id, points)
  check.integer(order_id, "order_id", 1)
  check.integer(points, "points", 1)
  local id, balance = ledger.debit(user, "spend", points, "order:" .. order_id, nil)
  if not id then
    tp.fail(409, "insufficient_points", ("you have %d points"):format(balance), { balance = balance, points = points })
  end
  tp.db.exec([[INSERT INTO points_orders (order_id, user, spent, spend_entry, returned, earned, clawed, shortfall)
    VALUES (?, ?, ?, ?, 0, 0, 0, 0)
    ON CONFLICT (order_id) DO UPDATE SET spent = excluded.spent, spend_entry = excluded.spend_entry, returned = 0]],
    order_id, user, points, id)
  return { points = points, balance = balance }
end

---Gives back what order_id spent and has not had back (a cancel). Returns
---the points returned (0 for an order that spent none).
---@param order_id integer
---@return integer
function checkout.release(order_id)
  local o = row_of(order_id)
  if not o or o.spent == o.returned then return 0 end
  local n = o.spent - o.returned
  tp.db.exec("UPDATE points_orders SET returned = spent WHERE order_id = ?", order_id)
  return ledger.restore(o.user, o.spend_entry, n, "return", "order:" .. order_id, "order cancelled")
end

---A payment arrived for order_id after its cancel gave the points back: take
---them again if the balance still covers them. false (nothing taken) if not:
---the orders plugin then refunds the payment.
---@param order_id integer
---@return boolean
function checkout.reclaim(order_id)
  local o = row_of(order_id)
  if not o or o.spent == 0 or o.returned == 0 then return true end
  local id = ledger.debit(o.user, "spend", o.spent, "order:" .. order_id, "paid after its cancel")
  if not id then return false end
  tp.db.exec("UPDATE points_orders SET spend_entry = ?, returned = 0 WHERE order_id = ?", id, order_id)
  return true
end

---order.paid: the buyer earns earn.points per earn.per_fen of what she paid
---(rounded down), once per order; the lot expires as the brand's expiry says.
function checkout.on_paid(ev)
  local o = ev.data.order
  if not S.earn or type(o) ~= "table" then return end
  local n = (o.paid_fen or 0) * S.earn.points // S.earn.per_fen
  if n <= 0 then return end
  local fresh = tp.db.one([[INSERT INTO points_orders (order_id, user, spent, returned, earned, clawed, shortfall)
    VALUES (?1, ?2, 0, 0, ?3, 0, 0)
    ON CONFLICT (order_id) DO UPDATE SET earned = ?3 WHERE earned = 0
    RETURNING order_id]], o.id, o.user, n)
  if not fresh then return end  -- delivered before
  ledger.credit(o.user, "earn", n, "order:" .. o.id, "order paid", settings.expires_at(S, tp.now()))
end

---order.refunded: the spent points go back and the earned ones are taken
---back, each in the proportion refunded_fen / paid_fen of the order so far
---(rounded down, the whole at a full refund). A claw-back the balance cannot
---cover takes the balance to zero and records the rest as the order's
---shortfall, unless the brand allows a negative balance.
---@param ev {data: {order: Order, amount_fen: integer, refund_no: string, full: boolean}}
function checkout.on_refunded(ev)
  local o = ev.data.order
  if type(o) ~= "table" or not o.paid_fen or o.paid_fen <= 0 then return end
  local r = row_of(o.id)
  if not r then return end
  local refunded = math.min(o.refunded_fen or 0, o.paid_fen)
  local source = "order:" .. o.id
  local give = r.spent * refunded // o.paid_fen - r.returned
  if give > 0 then
    tp.db.exec("UPDATE points_orders SET returned = returned + ? WHERE order_id = ?", give, o.id)
    ledger.restore(r.user, r.spend_entry, give, "return", source, "order refunded")
  end
  local claw = r.earned * refunded // o.paid_fen - r.clawed - r.shortfall
  if claw > 0 then
    local take, short = claw, 0
    if not S.allow_negative then
      take = math.min(claw, math.max(ledger.balance(r.user), 0))
      short = claw - take
    end
    tp.db.exec("UPDATE points_orders SET clawed = clawed + ?, shortfall = shortfall + ? WHERE order_id = ?",
      take, short, o.id)
    if take > 0 then
      ledger.debit(r.user, "clawback", take, source,
        short > 0 and ("order refunded; %d points could not be taken back"):format(short) or "order refunded", true)
    end
  end
end

return checkout
