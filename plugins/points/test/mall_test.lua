-- The points mall: an exchange takes the item's stock, the points and the
-- SKU's unit or the coupon in one transaction, and rolls back whole when the
-- catalog or the coupon template has nothing left.

kit.plugins { catalog = {}, coupons = {}, points = {} }

local shop = require("tp.testshop")

local function give(user, n)
  assert(kit.admin():post("/points/accounts/" .. user .. "/adjust", { points = n, reason = "grant" }).status == 201)
end

local function item(fields)
  local res = kit.admin():post("/points/mall/items", fields)
  assert(res.status == 201, "item answered " .. res.status .. " " .. tostring(res.body.error and res.body.error.message))
  return res.body
end

local function state(sku, item_id)
  return { catalog = kit.query("SELECT stock FROM catalog_skus WHERE code = ?", sku)[1].stock,
           item = kit.query("SELECT stock, exchanged FROM points_items WHERE id = ?", item_id)[1],
           balance = kit.user("ann"):get("/points/me").body.balance,
           exchanges = kit.query("SELECT count(*) AS n FROM points_exchanges")[1].n }
end

describe("an exchange for a SKU", function()
  it("takes the points, the item's stock and a unit of the SKU", function()
    local sku = shop.sku{ price_fen = 5000, stock = 1 }
    local it_ = item{ kind = "sku", sku = sku, title = "tea cup", points_price = 300, stock = 5 }
    give("ann", 1000)
    local res = kit.user("ann"):post("/points/mall/items/" .. it_.id .. "/exchange")
    expect(res.status).to_be(201)
    expect({ res.body.balance, res.body.exchange.kind, res.body.exchange.sku }).to_equal({ 700, "sku", sku })
    expect(state(sku, it_.id)).to_equal({ catalog = 0, item = { stock = 4, exchanged = 1 }, balance = 700, exchanges = 1 })
  end)

  it("rolls back whole when the SKU's stock is gone", function()
    local sku = kit.query("SELECT code FROM catalog_skus")[1].code   -- stock 0 now
    local id = kit.query("SELECT id FROM points_items")[1].id
    local before = state(sku, id)
    local err = expect(kit.user("ann"):post("/points/mall/items/" .. id .. "/exchange")).to_be_error(409, "out_of_stock")
    expect(err.details.reason).to_be("insufficient_stock")
    expect(state(sku, id)).to_equal(before)
  end)

  it("refuses an exchange the balance cannot pay, and a sold-out item", function()
    local sku = shop.sku{ price_fen = 5000, stock = 10 }
    local dear = item{ kind = "sku", sku = sku, title = "teapot", points_price = 100000, stock = 1 }
    expect(kit.user("ann"):post("/points/mall/items/" .. dear.id .. "/exchange")).to_be_error(409, "insufficient_points")
    local none = item{ kind = "sku", sku = sku, title = "gone", points_price = 1, stock = 0 }
    expect(kit.user("ann"):post("/points/mall/items/" .. none.id .. "/exchange")).to_be_error(409, "sold_out")
    expect(state(sku, dear.id).balance).to_be(700)
  end)
end)

describe("an exchange for a coupon", function()
  it("gives a coupon, and rolls back whole when the template has none left", function()
    local tpl = kit.admin():post("/coupons/templates", { name = "¥5 off", kind = "fixed", amount_off_fen = 500,
      valid_days = 30, total_quantity = 1 }).body.id
    local it_ = item{ kind = "coupon", template_id = tpl, title = "¥5 coupon", points_price = 100, stock = 10 }
    local res = kit.user("ann"):post("/points/mall/items/" .. it_.id .. "/exchange")
    expect(res.status).to_be(201)
    expect(kit.user("ann"):get("/coupons/mine").body.items[1].id).to_be(res.body.exchange.coupon_id)
    local sku = kit.query("SELECT code FROM catalog_skus")[1].code
    local before = state(sku, it_.id)
    expect(kit.user("ann"):post("/points/mall/items/" .. it_.id .. "/exchange")).to_be_error(409, "out_of_stock")
    expect(state(sku, it_.id)).to_equal(before)
  end)
end)

describe("items", function()
  it("are checked: kind decides sku or template_id; a PATCH pauses one", function()
    expect(kit.admin():post("/points/mall/items", { kind = "sku", title = "x", points_price = 1, stock = 1 }))
      .to_be_error(400, "invalid_field")
    expect(kit.admin():post("/points/mall/items", { kind = "coupon", template_id = 1, sku = "a", title = "x",
      points_price = 1, stock = 1 })).to_be_error(400, "invalid_field")
    expect(kit.admin():post("/points/mall/items", { kind = "sku", sku = "nope", title = "x", points_price = 1,
      stock = 1 })).to_be_error(404, "sku_not_found")
    local id = kit.query("SELECT id FROM points_items ORDER BY id LIMIT 1")[1].id
    expect(kit.admin():patch("/points/mall/items/" .. id, { status = "paused" }).body.status).to_be("paused")
    expect(kit.user("ann"):post("/points/mall/items/" .. id .. "/exchange")).to_be_error(404, "item_not_found")
    for _, i in ipairs(kit.anon():get("/points/mall/items").body.items) do expect(i.id ~= id).to_be(true) end
  end)
end)
