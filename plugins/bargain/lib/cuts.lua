-- How much one helper cuts off a bargain: a pure function of what is left to
-- cut, how many cuts are left and a random function, so that a recorded draw
-- replays to the same cut (lib/replay.lua) and the arithmetic can be checked
-- exhaustively outside the host (test/cuts_spec.lua).
--
-- Invariant kept by every cut: remaining_fen >= cuts_left, i.e. every cut still
-- to come can take at least 1 fen. A cut is drawn uniformly from
-- [1, min(remaining - (left - 1), 2 * remaining // left)]: never so large that
-- a later cut would get 0 fen, and about remaining/left on average, so the
-- last friends still cut a visible amount. The last cut takes the remainder,
-- so the cuts sum to original - floor exactly; everything is integer fen.

local cuts = {}

---The range a non-last cut is drawn from, given remaining_fen and cuts_left >= 2.
---@param remaining_fen integer
---@param cuts_left integer
---@return integer lo, integer hi
function cuts.range(remaining_fen, cuts_left)
  return 1, math.min(remaining_fen - (cuts_left - 1), 2 * remaining_fen // cuts_left)
end

---The next cut. random(lo, hi) must return an integer in [lo, hi] (tp.random,
---or a replay of recorded draws). Returns the cut and the draw it used (nil for
---the last cut, which takes the remainder and draws nothing).
---@param remaining_fen integer  fen still to cut before the floor
---@param cuts_left integer      cuts still to come, this one included
---@param random fun(lo: integer, hi: integer): integer
---@return integer cut_fen, integer|nil draw
function cuts.next(remaining_fen, cuts_left, random)
  assert(math.type(remaining_fen) == "integer" and math.type(cuts_left) == "integer",
    "cuts.next takes integer fen and an integer count")
  assert(cuts_left >= 1 and remaining_fen >= cuts_left,
    "every cut left must be able to take at least 1 fen")
  if cuts_left == 1 then return remaining_fen, nil end
  local lo, hi = cuts.range(remaining_fen, cuts_left)
  local draw = random(lo, hi)
  assert(math.type(draw) == "integer" and draw >= lo and draw <= hi, "the draw is out of range")
  return draw, draw
end

return cuts
