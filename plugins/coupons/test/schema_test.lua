-- coupons' template schema (tp.schema, lib/templates.lua) against what the
-- host serves: every bound the OpenAPI body of POST /coupons/templates
-- documents is one the route enforces, field by field (tp.schematest), from a
-- valid fixed-amount template with relative validity.

kit.plugins { coupons = {} }

local st = require("tp.schematest")
local PATH = "/admin/test/coupons/templates"

local function valid()
  return { name = "¥10 off", kind = "fixed", amount_off_fen = 1000, valid_days = 7, total_quantity = 100 }
end

describe("the template schema", function()
  it("documents exactly what the create route refuses", function()
    local n = st.walk {
      path = PATH, method = "post", valid = valid,
      count = function() return kit.query("SELECT count(*) AS n FROM coupons_templates")[1].n end,
      -- the other form of validity: refused next to valid_days, naming valid_days (coupons_test.lua)
      skip = { valid_from = true, valid_until = true },
    }
    expect(n >= 45).to_be(true)
  end)

  it("states the caps the validation has (they were missing from the docs)", function()
    local body = st.body(PATH, "post")
    expect({ body.properties.total_quantity.maximum, body.properties.per_user_limit.maximum,
             body.properties.amount_off_fen.maximum, body.properties.product_ids.maxItems,
             body.properties.claim_ends_at.maximum })
      .to_equal({ 1000000000, 1000, 100000000000, 1000, 253402300799 })
    expect(st.required(PATH, "post")).to_equal({ "kind", "name", "total_quantity" })
  end)

  it("documents only what a PATCH may change", function()
    expect(st.names(PATH .. "/{id}", "patch"))
      .to_equal({ "audience", "claim_ends_at", "name", "segment", "status", "tag", "total_quantity" })
    expect(st.body(PATH .. "/{id}", "patch").properties.claim_ends_at.nullable).to_be(true)
  end)
end)
