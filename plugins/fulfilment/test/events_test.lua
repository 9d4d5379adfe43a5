-- fulfilment's events: order.shipped per shipment (with its tracking number,
-- all_shipped on the last) and order.delivered (express or pickup), as a
-- subscriber (test/plugins/shipwatch) gets them; no address travels with them.

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "fulfilment-kit-payment-secret-0123" },
  fulfilment = {},
  shipwatch = {},
}

local shop = require("tp.testshop")

local function paid_order(user, lines)
  local o = kit.user(user):post("/orders", { lines = lines }).body
  kit.admin():post("/payments/simulate", { order_id = o.id })
  return o
end

describe("fulfilment's events", function()
  it("announces each shipment, the delivery and a pickup", function()
    local tea = shop.sku{ price_fen = 2000, stock = 9 }
    local u = kit.user("ann")
    u:post("/fulfilment/addresses", { name = "安", phone = "13800001111", province = "浙江", city = "杭州", detail = "1号" })
    local o = paid_order("ann", { { sku = tea, qty = 2 } })
    u:post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "express" })
    local a = kit.admin():post("/fulfilment/orders/" .. o.id .. "/shipments",
      { carrier = "SF", tracking_no = "E1", lines = { { line = 1, qty = 1 } } }).body.shipment
    kit.admin():post("/fulfilment/orders/" .. o.id .. "/shipments", { carrier = "SF", tracking_no = "E2" })
    kit.admin():post("/fulfilment/shipments/" .. a.id .. "/delivered")
    kit.admin():post("/fulfilment/shipments/" .. (a.id + 1) .. "/delivered")

    kit.admin():post("/fulfilment/stores", { id = "s1", name = "店", address = "路 1 号" })
    kit.admin():post("/fulfilment/stores/s1/staff", { user = "clerk" })
    local p = paid_order("bo", { { sku = tea, qty = 1 } })
    local code = kit.user("bo"):post("/fulfilment/orders/" .. p.id .. "/delivery", { method = "pickup", store = "s1" })
      .body.pickup_code
    kit.user("clerk"):post("/fulfilment/pickups/redeem", { store = "s1", code = code })
    kit.drain()
    expect(kit.query([[SELECT name, order_id, tracking_no, all_shipped, method, auto, has_address, fulfilment
      FROM shipwatch_seen ORDER BY id]])).to_equal({
      { name = "order.shipped", order_id = o.id, tracking_no = "E1", all_shipped = 0, auto = 0, has_address = 0,
        fulfilment = "partially_shipped" },
      { name = "order.shipped", order_id = o.id, tracking_no = "E2", all_shipped = 1, auto = 0, has_address = 0,
        fulfilment = "shipped" },
      { name = "order.delivered", order_id = o.id, method = "express", all_shipped = 0, auto = 0, has_address = 0,
        fulfilment = "delivered" },
      { name = "order.delivered", order_id = p.id, method = "pickup", all_shipped = 0, auto = 0, has_address = 0,
        fulfilment = "picked_up" },
    })
  end)
end)
