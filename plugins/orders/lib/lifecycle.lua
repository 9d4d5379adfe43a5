-- The order's states after creation. Every transition is one conditional
-- UPDATE ... WHERE status = <the state it leaves>, and its side effects run
-- only when that update changed a row, so a repeated cancel, a repeated
-- payment notify or a retried job does nothing twice.
--
--   pending_payment -> paid -> completed
--   pending_payment -> cancelled          (user, or unpaid past pay_deadline)
--   cancelled -> paid                     (a payment after the cancel, units re-reserved)
--   cancelled -> refunding -> refunded    (a payment after the cancel, units gone)
--   paid|completed -> refunding -> refunded   (a full refund)
--   paid|completed -> (partial refunds: refunded_fen grows, status stays)
--
-- An order paid in two payments (a presale's 定金 then 尾款, order.deposit):
--   pending_payment -> awaiting_balance -> paid     (the deposit, then the balance in its window)
--   awaiting_balance -> cancelled                   (the balance window closed unpaid: the deposit is
--                                                    forfeited, forfeited_fen, units back)
--   awaiting_balance -> refunding -> refunded       (closed unpaid with a refundable deposit, or an
--                                                    operator's or the campaign's refund: the deposit back)
-- A refund of a paid two-payment order is drawn from the balance's
-- transaction first, then the deposit's: one refund number per transaction.
--
-- Beside the status, a paid order's fulfilment (set by the fulfilment plugin):
-- nil -> partially_shipped -> shipped -> delivered, or nil -> picked_up. Once
-- goods left (fulfilment set, or completed), a full refund returns no units:
-- only lifecycle.restock, for goods that came back.

local store = require("lib.store")

local lifecycle = {}

---Tells the order's campaign plugin. When the campaign itself asked for this
---change (a group buy refunding its failed group), it settles its own side:
---calling it back would be a call cycle, which the host refuses.
local function campaign_hook(o, name)
  if not o.campaign or o.campaign.plugin == tp.caller() then return true end
  return tp.call(o.campaign.plugin, name, o)
end

---Gives back what a live order holds: units to the catalog and its campaign,
---the coupon to the user.
---@param o Order
local function release_holdings(o)
  if o.stock_held then
    -- units restocked line by line before (lifecycle.restock) are not given twice
    local done, back = {}, {}
    for _, r in ipairs(tp.db.query("SELECT line_no, qty FROM orders_restocks WHERE order_id = ?", o.id)) do
      done[r.line_no] = r.qty
    end
    for i, l in ipairs(o.lines) do
      if l.qty > (done[i] or 0) then back[#back + 1] = { sku = l.sku, qty = l.qty - (done[i] or 0) } end
    end
    if #back > 0 then tp.call("catalog", "release", back) end
    tp.db.exec([[INSERT INTO orders_restocks (order_id, line_no, qty)
      SELECT order_id, line_no, qty FROM orders_lines WHERE order_id = ?
      ON CONFLICT (order_id, line_no) DO UPDATE SET qty = excluded.qty]], o.id)
    campaign_hook(o, "release_order")
    tp.db.exec("UPDATE orders_orders SET stock_held = 0 WHERE id = ?", o.id)
  end
end

---Cancels an unpaid order. by is "user", "timeout" or "admin".
---@param id integer
---@param by string
---@return boolean changed
function lifecycle.cancel(id, by)
  -- the timeout cancels only past the deadline: its job is the sweep's (lib/unpaid.lua), or one
  -- scheduled before 1.10.0; a paid or cancelled order leaves it nothing to do
  local changed = tp.db.exec([[
    UPDATE orders_orders SET status = 'cancelled', cancelled_at = ?1, cancel_reason = ?2
    WHERE id = ?3 AND status = 'pending_payment' AND (?2 <> 'timeout' OR pay_deadline <= ?1)]],
    tp.now(), by, id)
  if changed == 0 then return false end
  local o = store.load(id)
  release_holdings(o)
  if o.coupon_id then tp.call("coupons", "unlock", id) end
  if o.points > 0 then tp.call("points", "checkout_release", id) end
  o.stock_held = false
  tp.events.emit("order.cancelled", { order = o, reason = by })
  return true
end

-- ---- fulfilment (the fulfilment plugin says how far the goods went)

local FULFILMENT = { partially_shipped = true, shipped = true, delivered = true, picked_up = true }

---Whether an order's goods left the shop: it shipped (in part), or it was
---completed (its buyer confirmed she had them).
---@param o Order
---@return boolean
function lifecycle.goods_left(o)
  return o.completed_at ~= nil or o.fulfilment ~= nil
end

---Refuses any caller but the fulfilment plugin.
function lifecycle.fulfilment_caller()
  local allowed = tp.config().fulfilment_plugin or "fulfilment"
  if tp.caller() ~= allowed then
    tp.fail(403, "fulfilment_forbidden", ("only the %s plugin records fulfilment"):format(allowed))
  end
end

---paid -> the goods' state, on a paid order no campaign holds.
---@param id integer
---@param state string
---@return boolean changed
function lifecycle.set_fulfilment(id, state)
  if not FULFILMENT[state] then tp.fail(400, "invalid_field", "unknown fulfilment state", { field = "state" }) end
  return tp.db.exec([[UPDATE orders_orders SET fulfilment = ?
    WHERE id = ? AND status = 'paid' AND held = 0 AND (ships_from IS NULL OR ships_from <= ?)]],
    state, id, tp.now()) == 1
end

---Units of an order that came back go to the catalog (never to a campaign:
---the sale is over for them). Per line at most what it ordered, in all.
---@param id integer
---@param lines {line: integer, qty: integer}[]
---@return boolean
function lifecycle.restock(id, lines)
  local o = store.load(id)
  if not o then tp.fail(404, "order_not_found", "no such order") end
  local back = {}
  for i, want in ipairs(lines) do
    local l = o.lines[want.line]
    if not l or math.type(want.qty) ~= "integer" or want.qty < 1 then
      tp.fail(400, "invalid_field", ("lines[%d] names no line of the order, or no quantity"):format(i),
        { field = ("lines[%d]"):format(i) })
    end
    local changed = tp.db.exec([[
      INSERT INTO orders_restocks (order_id, line_no, qty) VALUES (?1, ?2, ?3)
      ON CONFLICT (order_id, line_no) DO UPDATE SET qty = qty + ?3 WHERE qty + ?3 <= ?4]],
      id, want.line, want.qty, l.qty)
    if changed == 0 or want.qty > l.qty then
      tp.fail(409, "restock_exceeds_ordered", ("line %d ordered %d units"):format(want.line, l.qty),
        { line = want.line, qty = l.qty })
    end
    back[#back + 1] = { sku = l.sku, qty = want.qty }
  end
  tp.call("catalog", "release", back)
  return true
end

-- ---- refunds

---Records a refund and schedules the job that moves the money. The refund
---number exists, durably, before any money moves; the job reuses it on every
---retry, and the payment provider refuses a number it has seen.
---@param o Order
---@param amount integer
---@param reason string
---@param kind "order"|"duplicate_payment"
---@param transaction_id string
---@return table refund
local function record_refund(o, amount, reason, kind, transaction_id)
  local n = tp.db.one("SELECT count(*) AS n FROM orders_refunds WHERE order_id = ?", o.id).n
  local refund_no = ("R%d-%d"):format(o.id, n + 1)
  local _, id = tp.db.exec([[
    INSERT INTO orders_refunds (refund_no, order_id, transaction_id, amount_fen, reason, kind,
      status, created_at)
    VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)]], refund_no, o.id, transaction_id, amount, reason, kind,
    tp.now())
  tp.jobs.schedule("refund", { refund_id = id }, { after = 0, key = "refund:" .. refund_no })
  return { refund_no = refund_no, amount_fen = amount, reason = reason, kind = kind,
           status = "pending" }
end

---What each payment of o still has to refund, latest first: {transaction_id,
---left_fen}. A one-payment order has one; a paid two-payment order the
---balance's, then the deposit's.
---@param o Order
---@return {transaction_id: string, left_fen: integer}[]
local function refundable_payments(o)
  local list = {}
  if o.deposit and o.deposit.balance_transaction_id then
    list[1] = { transaction_id = o.deposit.balance_transaction_id, amount_fen = o.deposit.balance_fen }
  end
  if o.transaction_id then
    list[#list + 1] = { transaction_id = o.transaction_id, amount_fen = o.deposit and o.deposit.deposit_fen or o.total_fen }
  end
  for _, p in ipairs(list) do
    p.left_fen = p.amount_fen - tp.db.one([[SELECT coalesce(sum(amount_fen), 0) AS fen FROM orders_refunds
      WHERE order_id = ? AND transaction_id = ? AND kind = 'order']], o.id, p.transaction_id).fen
  end
  return list
end

---Records refunds of amount fen of o, drawn from its payments latest first,
---one refund number per payment. Returns the first, with parts when two.
local function record_order_refunds(o, amount, reason)
  local parts, left = {}, amount
  for _, p in ipairs(refundable_payments(o)) do
    local take = math.min(left, p.left_fen)
    if take > 0 then
      parts[#parts + 1] = record_refund(o, take, reason, "order", p.transaction_id)
      left = left - take
    end
  end
  if left > 0 then error(("orders: %d fen of a refund of order %d fit no payment"):format(left, o.id), 0) end
  local refund = parts[1]
  if #parts > 1 then
    refund = { refund_no = parts[1].refund_no, amount_fen = amount, reason = reason, kind = "order",
               status = "pending", parts = parts }
  end
  return refund
end

---Requests a refund of amount fen (default: all that is not yet refunded) of
---a paid or completed order. A full refund returns held units. An order
---awaiting its balance is refunded only in full (its deposit): it is called
---off, its units go back and its balance is no longer due.
---@param id integer
---@param amount integer|nil
---@param reason string
---@return table refund, Order order
function lifecycle.refund(id, amount, reason)
  local o = store.load(id)
  if not o then tp.fail(404, "order_not_found", "no such order") end
  if o.status ~= "paid" and o.status ~= "completed" and o.status ~= "awaiting_balance" then
    tp.fail(409, "not_refundable", ("an order that is %s cannot be refunded"):format(o.status),
      { status = o.status })
  end
  local left = o.paid_fen - o.refund_requested_fen
  amount = amount or left
  if amount < 1 or amount > left then
    tp.fail(409, "refund_exceeds_paid", ("at most %d fen of this order can still be refunded"):format(left),
      { refundable_fen = left })
  end
  if o.status == "awaiting_balance" and amount ~= left then
    tp.fail(409, "refund_must_be_whole", "an order awaiting its balance is refunded in full (its deposit) or not at all",
      { refundable_fen = left })
  end
  local full = amount == left
  local changed = tp.db.exec([[
    UPDATE orders_orders SET refund_requested_fen = refund_requested_fen + ?1,
      status = CASE WHEN ?2 THEN 'refunding' ELSE status END
    WHERE id = ?3 AND status IN ('paid', 'completed', 'awaiting_balance') AND refund_requested_fen + ?1 <= paid_fen]],
    amount, full, id)
  if changed == 0 then tp.fail(409, "refund_conflict", "the order changed; try again") end
  if o.status == "awaiting_balance" then tp.jobs.cancel("balance:" .. id) end
  -- units go back only while they never left: a completed order (its buyer had
  -- them) or one that shipped keeps them sold; goods that come back are
  -- restocked by lifecycle.restock, line by line
  if full and not lifecycle.goods_left(o) then release_holdings(o) end
  return record_order_refunds(o, amount, reason), store.load(id)
end

---Books a refund the provider has paid out: the order's refunded amount,
---its status, order.refunded. Once per refund (only a pending one counts).
---@return boolean settled false when it was not pending
local function settle_refund(r, provider_refund_id)
  local changed = tp.db.exec([[UPDATE orders_refunds SET status = 'succeeded', succeeded_at = ?,
    provider_refund_id = ? WHERE id = ? AND status = 'pending']], tp.now(), provider_refund_id, r.id)
  if changed == 0 then return false end
  if r.kind ~= "order" then return true end  -- a duplicate payment went back; the order is untouched
  local row = tp.db.one([[
    UPDATE orders_orders SET refunded_fen = refunded_fen + ?1,
      status = CASE WHEN refunded_fen + ?1 = paid_fen THEN 'refunded' ELSE status END,
      refunded_at = CASE WHEN refunded_fen + ?1 = paid_fen THEN ?2 ELSE refunded_at END
    WHERE id = ?3 RETURNING status]], r.amount_fen, tp.now(), r.order_id)
  tp.events.emit("order.refunded", { order = store.load(r.order_id), refund_no = r.refund_no,
    amount_fen = r.amount_fen, full = row.status == "refunded" })
  return true
end

local REFUND_COLUMNS = "id, refund_no, order_id, transaction_id, amount_fen, kind, status"

local RUN_REFUND_SQL = "SELECT " .. REFUND_COLUMNS .. " FROM orders_refunds WHERE id = ?"

---The refund job: asks the payment plugin to move the money (idempotent by
---refund number), then books it. Raising leaves the refund pending for a retry.
---A provider that answers PROCESSING (WeChat Pay accepts, then notifies)
---leaves it pending until the payment plugin calls refund_settled.
---@param refund_id integer
function lifecycle.run_refund(refund_id)
  local r = tp.db.one(RUN_REFUND_SQL, refund_id)
  if not r or r.status ~= "pending" then return end
  local o = store.load(r.order_id)
  -- the payment's own total: a duplicate payment is refunded whole; an order's
  -- balance and deposit are two payments of their own
  local total = o.total_fen
  if r.kind == "duplicate_payment" then total = r.amount_fen
  elseif o.deposit then
    total = r.transaction_id == o.deposit.balance_transaction_id and o.deposit.balance_fen or o.deposit.deposit_fen
  end
  local result = tp.call(tp.config().payment_plugin or "payments", "refund", {
    refund_no = r.refund_no, order_id = r.order_id, transaction_id = r.transaction_id,
    amount_fen = r.amount_fen, total_fen = total })
  if result.status == "PROCESSING" then return end
  settle_refund(r, result.provider_refund_id)
end

local REFUND_SETTLED_SQL = "SELECT " .. REFUND_COLUMNS .. " FROM orders_refunds WHERE refund_no = ?"

---The payment plugin's word that a refund it accepted as PROCESSING was paid
---out. Returns whether it changed anything (false: unknown or settled before).
---@param refund_no string
---@param provider_refund_id string?
---@return boolean
function lifecycle.refund_settled(refund_no, provider_refund_id)
  local r = tp.db.one(REFUND_SETTLED_SQL, refund_no)
  return r ~= nil and r.status == "pending" and settle_refund(r, provider_refund_id)
end

-- ---- payment

---Takes back, for an order paid after it was cancelled, what the cancel gave
---away: the points, the coupon, the units, the campaign's units. All or nothing.
---@param o Order
---@return boolean
local function reclaim(o)
  if o.points > 0 and not tp.call("points", "checkout_reclaim", o.id) then return false end
  if o.coupon_id and not tp.call("coupons", "relock", o.id) then
    if o.points > 0 then tp.call("points", "checkout_release", o.id) end
    return false
  end
  local ok = pcall(tp.call, "catalog", "reserve", store.stock_lines(o))
  if ok and not campaign_hook(o, "reclaim_order") then
    tp.call("catalog", "release", store.stock_lines(o))
    ok = false
  end
  if not ok and o.coupon_id then tp.call("coupons", "unlock", o.id) end
  if not ok and o.points > 0 then tp.call("points", "checkout_release", o.id) end
  return ok
end

local function paid_effects(o, late)
  if o.coupon_id then tp.call("coupons", "consume", o.id) end
  o = store.load(o.id)
  tp.events.emit("order.paid", { order = o, late = late })
  return o
end

---@class PaymentNotice
---@field order_id integer
---@field transaction_id string
---@field amount_fen integer
---@field paid_at integer
---@field stage integer? 1 (default): the order's first payment (the deposit, or the whole order); 2: the balance

---The deposit is in: the order awaits its balance; the balance window's close
---is scheduled (lifecycle.balance_missed) and order.deposit_paid emitted.
local function deposit_effects(o)
  tp.jobs.schedule("expire_balance", { order_id = o.id },
    { at = o.deposit.balance_ends_at, key = "balance:" .. o.id })
  o = store.load(o.id)
  tp.events.emit("order.deposit_paid", { order = o })
  return o
end

---Refuses a payment whose amount is not what its stage costs: 400 amount_mismatch, logged.
local function check_amount(o, n, due)
  if n.amount_fen ~= due then
    tp.log("warn", "payment amount does not match the order", { order_id = o.id,
      transaction_id = n.transaction_id, amount_fen = n.amount_fen, total_fen = o.total_fen, due_fen = due,
      stage = n.stage or 1 })
    tp.fail(400, "amount_mismatch", ("this payment of the order costs %d fen, the payment says %d"):format(
      due, n.amount_fen), { total_fen = o.total_fen, due_fen = o.deposit and due or nil, amount_fen = n.amount_fen })
  end
end

---A payment the order cannot keep goes back whole (kind duplicate_payment:
---the order is untouched), once per transaction.
local function send_back(o, n, outcome)
  if tp.db.one([[SELECT 1 AS seen FROM orders_refunds
      WHERE transaction_id = ? AND kind = 'duplicate_payment']], n.transaction_id) then
    return "duplicate", o
  end
  record_refund(o, n.amount_fen, outcome, "duplicate_payment", n.transaction_id)
  return outcome, o
end

---The balance (stage 2) of a two-payment order: paid while awaiting it (the
---window is the payment plugin's to enforce at prepay; money that arrives is
---taken while the order still waits for it). A balance for an order that no
---longer waits (called off at the window's close, refunded, paid by another
---transaction) goes back whole.
local function pay_balance(o, n)
  check_amount(o, n, o.deposit.balance_fen)
  if o.deposit.balance_transaction_id == n.transaction_id then return "duplicate", o end
  local changed = tp.db.exec([[
    UPDATE orders_orders SET status = 'paid', paid_fen = total_fen, balance_transaction_id = ?, paid_at = ?
    WHERE id = ? AND status = 'awaiting_balance']], n.transaction_id, n.paid_at, o.id)
  if changed == 1 then
    tp.jobs.cancel("balance:" .. o.id)
    return "paid", paid_effects(o, false)
  end
  if o.status == "paid" or o.status == "completed" then return send_back(o, n, "refunding_duplicate") end
  return send_back(o, n, "refunding_late_balance")
end

---Marks an order paid. Returns the outcome: "paid", "deposit_paid" (the first
---of two payments: the order awaits its balance), "duplicate" (this
---transaction was already applied), "paid_after_cancel", "refunding"
---(paid after cancel, units gone: refunded in full), "refunding_duplicate"
---(a second payment for an order paid by another transaction) or
---"refunding_late_balance" (a balance for an order no longer awaiting it).
---@param n PaymentNotice
---@return string outcome, Order order
function lifecycle.pay(n)
  local o = store.load(n.order_id)
  if not o then tp.fail(404, "order_not_found", "no such order") end
  local stage = n.stage or 1
  if stage == 2 then
    if not o.deposit then
      tp.fail(400, "no_balance_due", "this order is paid in one payment: it has no balance")
    end
    return pay_balance(o, n)
  end
  check_amount(o, n, o.deposit and o.deposit.deposit_fen or o.total_fen)
  if o.transaction_id == n.transaction_id then return "duplicate", o end
  local changed
  if o.deposit then
    changed = tp.db.exec([[
      UPDATE orders_orders SET status = 'awaiting_balance', paid_fen = ?, transaction_id = ?, deposit_paid_at = ?
      WHERE id = ? AND status = 'pending_payment']], n.amount_fen, n.transaction_id, n.paid_at, o.id)
  else
    changed = tp.db.exec([[
      UPDATE orders_orders SET status = 'paid', paid_fen = ?, transaction_id = ?, paid_at = ?
      WHERE id = ? AND status = 'pending_payment']], n.amount_fen, n.transaction_id, n.paid_at, o.id)
  end
  if changed == 1 then
    if o.deposit then return "deposit_paid", deposit_effects(o) end
    return "paid", paid_effects(o, false)
  end
  -- a deposit after its balance window closed cannot be reclaimed: it goes back below
  local reclaimable = not o.deposit or tp.now() < o.deposit.balance_ends_at
  if o.status == "cancelled" and not o.transaction_id then
    tp.db.exec(("UPDATE orders_orders SET paid_fen = ?, transaction_id = ?, %s = ?, late_payment = 1 WHERE id = ?")
      :format(o.deposit and "deposit_paid_at" or "paid_at"), n.amount_fen, n.transaction_id, n.paid_at, o.id)
    if reclaimable and reclaim(o) then
      tp.db.exec("UPDATE orders_orders SET status = ?, stock_held = 1 WHERE id = ?",
        o.deposit and "awaiting_balance" or "paid", o.id)
      tp.db.exec("DELETE FROM orders_restocks WHERE order_id = ?", o.id)  -- every unit is the order's again
      if o.deposit then return "paid_after_cancel", deposit_effects(o) end
      return "paid_after_cancel", paid_effects(o, true)
    end
    tp.db.exec([[UPDATE orders_orders SET status = 'refunding', refund_requested_fen = paid_fen
      WHERE id = ?]], o.id)
    o = store.load(o.id)
    record_refund(o, n.amount_fen, "paid_after_cancel", "order", n.transaction_id)
    return "refunding", o
  end
  -- paid twice (two transactions): the second payment goes back, the order stays
  return send_back(o, n, "refunding_duplicate")
end

---The balance window of a two-payment order closed (the job at
---balance_ends_at): an order still awaiting its balance is called off, its
---units go back, and its deposit is kept (forfeited_fen; status cancelled)
---or, when its terms say refundable, refunded in full (refunding ->
---refunded). Emits order.cancelled with reason "balance_unpaid" and deposit
---"forfeited" or "refunded". Once: a conditional UPDATE.
---@param id integer
---@return boolean changed
function lifecycle.balance_missed(id)
  local o = store.load(id)
  if not o or o.status ~= "awaiting_balance" or tp.now() < o.deposit.balance_ends_at then return false end
  local refund = o.deposit.refundable
  local changed = tp.db.exec([[
    UPDATE orders_orders SET status = CASE WHEN ?1 THEN 'refunding' ELSE 'cancelled' END,
      refund_requested_fen = CASE WHEN ?1 THEN paid_fen ELSE refund_requested_fen END,
      forfeited_fen = CASE WHEN ?1 THEN 0 ELSE paid_fen - refund_requested_fen END,
      cancelled_at = ?2, cancel_reason = 'balance_unpaid'
    WHERE id = ?3 AND status = 'awaiting_balance']], refund, tp.now(), id)
  if changed == 0 then return false end
  release_holdings(o)
  if refund then record_refund(o, o.paid_fen, "balance_unpaid", "order", o.transaction_id) end
  o = store.load(id)
  o.stock_held = false
  tp.events.emit("order.cancelled", { order = o, reason = "balance_unpaid",
    deposit = refund and "refunded" or "forfeited" })
  return true
end

---paid -> completed (the user confirmed receipt, or the operator closed it).
---A held order (its group has not formed) cannot be completed: 409 order_held.
---@param id integer
---@return boolean changed
function lifecycle.complete(id)
  local changed = tp.db.exec([[UPDATE orders_orders SET status = 'completed', completed_at = ?
    WHERE id = ? AND status = 'paid' AND held = 0]], tp.now(), id)
  if changed == 0 then
    if tp.db.one("SELECT 1 AS held FROM orders_orders WHERE id = ? AND status = 'paid' AND held = 1", id) then
      tp.fail(409, "order_held", "this order waits for its campaign (a group still forming) and cannot be completed yet")
    end
    return false
  end
  tp.events.emit("order.completed", { order = store.load(id) })
  return true
end

return lifecycle
