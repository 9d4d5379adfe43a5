-- A fixture of the test kit's own test: a price list with one wrong price.
return {
  name = "kit_fail", version = "1.0.0",
  routes = {
    { method = "GET", path = "/items", auth = "none", handler = function()
        return { items = { { sku = "a", price_fen = 100 }, { sku = "b", price_fen = 1990 } } }
      end },
  },
}
