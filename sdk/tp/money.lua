-- tp.money: showing amounts of integer fen to people. Plugins keep money as
-- integer fen everywhere; this is only for text a person reads (a campaign
-- preview, a log line), so it never goes through a float. `require("tp.money")`
-- from any plugin.

local money = {}

---fen as yuan with two decimals: 990 -> "¥9.90", 5900 -> "¥59.00", -5 -> "-¥0.05".
---@param fen integer
---@return string
function money.yuan(fen)
  assert(math.type(fen) == "integer", "yuan: fen must be an integer")
  local m = math.abs(fen)
  return ("%s¥%d.%02d"):format(fen < 0 and "-" or "", m // 100, m % 100)
end

return money
