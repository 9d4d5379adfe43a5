-- referral's declared bodies (tp.schema: lib/distributors.lua, the SKU rates
-- in plugin.lua) against what the host serves: every bound the OpenAPI bodies
-- of POST /referral/stores and POST /referral/distributors document is one
-- the routes enforce, field by field (tp.schematest).

kit.plugins { referral = {} }

local st = require("tp.schematest")
local walk = st.walk
local made = 0

local function count(t)
  return function() return kit.query("SELECT count(*) AS n FROM " .. t)[1].n end
end

describe("the declared bodies", function()
  it("document exactly what creating a store refuses", function()
    local n = walk { path = "/admin/test/referral/stores", method = "post", count = count("referral_stores"),
      valid = function()
        made = made + 1
        return { id = "store-" .. made, name = "南京西路店" }
      end }
    expect(n).to_be(6)
  end)

  it("document exactly what making a distributor refuses", function()
    local n = walk { path = "/admin/test/referral/distributors", method = "post",
      count = count("referral_distributors"),
      valid = function()
        made = made + 1
        return { user = "walk-" .. made }
      end }
    expect(n).to_be(6)
  end)

  it("state the caps of a SKU's rates and what a PATCH may change", function()
    local rates = st.body("/admin/test/referral/sku-rates/{sku}", "put")
    expect({ rates.properties.level1_rate_bp.maximum, rates.properties.level2_rate_bp.minimum })
      .to_equal({ 10000, 0 })
    expect(st.names("/admin/test/referral/stores/{id}", "patch")).to_equal({ "name", "status" })
    expect(st.names("/admin/test/referral/stores", "post")).to_equal({ "id", "name" })
  end)
end)
