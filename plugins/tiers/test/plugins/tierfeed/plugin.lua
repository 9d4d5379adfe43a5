---@diagnostic disable: undefined-global
-- tierfeed: test-only. POST /tierfeed/signin {user, day, streak} emits
-- signin.checked_in as the signin plugin does; POST /tierfeed/campaign-order
-- {user, sku, price_fen, qty?, coupon_id?, stacks_with_coupon?} creates an
-- order as a campaign plugin does (tp.call("orders", "create")).

return {
  name = "tierfeed",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/tierfeed/signin", auth = "admin", handler = function(req)
      tp.events.emit("signin.checked_in", req.body)
      return 200, { ok = true }
    end },
    { method = "POST", path = "/tierfeed/campaign-order", auth = "admin", handler = function(req)
      local b = req.body
      local o = tp.call("orders", "create", { user = b.user, coupon_id = b.coupon_id,
        lines = { { sku = b.sku, qty = b.qty or 1, unit_price_fen = b.price_fen } },
        campaign = { id = "c1", stacks_with_coupon = b.stacks_with_coupon == true } })
      return 201, o
    end },
  },
}
