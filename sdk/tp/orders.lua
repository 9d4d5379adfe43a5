---@diagnostic disable: undefined-global
-- tp.orders: what a campaign plugin does with the orders plugin, stated once.
-- `require("tp.orders")`. The orders plugin's contract is its README.

local orders = {}

-- ---- the order as the orders plugin answers it, for the OpenAPI document of
-- every route that answers an order (routes[i].response = orders.SCHEMA)

local INT, STR, BOOL = { type = "integer" }, { type = "string" }, { type = "boolean" }
local FEN = { type = "integer", minimum = 0, description = "integer fen" }
local EPOCH = { type = "integer", minimum = 0, description = "UTC epoch seconds" }

orders.LINE_SCHEMA = { type = "object", description = "one line of an order",
  required = { "sku", "qty", "list_price_fen", "unit_price_fen", "amount_fen", "discount_fen", "paid_fen" },
  properties = { sku = STR, product_id = INT, title = STR, qty = { type = "integer", minimum = 1 },
    list_price_fen = FEN, unit_price_fen = FEN,
    amount_fen = { type = "integer", minimum = 0, description = "unit_price_fen x qty" },
    discount_fen = { type = "integer", minimum = 0, description = "this line's share of the coupon and the points" },
    paid_fen = { type = "integer", minimum = 0, description = "amount_fen - discount_fen; the lines sum to total_fen" } } }

orders.REFUND_SCHEMA = { type = "object", required = { "refund_no", "amount_fen", "status" },
  properties = { refund_no = { type = "string", description = "R<order>-<n>, paid out once" },
    amount_fen = FEN, reason = STR, kind = STR, status = STR, created_at = EPOCH, succeeded_at = EPOCH,
    parts = { type = "array", description = "a refund paid out from two payments (a presale's balance, then its "
      .. "deposit): one refund number each", items = { type = "object", required = { "refund_no", "amount_fen" },
        properties = { refund_no = STR, amount_fen = FEN, reason = STR, kind = STR, status = STR } } } } }

orders.SCHEMA = { type = "object", description = "an order; money in integer fen",
  required = { "id", "user", "status", "items_fen", "discount_fen", "total_fen", "lines", "created_at" },
  properties = { id = INT, user = STR, status = { type = "string", enum = {
    "pending_payment", "awaiting_balance", "paid", "completed", "cancelled", "refunding", "refunded" },
    description = "awaiting_balance: a presale's deposit (定金) is paid, its balance (尾款) is not" },
    items_fen = { type = "integer", minimum = 0, description = "the lines at their unit prices" },
    discount_fen = { type = "integer", minimum = 0, description = "the coupon's discount and what the points paid" },
    points = { type = "integer", minimum = 0, description = "points spent as part payment (0: none)" },
    points_fen = { type = "integer", minimum = 0, description = "what those points paid; part of discount_fen" },
    total_fen = { type = "integer", minimum = 1, description = "what the user pays: items_fen - discount_fen" },
    paid_fen = FEN, refund_requested_fen = FEN, refunded_fen = FEN, coupon_id = INT,
    attribution = { type = "object", properties = { referrer = STR, referrer2 = STR, store = STR, guide = STR,
      source = { type = "object", description = "the last touch within the brand's window, frozen at creation (analytics)",
        properties = { source = STR, scene = INT, store = STR, guide = STR, content = STR, live = STR,
                       referrer = STR, at = INT } } } },
    campaign = { type = "object", required = { "plugin", "id" }, properties = { plugin = STR,
      id = { oneOf = { INT, STR }, description = "the campaign's id in its plugin" },
      stacks_with_coupon = BOOL } },
    stock_held = BOOL, transaction_id = STR, late_payment = BOOL,
    held = { type = "boolean", description = "paid, but its campaign (a group pending) holds it from fulfilment" },
    fulfilment = { type = "string", enum = { "partially_shipped", "shipped", "delivered", "picked_up" },
      description = "how far the goods went (the fulfilment plugin); absent until something ships" },
    deposit = { type = "object", description = "an order paid in two payments (presale: 定金 then 尾款)",
      required = { "deposit_fen", "worth_fen", "bonus_fen", "balance_fen", "balance_starts_at", "balance_ends_at",
                   "refundable" },
      properties = { deposit_fen = { type = "integer", minimum = 1, description = "the first payment" },
        worth_fen = { type = "integer", minimum = 1, description = "what the deposit counts for at the balance (定金膨胀)" },
        bonus_fen = { type = "integer", minimum = 0, description = "worth_fen - deposit_fen: part of discount_fen, split over the lines" },
        balance_fen = { type = "integer", minimum = 1, description = "the second payment: total_fen - deposit_fen" },
        balance_starts_at = EPOCH, balance_ends_at = EPOCH,
        refundable = { type = "boolean", description = "a balance never paid refunds the deposit (true) or forfeits it" },
        paid_at = EPOCH, balance_transaction_id = STR } },
    payment_due = { type = "object", required = { "stage", "amount_fen", "closes_at" },
      description = "what the next payment must be; absent when nothing is due",
      properties = { stage = { type = "integer", description = "1: the first payment (the order, or the deposit); 2: the balance" },
        amount_fen = FEN, opens_at = EPOCH, closes_at = EPOCH } },
    forfeited_fen = { type = "integer", minimum = 0, description = "a deposit kept: its balance was never paid" },
    ships_from = { type = "integer", minimum = 0, description = "UTC epoch: a presale ships from then, not before" },
    created_at = EPOCH,
    pay_deadline = { type = "integer", minimum = 0, description = "UTC epoch seconds: unpaid after it, the order is cancelled" },
    paid_at = EPOCH, cancelled_at = EPOCH, cancel_reason = STR, completed_at = EPOCH, refunded_at = EPOCH,
    lines = { type = "array", items = orders.LINE_SCHEMA },
    refunds = { type = "array", items = orders.REFUND_SCHEMA, description = "on one order's page" } } }

-- The errors creating an order can raise, by status (routes[i].errors of a
-- route that creates one: orders.errors { [409] = { "sold_out", ... } } adds a
-- campaign's own).
orders.CREATE_ERRORS = {
  [400] = { "invalid_field", "invalid_idempotency_key", "order_too_large", "order_too_small" },
  [404] = { "coupon_not_found" },
  [409] = { "idempotency_key_reused", "too_many_unpaid_orders", "not_on_sale", "coupon_not_usable",
            "coupons_unavailable" },
}

---orders.CREATE_ERRORS with the route's own codes added, each status's codes once.
---@param own table<integer, string[]>
---@return table<integer, string[]>
function orders.errors(own)
  local out = {}
  for _, t in ipairs({ orders.CREATE_ERRORS, own }) do
    for status, codes in pairs(t) do
      local list = out[status] or {}
      out[status] = list
      for _, c in ipairs(codes) do
        local seen = false
        for _, x in ipairs(list) do seen = seen or x == c end
        if not seen then list[#list + 1] = c end
      end
    end
  end
  return out
end

-- orders' create through call (tp.call or tp.call_view); the catalog's
-- insufficient_stock becomes the campaign's sold_out
local function create_with(call, spec, what)
  local ok, result = pcall(call, "orders", "create", spec)
  if ok then return result end
  if type(result) == "table" and result.code == "insufficient_stock" then
    tp.fail(409, "sold_out", ("the product behind this %s is out of stock"):format(what))
  end
  error(result, 0)
end

---Creates an order through the orders plugin (tp.call("orders", "create",
---spec)). The catalog running out under it is the campaign's own sold out:
---409 sold_out "the product behind this <what> is out of stock", the answer a
---buyer gets from every mechanic alike. Any other failure is raised as it came.
---@param spec table the orders plugin's OrderSpec
---@param what string the campaign, for the message ("flash sale", "group buy")
---@return table order
function orders.create(spec, what) return create_with(tp.call, spec, what) end

---orders.create for a campaign that answers the order and reads a few of its
---fields: the order as a JSON view (tp.call_view), not copied into tables.
---order.id reads a field; the answer carries the order as the orders plugin
---encoded it.
---@param spec table the orders plugin's OrderSpec
---@param what string the campaign, for the message
---@return TpJsonView order
function orders.create_view(spec, what) return create_with(tp.call_view, spec, what) end

return orders
