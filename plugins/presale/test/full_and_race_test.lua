-- A full-payment presale (pay everything now, ships from a stated date),
-- deposits racing for the last units (kit.concurrently: one loop iteration
-- of the host), and what operators may and may not send.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "presale-kit-payment-secret-0123" },
  fulfilment = {},
  presale = {},
}

local shop = require("tp.testshop")

local DAY = 86400

local function stock(sku)
  return kit.query("SELECT stock FROM catalog_skus WHERE code = ?", sku)[1].stock
end

local function post(body)
  return kit.admin():post("/presales", body)
end

local function deposit_body(sku, fields)
  local now = kit.now()
  local body = { sku = sku, kind = "deposit", price_fen = 9900, deposit_fen = 1000, deposit_worth_fen = 2000,
                 quantity = 3, starts_at = now - 60, ends_at = now + DAY,
                 balance_starts_at = now + DAY, balance_ends_at = now + 2 * DAY }
  for k, v in pairs(fields or {}) do if v == "nil" then body[k] = nil else body[k] = v end end
  return body
end

describe("a full-payment presale", function()
  it("is paid in full at once and ships only from its date", function()
    local sku = shop.sku { price_fen = 12800, stock = 10 }
    local ships = kit.now() + 3 * DAY
    local p = post({ sku = sku, kind = "full", price_fen = 9900, quantity = 5, starts_at = kit.now() - 60,
                     ends_at = kit.now() + DAY, ships_from = ships }).body
    expect(p.state).to_be("open")
    local u = kit.user("ann")
    local o = u:post("/presales/" .. p.id .. "/buy", {}).body
    expect({ o.total_fen, o.ships_from }).to_equal({ 9900, ships })
    expect(o.deposit).to_be_nil()
    expect(kit.admin():post("/payments/simulate", { order_id = o.id }).body.result.outcome).to_be("paid")
    u:post("/fulfilment/addresses", { name = "安", phone = "13800003333", province = "浙江", city = "杭州", detail = "3号" })
    u:post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "express" })
    local early = kit.admin():post("/fulfilment/orders/" .. o.id .. "/shipments", { carrier = "SF", tracking_no = "F1" })
    expect(early).to_be_error(409, "not_fulfillable")
    expect(early.body.error.message).to_match("ships from")
    kit.set_now(ships)
    expect(kit.admin():post("/fulfilment/orders/" .. o.id .. "/shipments",
      { carrier = "SF", tracking_no = "F1" }).status).to_be(201)
  end)
end)

describe("the last units", function()
  for _, order in ipairs({ "given", "reverse" }) do
    it("go to exactly one of two deposits that arrive together (" .. order .. " order)", function()
      local sku = shop.sku { price_fen = 9900, stock = 50 }
      local p = post(deposit_body(sku, { quantity = 1 })).body
      local res = kit.concurrently({ { kit.user("a1"), "POST", "/presales/" .. p.id .. "/buy", {} },
                                     { kit.user("a2"), "POST", "/presales/" .. p.id .. "/buy", {} } }, { order = order })
      local won = (res[1].status == 201 and 1 or 0) + (res[2].status == 201 and 1 or 0)
      expect(won).to_be(1)
      local loser = res[1].status == 201 and res[2] or res[1]
      expect(loser).to_be_error(409, "sold_out")
      expect(stock(sku)).to_be(49)
    end)
  end

  it("are sold once among twenty deposits in a shuffled order, never past the catalog", function()
    local sku = shop.sku { price_fen = 9900, stock = 4 }
    local p = post(deposit_body(sku, { quantity = 4, per_user_limit = 2, per_order_limit = 2 })).body
    local res = kit.concurrently(20, function(i)
      return { kit.user("r" .. i), "POST", "/presales/" .. p.id .. "/buy", { qty = 1 + i % 2 } }
    end, { order = 7 })
    local units = 0
    for i, a in ipairs(res) do
      if a.status == 201 then units = units + 1 + i % 2 else expect(a).to_be_error(409, "sold_out") end
    end
    expect(units <= 4).to_be(true)
    local left = kit.admin():get("/presales/" .. p.id).body.remaining
    expect(units + left).to_be(4)
    expect(stock(sku)).to_be(4 - units)
  end)
end)

describe("operators", function()
  it("are told exactly what is wrong with a presale, and nothing is created", function()
    local sku = shop.sku { price_fen = 9900, stock = 10 }
    local now = kit.now()
    local before = #kit.query("SELECT id FROM presale_presales")
    local cases = {
      { "worth at the price", { deposit_worth_fen = 9900 }, "deposit_worth_fen" },
      { "worth below the deposit", { deposit_worth_fen = 500 }, "deposit_worth_fen" },
      { "no deposit", { deposit_fen = "nil" }, "deposit_fen" },
      { "a price above the list", { price_fen = 10000 }, "price_fen" },
      { "the balance before deposits close", { balance_starts_at = now + 10 }, "balance_starts_at" },
      { "the balance ending before it starts", { balance_ends_at = now + DAY }, "balance_ends_at" },
      { "no balance window", { balance_ends_at = "nil" }, "balance_ends_at" },
      { "an epoch and a local time", { balance_starts_local = "2030-01-01 10:00" }, "balance_starts_local" },
      { "a local time that is not one", { balance_starts_at = "nil", balance_starts_local = "2030-02-30 10:00" },
        "balance_starts_local" },
      { "a string for a price", { price_fen = "99" }, "price_fen" },
      { "a negative quantity", { quantity = -1 }, "quantity" },
      { "a float deposit", { deposit_fen = 10.5 }, "deposit_fen" },
      { "an unknown kind", { kind = "lottery" }, "kind" },
      { "an unknown field", { surprise = true }, "surprise" },
      { "per order above per user", { per_order_limit = 2 }, "per_order_limit" },
      { "a title too long", { title = string.rep("茶", 101) }, "title" },
    }
    for _, c in ipairs(cases) do
      local res = post(deposit_body(sku, c[2]))
      expect(res).to_be_error(400, res.body.error and res.body.error.code == "invalid_body" and "invalid_body"
        or "invalid_field")
      if res.body.error.code == "invalid_field" then
        expect(res.body.error.details.field).to_be(c[3])
      end
    end
    local full = post({ sku = sku, kind = "full", price_fen = 9900, quantity = 1, starts_at = now, ends_at = now + 60,
                        deposit_fen = 100, ships_from = now })
    expect(full).to_be_error(400, "invalid_field")
    expect(full.body.error.details.field).to_be("deposit_fen")
    expect(post({ sku = sku, kind = "full", price_fen = 9900, quantity = 1, starts_at = now, ends_at = now + 60 }))
      .to_be_error(400, "invalid_field")
    expect(post(deposit_body(sku, { quantity = 11 }))).to_be_error(409, "insufficient_stock")
    expect(post(deposit_body("no-such-sku"))).to_be_error(400, "sku_not_found")
    expect(kit.admin():post("/presales", "[]").status).to_be(400)
    expect(#kit.query("SELECT id FROM presale_presales")).to_be(before)
  end)

  it("cannot change the terms once a unit is sold, but may add units and disable it", function()
    local sku = shop.sku { price_fen = 9900, stock = 10 }
    local p = post(deposit_body(sku)).body
    expect(kit.admin():patch("/presales/" .. p.id, { deposit_worth_fen = 2500 }).status).to_be(200)
    kit.user("bo"):post("/presales/" .. p.id .. "/buy", {})
    expect(kit.admin():patch("/presales/" .. p.id, { deposit_worth_fen = 3000 })).to_be_error(409, "terms_frozen")
    expect(kit.admin():patch("/presales/" .. p.id, { balance_ends_at = p.balance_ends_at + 60 }))
      .to_be_error(409, "terms_frozen")
    expect(kit.admin():patch("/presales/" .. p.id, { sku = "other" })).to_be_error(400, "invalid_field")
    expect(kit.admin():patch("/presales/" .. p.id, { quantity = 0 })).to_be_error(400, "invalid_field")
    expect(kit.admin():patch("/presales/" .. p.id, { quantity = 5 }).body.remaining).to_be(4)
    expect(kit.admin():patch("/presales/" .. p.id, { status = "disabled" }).body.state).to_be("disabled")
    expect(kit.user("cy"):post("/presales/" .. p.id .. "/buy", {})).to_be_error(404, "presale_not_found")
  end)
end)

describe("buyers", function()
  it("get a clear refusal for every buy that cannot be, and nothing is reserved", function()
    local sku = shop.sku { price_fen = 9900, stock = 10 }
    local now = kit.now()
    local p = post(deposit_body(sku, { quantity = 5, per_user_limit = 2, per_order_limit = 2 })).body
    local later = post(deposit_body(shop.sku { price_fen = 9900, stock = 10 },
      { starts_at = now + 3600, ends_at = now + DAY })).body
    local u = kit.user("di")
    expect(u:post("/presales/" .. later.id .. "/buy", {})).to_be_error(409, "not_started")
    expect(u:post("/presales/" .. p.id .. "/buy", { qty = 3 })).to_be_error(409, "order_limit_exceeded")
    expect(u:post("/presales/" .. p.id .. "/buy", { qty = 0 })).to_be_error(400, "invalid_field")
    expect(u:post("/presales/" .. p.id .. "/buy", { qty = "2" })).to_be_error(400, "invalid_field")
    expect(u:post("/presales/" .. p.id .. "/buy", { qty = 1, unit_price_fen = 1 }).status).to_be(400)
    expect(u:post("/presales/999/buy", {})).to_be_error(404, "presale_not_found")
    expect(kit.anon():post("/presales/" .. p.id .. "/buy", {}).status).to_be(401)
    expect(u:post("/presales/" .. p.id .. "/buy", { qty = 2 }).status).to_be(201)
    expect(u:post("/presales/" .. p.id .. "/buy", {})).to_be_error(409, "limit_reached")
    expect(stock(sku)).to_be(8)
    kit.set_now(p.ends_at)
    expect(kit.user("ed"):post("/presales/" .. p.id .. "/buy", {})).to_be_error(409, "ended")
  end)
end)
