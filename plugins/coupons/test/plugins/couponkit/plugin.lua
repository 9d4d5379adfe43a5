---@diagnostic disable: undefined-global
-- couponkit: what the coupons kit tests need from other plugins, as admin
-- routes that make one tp.call each (a test cannot call exports itself):
-- members in bulk (tagged through the members plugin's tag export, which
-- makes the member the first time), a segment drop as a campaign starts it,
-- and an order locking and using a coupon as the orders plugin does.

---POST /couponkit/members {prefix, from, to, tag}: members prefix..%05d(from..to), each tagged
local function members(req)
  local b = req.body
  local n = 0
  for i = b.from, b.to do
    if tp.call("members", "tag", ("%s%05d"):format(b.prefix, i), b.tag) then n = n + 1 end
  end
  return 200, { tagged = n }
end

---POST /couponkit/drop {template_id, segment, ref}: tp.call("coupons", "drop", ...)
local function drop(req)
  local b = req.body
  return 200, tp.call("coupons", "drop", b.template_id, b.segment, b.ref)
end

local LINES = { { sku = "sku-1", product_id = 1, qty = 1, amount_fen = 50000 } }

---POST /couponkit/lock {user, coupon_id, order_id}: an order of user locks the coupon
local function lock(req)
  local b = req.body
  return 200, tp.call("coupons", "lock", b.user, b.coupon_id, b.order_id, LINES)
end

---POST /couponkit/consume {order_id}: the order is paid
local function consume(req)
  return 200, { used = tp.call("coupons", "consume", req.body.order_id) }
end

return {
  name = "couponkit",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/couponkit/members", auth = "admin", handler = members,
      summary = "members tagged through tp.call('members', 'tag', ...)" },
    { method = "POST", path = "/couponkit/drop", auth = "admin", handler = drop,
      summary = "tp.call('coupons', 'drop', template_id, segment, ref)" },
    { method = "POST", path = "/couponkit/lock", auth = "admin", handler = lock,
      summary = "tp.call('coupons', 'lock', user, coupon_id, order_id, lines)" },
    { method = "POST", path = "/couponkit/consume", auth = "admin", handler = consume,
      summary = "tp.call('coupons', 'consume', order_id)" },
  },
}
