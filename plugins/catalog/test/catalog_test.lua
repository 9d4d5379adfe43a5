-- catalog: products and SKUs, through the real routes of a test host.

local function new_product(skus, extra)
  local body = { name = "White tea", description = "Fuding, 2019", skus = skus }
  for k, v in pairs(extra or {}) do body[k] = v end
  return kit.admin():post("/catalog/products", body)
end

describe("creating a product", function()
  it("answers 201 with the product and its SKUs, cheapest first", function()
    local res = new_product({
      { code = "wt-100", title = "100 g", price_fen = 12800, stock = 40 },
      { code = "wt-050", title = "50 g", price_fen = 6900, stock = 100 },
    })
    expect(res.status).to_be(201)
    expect(res.body.name).to_be("White tea")
    expect(res.body.status).to_be("on_sale")
    expect(res.body.created_at).to_be(kit.now())
    expect(res.body.skus).to_equal({
      { code = "wt-050", title = "50 g", price_fen = 6900, stock = 100 },
      { code = "wt-100", title = "100 g", price_fen = 12800, stock = 40 },
    })
  end)

  it("refuses a price that is not integer fen, naming the field", function()
    local res = new_product({ { code = "bad-1", title = "x", price_fen = 9.9, stock = 1 } })
    expect(res.status).to_be(400)
    expect(res.body.error.code).to_be("invalid_field")
    expect(res.body.error.details).to_equal({ field = "price_fen" })
    expect(kit.query("SELECT count(*) AS n FROM catalog_skus WHERE code = ?", "bad-1"))
      .to_equal({ { n = 0 } })
  end)

  it("refuses a SKU code that exists, and keeps nothing of the product", function()
    local before = kit.query("SELECT count(*) AS n FROM catalog_products")[1].n
    local res = new_product({ { code = "wt-050", title = "again", price_fen = 1, stock = 1 } })
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("sku_exists")
    expect(kit.query("SELECT count(*) AS n FROM catalog_products")[1].n).to_be(before)
  end)

  it("is for operators only", function()
    local public = kit.anon():post("/catalog/products", { name = "x" })
    expect(public.status).to_be(405)  -- the public path only reads
    expect(public.headers.allow).to_be("GET")
    local res = kit.admin():post("/catalog/products", { name = "x" }, { ["X-Api-Key"] = "wrong" })
    expect(res.status).to_be(403)
    expect(res.body.error.code).to_be("invalid_api_key")
  end)
end)

describe("reading the catalog", function()
  local id, n = nil, 0
  before_each(function()
    n = n + 1
    id = new_product({ { code = "cup-" .. n, title = "cup", price_fen = 990, stock = 3 } }).body.id
  end)

  it("lists products on sale with their price range", function()
    local res = kit.anon():get("/catalog/products?limit=100")
    expect(res.status).to_be(200)
    local found
    for _, item in ipairs(res.body.items) do
      if item.id == id then found = item end
    end
    expect(found).to_equal({ id = id, name = "White tea", min_price_fen = 990,
                             max_price_fen = 990, stock = 3 })
  end)

  it("shows one product, and hides it once off sale", function()
    expect(kit.anon():get("/catalog/products/" .. id).body.id).to_be(id)
    local res = kit.admin():patch("/catalog/products/" .. id, { status = "off_sale" })
    expect(res.status).to_be(200)
    local gone = kit.anon():get("/catalog/products/" .. id)
    expect(gone.status).to_be(404)
    expect(gone.body.error.code).to_be("product_not_found")
  end)

  it("types its path parameters", function()
    local res = kit.anon():get("/catalog/products/abc")
    expect(res.status).to_be(400)
    expect(res.body.error.code).to_be("invalid_param")
  end)
end)

describe("stock", function()
  before_each(function()
    kit.admin():put("/catalog/skus/mug-1", { product_id = 1, title = "mug", price_fen = 3900, stock = 5 })
  end)

  it("goes up and down by a delta", function()
    local res = kit.admin():post("/catalog/skus/mug-1/stock", { delta = -2 })
    expect(res.status).to_be(200)
    expect(res.body).to_equal({ code = "mug-1", stock = 3 })
    expect(kit.anon():get("/catalog/skus/mug-1").body.stock).to_be(3)
  end)

  it("never goes below zero", function()
    local res = kit.admin():post("/catalog/skus/mug-1/stock", { delta = -6 })
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("insufficient_stock")
    expect(kit.query("SELECT stock FROM catalog_skus WHERE code = 'mug-1'")[1].stock).to_be(5)
  end)

  it("refuses a zero or fractional delta and an unknown SKU", function()
    expect(kit.admin():post("/catalog/skus/mug-1/stock", { delta = 0 }).status).to_be(400)
    expect(kit.admin():post("/catalog/skus/mug-1/stock", { delta = 1.5 }).status).to_be(400)
    local res = kit.admin():post("/catalog/skus/nope/stock", { delta = 1 })
    expect(res.status).to_be(404)
    expect(res.body.error.code).to_be("sku_not_found")
  end)
end)
