-- after-sales (售后): requests per line and quantity, never more than was
-- bought (two at the same moment included), approval and rejection, the
-- silent operator's timer, returns with a tracking number, stock back only
-- when goods come back, exact per-line amounts, the coupon by the brand's rule.

kit.plugins {
  catalog = {},
  coupons = {},
  orders = {},
  payments = { secret = "fulfilment-kit-payment-secret-0123" },
  fulfilment = { aftersale_auto_approve_seconds = 3600, return_coupon = "full_refund" },
}

local shop = require("tp.testshop")

local function stock(code)
  return kit.query("SELECT stock FROM catalog_skus WHERE code = ?", code)[1].stock
end

local function paid_order(user, lines, coupon_id)
  local res = kit.user(user):post("/orders", { lines = lines, coupon_id = coupon_id })
  assert(res.status == 201, ("checkout answered %d"):format(res.status))
  kit.admin():post("/payments/simulate", { order_id = res.body.id })
  return res.body
end

local function order(id) return kit.admin():get("/orders/" .. id).body end

local function ask(user, body) return kit.user(user):post("/fulfilment/aftersales", body) end

local function request(o, kind, lines, extra)
  local b = { order_id = o.id, kind = kind, lines = lines, reason = "不想要了" }
  for k, v in pairs(extra or {}) do b[k] = v end
  return b
end

local function ship_all(user, o)
  kit.user(user):post("/fulfilment/addresses", { name = "林", phone = "13800001234", province = "浙江",
    city = "杭州", detail = "文三路 1 号" })
  kit.user(user):post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "express" })
  local res = kit.admin():post("/fulfilment/orders/" .. o.id .. "/shipments",
    { carrier = "SF", tracking_no = "T" .. o.id })
  assert(res.status == 201, "not shipped: " .. res.status)
end

describe("after-sales requests", function()
  it("refunds only what was bought: two requests for one line at the same moment, in either order", function()
    for _, ord in ipairs({ "given", "reverse" }) do
      local tea = shop.sku{ price_fen = 1000, stock = 10 }
      local o = paid_order("ann", { { sku = tea, qty = 3 } })
      local body = request(o, "refund_only", { { line = 1, qty = 2 } })
      local res = kit.concurrently({ { kit.user("ann"), "POST", "/fulfilment/aftersales", body },
                                     { kit.user("ann"), "POST", "/fulfilment/aftersales", body } },
                                   { order = ord })
      local statuses = { res[1].status, res[2].status }
      table.sort(statuses)
      expect(statuses).to_equal({ 201, 409 })
      local refused = res[1].status == 409 and res[1] or res[2]
      expect(refused.body.error.code).to_be("exceeds_bought")
      expect(refused.body.error.details).to_equal({ line = 1, qty_left = 1 })
      -- the last unit can still be asked for, and then nothing
      expect(ask("ann", request(o, "refund_only", { { line = 1, qty = 1 } })).status).to_be(201)
      expect(ask("ann", request(o, "refund_only", { { line = 1, qty = 1 } }))).to_be_error(409, "exceeds_bought")
    end
  end)

  it("splits a line's paid fen exactly over its requests", function()
    local tea = shop.sku{ price_fen = 1000, stock = 10 }
    local cup = shop.sku{ price_fen = 333, stock = 10 }
    local tpl = kit.admin():post("/coupons/templates", { name = "7 off", kind = "fixed", amount_off_fen = 700,
      total_quantity = 10, per_user_limit = 5, valid_days = 30 })
    assert(tpl.status == 201, "template: " .. tpl.status)
    local c = kit.user("bo"):post("/coupons/templates/" .. tpl.body.id .. "/claim").body
    local o = paid_order("bo", { { sku = tea, qty = 3 }, { sku = cup, qty = 3 } }, c.id)
    local lines = order(o.id).lines
    local a = ask("bo", request(o, "refund_only", { { line = 1, qty = 1 }, { line = 2, qty = 1 } })).body
    local b = ask("bo", request(o, "refund_only", { { line = 1, qty = 2 }, { line = 2, qty = 2 } })).body
    expect(a.lines[1].amount_fen + b.lines[1].amount_fen).to_be(lines[1].paid_fen)
    expect(a.lines[2].amount_fen + b.lines[2].amount_fen).to_be(lines[2].paid_fen)
    expect(a.amount_fen + b.amount_fen).to_be(o.total_fen)
    -- both approved: the order is refunded to the fen, and the used coupon comes back (the brand's rule)
    kit.admin():post("/fulfilment/aftersales/" .. a.id .. "/approve", { note = "ok" })
    expect(kit.query("SELECT state FROM coupons_coupons WHERE id = ?", c.id)[1].state).to_be("used")
    kit.admin():post("/fulfilment/aftersales/" .. b.id .. "/approve", {})
    kit.drain()
    local done = order(o.id)
    expect({ done.status, done.refunded_fen }).to_equal({ "refunded", o.total_fen })
    expect(kit.query("SELECT state FROM coupons_coupons WHERE id = ?", c.id)[1].state).to_be("unused")
    -- nothing left of it: every unit back in stock once, none twice
    expect({ stock(tea), stock(cup) }).to_equal({ 10, 10 })
  end)

  it("refuses malformed and hostile requests, and writes nothing", function()
    local tea = shop.sku{ price_fen = 1000, stock = 10 }
    local o = paid_order("cy", { { sku = tea, qty = 2 } })
    local cases = {
      { request(o, "refund_everything", { { line = 1, qty = 1 } }), "kind" },
      { request(o, "refund_only", { { line = 2, qty = 1 } }), "lines[1].line" },
      { request(o, "refund_only", { { line = 1, qty = 3 } }), "lines[1].qty" },
      { request(o, "refund_only", { { line = 1, qty = 0 } }), "lines[1].qty" },
      { request(o, "refund_only", { { line = 1, qty = 1 }, { line = 1, qty = 1 } }), "lines" },
      { request(o, "refund_only", {}), "lines" },
      { request(o, "refund_only", { { line = 1, qty = 1 } }, { reason = "" }), "reason" },
      { request(o, "refund_only", { { line = 1, qty = 1 } }, { photos = { "http://x.cn/a.jpg" } }), "photos[1]" },
      { request(o, "refund_only", { { line = 1, qty = 1 } }, { photos = { "javascript:alert(1)" } }), "photos[1]" },
      { request(o, "refund_only", { { line = 1, qty = 1 } }, { photos = { "https://x.cn/a b.jpg" } }), "photos[1]" },
      { request(o, "refund_only", { { line = 1, qty = 1 } }, { photos = { "https://localhost/a" } }), "photos[1]" },
      { request(o, "refund_only", { { line = 1, qty = 1 } }, { amount_fen = 1 }), "amount_fen" },
    }
    for _, c in ipairs(cases) do
      local err = expect(ask("cy", c[1])).to_be_error(400, "invalid_field")
      expect(err.details.field).to_be(c[2])
    end
    expect(ask("eve", request(o, "refund_only", { { line = 1, qty = 1 } }))).to_be_error(404, "order_not_found")
    expect(ask("cy", request(o, "return_refund", { { line = 1, qty = 1 } }))).to_be_error(409, "nothing_to_return")
    expect(kit.query("SELECT count(*) AS n FROM fulfilment_aftersales WHERE order_id = ?", o.id)[1].n).to_be(0)
    local ok = ask("cy", request(o, "refund_only", { { line = 1, qty = 1 } },
      { photos = { "https://img.example.cn/p/1.jpg?size=big" } }))
    expect(ok.status).to_be(201)
    expect(ok.body.photos).to_equal({ "https://img.example.cn/p/1.jpg?size=big" })
    expect(kit.user("eve"):get("/fulfilment/aftersales/" .. ok.body.id)).to_be_error(404, "aftersale_not_found")
  end)
end)

describe("deciding", function()
  it("approves a refund_only of goods that never left: refunded, and its units back", function()
    local tea = shop.sku{ price_fen = 1000, stock = 10 }
    local o = paid_order("dan", { { sku = tea, qty = 3 } })
    expect(stock(tea)).to_be(7)
    local r = ask("dan", request(o, "refund_only", { { line = 1, qty = 1 } })).body
    local a = kit.admin():post("/fulfilment/aftersales/" .. r.id .. "/approve", { note = "同意" })
    expect({ a.body.status, a.body.refund_no, a.body.restocked }).to_equal({ "refunded", "R" .. o.id .. "-1", true })
    expect(kit.admin():post("/fulfilment/aftersales/" .. r.id .. "/approve", {})).to_be_error(409, "already_decided")
    kit.drain()
    expect({ order(o.id).refunded_fen, order(o.id).status }).to_equal({ 1000, "paid" })
    expect(stock(tea)).to_be(8)
    -- the refunded unit is not shipped: the shipment carries the other two
    kit.user("dan"):post("/fulfilment/addresses", { name = "丹", phone = "13800001234", province = "浙江",
      city = "杭州", detail = "1 号" })
    kit.user("dan"):post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "express" })
    local s = kit.admin():post("/fulfilment/orders/" .. o.id .. "/shipments", { carrier = "SF", tracking_no = "D1" })
    expect(s.body.shipment.lines[1].qty).to_be(2)
    expect(s.body.delivery.state).to_be("shipped")
  end)

  it("rejects with a note, which frees the units for another request", function()
    local tea = shop.sku{ price_fen = 1000, stock = 10 }
    local o = paid_order("fa", { { sku = tea, qty = 1 } })
    local r = ask("fa", request(o, "refund_only", { { line = 1, qty = 1 } })).body
    expect(kit.admin():post("/fulfilment/aftersales/" .. r.id .. "/reject", {})).to_be_error(400, "invalid_field")
    local rej = kit.admin():post("/fulfilment/aftersales/" .. r.id .. "/reject", { note = "已发货" })
    expect({ rej.body.status, rej.body.note }).to_equal({ "rejected", "已发货" })
    kit.advance(7200)                                -- the timer was cancelled: still rejected
    expect(kit.user("fa"):get("/fulfilment/aftersales/" .. r.id).body.status).to_be("rejected")
    expect(ask("fa", request(o, "refund_only", { { line = 1, qty = 1 } })).status).to_be(201)
  end)

  it("approves on the brand's timer when the operator stays silent", function()
    local tea = shop.sku{ price_fen = 1000, stock = 10 }
    local o = paid_order("gi", { { sku = tea, qty = 1 } })
    local r = ask("gi", request(o, "refund_only", { { line = 1, qty = 1 } })).body
    kit.advance(3599)
    expect(kit.user("gi"):get("/fulfilment/aftersales/" .. r.id).body.status).to_be("requested")
    kit.advance(1)
    local now = kit.user("gi"):get("/fulfilment/aftersales/" .. r.id).body
    expect({ now.status, now.decided_by }).to_equal({ "refunded", "timer" })
    kit.drain()
    expect(order(o.id).status).to_be("refunded")
  end)

  it("closes a request whose order the operator refunded in full meanwhile", function()
    local tea = shop.sku{ price_fen = 1000, stock = 10 }
    local o = paid_order("jo", { { sku = tea, qty = 2 } })
    local r = ask("jo", request(o, "refund_only", { { line = 1, qty = 1 } })).body
    local s = ask("jo", request(o, "refund_only", { { line = 1, qty = 1 } })).body
    kit.admin():post("/orders/" .. o.id .. "/refund", {})
    kit.drain()
    expect(stock(tea)).to_be(10)
    expect(kit.admin():post("/fulfilment/aftersales/" .. r.id .. "/approve", {})).to_be_error(409, "not_refundable")
    kit.advance(3600)                                -- the timer finds nothing to approve
    local now = kit.user("jo"):get("/fulfilment/aftersales/" .. s.id).body
    expect({ now.status, now.decided_by }).to_equal({ "rejected", "timer" })
    expect(stock(tea)).to_be(10)
    expect(kit.query("SELECT count(*) AS n FROM _tp_jobs WHERE plugin = 'fulfilment' AND dead_ms IS NOT NULL")[1].n)
      .to_be(0)
  end)

  it("returns goods: approved, the buyer's tracking number, then stock and money when they arrive", function()
    local tea = shop.sku{ price_fen = 1000, stock = 10 }
    local o = paid_order("hu", { { sku = tea, qty = 2 } })
    ship_all("hu", o)
    local r = ask("hu", request(o, "return_refund", { { line = 1, qty = 1 } },
      { photos = { "https://img.example.cn/broken.jpg" } })).body
    expect(kit.user("hu"):post("/fulfilment/aftersales/" .. r.id .. "/return", { carrier = "SF", tracking_no = "B1" }))
      .to_be_error(409, "not_awaiting_return")
    expect(kit.admin():post("/fulfilment/aftersales/" .. r.id .. "/approve", {}).body.status).to_be("approved")
    expect(stock(tea)).to_be(8)
    expect(kit.admin():post("/fulfilment/aftersales/" .. r.id .. "/received")).to_be_error(409, "not_returning")
    local back = kit.user("hu"):post("/fulfilment/aftersales/" .. r.id .. "/return", { carrier = "SF", tracking_no = "B1" })
    expect({ back.body.status, back.body.return_tracking_no }).to_equal({ "returning", "B1" })
    expect(stock(tea)).to_be(8)                      -- on its way: not in stock yet
    local got = kit.admin():post("/fulfilment/aftersales/" .. r.id .. "/received")
    expect({ got.body.status, got.body.restocked }).to_equal({ "refunded", true })
    expect(stock(tea)).to_be(9)
    kit.drain()
    expect(order(o.id).refunded_fen).to_be(1000)
  end)

  it("a refund_only of shipped goods returns money but no stock", function()
    local tea = shop.sku{ price_fen = 1000, stock = 10 }
    local o = paid_order("ida", { { sku = tea, qty = 2 } })
    ship_all("ida", o)
    local r = ask("ida", request(o, "refund_only", { { line = 1, qty = 2 } })).body
    local a = kit.admin():post("/fulfilment/aftersales/" .. r.id .. "/approve", {}).body
    expect({ a.status, a.restocked }).to_equal({ "refunded", false })
    kit.drain()
    expect(order(o.id).status).to_be("refunded")
    expect(stock(tea)).to_be(8)
  end)
end)
