-- The mall item schema (tp.schema) against what the create route enforces.

kit.plugins { catalog = {}, points = {} }

local shop = require("tp.testshop")
local st = require("tp.schematest")
local made

describe("the mall item schema", function()
  it("documents exactly what the create route refuses", function()
    local n = st.walk {
      path = "/admin/test/points/mall/items", method = "post",
      valid = function()
        made = made or shop.sku{ code = "mall-sku", price_fen = 100, stock = 10 }
        return { kind = "sku", sku = made, title = "cup", points_price = 10, stock = 5 }
      end,
      count = function() return kit.query("SELECT count(*) AS n FROM points_items")[1].n end,
      skip = { template_id = true },   -- an item of kind sku refuses any template_id (test/mall_test.lua)
    }
    expect(n >= 10).to_be(true)
  end)
end)
