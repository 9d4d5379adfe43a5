-- flash_sale's sale schema (tp.schema) against what the host serves: every
-- bound the OpenAPI body of POST /flash-sales documents is one the route
-- enforces, field by field (tp.schematest), so the docs and the validation
-- cannot disagree.

kit.plugins { catalog = {}, orders = {}, payments = { secret = "flash-sale-kit-secret-0123" }, flash_sale = {} }

local shop = require("tp.testshop")
local st = require("tp.schematest")
local made

local function valid()
  if not made then made = shop.sku{ code = "schema-sku", price_fen = 9900, stock = 100000000 } end
  local now = kit.now()
  return { sku = made, price_fen = 990, quantity = 10, starts_at = now, ends_at = now + 3600 }
end

describe("the sale schema", function()
  it("documents exactly what the create route refuses", function()
    local n = st.walk {
      path = "/admin/test/flash-sales", method = "post", valid = valid,
      count = function() return kit.query("SELECT count(*) AS n FROM flash_sale_sales")[1].n end,
      skip = { audience = true },   -- its own test: test/audience_test.lua
    }
    expect(n >= 30).to_be(true)
  end)

  it("states the caps the validation has (they were missing from the docs)", function()
    local body = st.body("/admin/test/flash-sales", "post")
    expect({ body.properties.quantity.maximum, body.properties.per_user_limit.maximum,
             body.properties.unpaid_timeout_seconds.minimum, body.properties.slots.maxItems })
      .to_equal({ 10000000, 1000, 60, 24 })
    expect(st.required("/admin/test/flash-sales", "post")).to_equal({ "ends_at", "price_fen", "quantity", "sku", "starts_at" })
  end)
end)
