-- Reading orders: rows into the shape every route, export and event shows.

local store = {}

local ORDER_COLUMNS = [[
  id, user, status, items_fen, discount_fen, total_fen, paid_fen, refund_requested_fen,
  refunded_fen, coupon_id, campaign_plugin, campaign_id, campaign_stacks, held, referrer, referrer2,
  store, guide, stock_held, transaction_id, late_payment, created_at, pay_deadline, paid_at,
  cancelled_at, cancel_reason, completed_at, refunded_at, points, points_fen, source, fulfilment,
  deposit_fen, deposit_worth_fen, balance_starts_at, balance_ends_at, deposit_refundable, deposit_paid_at,
  balance_transaction_id, forfeited_fen, ships_from]]

store.ORDER_COLUMNS = ORDER_COLUMNS

---@class Order
---@field id integer
---@field user string
---@field status "pending_payment"|"awaiting_balance"|"paid"|"completed"|"cancelled"|"refunding"|"refunded"
---@field items_fen integer      sum of the lines at their unit prices
---@field discount_fen integer   the coupon's and the points' share together
---@field points integer         points spent as part payment (0: none)
---@field points_fen integer     what they paid, part of discount_fen
---@field total_fen integer      what the user pays: items_fen - discount_fen
---@field paid_fen integer
---@field refunded_fen integer
---@field coupon_id integer?
---@field campaign {plugin: string, id: string, stacks_with_coupon: boolean}?
---@field fulfilment string?    nil until goods leave: partially_shipped, shipped, delivered, picked_up
---@field held boolean          paid but not to be fulfilled until its campaign releases it (a group pending)
---@field deposit OrderDeposit? a two-payment order's terms (presale: 定金 then 尾款); nil: one payment
---@field payment_due {stage: integer, amount_fen: integer, opens_at: integer?, closes_at: integer}? what the next payment must be; nil: nothing is due
---@field forfeited_fen integer  a deposit kept because its balance was never paid
---@field ships_from integer?    UTC epoch: the goods ship from then (a presale's promise), not before
---@field attribution {referrer: string?, referrer2: string?, store: string?, guide: string?, source: table?}
---@field lines OrderLine[]

---@class OrderDeposit
---@field deposit_fen integer       the first payment (定金)
---@field worth_fen integer         what the deposit counts for at the balance (定金膨胀: >= deposit_fen)
---@field bonus_fen integer         worth_fen - deposit_fen, part of the order's discount_fen, split over the lines
---@field balance_fen integer       the second payment (尾款): total_fen - deposit_fen
---@field balance_starts_at integer UTC epoch: the balance may be paid from then...
---@field balance_ends_at integer   ...until then; unpaid at that moment, the order is called off
---@field refundable boolean        a missed balance refunds the deposit (true) or forfeits it (false)
---@field paid_at integer?          when the deposit was paid
---@field balance_transaction_id string?

---What the next payment of an order must be, or nil: stage 1 (the deposit,
---or the whole order) while pending_payment, stage 2 (the balance) while
---awaiting_balance, in its window.
---@param row table
---@return table|nil
local function payment_due(row)
  if row.status == "pending_payment" then
    return { stage = 1, amount_fen = row.deposit_fen or row.total_fen, closes_at = row.pay_deadline }
  elseif row.status == "awaiting_balance" then
    return { stage = 2, amount_fen = row.total_fen - row.deposit_fen, opens_at = row.balance_starts_at,
             closes_at = row.balance_ends_at }
  end
  return nil
end

---Shapes a row of orders_orders (and its lines) for the outside.
---@param row table
---@param lines table[]
---@return Order
function store.shape(row, lines)
  local o = {
    id = row.id, user = row.user, status = row.status,
    items_fen = row.items_fen, discount_fen = row.discount_fen, total_fen = row.total_fen,
    points = row.points, points_fen = row.points_fen,
    paid_fen = row.paid_fen, refund_requested_fen = row.refund_requested_fen,
    refunded_fen = row.refunded_fen, coupon_id = row.coupon_id,
    attribution = tp.json.object({ referrer = row.referrer, referrer2 = row.referrer2,
                                   store = row.store, guide = row.guide,
                                   source = row.source and tp.json.decode(row.source) or nil }),
    stock_held = row.stock_held == 1, transaction_id = row.transaction_id,
    late_payment = row.late_payment == 1, held = row.held == 1,
    created_at = row.created_at, pay_deadline = row.pay_deadline, paid_at = row.paid_at,
    cancelled_at = row.cancelled_at, cancel_reason = row.cancel_reason,
    completed_at = row.completed_at, refunded_at = row.refunded_at,
    fulfilment = row.fulfilment,
    forfeited_fen = row.forfeited_fen, ships_from = row.ships_from,
    payment_due = payment_due(row),
    lines = lines,
  }
  if row.deposit_fen then
    o.deposit = { deposit_fen = row.deposit_fen, worth_fen = row.deposit_worth_fen,
                  bonus_fen = row.deposit_worth_fen - row.deposit_fen, balance_fen = row.total_fen - row.deposit_fen,
                  balance_starts_at = row.balance_starts_at, balance_ends_at = row.balance_ends_at,
                  refundable = row.deposit_refundable == 1, paid_at = row.deposit_paid_at,
                  balance_transaction_id = row.balance_transaction_id }
  end
  if row.campaign_plugin then
    o.campaign = { plugin = row.campaign_plugin, id = row.campaign_id,
                   stacks_with_coupon = row.campaign_stacks == 1 }
  end
  return o
end

---@param id integer
---@return table[]
function store.lines(id)
  return tp.db.query([[
    SELECT sku, product_id, title, qty, list_price_fen, unit_price_fen, amount_fen, discount_fen,
           paid_fen
    FROM orders_lines WHERE order_id = ? ORDER BY line_no]], id)
end

-- built once, not at every call (the statement cache finds it by its text)
local LOAD_SQL = "SELECT " .. ORDER_COLUMNS .. " FROM orders_orders WHERE id = ?"

---@param id integer
---@return Order|nil
function store.load(id)
  local row = tp.db.one(LOAD_SQL, id)
  if not row then return nil end
  return store.shape(row, store.lines(id))
end

---An order with its refunds, for the order's own page.
---@param id integer
---@return Order|nil
function store.detail(id)
  local o = store.load(id)
  if o then
    o.refunds = tp.db.query([[
      SELECT refund_no, amount_fen, reason, kind, status, created_at, succeeded_at
      FROM orders_refunds WHERE order_id = ? ORDER BY id]], id)
  end
  return o
end

---The order's lines as the catalog takes them back.
---@param o Order
---@return CatalogLine[]
function store.stock_lines(o)
  local out = {}
  for i, l in ipairs(o.lines) do out[i] = { sku = l.sku, qty = l.qty } end
  return out
end

return store
