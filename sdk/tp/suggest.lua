-- tp.suggest: "did you mean ...?" for a misspelt name. The closest of a list
-- of known names by edit distance, when it is close enough to be a typo.
-- `require("tp.suggest")` from any plugin.

local suggest = {}

---Levenshtein distance between a and b (bytes).
---@param a string
---@param b string
---@return integer
function suggest.distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

---The known name closest to word if it is within a third of its length (at
---least 1, at most 3 edits), else nil. Ties go to the first in known.
---@param word string
---@param known string[]
---@return string?
function suggest.closest(word, known)
  local best, best_d = nil, math.min(3, math.max(1, #word // 3)) + 1
  for _, name in ipairs(known) do
    local d = suggest.distance(word, name)
    if d < best_d then best, best_d = name, d end
  end
  return best
end

---" (did you mean 'x'?)" for the closest known name, or "".
---@param word string
---@param known string[]
---@return string
function suggest.hint(word, known)
  local best = suggest.closest(word, known)
  return best and (" (did you mean '%s'?)"):format(best) or ""
end

return suggest
