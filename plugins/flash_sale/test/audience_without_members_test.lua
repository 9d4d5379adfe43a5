-- flash_sale without the members plugin: a sale cannot be made member-only
-- (400 naming the audience's field, saying what is missing), and a sale
-- without an audience is open to everyone as before (tp.audiencetest).

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "flash-sale-kit-secret-0123" },
  flash_sale = {},
}

local shop = require("tp.testshop")

local at = require("tp.audiencetest").new { path = "/flash-sales", table = "flash_sale_sales",
  body = function(fields)
    local now = kit.now()
    local body = { sku = (shop.sku{ price_fen = 9900, stock = 10 }), price_fen = 1990, quantity = 5,
                   starts_at = now - 60, ends_at = now + 86400 }
    for k, v in pairs(fields or {}) do body[k] = v end
    return body
  end }

describe("a member-only sale without the members plugin", function()
  it("is refused on create and on PATCH, naming the field and the plugin it needs", function()
    at.refused_without_members()
  end)

  it("leaves a sale without an audience open to everyone", function()
    at.open_without_members(function(id) return kit.user("anyone"):post("/flash-sales/" .. id .. "/buy", {}) end)
  end)
end)
