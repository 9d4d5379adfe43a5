---@diagnostic disable: undefined-global
-- tp.catalog: a campaign item's SKU as the catalog plugin has it, checked the
-- same way by every mechanic that sells one (flash sales, presales, group
-- buys, bargains). `require("tp.catalog")`. The catalog's contract is its README.

local check = require("tp.check")

local catalog = {}

---The SKU `code` as the catalog has it now; 400 sku_not_found on `sku` if it
---has none.
---@param code string
---@return table sku the catalog's answer: price_fen, stock, title, ...
function catalog.sku(code)
  local sku = tp.call("catalog", "sku", code)
  if not sku then tp.fail(400, "sku_not_found", ("no sku %s in the catalog"):format(code), { field = "sku" }) end
  return sku
end

---400 invalid_field for the first of `prices` ({field, fen} pairs, in the
---order given; a nil fen is not checked) above the SKU's list price.
---@param sku table catalog.sku's answer
---@param prices table[]
function catalog.check_prices(sku, prices)
  for _, p in ipairs(prices) do
    if p[2] and p[2] > sku.price_fen then
      check.field_error(p[1], ("cannot exceed the list price of %d fen"):format(sku.price_fen))
    end
  end
end

---409 insufficient_stock (on `quantity`) when `units` more than the catalog
---holds of the SKU are promised.
---@param sku table catalog.sku's answer
---@param code string
---@param units integer
function catalog.check_stock(sku, code, units)
  if units > sku.stock then
    tp.fail(409, "insufficient_stock", ("the catalog has only %d of %s"):format(sku.stock, code),
      { stock = sku.stock, field = "quantity" })
  end
end

return catalog
