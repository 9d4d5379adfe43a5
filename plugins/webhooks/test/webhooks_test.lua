-- webhooks: a subscription names a destination the brand's config lists for
-- the plugin; an event it subscribes to becomes one delivery per subscription,
-- sent through tp.http (the kit runs no loop: the call is in the outbox, with
-- its body and key), never twice for one event; a paused subscription sends
-- nothing; only a dead delivery is retried.

kit.plugins { webhooks = {}, emitter = {} }
kit.destinations {
  erp = { url = "http://127.0.0.1:9/hooks", plugins = { "webhooks" }, secrets = { key = "k" }, sign = "key" },
  other = { url = "http://127.0.0.1:9", plugins = { "emitter" } },
}

local admin = kit.admin()

local function subscribe(body)
  return admin:post("/webhooks/subscriptions", body)
end

describe("subscriptions", function()
  it("take a destination listed for webhooks, and refuse others", function()
    local res = subscribe { event = "order.paid", destination = "erp", path = "/orders" }
    expect(res.status).to_be(201)
    expect(res.body.status).to_be("active")
    for _, bad in ipairs {
      { event = "order.paid", destination = "other" },     -- not listed for webhooks
      { event = "order.paid", destination = "nowhere" },
      { event = "order.payed", destination = "erp" },      -- no such event
      { event = "order.paid", destination = "erp", path = "orders" },
    } do
      local r = subscribe(bad)
      expect(r.status).to_be(400)
      expect(r.body.error.code).to_be("invalid_field")
    end
  end)

  it("never change their event", function()
    local id = subscribe({ event = "group.formed", destination = "erp" }).body.id
    local res = admin:patch("/webhooks/subscriptions/" .. id, { event = "group.failed" })
    expect(res.status).to_be(400)
    res = admin:patch("/webhooks/subscriptions/" .. id, { status = "paused", path = "/g" })
    expect(res.status).to_be(200)
    expect(res.body.status).to_be("paused")
    expect(res.body.path).to_be("/g")
  end)
end)

describe("an event", function()
  it("becomes one call per active subscription, in the outbox with its body and key", function()
    local before = kit.query("SELECT count(*) AS n FROM _tp_outbox")[1].n
    local res = kit.anon():post("/emitter/emit", { name = "order.paid", data = { order_id = 42, total_fen = 9900 } })
    expect(res.status).to_be(201)
    kit.drain()
    local rows = kit.query("SELECT dest, path, key, body FROM _tp_outbox ORDER BY id")
    expect(#rows).to_be(before + 1)
    local call = rows[#rows]
    expect(call.dest).to_be("erp")
    expect(call.path).to_be("/orders")
    expect(call.key:match("^wh%-%d+$") ~= nil).to_be(true)
    expect(call.body:find('"event":"order.paid"', 1, true) ~= nil).to_be(true)
    expect(call.body:find('"order_id":42', 1, true) ~= nil).to_be(true)
    local d = admin:get("/webhooks/deliveries?state=pending").body.items
    expect(#d).to_be(1)
    expect(d[1].event).to_be("order.paid")
  end)

  it("to a paused subscription sends nothing, and a pending delivery is not retried", function()
    local before = kit.query("SELECT count(*) AS n FROM _tp_outbox")[1].n
    kit.anon():post("/emitter/emit", { name = "group.formed", data = {} })
    kit.drain()
    expect(kit.query("SELECT count(*) AS n FROM _tp_outbox")[1].n).to_be(before)
    local d = admin:get("/webhooks/deliveries").body.items[1]
    local res = admin:post("/webhooks/deliveries/" .. d.id .. "/retry")
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("delivery_not_dead")
  end)
end)
