-- flash_sale buying: the order a buy makes, per-order and per-user limits,
-- sold out, the window and daily slots read in the tenant's zone (tenant
-- "test" runs in Asia/Shanghai, UTC+8 all year), units given back by the
-- unpaid timeout, a cancel or a full refund and taken again by a late payment,
-- and Idempotency-Key replays.
-- Buyers arriving together for the last units: race_test.lua (kit.concurrently,
-- one loop iteration of the host); tests/e2e/test_flash_sale_load.py races
-- them over HTTP.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "flash-sale-kit-secret-0123" },
  flash_sale = { unpaid_timeout_seconds = 240 },
}

local DAY, HOUR = 86400, 3600
local LIST_PRICE, SALE_PRICE = 9900, 1990

-- ---- helpers

local shop = require("tp.testshop")

---A product with the SKU code at the list price; returns the product's id.
local function new_sku(code, stock)
  return select(2, shop.sku{ code = code, price_fen = LIST_PRICE, stock = stock })
end

local function stock(code)
  return kit.query("SELECT stock FROM catalog_skus WHERE code = ?", code)[1].stock
end

---A sale of sku open from a minute ago for a day, with fields overriding.
local function new_sale(sku, fields)
  local now = kit.now()
  local body = { sku = sku, price_fen = SALE_PRICE, quantity = 10, per_user_limit = 1,
                 per_order_limit = 1, starts_at = now - 60, ends_at = now + DAY }
  for k, v in pairs(fields or {}) do body[k] = v end
  local res = kit.admin():post("/flash-sales", body)
  assert(res.status == 201, ("the sale was refused: %d %s"):format(res.status,
    type(res.body) == "table" and res.body.error and res.body.error.message or ""))
  return res.body
end

local function buy(id, user, qty, headers)
  return kit.user(user):post("/flash-sales/" .. id .. "/buy", qty and { qty = qty } or {}, headers)
end

local function bought(id, user, qty, headers)
  local res = buy(id, user, qty, headers)
  assert(res.status == 201, ("the buy answered %d"):format(res.status))
  return res.body
end

local function sale(id)
  return kit.admin():get("/flash-sales/" .. id).body
end

local function pay(order_id)
  return kit.admin():post("/payments/simulate", { order_id = order_id }).body.result.outcome
end

local function order(id)
  return kit.admin():get("/orders/" .. id).body
end

---Moves the clock to the instant at (never back).
local function advance_to(at)
  assert(at >= kit.now(), "advance_to goes forward only")
  kit.advance(at - kit.now())
end

---Local midnight (Asia/Shanghai, UTC+8, no daylight saving) of the day after t.
local function next_local_midnight(t)
  return t - (t + 8 * HOUR) % DAY + DAY
end

-- ---- the order a buy makes

describe("a buy", function()
  it("creates a pending order at the sale price, tagged with the sale, and takes a unit", function()
    new_sku("fs-a", 20)
    local s = new_sale("fs-a", { quantity = 10 })
    local res = buy(s.id, "ann")
    expect(res.status).to_be(201)
    local o = res.body
    expect({ o.status, o.user, o.total_fen, o.items_fen }).to_equal({ "pending_payment", "ann", 1990, 1990 })
    expect(o.campaign).to_equal({ plugin = "flash_sale", id = tostring(s.id), stacks_with_coupon = false })
    expect({ o.lines[1].sku, o.lines[1].qty, o.lines[1].unit_price_fen, o.lines[1].list_price_fen })
      .to_equal({ "fs-a", 1, SALE_PRICE, LIST_PRICE })
    expect(o.pay_deadline).to_be(o.created_at + 240)    -- the config's default timeout
    local after = sale(s.id)
    expect({ after.remaining, after.sold }).to_equal({ 9, 1 })
    expect(stock("fs-a")).to_be(19)
    expect(kit.anon():get("/flash-sales/" .. s.id).body.remaining).to_be(9)
  end)

  it("never charges more than the list price of the moment", function()
    local product = new_sku("fs-price", 10)
    local s = new_sale("fs-price")
    local put = kit.admin():put("/catalog/skus/fs-price",
      { product_id = product, title = "cheaper now", price_fen = 990, stock = 10 })
    expect(put.status).to_be(200)
    local o = bought(s.id, "penny")
    expect({ o.lines[1].unit_price_fen, o.total_fen }).to_equal({ 990, 990 })
  end)
end)

describe("limits", function()
  it("refuses more than per_order_limit and more than per_user_limit, counting nothing", function()
    new_sku("fs-lim", 50)
    local s = new_sale("fs-lim", { quantity = 5, per_user_limit = 3, per_order_limit = 2 })
    local err = expect(buy(s.id, "u1", 3)).to_be_error(409, "order_limit_exceeded")
    expect(err.details).to_equal({ per_order_limit = 2 })
    local zero = buy(s.id, "u1", 0)
    expect(zero.status).to_be(400)
    expect(zero.body.error.details).to_equal({ field = "qty" })
    expect(#bought(s.id, "u1", 2).lines).to_be(1)
    err = expect(buy(s.id, "u1", 2)).to_be_error(409, "limit_reached")      -- 2 + 2 > 3
    expect(err.details).to_equal({ per_user_limit = 3 })
    bought(s.id, "u1", 1)                                          -- 3 in all
    expect(buy(s.id, "u1", 1)).to_be_error(409, "limit_reached")
    expect(kit.query("SELECT bought FROM flash_sale_buyers WHERE sale_id = ? AND user = 'u1'", s.id))
      .to_equal({ { bought = 3 } })
    expect(sale(s.id).remaining).to_be(2)
  end)

  it("is sold out when fewer units are left than asked, and takes none of them", function()
    local s = kit.query("SELECT id FROM flash_sale_sales WHERE sku = 'fs-lim'")[1]
    bought(s.id, "u2", 1)
    expect(buy(s.id, "u3", 2)).to_be_error(409, "sold_out")
    expect(buy(s.id, "u3", 2)).to_be_error(409, "sold_out")   -- the refused buys did not count 2 of u3's 3
    bought(s.id, "u3", 1)
    local last = sale(s.id)
    expect({ last.remaining, last.sold }).to_equal({ 0, 5 })
    expect(buy(s.id, "u4")).to_be_error(409, "sold_out")
    expect(stock("fs-lim")).to_be(45)
  end)

  it("answers what orders or the catalog refuse, and takes nothing", function()
    local product = new_sku("fs-fail", 40)
    local s = new_sale("fs-fail", { quantity = 20, per_user_limit = 6 })
    for _ = 1, 5 do bought(s.id, "f1") end
    expect(buy(s.id, "f1")).to_be_error(409, "too_many_unpaid_orders")    -- orders' max_unpaid_orders = 5
    expect(buy(s.id, "f2", nil, { ["Idempotency-Key"] = string.rep("k", 129) })).to_be_error(400,
      "invalid_idempotency_key")
    kit.admin():patch("/catalog/products/" .. product, { status = "off_sale" })
    expect(buy(s.id, "f2")).to_be_error(409, "not_on_sale")
    kit.admin():patch("/catalog/products/" .. product, { status = "on_sale" })
    kit.admin():post("/catalog/skus/fs-fail/stock", { delta = -35 })
    expect(buy(s.id, "f2")).to_be_error(409, "sold_out")                   -- the catalog ran out first
    expect(sale(s.id).remaining).to_be(15)
    expect(kit.query("SELECT user, bought FROM flash_sale_buyers WHERE sale_id = ?", s.id))
      .to_equal({ { user = "f1", bought = 5 } })
  end)
end)

-- ---- time

describe("the window", function()
  it("is not started before starts_at, open from it, ended from ends_at", function()
    new_sku("fs-win", 10)
    local now = kit.now()
    local starts, ends = now + HOUR, now + 2 * HOUR
    local s = new_sale("fs-win", { starts_at = starts, ends_at = ends, quantity = 5 })
    expect({ s.state, s.opens_at }).to_equal({ "not_started", starts })
    kit.advance(HOUR - 1)
    local err = expect(buy(s.id, "w1")).to_be_error(409, "not_started")
    expect(err.details).to_equal({ opens_at = starts })
    kit.advance(1)
    bought(s.id, "w1")
    local public = kit.anon():get("/flash-sales/" .. s.id).body
    expect({ public.state, public.opens_at, public.remaining }).to_equal({ "open", nil, 4 })
    advance_to(ends - 1)
    bought(s.id, "w2")
    kit.advance(1)
    expect(buy(s.id, "w3")).to_be_error(409, "ended")
    expect(kit.anon():get("/flash-sales/" .. s.id).body.state).to_be("ended")
    for _, item in ipairs(kit.anon():get("/flash-sales").body.items) do
      expect(item.id ~= s.id).to_be(true)       -- ended sales leave the public list
    end
  end)

  it("opens daily slots in the tenant's zone (Asia/Shanghai), 10:00-12:00 local = 02:00-04:00 UTC", function()
    new_sku("fs-slot", 10)
    local day = next_local_midnight(kit.now())        -- a local midnight ahead of the clock
    local s = new_sale("fs-slot", { starts_at = kit.now(), ends_at = day + 2 * DAY,
                                    slots = { "10:00-12:00" }, quantity = 5 })
    expect(s.slots).to_equal({ "10:00-12:00" })
    local listing = kit.anon():get("/flash-sales").body
    expect(listing.timezone).to_be("Asia/Shanghai")
    advance_to(day + 10 * HOUR - 1)                    -- 09:59:59 in Shanghai
    local err = expect(buy(s.id, "s1")).to_be_error(409, "not_started")
    expect(err.details).to_equal({ opens_at = day + 10 * HOUR })
    expect((day + 10 * HOUR) % DAY).to_be(2 * HOUR)   -- that is 02:00 UTC
    kit.advance(1)
    bought(s.id, "s1")
    advance_to(day + 12 * HOUR - 1)                    -- 11:59:59
    bought(s.id, "s2")
    kit.advance(1)                                     -- 12:00: closed until tomorrow's 10:00
    err = expect(buy(s.id, "s3")).to_be_error(409, "not_started")
    expect(err.details).to_equal({ opens_at = day + DAY + 10 * HOUR })
    advance_to(day + DAY + 10 * HOUR)
    bought(s.id, "s3")
    advance_to(day + DAY + 12 * HOUR)                  -- no slot left before ends_at
    expect(buy(s.id, "s4")).to_be_error(409, "ended")
  end)
end)

-- ---- units going back, and coming again

describe("units", function()
  it("go back to the sale and the buyer's count when the unpaid timeout cancels", function()
    new_sku("fs-late", 20)
    local s = new_sale("fs-late", { quantity = 10, unpaid_timeout_seconds = 300 })
    local o1, o2 = bought(s.id, "l1"), bought(s.id, "l2")
    expect(o1.pay_deadline).to_be(o1.created_at + 300)
    kit.advance(299)
    expect(sale(s.id).remaining).to_be(8)
    kit.advance(1)
    expect(order(o1.id).cancel_reason).to_be("timeout")
    local after = sale(s.id)
    expect({ after.remaining, after.sold }).to_equal({ 10, 0 })
    expect(stock("fs-late")).to_be(20)
    -- l2 pays late: the unit is there, so it is taken again with l2's count
    expect(pay(o2.id)).to_be("paid_after_cancel")
    expect(sale(s.id).remaining).to_be(9)
    expect(buy(s.id, "l2")).to_be_error(409, "limit_reached")
    -- l1 bought again before paying the cancelled order: no room in the limit, refunded
    local again = bought(s.id, "l1")
    expect(pay(o1.id)).to_be("refunding")
    kit.drain()
    expect(order(o1.id).status).to_be("refunded")
    expect(sale(s.id).remaining).to_be(8)
    expect(order(again.id).status).to_be("pending_payment")
  end)

  it("go back when the buyer cancels and when the operator refunds in full", function()
    new_sku("fs-back", 20)
    local s = new_sale("fs-back", { quantity = 4, per_user_limit = 2, per_order_limit = 2 })
    local o = bought(s.id, "b1", 2)
    expect(kit.user("b1"):post("/orders/" .. o.id .. "/cancel").status).to_be(200)
    expect(sale(s.id).remaining).to_be(4)
    local p = bought(s.id, "b1", 2)
    pay(p.id)
    expect(kit.admin():post("/orders/" .. p.id .. "/refund", {}).status).to_be(202)
    expect(sale(s.id).remaining).to_be(4)
    kit.drain()
    expect(order(p.id).status).to_be("refunded")
    expect(sale(s.id).remaining).to_be(4)               -- once
    expect(#bought(s.id, "b1", 2).lines).to_be(1)       -- b1's count came back too
  end)
end)

describe("an Idempotency-Key", function()
  it("replays the same order, even after that buy took the last unit", function()
    new_sku("fs-key", 20)
    local s = new_sale("fs-key", { quantity = 1 })
    local key = { ["Idempotency-Key"] = "buy-0001" }
    local first = bought(s.id, "k1", nil, key)
    local again = buy(s.id, "k1", nil, key)
    expect(again.status).to_be(200)
    expect(again.body.id).to_be(first.id)
    expect(sale(s.id).remaining).to_be(0)
    -- the same key for another quantity or another sale is not a retry
    new_sku("fs-key2", 20)
    local other = new_sale("fs-key2", { per_user_limit = 3, per_order_limit = 3 })
    expect(buy(other.id, "k1", nil, key)).to_be_error(409, "idempotency_key_reused")
    local o = bought(other.id, "k1", 1, { ["Idempotency-Key"] = "buy-0002" })
    expect(buy(other.id, "k1", 3, { ["Idempotency-Key"] = "buy-0002" })).to_be_error(409, "idempotency_key_reused")
    expect(sale(other.id).remaining).to_be(9)
    expect(o.lines[1].qty).to_be(1)
  end)
end)
