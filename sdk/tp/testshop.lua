-- tp.testshop: the shop around a commerce plugin's tests. For `tidepool test`
-- files, which load it with require("tp.testshop"); it uses the kit's
-- globals, so the file must enable the plugins it talks to (catalog here).

local shop = {}

local made = 0

---@class TestSku
---@field code string? default "kit-sku-<n>", unique in the file
---@field title string? default "title <code>"
---@field price_fen integer? the list price (default 9900)
---@field stock integer? (default 100)

---Creates a product with one SKU through the catalog's admin route.
---@param sku TestSku?
---@return string code, integer product_id
function shop.sku(sku)
  sku = sku or {}
  made = made + 1
  local code = sku.code or ("kit-sku-" .. made)
  local res = kit.admin():post("/catalog/products", { name = "product " .. code,
    skus = { { code = code, title = sku.title or ("title " .. code),
               price_fen = sku.price_fen or 9900, stock = sku.stock or 100 } } })
  if res.status ~= 201 then
    local err = type(res.body) == "table" and res.body.error
    error(("the catalog refused sku %s: %d %s"):format(code, res.status,
      err and err.code or ""), 2)
  end
  return code, res.body.id
end

return shop
