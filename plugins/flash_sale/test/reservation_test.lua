-- flash_sale reservations (预约): a sale with requires_reservation sells only
-- to members who reserved before it started (403 reservation_required for the
-- others, a scalper's fresh accounts among them); reserving is idempotent,
-- closes at the start, and is refused on a sale that takes none; a merged
-- member's reservation is the survivor's.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "flash-sale-kit-secret-0123" },
  flash_sale = {},
  merger = {},
}

local shop = require("tp.testshop")
local HOUR = 3600

---A sale of a new SKU opening in an hour for a day, fields overriding.
local function new_sale(fields)
  local code = shop.sku{ price_fen = 9900, stock = 100 }
  local now = kit.now()
  local body = { sku = code, price_fen = 1990, quantity = 10, per_user_limit = 1, per_order_limit = 1,
                 starts_at = now + HOUR, ends_at = now + 24 * HOUR, requires_reservation = true }
  for k, v in pairs(fields or {}) do body[k] = v end
  local res = kit.admin():post("/flash-sales", body)
  assert(res.status == 201, "the sale was refused: " .. res.status)
  return res.body
end

local function reserve(id, user) return kit.user(user):post("/flash-sales/" .. id .. "/reserve", {}) end
local function buy(id, user) return kit.user(user):post("/flash-sales/" .. id .. "/buy", {}) end

describe("a sale that requires reservations", function()
  it("shows it, and sells to the reserved but not to the others once it opens", function()
    local sale = new_sale()
    expect(sale.requires_reservation).to_be(true)
    expect(reserve(sale.id, "early-bird").status).to_be(201)
    kit.advance(HOUR)
    expect(buy(sale.id, "early-bird").status).to_be(201)
    local res = buy(sale.id, "fresh-account")
    expect(res).to_be_error(403, "reservation_required")
    expect(res.body.error.details.reserve_until).to_be(sale.starts_at)
    expect(kit.query("SELECT remaining FROM flash_sale_sales WHERE id = ?", sale.id)[1].remaining).to_be(9)
  end)

  it("takes a reservation once: a repeat answers the same one", function()
    local sale = new_sale()
    local first = reserve(sale.id, "twice")
    expect(first.status).to_be(201)
    kit.advance(60)
    local again = reserve(sale.id, "twice")
    expect(again.status).to_be(200)
    expect(again.body).to_equal(first.body)
    expect(#kit.query("SELECT * FROM flash_sale_reservations WHERE sale_id = ?", sale.id)).to_be(1)
  end)

  it("closes reservations when the sale starts", function()
    local sale = new_sale()
    kit.advance(HOUR)
    expect(reserve(sale.id, "late")).to_be_error(409, "reservation_closed")
  end)

  it("can be turned on and off by a PATCH", function()
    local sale = new_sale({ requires_reservation = false })
    expect(reserve(sale.id, "x")).to_be_error(409, "reservation_not_required")
    local res = kit.admin():patch("/flash-sales/" .. sale.id, { requires_reservation = true })
    expect(res.body.requires_reservation).to_be(true)
    expect(reserve(sale.id, "x").status).to_be(201)
  end)
end)

describe("a sale without reservations", function()
  it("sells to anyone, as before", function()
    local sale = new_sale({ requires_reservation = false, starts_at = kit.now() - 60 })
    expect(sale.requires_reservation).to_be(false)
    expect(buy(sale.id, "walk-in").status).to_be(201)
  end)
end)

describe("a merged member", function()
  it("buys with the reservation the younger account made", function()
    local sale = new_sale()
    expect(reserve(sale.id, "young-acct").status).to_be(201)
    local res = kit.admin():post("/merger/merge", { plugin = "flash_sale", from = "young-acct",
                                                    into = "old-acct", merge_id = 77 })
    expect(res.status).to_be(200)
    kit.advance(HOUR)
    expect(buy(sale.id, "old-acct").status).to_be(201)
  end)
end)
