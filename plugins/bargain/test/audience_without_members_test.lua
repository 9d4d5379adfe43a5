-- bargain without the members plugin: an activity cannot be made member-only
-- (400 naming the audience's field, saying what is missing), and one without
-- an audience is open to everyone as before (tp.audiencetest).

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "bargain-kit-secret-0123456789" },
  bargain = {},
}

local shop = require("tp.testshop")

local at = require("tp.audiencetest").new { path = "/bargain/activities", table = "bargain_activities",
  body = function(fields)
    local now = kit.now()
    local body = { sku = (shop.sku{ price_fen = 9900, stock = 10 }), original_price_fen = 1000,
                   floor_price_fen = 100, helpers_needed = 1, starts_at = now, ends_at = now + 86400 }
    for k, v in pairs(fields or {}) do body[k] = v end
    return body
  end }

describe("a member-only bargain activity without the members plugin", function()
  it("is refused on create and on PATCH, naming the field and the plugin it needs", function()
    at.refused_without_members()
  end)

  it("leaves an activity without an audience open to everyone", function()
    at.open_without_members(function(id) return kit.user("anyone"):post("/bargain/activities/" .. id .. "/start") end)
  end)
end)
