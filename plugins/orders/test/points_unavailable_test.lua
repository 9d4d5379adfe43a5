-- orders without the points plugin: a checkout offering points is 409
-- points_unavailable and takes nothing (README "Points as part payment").

kit.plugins { catalog = {}, orders = {} }

local shop = require("tp.testshop")

describe("a checkout offering points where the shop has no points plugin", function()
  it("is 409 points_unavailable and reserves nothing", function()
    local sku = shop.sku{ price_fen = 1000, stock = 3 }
    expect(kit.user("ann"):post("/orders", { lines = { { sku = sku, qty = 1 } }, points = 100 }))
      .to_be_error(409, "points_unavailable")
    expect(kit.query("SELECT stock FROM catalog_skus WHERE code = ?", sku)[1].stock).to_be(3)
    expect(kit.query("SELECT count(*) AS n FROM orders_orders")[1].n).to_be(0)
  end)
end)
