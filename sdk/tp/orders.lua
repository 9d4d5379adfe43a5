---@diagnostic disable: undefined-global
-- tp.orders: what a campaign plugin does with the orders plugin, stated once.
-- `require("tp.orders")`. The orders plugin's contract is its README.

local orders = {}

---Creates an order through the orders plugin (tp.call("orders", "create",
---spec)). The catalog running out under it is the campaign's own sold out:
---409 sold_out "the product behind this <what> is out of stock", the answer a
---buyer gets from every mechanic alike. Any other failure is raised as it came.
---@param spec table the orders plugin's OrderSpec
---@param what string the campaign, for the message ("flash sale", "group buy")
---@return table order
function orders.create(spec, what)
  local ok, result = pcall(tp.call, "orders", "create", spec)
  if ok then return result end
  if type(result) == "table" and result.code == "insufficient_stock" then
    tp.fail(409, "sold_out", ("the product behind this %s is out of stock"):format(what))
  end
  error(result, 0)
end

return orders
