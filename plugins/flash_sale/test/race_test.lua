-- flash_sale under buyers who arrive together (kit.concurrently): the host
-- handles one loop iteration's requests one after another, each in its own
-- savepoint and all at the same clock reading, and commits them together, so
-- a race is a question of order inside one batch. Each race runs in both
-- orders: whoever is handled first wins, and nobody is sold a unit that is
-- not there or more than the limit.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  flash_sale = {},
}

local shop = require("tp.testshop")

local function new_sale(quantity, per_user_limit)
  local sku = shop.sku { price_fen = 9900, stock = 100 }
  local now = kit.now()
  local res = kit.admin():post("/flash-sales", { sku = sku, price_fen = 990, quantity = quantity,
    per_user_limit = per_user_limit or 1, per_order_limit = 1, starts_at = now - 60, ends_at = now + 3600 })
  assert(res.status == 201, "the sale was refused")
  return res.body.id, sku
end

local function buy_of(user, sale_id, key)
  return { kit.user(user), "POST", "/flash-sales/" .. sale_id .. "/buy", {},
           key and { ["Idempotency-Key"] = key } or nil }
end

local function statuses(answers)
  local out = {}
  for i, a in ipairs(answers) do out[i] = a.status end
  return out
end

describe("the last unit", function()
  for _, order in ipairs({ "given", "reverse" }) do
    it("goes to exactly one of two buyers who arrive together (" .. order .. " order)", function()
      local id = new_sale(1)
      local res = kit.concurrently({ buy_of("ann", id), buy_of("bob", id) }, { order = order })
      local winner, loser = 1, 2
      if order == "reverse" then winner, loser = 2, 1 end
      expect(res[winner].status).to_be(201)
      expect(res[loser]).to_be_error(409, "sold_out")
      local sale = kit.admin():get("/flash-sales/" .. id).body
      expect({ sale.remaining, sale.sold }).to_equal({ 0, 1 })
      expect(#kit.query("SELECT id FROM orders_orders WHERE campaign_id = ?", tostring(id))).to_be(1)
    end)
  end

  it("is sold once among twenty buyers, in a shuffled order", function()
    local id = new_sale(3)
    local res = kit.concurrently(20, function(i) return buy_of("buyer" .. i, id) end, { order = 42 })
    local won = 0
    for _, a in ipairs(res) do
      if a.status == 201 then won = won + 1 else expect(a).to_be_error(409, "sold_out") end
    end
    expect(won).to_be(3)
    expect(kit.admin():get("/flash-sales/" .. id).body.remaining).to_be(0)
  end)
end)

describe("one user's limit", function()
  it("holds against five buys of one user sent at once with different keys", function()
    local id = new_sale(10, 2)
    local res = kit.concurrently(5, function(i) return buy_of("eve", id, "eve-" .. i) end)
    expect(statuses(res)).to_equal({ 201, 201, 409, 409, 409 })
    expect(res[3].body.error.code).to_be("limit_reached")
  end)

  it("answers a repeated Idempotency-Key sent twice at once with the same order", function()
    local id = new_sale(10, 1)
    local res = kit.concurrently({ buy_of("max", id, "same"), buy_of("max", id, "same") })
    expect(statuses(res)).to_equal({ 201, 200 })
    expect(res[2].body.id).to_be(res[1].body.id)
  end)
end)
