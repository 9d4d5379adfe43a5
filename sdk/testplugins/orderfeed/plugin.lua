---@diagnostic disable: undefined-global
-- orderfeed: a test-only stand-in for the orders plugin's events. POST
-- /orderfeed/paid {id, user, paid_fen, lines?, campaign?} emits order.paid with
-- an order of the orders plugin's shape; POST /orderfeed/refunded {id, user,
-- paid_fen, refunded_fen} emits order.refunded. A stand-in any plugin's kit tests may
-- enable (members' and rfm's do).

local function order_of(b)
  return { id = b.id, user = b.user, status = "paid", paid_fen = b.paid_fen, total_fen = b.paid_fen,
           refunded_fen = b.refunded_fen or 0, paid_at = b.paid_at or tp.now(), coupon_id = b.coupon_id,
           campaign = b.campaign, lines = b.lines or { { sku = "sku-a", qty = 1 } } }
end

return {
  name = "orderfeed",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/orderfeed/paid", auth = "admin", handler = function(req)
      tp.events.emit("order.paid", { order = order_of(req.body), late = false })
      return 200, { ok = true }
    end },
    { method = "POST", path = "/orderfeed/refunded", auth = "admin", handler = function(req)
      tp.events.emit("order.refunded", { order = order_of(req.body), refund_no = "r" .. req.body.id,
        amount_fen = req.body.refunded_fen, full = req.body.refunded_fen == req.body.paid_fen })
      return 200, { ok = true }
    end },
  },
}
