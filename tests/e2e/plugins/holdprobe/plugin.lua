---@diagnostic disable: undefined-global
-- holdprobe: a minimal campaign for the end-to-end tests of orders
-- (test_orders.py). It creates held orders the way a group buy does, releases
-- their hold, and asks orders what it knows of a buyer.

local function held_order(req)
  local o = tp.call("orders", "create", { user = req.user,
    lines = { { sku = req.body.sku, qty = 1, unit_price_fen = req.body.unit_price_fen } },
    campaign = { id = "probe", hold = req.body.hold } })
  return 201, o
end

local function release(req)
  return 200, { released = tp.call("orders", "release_hold", req.params.id) }
end

local function customer(req)
  return 200, tp.call("orders", "customer", req.params.user)
end

return {
  name = "holdprobe",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/holdprobe/orders", handler = held_order },
    { method = "POST", path = "/holdprobe/orders/{id:int}/release", auth = "admin", handler = release },
    { method = "GET", path = "/holdprobe/customers/{user}", auth = "admin", handler = customer },
  },
  exports = {
    release_order = function() return true end,
    reclaim_order = function() return true end,
  },
}
