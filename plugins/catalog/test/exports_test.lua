-- catalog: the skus_on_sale export, read a page at a time by another plugin
-- (test/plugins/skupager) as analytics reads it for its slow movers.

kit.plugins { catalog = {}, skupager = {} }

local function product(codes, status)
  local skus = {}
  for i, code in ipairs(codes) do skus[i] = { code = code, title = code, price_fen = 100, stock = 1 } end
  local res = kit.admin():post("/catalog/products", { name = "p", status = status, skus = skus })
  expect(res.status).to_be(201)
end

local function page(query)
  local res = kit.admin():get("/skupager" .. (query or ""))
  expect(res.status).to_be(200)
  return res.body
end

describe("skus_on_sale", function()
  it("gives the codes of products on sale in code order, a page at a time", function()
    product({ "c-1", "a-1", "b-2" })
    product({ "b-1" }, "off_sale")
    product({ "d-1" })
    expect(page()).to_equal({ codes = { "a-1", "b-2", "c-1", "d-1" } })
    expect(page("?limit=2")).to_equal({ codes = { "a-1", "b-2" }, next_after = "b-2" })
    expect(page("?limit=2&after=b-2")).to_equal({ codes = { "c-1", "d-1" }, next_after = "d-1" })
    expect(page("?limit=2&after=d-1")).to_equal({ codes = {} })
    expect(page("?after=b")).to_equal({ codes = { "b-2", "c-1", "d-1" } })
  end)

  it("refuses a page size outside 1-1000", function()
    for _, q in ipairs({ "?limit=0", "?limit=1001", "?limit=2.5" }) do
      expect(page(q).error.code).to_be("invalid_argument")
    end
    expect(#page("?limit=1000").codes).to_be(4)
  end)
end)
