-- Test-only: creates an order with points through orders.create, then fails
-- later in the same transaction, as any step after the checkout might.
return {
  name = "checkout_probe",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/checkout_probe/create_then_fail", auth = "admin", handler = function(req)
        local b = req.body
        local o = tp.call("orders", "create", { user = b.user, lines = { { sku = b.sku, qty = 1 } }, points = b.points })
        tp.fail(409, "later_step_failed", "failed after order " .. o.id .. " spent " .. o.points .. " points")
      end },
  },
}
