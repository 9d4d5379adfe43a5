-- flash_sale for operators: creating a sale (what it answers, each rule
-- refused naming its field, nothing saved), one active sale per SKU at a time,
-- PATCH (price, quantity against what is sold and what the catalog has,
-- disabling), and the public and admin views.

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "flash-sale-kit-secret-0123" },
  flash_sale = {},
}

local DAY = 86400
local LIST_PRICE = 9900

local shop = require("tp.testshop")

---A product with the SKU code at the list price; returns the product's id.
local function new_sku(code, stock)
  return select(2, shop.sku{ code = code, price_fen = LIST_PRICE, stock = stock })
end

local function fields(sku, extra)
  local now = kit.now()
  local body = { sku = sku, price_fen = 1990, quantity = 10, per_user_limit = 1, per_order_limit = 1,
                 starts_at = now - 60, ends_at = now + DAY }
  for k, v in pairs(extra or {}) do body[k] = v end
  return body
end

local function create(sku, extra)
  return kit.admin():post("/flash-sales", fields(sku, extra))
end

local function patch(id, body)
  return kit.admin():patch("/flash-sales/" .. id, body)
end

describe("creating a sale", function()
  it("answers 201 with the sale, its defaults and its state", function()
    new_sku("op-1", 100)
    local now = kit.now()
    local res = create("op-1", { quantity = 100, price_fen = LIST_PRICE })
    expect(res.status).to_be(201)
    local s = res.body
    expect({ s.sku, s.title, s.price_fen, s.quantity, s.remaining, s.sold })
      .to_equal({ "op-1", "title op-1", LIST_PRICE, 100, 100, 0 })   -- the price may equal the list price
    expect({ s.per_user_limit, s.per_order_limit, s.unpaid_timeout_seconds, s.stacks_with_coupon })
      .to_equal({ 1, 1, 300, false })
    expect({ s.status, s.state, s.starts_at, s.ends_at, s.created_at }).to_equal({ "active", "open",
      now - 60, now + DAY, now })
    expect(s.slots).to_equal({})
    expect(kit.admin():get("/flash-sales/" .. s.id).body.sold).to_be(0)
  end)

  it("refuses each broken rule naming its field, and saves nothing", function()
    new_sku("op-2", 100)
    local now = kit.now()
    local before = kit.query("SELECT count(*) AS n FROM flash_sale_sales")[1].n
    local cases = {
      { { price_fen = LIST_PRICE + 1 }, "price_fen" },
      { { price_fen = 0 }, "price_fen" },
      { { quantity = 0 }, "quantity" },
      { { starts_at = now + 100, ends_at = now + 100 }, "ends_at" },
      { { per_user_limit = 2, per_order_limit = 3 }, "per_order_limit" },
      { { unpaid_timeout_seconds = 10 }, "unpaid_timeout_seconds" },
      { { status = "paused" }, "status" },
      { { stacks_with_coupon = "yes" }, "stacks_with_coupon" },
      { { slots = "10:00-12:00" }, "slots" },
      { { slots = { "10:00-9:00" } }, "slots[1]" },
      { { slots = { "10:60-11:00" } }, "slots[1]" },
      { { slots = { "12:00-10:00" } }, "slots[1]" },
      { { slots = { "10:00-24:01" } }, "slots[1]" },
      { { slots = { "10:00-12:00", "11:59-13:00" } }, "slots[2]" },
    }
    for _, case in ipairs(cases) do
      local res = create("op-2", case[1])
      expect({ case[2], res.status, res.body.error.code, res.body.error.details })
        .to_equal({ case[2], 400, "invalid_field", { field = case[2] } })
    end
    local unknown = expect(create("no-such-sku")).to_be_error(400, "sku_not_found")
    expect(unknown.details).to_equal({ field = "sku" })
    local short = expect(create("op-2", { quantity = 101 })).to_be_error(409, "insufficient_stock")
    expect(short.details).to_equal({ stock = 100, field = "quantity" })
    expect(kit.query("SELECT count(*) AS n FROM flash_sale_sales")[1].n).to_be(before)
    -- the edges pass: adjacent slots and 24:00
    local ok = create("op-2", { slots = { "10:00-12:00", "12:00-13:00", "23:00-24:00" } })
    expect(ok.status).to_be(201)
    expect(ok.body.slots).to_equal({ "10:00-12:00", "12:00-13:00", "23:00-24:00" })
  end)

  it("keeps a SKU in at most one active sale at a time", function()
    new_sku("ov-1", 100)
    new_sku("ov-2", 100)
    local now = kit.now()
    local first = create("ov-1", { starts_at = now + 1000, ends_at = now + 2000 }).body
    for _, window in ipairs({ { now + 1999, now + 3000 }, { now, now + 1001 }, { now + 1200, now + 1300 } }) do
      local err = expect(create("ov-1", { starts_at = window[1], ends_at = window[2] })).to_be_error(409, "sale_overlap")
      expect(err.details).to_equal({ sale_id = first.id, field = "starts_at" })
    end
    local after = create("ov-1", { starts_at = now + 2000, ends_at = now + 3000 })   -- touching is fine
    expect(after.status).to_be(201)
    expect(create("ov-2", { starts_at = now + 1000, ends_at = now + 2000 }).status).to_be(201)
    local disabled = create("ov-1", { starts_at = now + 1500, ends_at = now + 2500, status = "disabled" })
    expect(disabled.status).to_be(201)
    expect(patch(after.body.id, { starts_at = now + 1500 })).to_be_error(409, "sale_overlap")
    expect(patch(disabled.body.id, { status = "active" })).to_be_error(409, "sale_overlap")
  end)
end)

describe("changing a sale", function()
  it("changes the price of the next buy, never the SKU", function()
    new_sku("pa-1", 30)
    local s = create("pa-1", { quantity = 10, per_user_limit = 5, per_order_limit = 5 }).body
    expect(kit.user("p1"):post("/flash-sales/" .. s.id .. "/buy", { qty = 4 }).status).to_be(201)
    local res = patch(s.id, { price_fen = 2990 })
    expect(res.status).to_be(200)
    expect({ res.body.price_fen, res.body.remaining, res.body.sold }).to_equal({ 2990, 6, 4 })
    expect(kit.user("p2"):post("/flash-sales/" .. s.id .. "/buy", {}).body.total_fen).to_be(2990)
    expect(expect(patch(s.id, { sku = "pa-2" })).to_be_error(400, "invalid_field").details).to_equal({ field = "sku" })
    expect(expect(patch(s.id, { price_fen = LIST_PRICE + 1 })).to_be_error(400, "invalid_field").details)
      .to_equal({ field = "price_fen" })
    expect(patch(999, { price_fen = 100 })).to_be_error(404, "sale_not_found")
  end)

  it("lets the quantity shrink to what is sold and grow within the catalog's stock", function()
    local s = kit.query("SELECT id FROM flash_sale_sales WHERE sku = 'pa-1'")[1]
    -- 5 sold, 25 left in the catalog
    local res = patch(s.id, { quantity = 20 })
    expect({ res.body.quantity, res.body.sold, res.body.remaining }).to_equal({ 20, 5, 15 })
    expect(expect(patch(s.id, { quantity = 4 })).to_be_error(409, "quantity_below_sold").details)
      .to_equal({ sold = 5, field = "quantity" })
    res = patch(s.id, { quantity = 5 })
    expect({ res.body.quantity, res.body.remaining }).to_equal({ 5, 0 })
    expect(kit.user("p3"):post("/flash-sales/" .. s.id .. "/buy", {})).to_be_error(409, "sold_out")
    -- 31 would leave the sale 26 units to sell on a catalog stock of 25
    expect(expect(patch(s.id, { quantity = 31 })).to_be_error(409, "insufficient_stock").details)
      .to_equal({ stock = 25, field = "quantity" })
    expect(patch(s.id, { quantity = 30 }).body.remaining).to_be(25)
  end)

  it("moves the window: a later start shows not_started with opens_at", function()
    local s = kit.query("SELECT id FROM flash_sale_sales WHERE sku = 'pa-1'")[1]
    local now = kit.now()
    local res = patch(s.id, { starts_at = now + 600 })
    expect({ res.body.state, res.body.opens_at }).to_equal({ "not_started", now + 600 })
    local public = kit.anon():get("/flash-sales/" .. s.id).body
    expect({ public.state, public.opens_at }).to_equal({ "not_started", now + 600 })
    expect(patch(s.id, { starts_at = now - 60 }).body.state).to_be("open")
  end)

  it("disables a sale: gone for buyers and the public, still there for the operator", function()
    local s = kit.query("SELECT id FROM flash_sale_sales WHERE sku = 'pa-1'")[1]
    local res = patch(s.id, { status = "disabled" })
    expect({ res.body.status, res.body.state }).to_equal({ "disabled", "disabled" })
    expect(kit.user("p4"):post("/flash-sales/" .. s.id .. "/buy", {})).to_be_error(404, "sale_not_found")
    expect(kit.anon():get("/flash-sales/" .. s.id)).to_be_error(404, "sale_not_found")
    for _, item in ipairs(kit.anon():get("/flash-sales").body.items) do
      expect(item.id ~= s.id).to_be(true)
    end
    expect(kit.admin():get("/flash-sales/" .. s.id).body.sold).to_be(5)
    expect(patch(s.id, { status = "active" }).body.state).to_be("open")
    expect(kit.user("p4"):post("/flash-sales/" .. s.id .. "/buy", {}).status).to_be(201)
  end)

  it("can always disable a sale, even when the list price fell below its price", function()
    local product = new_sku("bug-1", 10)
    local s = create("bug-1").body
    kit.admin():put("/catalog/skus/bug-1", { product_id = product, title = "x", price_fen = 990, stock = 10 })
    local res = patch(s.id, { status = "disabled" })
    expect(res.status).to_be(200)
    expect(res.body.state).to_be("disabled")
    -- setting a price is still capped by the list price of the moment
    res = patch(s.id, { price_fen = 991 })
    expect(res.status).to_be(400)
    expect(res.body.error.details.field).to_be("price_fen")
  end)

  it("is for operators only", function()
    local res = kit.admin():post("/flash-sales", fields("pa-1"), { ["X-Api-Key"] = "wrong" })
    expect(res.status).to_be(403)
    expect(kit.user("p5"):post("/flash-sales", fields("pa-1")).status).to_be(405)
  end)
end)
