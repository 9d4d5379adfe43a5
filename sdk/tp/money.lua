-- tp.money: integer fen, split exactly and shown to people. Plugins keep money
-- as integer fen everywhere: split divides an amount over lines so that the
-- parts always sum to it (orders' pricing and the promotions engine use the one
-- rule, so a line's share is the same wherever it is computed); yuan is only
-- for text a person reads, and never goes through a float.
-- `require("tp.money")` from any plugin.

local money = {}

---fen as yuan with two decimals: 990 -> "¥9.90", 5900 -> "¥59.00", -5 -> "-¥0.05".
---@param fen integer
---@return string
function money.yuan(fen)
  assert(math.type(fen) == "integer", "yuan: fen must be an integer")
  local m = math.abs(fen)
  return ("%s¥%d.%02d"):format(fen < 0 and "-" or "", m // 100, m % 100)
end

---Splits total fen over weights (line amounts) in proportion, by largest
---remainder: every part is floor(total * w / sum) plus at most one fen, the
---extra fen go to the largest remainders (ties: the earlier line), and the
---parts sum to total exactly. A zero weight gets nothing. Callers keep
---total * weight below 2^63 (orders are capped at 10^9 fen).
---@param total integer
---@param weights integer[]
---@return integer[]
function money.split(total, weights)
  local sum = 0
  for _, w in ipairs(weights) do sum = sum + w end
  local parts, order, given = {}, {}, 0
  for i, w in ipairs(weights) do
    parts[i] = sum > 0 and (total * w) // sum or 0
    given = given + parts[i]
    order[i] = i
  end
  if sum == 0 then return parts end
  table.sort(order, function(a, b)
    local ra, rb = (total * weights[a]) % sum, (total * weights[b]) % sum
    if ra ~= rb then return ra > rb end
    return a < b
  end)
  for k = 1, total - given do
    local i = order[k]
    parts[i] = parts[i] + 1
  end
  return parts
end

return money
