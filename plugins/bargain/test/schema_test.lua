-- bargain's activity schema (tp.schema, lib/rules.lua) against what the host
-- serves: every bound the OpenAPI body of POST /bargain/activities documents
-- is one the route enforces, field by field (tp.schematest).

kit.plugins { catalog = {}, orders = {}, payments = { secret = "bargain-kit-secret-0123456789" }, bargain = {} }

local shop = require("tp.testshop")
local st = require("tp.schematest")
local PATH = "/admin/test/bargain/activities"
local made

local function valid()
  if not made then made = shop.sku{ code = "schema-sku", price_fen = 9900, stock = 1000 } end
  local now = kit.now()
  return { sku = made, floor_price_fen = 100, helpers_needed = 3, starts_at = now, ends_at = now + 3600 }
end

describe("the activity schema", function()
  it("documents exactly what the create route refuses", function()
    local n = st.walk {
      path = PATH, method = "post", valid = valid,
      count = function() return kit.query("SELECT count(*) AS n FROM bargain_activities")[1].n end,
      skip = { audience = true },   -- its own test: test/audience_test.lua
    }
    expect(n >= 35).to_be(true)
  end)

  it("states the caps and the required fields the validation has (the docs had neither)", function()
    local body = st.body(PATH, "post")
    expect({ body.properties.original_price_fen.minimum, body.properties.helpers_needed.maximum,
             body.properties.duration_seconds.maximum, body.properties.pay_window_seconds.minimum,
             body.properties.starts_per_user.maximum, body.properties.sku.maxLength })
      .to_equal({ 2, 10000, 30 * 86400, 60, 1000, 64 })
    expect(st.required(PATH, "post")).to_equal({ "ends_at", "floor_price_fen", "helpers_needed", "sku", "starts_at" })
  end)

  it("requires nothing of a PATCH", function()
    expect(st.required(PATH .. "/{id}", "patch")).to_equal({})
    expect(st.body(PATH .. "/{id}", "patch").properties.sku).to_be_truthy()
  end)
end)
