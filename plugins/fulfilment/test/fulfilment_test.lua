-- fulfilment: the address book, express shipments (partial, per line and
-- quantity), store pickup with 核销 by that store's staff only, the automatic
-- completion on the test clock, and what a refund returns once goods left.

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "fulfilment-kit-payment-secret-0123" },
  fulfilment = { auto_receive_seconds = 10 * 86400, auto_complete_seconds = 7 * 86400 },
}

local shop = require("tp.testshop")
local DAY = 86400

local function stock(code)
  return kit.query("SELECT stock FROM catalog_skus WHERE code = ?", code)[1].stock
end

---A paid order of user for lines {{sku, qty}}.
local function paid_order(user, lines)
  local res = kit.user(user):post("/orders", { lines = lines })
  assert(res.status == 201, ("checkout answered %d"):format(res.status))
  local pay = kit.admin():post("/payments/simulate", { order_id = res.body.id })
  assert(pay.body.result.outcome == "paid", "not paid")
  return res.body
end

local ADDR = { name = "林小姐", phone = "138 0000 1234", province = "浙江省", city = "杭州市",
               district = "西湖区", detail = "文三路 1 号 2 楼" }

local function with(t, extra)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  for k, v in pairs(extra or {}) do out[k] = v end
  return out
end

local function order_status(id) return kit.admin():get("/orders/" .. id).body end

describe("the address book", function()
  it("keeps a member's addresses, the first the default, and only hers", function()
    local lin = kit.user("lin")
    local a = lin:post("/fulfilment/addresses", ADDR)
    expect(a.status).to_be(201)
    expect(a.body.is_default).to_be(true)
    local b = lin:post("/fulfilment/addresses", with(ADDR, { detail = "公司", is_default = true }))
    expect(b.body.is_default).to_be(true)
    local list = lin:get("/fulfilment/addresses").body.items
    expect(#list).to_be(2)
    expect({ list[1].id, list[1].is_default, list[2].is_default }).to_equal({ b.body.id, true, false })
    expect(kit.user("bo"):get("/fulfilment/addresses").body.items).to_equal({})
    expect(kit.user("bo"):patch("/fulfilment/addresses/" .. a.body.id, { city = "上海市" }))
      .to_be_error(404, "address_not_found")
    expect(lin:patch("/fulfilment/addresses/" .. a.body.id, { city = "上海市" }).body.city).to_be("上海市")
    expect(kit.user("bo"):delete("/fulfilment/addresses/" .. a.body.id)).to_be_error(404, "address_not_found")
  end)

  it("refuses malformed addresses with the field, and writes nothing", function()
    local u = kit.user("mal")
    local cases = {
      { with(ADDR, { phone = "call me" }), "phone" },
      { with(ADDR, { phone = "12" }), "phone" },
      { with(ADDR, { name = "" }), "name" },
      { with(ADDR, { detail = string.rep("路", 121) }), "detail" },
      { with(ADDR, { is_default = "yes" }), "is_default" },
      { with(ADDR, { evil = 1 }), "evil" },
      { { name = "x" }, "phone" },
    }
    for _, c in ipairs(cases) do
      local err = expect(u:post("/fulfilment/addresses", c[1])).to_be_error(400, "invalid_field")
      expect(err.details.field).to_be(c[2])
    end
    expect(u:get("/fulfilment/addresses").body.items).to_equal({})
  end)
end)

describe("express delivery", function()
  it("ships in parts per line and quantity, then delivers and completes on the timer", function()
    local tea, cup = shop.sku{ price_fen = 5000, stock = 10 }, shop.sku{ price_fen = 3000, stock = 10 }
    local u = kit.user("ann")
    u:post("/fulfilment/addresses", ADDR)
    local o = paid_order("ann", { { sku = tea, qty = 3 }, { sku = cup, qty = 1 } })
    local admin = kit.admin()
    -- nothing ships before the buyer chose a delivery
    expect(admin:post("/fulfilment/orders/" .. o.id .. "/shipments", { carrier = "SF", tracking_no = "SF1" }))
      .to_be_error(409, "no_delivery_chosen")
    local d = u:post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "express" })
    expect(d.status).to_be(200)
    expect({ d.body.method, d.body.state, d.body.address.city }).to_equal({ "express", "pending", "杭州市" })
    -- another user cannot see or choose it
    expect(kit.user("bo"):get("/fulfilment/orders/" .. o.id)).to_be_error(404, "order_not_found")
    expect(kit.user("bo"):post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "express" }))
      .to_be_error(404, "order_not_found")
    -- two of three teas first
    local s1 = admin:post("/fulfilment/orders/" .. o.id .. "/shipments",
      { carrier = "SF", tracking_no = "SF1001", lines = { { line = 1, qty = 2 } } })
    expect(s1.status).to_be(201)
    expect(s1.body.delivery.state).to_be("partially_shipped")
    expect(order_status(o.id).fulfilment).to_be("partially_shipped")
    -- more than was bought is refused, and so is a tracking number used before
    expect(admin:post("/fulfilment/orders/" .. o.id .. "/shipments",
      { carrier = "SF", tracking_no = "SF1002", lines = { { line = 1, qty = 2 } } }))
      .to_be_error(409, "ship_exceeds_ordered")
    expect(admin:post("/fulfilment/orders/" .. o.id .. "/shipments", { carrier = "SF", tracking_no = "SF1001" }))
      .to_be_error(409, "tracking_no_used")
    expect(admin:post("/fulfilment/orders/" .. o.id .. "/shipments",
      { carrier = "SF", tracking_no = "SF1003", lines = { { line = 3, qty = 1 } } })).to_be_error(400, "invalid_field")
    -- the rest: no lines means all that is left
    local s2 = admin:post("/fulfilment/orders/" .. o.id .. "/shipments", { carrier = "ZTO", tracking_no = "ZT77" })
    expect(s2.body.shipment.lines).to_equal({ { line = 1, sku = tea, qty = 1 }, { line = 2, sku = cup, qty = 1 } })
    expect(s2.body.delivery.state).to_be("shipped")
    expect(admin:post("/fulfilment/orders/" .. o.id .. "/shipments", { carrier = "ZTO", tracking_no = "ZT78" }))
      .to_be_error(409, "nothing_to_ship")
    local view = u:get("/fulfilment/orders/" .. o.id).body
    expect({ view.lines[1].shipped, view.lines[2].shipped, #view.shipments }).to_equal({ 3, 1, 2 })
    -- the first parcel arrives: not yet delivered; the second: delivered
    expect(admin:post("/fulfilment/shipments/" .. s1.body.shipment.id .. "/delivered").body.state).to_be("shipped")
    expect(admin:post("/fulfilment/shipments/" .. s1.body.shipment.id .. "/delivered"))
      .to_be_error(409, "already_delivered")
    expect(admin:post("/fulfilment/shipments/" .. s2.body.shipment.id .. "/delivered").body.state).to_be("delivered")
    expect(order_status(o.id).fulfilment).to_be("delivered")
    -- completes 7 days after delivery, not before
    kit.advance(7 * DAY - 1)
    expect(order_status(o.id).status).to_be("paid")
    kit.advance(1)
    expect(order_status(o.id).status).to_be("completed")
  end)

  it("takes an order nobody marked delivered as received after the brand's days, and completes it", function()
    local tea = shop.sku{ price_fen = 2000, stock = 5 }
    kit.user("cai"):post("/fulfilment/addresses", ADDR)
    local o = paid_order("cai", { { sku = tea, qty = 1 } })
    kit.user("cai"):post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "express" })
    kit.admin():post("/fulfilment/orders/" .. o.id .. "/shipments", { carrier = "YTO", tracking_no = "YT1" })
    kit.advance(10 * DAY - 1)
    expect(order_status(o.id).status).to_be("paid")
    kit.advance(1)
    local done = order_status(o.id)
    expect({ done.status, done.fulfilment }).to_equal({ "completed", "delivered" })
    expect(kit.user("cai"):get("/fulfilment/orders/" .. o.id).body.shipments[1].status).to_be("delivered")
  end)

  it("ships nothing of an unpaid or refunded order", function()
    local tea = shop.sku{ price_fen = 2000, stock = 5 }
    local u = kit.user("dai")
    u:post("/fulfilment/addresses", ADDR)
    local unpaid = u:post("/orders", { lines = { { sku = tea, qty = 1 } } }).body
    u:post("/fulfilment/orders/" .. unpaid.id .. "/delivery", { method = "express" })
    expect(kit.admin():post("/fulfilment/orders/" .. unpaid.id .. "/shipments", { carrier = "SF", tracking_no = "U1" }))
      .to_be_error(409, "not_fulfillable")
    local o = paid_order("dai", { { sku = tea, qty = 1 } })
    u:post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "express" })
    kit.admin():post("/orders/" .. o.id .. "/refund", {})
    kit.drain()
    expect(kit.admin():post("/fulfilment/orders/" .. o.id .. "/shipments", { carrier = "SF", tracking_no = "R1" }))
      .to_be_error(409, "not_fulfillable")
    expect(kit.query("SELECT count(*) AS n FROM fulfilment_shipments WHERE order_id IN (?, ?)", unpaid.id, o.id)[1].n)
      .to_be(0)
  end)
end)

describe("what a full refund returns", function()
  it("returns the units of an order that never shipped", function()
    local tea = shop.sku{ price_fen = 2000, stock = 5 }
    local o = paid_order("eve", { { sku = tea, qty = 2 } })
    expect(stock(tea)).to_be(3)
    kit.admin():post("/orders/" .. o.id .. "/refund", {})
    kit.drain()
    expect(stock(tea)).to_be(5)
  end)

  it("returns no units of a completed order unless the goods came back", function()
    local tea = shop.sku{ price_fen = 2000, stock = 5 }
    local o = paid_order("fay", { { sku = tea, qty = 2 } })
    kit.user("fay"):post("/orders/" .. o.id .. "/confirm")
    expect(order_status(o.id).status).to_be("completed")
    local r = kit.admin():post("/orders/" .. o.id .. "/refund", {})
    expect(r.status).to_be(202)
    kit.drain()
    expect(order_status(o.id).status).to_be("refunded")
    expect(stock(tea)).to_be(3)                   -- the buyer has them: none came back
    -- one of the two comes back: one unit is in stock again, and never more than were bought
    local back = kit.admin():post("/fulfilment/orders/" .. o.id .. "/returns", { lines = { { line = 1, qty = 1 } } })
    expect(back.status).to_be(200)
    expect(stock(tea)).to_be(4)
    expect(kit.admin():post("/fulfilment/orders/" .. o.id .. "/returns", { lines = { { line = 1, qty = 2 } } }))
      .to_be_error(409, "restock_exceeds_ordered")
    expect(stock(tea)).to_be(4)
  end)

  it("returns no units of a shipped order, and refuses a return of goods that never left", function()
    local tea = shop.sku{ price_fen = 2000, stock = 5 }
    kit.user("gus"):post("/fulfilment/addresses", ADDR)
    local o = paid_order("gus", { { sku = tea, qty = 1 } })
    expect(kit.admin():post("/fulfilment/orders/" .. o.id .. "/returns", { lines = { { line = 1, qty = 1 } } }))
      .to_be_error(409, "goods_not_out")
    kit.user("gus"):post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "express" })
    kit.admin():post("/fulfilment/orders/" .. o.id .. "/shipments", { carrier = "SF", tracking_no = "G1" })
    kit.admin():post("/orders/" .. o.id .. "/refund", {})
    kit.drain()
    expect(order_status(o.id).status).to_be("refunded")
    expect(stock(tea)).to_be(4)
  end)
end)

describe("store pickup", function()
  it("gives a code that only the store's staff redeem, once", function()
    local admin = kit.admin()
    expect(admin:post("/fulfilment/stores", { id = "hz-west", name = "西湖店", address = "杭州市西湖区文三路 9 号",
      hours = "10:00-21:00" }).status).to_be(201)
    admin:post("/fulfilment/stores", { id = "sh-1", name = "静安店", address = "上海市静安区" })
    expect(admin:post("/fulfilment/stores", { id = "hz-west", name = "x", address = "y" }))
      .to_be_error(409, "store_exists")
    expect(admin:post("/fulfilment/stores/hz-west/staff", { user = "clerk-mei" }).status).to_be(201)
    admin:post("/fulfilment/stores/sh-1/staff", { user = "clerk-sh" })
    expect(#kit.anon():get("/fulfilment/stores").body.items).to_be(2)

    local tea = shop.sku{ price_fen = 2000, stock = 5 }
    local o = paid_order("hana", { { sku = tea, qty = 1 } })
    local d = kit.user("hana"):post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "pickup", store = "hz-west" })
    expect(d.body.method).to_be("pickup")
    expect(d.body.pickup_code).to_match("^%d%d%d%d%d%d%d%d$")
    local code = d.body.pickup_code
    -- a buyer, another store's staff, a wrong code: refused, nothing changes
    expect(kit.user("hana"):post("/fulfilment/pickups/redeem", { store = "hz-west", code = code }))
      .to_be_error(403, "not_store_staff")
    expect(kit.user("clerk-sh"):post("/fulfilment/pickups/redeem", { store = "hz-west", code = code }))
      .to_be_error(403, "not_store_staff")
    expect(kit.user("clerk-sh"):post("/fulfilment/pickups/redeem", { store = "sh-1", code = code }))
      .to_be_error(404, "pickup_not_found")
    expect(kit.user("clerk-mei"):post("/fulfilment/pickups/redeem", { store = "hz-west", code = "00000000" == code
      and "11111111" or "00000000" })).to_be_error(404, "pickup_not_found")
    expect(kit.user("clerk-mei"):post("/fulfilment/pickups/redeem", { store = "hz-west", code = { code } }))
      .to_be_error(400, "invalid_field")
    expect(order_status(o.id).fulfilment).to_be_nil()
    -- the store's clerk hands it over
    local r = kit.user("clerk-mei"):post("/fulfilment/pickups/redeem", { store = "hz-west", code = code })
    expect(r.status).to_be(200)
    expect({ r.body.order_id, r.body.picked_up_by }).to_equal({ o.id, "clerk-mei" })
    expect(order_status(o.id).fulfilment).to_be("picked_up")
    expect(kit.user("clerk-mei"):post("/fulfilment/pickups/redeem", { store = "hz-west", code = code }))
      .to_be_error(404, "pickup_not_found")
    expect(kit.user("hana"):post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "express" }))
      .to_be_error(409, "already_on_its_way")
    kit.advance(7 * DAY)
    expect(order_status(o.id).status).to_be("completed")
  end)

  it("will not hand over an unpaid order, nor send a pickup to a closed store", function()
    local tea = shop.sku{ price_fen = 2000, stock = 5 }
    local u = kit.user("ivy")
    local o = u:post("/orders", { lines = { { sku = tea, qty = 1 } } }).body
    local code = u:post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "pickup", store = "hz-west" })
      .body.pickup_code
    expect(kit.user("clerk-mei"):post("/fulfilment/pickups/redeem", { store = "hz-west", code = code }))
      .to_be_error(409, "not_fulfillable")
    kit.admin():patch("/fulfilment/stores/sh-1", { status = "closed" })
    expect(u:post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "pickup", store = "sh-1" }))
      .to_be_error(409, "store_closed")
    expect(u:post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "pickup", store = "nowhere" }))
      .to_be_error(404, "store_not_found")
  end)
end)
