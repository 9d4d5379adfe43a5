-- catalog's product schema (tp.schema) against what the host serves: every
-- bound the OpenAPI body of POST /catalog/products documents is one the
-- route enforces, field by field (tp.schematest).

local st = require("tp.schematest")
local made = 0

local function valid()
  made = made + 1
  return { name = "product " .. made,
           skus = { { code = "schema-" .. made, title = "a SKU", price_fen = 100, stock = 5 } } }
end

describe("the product schema", function()
  it("documents exactly what the create route refuses", function()
    local n = st.walk {
      path = "/admin/test/catalog/products", method = "post", valid = valid,
      count = function() return kit.query("SELECT count(*) AS n FROM catalog_products")[1].n end,
    }
    expect(n).to_be(9)
  end)

  it("documents a SKU's caps, on PUT /catalog/skus/{code} and in a product's skus", function()
    local put = st.body("/admin/test/catalog/skus/{code}", "put")
    local post = st.body("/admin/test/catalog/products", "post")
    expect(st.required("/admin/test/catalog/skus/{code}", "put")).to_equal({ "price_fen", "product_id", "stock", "title" })
    expect({ put.properties.price_fen.maximum, put.properties.stock.minimum, put.properties.title.maxLength })
      .to_equal({ 1000000000, 0, 100 })
    expect(post.properties.skus.items.properties.stock.maximum).to_be(1000000000)
    expect(post.properties.skus.items.properties.product_id).to_be_nil()
  end)

  it("leaves the SKUs out of a PATCH, which ignores them", function()
    expect(st.names("/admin/test/catalog/products/{id}", "patch")).to_equal({ "description", "name", "status" })
    expect(st.required("/admin/test/catalog/products/{id}", "patch")).to_equal({})
  end)
end)
