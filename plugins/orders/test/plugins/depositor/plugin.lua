---@diagnostic disable: undefined-global
-- depositor: a campaign used only by orders' two_payments_test.lua. Its one
-- admin route creates an order with whatever spec the test sends (lines at
-- campaign prices, a deposit, a ship date), as a presale would; it counts
-- the units orders gives back and takes them again on a late payment.

local function create(req)
  local spec = req.body
  spec.campaign = spec.campaign or { id = "probe" }
  if spec.no_campaign then spec.campaign, spec.no_campaign = nil, nil end
  return 201, tp.call("orders", "create", spec)
end

local exports = {}

function exports.release_order(order)
  tp.db.exec("INSERT INTO depositor_released (order_id) VALUES (?) ON CONFLICT DO NOTHING", order.id)
  return true
end

function exports.reclaim_order(order)
  tp.db.exec("DELETE FROM depositor_released WHERE order_id = ?", order.id)
  return true
end

return {
  name = "depositor",
  version = "1.0.0",
  migrations = { [[CREATE TABLE depositor_released (order_id INTEGER PRIMARY KEY);]] },
  routes = {
    { method = "POST", path = "/depositor/orders", auth = "admin", handler = create, status = 201,
      summary = "tp.call('orders', 'create', body) as a campaign" },
  },
  exports = exports,
}
